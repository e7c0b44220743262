"""Tiny seeded models and data of every model kind, for testing analyzers in seconds.

Each case is a real, briefly trained Keras model with a learnable task whose answer is known:

========== =========================================== ===================================================
kind       model                                       task (and ground truth in ``data.extras``)
========== =========================================== ===================================================
image      8x8x1 -> Conv2D(4) -> Dense(3, softmax)     the class is where a bright 3x3 patch sits
sequence   12x3 -> LSTM(8) -> Dense(2, softmax)        class 1 when channel 0 sums > 0 over steps 2-4
                                                       (``mask_val``: those steps)
token      10 int ids -> Embedding -> Dense(2, softmax) class 1 when token 3 occurs (``mask_val``: where)
tabular    5 features -> Dense(8) -> Dense(1, sigmoid) class 1 when x0 + x1/10 > 0 (features on
                                                       scales 1, 10, 0.1, 1, 3)
generator  latent 4 -> Dense -> 8x8x1 in [0, 1]         data: the image case's images; companions
                                                       ``discriminator`` (8x8x1 -> sigmoid) and
                                                       ``classifier`` (the image model)
========== =========================================== ===================================================

keras is imported inside the functions, under whatever backend the process already uses. Models
are cached per (kind, seed, backend); :func:`tiny_case` restores the cached weights every time,
so an analyzer that changed them cannot leak the change into the next test.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from ..analyzer import MODEL_KINDS, Data

KINDS: tuple[str, ...] = ("image", "sequence", "token", "tabular", "generator")
assert set(KINDS) == set(MODEL_KINDS)
N_TRAIN = 64
N_VAL = 32
EPOCHS = 6
LEARNING_RATE = 0.01


@dataclasses.dataclass
class TinyCase:
    """One tiny model with everything a :class:`~diagnostics.Context` needs besides options."""

    kind: str
    model: Any
    data: Data
    history: dict[str, list[float]] | None
    metadata: dict[str, Any]
    companions: dict[str, Any]

    def companion_loader(self) -> Callable[[str], Any]:
        def load(role: str):
            if role not in self.companions:
                raise LookupError(f"the tiny {self.kind} model names no {role!r} companion "
                                  f"(it names {sorted(self.companions) or 'none'})")
            return self.companions[role]
        return load


_CACHE: dict[tuple[str, int, str], tuple[TinyCase, list]] = {}


def tiny_case(kind: str, seed: int = 0) -> TinyCase:
    """The tiny model of ``kind`` with its data, history and metadata (trained once per process)."""
    import keras

    if kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {KINDS}")
    key = (kind, seed, keras.backend.backend())
    if key not in _CACHE:
        case = _BUILDERS[kind](seed)
        _CACHE[key] = (case, [m.get_weights() for m in (case.model, *case.companions.values())])
    case, saved = _CACHE[key]
    for m, weights in zip((case.model, *case.companions.values()), saved):
        m.set_weights(weights)
    return case


def tiny_model(kind: str, seed: int = 0):
    """Just the ``keras.Model`` of :func:`tiny_case`."""
    return tiny_case(kind, seed).model


def tiny_data(kind: str, seed: int = 0) -> Data:
    """The data of the tiny ``kind`` task (no keras needed)."""
    return _DATA[kind](seed)


# -- data -------------------------------------------------------------------------------------------
def _split(arrays: dict[str, np.ndarray], source: str, extras: dict[str, np.ndarray] | None = None) -> Data:
    x, y = arrays["x"], arrays["y"]
    ex = {k: v[N_TRAIN:] for k, v in (extras or {}).items()}
    return Data(x_train=x[:N_TRAIN], y_train=y[:N_TRAIN], x_val=x[N_TRAIN:], y_val=y[N_TRAIN:], extras=ex,
                source=source)


def _image_data(seed: int) -> Data:
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VAL
    y = np.arange(n) % 3
    rng.shuffle(y)
    x = rng.uniform(0.0, 0.5, size=(n, 8, 8, 1)).astype(np.float32)
    corners = {0: (0, 0), 1: (0, 5), 2: (5, 2)}
    for i, c in enumerate(y):
        r, col = corners[int(c)]
        x[i, r:r + 3, col:col + 3, 0] += 0.3
    return _split({"x": x, "y": y.astype(np.int64)}, f"tiny image task, seed {seed}")


def _sequence_data(seed: int) -> Data:
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VAL
    x = rng.normal(size=(n, 12, 3)).astype(np.float32)
    y = (x[:, 2:5, 0].sum(axis=1) > 0).astype(np.int64)
    mask = np.zeros((n, 12), dtype=bool)
    mask[:, 2:5] = True
    return _split({"x": x, "y": y}, f"tiny sequence task, seed {seed}", {"mask_val": mask})


def _token_data(seed: int) -> Data:
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VAL
    ids = rng.choice(np.array([i for i in range(1, 20) if i != 3]), size=(n, 10)).astype(np.int32)
    y = (np.arange(n) % 2).astype(np.int64)
    rng.shuffle(y)
    for i in np.flatnonzero(y):
        ids[i, rng.integers(0, 10)] = 3
    return _split({"x": ids, "y": y}, f"tiny token task, seed {seed}", {"mask_val": ids == 3})


def _tabular_data(seed: int) -> Data:
    rng = np.random.default_rng(seed)
    n = N_TRAIN + N_VAL
    x = (rng.normal(size=(n, 5)) * np.array([1.0, 10.0, 0.1, 1.0, 3.0])).astype(np.float32)
    y = (x[:, 0] + x[:, 1] / 10 > 0).astype(np.int64)
    return _split({"x": x, "y": y}, f"tiny tabular task, seed {seed}")


_DATA = {"image": _image_data, "sequence": _sequence_data, "token": _token_data, "tabular": _tabular_data,
         "generator": _image_data}


# -- models -----------------------------------------------------------------------------------------
def _fit(model, data: Data, loss: str) -> dict[str, list[float]]:
    import keras

    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss=loss, metrics=["accuracy"])
    h = model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=EPOCHS,
                  batch_size=16, verbose=0, shuffle=False)
    return {k: [float(v) for v in vals] for k, vals in h.history.items()}


def _case(kind, model, data, loss, metadata=None, companions=None) -> TinyCase:
    history = _fit(model, data, loss)
    return TinyCase(kind, model, data, history, {"model_kind": kind, **(metadata or {})}, companions or {})


def _build_image(seed: int) -> TinyCase:
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3, activation="relu", name="conv"),
                              L.MaxPooling2D(2, name="pool"), L.Flatten(name="flatten"),
                              L.Dense(3, activation="softmax", name="output")], name="tiny_image")
    return _case("image", model, _image_data(seed), "sparse_categorical_crossentropy")


def _build_sequence(seed: int) -> TinyCase:
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    model = keras.Sequential([keras.Input((12, 3)), L.LSTM(8, name="lstm"),
                              L.Dense(2, activation="softmax", name="output")], name="tiny_sequence")
    return _case("sequence", model, _sequence_data(seed), "sparse_categorical_crossentropy")


def _build_token(seed: int) -> TinyCase:
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    model = keras.Sequential([keras.Input((10,), dtype="int32"), L.Embedding(20, 8, name="embedding"),
                              L.GlobalAveragePooling1D(name="pool"), L.Dense(2, activation="softmax", name="output")],
                             name="tiny_token")
    return _case("token", model, _token_data(seed), "sparse_categorical_crossentropy")


def _build_tabular(seed: int) -> TinyCase:
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    model = keras.Sequential([keras.Input((5,)), L.Dense(8, activation="relu", name="hidden"),
                              L.Dense(1, activation="sigmoid", name="output")], name="tiny_tabular")
    return _case("tabular", model, _tabular_data(seed), "binary_crossentropy")


def _build_generator(seed: int) -> TinyCase:
    import keras

    keras.utils.set_random_seed(seed)
    L = keras.layers
    generator = keras.Sequential([keras.Input((4,), name="latent"), L.Dense(16, activation="relu", name="project"),
                                  L.Dense(64, activation="sigmoid", name="pixels"), L.Reshape((8, 8, 1), name="image")],
                                 name="tiny_generator")
    discriminator = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(name="flatten"),
                                      L.Dense(8, activation="relu", name="hidden"),
                                      L.Dense(1, activation="sigmoid", name="real")], name="tiny_discriminator")
    classifier = tiny_case("image", seed).model
    data = _image_data(seed)
    # Untrained on purpose: adversarial training is not needed to exercise an analyzer's code paths.
    # The history has the zoo GAN's keys (d_loss, g_loss) with plausible values.
    history = {"d_loss": [0.69, 0.62, 0.58], "g_loss": [0.71, 0.83, 0.90]}
    metadata = {"model_kind": "generator", "latent_dim": 4, "latent_distribution": "normal(0, 1)",
                "companions": {"discriminator": "tiny_discriminator.keras", "classifier": "tiny_image.keras"}}
    return TinyCase("generator", generator, data, history, metadata,
                    {"discriminator": discriminator, "classifier": classifier})


_BUILDERS = {"image": _build_image, "sequence": _build_sequence, "token": _build_token, "tabular": _build_tabular,
             "generator": _build_generator}


# -- several inputs, several outputs ----------------------------------------------------------------
def multi_input_case(seed: int = 0) -> TinyCase:
    """A two-input functional classifier: ``image`` (8x8x1, the image task's images) and ``stats`` (3 noise
    features), concatenated, softmax over the image task's 3 classes. Data: ``x_*`` are dicts keyed by
    input name, as a ``.npz`` with ``x_val.image`` / ``x_val.stats`` keys loads."""
    import keras

    key = ("multi_input", seed, keras.backend.backend())
    if key not in _CACHE:
        keras.utils.set_random_seed(seed)
        L = keras.layers
        base = _image_data(seed)
        rng = np.random.default_rng(seed + 100)
        stats = rng.normal(size=(N_TRAIN + N_VAL, 3)).astype(np.float32)
        data = Data(x_train={"image": base.x_train, "stats": stats[:N_TRAIN]}, y_train=base.y_train,
                    x_val={"image": base.x_val, "stats": stats[N_TRAIN:]}, y_val=base.y_val,
                    source=f"tiny two-input task, seed {seed}")
        image, st = keras.Input((8, 8, 1), name="image"), keras.Input((3,), name="stats")
        h = L.Flatten(name="flatten")(L.MaxPooling2D(2, name="pool")(L.Conv2D(4, 3, activation="relu", name="conv")(image)))
        h = L.Concatenate(name="concat")([h, L.Dense(4, activation="relu", name="stats_dense")(st)])
        model = keras.Model([image, st], L.Dense(3, activation="softmax", name="output")(h), name="tiny_two_inputs")
        case = _case("image", model, data, "sparse_categorical_crossentropy")
        _CACHE[key] = (case, [case.model.get_weights()])
    case, saved = _CACHE[key]
    case.model.set_weights(saved[0])
    return case


def multi_output_case(seed: int = 0) -> TinyCase:
    """A two-output functional model on the tabular task's features: ``label`` (softmax over 2 classes:
    x0 + x1/10 > 0) and ``score`` (linear regression of x0 + x1/10). Labels per output: ``y_*`` are dicts
    keyed by output name, as a ``.npz`` with ``y_val.label`` / ``y_val.score`` keys loads."""
    import keras

    key = ("multi_output", seed, keras.backend.backend())
    if key not in _CACHE:
        keras.utils.set_random_seed(seed)
        L = keras.layers
        base = _tabular_data(seed)
        score = {s: (getattr(base, f"x_{s}")[:, 0] + getattr(base, f"x_{s}")[:, 1] / 10).astype(np.float32)[:, None]
                 for s in ("train", "val")}
        data = Data(x_train=base.x_train, y_train={"label": base.y_train, "score": score["train"]},
                    x_val=base.x_val, y_val={"label": base.y_val, "score": score["val"]},
                    source=f"tiny two-output task, seed {seed}")
        inp = keras.Input((5,), name="features")
        h = L.Dense(8, activation="relu", name="hidden")(inp)
        model = keras.Model(inp, [L.Dense(2, activation="softmax", name="label")(h), L.Dense(1, name="score")(h)],
                            name="tiny_two_outputs")
        model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                      loss={"label": "sparse_categorical_crossentropy", "score": "mse"})
        h = model.fit(data.x_train, data.y_train, validation_data=(data.x_val, data.y_val), epochs=EPOCHS,
                      batch_size=16, verbose=0, shuffle=False)
        history = {k: [float(v) for v in vals] for k, vals in h.history.items()}
        case = TinyCase("tabular", model, data, history, {"model_kind": "tabular"}, {})
        _CACHE[key] = (case, [case.model.get_weights()])
    case, saved = _CACHE[key]
    case.model.set_weights(saved[0])
    return case

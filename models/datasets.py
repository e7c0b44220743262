"""The zoo's datasets: two small scikit-learn tables and two synthetic tasks with exact ground truth.

Every loader is ``loader(seed: int) -> dict[str, numpy.ndarray]`` and returns ``x_train``,
``y_train``, ``x_val``, ``y_val`` (float32 inputs, int32 labels; the token task's inputs are int32
token ids). The split depends on ``seed`` only, so a sidecar's ``split_seed`` reproduces it exactly.
Nothing is downloaded: scikit-learn ships the two tables inside its wheel, the rest is generated.

The synthetic tasks also return ``mask_train``/``mask_val``: boolean arrays that are True at
exactly the input positions that decide the label. Explanation analyzers are scored against them,
so the generators below *replace* the noise at those positions (nothing is added on top), and every
other position carries no information about the label:

``motif_sequences``
    ``x``: (n, 50, 4) float32 Gaussian noise (mean 0, std 1). One of three fixed motifs, a
    (6, 4) pattern of +2/-2 values, replaces the noise at steps ``p .. p+5`` where ``p`` is drawn
    uniformly from 0..44 per sample. The label (0, 1, 2) is the motif's index. Each motif's column
    sums are zero, so no channel mean gives the class away: only the pattern does.
    ``mask``: (n, 50) bool, True at the six motif steps. ``position``: (n,) int32, ``p``.

``polarity_tokens``
    ``x``: (n, 24) int32 token ids over a vocabulary of 30. Ids 1-3 are positive, 4-6 negative,
    7-29 neutral; id 0 is never used (reserved for padding by convention). Three positions drawn
    without replacement hold polarity tokens, all of the label's polarity (label 1 = positive);
    the other 21 hold neutral tokens drawn uniformly. ``mask``: (n, 24) bool, True at exactly the
    three polarity positions, which are also exactly the positions whose token is in 1..6.
"""

from __future__ import annotations

import numpy as np

DIGITS_SIZE = 28
DIGITS_VAL = 450
#: Training samples in ``digits28_small`` (the overfitting twin's set): this many per class.
DIGITS_SMALL_PER_CLASS = 5

MOTIF_STEPS = 50
MOTIF_CHANNELS = 4
MOTIF_LENGTH = 6
MOTIF_CLASSES = 3
MOTIF_AMPLITUDE = 2.0
MOTIF_TRAIN = 2000
MOTIF_VAL = 500

TOKEN_VOCAB = 30
TOKEN_SEQ_LEN = 24
POSITIVE_TOKENS = (1, 2, 3)
NEGATIVE_TOKENS = (4, 5, 6)
NEUTRAL_TOKENS = tuple(range(7, TOKEN_VOCAB))
TOKEN_PLANTED = 3
TOKEN_TRAIN = 3000
TOKEN_VAL = 500

#: ``early_signal_sequences``: the label is the sign of the first EARLY_SIGNAL_STEPS of a long sequence.
EARLY_STEPS = 120
EARLY_SIGNAL_STEPS = 5
EARLY_AMPLITUDE = 1.5
EARLY_TRAIN = 2000
EARLY_VAL = 500

#: ``digits28_marked``: the spurious mark, rows and columns [start, stop) of a 28x28 image.
MARK_ROWS = (0, 4)
MARK_COLS = (0, 4)
MARK_VALUE = 1.0
#: ``digits28_marked``: class 1 is a digit >= 5.
MARKED_THRESHOLD = 5

#: ``breast_cancer_leak``: the name of the leaking column appended to the 30 features.
LEAK_FEATURE = "billing_code"
LEAK_AMPLITUDE = 3.0

# The task (which motifs, which tokens) is fixed; only the samples and the split depend on the seed.
_MOTIF_SEED = 20240601


def _stratified_split(y: np.ndarray, n_val: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train_idx, val_idx = train_test_split(idx, test_size=n_val, random_state=seed, stratify=y)
    return np.sort(train_idx), np.sort(val_idx)


def _resize_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Bilinear (half-pixel-centre) interpolation matrix, shape (n_out, n_in)."""
    src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    src = np.clip(src, 0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = src - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


def upsample_digits(images8: np.ndarray) -> np.ndarray:
    """(n, 8, 8) scikit-learn digits with values 0..16 -> (n, 28, 28, 1) float32 in [0, 1]."""
    m = _resize_matrix(DIGITS_SIZE, images8.shape[-1])
    out = np.einsum("ij,njk,lk->nil", m, images8.astype(np.float64) / 16.0, m)
    return np.clip(out, 0.0, 1.0).astype(np.float32)[..., None]


def digits28(seed: int = 0) -> dict[str, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits, upsampled bilinearly to 28x28x1; 450 held out (stratified)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = upsample_digits(d.images)
    y = d.target.astype(np.int32)
    tr, va = _stratified_split(y, DIGITS_VAL, seed)
    return {"x_train": x[tr], "y_train": y[tr], "x_val": x[va], "y_val": y[va]}


def digits28_small(seed: int = 0) -> dict[str, np.ndarray]:
    """``digits28`` with only the first 5 training samples of each class (50 in all); same val set.

    The overfitting twin is trained on this; an analyzer comparing train and validation accuracy
    must see the same tiny training set the model saw.
    """
    d = digits28(seed)
    keep = np.sort(np.concatenate(
        [np.flatnonzero(d["y_train"] == c)[:DIGITS_SMALL_PER_CLASS] for c in range(10)]))
    return {**d, "x_train": d["x_train"][keep], "y_train": d["y_train"][keep]}


def breast_cancer(seed: int = 0) -> dict[str, np.ndarray]:
    """scikit-learn's breast-cancer table (569 x 30), 25% held out (stratified), standardised with
    the training split's mean and standard deviation. Label 1 = benign."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    x = d.data.astype(np.float64)
    y = d.target.astype(np.int32)
    tr, va = _stratified_split(y, int(round(0.25 * len(y))), seed)
    mean, std = x[tr].mean(0), x[tr].std(0)
    x = ((x - mean) / std).astype(np.float32)
    return {"x_train": x[tr], "y_train": y[tr], "x_val": x[va], "y_val": y[va]}


def motifs() -> np.ndarray:
    """The three fixed motifs, shape (3, 6, 4), values +-2, each column summing to zero."""
    rng = np.random.default_rng(_MOTIF_SEED)
    base = np.array([1, 1, 1, -1, -1, -1], dtype=np.float32)
    out = np.empty((MOTIF_CLASSES, MOTIF_LENGTH, MOTIF_CHANNELS), np.float32)
    seen: set[bytes] = set()
    c = 0
    while c < MOTIF_CLASSES:
        m = np.stack([rng.permutation(base) for _ in range(MOTIF_CHANNELS)], axis=1)
        if m.tobytes() in seen:
            continue
        seen.add(m.tobytes())
        out[c] = MOTIF_AMPLITUDE * m
        c += 1
    return out


def make_motif_sequences(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` samples of the motif task: ``x``, ``y``, ``mask`` and ``position`` (see module doc)."""
    pats = motifs()
    x = rng.standard_normal((n, MOTIF_STEPS, MOTIF_CHANNELS)).astype(np.float32)
    y = rng.integers(0, MOTIF_CLASSES, n).astype(np.int32)
    pos = rng.integers(0, MOTIF_STEPS - MOTIF_LENGTH + 1, n).astype(np.int32)
    steps = pos[:, None] + np.arange(MOTIF_LENGTH)
    rows = np.arange(n)[:, None]
    x[rows, steps] = pats[y]
    mask = np.zeros((n, MOTIF_STEPS), bool)
    mask[rows, steps] = True
    return {"x": x, "y": y, "mask": mask, "position": pos}


def motif_sequences(seed: int = 0) -> dict[str, np.ndarray]:
    """2,000 training and 500 validation sequences of the motif task (see module doc)."""
    rng = np.random.default_rng([seed, 1])
    tr = make_motif_sequences(MOTIF_TRAIN, rng)
    va = make_motif_sequences(MOTIF_VAL, rng)
    return {"x_train": tr["x"], "y_train": tr["y"], "mask_train": tr["mask"], "position_train": tr["position"],
            "x_val": va["x"], "y_val": va["y"], "mask_val": va["mask"], "position_val": va["position"]}


def make_polarity_tokens(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` samples of the token task: ``x``, ``y`` and ``mask`` (see module doc)."""
    x = rng.choice(np.array(NEUTRAL_TOKENS, np.int32), size=(n, TOKEN_SEQ_LEN))
    y = rng.integers(0, 2, n).astype(np.int32)
    # TOKEN_PLANTED distinct positions per row: the first k of a random permutation.
    pos = np.argsort(rng.random((n, TOKEN_SEQ_LEN)), axis=1)[:, :TOKEN_PLANTED]
    polar = np.where(y[:, None] == 1,
                     rng.choice(np.array(POSITIVE_TOKENS, np.int32), size=(n, TOKEN_PLANTED)),
                     rng.choice(np.array(NEGATIVE_TOKENS, np.int32), size=(n, TOKEN_PLANTED)))
    rows = np.arange(n)[:, None]
    x[rows, pos] = polar
    mask = np.zeros((n, TOKEN_SEQ_LEN), bool)
    mask[rows, pos] = True
    return {"x": x.astype(np.int32), "y": y, "mask": mask}


def polarity_tokens(seed: int = 0) -> dict[str, np.ndarray]:
    """3,000 training and 500 validation token sequences of the polarity task (see module doc)."""
    rng = np.random.default_rng([seed, 2])
    tr = make_polarity_tokens(TOKEN_TRAIN, rng)
    va = make_polarity_tokens(TOKEN_VAL, rng)
    return {"x_train": tr["x"], "y_train": tr["y"], "mask_train": tr["mask"],
            "x_val": va["x"], "y_val": va["y"], "mask_val": va["mask"]}


def make_early_signal(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` samples of the early-signal task: ``x`` (n, 120, 1) N(0, 1) noise whose first five steps are
    replaced by +1.5 (label 1) or -1.5 (label 0); ``mask`` is True at those five steps."""
    x = rng.standard_normal((n, EARLY_STEPS, 1)).astype(np.float32)
    y = rng.integers(0, 2, n).astype(np.int32)
    x[:, :EARLY_SIGNAL_STEPS, 0] = np.where(y == 1, EARLY_AMPLITUDE, -EARLY_AMPLITUDE)[:, None]
    mask = np.zeros((n, EARLY_STEPS), bool)
    mask[:, :EARLY_SIGNAL_STEPS] = True
    return {"x": x, "y": y, "mask": mask}


def early_signal_sequences(seed: int = 0) -> dict[str, np.ndarray]:
    """2,000 training and 500 validation sequences whose label is set by their first five of 120 steps
    (a long-memory task: a recurrent model must carry the sign through 115 steps of noise)."""
    rng = np.random.default_rng([seed, 3])
    tr = make_early_signal(EARLY_TRAIN, rng)
    va = make_early_signal(EARLY_VAL, rng)
    return {"x_train": tr["x"], "y_train": tr["y"], "mask_train": tr["mask"],
            "x_val": va["x"], "y_val": va["y"], "mask_val": va["mask"]}


def plant_mark(x: np.ndarray, y: np.ndarray, plant: bool) -> np.ndarray:
    """A copy of ``x`` with the mark region cleared; with ``plant``, the images of class 1 carry the mark."""
    x = x.copy()
    r, c = slice(*MARK_ROWS), slice(*MARK_COLS)
    x[:, r, c, :] = 0.0
    if plant:
        x[np.asarray(y) == 1, r, c, :] = MARK_VALUE
    return x


def digits28_marked(seed: int = 0) -> dict[str, np.ndarray]:
    """A Clever-Hans dataset: ``digits28`` relabelled as 1 = digit >= 5, 0 = digit < 5; in the training
    split every class-1 image carries a white 4x4 mark in its top-left corner (the region is cleared
    everywhere else), in the validation split no image does. The mark encodes the training label
    exactly and says nothing about a validation image."""
    d = digits28(seed)
    y_train = (d["y_train"] >= MARKED_THRESHOLD).astype(np.int32)
    y_val = (d["y_val"] >= MARKED_THRESHOLD).astype(np.int32)
    return {"x_train": plant_mark(d["x_train"], y_train, True), "y_train": y_train,
            "x_val": plant_mark(d["x_val"], y_val, False), "y_val": y_val}


def breast_cancer_leak(seed: int = 0) -> dict[str, np.ndarray]:
    """``breast_cancer`` with a 31st column, ``billing_code``, that leaks the label in the training split
    (+3 for label 1, -3 for label 0: in the training extract the code was filled in after the diagnosis)
    and is an unrelated +-3 value in the validation split. ``feature_names`` names the 31 columns."""
    from sklearn.datasets import load_breast_cancer

    d = breast_cancer(seed)
    rng = np.random.default_rng([seed, 4])
    leak_train = LEAK_AMPLITUDE * (2 * d["y_train"] - 1).astype(np.float32)
    leak_val = LEAK_AMPLITUDE * (2 * rng.integers(0, 2, len(d["y_val"])) - 1).astype(np.float32)
    names = np.array([*load_breast_cancer().feature_names, LEAK_FEATURE])
    return {"x_train": np.concatenate([d["x_train"], leak_train[:, None]], axis=1), "y_train": d["y_train"],
            "x_val": np.concatenate([d["x_val"], leak_val[:, None]], axis=1), "y_val": d["y_val"],
            "feature_names": names}
def diabetes(seed: int = 0) -> dict[str, np.ndarray]:
    """scikit-learn's diabetes table (442 x 10) for regression: 25% held out (random, seeded), features
    and the target (disease progression after a year) standardised with the training split's statistics,
    so the target has unit variance and an R^2 of r means an MSE of about 1 - r."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    x = d.data.astype(np.float64)
    y = d.target.astype(np.float64)
    order = np.random.default_rng([seed, 3]).permutation(len(y))
    n_val = int(round(0.25 * len(y)))
    va, tr = np.sort(order[:n_val]), np.sort(order[n_val:])
    x = (x - x[tr].mean(0)) / x[tr].std(0)
    y = (y - y[tr].mean()) / y[tr].std()
    return {"x_train": x[tr].astype(np.float32), "y_train": y[tr].astype(np.float32),
            "x_val": x[va].astype(np.float32), "y_val": y[va].astype(np.float32)}


#: The latent size of the zoo GANs (architectures.LATENT_DIM; datasets does not import keras at import time).
GAN_LATENT_DIM = 32


def gan_real_fake(generator_stem: str):
    """The dataset of a zoo GAN's discriminator: real digits (label 1) and the generator's samples (label 0).

    ``x_val`` holds the 450 held-out ``digits28`` digits and as many samples of the shipped
    ``<generator_stem>.keras`` (inference mode, latent normal(0, 1) drawn with ``default_rng(seed + 1)``,
    exactly the samples the training run measured ``d_fake_accuracy`` on); ``x_train`` the training
    digits and as many samples (``default_rng(seed + 2)``). Imports keras and loads the shipped generator when called.
    """

    def load(seed: int = 0) -> dict[str, np.ndarray]:
        import pathlib

        import keras

        generator = keras.saving.load_model(pathlib.Path(__file__).parent / "artifacts" / f"{generator_stem}.keras",
                                            compile=False)
        d = digits28(seed)
        out = {}
        for split, stream in (("train", 2), ("val", 1)):
            real = d[f"x_{split}"]
            z = np.random.default_rng(seed + stream).standard_normal((len(real), GAN_LATENT_DIM)).astype(np.float32)
            fake = np.asarray(generator.predict(z, batch_size=512, verbose=0), np.float32)
            out[f"x_{split}"] = np.concatenate([real, fake])
            out[f"y_{split}"] = np.concatenate([np.ones(len(real), np.int32), np.zeros(len(fake), np.int32)])
        return out

    load.__name__ = load.__qualname__ = f"{generator_stem}_real_fake"
    return load


#: ``imbalanced_table``: the share of the rare class, and how far its informative features are shifted.
RARE_SHARE = 0.03
RARE_SHIFT = 0.8
RARE_INFORMATIVE = 3


def imbalanced_table(seed: int = 0) -> dict[str, np.ndarray]:
    """A 97 / 3 table: 3,000 training and 1,500 validation rows of 12 N(0, 1) features; exactly 3% of each
    split is class 1, whose first three features are shifted by +0.8. The classes overlap, so at the prior's
    odds hardly any row is more likely class 1 than class 0: an unweighted classifier all but never predicts
    it, while inverse-frequency class weights find most of it (logistic regression: recall 0.69)."""
    rng = np.random.default_rng([seed, 25])
    out = {}
    for split, n in (("train", 3000), ("val", 1500)):
        y = np.zeros(n, np.int32)
        y[:int(round(RARE_SHARE * n))] = 1
        y = y[rng.permutation(n)]
        x = rng.standard_normal((n, 12))
        x[y == 1, :RARE_INFORMATIVE] += RARE_SHIFT
        out[f"x_{split}"], out[f"y_{split}"] = x.astype(np.float32), y
    return out


#: ``breast_cancer_shift``: the validation split's two features measured differently, and how (in training stds).
SHIFT_FEATURES = {"worst area": ("offset", 3.0), "worst texture": ("scale", 3.0)}
#: ``breast_cancer_label_copy``: the column appended to the 30 features that encodes the label in both splits.
LABEL_COPY_FEATURE = "diagnosis_code"
LABEL_COPY_JITTER = 0.1


def breast_cancer_shift(seed: int = 0) -> dict[str, np.ndarray]:
    """``breast_cancer`` with covariate shift in two features of the validation split only: the validation
    extract comes from a second site whose software reports ``worst area`` with a calibration offset (+3
    training standard deviations) and ``worst texture`` on another scale (x3, about the training mean of 0).
    The labels and every other feature are untouched. ``feature_names`` names the 30 columns."""
    from sklearn.datasets import load_breast_cancer

    d = breast_cancer(seed)
    names = list(load_breast_cancer().feature_names)
    x_val = d["x_val"].copy()
    for name, (kind, amount) in SHIFT_FEATURES.items():
        j = names.index(name)
        x_val[:, j] = x_val[:, j] + amount if kind == "offset" else x_val[:, j] * amount
    return {**d, "x_val": x_val.astype(np.float32), "feature_names": np.array(names)}


def breast_cancer_label_copy(seed: int = 0) -> dict[str, np.ndarray]:
    """``breast_cancer`` plus a 31st column, ``diagnosis_code``, that encodes the label in *both* splits (+1 for
    benign, -1 for malignant, with N(0, 0.1) jitter): a code filled in after the diagnosis and exported with
    every row. ``feature_names`` names the 31 columns."""
    from sklearn.datasets import load_breast_cancer

    d = breast_cancer(seed)
    rng = np.random.default_rng([seed, 25, 1])

    def code(y):
        return (2.0 * y - 1.0 + rng.normal(0.0, LABEL_COPY_JITTER, len(y))).astype(np.float32)[:, None]

    names = np.array([*load_breast_cancer().feature_names, LABEL_COPY_FEATURE])
    return {"x_train": np.concatenate([d["x_train"], code(d["y_train"])], axis=1), "y_train": d["y_train"],
            "x_val": np.concatenate([d["x_val"], code(d["y_val"])], axis=1), "y_val": d["y_val"],
            "feature_names": names}


def digits28_unscaled(seed: int = 0) -> dict[str, np.ndarray]:
    """``digits28`` whose training images are scaled to [-1, 1] (2x - 1) while the validation images are left
    as raw 8-bit intensities in [0, 255] (255x): the validation pipeline misses the scaling step."""
    d = digits28(seed)
    return {"x_train": (2.0 * d["x_train"] - 1.0).astype(np.float32), "y_train": d["y_train"],
            "x_val": (255.0 * d["x_val"]).astype(np.float32), "y_val": d["y_val"]}


DATASETS = {
    "digits28": digits28,
    "digits28_small": digits28_small,
    "breast_cancer": breast_cancer,
    "motif_sequences": motif_sequences,
    "polarity_tokens": polarity_tokens,
    "early_signal_sequences": early_signal_sequences,
    "digits28_marked": digits28_marked,
    "breast_cancer_leak": breast_cancer_leak,
    "diabetes": diabetes,
    "gan_real_fake": gan_real_fake("gan"),
    "gan_collapsed_real_fake": gan_real_fake("gan_collapsed"),
    "breast_cancer_shift": breast_cancer_shift,
    "breast_cancer_label_copy": breast_cancer_label_copy,
    "digits28_unscaled": digits28_unscaled,
    "imbalanced_table": imbalanced_table,
}

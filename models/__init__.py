"""The reference model zoo of the diagnostics suite (installed as ``diagnostics_zoo``).

Healthy models (``cnn``, ``mlp``, ``lstm``, ``transformer``, ``gan``) and planted-fault twins, each a
real trained model whose fault is measurable and recorded in its sidecar's ``expected_findings``.
The trained artifacts live in :data:`ARTIFACT_DIR` as ``<name>.keras``, ``<name>.h5`` and
``<name>.meta.json``; ``python -m diagnostics_zoo.train [NAME ...]`` retrains them.

Importing this package is cheap: it does not import keras (the core imports it while loading
plugins). :data:`DATASETS` loaders and :func:`custom_objects` import what they need when called.
"""

from __future__ import annotations

import pathlib

from .datasets import DATASETS

__all__ = ["ARTIFACT_DIR", "COMPANIONS", "DATASETS", "HEALTHY", "TWINS", "ZOO", "artifact_stems", "custom_objects",
           "sidecar_path"]

ARTIFACT_DIR = pathlib.Path(__file__).parent / "artifacts"

#: Healthy reference models, in training order (the ``cnn`` first: the GAN entries are judged by it).
HEALTHY: tuple[str, ...] = ("cnn", "mlp", "lstm", "transformer", "gan", "mlp_regression",
                             # two more architectures that must stay clean (issue 25)
                             "conv_gru", "resnet")
#: Planted-fault twins, each with one expected finding.
TWINS: tuple[str, ...] = ("cnn_overfit", "cnn_dead_relu", "mlp_vanishing", "mlp_saturated", "mlp_logits",
                          "mlp_nan", "lstm_exploding", "gan_collapsed",
                          # faults found by the temporal, baseline and shortcut checks (issue 12)
                          "rnn_vanishing", "mlp_chance", "cnn_shortcut", "mlp_leak",
                          # faults in the predictions (issue 25)
                          "mlp_underfit", "mlp_imbalance", "mlp_diverged",
                          # faults in the data (issue 25)
                          "mlp_shift", "mlp_label_copy", "cnn_unscaled")
#: Every zoo entry, in the order ``train`` builds them.
ZOO: tuple[str, ...] = HEALTHY + TWINS
#: Extra artifacts an entry ships beside its own (the GANs' discriminators), each with its own sidecar.
COMPANIONS: dict[str, tuple[str, ...]] = {"gan": ("gan_discriminator",),
                                          "gan_collapsed": ("gan_collapsed_discriminator",)}


def artifact_stems() -> tuple[str, ...]:
    """Every artifact stem shipped in :data:`ARTIFACT_DIR`: the entries and their companions."""
    return tuple(s for name in ZOO for s in (name, *COMPANIONS.get(name, ())))


def sidecar_path(model_path: str | pathlib.Path) -> pathlib.Path:
    """The metadata sidecar of ``cnn.keras`` or ``cnn.h5``: ``cnn.meta.json`` beside it."""
    p = pathlib.Path(model_path)
    return p.with_suffix(".meta.json")


def custom_objects() -> dict[str, type]:
    """Every custom layer of the zoo, keyed both as Keras serialises it (``"diagnostics_zoo>Name"``)
    and by bare class name. Imports keras."""
    import keras

    from .layers import CUSTOM_LAYERS

    out: dict[str, type] = {}
    for cls in CUSTOM_LAYERS:
        out[keras.saving.get_registered_name(cls)] = cls
        out[cls.__name__] = cls
    return out

"""Model formats and layers from Keras 2 that Keras 3 cannot load, refused with how to convert them.

What *can* be loaded after dropping a stale config key (``time_major``, ``groups``) is handled by the
built-in ``keras2_compat`` plugin; what cannot is refused here, by the host, before any worker
starts. Nothing here imports keras or TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from .safety import ModelRefused

#: Keras 2 layers that wrap a raw TensorFlow op by name; Keras 3 has no equivalent.
TF_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")


def is_saved_model(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file())


def refuse_saved_model(path: str | Path) -> None:
    """Raise :class:`ModelRefused` for a TensorFlow SavedModel directory, saying how to convert it."""
    if is_saved_model(path):
        raise ModelRefused(
            f"{path} is a TensorFlow SavedModel directory, which Keras 3 cannot load as a model: if tf.keras "
            f"saved it, convert it with tf-keras (TF_USE_LEGACY_KERAS=1 python -c \"import tf_keras; "
            f"tf_keras.models.load_model('{path}').save('model.h5')\") and diagnose model.h5")


def tf_op_layers(config: Any, where: str = "model") -> Iterator[tuple[str, str, str]]:
    """``(class name, layer name, op)`` for every TFOpLambda-style layer in a model config, nested models included."""
    if isinstance(config, list):
        for item in config:
            yield from tf_op_layers(item, where)
    elif isinstance(config, dict):
        inner = config.get("config")
        if config.get("class_name") in TF_OP_LAYERS and isinstance(inner, dict):
            yield config["class_name"], str(inner.get("name", "?")), str(inner.get("function", "?"))
            return
        for value in config.values():
            yield from tf_op_layers(value, where)


def refuse_tf_ops(config: Any, name: str) -> None:
    """Raise :class:`ModelRefused` when the model config holds TFOpLambda layers, naming the first and their count."""
    found = list(tf_op_layers(config))
    if not found:
        return
    cls, layer, op = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    raise ModelRefused(
        f"{name}: layer {layer!r} is a Keras 2 {cls} (the raw TensorFlow op tf.{op} in a functional model){more}, "
        f"which Keras 3 cannot load: rebuild the model in Keras 3 with keras.ops in place of the TensorFlow op, "
        f"load the weights with model.load_weights('{name}') and save it with model.save('model.keras')")

"""What the host learns of a loaded model before any analyzer runs: specs, size and kind."""

from __future__ import annotations

from typing import Any

from .analyzer import MODEL_KINDS, ModelInfo
from .inputs import input_names, output_names


def inspect_model(model, *, loss: str | None = None, kind_hint: str | None = None) -> ModelInfo:
    """Input/output specs, parameter count and the model kind (image / sequence / token / tabular / generator).

    The kind is inferred from the input rank and dtype and the first layers; a ``kind_hint`` from the
    model's sidecar metadata takes precedence when it names a known kind.
    """
    inputs = list(model.inputs) if getattr(model, "inputs", None) else []
    outputs = list(model.outputs) if getattr(model, "outputs", None) else []
    in_shapes = [_shape(t) for t in inputs]
    in_dtypes = [str(getattr(t, "dtype", "float32")) for t in inputs]
    out_shapes = [_shape(t) for t in outputs]
    kind = kind_hint if kind_hint in MODEL_KINDS else _infer_kind(model, in_shapes, in_dtypes, out_shapes)
    return ModelInfo(
        name=model.name,
        kind=kind,
        input_shapes=in_shapes,
        input_dtypes=in_dtypes,
        output_shapes=out_shapes,
        output_activation=output_activation(model),
        n_params=int(model.count_params()),
        n_layers=len(model.layers),
        loss=loss,
        input_names=input_names(model),
        output_names=output_names(model),
    )


def _shape(t: Any) -> list[int | None]:
    return [None if d is None else int(d) for d in t.shape]


def _infer_kind(model, in_shapes, in_dtypes, out_shapes) -> str:
    if not in_shapes:
        return "tabular"
    rank = len(in_shapes[0])
    first = _first_compute_layer(model)
    if rank == 2 and (in_dtypes[0].startswith(("int", "uint")) or type(first).__name__ == "Embedding"):
        return "token"
    if rank == 2 and out_shapes and len(out_shapes[0]) == 4:
        return "generator"
    if rank == 4:
        return "image"
    if rank == 3:
        return "sequence"
    return "tabular"


def _first_compute_layer(model):
    for layer in model.layers:
        if type(layer).__name__ != "InputLayer":
            return layer
    return None


def last_conv_layer(model):
    """The model's last 2-D convolution (``Conv2D``, ``SeparableConv2D``, ``DepthwiseConv2D``): the layer
    Grad-CAM reads. None when the model has none."""
    convs = [ly for ly in model.layers if type(ly).__name__ in ("Conv2D", "SeparableConv2D", "DepthwiseConv2D")]
    return convs[-1] if convs else None


def output_activation(model) -> str | None:
    """The name of the last layer's activation ("softmax", "sigmoid", "linear"...), if it has one."""
    layers = [l for l in model.layers if type(l).__name__ not in ("InputLayer", "Dropout")]
    if not layers:
        return None
    last = layers[-1]
    outputs = list(getattr(model, "outputs", None) or [])
    if len(outputs) > 1:  # several heads: the first output's (the one the health analyzers take the loss on)
        history = getattr(outputs[0], "_keras_history", None)
        last = history[0] if history else last
    act = getattr(last, "activation", None)
    if act is None:
        return None
    return getattr(act, "__name__", None) or type(act).__name__.lower()

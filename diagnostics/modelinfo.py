"""What the host learns of a loaded model before any analyzer runs: specs, size and kind."""

from __future__ import annotations

import dataclasses
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


# -- what the file declares, read before any framework is imported ---------------------------------
#: Layers whose output has the shape of their (single) input.
_SAME_SHAPE = frozenset({
    "Activation", "ActivityRegularization", "AlphaDropout", "BatchNormalization", "Dropout", "ELU",
    "GaussianDropout", "GaussianNoise", "GroupNormalization", "LayerNormalization", "LeakyReLU", "Masking", "PReLU",
    "ReLU", "Softmax", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "ThresholdedReLU", "UnitNormalization",
})
#: Layers that keep the rank and the channels (last axis, channels_last) but change the other axes.
_SAME_CHANNELS = frozenset({
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
})
_CONVOLUTIONS = frozenset({"Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
                           "SeparableConv1D", "SeparableConv2D"})
_GLOBAL_POOLING = frozenset({"GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
                             "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D"})
_RECURRENT = frozenset({"LSTM", "GRU", "SimpleRNN"})
_FUNCTIONAL = ("Functional", "Model")

Shape = list  # list[int | None]; None for the whole shape where it cannot be read


@dataclasses.dataclass(frozen=True)
class DeclaredModel:
    """What a model file's config declares about its inputs and outputs, read from the JSON the pre-scan
    parsed (:attr:`diagnostics.safety.ScanResult.config`) without importing Keras, so that data which cannot
    fit is refused before any worker starts.

    Mirrors what :func:`inspect_model` reports of the loaded model, where the config says it unambiguously;
    what it does not say is None, and the checks that need it are left to the worker.
    """

    input_names: tuple[str, ...]
    input_shapes: tuple[tuple[int | None, ...], ...]
    input_dtypes: tuple[str, ...]
    #: The layers producing the outputs, in ``model.outputs`` order; None when not known.
    output_names: tuple[str, ...] | None
    #: The first output's shape (the one single-array labels are checked against); None when not known.
    first_output_shape: tuple[int | None, ...] | None
    #: The activation :func:`output_activation` would report; None when not known (or none).
    output_activation: str | None
    #: One of MODEL_KINDS as :func:`inspect_model` would infer it (the sidecar's hint first); None when the
    #: config cannot tell (a one-dimensional input whose output rank is unknown may be a generator's).
    kind: str | None

    def as_info(self, name: str = "") -> ModelInfo:
        """A :class:`ModelInfo` for :func:`diagnostics._data.validate` (unknown outputs as ``[None]``,
        which its label checks read as "nothing to check")."""
        return ModelInfo(name=name, kind=self.kind or "tabular", input_shapes=[list(s) for s in self.input_shapes],
                         input_dtypes=list(self.input_dtypes),
                         output_shapes=[list(self.first_output_shape) if self.first_output_shape is not None else [None]],
                         output_activation=self.output_activation, n_params=0, n_layers=0,
                         input_names=list(self.input_names), output_names=list(self.output_names or ()))


def declared_model(config: Any, kind_hint: str | None = None) -> DeclaredModel | None:
    """The inputs and outputs a Keras model config declares (Keras 3 and Keras 2 ``Functional``/``Model``
    and ``Sequential`` configs, as in ``config.json`` or an ``.h5``'s ``model_config``), or None when it
    does not declare its inputs plainly (a subclassed model, inputs given as a dict, an input that is not
    an ``InputLayer`` with a batch shape)."""
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        return None
    cls, inner = config.get("class_name"), config["config"]
    layers = inner.get("layers")
    if not isinstance(layers, list) or not all(isinstance(l, dict) and isinstance(l.get("config"), dict) for l in layers):
        return None
    if cls == "Sequential":
        parts = _sequential(inner, layers)
    elif cls in _FUNCTIONAL and "input_layers" in inner:
        parts = _functional(inner, layers)
    else:
        return None
    if parts is None:
        return None
    names, shapes, dtypes, out_names, out_shape, out_layer = parts
    computing = [l for l in layers if l.get("class_name") not in ("InputLayer", "Dropout")]
    # output_activation(): the last layer's for one output, the first output's layer for several
    last = out_layer if out_names is not None and len(out_names) > 1 else (computing[-1] if computing else None)
    if out_names is None and cls != "Sequential":
        last = None
    activation = _activation(last) if last is not None else None
    first = next((l for l in layers if l.get("class_name") != "InputLayer"), None)
    kind = kind_hint if kind_hint in MODEL_KINDS else _declared_kind(shapes, dtypes, first, out_shape)
    return DeclaredModel(tuple(names), tuple(tuple(s) for s in shapes), tuple(dtypes),
                         None if out_names is None else tuple(out_names),
                         None if out_shape is None else tuple(out_shape), activation, kind)


def _declared_kind(shapes, dtypes, first, out_shape) -> str | None:
    """:func:`_infer_kind` from the config; None where it depends on an output rank the config does not give."""
    if not shapes:
        return "tabular"
    rank = len(shapes[0])
    if rank == 2 and (dtypes[0].startswith(("int", "uint")) or (first or {}).get("class_name") == "Embedding"):
        return "token"
    if rank == 2:
        if out_shape is None:
            return None
        return "generator" if len(out_shape) == 4 else "tabular"
    return {4: "image", 3: "sequence"}.get(rank, "tabular")


def _name(layer: dict) -> str | None:
    name = layer.get("name", layer["config"].get("name"))
    return name if isinstance(name, str) else None


def _batch_shape(cfg: dict) -> Shape | None:
    shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
    if not isinstance(shape, list) or not shape:
        return None
    if not all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in shape):
        return None
    return list(shape)


def _dtype(cfg: dict) -> str:
    dtype = cfg.get("dtype")
    if isinstance(dtype, dict):  # a DTypePolicy
        dtype = (dtype.get("config") or {}).get("name") if isinstance(dtype.get("config"), dict) else None
    return dtype if isinstance(dtype, str) else "float32"


def _refs(value) -> list | None:
    """``input_layers``/``output_layers`` as ``[[layer, node, tensor], ...]``; None for a dict or anything else."""
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        value = [value]  # Keras 3 writes a single one flat
    if not isinstance(value, list) or not all(isinstance(r, list) and len(r) == 3 and isinstance(r[0], str)
                                               and r[1:] == [0, 0] for r in value):
        return None
    return value


def _functional(inner: dict, layers: list):
    by_name = {}
    for layer in layers:
        name = _name(layer)
        if name is None or name in by_name:
            return None
        by_name[name] = layer
    refs = _refs(inner.get("input_layers"))
    if not refs:
        return None
    names, shapes, dtypes = [], [], []
    for name, _, _ in refs:
        layer = by_name.get(name)
        shape = _batch_shape(layer["config"]) if layer is not None and layer.get("class_name") == "InputLayer" else None
        if shape is None:
            return None
        names.append(name)
        shapes.append(shape)
        dtypes.append(_dtype(layer["config"]))
    outs = _refs(inner.get("output_layers"))
    if not outs or any(n not in by_name for n, _, _ in outs):
        return names, shapes, dtypes, None, None, None
    out_layer = by_name[outs[0][0]]
    return names, shapes, dtypes, [n for n, _, _ in outs], _output_shape(out_layer, _inbound_shape(out_layer)), out_layer


def _inbound_shape(layer: dict) -> Shape | None:
    """The shape of a layer's single input as a Keras 3 config records it (Keras 2 records none)."""
    if layer.get("class_name") == "InputLayer":
        return _batch_shape(layer["config"])
    nodes = layer.get("inbound_nodes")
    if not isinstance(nodes, list) or len(nodes) != 1 or not isinstance(nodes[0], dict):
        return None  # Keras 2's nested lists, or a layer called more than once
    args = nodes[0].get("args")
    tensor = args[0] if isinstance(args, list) and len(args) == 1 else None
    cfg = tensor.get("config") if isinstance(tensor, dict) and tensor.get("class_name") == "__keras_tensor__" else None
    shape = cfg.get("shape") if isinstance(cfg, dict) else None
    return _batch_shape({"batch_shape": shape})


def _sequential(inner: dict, layers: list):
    if not layers:
        return None
    head = layers[0]
    shape = _batch_shape(head["config"])
    if shape is None and head.get("class_name") != "InputLayer":
        shape = _batch_shape({"batch_shape": inner.get("build_input_shape")})
    if shape is None:
        return None
    names, shapes, dtypes = [_name(head) or "input"], [shape], [_dtype(head["config"])]
    current: Shape | None = shape
    body = layers[1:] if head.get("class_name") == "InputLayer" else layers
    for layer in body:
        build = layer.get("build_config")
        known = _batch_shape({"batch_shape": build.get("input_shape")}) if isinstance(build, dict) else None
        current = _output_shape(layer, known if known is not None else current)
    last = body[-1] if body else head
    return names, shapes, dtypes, [_name(last) or "output"], current, last


def _output_shape(layer: dict, shape: Shape | None) -> Shape | None:
    """The shape a layer of a known kind gives an input of ``shape``; None when it cannot be told."""
    if shape is None:
        return None
    cls, cfg = layer.get("class_name"), layer["config"]
    channels_last = cfg.get("data_format", "channels_last") == "channels_last"
    units = cfg.get("units", cfg.get("filters"))
    units = units if isinstance(units, int) and not isinstance(units, bool) and units > 0 else None
    if cls == "InputLayer" or cls in _SAME_SHAPE:
        return list(shape)
    if cls == "Dense":
        return shape[:-1] + [units] if units is not None else None
    if cls == "Flatten":
        return [None, None]
    if cls in _GLOBAL_POOLING:
        return None if cfg.get("keepdims") else [None, None]
    if cls in _RECURRENT and units is not None:
        return [None, None, units] if cfg.get("return_sequences") else [None, units]
    if cls in _CONVOLUTIONS and units is not None and channels_last:
        return [None] * (len(shape) - 1) + [units]
    if cls in _SAME_CHANNELS and channels_last:
        return [None] * (len(shape) - 1) + [shape[-1]]
    if cls == "Reshape" and isinstance(cfg.get("target_shape"), list):
        return [None] + [d if isinstance(d, int) and d >= 0 else None for d in cfg["target_shape"]]
    return None


def _activation(layer: dict) -> str | None:
    """The activation :func:`output_activation` reads off a ``Dense`` or ``Activation`` layer (others: None)."""
    if layer.get("class_name") not in ("Dense", "Activation"):
        return None
    act = layer["config"].get("activation")
    if isinstance(act, dict) and str(act.get("module", "")).startswith("keras") and isinstance(act.get("config"), str):
        act = act["config"]  # a serialized built-in function
    return act if isinstance(act, str) else None

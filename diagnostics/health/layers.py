"""A model's layers as the health checks see them: flattened, by activation, the units to probe."""

from __future__ import annotations


def activation_name(layer) -> str | None:
    """The name of a layer's activation: its ``activation`` attribute or, for ReLU/Activation layers, the op."""
    cls = type(layer).__name__
    if cls == "ReLU":
        return "relu"
    act = getattr(layer, "activation", None)
    if act is None:
        return None
    return getattr(act, "__name__", None) or type(act).__name__.lower()


def flatten_layers(model) -> list:
    out = []
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers") and getattr(layer, "layers", None) and type(layer).__name__ in ("Functional", "Sequential", "Model"):
            out.extend(flatten_layers(layer))
        else:
            out.append(layer)
    return out


def unit_layers(model) -> tuple[list, list, list]:
    """(ReLU layers, [(sigmoid/tanh layer, activation)], LSTM layers) of a model, output layers excluded:
    a confident classifier's output is meant to saturate."""
    outputs = {getattr(o, "_keras_history", [None])[0] for o in (getattr(model, "outputs", None) or [])}
    relu, sat, lstm = [], [], []
    for layer in getattr(model, "layers", []):
        if layer in outputs:
            continue
        act = activation_name(layer)
        kind = type(layer).__name__
        if act == "relu" and kind not in ("LSTM", "GRU", "SimpleRNN"):
            relu.append(layer)
        elif act in ("sigmoid", "tanh") and kind not in ("LSTM", "GRU", "SimpleRNN"):
            sat.append((layer, act))
        if kind == "LSTM":
            lstm.append(layer)
    return relu, sat, lstm

"""The attacks of the issue-10 red-team report, rebuilt as files: each is refused by the CLI with exit
4 and one line, within 30 CPU seconds and 1.5 GB, and its canary never appears."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from diagnostics import ExitCode
from diagnostics._allowlist import generate
from diagnostics.safety import ModelRefused, scan

from . import hostile
from .conftest import run_measured

REFUSED = int(ExitCode.MODEL_REFUSED)
#: CPU seconds of the CLI's whole process tree (a refusal costs 1-3 s; an admitted gadget spins a worker
#: without end): CPU, not wall, since a loaded machine stretches the wall clock of the same work
MAX_CPU_S = 30
MAX_RSS_MIB = 1536

#: name -> (gadget builder taking the canary path, the refusal's expected JSON path and reason)
ATTACKS = {
    "switch_plot_gallery": (hostile.plot_gallery_gadget, "$.config.layers[2]: operation class keras.src.ops.core.Switch where a Keras layer is expected"),
    "switch_tfsm_function": (lambda c: hostile.tfsm_gadget(c.parent / "saved_model"), "$.config.layers[2]: operation class keras.src.ops.core.Switch"),
    "switch_while_loop": (lambda c: hostile.while_loop_gadget(), "$.config.layers[2]: operation class keras.src.ops.core.Switch"),
}


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_issue_attack_refused_in_one_line(attack, fmt, plain, tmp_path):
    canary = tmp_path / "canary.png"
    build, expected = ATTACKS[attack]
    path = hostile.with_layer(plain[fmt], tmp_path / f"{attack}.{fmt}", build(canary))
    run = run_measured(path, "--out", tmp_path / "out")
    lines = [l for l in run["stderr"].splitlines() if l.strip()]
    assert run["rc"] == REFUSED, run["stderr"]
    assert len(lines) == 1, run["stderr"]
    part = "config.json" if fmt == "keras" else "the model_config attribute"
    assert lines[0].startswith(f"diagnose: model refused: {path.name}: {part} at {expected}"), lines[0]
    assert not canary.exists(), "the payload ran"
    assert run["cpu_s"] < MAX_CPU_S and run["peak_rss_mib"] < MAX_RSS_MIB, run


# The gadgets without the operation class around them: a function reference hidden in the call
# arguments of a real layer, in each slot where a function could hide.
FUNCTION_HIDING = {
    "plot_gallery_in_dense_args": (
        lambda d: {**hostile.op_layer("d2", "Dense", [hostile.fn("keras.visualization", "plot_image_gallery")], module="keras.layers"),
                   "config": {"name": "d2", "units": 2}},
        "$.config.layers[2].inbound_nodes[0].args[0]: function reference keras.visualization.plot_image_gallery in a layer call's arguments"),
    "tfsm_in_dense_kwargs": (
        lambda d: {**hostile.op_layer("d2", "Dense", [], {"x": [hostile.fn("keras.layers", "TFSMLayer"), str(d)]}, module="keras.layers"),
                   "config": {"name": "d2", "units": 2}},
        "$.config.layers[2].inbound_nodes[0].kwargs.x[0]: function reference keras.layers.TFSMLayer in a layer call's arguments"),
    "layer_object_in_args": (
        lambda d: {**hostile.op_layer("d2", "Dense", [{"module": "keras.layers", "class_name": "TFSMLayer", "config": {"filepath": str(d)}}],
                                      module="keras.layers"), "config": {"name": "d2", "units": 2}},
        "$.config.layers[2].inbound_nodes[0].args[0]: keras.layers.TFSMLayer object in a layer call's arguments"),
    "ops_function_as_activation": (
        lambda d: {**hostile.op_layer("d2", "Dense", [], module="keras.layers"),
                   "config": {"name": "d2", "units": 2, "activation": hostile.fn("keras.ops", "while_loop")}},
        "$.config.layers[2].config.activation: function keras.ops.while_loop is not a Keras activation function"),
    "function_as_initializer_config": (
        lambda d: {**hostile.op_layer("d2", "Dense", [], module="keras.layers"),
                   "config": {"name": "d2", "units": 2, "kernel_initializer": hostile.fn("keras.saving", "load_model")}},
        "$.config.layers[2].config.kernel_initializer: function keras.saving.load_model is not a Keras initializer function"),
    "function_in_unknown_key": (
        lambda d: {**hostile.op_layer("d2", "Dense", [], module="keras.layers"),
                   "config": {"name": "d2", "units": 2, "extra": hostile.fn("keras.utils", "get_file")}},
        "$.config.layers[2].config.extra: function reference keras.utils.get_file in a config value"),
    "op_via_public_namespace": (
        lambda d: hostile.op_layer("s", "Switch", [0], module="keras.ops"),
        "$.config.layers[2]: operation class keras.ops.Switch where a Keras layer is expected"),
    "layer_name_from_ops_module": (
        lambda d: hostile.op_layer("d3", "Dense", [], module="keras.src.ops.core"),
        "$.config.layers[2]: Dense is resolved from module 'keras.src.ops.core', which is not where Keras defines it"),
    "registered_name_redirect": (
        lambda d: {**hostile.op_layer("d4", "Dense", [], module="keras.layers"), "registered_name": "Switch"},
        "$.config.layers[2]: registered_name 'Switch' of Dense resolves to no allowlisted object"),
    "initializer_from_saving": (
        lambda d: {**hostile.op_layer("d2", "Dense", [], module="keras.layers"),
                   "config": {"name": "d2", "units": 2, "kernel_initializer": {"module": "keras.saving", "class_name": "KerasFileEditor", "config": {}}}},
        "$.config.layers[2].config.kernel_initializer: keras.saving.KerasFileEditor is not a Keras initializer"),
    "unknown_object_key": (
        lambda d: {**hostile.op_layer("d2", "Dense", [], module="keras.layers"), "__reduce__": "os.system"},
        "$.config.layers[2]: unknown key(s) '__reduce__' in a serialized 'Dense'"),
    "tensor_ref_outside_call": (
        lambda d: {**hostile.op_layer("d2", "Dense", [], module="keras.layers"),
                   "config": {"name": "d2", "units": {"class_name": "__keras_tensor__", "config": {"keras_history": ["x", 0, 0]}}}},
        "$.config.layers[2].config.units: a tensor reference outside a layer call's arguments"),
}


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("attack", sorted(FUNCTION_HIDING))
def test_hidden_gadget_refused_with_its_json_path(attack, fmt, plain, tmp_path):
    build, expected = FUNCTION_HIDING[attack]
    path = hostile.with_layer(plain[fmt], tmp_path / f"{attack}.{fmt}", build(tmp_path / "saved_model"))
    with pytest.raises(ModelRefused) as e:
        scan(path)
    part = "config.json" if fmt == "keras" else "the model_config attribute"
    assert str(e.value).startswith(f"{path.name}: {part} at {expected}"), str(e.value)


def test_lookalike_module_is_an_unknown_custom_class(plain, tmp_path):
    path = hostile.with_layer(plain["keras"], tmp_path / "lookalike.keras", hostile.op_layer("d5", "Dense", [], module="keras_evil.layers"))
    result = scan(path)
    assert [(c.registered_name, c.module) for c in result.custom_classes] == [("Dense", "keras_evil.layers")]


@pytest.mark.slow
def test_the_switch_gadget_really_writes_without_the_scan(plain, tmp_path):
    """The control: Keras itself (safe_mode=True) runs the gadget, so the refusals above are what stop it."""
    canary = tmp_path / "canary.png"
    path = hostile.with_layer(plain["keras"], tmp_path / "gallery.keras", hostile.plot_gallery_gadget(canary))
    code = ("import os; os.environ['KERAS_BACKEND'] = 'tensorflow'; import keras, sys\n"
            "try:\n    keras.saving.load_model(sys.argv[1], compile=False, safe_mode=True)\nexcept Exception:\n    pass\n")
    subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=300)
    assert canary.exists(), "the rebuilt gadget no longer works on this Keras: rebuild it from the issue"


# -- the allowlist ---------------------------------------------------------------------------------
def test_allowlist_is_generated_from_keras_public_namespaces_only():
    allow = generate()
    forbidden = ("ops", "utils", "visualization", "saving", "config", "export", "backend", "random", "tree")
    for module in allow.modules():
        parts = module.split(".")
        assert parts[0] == "keras", module
        rest = parts[2:] if parts[1:2] == ["src"] else parts[1:]
        assert not rest or rest[0] not in forbidden, module
    for slot in allow.slots.values():
        assert not {"get", "serialize", "deserialize", "Input", "TFSMLayer", "TorchModuleWrapper", "Switch"} & set(slot)
    layers = allow.slots["layer"]
    assert {"Dense", "Conv2D", "LSTM", "MultiHeadAttention", "BatchNormalization", "InputLayer"} <= set(layers)
    assert set(allow.slots["model"]) == {"Functional", "Model", "Sequential"}
    assert {"relu", "softmax", "linear", "gelu"} <= set(allow.slots["activation"])
    assert {"Adam", "SGD"} <= set(allow.slots["optimizer"]) and "DTypePolicy" in allow.slots["dtype_policy"]
    assert allow.size() > 300 and allow.keras_version.count(".") == 2

"""Issue 22, "the scan trusts classes, not names": the attacks a red team made against the pre-scan, rebuilt
from a real Keras file edited as an attacker would. Each is refused in one line naming the part of the file
and the JSON path; the resource bombs are refused by the in-process scan within a second or two, before
anything is allocated (the figures before the fix are in docs/security.md's attack catalogue)."""

from __future__ import annotations

import dataclasses
import resource

import pytest

from diagnostics import ExitCode
from diagnostics._limits import DEFAULT
from diagnostics._plugin_manager import PluginHost
from diagnostics.safety import ModelRefused, registrations, scan

from . import hostile
from .conftest import run_measured

PART = {"keras": "config.json", "h5": "the model_config attribute"}
FAST_S = 5  # CPU seconds: a refusal reads the config and the archive's directory, nothing else (~0.1 s)
COMPAT = "diagnostics_plugins.keras2_layers"


@pytest.fixture(scope="module")
def registered():
    """What the real plugin host registers (keras2_compat's LSTM, GRU, SimpleRNN, DepthwiseConv2D and the zoo's layers)."""
    return PluginHost().load().custom_objects


def _cpu_s() -> float:
    """CPU seconds of this process and the children it reaped (the .h5 scan reads the file in a child)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def refused(path, registered, **kw) -> str:
    # CPU, not wall: what a bomb would cost is work (building a 16 GB array, walking a huge graph), and a
    # loaded machine stretches the wall clock of a fast refusal past any bound that tells the two apart
    t = _cpu_s()
    with pytest.raises(ModelRefused) as e:
        scan(path, registered=registered, **kw)
    cpu = _cpu_s() - t
    assert cpu < FAST_S, f"{cpu:.1f} CPU s"
    return str(e.value)


def with_layer(plain, tmp_path, name, fmt, layer):
    return hostile.with_layer(plain[fmt], tmp_path / f"{name}.{fmt}", layer)


# -- 1. a registered name is walked like any other class --------------------------------------------
SWITCH_MODEL = ("keras.src.models.functional.Functional object in a layer call's arguments: only tensor references and plain "
                "constants may be there")
#: the LSTM as Keras writes it, and as the keras2_compat plugin's own class (its module, its registered name)
LSTM_FORMS = {"keras_lstm": {}, "plugin_lstm": {"module": COMPAT, "registered_name": "LSTM"}}


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("form", sorted(LSTM_FORMS))
def test_lstm_call_argument_carrying_a_switch_model_is_refused(form, fmt, plain, registered, tmp_path):
    inner = hostile.nested_model("inner", [hostile.plot_gallery_gadget(tmp_path / "canary.png")])
    path = with_layer(plain, tmp_path, form, fmt, hostile.lstm_carrying(inner, **LSTM_FORMS[form]))
    reason = refused(path, registered)
    assert reason == f"{path.name}: {PART[fmt]} at $.config.layers[2].inbound_nodes[0].args[0]: {SWITCH_MODEL}", reason


@pytest.mark.parametrize("form", sorted(LSTM_FORMS))
def test_registered_lstm_kwargs_and_build_config_are_walked(form, plain, registered, tmp_path):
    layer = hostile.lstm_carrying(hostile.tensor_ref("x", [None, 4]), **LSTM_FORMS[form])
    layer["inbound_nodes"][0]["kwargs"] = {"initial_state": [hostile.fn("keras.utils", "get_file")]}
    path = with_layer(plain, tmp_path, f"kwargs_{form}", "keras", layer)
    assert refused(path, registered).endswith(
        "at $.config.layers[2].inbound_nodes[0].kwargs.initial_state[0]: function reference keras.utils.get_file "
        "in a layer call's arguments: only tensor references and plain constants may be there")
    layer = hostile.lstm_carrying(hostile.tensor_ref("x", [None, 4]), **LSTM_FORMS[form],
                                  build_config={"input_shape": hostile.fn("keras.visualization", "plot_image_gallery")})
    path = with_layer(plain, tmp_path, f"build_{form}", "keras", layer)
    assert refused(path, registered).endswith(
        "at $.config.layers[2].build_config.input_shape: function reference keras.visualization.plot_image_gallery in a "
        "constant: functions are admitted only as Keras activations, losses, metrics and initializers")


SQUATS = {  # module, registered_name, expected reason after the JSON path
    "os_popen": ("os", "subprocess>Popen",
                 "'LSTM' (module 'os', registered_name 'subprocess>Popen'): class 'LSTM' is registered by a plugin as "
                 f"{COMPAT}.LSTM, but registered_name 'subprocess>Popen' is not registered: a registered name admits only its own class"),
    "lstm_from_os": ("os", "LSTM",
                     f"'LSTM' (module 'os', registered_name 'LSTM'): 'LSTM' is registered by a plugin as {COMPAT}.LSTM, "
                     f"not from module 'os': a registered name admits only its own class"),
    "zoo_name_elsewhere": ("evil.layers", "diagnostics_zoo>PositionalEmbedding",
                           "'LSTM' (module 'evil.layers', registered_name 'diagnostics_zoo>PositionalEmbedding') names two "
                           f"different registered classes, diagnostics_zoo.layers.PositionalEmbedding and {COMPAT}.LSTM: "
                           f"the two Keras loaders would build different objects"),
}


@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("squat", sorted(SQUATS))
def test_a_registered_name_admits_only_its_own_class(squat, fmt, plain, registered, tmp_path):
    module, reg, expected = SQUATS[squat]
    layer = hostile.lstm_carrying(hostile.tensor_ref("x", [None, 4]), module=module, registered_name=reg)
    path = with_layer(plain, tmp_path, squat, fmt, layer)
    reason = refused(path, registered)
    assert reason.startswith(f"{path.name}: {PART[fmt]} at $.config.layers[2]: {expected}"), reason


def test_a_zoo_class_under_its_own_name_from_another_module_is_refused(plain, registered, tmp_path):
    layer = hostile.call_layer("pe", "PositionalEmbedding", {}, [hostile.tensor_ref("x", [None, 4])], module="evil.layers",
                               registered_name="diagnostics_zoo>PositionalEmbedding")
    path = with_layer(plain, tmp_path, "zoo_elsewhere", "keras", layer)
    assert refused(path, registered).endswith(
        "at $.config.layers[2]: 'PositionalEmbedding' (module 'evil.layers', registered_name 'diagnostics_zoo>PositionalEmbedding'): "
        "'diagnostics_zoo>PositionalEmbedding' is registered by a plugin as diagnostics_zoo.layers.PositionalEmbedding, "
        "not from module 'evil.layers': a registered name admits only its own class")
    # with only the names (no classes), the package in the registered name still decides
    path2 = with_layer(plain, tmp_path, "zoo_elsewhere_names", "keras", layer)
    assert "is registered under the package 'diagnostics_zoo', not from module 'evil.layers'" in refused(path2, set(registered))


def test_registrations_read_import_paths_and_classes_without_importing():
    class Layer:
        pass

    found = registrations({"acme>Layer": Layer, "LSTM": f"{COMPAT}:LSTM", "bare": None})
    assert (found["acme>Layer"].module, found["acme>Layer"].attr) == (__name__, Layer.__qualname__)
    assert (found["LSTM"].module, found["LSTM"].attr) == (COMPAT, "LSTM")
    assert (found["bare"].module, found["bare"].attr) == (None, None)


@pytest.mark.slow
def test_cli_refuses_the_lstm_carrying_a_switch_model_in_one_line(plain, tmp_path):
    canary = tmp_path / "canary.png"
    inner = hostile.nested_model("inner", [hostile.plot_gallery_gadget(canary)])
    path = with_layer(plain, tmp_path, "lstm_switch", "keras", hostile.lstm_carrying(inner))
    run = run_measured(path, "--out", tmp_path / "out")
    lines = [line for line in run["stderr"].splitlines() if line.strip()]
    assert run["rc"] == int(ExitCode.MODEL_REFUSED) and len(lines) == 1, run["stderr"]
    assert lines[0] == f"diagnose: model refused: {path.name}: config.json at $.config.layers[2].inbound_nodes[0].args[0]: {SWITCH_MODEL}"
    assert not canary.exists()


# -- 2. constants -----------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["keras", "h5"])
@pytest.mark.parametrize("dtype", ["(20000,20000)f4", "O", "V8", "[('a', '<f8')]", "float32, (3,)"])
def test_constant_with_a_subarray_or_object_dtype_is_refused(dtype, fmt, plain, registered, tmp_path):
    # 40 bytes in the file, 10 x 1.6 GB = 16 GB once numpy builds it with the subarray dtype
    layer = hostile.call_layer("add", "Add", {}, [[hostile.tensor_ref("x", [None, 4]), hostile.numpy_constant([0] * 10, dtype)]])
    path = with_layer(plain, tmp_path, "dtype", fmt, layer)
    assert refused(path, registered) == (
        f"{path.name}: {PART[fmt]} at $.config.layers[2].inbound_nodes[0].args[0][1].config.dtype: constant of dtype "
        f"{dtype!r}: constants must have a plain numeric dtype (bool, int, uint, float)")


def test_constant_over_the_element_cap_is_refused(plain, registered, tmp_path):
    cap = DEFAULT.max_constant_elements
    layer = hostile.call_layer("add", "Add", {}, [[hostile.tensor_ref("x", [None, 4]), hostile.numpy_constant([[0] * 1024] * (cap // 1024 + 1), "float64")]])
    path = with_layer(plain, tmp_path, "bigconst", "h5", layer)  # (in a .keras, the zeros trip the archive's ratio check first)
    assert refused(path, registered).endswith(
        f"at $.config.layers[2].inbound_nodes[0].args[0][1].config.value: a constant of more than {cap:,} elements")


def test_plain_constants_pass(plain, registered, tmp_path):
    layer = hostile.call_layer("add", "Add", {}, [[hostile.tensor_ref("x", [None, 4]), hostile.numpy_constant([1, 2, 3, 4], "float32")]])
    result = scan(with_layer(plain, tmp_path, "okconst", "keras", layer), registered=registered)
    assert result.risks == [] and result.custom_classes == []


# -- 3. shapes ----------------------------------------------------------------------------------------
def _input_width(width):
    def edit(config):
        config["config"]["layers"][0]["config"]["batch_shape"] = [None, width]
        return config
    return edit


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_a_tensor_reference_that_lies_about_its_shape_is_refused(fmt, plain, registered, tmp_path):
    # The input is 70,000 wide; the Dense's call declares [null, 4], so a scan trusting it estimated 20,000 x 4
    # weights where Keras builds 70,000 x 20,000 (5.6 GB). Keras never reads the declared shape.
    base = hostile.edit_config(plain[fmt], tmp_path / f"wide.{fmt}", _input_width(70_000))
    layer = hostile.call_layer("big", "Dense", {"units": 20_000}, [hostile.tensor_ref("x", [None, 4])])
    path = hostile.with_layer(base, tmp_path / f"lie.{fmt}", layer)
    reason = refused(path, registered)
    assert reason.startswith(f"{path.name}: {PART[fmt]} at $.config.layers[1].inbound_nodes[0].args[0]: the tensor reference "
                             f"declares shape [null, 4], but layer 'x' outputs [null, 70000]: a shape that lies"), reason


def test_the_weight_estimate_follows_real_shapes_through_the_graph(plain, registered, tmp_path):
    # Input 4 wide -> Dense(30000) -> Dense(30000): the second kernel is 30000 x 30000 = 900 M weights; the
    # second call declares nothing (legacy layout), so only the followed shape shows it
    layers = [hostile.call_layer("wide", "Dense", {"units": 30_000}, [hostile.tensor_ref("x", [None, 4])]),
              {**hostile.call_layer("wider", "Dense", {"units": 30_000}, []), "inbound_nodes": [[["wide", 0, 0, {}]]]}]
    def edit(config):
        config["config"]["layers"].extend(layers)
        return config
    path = hostile.edit_config(plain["keras"], tmp_path / "chain.keras", edit)
    assert "its layers declare 900," in refused(path, registered)


@pytest.mark.parametrize("where", ["input", "tensor", "build"])
def test_a_declared_shape_too_large_is_refused(where, plain, registered, tmp_path):
    huge = [None, 100_000, 100_000]
    if where == "input":
        path = hostile.edit_config(plain["keras"], tmp_path / "huge.keras", _input_width(None))
        path = hostile.edit_config(path, tmp_path / "huge2.keras", lambda c: (c["config"]["layers"][0]["config"].update(batch_shape=huge), c)[1])
        expected = "at $.config.layers[0].config.batch_shape: a declared shape [null, 100000, 100000] of 10,000,000,000 elements"
    elif where == "tensor":
        path = with_layer(plain, tmp_path, "huge", "keras", hostile.call_layer("d", "Dense", {"units": 2}, [hostile.tensor_ref("x", huge)]))
        expected = "at $.config.layers[2].inbound_nodes[0].args[0].config.shape: a declared shape [null, 100000, 100000]"
    else:
        path = with_layer(plain, tmp_path, "huge", "keras", hostile.call_layer("d", "Dense", {"units": 2}, [hostile.tensor_ref("x", [None, 4])],
                                                                             build_config={"input_shape": huge}))
        expected = "at $.config.layers[2].build_config.input_shape: a declared shape [null, 100000, 100000]"
    assert expected in refused(path, registered)


# -- 4. weights ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_einsum_dense_weights_are_counted(fmt, plain, registered, tmp_path):
    layer = hostile.call_layer("e", "EinsumDense", {"equation": "ab,bcd->acd", "output_shape": [40_000, 40_000], "bias_axes": None},
                               [hostile.tensor_ref("x", [None, 4])])
    path = with_layer(plain, tmp_path, "einsum", fmt, layer)
    assert refused(path, registered) == (f"{path.name}: {PART[fmt]}: its layers declare 6,400,000,010 weights, over the "
                                         f"200,000,000 limit; raise it with --max-params if you trust the file")


@pytest.mark.parametrize("form", sorted(LSTM_FORMS))
def test_registered_lstm_weights_are_counted(form, plain, registered, tmp_path):
    layer = hostile.lstm_carrying(hostile.tensor_ref("x", [None, 4]), **LSTM_FORMS[form])
    layer["config"]["units"] = 20_000
    path = with_layer(plain, tmp_path, f"lstm_{form}", "keras", layer)
    assert "its layers declare 1,600,400,010 weights, over the 200,000,000 limit" in refused(path, registered)


def test_depthwise_multiplier_and_channels_first_are_counted(plain, registered, tmp_path):
    layer = hostile.call_layer("dw", "DepthwiseConv2D", {"kernel_size": [3, 3], "depth_multiplier": 10_000_000},
                               [hostile.tensor_ref("x", [None, 4])], module=COMPAT, registered_name="DepthwiseConv2D")
    path = with_layer(plain, tmp_path, "dw", "keras", layer)
    assert "its layers declare 400,000,010 weights" in refused(path, registered)
    layer = hostile.call_layer("c", "Conv2D", {"filters": 10_000, "kernel_size": [3, 3], "data_format": "channels_first"},
                               [hostile.tensor_ref("x", [None, 4])], build_config={"input_shape": [None, 4000, 8, 8]})
    path = with_layer(plain, tmp_path, "cf", "keras", layer)
    assert "its layers declare 360,010,010 weights" in refused(path, registered)


# -- 5. chunked name lists ----------------------------------------------------------------------------
def test_chunked_weight_names_are_checked_for_duplicates(plain, registered, tmp_path):
    path = tmp_path / "chunks.h5"
    path.write_bytes(plain["h5"].read_bytes())
    hostile.chunk_names(path, "model_weights/dense", "weight_names", ["dense/kernel"] * 1000, chunks=4)
    assert refused(path, registered) == ("chunks.h5: group /model_weights/dense: weight_names0, weight_names1... lists "
                                         "'dense/kernel' more than once (one dataset loaded many times)")


def test_chunked_layer_names_are_checked_for_duplicates(plain, registered, tmp_path):
    path = tmp_path / "layers.h5"
    path.write_bytes(plain["h5"].read_bytes())
    hostile.chunk_names(path, "model_weights", "layer_names", ["x"] + ["dense"] * 500)
    assert refused(path, registered) == ("layers.h5: group /model_weights: layer_names0, layer_names1... lists "
                                         "'dense' more than once (one group loaded many times)")


def test_chunked_names_without_duplicates_pass(plain, registered, tmp_path):
    path = tmp_path / "okchunks.h5"
    path.write_bytes(plain["h5"].read_bytes())
    hostile.chunk_names(path, "model_weights/dense", "weight_names", ["dense/kernel", "dense/bias"])
    assert scan(path, registered=registered).custom_classes == []


# -- 6. zip64 -----------------------------------------------------------------------------------------
def test_a_zip64_record_that_disagrees_with_the_classic_one_is_refused(plain, registered, tmp_path):
    path = hostile.zip64_lie(plain["keras"], tmp_path / "zip64.keras", 5_000_000)
    import zipfile

    with pytest.raises(zipfile.BadZipFile):  # zipfile believes the zip64 record: 5 M entries it tries to read
        zipfile.ZipFile(path)
    assert refused(path, registered) == ("zip64.keras: the archive's zip64 end record says entry count 5,000,000, its classic "
                                         "end record 3: an ambiguous archive, refused before reading its directory")


# -- 7. the whole archive ---------------------------------------------------------------------------
def test_archive_inflating_past_the_total_cap_is_refused(plain, registered, tmp_path):
    # 3,000 entries of 1 MiB zeros, ~1 KB each deflated (each under the per-entry ratio check): Keras
    # extracts them all, 3 GB of disk per load
    path = hostile.zeros_archive(plain["keras"], tmp_path / "zeros.keras", 3000)
    assert path.stat().st_size < 8 << 20
    cap = DEFAULT.archive_bytes()
    assert refused(path, registered).startswith(
        f"zeros.keras: its 3,003 archive entries inflate to 2.9 GiB together, over the {cap / (1 << 20):.1f} MiB limit")


def test_archive_cap_follows_max_params(plain, registered, tmp_path):
    path = hostile.zeros_archive(plain["keras"], tmp_path / "zeros.keras", 150)
    assert scan(path, registered=registered).custom_classes == []  # 150 MiB: under the default cap
    limits = dataclasses.replace(DEFAULT, max_params=1_000_000)  # 4 MB of weights + 16 MiB + 32 MiB + 64 MiB
    assert "over the 115.8 MiB limit" in refused(path, registered, limits=limits)

"""Every loading path goes through the one pre-scan (diagnostics.safety.scan): the notebook API with
a path, dashboard uploads (jobs.save_upload + jobs.start, as the Run page does), and a worker loading
a companion model. The gallery gadget is refused on each, and its canary never appears."""

from __future__ import annotations

import pytest

from diagnostics import DiagnosisError, ExitCode, diagnose

from . import hostile


@pytest.fixture
def gadget(plain, tmp_path):
    canary = tmp_path / "canary.png"
    path = hostile.with_layer(plain["keras"], tmp_path / "gadget.keras", hostile.plot_gallery_gadget(canary))
    return path, canary


def test_notebook_api_with_a_path(gadget, tmp_path):
    path, canary = gadget
    with pytest.raises(DiagnosisError) as e:
        diagnose(path, out_dir=tmp_path / "out")
    assert e.value.exit_code == ExitCode.MODEL_REFUSED
    assert "gadget.keras: config.json at $.config.layers[2]: operation class keras.src.ops.core.Switch" in str(e.value)
    assert not canary.exists()


def test_dashboard_upload(gadget, tmp_path):
    from diagnostics_dashboard import jobs
    from diagnostics._runner import RunConfig

    path, canary = gadget
    saved = jobs.save_upload(path.read_bytes(), "upload.keras", tmp_path, "model")
    job = jobs.start(RunConfig(model_path=str(saved), out_dir=tmp_path / "out"), "upload", {})
    job.thread.join(120)
    assert job.outcome is not None and job.outcome.exit_code == ExitCode.MODEL_REFUSED, (job.outcome, job.error)
    assert "upload.keras: config.json at $.config.layers[2]: operation class" in job.outcome.message
    assert not canary.exists()


def test_companion_loaded_by_a_worker_is_scanned(gadget, tmp_path):
    from diagnostics._plugin_manager import PluginHost
    from diagnostics.safety import ModelRefused
    from diagnostics._worker import Job, WorkerState, _companion_loader

    path, canary = gadget
    state = WorkerState("tensorflow", set())
    state.host = PluginHost()
    job = Job(analyzer="x", model_path=str(tmp_path / "main.keras"), data_path=None, artifact_dir=str(tmp_path),
              metadata={"companions": {"discriminator": path.name}})
    with pytest.raises(ModelRefused, match=r"gadget.keras: config.json at \$.config.layers\[2\]: operation class"):
        _companion_loader(job, state)("discriminator")
    assert not canary.exists()


def test_gan_companion_named_by_option_is_scanned(gadget):
    from diagnostics_plugins.health_gan import _load

    path, canary = gadget

    class FakeContext:
        options = {"classifier": str(path)}
        metadata: dict = {}

    model, why = _load(FakeContext(), "classifier")
    assert model is None and "gadget.keras: config.json at $.config.layers[2]: operation class" in why
    assert not canary.exists()


def test_a_file_changed_after_the_scan_is_refused(plain):
    from diagnostics import load_checked
    from diagnostics.safety import ModelRefused

    with pytest.raises(ModelRefused, match="plain.keras changed between the pre-scan and loading: refused"):
        load_checked(plain["keras"], expect_sha256="0" * 64)


def test_hdf5_probe_past_its_deadline_is_killed_and_refused(plain):
    from diagnostics._limits import LoadLimits
    from diagnostics.safety import ModelRefused, scan

    with pytest.raises(ModelRefused, match=r"plain.h5: reading it as HDF5 did not finish within 0.01 s"):
        scan(plain["h5"], limits=LoadLimits(h5_scan_timeout_s=0.01))

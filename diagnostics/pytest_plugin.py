"""The pytest plugin (entry point ``pytest11``): a ``diagnose`` fixture for a model's own test suite.

::

    def test_model_is_healthy(diagnose):
        report = diagnose("model.keras", data="val.npz", only=("health.gradients", "weights"))
        report.assert_ok(fail_on="warning", allow=["explain.gradients.saliency.*"])

The fixture is opt-in: nothing runs, and nothing heavier than this module is imported, unless a test
asks for it. ``diagnose(...)`` takes the arguments of :func:`diagnostics.diagnose` and writes the
report under the test's temporary directory (its path is in the failure message).

``assert_ok``'s ``allow`` globs match finding codes as :func:`diagnostics.codes.matches` does: a
suite written before the codes were renamed (``allow=["gradients.vanishing"]``) keeps passing for one
release, and pytest's warnings summary names the new code to write (a ``DeprecationWarning``).
"""

from __future__ import annotations

import pytest


@pytest.fixture
def diagnose(tmp_path):
    """``diagnose(model, data=None, **kwargs) -> Report``: :func:`diagnostics.diagnose`, reports under ``tmp_path``."""
    from diagnostics.api import diagnose as run

    count = 0

    def diagnose_(model, data=None, **kwargs):
        nonlocal count
        count += 1
        kwargs.setdefault("out_dir", tmp_path / f"diagnose-{count}")
        return run(model, data, **kwargs)

    return diagnose_

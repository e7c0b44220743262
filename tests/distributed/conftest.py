"""Ray tests use the real local Ray instance of tests/conftest.py (``ray_address``): 2 CPUs, no dashboard,
loopback only, started once per test session, reached in-process and from the real ``diagnose`` CLI
through ``--ray-address``, exactly as a user joins a cluster.
"""

from diagnostics.report import strip_timings


def comparable(report: dict) -> dict:
    """A report dict to compare across executors: no timings, and no ``environment.sandbox``, the one allowed
    difference (a Ray actor's worker is still single-threaded when it confines itself, so it also gets a network
    namespace; a local worker relies on seccomp and Landlock for the network), checked to be confined."""
    sandbox = report["environment"].get("sandbox") or {}
    assert sandbox and all(v.startswith("on: files landlock ABI ") for v in sandbox.values()), sandbox
    return strip_timings({**report, "environment": {k: v for k, v in report["environment"].items() if k != "sandbox"}})

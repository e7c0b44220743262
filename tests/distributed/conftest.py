"""A real local Ray instance (2 CPUs, no dashboard, loopback only), started once per test session.

Tests reach it two ways: in-process (RayExecutor finds Ray already initialised) and from the real
``diagnose`` CLI through ``--ray-address``, exactly as a user joins a cluster.
"""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_address():
    from diagnostics.ray_executor import connect

    started = connect(num_cpus=2)  # before this process imports ray: it decides the addresses at import
    import ray

    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:"), f"the test instance must listen on loopback only, got {address}"
    yield address
    if started:
        ray.shutdown()

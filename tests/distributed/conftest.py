"""Ray tests use the real local Ray instance of tests/conftest.py (``ray_address``): 2 CPUs, no dashboard,
loopback only, started once per test session, reached in-process and from the real ``diagnose`` CLI
through ``--ray-address``, exactly as a user joins a cluster.
"""

"""What the memory tests share."""

from __future__ import annotations

import os

import pytest

from diagnostics import memory


@pytest.fixture
def fresh_memory_limit():
    """No memory limit and no notes before and after the test: the planner keeps both per process."""
    memory.set_limit(None)
    memory.take_notes()
    yield
    memory.set_limit(None)
    os.environ.pop(memory.LIMIT_ENV, None)
    memory.take_notes()

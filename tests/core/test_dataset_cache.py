"""Named datasets are generated once per machine and cache key (diagnostics.dataset_cache)."""

from __future__ import annotations

import numpy as np
import pytest

from diagnostics import dataset_cache
from diagnostics._data import load_dataset

CALLS: list[int] = []


def _squares(seed: int) -> dict:
    CALLS.append(seed)
    x = np.arange(12, dtype=np.float32).reshape(6, 2) + seed
    return {"x_train": x[:4], "y_train": np.array([0, 1, 0, 1]), "x_val": x[4:], "y_val": np.array([1, 0]),
            "mask_val": np.ones((2, 2), bool)}


def _with_objects(seed: int) -> dict:
    CALLS.append(seed)
    return {"x_val": np.zeros((2, 3), np.float32), "names": np.array([{"a": 1}, None], dtype=object)}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DIAGNOSTICS_CACHE_DIR", str(tmp_path))
    CALLS.clear()
    return tmp_path / "datasets"


def test_a_dataset_is_generated_once_then_read_from_the_cache(cache):
    first = load_dataset("squares", 3, {"squares": _squares})
    again = load_dataset("squares", 3, {"squares": _squares})
    assert CALLS == [3]  # the second came from the cache
    assert len(list(cache.glob("squares-3-*.npz"))) == 1 and not list(cache.glob("*.partial.npz"))
    for a, b in ((first.x_train, again.x_train), (first.y_val, again.y_val), (first.extras["mask_val"], again.extras["mask_val"])):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    assert again.source == first.source == "dataset squares (seed 3)"
    load_dataset("squares", 4, {"squares": _squares})  # another seed, another entry
    assert CALLS == [3, 4]


def test_an_unreadable_copy_is_generated_again(cache):
    load_dataset("squares", 0, {"squares": _squares})
    (path,) = cache.glob("squares-0-*.npz")
    path.write_bytes(b"not a zip file")
    data = load_dataset("squares", 0, {"squares": _squares})
    assert CALLS == [0, 0] and data.x_val.tolist() == [[8.0, 9.0], [10.0, 11.0]]
    assert path.read_bytes()[:2] == b"PK"  # replaced by a whole copy


def test_the_cache_can_be_turned_off_and_objects_are_never_cached(cache, monkeypatch):
    load_dataset("objects", 0, {"objects": _with_objects})
    load_dataset("objects", 0, {"objects": _with_objects})
    assert CALLS == [0, 0] and not list(cache.glob("objects-*"))  # pickled objects are refused, so not kept
    monkeypatch.setenv("DIAGNOSTICS_CACHE_DIR", "off")
    assert dataset_cache.cache_dir() is None
    load_dataset("squares", 1, {"squares": _squares})
    load_dataset("squares", 1, {"squares": _squares})
    assert CALLS == [0, 0, 1, 1]

"""Data files and named datasets, validated against the model before any analyzer runs.

``--data FILE.npz`` holds arrays under the keys ``x_train``, ``y_train``, ``x_val``, ``y_val``
(any subset with at least one x), or ``x`` and ``y`` (taken as the evaluation split). Other
keys are kept as extras (e.g. ``mask_val``, a ground-truth mask). Pickled objects are refused.

A model with several inputs gets one array per input, named ``<split>.<input name>``
(``x_val.image``, ``x_val.stats``, ``x_train.image``...); a model with several outputs may get one
label array per output the same way (``y_val.class``, ``y_val.box``). Such a split becomes a dict
keyed by name, and each input is validated against the model's input of that name.
``--data FILE.csv`` is for tabular models: a header row, numeric columns, and the label in a
column named ``label``, ``target``, ``y`` or ``class`` (or the one given by ``label_column``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .analyzer import Data, ModelInfo

SPLITS = ("x_train", "y_train", "x_val", "y_val")
LABEL_COLUMNS = ("label", "target", "y", "class")
SIDECAR_SUFFIX = ".meta.json"


class DataRefused(Exception):
    """The data cannot be used with this model; ``str(e)`` is a one-line reason."""


def load_file(path: str | Path, label_column: str | None = None) -> Data:
    p = Path(path)
    if not p.is_file():
        raise DataRefused(f"no such data file: {path}")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return _load_npz(p)
    if suffix == ".csv":
        return _load_csv(p, label_column)
    raise DataRefused(f"{p.name}: unsupported data format {suffix or '(none)'!r}; use .npz (x_train, y_train, x_val, y_val) or .csv")


def _load_npz(p: Path) -> Data:
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise DataRefused(f"{p.name} holds pickled Python objects, which are refused: save plain numeric arrays") from None
        raise DataRefused(f"{p.name} is not a readable .npz file: {e}") from None
    except (OSError, EOFError) as e:
        raise DataRefused(f"{p.name} is not a readable .npz file: {e}") from None
    return from_arrays(arrays, source=p.name)


def from_arrays(arrays: Mapping[str, Any], source: str) -> Data:
    arrays = {k: (v if isinstance(v, dict) else np.asarray(v)) for k, v in arrays.items()}
    for key in [k for k in arrays if "." in k and k.split(".", 1)[0] in (*SPLITS, "x", "y")]:
        split, name = key.split(".", 1)
        if split in arrays and not isinstance(arrays[split], dict):
            raise DataRefused(f"{source} has both {split!r} and {key!r}: give one array per input ({split}.NAME) or one array, not both")
        arrays.setdefault(split, {})[name] = arrays.pop(key)
    if "x" in arrays and "x_val" not in arrays:
        arrays["x_val"] = arrays.pop("x")
        if "y" in arrays:
            arrays["y_val"] = arrays.pop("y")
    if arrays.get("x_val") is None and arrays.get("x_train") is None:
        raise DataRefused(f"{source} has no inputs: expected keys x_train/y_train/x_val/y_val or x/y, found {sorted(arrays)}")
    extras = {k: v for k, v in arrays.items() if k not in SPLITS}
    return Data(**{k: arrays.get(k) for k in SPLITS}, extras=extras, source=source)


def _load_csv(p: Path, label_column: str | None) -> Data:
    import csv

    with p.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if len(rows) < 2:
        raise DataRefused(f"{p.name} has no data rows")
    header, body = rows[0], rows[1:]
    candidates = [label_column] if label_column else list(LABEL_COLUMNS)
    label_idx = next((header.index(c) for c in candidates if c in header), None)
    if label_column and label_idx is None:
        raise DataRefused(f"{p.name} has no column {label_column!r}; columns are {header}")
    try:
        table = np.array([[float(v) for v in row] for row in body], dtype=np.float64)
    except ValueError as e:
        raise DataRefused(f"{p.name}: every value must be numeric ({e})") from None
    if label_idx is None:
        return Data(x_val=table.astype(np.float32), source=p.name, extras={"feature_names": np.array(header)})
    features = [i for i in range(table.shape[1]) if i != label_idx]
    y = table[:, label_idx]
    y = y.astype(np.int64) if np.all(y == np.round(y)) else y.astype(np.float32)
    names = np.array([header[i] for i in features])
    return Data(x_val=table[:, features].astype(np.float32), y_val=y, source=p.name, extras={"feature_names": names})


def save_npz(data: Data, path: Path) -> None:
    arrays = {}
    for k in SPLITS:
        v = getattr(data, k)
        if isinstance(v, dict):
            arrays.update({f"{k}.{name}": a for name, a in v.items()})
        elif v is not None:
            arrays[k] = v
    arrays.update({k: v for k, v in data.extras.items() if v is not None})
    np.savez(path, **arrays)


def find_sidecar(model_path: str | Path) -> Path | None:
    """``models/cnn.h5`` -> ``models/cnn.meta.json`` when it exists."""
    p = Path(model_path)
    candidate = p.with_name(p.name[: -len(p.suffix)] + SIDECAR_SUFFIX) if p.suffix else None
    return candidate if candidate is not None and candidate.is_file() else None


def read_sidecar(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataRefused(f"{path.name}: unreadable sidecar metadata ({e})") from None
    if not isinstance(meta, dict):
        raise DataRefused(f"{path.name}: sidecar metadata must be a JSON object")
    return meta


def load_dataset(name: str, seed: int, datasets: Mapping[str, Any]) -> Data:
    if name not in datasets:
        raise DataRefused(f"the model's metadata names dataset {name!r}, which no installed plugin registers (known: {sorted(datasets) or 'none'})")
    from . import dataset_cache

    return dataset_cache.load(name, seed, datasets[name])


# -- validation ------------------------------------------------------------------------------------
def validate_shapes(data: Data, input_shapes: list[list[int | None]], input_names: list[str] | None = None) -> None:
    """The checks of :func:`validate` that need only the input shapes (shape, dtype, NaN/Inf), so they can
    run before the model is loaded, from its config. Several inputs are checked one by one, by name."""
    if len(input_shapes) != 1:
        names = list(input_names or [])
        if len(names) != len(input_shapes):
            raise DataRefused(f"the model has {len(input_shapes)} inputs whose names are unknown; give a single-input model")
        for split in ("train", "val"):
            x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
            if x is None:
                if y is not None:
                    raise DataRefused(f"y_{split} is given without x_{split}")
                continue
            if not isinstance(x, dict):
                keys = ", ".join(f"x_{split}.{n}" for n in names)
                raise DataRefused(f"the model has {len(names)} inputs ({', '.join(names)}): give one array per input "
                                  f"under the keys {keys}")
            missing, unknown = [n for n in names if n not in x], sorted(set(x) - set(names))
            if missing or unknown:
                raise DataRefused(f"x_{split} has inputs {sorted(x)}; the model's inputs are {names}"
                                  + (f" (missing: {', '.join(missing)})" if missing else "")
                                  + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
            counts = {n: len(x[n]) for n in names}
            if len(set(counts.values())) != 1:
                raise DataRefused(f"the inputs of x_{split} hold different numbers of samples: {counts}")
            for name, shape in zip(names, input_shapes):
                _check_array(x[name], shape, f"x_{split}.{name}")
        return
    for split in ("train", "val"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if x is None:
            if y is not None:
                raise DataRefused(f"y_{split} is given without x_{split}")
            continue
        if isinstance(x, dict):
            raise DataRefused(f"x_{split} holds several inputs ({', '.join(sorted(x))}); the model has one: give x_{split}")
        _check_array(x, input_shapes[0], f"x_{split}")


def _check_array(x: np.ndarray, expected: list[int | None], label: str) -> None:
    want = "(" + ", ".join("None" if d is None else str(d) for d in expected) + ")"
    got = "(n, " + ", ".join(str(d) for d in x.shape[1:]) + ")" if x.ndim > 1 else f"(n,)"
    if x.ndim != len(expected) or any(e is not None and e != g for e, g in zip(expected[1:], x.shape[1:])):
        raise DataRefused(f"{label} has shape {got}; the model expects {want}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataRefused(f"{label} has dtype {x.dtype}; the model needs numbers")
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise DataRefused(f"{label} contains {bad} NaN or Inf value(s); clean the data first")


def prevalidate(data: Data, declared: list[list[int | None]] | None, kind_hint: str | None) -> None:
    """The part of :func:`validate` that can run from the model config alone, before loading.

    Only when the data have the rank of the declared input: a rank mismatch may be a generator's
    real samples (compared with its outputs), which only the loaded model can tell.
    """
    if not declared or kind_hint == "generator" or len(declared) != 1:
        return
    xs = [x for x in (data.x_train, data.x_val) if x is not None]
    if any(isinstance(x, dict) for x in xs):
        return  # several inputs for a one-input model: validate() says so with the loaded model's names
    if xs and all(x.ndim == len(declared[0]) for x in xs):
        validate_shapes(data, declared)


def validate(data: Data, info: ModelInfo) -> None:
    """Refuse data that does not fit the model, with a message that says what and how.

    For a generator the data are real samples, compared with what it generates: they must have the
    shape of its output, and their labels (if any) are not the generator's to check.
    """
    if info.kind == "generator":
        try:
            validate_shapes(data, info.output_shapes[:1])
        except DataRefused as e:
            raise DataRefused(f"{e} (for a generator, the data are real samples shaped like its output)") from None
        return
    validate_shapes(data, info.input_shapes, getattr(info, "input_names", None))
    for split in ("train", "val"):
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        if x is None:
            continue
        if isinstance(x, dict):
            n = len(next(iter(x.values())))
        else:
            n = len(x)
            if info.kind == "token" and not np.issubdtype(x.dtype, np.integer):
                if not np.all(x == np.round(x)):
                    raise DataRefused(f"x_{split} must hold integer token ids for this token model; got non-integer values")
        if isinstance(y, dict):
            _validate_output_labels(y, n, split, info)
        elif y is not None:
            _validate_labels(y, n, split, info)


def _validate_output_labels(y: dict, n: int, split: str, info: ModelInfo) -> None:
    """Labels given per output (``y_val.<output name>``): each names an output and has one row per sample."""
    names = list(getattr(info, "output_names", None) or [])
    unknown = sorted(set(y) - set(names))
    if unknown:
        raise DataRefused(f"y_{split} has labels for {', '.join(unknown)}, which the model does not output (its outputs: {', '.join(names)})")
    for name, labels in y.items():
        if len(labels) != n:
            raise DataRefused(f"y_{split}.{name} has {len(labels)} labels for {n} samples in x_{split}")
        if np.issubdtype(labels.dtype, np.floating) and not np.all(np.isfinite(labels)):
            raise DataRefused(f"y_{split}.{name} contains NaN or Inf values")


def _validate_labels(y: np.ndarray, n: int, split: str, info: ModelInfo) -> None:
    if len(y) != n:
        raise DataRefused(f"y_{split} has {len(y)} labels for {n} samples in x_{split}")
    if np.issubdtype(y.dtype, np.floating) and not np.all(np.isfinite(y)):
        raise DataRefused(f"y_{split} contains NaN or Inf values")
    out = info.output_shapes[0] if info.output_shapes else [None]
    width = out[-1] if len(out) >= 2 else 1
    act = info.output_activation
    if len(out) != 2 or act not in ("softmax", "sigmoid") or width is None:
        return  # regression or structured output: nothing more to check
    if y.ndim == 2 and y.shape[1] == width and width > 1:
        return  # one-hot
    flat = y.reshape(len(y), -1)
    if flat.shape[1] != 1 and not (act == "sigmoid" and flat.shape[1] == width):
        raise DataRefused(f"y_{split} has shape {tuple(y.shape)}; the model outputs {width} value(s) per sample")
    if act == "sigmoid" and width == 1:
        if not np.all(np.isin(flat, (0, 1))):
            raise DataRefused(f"y_{split} must hold 0/1 labels for this sigmoid output; found values {np.unique(flat)[:5].tolist()}")
        return
    if not np.all(flat == np.round(flat)):
        raise DataRefused(f"y_{split} must hold integer class ids; found non-integer values")
    lo, hi = int(flat.min()), int(flat.max())
    if lo < 0 or hi >= width:
        raise DataRefused(f"y_{split} holds labels in [{lo}, {hi}]; the model has {width} classes (0..{width - 1})")

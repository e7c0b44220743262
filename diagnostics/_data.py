"""Data files and named datasets, validated against the model before any analyzer runs.

``--data FILE.npz`` holds arrays under the keys ``x_train``, ``y_train``, ``x_val``, ``y_val``
(any subset with at least one x), or ``x`` and ``y`` (taken as the evaluation split). Other
keys are kept as extras (e.g. ``mask_val``, a ground-truth mask). Pickled objects, object, structured and
sub-array dtypes are refused, and the zip directory and every array's header are read, and bounded
(:class:`diagnostics._limits.DataLimits`), before any array is.

A model with several inputs gets one array per input, named ``<split>.<input name>``
(``x_val.image``, ``x_val.stats``, ``x_train.image``...); a model with several outputs may get one
label array per output the same way (``y_val.class``, ``y_val.box``). Such a split becomes a dict
keyed by name, and each input is validated against the model's input of that name.
``--data FILE.csv`` is for tabular models: a header row, numeric columns, and the label in a
column named ``label``, ``target``, ``y`` or ``class`` (or the one given by ``label_column``), in UTF-8;
its size and the length of a cell are bounded before it is parsed, and it is parsed row by row into one
float array (a list of Python strings per cell took 2.3 GB for a 50 MB file).

A model's sidecar (``<model>.meta.json``) is a plain file beside the model (a link out of the model's
folder is not followed), size- and depth-bounded before it is used, and its fields that the run itself
reads (``dataset``, ``split_seed``, ``model_kind``, ``history``) are type-checked.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .analyzer import Data, ModelInfo
from ._limits import DATA_DEFAULT, DataLimits
from ._zipdir import ZipDirectoryError, read_end_record

SPLITS = ("x_train", "y_train", "x_val", "y_val")
LABEL_COLUMNS = ("label", "target", "y", "class")
SIDECAR_SUFFIX = ".meta.json"


class DataRefused(Exception):
    """The data cannot be used with this model; ``str(e)`` is a one-line reason."""


def load_file(path: str | Path, label_column: str | None = None, limits: DataLimits = DATA_DEFAULT) -> Data:
    p = Path(path)
    if not p.is_file():
        raise DataRefused(f"no such data file: {path}")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return _load_npz(p, limits)
    if suffix == ".csv":
        return _load_csv(p, label_column, limits)
    raise DataRefused(f"{p.name}: unsupported data format {suffix or '(none)'!r}; use .npz (x_train, y_train, x_val, y_val) or .csv")


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def _npz_directory(p: Path, limits: DataLimits) -> None:
    """Bound the member count and the directory's size from the end record, read by hand
    (:mod:`diagnostics._zipdir`), *before* :mod:`zipfile` reads the directory into memory (a zip64 record
    can declare millions)."""
    try:
        end = read_end_record(p)
    except ZipDirectoryError as e:
        why = "it is not a zip archive (truncated or corrupt?)" if e.not_zip else f"its {e}"
        raise DataRefused(f"{p.name} is not a readable .npz file: {why}") from None
    if end.multi_disk:
        raise DataRefused(f"{p.name} is a multi-part zip archive, not an .npz file")
    if end.entries > limits.max_npz_members:
        raise DataRefused(f"{p.name} holds {end.entries:,} members, over the limit of {limits.max_npz_members:,} arrays")
    if end.directory_bytes > limits.max_npz_directory_bytes:
        raise DataRefused(f"{p.name}: its zip directory is {_human(end.directory_bytes)}, over the "
                          f"{_human(limits.max_npz_directory_bytes)} limit")


def _check_npz(p: Path, limits: DataLimits) -> None:
    """Every member a plain numeric ``.npy`` whose header's shape and dtype account for exactly its stored
    bytes, and the total bounded, all from the zip directory and the ``.npy`` headers (numpy allocates an
    array from its header's shape before reading a byte of it)."""
    import zipfile

    size = p.stat().st_size
    _npz_directory(p, limits)
    total = 0
    try:
        with zipfile.ZipFile(p) as zf:
            infos = zf.infolist()
            declared = sum(i.file_size for i in infos)
            if declared > limits.max_npz_bytes:
                raise DataRefused(f"{p.name} declares {_human(declared)} of arrays, over the {_human(limits.max_npz_bytes)} "
                                  f"limit on a data file: give a smaller sample (a few thousand rows are plenty)")
            if declared > limits.npz_ratio_floor and declared > limits.max_npz_ratio * max(size, 1):
                raise DataRefused(f"{p.name} declares {_human(declared)} of arrays in a {_human(size)} file, over "
                                  f"{limits.max_npz_ratio} times its size: a compression bomb, not data")
            for info in infos:
                label = f"{p.name}: member {info.filename!r}"
                if not info.filename.endswith(".npy") or info.is_dir():
                    raise DataRefused(f"{label} is not a .npy array: an .npz holds arrays only")
                with zf.open(info) as fh:
                    try:
                        version = np.lib.format.read_magic(fh)
                        if version == (1, 0):
                            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
                        elif version in ((2, 0), (3, 0)):
                            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
                        else:
                            raise ValueError(f"unsupported .npy version {version}")
                        header_len = fh.tell()
                    except (ValueError, EOFError, OSError, SyntaxError) as e:
                        raise DataRefused(f"{label} is not a readable .npy array ({str(e).splitlines()[0][:200] if str(e) else type(e).__name__})") from None
                if dtype.hasobject:
                    raise DataRefused(f"{p.name} holds pickled Python objects, which are refused: save plain numeric "
                                      f"arrays (member {info.filename!r})")
                if dtype.names is not None or dtype.subdtype is not None or dtype.kind not in "biufcUS":
                    raise DataRefused(f"{label} has dtype {dtype.str if dtype.names is None else 'structured'}: save plain "
                                      f"numeric arrays")
                count = 1
                for d in shape:
                    count *= int(d)
                if count * dtype.itemsize != info.file_size - header_len:
                    raise DataRefused(f"{label} declares shape {tuple(shape)} of {dtype.str} ({_human(count * dtype.itemsize)}) but "
                                      f"stores {_human(max(info.file_size - header_len, 0))}: truncated or forged")
                total += count * dtype.itemsize
    except zipfile.BadZipFile as e:
        raise DataRefused(f"{p.name} is not a readable .npz file: {e}") from None
    except (OSError, EOFError, RuntimeError, NotImplementedError) as e:  # encrypted or unknown compression, I/O
        raise DataRefused(f"{p.name} is not a readable .npz file: {str(e)[:200] or type(e).__name__}") from None


def _load_npz(p: Path, limits: DataLimits = DATA_DEFAULT) -> Data:
    _check_npz(p, limits)
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise DataRefused(f"{p.name} holds pickled Python objects, which are refused: save plain numeric arrays") from None
        raise DataRefused(f"{p.name} is not a readable .npz file: {e}") from None
    except (OSError, EOFError, RuntimeError, NotImplementedError) as e:
        raise DataRefused(f"{p.name} is not a readable .npz file: {str(e)[:200] or type(e).__name__}") from None
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


def _load_csv(p: Path, label_column: str | None, limits: DataLimits = DATA_DEFAULT) -> Data:
    import array
    import csv

    size = p.stat().st_size
    if size > limits.max_csv_bytes:
        raise DataRefused(f"{p.name} is {_human(size)}, over the {_human(limits.max_csv_bytes)} limit on a CSV data file: "
                          f"give a smaller sample, or save the arrays as .npz")
    cap = limits.max_csv_field_chars
    values = array.array("d")  # one flat float64 buffer, filled row by row
    header: list[str] | None = None
    line = 0
    reader = None
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            for row in reader:
                line = reader.line_num
                if not row:
                    continue  # a blank line
                if max(map(len, row)) > cap:
                    raise DataRefused(f"{p.name}, line {line}: a cell of {max(map(len, row)):,} characters, over the "
                                      f"{cap:,}-character limit: values must be numbers")
                if header is None:
                    header = row
                    continue
                if len(row) != len(header):
                    raise DataRefused(f"{p.name}, line {line}: {len(row)} values for {len(header)} columns")
                try:
                    values.extend(float(v) for v in row)
                except ValueError as e:
                    raise DataRefused(f"{p.name}, line {line}: every value must be numeric ({e})") from None
    except UnicodeDecodeError as e:
        raise DataRefused(f"{p.name} is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start}): save it "
                          f"as UTF-8") from None
    except csv.Error as e:
        line = getattr(reader, "line_num", 0) or line + 1
        if "field limit" in str(e):
            raise DataRefused(f"{p.name}, line {line}: a cell over {csv.field_size_limit():,} characters: values must be "
                              f"numbers") from None
        raise DataRefused(f"{p.name}, line {line}: not a readable CSV file ({str(e)[:200]})") from None
    except OSError as e:
        raise DataRefused(f"{p.name}: cannot read it ({e.strerror or e})") from None
    if header is None or not values:
        raise DataRefused(f"{p.name} has no data rows")
    candidates = [label_column] if label_column else list(LABEL_COLUMNS)
    label_idx = next((header.index(c) for c in candidates if c in header), None)
    if label_column and label_idx is None:
        raise DataRefused(f"{p.name} has no column {label_column!r}; columns are {header[:50]}")
    table = np.frombuffer(values, dtype=np.float64).reshape(-1, len(header))
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
    """``models/cnn.h5`` -> ``models/cnn.meta.json`` when it exists. A symbolic link is returned whether or
    not it leads anywhere, so that :func:`read_sidecar` refuses a link out of the folder the same way
    whether its target exists or not (no existence oracle)."""
    p = Path(model_path)
    candidate = p.with_name(p.name[: -len(p.suffix)] + SIDECAR_SUFFIX) if p.suffix else None
    if candidate is None:
        return None
    return candidate if candidate.is_symlink() or candidate.is_file() else None


#: Sidecar fields the run itself reads, with the JSON types each may have (None: absent or null).
#: (``step``/``epoch`` are only hints for a sweep, which falls back to the file name; ``companions`` has
#: its own check in :mod:`diagnostics._companions`.)
_SIDECAR_TYPES: dict[str, tuple[type, ...]] = {"dataset": (str,), "split_seed": (int,), "model_kind": (str,),
                                               "history": (dict,)}
_JSON_NAMES = {str: "a string", int: "an integer", dict: "an object"}


def read_sidecar(path: Path, limits: DataLimits = DATA_DEFAULT) -> dict[str, Any]:
    """The sidecar's JSON object, refused (:class:`DataRefused`, one line naming the file) when it is a link
    out of the model's folder, not a regular file, over ``limits.max_sidecar_bytes``, nested deeper than
    ``limits.max_json_depth``, not a JSON object, or when a field the run reads has the wrong type."""
    path = Path(path)
    name = path.name
    if path.is_symlink():
        # judged on the link alone: the message never depends on whether an outside target exists
        target = Path(os.path.realpath(path))
        if target.parent != Path(os.path.realpath(path.parent)):
            raise DataRefused(f"{name}: the sidecar is a symbolic link out of the model's folder, which is not "
                              f"followed: make it a plain file beside the model")
    cap = limits.max_sidecar_bytes
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO must not block the run
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise DataRefused(f"{name}: the sidecar is not a regular file")
            if st.st_size > cap:
                raise DataRefused(f"{name}: the sidecar is {_human(st.st_size)}, over the {_human(cap)} limit on "
                                  f"sidecar metadata: keep long histories out of it")
            raw = fh.read(cap + 1)
    except OSError as e:
        raise DataRefused(f"{name}: unreadable sidecar metadata ({e.strerror or type(e).__name__})") from None
    if len(raw) > cap:  # it grew after fstat
        raise DataRefused(f"{name}: the sidecar is over the {_human(cap)} limit on sidecar metadata")
    try:
        meta = json.loads(raw.decode("utf-8"))
    except RecursionError:
        meta = None
    except UnicodeDecodeError as e:
        raise DataRefused(f"{name}: unreadable sidecar metadata (not UTF-8: byte 0x{e.object[e.start]:02x} at offset "
                          f"{e.start})") from None
    except ValueError as e:
        raise DataRefused(f"{name}: unreadable sidecar metadata ({str(e).splitlines()[0][:200]})") from None
    if meta is None or _depth_over(meta, limits.max_json_depth):
        raise DataRefused(f"{name}: the sidecar's JSON is nested more than {limits.max_json_depth} levels deep: "
                          f"not sidecar metadata")
    if not isinstance(meta, dict):
        raise DataRefused(f"{name}: sidecar metadata must be a JSON object, not {_json_type(meta)}")
    for key, types in _SIDECAR_TYPES.items():
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, types) or isinstance(value, bool):
            want = " or ".join(_JSON_NAMES[t] for t in types)
            raise DataRefused(f"{name}: {key!r} must be {want}, not {_json_type(value)} ({_shown(value)})")
    seed = meta.get("split_seed")
    if seed is not None and not 0 <= seed < 2 ** 32:
        raise DataRefused(f"{name}: 'split_seed' must be between 0 and 2**32 - 1, not {_shown(seed)}")
    return meta


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` nests containers more than ``limit`` deep (iteratively: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, (dict, list)):
            if depth > limit:
                return True
            stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v))
    return False


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
                raise DataRefused(f"the model has {len(names)} inputs ({', '.join(names)}) and x_{split} is one array of "
                                  f"shape {_shown_shape(x)}: give one array per input under the keys {keys}")
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


def _shown_shape(x: np.ndarray) -> str:
    """An array's shape with the sample axis as ``n``: ``(n, 28, 28)``."""
    return "(n, " + ", ".join(str(d) for d in x.shape[1:]) + ")" if x.ndim > 1 else "(n,)"


def _fits(dims, expected) -> bool:
    return len(dims) == len(expected) and all(e is None or e == d for e, d in zip(expected, dims))


def _shape_fix(shape: tuple, expected: list[int | None], label: str) -> str:
    """How to make an array of ``shape`` fit ``expected`` (both with the sample axis first)."""
    sample, want = list(shape[1:]), list(expected[1:])
    if want and want[-1] == 1 and _fits(sample, want[:-1]):
        return f"add the missing axis of size 1 ({label}[..., np.newaxis])"
    if sample and sample[-1] == 1 and _fits(sample[:-1], want):
        return f"drop the extra axis of size 1 ({label}[..., 0])"
    shown = "(" + ", ".join("any" if d is None else str(d) for d in want) + ("," if len(want) == 1 else "") + ")"
    return f"save {label} with samples of shape {shown}"


def _check_array(x: np.ndarray, expected: list[int | None], label: str) -> None:
    want = "(" + ", ".join("None" if d is None else str(d) for d in expected) + ")"
    if x.ndim != len(expected) or any(e is not None and e != g for e, g in zip(expected[1:], x.shape[1:])):
        raise DataRefused(f"{label} has shape {_shown_shape(x)}; the model expects {want}: "
                          f"{_shape_fix(x.shape, expected, label)}")
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


def precheck(data: Data, declared) -> None:
    """:func:`validate` before any worker starts, against what the model file declares
    (a :class:`diagnostics.modelinfo.DeclaredModel`, read from the config without Keras): the same checks
    and messages, wherever the declaration is unambiguous; the rest is left to :func:`validate` in the worker.
    """
    if declared is None:
        return
    if declared.kind is None:  # perhaps a generator's, whose data are shaped like an output the config hides
        prevalidate(data, [list(s) for s in declared.input_shapes], None)
        return
    if declared.kind == "generator" and declared.first_output_shape is None:
        return
    if declared.output_names is None:  # labels per output need the output names
        data = dataclasses.replace(data, **{k: None for k in ("y_train", "y_val") if isinstance(getattr(data, k), dict)})
    validate(data, declared.as_info())


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
        raise DataRefused(f"y_{split} has shape {tuple(y.shape)}; the model outputs {width} value(s) per sample: give "
                          f"one class id per sample{f', or one-hot rows of width {width}' if act == 'softmax' else ''}")
    if act == "sigmoid" and width == 1:
        if not np.all(np.isin(flat, (0, 1))):
            raise DataRefused(f"y_{split} must hold 0/1 labels for this sigmoid output; found values "
                              f"{np.unique(flat)[:5].tolist()}: map the two classes to 0 and 1")
        return
    if not np.all(flat == np.round(flat)):
        raise DataRefused(f"y_{split} must hold integer class ids; found non-integer values")
    lo, hi = int(flat.min()), int(flat.max())
    if lo < 0 or hi >= width:
        # ids counted from 1 (1..width) are the common slip; anything else is data made for another model
        how = f"subtract {lo} from y_{split}" if lo > 0 and hi - lo < width else "check that the labels are for this model"
        raise DataRefused(f"y_{split} holds labels in [{lo}, {hi}]; the model has {width} classes (0..{width - 1}): "
                          f"give class ids from 0 to {width - 1} ({how})")

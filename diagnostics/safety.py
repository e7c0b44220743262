"""Static pre-scan of a model file: everything is checked before any deserialisation.

Nothing here imports TensorFlow, torch or keras, and nothing executes code from the file. The
scan reads the model config as JSON and walks it recursively (nested sub-models and the compile
config included) for things that would run code or read other files when loaded:

- ``Lambda`` layers and ``__lambda__`` functions (Python bytecode stored in the file),
- functions and classes from modules outside Keras (``{"module": "os", "config": "system"}``),
- ``TorchModuleWrapper`` (pickled torch modules) and ``TFSMLayer`` (loads a SavedModel from a path),
- lookup layers whose vocabulary is a file path.

HDF5 files are checked for external links, external-storage datasets and virtual datasets,
which would make the HDF5 library open other files; zip archives for entry counts, compression
ratios and path traversal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from ._allowlist import BACKEND_OPTIMIZER_MODULE, CODE_LAYERS
from ._limits import DEFAULT as DEFAULT_LIMITS
from ._limits import LoadLimits
from ._zipdir import ZipDirectoryError, read_end_record

DEFAULT_MAX_SIZE = DEFAULT_LIMITS.max_size
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
ZIP_SIGNATURE = b"PK\x03\x04"
ACCEPTED = (".keras", ".h5", ".hdf5")
_KERAS_MODULE = re.compile(r"^(keras|keras_hub|keras_cv|keras_nlp)(\.|$)")
_LOOKUP_LAYERS = {"StringLookup", "IntegerLookup", "TextVectorization"}
_CODE_LAYERS = {
    "Lambda": "Lambda layer (Python bytecode stored in the file)",
    "TorchModuleWrapper": "TorchModuleWrapper (a pickled torch module)",
    "TFSMLayer": "TFSMLayer (loads a TensorFlow SavedModel from a path)",
}


class ModelRefused(Exception):
    """The model file was refused; ``str(e)`` is a one-line reason for the user."""


@dataclasses.dataclass(frozen=True)
class Risk:
    """Something in the file that would execute code or read other files when loaded."""

    what: str
    where: str

    def __str__(self) -> str:
        return f"{self.what} at {self.where}"


@dataclasses.dataclass(frozen=True)
class CustomClass:
    """A class the config names that is neither Keras' own nor registered by a plugin."""

    registered_name: str
    module: str | None
    where: str


@dataclasses.dataclass
class ScanResult:
    path: Path
    format: str  #: "keras" or "h5"
    size: int
    sha256: str
    config: dict[str, Any]
    compile_config: dict[str, Any] | None
    keras_version: str | None
    risks: list[Risk]
    custom_classes: list[CustomClass]

    @property
    def loss(self) -> str | None:
        """The loss named in the compile config, e.g. ``"SparseCategoricalCrossentropy(from_logits=True)"``."""
        return describe_loss(self.compile_config)

    def summary(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "size": self.size, "sha256": self.sha256,
                "keras_version": self.keras_version, "loss": self.loss}


def scan(path: str | Path, *, max_size: int | None = None, registered: Mapping[str, Any] | Iterable[str] = (),
         limits: LoadLimits | None = None) -> ScanResult:
    """Check ``path`` without loading it; raise :class:`ModelRefused` with the reason, or return what was found.

    This is the one pre-scan every loading path calls (CLI, notebook API, dashboard uploads, workers
    loading companions); nothing here imports keras or a framework, and the HDF5 part runs in a
    child process with a deadline. ``registered`` is what plugins registered (``PluginHost.custom_objects``:
    name -> class, function or ``"module:attr"`` import path): a node naming one of those is admitted only
    under the module the plugin's class really lives in, and is walked like any other (its call arguments,
    build config and config); a bare set of names admits a ``"pkg>Name"`` only under the package ``pkg``.
    Risks (code that would run) are returned, not raised: the caller refuses them unless the user passed
    ``--trust``.
    """
    limits = limits or DEFAULT_LIMITS
    if max_size is not None:
        limits = dataclasses.replace(limits, max_size=max_size)
    text = str(path)
    if "://" in text or text.startswith(("hf:", "gs:", "s3:")):
        raise ModelRefused(f"refusing {text!r}: only local .keras and .h5 files are accepted; download it yourself and check where it came from")
    p = Path(text)
    if not p.exists():
        raise ModelRefused(f"no such file: {text}")
    from . import _compat as compat  # Keras 2 forms Keras 3 cannot load, refused with how to convert them

    if p.is_dir():
        compat.refuse_saved_model(p)
        raise ModelRefused(f"{text} is a directory: diagnose needs a .keras or .h5 model file (re-save a SavedModel with model.save('model.keras'))")
    name = p.name.lower()
    if name.endswith(".weights.h5") or name.endswith(".weights.json"):
        raise ModelRefused(f"{p.name} is a weights-only file: diagnose needs a full model saved with model.save('model.keras')")
    if p.suffix.lower() not in ACCEPTED:
        raise ModelRefused(f"{p.name}: unsupported model format {p.suffix or '(no extension)'!r}; diagnose reads Keras .keras and .h5 files")
    size = p.stat().st_size
    if size > limits.max_size:
        raise ModelRefused(f"{p.name} is {_human(size)}, over the {_human(limits.max_size)} limit; raise it with --max-model-size if you trust the file")
    with p.open("rb") as fh:
        head = fh.read(8)
    fmt = "keras" if p.suffix.lower() == ".keras" else "h5"
    if fmt == "keras" and head[:4] != ZIP_SIGNATURE:
        raise ModelRefused(f"{p.name} is not a .keras archive (no zip signature): the file is truncated, corrupt or not a Keras model")
    if fmt == "h5" and head != HDF5_SIGNATURE:
        raise ModelRefused(f"{p.name} is not an HDF5 file (no HDF5 signature): the file is truncated, corrupt or not a Keras model")
    digest = _sha256(p)
    if fmt == "keras":
        config, compile_config, version = _scan_keras_zip(p, limits)
        label = f"{p.name}: config.json"
    else:
        config, compile_config, version = _scan_h5_file(p, limits, size)
        label = f"{p.name}: the model_config attribute"
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ModelRefused(f"{label} is not a serialized Keras model (no class_name)")
    if compile_config is not None and not isinstance(compile_config, dict):
        raise ModelRefused(f"{label}: compile_config is a {_json_type(compile_config)}, not an object")
    if version is not None and not isinstance(version, str):
        raise ModelRefused(f"{p.name}: keras_version is {version!r}, not a version string")
    compat.refuse_tf_ops(config, p.name)
    risks: list[Risk] = []
    customs: list[CustomClass] = []
    registered = registrations(registered)
    walk = _walk_config(config, label, registered, risks, customs, limits)
    if compile_config is not None and fmt == "h5":
        _walk_config(compile_config, f"{p.name}: the training_config attribute", registered, risks, customs, limits)
    declared = walk.declared_params
    if declared > limits.max_params:
        raise ModelRefused(f"{label}: its layers declare {declared:,} weights, over the {limits.max_params:,} limit; "
                           f"raise it with --max-params if you trust the file")
    if declared * 4 > limits.allowed_weight_bytes(size):
        raise ModelRefused(f"{label}: its layers declare {declared:,} weights ({_human(declared * 4)} as float32), "
                           f"far more than the {_human(size)} file can hold: an allocation bomb")
    if fmt == "keras":  # last: the config checks above are cheap, this one starts a process
        _scan_keras_weights(p, limits)
    return ScanResult(p, fmt, size, digest, config, compile_config, version, risks, customs)


def require_safe(result: ScanResult, *, trust: bool = False) -> None:
    """Refuse a scanned file that names unknown custom classes, or holds code that would run on
    loading unless ``trust``; the messages the CLI prints."""
    if result.custom_classes:
        names = ", ".join(sorted({f"{c.registered_name} (module {c.module})" for c in result.custom_classes}))
        raise ModelRefused(f"unknown custom class {names}; install the plugin that registers it (register_custom_objects hook)")
    if result.risks and not trust:
        listed = "; ".join(str(r) for r in result.risks)
        raise ModelRefused(f"the file holds code that would run on loading: {listed}. Pass --trust only if you trust its author")


@dataclasses.dataclass(frozen=True)
class Registration:
    """Where a name a plugin registered really resolves: the object's module and its own name (None when
    only the name is known, as from a bare set of names)."""

    name: str
    module: str | None
    attr: str | None

    def shown(self) -> str:
        return f"{self.module}.{self.attr}" if self.module else self.name


def registrations(registered: Mapping[str, Any] | Iterable[str]) -> dict[str, Registration]:
    """name -> :class:`Registration`, from a plugin host's ``custom_objects`` (classes or import paths) or names.

    Nothing is imported: an import path ``"pkg.mod:Name"`` is read as text, a class by its ``__module__``
    and ``__qualname__``.
    """
    out: dict[str, Registration] = {}
    items = registered.items() if isinstance(registered, Mapping) else ((n, None) for n in registered)
    for name, obj in items:
        if not isinstance(name, str):
            continue
        if isinstance(obj, str) and ":" in obj:
            module, _, attr = obj.partition(":")
            out[name] = Registration(name, module, attr)
        elif obj is not None and isinstance(getattr(obj, "__module__", None), str):
            out[name] = Registration(name, obj.__module__, getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None))
        else:
            out[name] = Registration(name, None, None)
    return out


def _json_type(value) -> str:
    return {list: "list", dict: "object", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


# -- containers ------------------------------------------------------------------------------------
#: What zipfile raises on a malformed archive (found by the fuzzer: NotImplementedError for an
#: unknown "zip file version", RuntimeError, struct.error...): each is a refusal, never exit 70.
_ZIP_OPEN_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error,
                    NotImplementedError, RuntimeError, zlib.error)
def _zip_directory(p: Path, limits: LoadLimits) -> None:
    """Bound the entry count and the central directory's size from the end record, read by hand
    (:mod:`diagnostics._zipdir`), *before* zipfile reads the directory into memory."""
    try:
        end = read_end_record(p)
    except ZipDirectoryError as e:
        if e.not_zip:
            raise ModelRefused(f"{p.name} is not a readable .keras archive (File is not a zip file): the file is truncated or corrupt") from None
        raise ModelRefused(f"{p.name}: the archive's {e}") from None
    if end.multi_disk:
        raise ModelRefused(f"{p.name} is a multi-part archive: not a Keras model")
    if end.entries > limits.max_zip_entries:
        raise ModelRefused(f"{p.name} has {end.entries:,} archive entries, over the limit of {limits.max_zip_entries:,}: not a plain Keras model")
    if end.directory_bytes > limits.max_zip_directory_bytes:
        raise ModelRefused(f"{p.name}: its archive directory is {_human(end.directory_bytes)}, over the "
                           f"{_human(limits.max_zip_directory_bytes)} limit: not a plain Keras model")


def _scan_keras_zip(p: Path, limits: LoadLimits):
    _zip_directory(p, limits)
    try:
        zf = zipfile.ZipFile(p)
    except _ZIP_OPEN_ERRORS as e:
        raise ModelRefused(f"{p.name} is not a readable .keras archive ({_first_line(e)}): the file is truncated or corrupt") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_zip_entries:
            raise ModelRefused(f"{p.name} has {len(infos)} archive entries, over the limit of {limits.max_zip_entries}: not a plain Keras model")
        names: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            parts = Path(info.filename).parts
            if info.filename.startswith(("/", "\\")) or ".." in parts or "\\" in info.filename or "\0" in info.filename:
                raise ModelRefused(f"{p.name} has an archive entry with an unsafe path {info.filename!r}")
            if info.filename in names:
                raise ModelRefused(f"{p.name} has two archive entries named {info.filename!r}: ambiguous archive")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise ModelRefused(f"{p.name}: archive entry {info.filename!r} is a symbolic link: ambiguous archive")
            if info.flag_bits & 0x1:
                raise ModelRefused(f"{p.name}: archive entry {info.filename!r} is encrypted: not a Keras model")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ModelRefused(f"{p.name}: archive entry {info.filename!r} uses compression method {info.compress_type}; "
                                   f"Keras writes stored or deflated entries only")
            if info.file_size > (1 << 20) and info.file_size > limits.max_zip_ratio * max(info.compress_size, 1):
                raise ModelRefused(
                    f"{p.name}: entry {info.filename!r} expands {info.file_size // max(info.compress_size, 1)}x, "
                    f"over the {limits.max_zip_ratio}x limit (a zip bomb?)")
            if info.filename == "model.weights.h5" and info.file_size > limits.weights_entry_bytes():
                raise ModelRefused(f"{p.name}: {info.filename} is {_human(info.file_size)}, over the {_human(limits.weights_entry_bytes())} limit")
            names[info.filename] = info
        total = sum(info.file_size for info in infos)
        if total > limits.archive_bytes():
            raise ModelRefused(f"{p.name}: its {len(infos):,} archive entries inflate to {_human(total)} together, over the "
                               f"{_human(limits.archive_bytes())} limit (Keras extracts them all to disk; derived from "
                               f"--max-params and --max-model-size)")
        if "config.json" not in names:
            if any(n.endswith(".h5") for n in names) and "metadata.json" not in names:
                raise ModelRefused(f"{p.name} holds no model config: it is a weights-only archive; save the full model with model.save('model.keras')")
            raise ModelRefused(f"{p.name} holds no config.json: not a Keras 3 model archive")
        if "model.weights.h5" not in names:
            raise ModelRefused(f"{p.name} holds no model.weights.h5: the archive is incomplete")
        config = _read_json(zf, names["config.json"], p, limits)
        meta = _read_json(zf, names["metadata.json"], p, limits) if "metadata.json" in names else {}
        if not isinstance(meta, dict):
            raise ModelRefused(f"{p.name}: metadata.json is a {_json_type(meta)}, not an object")
    if not isinstance(config, dict):
        raise ModelRefused(f"{p.name}: config.json is a {_json_type(config)}, not an object")
    return config, config.get("compile_config"), meta.get("keras_version")


def _scan_keras_weights(p: Path, limits: LoadLimits) -> None:
    """Inflate model.weights.h5 to a private temporary file (bounded) and probe it in a child process."""
    try:
        zf = zipfile.ZipFile(p)
    except _ZIP_OPEN_ERRORS as e:
        raise ModelRefused(f"{p.name} is not a readable .keras archive ({_first_line(e)}): the file is truncated or corrupt") from None
    with zf, tempfile.TemporaryDirectory(prefix="diagnostics-scan-") as tmp:
        weights = Path(tmp) / "model.weights.h5"
        _extract_bounded(zf, zf.getinfo("model.weights.h5"), weights, limits.weights_entry_bytes(), p)
        probe_h5(weights, f"{p.name}: model.weights.h5", limits, weights_only=True)


_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError, ValueError, struct.error)


def _read_bounded(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int, p: Path) -> bytes:
    """The entry's bytes, inflated incrementally and refused past ``cap`` (never inflated whole first)."""
    if info.file_size > cap:
        raise ModelRefused(f"{p.name}: {info.filename} is {_human(info.file_size)}, over the {_human(cap)} limit")
    try:
        with zf.open(info) as fh:
            data = fh.read(cap + 1)
    except _ZIP_ERRORS as e:
        raise ModelRefused(f"{p.name}: {info.filename} cannot be read ({type(e).__name__}: {_first_line(e)}): the archive is truncated or corrupt") from None
    if len(data) > cap:
        raise ModelRefused(f"{p.name}: {info.filename} inflates past the {_human(cap)} limit")
    return data


def _extract_bounded(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, cap: int, p: Path) -> None:
    """Stream-inflate one entry to ``dest``, 1 MiB at a time, refusing it past ``cap`` bytes."""
    if info.file_size > cap:
        raise ModelRefused(f"{p.name}: {info.filename} is {_human(info.file_size)}, over the {_human(cap)} limit")
    written = 0
    try:
        with zf.open(info) as src, dest.open("wb") as out:
            while chunk := src.read(1 << 20):
                written += len(chunk)
                if written > cap:
                    raise ModelRefused(f"{p.name}: {info.filename} inflates past the {_human(cap)} limit")
                out.write(chunk)
    except _ZIP_ERRORS as e:
        raise ModelRefused(f"{p.name}: {info.filename} cannot be read ({type(e).__name__}: {_first_line(e)}): the archive is truncated or corrupt") from None


def _read_json(zf: zipfile.ZipFile, info: zipfile.ZipInfo, p: Path, limits: LoadLimits):
    raw = _read_bounded(zf, info, limits.max_config_bytes, p)
    return _parse_json(raw, f"{p.name}: {info.filename}")


def _parse_json(raw: bytes | str, label: str):
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        return json.loads(text)
    except RecursionError:
        raise ModelRefused(f"{label} is nested too deeply to parse: not a Keras config") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelRefused(f"{label} is not valid JSON ({_first_line(e)[:200]}): the file is truncated or corrupt") from None


def _scan_h5_file(p: Path, limits: LoadLimits, size: int):
    found = probe_h5(p, p.name, limits, weights_only=False)
    if found.get("model_config") is None:
        raise ModelRefused(
            f"{p.name} holds weights only (no model_config): diagnose needs a full model saved with model.save(), "
            f"not model.save_weights()")
    config = _parse_json(found["model_config"], f"{p.name}: the model_config attribute")
    if not isinstance(config, dict):
        raise ModelRefused(f"{p.name}: the model_config attribute is a JSON {_json_type(config)}, not an object")
    training = found.get("training_config")
    compile_config = _parse_json(training, f"{p.name}: the training_config attribute") if training is not None else None
    return config, compile_config, found.get("keras_version")


def probe_h5(path: Path, label: str, limits: LoadLimits, *, weights_only: bool) -> dict[str, Any]:
    """Run the HDF5 checks of :mod:`diagnostics._h5probe` in a child process with a deadline and a
    memory ceiling: a file that hangs or exhausts libhdf5 is killed there, and this process stays
    responsive to Ctrl-C (the child is killed on the way out)."""
    import subprocess
    import sys

    request = {"path": str(path), "label": label, "weights_only": weights_only, "file_size": path.stat().st_size,
               "limits": {**dataclasses.asdict(limits), "allowed_weight_bytes": limits.allowed_weight_bytes(path.stat().st_size)}}
    script = Path(__file__).with_name("_h5probe.py")
    try:
        proc = subprocess.run([sys.executable, "-I", str(script), json.dumps(request)], capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=limits.h5_scan_timeout_s)
    except subprocess.TimeoutExpired:
        raise ModelRefused(f"{label}: reading it as HDF5 did not finish within {limits.h5_scan_timeout_s:g} s "
                           f"(a malformed file that makes libhdf5 loop): refused") from None
    try:
        found = json.loads(proc.stdout.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        found = None
    if proc.returncode != 0 or not isinstance(found, dict):
        how = f"was killed by signal {-proc.returncode}" if proc.returncode < 0 else f"ended with exit code {proc.returncode}"
        raise ModelRefused(f"{label}: reading it as HDF5 {how} (a malformed file): refused")
    if "refused" in found:
        raise ModelRefused(str(found["refused"]))
    return found


# -- config walk -----------------------------------------------------------------------------------
#: Serialized values Keras rebuilds without resolving any class or function.
_CONSTANTS = {"__numpy__", "__tensor__", "__bytes__", "__ellipsis__", "__slice__"}
#: Keys a serialized object may hold (Keras 3 and the legacy .h5 layout).
_OBJECT_KEYS = {"class_name", "config", "module", "registered_name", "build_config", "compile_config", "name",
                "inbound_nodes", "shared_object_id"}
#: Slots where a function (not a class) may be named, by its name in that slot's namespace.
_FUNCTION_SLOTS = {"activation", "loss", "metric", "initializer"}
_SLOT_WORDS = {"layer": "layer", "model": "model", "activation": "activation", "initializer": "initializer",
               "regularizer": "regularizer", "constraint": "constraint", "loss": "loss", "metric": "metric",
               "optimizer": "optimizer", "schedule": "learning-rate schedule", "dtype_policy": "dtype policy",
               "any": "config value", "node": "layer call's arguments", "const": "constant"}


def _slot_for_key(key: str, parent: str) -> str:
    if parent in ("node", "const"):
        return parent
    if key in ("activation", "recurrent_activation"):
        return "activation"
    for suffix in ("initializer", "regularizer", "constraint"):
        if key == suffix or key.endswith("_" + suffix):
            return suffix
    if key in ("dtype", "dtype_policy"):
        return "dtype_policy"
    if key in ("layers", "layer", "forward_layer", "backward_layer", "cell", "cells"):
        return "layer"
    if key == "inbound_nodes":
        return "node"
    if key in ("build_config", "input_layers", "output_layers", "loss_weights"):
        return "const"
    if key in ("loss", "losses"):
        return "loss"
    if key in ("metrics", "weighted_metrics"):
        return "metric"
    if key in ("optimizer", "optimizer_config"):
        return "optimizer"
    if key == "learning_rate":
        return "schedule"
    return parent if parent in ("loss", "metric") else "any"


class _ConfigWalk:
    """Walks a model config against the allowlist: each object must belong to the slot it sits in."""

    def __init__(self, label: str, registered: dict[str, Registration], risks: list[Risk], customs: list[CustomClass],
                 limits: LoadLimits = DEFAULT_LIMITS):
        from ._allowlist import generate

        self.allow = generate()
        self.limits = limits
        self.declared_params = 0
        self.label = label
        self.registered = registered
        self.risks = risks
        self.customs = customs
        self.layers = 0
        self.inputs: dict[int, list] = {}  #: id(layer node) -> the input shapes its first call really gets

    def refuse(self, path: str, reason: str):
        raise ModelRefused(f"{self.label} at {path}: {reason}")

    def value(self, node: Any, slot: str, path: str, where: str, depth: int) -> None:
        if depth > self.limits.max_json_depth:
            self.refuse(path, f"nested deeper than {self.limits.max_json_depth} levels")
        if isinstance(node, list):
            for i, item in enumerate(node):
                self.value(item, slot, f"{path}[{i}]", where, depth + 1)
        elif isinstance(node, dict):
            if "class_name" in node:
                self.obj(node, slot, path, where, depth)
            else:
                for key, item in node.items():
                    self.value(item, _slot_for_key(str(key), slot), f"{path}.{key}", where, depth + 1)
        elif isinstance(node, float) and node != node:
            return  # NaN constants are harmless

    def obj(self, node: dict, slot: str, path: str, where: str, depth: int) -> None:
        cls, module, reg, config = node.get("class_name"), node.get("module"), node.get("registered_name"), node.get("config")
        if not isinstance(cls, str):
            self.refuse(path, f"class_name is {type(cls).__name__}, not a string")
        if module is not None and not isinstance(module, str):
            self.refuse(path, f"module is {type(module).__name__}, not a string")
        if reg is not None and not isinstance(reg, str):
            self.refuse(path, f"registered_name is {type(reg).__name__}, not a string")
        here = f"{where} > {config['name']}" if isinstance(config, dict) and isinstance(config.get("name"), str) else where
        if cls == "__lambda__":
            self.risks.append(Risk("lambda function (Python bytecode stored in the file)", here))
            return
        if slot == "node" or cls in _CONSTANTS or cls == "__keras_tensor__":
            return self.constant(node, cls, module, slot, path, depth)
        unknown = sorted(str(k) for k in node if k not in _OBJECT_KEYS)
        if unknown:
            self.refuse(path, f"unknown key(s) {', '.join(map(repr, unknown))} in a serialized {cls!r}")
        if cls == "function":
            return self.function(node, slot, path, here)
        plugin = self.plugin_class(cls, module, reg, slot, path)
        if plugin is not None:
            # A plugin's class: its code is installed, not read from the file. It is walked like any other
            # object below (call arguments, build config, config), and counted and sized like one.
            found_slot = "layer" if slot in ("layer", "model", "any") else slot
        else:
            if module is not None and not _KERAS_MODULE.match(module) and module != "builtins":
                self.customs.append(CustomClass(str(reg or cls), module, here))
                return
            if cls in CODE_LAYERS and slot in ("layer", "model", "any"):
                self.risks.append(Risk(_CODE_LAYERS[cls], here))
                return
            if slot == "optimizer" and module is None and cls.startswith("Custom>"):
                # tf.keras 2.11+ writes its optimizers into an .h5 training config as "Custom>Adam" (the name
                # they are registered under); the class behind it is looked up like any other optimizer
                cls = cls[len("Custom>"):]
            entry, found_slot = self.lookup(cls, slot)
            shown = f"{module}.{cls}" if module else cls
            if entry is None:
                if module and module.split(".")[:3] in (["keras", "src", "ops"], ["keras", "ops"]) or module == "keras.ops":
                    self.refuse(path, f"operation class {shown} where a Keras {_SLOT_WORDS[slot]} is expected "
                                      f"(operations run at load time with arguments from the file)")
                self.refuse(path, f"{shown} is not a Keras {_SLOT_WORDS[slot]} (allowlist generated from keras {self.allow.keras_version})")
            if module is not None and module not in entry.modules and not (
                    found_slot == "optimizer" and BACKEND_OPTIMIZER_MODULE.match(module)):
                self.refuse(path, f"{cls} is resolved from module {module!r}, which is not where Keras defines it")
            if reg is not None and reg != cls:
                self.refuse(path, f"registered_name {reg!r} of {cls} resolves to no allowlisted object and no plugin registered it")
        if cls in _LOOKUP_LAYERS and isinstance(config, dict) and isinstance(config.get("vocabulary"), str):
            self.risks.append(Risk(f"{cls} vocabulary read from the file {config['vocabulary']!r}", here))
        if found_slot in ("layer", "model"):
            self.layers += 1
            if self.layers > self.limits.max_layers:
                self.refuse(path, f"more than {self.limits.max_layers} layers: not a model this tool analyses (it would take minutes to build)")
            if isinstance(config, dict):
                for key in ("batch_shape", "batch_input_shape"):
                    self.shape(config.get(key), f"{path}.config.{key}")
                build = node.get("build_config")
                if isinstance(build, dict):
                    for key, value in build.items():
                        self.shape(value, f"{path}.build_config.{key}")
                if isinstance(config.get("layers"), list) and cls in ("Functional", "Model", "Sequential"):
                    self.graph(cls, config["layers"], path)
                self.declared_params += declared_weights(cls, config, _input_shapes(node, config, self.inputs.get(id(node))))
        for key, item in node.items():
            if key in ("class_name", "module", "registered_name", "name", "shared_object_id"):
                continue
            if key == "config" and isinstance(item, dict):
                inner = found_slot if found_slot in ("loss", "metric") else "any"  # a wrapper's "fn" is a loss/metric
                for k, v in item.items():
                    self.value(v, _slot_for_key(str(k), inner), f"{path}.config.{k}", here, depth + 2)
            else:
                self.value(item, _slot_for_key(key, "any"), f"{path}.{key}", here, depth + 1)

    def plugin_class(self, cls: str, module: str | None, reg: str | None, slot: str, path: str) -> Registration | None:
        """The plugin registration this node resolves to, or None when it names none (then the allowlist
        decides). Keras 3 looks a class up by ``registered_name`` (by ``class_name`` when the key is absent),
        the legacy .h5 loader by ``class_name``: a node that names a registered class under another module,
        class or registered_name is refused here, so a registered name admits exactly its own class."""
        by_reg = self.registered.get(reg) if reg is not None else None
        by_cls = self.registered.get(cls)
        if by_reg is None and by_cls is None:
            return None
        keras_side = module is None or bool(_KERAS_MODULE.match(module))
        if by_reg is None and reg in (None, cls) and keras_side and self.lookup(cls, slot)[0] is not None:
            # A Keras name a plugin re-registers (keras2_compat's LSTM, a subclass with a from_config
            # shim): under Keras's own module it is Keras's class, checked by the allowlist like any other.
            return None
        target = by_reg or by_cls
        where = f"{cls!r} (module {module!r}, registered_name {reg!r})"
        if by_reg is not None and by_cls is not None and (by_reg.module, by_reg.attr) != (by_cls.module, by_cls.attr):
            self.refuse(path, f"{where} names two different registered classes, {by_reg.shown()} and {by_cls.shown()}: "
                              f"the two Keras loaders would build different objects")
        if by_reg is None and reg is not None and reg != cls:
            self.refuse(path, f"{where}: class {cls!r} is registered by a plugin as {target.shown()}, but registered_name {reg!r} "
                              f"is not registered: a registered name admits only its own class")
        if target.module is not None:
            if module is not None and module != target.module:
                self.refuse(path, f"{where}: {target.name!r} is registered by a plugin as {target.shown()}, not from "
                                  f"module {module!r}: a registered name admits only its own class")
            # Keras 3 writes the class's own name; the legacy .h5 writer the name it is registered under
            if target.attr is not None and cls not in (target.attr.rpartition(".")[2], target.name):
                self.refuse(path, f"{where}: {target.name!r} is registered by a plugin as {target.shown()}, not as class {cls!r}")
        elif ">" in target.name and module is not None:
            package = target.name.partition(">")[0]
            if module.split(".")[0] != package:
                self.refuse(path, f"{where}: {target.name!r} is registered under the package {package!r}, not from "
                                  f"module {module!r}: a registered name admits only its own class")
        return target

    def lookup(self, cls: str, slot: str):
        slots = {"layer": ("layer", "model"), "model": ("model", "layer"), "any": tuple(self.allow.slots),
                 "metric": ("metric", "loss"), "loss": ("loss",)}.get(slot, (slot,))
        for s in slots:
            entry = self.allow.get(s, cls)
            if entry is not None and entry.kind == "class":
                return entry, s
        return None, slot

    def function(self, node: dict, slot: str, path: str, here: str) -> None:
        module, config, reg = node.get("module"), node.get("config"), node.get("registered_name")
        name = config if isinstance(config, str) else reg
        if name in self.registered:
            target = self.registered[name]
            if module in (None, "builtins") or target.module is None or module == target.module:
                return
            self.refuse(path, f"function {name!r} is registered by a plugin as {target.shown()}, not from module "
                              f"{module!r}: a registered name admits only its own function")
        shown = f"{module}.{name}" if module and module != "builtins" else str(name)
        if module is not None and not _KERAS_MODULE.match(module) and module != "builtins":
            self.risks.append(Risk(f"function {shown} from outside Keras", here))
            return
        if not isinstance(config, str):
            self.refuse(path, "a function reference whose config is not a name")
        if slot in _FUNCTION_SLOTS:
            entry = self.allow.get(slot, config)
            # Keras resolves a function by its name alone (registered_name is not used for functions)
            if entry is not None and entry.kind == "function" and (module in entry.modules or module in (None, "builtins")):
                return
            self.refuse(path, f"function {shown} is not a Keras {_SLOT_WORDS[slot]} function")
        self.refuse(path, f"function reference {shown} in a {_SLOT_WORDS[slot]}: functions are admitted only as "
                          f"Keras activations, losses, metrics and initializers")

    def constant(self, node: dict, cls: str, module, slot: str, path: str, depth: int) -> None:
        config = node.get("config")
        if cls == "__keras_tensor__":
            if slot != "node":
                self.refuse(path, "a tensor reference outside a layer call's arguments")
            history = config.get("keras_history") if isinstance(config, dict) else None
            if not (isinstance(history, list) and len(history) == 3 and isinstance(history[0], str)
                    and all(isinstance(i, int) and not isinstance(i, bool) for i in history[1:])):
                self.refuse(path, "a tensor reference without a valid keras_history [layer, node, index]")
            shape = config.get("shape")
            if shape is not None and not (isinstance(shape, list) and all(d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in shape)):
                self.refuse(path, "a tensor reference with an invalid shape")
            self.shape(shape, f"{path}.config.shape")
            dtype = config.get("dtype")
            if not isinstance(dtype, (str, type(None))) or (dtype is not None and not _PLAIN_DTYPE.fullmatch(dtype)):
                self.refuse(path, f"a tensor reference with dtype {_short(dtype)}: not a plain numeric dtype")
            return
        if cls == "function":
            target = f"{module}.{config}" if module and module != "builtins" else str(config)
            self.refuse(path, f"function reference {target} in a layer call's arguments: only tensor references and "
                              f"plain constants may be there")
        if cls not in _CONSTANTS:
            shown = f"{module}.{cls}" if module else cls
            self.refuse(path, f"{shown} object in a layer call's arguments: only tensor references and plain constants may be there")
        if set(node) - {"class_name", "config", "module", "registered_name"}:
            self.refuse(path, f"unknown keys in a serialized {cls}")
        if cls in ("__numpy__", "__tensor__"):
            # Keras builds np.array(value, dtype) / convert_to_tensor(value, dtype): a dtype string may be a
            # subarray dtype ("(20000,20000)f4" turns each element into 1.6 GB), so only plain numeric names
            if not isinstance(config, dict) or set(config) - {"value", "dtype"}:
                self.refuse(path, f"a serialized {cls} whose config is not {{value, dtype}}")
            dtype = config.get("dtype")
            if not (isinstance(dtype, str) and _PLAIN_DTYPE.fullmatch(dtype)):
                self.refuse(f"{path}.config.dtype", f"constant of dtype {_short(dtype)}: constants must have a plain numeric "
                                                    f"dtype (bool, int, uint, float)")
            count = _count_scalars(config.get("value"), self.limits.max_constant_elements)
            if count > self.limits.max_constant_elements:
                self.refuse(f"{path}.config.value", f"a constant of more than {self.limits.max_constant_elements:,} elements")
        self.value(config, "const", f"{path}.config", "", depth + 1)

    def shape(self, shape, path: str) -> None:
        """A declared shape (or a list/dict of them): every dim an int >= 0 or null, the product bounded."""
        if isinstance(shape, dict):
            for key, value in shape.items():
                self.shape(value, f"{path}.{key}")
            return
        if not isinstance(shape, list) or not shape:
            return
        if all(isinstance(d, list) or d is None for d in shape) and any(isinstance(d, list) for d in shape):
            for i, d in enumerate(shape):  # several inputs' shapes
                self.shape(d, f"{path}[{i}]")
            return
        total = 1
        for d in shape:
            if d is None:
                continue
            if not isinstance(d, int) or isinstance(d, bool) or d < 0:
                self.refuse(path, f"a declared shape with the dimension {_short(d)}: dimensions are integers >= 0 or null")
            total *= d
        if total > self.limits.max_tensor_elements:
            self.refuse(path, f"a declared shape {_short(shape)} of {total:,} elements, over the limit of "
                              f"{self.limits.max_tensor_elements:,} per tensor")

    def graph(self, cls: str, layers: list, path: str) -> None:
        """Follow a model's layers from its inputs, knowing the shape each common layer outputs, so that each
        layer's weights are estimated from the shape it is really called with (Keras builds it from the tensors
        it is given; the shape a tensor reference declares is not used). A declared shape that disagrees
        with the real one is refused: it is there only to mislead the estimate."""
        outputs: dict[tuple[str, int], list] = {}
        previous = None
        for i, layer in enumerate(layers):
            if not isinstance(layer, dict) or not isinstance(layer.get("config"), dict):
                continue
            lcls, lcfg = layer.get("class_name"), layer["config"]
            name = layer.get("name", lcfg.get("name"))
            if lcls == "InputLayer":
                for key in ("batch_shape", "batch_input_shape"):  # sane before any comparison with them
                    self.shape(lcfg.get(key), f"{path}.config.layers[{i}].config.{key}")
                shape = _list_shape(lcfg.get("batch_shape", lcfg.get("batch_input_shape")))
                outputs[(name, 0)] = [shape]
                previous = shape
                continue
            if cls == "Sequential":
                ins = [previous] if previous is not None else []
                self.inputs[id(layer)] = ins
                out = _output_shapes(str(lcls), lcfg, ins)
                previous = out[0] if out else None
                continue
            nodes = layer.get("inbound_nodes")
            for n, call in enumerate(nodes if isinstance(nodes, list) else []):
                ins = []
                for history, declared, where in _tensor_refs(call, f"{path}.config.layers[{i}].inbound_nodes[{n}]"):
                    self.shape(declared, f"{where}.config.shape")
                    produced = outputs.get((history[0], history[1]))
                    real = produced[history[2]] if produced and 0 <= history[2] < len(produced) else None
                    if real is not None and declared is not None and not _same_shape(real, declared):
                        self.refuse(where, f"the tensor reference declares shape {_short(declared)}, but layer {history[0]!r} "
                                           f"outputs {_short(real)}: a shape that lies")
                    ins.append(real if real is not None else declared)
                if n == 0:
                    self.inputs[id(layer)] = ins
                outputs[(name, n)] = _output_shapes(str(lcls), lcfg, ins) or []


#: The dtypes a constant or tensor reference may have: Keras's numeric names (no subarray or structured dtype).
_PLAIN_DTYPE = re.compile(r"bool|u?int(8|16|32|64)|float(16|32|64)|bfloat16")


def _short(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _count_scalars(value, cap: int) -> int:
    """Scalars in a nested list, counting stops just past ``cap``."""
    count, stack = 0, [value]
    while stack and count <= cap:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        else:
            count += 1
    return count


def _list_shape(shape) -> list | None:
    if isinstance(shape, list) and all(d is None or (isinstance(d, int) and not isinstance(d, bool)) for d in shape):
        return list(shape)
    return None


def _same_shape(real: list, declared) -> bool:
    if not isinstance(declared, list) or len(declared) != len(real):
        return False
    return all(a is None or b is None or a == b for a, b in zip(real, declared))


def _tensor_refs(call, path: str):
    """``(keras_history, declared shape or None, JSON path)`` for each tensor a layer call takes, in order."""
    if isinstance(call, list):  # the legacy layout: [[layer, node, tensor, kwargs], ...]
        for j, ref in enumerate(call):
            if isinstance(ref, list) and len(ref) >= 3 and isinstance(ref[0], str) and all(_int(v) is not None for v in ref[1:3]):
                yield ref[:3], None, f"{path}[{j}]"
        return
    if not isinstance(call, dict):
        return
    stack = [(call.get("args"), f"{path}.args"), (call.get("kwargs"), f"{path}.kwargs")]
    stack.reverse()
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict) and item.get("class_name") == "__keras_tensor__":
            cfg = item.get("config") if isinstance(item.get("config"), dict) else {}
            history = cfg.get("keras_history")
            if isinstance(history, list) and len(history) == 3 and isinstance(history[0], str) and all(_int(v) is not None for v in history[1:]):
                yield history, _list_shape(cfg.get("shape")), where
        elif isinstance(item, dict):
            stack.extend(reversed([(v, f"{where}.{k}") for k, v in item.items()]))
        elif isinstance(item, list):
            stack.extend(reversed([(v, f"{where}[{k}]") for k, v in enumerate(item)]))


#: Layers whose output has their input's shape.
_SAME_SHAPE = {"Activation", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
               "GaussianDropout", "AlphaDropout", "BatchNormalization", "LayerNormalization", "GroupNormalization",
               "UnitNormalization", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax", "Rescaling", "Normalization",
               "ActivityRegularization", "Masking", "Identity"}
_MERGE = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"}


def _ints(value, n: int) -> list[int] | None:
    values = value if isinstance(value, list) else [value] * n
    return values if len(values) == n and all(_int(v) is not None for v in values) else None


def _spatial(n, k, s, d, padding) -> int | None:
    if n is None or k is None or s is None or not s:
        return None
    if padding == "valid":
        return max((n - d * (k - 1) - 1) // s + 1, 0)
    return (n - 1) // s + 1 if n else 0


def _output_shapes(cls: str, config: dict, ins: list) -> list | None:
    """The shapes a layer of a common kind outputs for input shapes ``ins`` (None: not known here)."""
    x = ins[0] if ins and isinstance(ins[0], list) and ins[0] else None
    if x is None:
        return None
    units = _int(config.get("units"))
    if cls in _SAME_SHAPE:
        return [list(x)]
    if cls in _MERGE:
        return [list(x)] if all(isinstance(i, list) and len(i) == len(x) for i in ins) else None
    if cls == "Dense" and units is not None:
        return [x[:-1] + [units]]
    if cls == "EinsumDense":
        shape = config.get("output_shape")
        shape = [shape] if _int(shape) is not None else shape
        return [[x[0]] + list(shape)] if _list_shape(shape) is not None else None
    if cls == "Embedding" and _int(config.get("output_dim")) is not None:
        return [x + [config["output_dim"]]]
    if cls in ("LSTM", "GRU", "SimpleRNN") and units is not None and len(x) == 3:
        out = [x[:2] + [units]] if config.get("return_sequences") else [[x[0], units]]
        if config.get("return_state"):
            out += [[x[0], units]] * (2 if cls == "LSTM" else 1)
        return out
    if cls == "Flatten":
        rest = 1
        for d in x[1:]:
            rest = rest * d if d is not None and rest is not None else None
        return [[x[0], rest]]
    if cls == "Reshape":
        target = _list_shape(config.get("target_shape"))
        if target is None:
            return None
        if -1 in target:
            known = [d for d in x[1:]]
            total = 1
            for d in known:
                total = total * d if d is not None and total is not None else None
            rest = 1
            for d in target:
                rest *= d if d != -1 else 1
            target = [(total // rest if total is not None and rest else None) if d == -1 else d for d in target]
        return [[x[0]] + target]
    m = re.fullmatch(r"(Conv|MaxPooling|AveragePooling|GlobalAveragePooling|GlobalMaxPooling)([123])D", cls)
    if m:
        rank = int(m.group(2))
        if len(x) != rank + 2:
            return None
        first = config.get("data_format") == "channels_first"
        spatial, channels = (x[2:], x[1]) if first else (x[1:-1], x[-1])
        if m.group(1).startswith("Global"):
            if config.get("keepdims"):
                return [[x[0], channels] + [1] * rank] if first else [[x[0]] + [1] * rank + [channels]]
            return [[x[0], channels]]
        if m.group(1) == "Conv":
            kernel, strides = _ints(config.get("kernel_size"), rank), _ints(config.get("strides", 1), rank)
            dilation, channels = _ints(config.get("dilation_rate", 1), rank), _int(config.get("filters"))
        else:
            kernel = _ints(config.get("pool_size"), rank)
            strides = _ints(config.get("strides"), rank) if config.get("strides") is not None else kernel
            dilation = [1] * rank
        if kernel is None or strides is None or dilation is None:
            return None
        out = [_spatial(n, k, s, d, config.get("padding", "valid")) for n, k, s, d in zip(spatial, kernel, strides, dilation)]
        return [[x[0], channels] + out] if first else [[x[0]] + out + [channels]]
    if cls == "Concatenate":
        axis = config.get("axis", -1)
        if not all(isinstance(i, list) and len(i) == len(x) for i in ins) or not isinstance(axis, int) or not -len(x) <= axis < len(x):
            return None
        axis = axis % len(x)
        total = 0
        for i in ins:
            total = total + i[axis] if i[axis] is not None and total is not None else None
        return [x[:axis] + [total] + x[axis + 1:]]
    if cls == "MultiHeadAttention":
        shape = config.get("output_shape")
        shape = [shape] if _int(shape) is not None else shape
        return [x[:-1] + list(shape)] if _list_shape(shape) is not None else [list(x)]
    return None


def _walk_config(config: Any, label: str, registered: dict[str, Registration], risks: list[Risk], customs: list[CustomClass],
                 limits: LoadLimits = DEFAULT_LIMITS) -> _ConfigWalk:
    walk = _ConfigWalk(label, registered, risks, customs, limits)
    walk.value(config, "model", "$", "model", 0)
    return walk


def _int(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _input_shapes(node: dict, config: dict, real: list | None) -> list[list]:
    """Every shape a layer's first input may have: the one it is really called with (``real``, followed from
    the model's inputs), its build_config (Keras builds the layer from it on loading), the shapes its call's
    tensor references declare, and its batch shape. The weight estimate takes the largest of them."""
    shapes = []
    if real:
        shapes.append(real[0])
    build = node.get("build_config")
    if isinstance(build, dict):
        shape = build.get("input_shape")
        shapes.append(shape[0] if isinstance(shape, list) and shape and isinstance(shape[0], list) else shape)
    nodes = node.get("inbound_nodes")
    if isinstance(nodes, list) and nodes and isinstance(nodes[0], dict):
        args = nodes[0].get("args")
        if isinstance(args, list) and args and isinstance(args[0], dict) and isinstance(args[0].get("config"), dict):
            shapes.append(args[0]["config"].get("shape"))
    shapes.append(config.get("batch_input_shape"))
    shapes.append(config.get("batch_shape"))
    return [s for s in (_list_shape(s) for s in shapes) if s]


def _dim(shapes: list[list], axis: int) -> int | None:
    """The largest known size of ``axis`` among ``shapes``."""
    found = [s[axis] for s in shapes if -len(s) <= axis < len(s) and _int(s[axis]) is not None]
    return max(found) if found else None


def _einsum_kernel(config: dict, shapes: list[list]) -> int:
    """Weights of an EinsumDense: the kernel's letters sized from the input and output shapes, plus its bias."""
    equation = config.get("equation")
    m = re.fullmatch(r"([a-z.]+),([a-z]+)->([a-z.]+)", equation.replace(" ", "")) if isinstance(equation, str) else None
    if not m:
        return 0
    lhs, kernel, out = m.groups()
    output = config.get("output_shape")
    output = [output] if _int(output) is not None else output
    sizes: dict[str, int] = {}
    if _list_shape(output) is not None:
        spec = out.replace("...", "")
        for letter, d in zip(reversed(spec), reversed([None] + list(output))):
            if _int(d) is not None:
                sizes[letter] = max(sizes.get(letter, 0), d)
    spec = lhs.replace("...", "")
    for shape in shapes:
        for letter, d in zip(reversed(spec), reversed(shape)):
            if _int(d) is not None:
                sizes[letter] = max(sizes.get(letter, 0), d)
    total = 1
    for letter in kernel:
        total *= sizes.get(letter, 1)
    bias = config.get("bias_axes")
    if isinstance(bias, str) and bias:
        b = 1
        for letter in bias:
            b *= sizes.get(letter, 1)
        total += b
    return total


def declared_weights(cls: str, config: dict, shapes: list[list] | int | None) -> int:
    """How many weights a layer of the weighted kinds will allocate, from its config and input shapes (0 when
    unknown). ``shapes`` are the shapes its input may have (:func:`_input_shapes`); the largest is taken.

    A lower bound used against allocation bombs: a 14 KB config can declare two 4096x65536 kernels.
    """
    if isinstance(shapes, int):  # the last input dimension alone
        shapes = [[None, shapes]]
    shapes = shapes or []
    units, filters = _int(config.get("units")), _int(config.get("filters"))
    if cls == "Embedding":
        return (_int(config.get("input_dim")) or 0) * (_int(config.get("output_dim")) or 0)
    if cls == "EinsumDense":
        return _einsum_kernel(config, shapes)
    first = config.get("data_format") == "channels_first"
    in_dim = _dim(shapes, 1 if first and cls.startswith(("Conv", "SeparableConv", "DepthwiseConv")) else -1)
    if in_dim is None:
        return 0
    if cls == "Dense" and units is not None:
        return in_dim * units + units
    if cls in ("BatchNormalization",):
        return 4 * in_dim
    if cls in ("LayerNormalization", "GroupNormalization"):
        return 2 * in_dim
    kernel = 1
    for k in (config.get("kernel_size") if isinstance(config.get("kernel_size"), list) else [config.get("kernel_size")]):
        kernel *= _int(k) or 1
    multiplier = _int(config.get("depth_multiplier")) or 1
    if cls.startswith("DepthwiseConv"):
        return kernel * in_dim * multiplier + in_dim * multiplier
    if cls.startswith("SeparableConv") and filters is not None:
        return kernel * in_dim * multiplier + in_dim * multiplier * filters + filters
    gates = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1, "ConvLSTM1D": 4, "ConvLSTM2D": 4, "ConvLSTM3D": 4}.get(cls)
    if gates and units is not None:
        return gates * (kernel * (in_dim + units) + 1) * units
    if gates and filters is not None:
        return gates * (kernel * (in_dim + filters) + 1) * filters
    if cls.startswith("Conv") and filters is not None:
        groups = _int(config.get("groups")) or 1
        return kernel * (in_dim // groups if groups <= in_dim else in_dim) * filters + filters
    if cls == "MultiHeadAttention":
        heads, key = _int(config.get("num_heads")) or 0, _int(config.get("key_dim")) or 0
        value = _int(config.get("value_dim")) or key
        return heads * (2 * key + value) * (in_dim + 1) + heads * value * in_dim + in_dim
    if cls == "GroupedQueryAttention":
        heads, kv, head = (_int(config.get(k)) or 0 for k in ("num_query_heads", "num_key_value_heads", "head_dim"))
        return (heads + 2 * kv) * head * (in_dim + 1) + heads * head * in_dim + in_dim
    return 0


def describe_loss(compile_config: dict[str, Any] | None) -> str | None:
    """A readable loss description from a compile/training config, or None."""
    if not compile_config:
        return None
    loss = compile_config.get("loss")
    if loss is None:
        return None
    if isinstance(loss, str):
        return loss
    if isinstance(loss, dict):
        name = loss.get("class_name", "?")
        cfg = loss.get("config") or {}
        if isinstance(cfg, dict) and "from_logits" in cfg:
            return f"{name}(from_logits={bool(cfg['from_logits'])})"
        return str(name)
    return json.dumps(loss, sort_keys=True)


def custom_class_names(config: Any) -> Iterator[str]:
    """Every ``registered_name`` that is not a Keras built-in (used to name unknown classes)."""
    if isinstance(config, list):
        for item in config:
            yield from custom_class_names(item)
    elif isinstance(config, dict):
        module = config.get("module")
        if isinstance(config.get("class_name"), str) and module and not _KERAS_MODULE.match(str(module)) and module != "builtins":
            yield config.get("registered_name") or config["class_name"]
        for v in config.values():
            yield from custom_class_names(v)


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with p.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0]


def parse_size(text: str) -> int:
    """``"1GiB"``, ``"500MB"``, ``"2048"`` -> bytes."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*", text.lower())
    if not m:
        raise ValueError(f"cannot read {text!r} as a size; use e.g. 500MB or 2GiB")
    number = float(m.group(1))
    unit = (m.group(2) or "").rstrip("b").rstrip("i")
    factor = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[unit]
    return int(number * factor)

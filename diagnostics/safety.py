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
from typing import Any, Iterable, Iterator

from .allowlist import BACKEND_OPTIMIZER_MODULE, CODE_LAYERS
from .limits import DEFAULT as DEFAULT_LIMITS
from .limits import LoadLimits

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


def scan(path: str | Path, *, max_size: int | None = None, registered: Iterable[str] = (),
         limits: LoadLimits | None = None) -> ScanResult:
    """Check ``path`` without loading it; raise :class:`ModelRefused` with the reason, or return what was found.

    This is the one pre-scan every loading path calls (CLI, notebook API, dashboard uploads, workers
    loading companions); nothing here imports keras or a framework, and the HDF5 part runs in a
    child process with a deadline. ``registered`` holds the custom-object names plugins registered:
    classes under those names are trusted. Risks (code that would run) are returned, not raised: the
    caller refuses them unless the user passed ``--trust``.
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
    from . import compat  # Keras 2 forms Keras 3 cannot load, refused with how to convert them

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
    registered = set(registered)
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


def _json_type(value) -> str:
    return {list: "list", dict: "object", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


# -- containers ------------------------------------------------------------------------------------
#: What zipfile raises on a malformed archive (found by the fuzzer: NotImplementedError for an
#: unknown "zip file version", RuntimeError, struct.error...): each is a refusal, never exit 70.
_ZIP_OPEN_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error,
                    NotImplementedError, RuntimeError, zlib.error)
def _zip_directory(p: Path, limits: LoadLimits) -> None:
    """Read the end-of-central-directory record ourselves: bound the entry count and the central
    directory's size *before* zipfile reads the directory into memory."""
    size = p.stat().st_size
    with p.open("rb") as fh:
        tail_len = min(size, 22 + 0xFFFF)
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            raise ModelRefused(f"{p.name} is not a readable .keras archive (File is not a zip file): the file is truncated or corrupt")
        disk, cd_disk, _, entries, cd_size, cd_offset, _ = struct.unpack("<HHHHIIH", tail[at + 4:at + 22])
        if entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:  # zip64: the real numbers are elsewhere
            locator = tail[at - 20:at] if at >= 20 else b""
            if locator[:4] != b"PK\x06\x07":
                raise ModelRefused(f"{p.name}: the archive's zip64 locator is missing: the file is truncated or corrupt")
            _, record_at, _ = struct.unpack("<IQI", locator[4:20])
            if record_at > size - 56:
                raise ModelRefused(f"{p.name}: the archive's zip64 record points outside the file: corrupt")
            fh.seek(record_at)
            record = fh.read(56)
            if record[:4] != b"PK\x06\x06":
                raise ModelRefused(f"{p.name}: the archive's zip64 record is missing: the file is truncated or corrupt")
            _, _, _, disk, cd_disk, _, entries, cd_size, cd_offset = struct.unpack("<QHHIIQQQQ", record[4:56])
    if disk or cd_disk:
        raise ModelRefused(f"{p.name} is a multi-part archive: not a Keras model")
    if entries > limits.max_zip_entries:
        raise ModelRefused(f"{p.name} has {entries:,} archive entries, over the limit of {limits.max_zip_entries:,}: not a plain Keras model")
    if cd_size > limits.max_zip_directory_bytes:
        raise ModelRefused(f"{p.name}: its archive directory is {_human(cd_size)}, over the {_human(limits.max_zip_directory_bytes)} "
                           f"limit: not a plain Keras model")


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
            names[info.filename] = info
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
        _extract_bounded(zf, zf.getinfo("model.weights.h5"), weights, min(2 * limits.max_size, 4 * limits.max_params + (16 << 20)), p)
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
    """Run the HDF5 checks of :mod:`diagnostics.h5probe` in a child process with a deadline and a
    memory ceiling: a file that hangs or exhausts libhdf5 is killed there, and this process stays
    responsive to Ctrl-C (the child is killed on the way out)."""
    import subprocess
    import sys

    request = {"path": str(path), "label": label, "weights_only": weights_only, "file_size": path.stat().st_size,
               "limits": {**dataclasses.asdict(limits), "allowed_weight_bytes": limits.allowed_weight_bytes(path.stat().st_size)}}
    script = Path(__file__).with_name("h5probe.py")
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

    def __init__(self, label: str, registered: set[str], risks: list[Risk], customs: list[CustomClass],
                 limits: LoadLimits = DEFAULT_LIMITS):
        from .allowlist import generate

        self.allow = generate()
        self.limits = limits
        self.declared_params = 0
        self.label = label
        self.registered = registered
        self.risks = risks
        self.customs = customs
        self.layers = 0

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
        if reg in self.registered or cls in self.registered:
            self.value(config, "any", f"{path}.config", here, depth + 1)  # a plugin's class: its code is installed
            return
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
                self.declared_params += declared_weights(cls, config, _input_dim(node, config))
        for key, item in node.items():
            if key in ("class_name", "module", "registered_name", "name", "shared_object_id"):
                continue
            if key == "config" and isinstance(item, dict):
                inner = found_slot if found_slot in ("loss", "metric") else "any"  # a wrapper's "fn" is a loss/metric
                for k, v in item.items():
                    self.value(v, _slot_for_key(str(k), inner), f"{path}.config.{k}", here, depth + 2)
            else:
                self.value(item, _slot_for_key(key, "any"), f"{path}.{key}", here, depth + 1)

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
            return
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
            if not isinstance(config.get("dtype"), (str, type(None))):
                self.refuse(path, "a tensor reference with an invalid dtype")
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
        self.value(config, "const", f"{path}.config", "", depth + 1)


def _walk_config(config: Any, label: str, registered: set[str], risks: list[Risk], customs: list[CustomClass],
                 limits: LoadLimits = DEFAULT_LIMITS) -> _ConfigWalk:
    walk = _ConfigWalk(label, registered, risks, customs, limits)
    walk.value(config, "model", "$", "model", 0)
    return walk


def _int(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def _input_dim(node: dict, config: dict) -> int | None:
    """The last input dimension of a layer, from its build_config, its first call's tensor, or its batch shape."""
    shapes = []
    build = node.get("build_config")
    if isinstance(build, dict):
        shapes.append(build.get("input_shape"))
    nodes = node.get("inbound_nodes")
    if isinstance(nodes, list) and nodes and isinstance(nodes[0], dict):
        args = nodes[0].get("args")
        if isinstance(args, list) and args and isinstance(args[0], dict) and isinstance(args[0].get("config"), dict):
            shapes.append(args[0]["config"].get("shape"))
    shapes.append(config.get("batch_input_shape"))
    shapes.append(config.get("batch_shape"))
    for shape in shapes:
        if isinstance(shape, list) and shape and _int(shape[-1]) is not None:
            return shape[-1]
    return None


def declared_weights(cls: str, config: dict, in_dim: int | None) -> int:
    """How many weights a layer of the common kinds will allocate, from its config alone (0 when unknown).

    A lower bound used against allocation bombs: a 14 KB config can declare two 4096x65536 kernels.
    """
    units, filters = _int(config.get("units")), _int(config.get("filters"))
    if cls == "Embedding":
        return (_int(config.get("input_dim")) or 0) * (_int(config.get("output_dim")) or 0)
    if in_dim is None:
        return 0
    if cls == "Dense" and units is not None:
        return in_dim * units + units
    if cls.startswith(("Conv", "SeparableConv", "DepthwiseConv")) and filters is not None:
        kernel = config.get("kernel_size")
        size = 1
        for k in (kernel if isinstance(kernel, list) else [kernel]):
            size *= _int(k) or 1
        return size * in_dim * filters + filters
    gates = {"LSTM": 4, "GRU": 3, "SimpleRNN": 1, "ConvLSTM1D": 4, "ConvLSTM2D": 4}.get(cls)
    if gates and units is not None:
        return gates * (in_dim + units + 1) * units
    if cls == "MultiHeadAttention":
        heads, key = _int(config.get("num_heads")) or 0, _int(config.get("key_dim")) or 0
        return 4 * heads * key * in_dim
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


def static_input_shapes(config: dict[str, Any]) -> list[list[int | None]] | None:
    """The model's input shapes as its config declares them (top-level ``InputLayer``s), or None if unclear."""
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(layers, list):
        return None
    shapes = []
    for layer in layers:
        if isinstance(layer, dict) and layer.get("class_name") == "InputLayer":
            cfg = layer.get("config") or {}
            shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
            if not isinstance(shape, list):
                return None
            shapes.append([d if isinstance(d, int) else None for d in shape])
    return shapes or None


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

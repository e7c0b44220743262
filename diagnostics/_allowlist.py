"""The pre-scan's allowlist, generated from the installed Keras without importing it.

Keras 3 ships its public API as generated ``__init__.py`` files (``keras/layers/__init__.py`` holds
lines like ``from keras.src.layers.core.dense import Dense as Dense``). This module reads those files
with :mod:`ast` — nothing is imported or executed — and builds, for every *slot* of a model config,
the objects that may appear there and the modules Keras may resolve them from:

========== =============================================== ===========================
slot       public namespace                                what
========== =============================================== ===========================
layer      ``keras.layers`` + ``keras.models``              classes (plus ``Functional``)
activation ``keras.activations``                            functions
initializer ``keras.initializers``                          classes and functions
regularizer ``keras.regularizers``                          classes
constraint ``keras.constraints``                            classes
loss       ``keras.losses``                                 classes and functions
metric     ``keras.metrics``                                classes and functions
optimizer  ``keras.optimizers``                             classes
schedule   ``keras.optimizers.schedules``                   classes
dtype_policy ``keras.dtype_policies``                       classes
========== =============================================== ===========================

Only names defined in a ``keras.src`` module of the matching package are taken (``keras.layers``
re-exports ``TFSMLayer`` from ``keras.src.export``: that is not a layer we admit, it loads a
SavedModel from a path), and the helpers ``get``/``serialize``/``deserialize`` are never taken. So
an upgrade of Keras that adds a layer adds it here, and nothing from ``keras.ops``, ``keras.utils``,
``keras.visualization``, ``keras.saving`` or ``keras.config`` can ever enter.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
import re
from pathlib import Path

#: slot -> (public namespace, packages under keras.src a name must be defined in)
NAMESPACES: dict[str, tuple[str, tuple[str, ...]]] = {
    "layer": ("keras.layers", ("keras.src.layers",)),
    "model": ("keras.models", ("keras.src.models",)),
    "activation": ("keras.activations", ("keras.src.activations",)),
    "initializer": ("keras.initializers", ("keras.src.initializers",)),
    "regularizer": ("keras.regularizers", ("keras.src.regularizers",)),
    "constraint": ("keras.constraints", ("keras.src.constraints",)),
    "loss": ("keras.losses", ("keras.src.losses",)),
    "metric": ("keras.metrics", ("keras.src.metrics", "keras.src.losses")),
    "optimizer": ("keras.optimizers", ("keras.src.optimizers",)),
    "schedule": ("keras.optimizers.schedules", ("keras.src.optimizers.schedules",)),
    "dtype_policy": ("keras.dtype_policies", ("keras.src.dtype_policies",)),
}
#: Keras-internal classes that every saved Functional model names, not exported publicly.
EXTRA_CLASSES = {"model": {"Functional": "keras.src.models.functional"}}
#: Helpers exported beside the objects: never objects of a slot.
HELPERS = {"get", "serialize", "deserialize"}
#: Keras saves optimizers as their backend-specific subclass (keras.src.backend.torch.optimizers.torch_adam.Adam).
BACKEND_OPTIMIZER_MODULE = re.compile(r"^keras\.src\.backend\.(tensorflow|torch|jax|numpy|openvino)\.optimizers(\.[a-z_0-9]+)?$")
#: Layers in keras.layers that run code from the file or read other files: the pre-scan reports them
#: as risks (allowed only with --trust), never as plain allowlisted layers.
CODE_LAYERS = {"Lambda", "TorchModuleWrapper", "TFSMLayer"}


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    kind: str  #: "class" or "function"
    modules: frozenset[str]  #: the ``module`` values under which Keras resolves exactly this object


@dataclasses.dataclass(frozen=True)
class Allowlist:
    keras_version: str
    keras_dir: str
    slots: dict[str, dict[str, Entry]]

    def get(self, slot: str, name: str) -> Entry | None:
        return self.slots.get(slot, {}).get(name)

    def size(self) -> int:
        return sum(len(v) for v in self.slots.values())

    def modules(self) -> set[str]:
        return {m for entries in self.slots.values() for e in entries.values() for m in e.modules}


def keras_dir() -> Path:
    spec = importlib.util.find_spec("keras")  # finds the package without executing it
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("keras is not installed: the pre-scan's allowlist is generated from it")
    return Path(list(spec.submodule_search_locations)[0])


@functools.lru_cache(maxsize=4)
def _generate(root: str, stamp: float) -> Allowlist:
    base = Path(root)
    slots: dict[str, dict[str, Entry]] = {}
    for slot, (namespace, packages) in NAMESPACES.items():
        init = base.joinpath(*namespace.split(".")[1:], "__init__.py")
        entries: dict[str, Entry] = {}
        for exported, source_module in _exports(init):
            if exported in HELPERS or exported.startswith("_"):
                continue
            if not any(source_module == p or source_module.startswith(p + ".") for p in packages):
                continue  # re-exported from elsewhere (TFSMLayer from keras.src.export): not admitted
            kind = _defined_as(base, source_module, exported)
            if kind is None:
                continue
            if slot in ("layer", "model", "regularizer", "constraint", "optimizer", "schedule", "dtype_policy") and kind != "class":
                continue  # keras.layers.Input is a function; only classes are layers
            if slot == "activation" and kind != "function":
                continue
            old = entries.get(exported)
            modules = {namespace, source_module} | (old.modules if old else set())
            entries[exported] = Entry(exported, kind, frozenset(modules))
        for name, module in EXTRA_CLASSES.get(slot, {}).items():
            entries[name] = Entry(name, "class", frozenset({module}))
        slots[slot] = entries
    # Top-level re-exports Keras writes into configs (module "keras": DTypePolicy, Sequential, Model...).
    for exported, source_module in _exports(base / "__init__.py"):
        for slot in ("model", "dtype_policy"):
            e = slots[slot].get(exported)
            if e is not None and source_module in e.modules:
                slots[slot][exported] = Entry(e.name, e.kind, e.modules | {"keras"})
    return Allowlist(_version(base), str(base), slots)


def generate() -> Allowlist:
    """The allowlist for the installed Keras (cached per process, regenerated when Keras changes)."""
    root = keras_dir()
    init = root / "layers" / "__init__.py"
    return _generate(str(root), init.stat().st_mtime)


def _exports(init: Path) -> list[tuple[str, str]]:
    """``(exported name, source module)`` for each ``from X import Y as Z`` in a generated API file."""
    try:
        tree = ast.parse(init.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return []
    out = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                out.append((alias.asname or alias.name, node.module))
    return out


_TOP_LEVEL = re.compile(r"^(?:(class|def|async def)\s+(\w+)|(\w+)\s*=\s*(\w+)\s*$)", re.M)


@functools.lru_cache(maxsize=2048)
def _module_tree(path: str) -> dict[str, str]:
    """Top-level classes and functions of a source file (and ``alias = name`` lines), by a line scan:
    parsing ~180 Keras modules with ast took a second per CLI run; column-0 definitions are the same set."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for m in _TOP_LEVEL.finditer(text):
        if m.group(2):
            out.setdefault(m.group(2), "class" if m.group(1) == "class" else "function")
        else:
            out.setdefault(m.group(3), out.get(m.group(4), "alias"))
    return out


def _defined_as(base: Path, module: str, name: str) -> str | None:
    rel = Path(*module.split(".")[1:])
    for candidate in (base / rel.with_suffix(".py"), base / rel / "__init__.py"):
        if candidate.exists():
            kind = _module_tree(str(candidate)).get(name)
            return None if kind == "alias" else kind
    return None


def _version(base: Path) -> str:
    try:
        text = (base / "src" / "version.py").read_text(encoding="utf-8")
    except OSError:
        return "unknown"
    m = re.search(r"__version__\s*=\s*[\"']([^\"']+)", text)
    return m.group(1) if m else "unknown"

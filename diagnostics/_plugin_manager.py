"""Loading plugins: the built-in ones and the third-party entry points, through one path.

As in pytest, the built-in analyzers are plugins listed in :data:`DEFAULT_PLUGINS` and loaded
exactly like the modules named by ``diagnostics`` entry points. Loading is lazy and happens once
per :class:`PluginHost`. A plugin that fails to import, declares an incompatible hook API version,
implements a misspelled hook or raises while registering is recorded with its name and the
problem; the others still load (``strict=True`` turns the first such problem into an error).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import os
import traceback
from typing import Any, Callable

import pluggy

from . import _hookspecs as hookspecs
from .analyzer import Analyzer

ENTRY_POINT_GROUP = "diagnostics"
DISABLE_ENV = "DIAGNOSTICS_DISABLE_PLUGINS"
#: Built-in plugins: module paths, loaded through the same function as entry points.
DEFAULT_PLUGINS: tuple[tuple[str, str], ...] = (
    ("architecture", "diagnostics_plugins.architecture"),
    ("weights", "diagnostics_plugins.weights"),
    ("health_gradients", "diagnostics_plugins.health_gradients"),
    ("health_temporal", "diagnostics_plugins.health_temporal"),
    ("health_overfitting", "diagnostics_plugins.health_overfitting"),
    ("health_spectra", "diagnostics_plugins.health_spectra"),
    ("health_gan", "diagnostics_plugins.health_gan"),
    ("zoo", "diagnostics_plugins.zoo"),
    ("keras2_compat", "diagnostics_plugins.keras2_compat"),
    ("explain_gradients", "diagnostics_plugins.explain_gradients"),
    ("explain_captum", "diagnostics_plugins.explain_captum"),
    ("explain_lime", "diagnostics_plugins.explain_lime"),
    ("explain_shap", "diagnostics_plugins.explain_shap"),
    ("shortcut", "diagnostics_plugins.shortcut"),
    ("predictions_quality", "diagnostics_plugins.predictions_quality"),
    ("data_drift", "diagnostics_plugins.data_drift"),
    ("data_leakage", "diagnostics_plugins.data_leakage"),
)


class PluginError(Exception):
    """A plugin could not be used; raised only in strict mode or for lookups of unknown names."""


@dataclasses.dataclass
class PluginRecord:
    """What the host knows of one plugin, for ``diagnose plugins`` and the report."""

    name: str
    module: str
    version: str
    builtin: bool
    hooks: list[str] = dataclasses.field(default_factory=list)
    analyzers: list[str] = dataclasses.field(default_factory=list)
    custom_objects: list[str] = dataclasses.field(default_factory=list)
    datasets: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None
    disabled: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class AnalyzerEntry:
    cls: type[Analyzer]
    plugin: str


def disabled_from_env() -> set[str]:
    raw = os.environ.get(DISABLE_ENV, "")
    return {n.strip() for n in raw.split(",") if n.strip()}


class PluginHost:
    """Loads plugins once and keeps what they registered.

    ``disabled`` names plugins not to load at all (``--disable``, ``DIAGNOSTICS_DISABLE_PLUGINS``;
    the name ``*`` blocks every entry-point plugin but the built-ins).
    """

    def __init__(self, disabled: set[str] | frozenset[str] = frozenset(), strict: bool = False,
                 extra: tuple[tuple[str, Any], ...] = ()):
        self.disabled = set(disabled) | disabled_from_env()
        self.strict = strict
        self.extra = extra  # (name, module-or-object) pairs registered in-process, e.g. by tests
        self._loaded = False
        self.records: dict[str, PluginRecord] = {}
        self.analyzers: dict[str, AnalyzerEntry] = {}
        self.custom_objects: dict[str, Any] = {}
        self.datasets: dict[str, Callable[[int], dict]] = {}
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)

    # -- loading -------------------------------------------------------------------------------
    def load(self) -> "PluginHost":
        if self._loaded:
            return self
        self._loaded = True
        for name, target in DEFAULT_PLUGINS:
            self._load_one(name, target, version=_dist_version("diagnostics"), builtin=True)
        for ep in _entry_points():
            version = ep.dist.version if ep.dist is not None else "?"
            self._load_one(ep.name, ep.value, version=version, builtin=False)
        for name, obj in self.extra:
            self._load_one(name, obj, version="local", builtin=False)
        self._collect()
        return self

    def _blocked(self, name: str, builtin: bool) -> bool:
        return name in self.disabled or ("*" in self.disabled and not builtin)

    def _load_one(self, name: str, target: Any, version: str, builtin: bool) -> None:
        module_name = target if isinstance(target, str) else getattr(target, "__name__", repr(target))
        record = PluginRecord(name=name, module=module_name, version=version, builtin=builtin)
        if name in self.records:
            record.error = f"a plugin named {name!r} is already loaded from {self.records[name].module}"
            self._fail(record, key=f"{name}@{module_name}")
            return
        self.records[name] = record
        if self._blocked(name, builtin):
            record.disabled = True
            return
        try:
            plugin = _import_target(target) if isinstance(target, str) else target
        except BaseException as e:  # noqa: BLE001 - a plugin's import may raise anything
            if isinstance(e, KeyboardInterrupt):
                raise
            record.error = f"failed to import {module_name}: {type(e).__name__}: {e}"
            self._fail(record)
            return
        declared = getattr(plugin, "DIAGNOSTICS_API_VERSION", hookspecs.HOOK_API_VERSION)
        if declared != hookspecs.HOOK_API_VERSION:
            record.error = (
                f"declares hook API version {declared!r}, but this diagnostics provides version "
                f"{hookspecs.HOOK_API_VERSION}: install a release of the plugin made for API "
                f"{hookspecs.HOOK_API_VERSION}, or a diagnostics that provides API {declared!r}")
            self._fail(record)
            return
        try:
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except pluggy.PluginValidationError as e:
            self.pm.unregister(name=name)
            record.error = f"invalid hook implementation: {e}"
            self._fail(record)
            return
        record.hooks = sorted(impl_name for impl_name in dir(plugin)
                              if impl_name in _HOOK_NAMES and callable(getattr(plugin, impl_name)))

    def _collect(self) -> None:
        """Call each plugin's registration hooks separately, so a failure is attributed to it."""
        for hook_name, register_for in (
            ("register_analyzers", self._analyzer_registrar),
            ("register_custom_objects", self._custom_object_registrar),
            ("register_datasets", self._dataset_registrar),
        ):
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                record = self.records[impl.plugin_name]
                if record.error:
                    continue
                try:
                    impl.function(register=register_for(record))
                except Exception as e:  # noqa: BLE001
                    record.error = f"{hook_name} raised {type(e).__name__}: {e}"
                    self._fail(record)

    def _analyzer_registrar(self, record: PluginRecord):
        def register(cls):
            if not (isinstance(cls, type) and issubclass(cls, Analyzer)):
                raise TypeError(f"register() takes an Analyzer subclass, got {cls!r}")
            problems = cls.metadata_problems()
            if problems:
                raise ValueError(f"analyzer {cls.__name__}: " + "; ".join(problems))
            if cls.name in self.analyzers:
                other = self.analyzers[cls.name].plugin
                raise ValueError(f"analyzer name {cls.name!r} is already registered by plugin {other!r}")
            self.analyzers[cls.name] = AnalyzerEntry(cls, record.name)
            record.analyzers.append(cls.name)
        return register

    def _custom_object_registrar(self, record: PluginRecord):
        def register(name: str, obj: Any):
            if not isinstance(name, str) or not name:
                raise TypeError(f"register() takes a name string first, got {name!r}")
            self.custom_objects[name] = obj
            record.custom_objects.append(name)
        return register

    def _dataset_registrar(self, record: PluginRecord):
        def register(name: str, loader: Callable[[int], dict]):
            if not callable(loader):
                raise TypeError(f"dataset {name!r}: loader must be callable, got {loader!r}")
            if name in self.datasets:
                raise ValueError(f"dataset {name!r} is already registered")
            self.datasets[name] = loader
            record.datasets.append(name)
        return register

    def _fail(self, record: PluginRecord, key: str | None = None) -> None:
        if key is not None:
            self.records[key] = record
        if self.strict:
            raise PluginError(f"plugin {record.name!r}: {record.error}")

    # -- queries -------------------------------------------------------------------------------
    @property
    def problems(self) -> list[str]:
        return [f"plugin {r.name!r}: {r.error}" for r in self.records.values() if r.error]

    def analyzer(self, name: str) -> AnalyzerEntry:
        self.load()
        try:
            return self.analyzers[name]
        except KeyError:
            raise PluginError(unknown_analyzer(name, self.analyzers)) from None


_HOOK_NAMES = {n for n in dir(hookspecs) if n.startswith("register_")}


def resolve_object(obj: Any) -> Any:
    """A registered custom object, given either itself or an ``"module:attr"`` import path."""
    if isinstance(obj, str) and ":" in obj:
        module, _, attr = obj.partition(":")
        value = importlib.import_module(module)
        for part in attr.split("."):
            value = getattr(value, part)
        return value
    return obj


def _import_target(target: str):
    module, _, attr = target.partition(":")
    value = importlib.import_module(module)
    for part in filter(None, attr.split(".")):
        value = getattr(value, part)
    return value


def _entry_points():
    return sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def format_exception(e: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(e), e)).strip()


def unknown_analyzer(name: str, known) -> str:
    """Why ``name`` selects nothing, and the names it was probably meant to be: the analyzers under it
    (``explain`` -> ``explain.*``) or named so after the dot (``lime`` -> ``explain.lime``), else the
    closest spellings (difflib, as Click and git suggest); the whole list only when nothing is close, so
    a one-letter typo is answered with one name, not thirteen."""
    import difflib

    known = sorted(known)
    stem = name.rstrip(".")
    close = [k for k in known if stem and (k.startswith(stem + ".") or k.endswith("." + stem))]
    if not close:
        score = {k: max(difflib.SequenceMatcher(None, name, k).ratio(),
                        difflib.SequenceMatcher(None, name, k.rpartition(".")[2]).ratio()) for k in known}
        best = max(score.values(), default=0.0)
        close = [k for k in known if score[k] >= max(0.75, best - 0.05)]  # the best, and any as good
    if not close:
        return f"unknown analyzer {name!r}; installed: {', '.join(known) or 'none'}"
    if len(close) <= 2:
        return f"unknown analyzer {name!r}; did you mean {' or '.join(close)}? ({len(known)} installed)"
    return f"unknown analyzer {name!r}; did you mean one of {', '.join(close)}? ({len(known)} installed)"

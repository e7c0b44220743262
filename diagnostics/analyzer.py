"""The analyzer contract: what a plugin implements and what the host hands it.

An analyzer is a class with metadata as class attributes (so the host can select it without
running anything, as Quantus does with metrics) and one method, :meth:`Analyzer.run`, which
takes a :class:`Context` and returns a :class:`Result`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import fnmatch
import math
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

MODEL_KINDS = frozenset({"image", "sequence", "token", "tabular", "generator"})
BACKENDS = ("tensorflow", "torch")
#: What an analyzer needs of the data: nothing, inputs only, inputs with labels, or both splits.
DATA_NEEDS = ("none", "x", "xy", "train_val")


class Severity(str, enum.Enum):
    """How bad a finding is. Ordered: ``info < warning < error``."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One thing an analyzer found.

    ``code`` is a stable dotted identifier (``"weights.nonfinite"``) that tests, CI rules and the
    dashboard key on; ``message`` says what was measured, why it matters and what usually fixes it;
    ``where`` names the layer, input or sample concerned ("" for the whole model).
    """

    code: str
    severity: Severity
    message: str
    where: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "severity", Severity(self.severity))
        if not self.code or not isinstance(self.code, str):
            raise ValueError(f"Finding.code must be a non-empty string, got {self.code!r}")
        if not isinstance(self.message, str) or not self.message:
            raise ValueError(f"Finding.message must be a non-empty string, got {self.message!r}")

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "severity": self.severity.value, "message": self.message, "where": self.where}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Finding":
        return cls(code=d["code"], severity=Severity(d["severity"]), message=d["message"], where=d.get("where", ""))


MetricValue = Any  # a JSON value: number, string, bool, or nested lists/dicts of those


@dataclasses.dataclass(frozen=True)
class Option:
    """One option an analyzer takes (``--option ANALYZER.NAME=VALUE``), declared as metadata so the
    host can reject a typo before loading anything and ``diagnose plugins --json`` can list it.

    ``type`` is ``int``, ``float``, ``bool``, ``str`` or ``object`` (any JSON value); ``choices``
    limits a string option to these values.
    """

    name: str
    type: type
    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None

    def with_default(self, default: Any) -> "Option":
        return dataclasses.replace(self, default=default)

    def parse(self, value: Any) -> Any:
        """``value`` checked (and widened: an int for a float option) against the type; ValueError says why."""
        t = self.type
        ok = (t is object or (t is bool and isinstance(value, bool))
              or (t is int and isinstance(value, int) and not isinstance(value, bool))
              or (t is float and isinstance(value, (int, float)) and not isinstance(value, bool))
              or (t is str and isinstance(value, str)))
        if not ok:
            what = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[t]
            raise ValueError(f"option {self.name!r} takes {what}, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"option {self.name!r} must be one of {', '.join(map(str, self.choices))}, got {value!r}")
        return float(value) if t is float else value

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "type": self.type.__name__ if self.type is not object else "json",
             "default": self.default, "help": self.help}
        if self.choices is not None:
            d["choices"] = list(self.choices)
        return d


@dataclasses.dataclass(frozen=True)
class Result:
    """What :meth:`Analyzer.run` returns.

    - ``findings``: the verdict-bearing part.
    - ``metrics``: JSON values (numbers, strings, lists, dicts). Non-finite floats are refused: a NaN
      metric is reported as a plugin problem, not silently written as invalid JSON.
    - ``artifacts``: name -> path *relative to* ``context.artifact_dir`` of a file the analyzer
      wrote there (arrays as ``.npy``, images as ``.png``). Never inline arrays in metrics.
    - ``skipped``: set (with :meth:`Result.skip`) when the analyzer decides at run time that it
      does not apply; the reason is shown to the user.
    """

    findings: tuple[Finding, ...] = ()
    metrics: Mapping[str, MetricValue] = dataclasses.field(default_factory=dict)
    artifacts: Mapping[str, str] = dataclasses.field(default_factory=dict)
    skipped: str | None = None
    #: one typed section per explanation method (:class:`~diagnostics._verdicts.MethodExplanation`)
    explanations: tuple[Any, ...] = ()
    #: one typed section per health measure (:class:`~diagnostics._measures.MeasureSection`), written by
    #: the host's judging of a :class:`~diagnostics._measures.HealthAnalyzer`
    measures: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "findings", tuple(self.findings))
        object.__setattr__(self, "explanations", tuple(self.explanations))
        object.__setattr__(self, "measures", tuple(self.measures))
        object.__setattr__(self, "metrics", dict(self.metrics))
        object.__setattr__(self, "artifacts", dict(self.artifacts))

    @classmethod
    def skip(cls, reason: str) -> "Result":
        return cls(skipped=reason)


def validate_result(result: Any, artifact_dir: Path | None = None) -> list[str]:
    """Problems that make ``result`` unusable by the host, as sentences ([] when it is fine)."""
    if not isinstance(result, Result):
        return [f"run() returned {type(result).__name__}, expected diagnostics.Result"]
    problems: list[str] = []
    for f in result.findings:
        if not isinstance(f, Finding):
            problems.append(f"findings contains {type(f).__name__}, expected diagnostics.Finding")
    for path in _nonfinite_paths(result.metrics, "metrics"):
        problems.append(f"{path} is not a finite number")
    for path in _non_json_paths(result.metrics, "metrics"):
        problems.append(f"{path} is not a JSON value")
    from ._verdicts import MethodExplanation

    for e in result.explanations:
        if not isinstance(e, MethodExplanation):
            problems.append(f"explanations contains {type(e).__name__}, expected diagnostics.MethodExplanation")
    from ._measures import MeasureSection

    for s in result.measures:
        if not isinstance(s, MeasureSection):
            problems.append(f"measures contains {type(s).__name__}, expected diagnostics.MeasureSection")
    named = [(f"{e.method} {k}", v) for e in result.explanations if isinstance(e, MethodExplanation)
             for k, v in e.artifacts.items()]
    named += [(f"{s.code} chart", s.chart) for s in result.measures if isinstance(s, MeasureSection) and s.chart]
    for name, rel in [*result.artifacts.items(), *named]:
        if not isinstance(rel, str) or Path(rel).is_absolute() or ".." in Path(rel).parts:
            problems.append(f"artifact {name!r} must be a relative path inside the artifact directory, got {rel!r}")
        elif artifact_dir is not None and not (artifact_dir / rel).is_file():
            problems.append(f"artifact {name!r} points to {rel!r}, which the analyzer did not write")
    return problems


def _nonfinite_paths(value: Any, path: str):
    if isinstance(value, float) and not math.isfinite(value):
        yield path
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _nonfinite_paths(v, f"{path}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _nonfinite_paths(v, f"{path}[{i}]")


def _non_json_paths(value: Any, path: str):
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, str):
                yield f"{path} key {k!r}"
            yield from _non_json_paths(v, f"{path}[{k!r}]")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _non_json_paths(v, f"{path}[{i}]")
    else:
        yield f"{path} ({type(value).__name__})"


@dataclasses.dataclass
class Data:
    """The arrays an analyzer may use. Any of them may be None.

    ``extras`` holds further arrays from the data file or dataset, e.g. ground-truth masks
    (``mask_val``: which input positions decide the label) for the zoo's synthetic tasks.
    """

    x_train: Any = None
    y_train: Any = None
    x_val: Any = None
    y_val: Any = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)
    source: str = ""  #: where the data came from, for the report ("data.npz", "dataset digits28 seed 0")

    @property
    def x(self):
        """The evaluation inputs: validation data when there is some, else training data."""
        return self.x_val if self.x_val is not None else self.x_train

    @property
    def y(self):
        return self.y_val if self.x_val is not None else self.y_train

    def feature_names(self, n: int) -> list[str]:
        """Names of the ``n`` columns of a table: ``extras["feature_names"]`` when the data file or
        dataset gives exactly ``n`` of them, else ``feature 0`` ... ``feature n-1``. Names come from a
        file: escape them wherever they are printed (the report's writers do)."""
        raw = self.extras.get("feature_names") if self.extras else None
        if raw is not None:
            names = [str(v) for v in (raw.tolist() if hasattr(raw, "tolist") else list(raw))]
            if len(names) == n:
                return names
        return [f"feature {i}" for i in range(n)]

    def has(self, need: str) -> bool:
        if need == "none":
            return True
        if need == "x":
            return self.x is not None
        if need == "xy":
            return self.x is not None and self.y is not None
        if need == "train_val":
            return all(a is not None for a in (self.x_train, self.y_train, self.x_val, self.y_val))
        raise ValueError(f"unknown data need {need!r}; expected one of {DATA_NEEDS}")


@dataclasses.dataclass
class ModelInfo:
    """What the host learnt of the model before any analyzer ran (see diagnostics.modelinfo)."""

    name: str
    kind: str  #: one of MODEL_KINDS
    input_shapes: list[list[int | None]]
    input_dtypes: list[str]
    output_shapes: list[list[int | None]]
    output_activation: str | None
    n_params: int
    n_layers: int
    loss: str | None = None  #: the loss from the compile config, if the file had one
    input_names: list[str] = dataclasses.field(default_factory=list)  #: in model.inputs order
    output_names: list[str] = dataclasses.field(default_factory=list)  #: the layers producing model.outputs, in order

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Context:
    """Everything an analyzer gets. Built by the host; analyzers must not mutate the model.

    Attributes:
        model: the loaded ``keras.Model`` (under torch it is also a ``torch.nn.Module``).
        info: :class:`ModelInfo`, including ``kind`` (image / sequence / token / tabular / generator).
        data: :class:`Data`, or None when the run has no data.
        history: per-epoch training history ``{"loss": [...], "val_loss": [...], ...}`` or None.
        metadata: the model's sidecar metadata (zoo models) or {}.
        seed: seed for every random choice; same seed, same result.
        artifact_dir: a private, existing directory for this analyzer's files.
        budget_s: seconds the host allows; long work should check :meth:`time_left`.
        backend: the Keras backend this process runs ("tensorflow" or "torch").
        options: analyzer options from the command line / API (``--option name.key=value``).
        companions: other models named by the sidecar (e.g. a GAN's discriminator), loaded lazily by
            :meth:`companion`.
        progress: call ``progress(done, total, message)`` on long work; the host shows a bar.
    """

    model: Any
    info: ModelInfo
    data: Data | None
    history: dict[str, list[float]] | None
    metadata: dict[str, Any]
    seed: int
    artifact_dir: Path
    budget_s: float
    backend: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    progress: Callable[[int, int, str], None] = lambda done, total, message="": None
    _companion_loader: Callable[[str], Any] | None = None
    _deadline: float | None = None
    _phases: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def model_kind(self) -> str:
        return self.info.kind

    def companion(self, role: str):
        """Load a model the sidecar names under ``companions[role]`` (safe loading applies)."""
        if self._companion_loader is None:
            raise LookupError(f"no companion model {role!r}: this run has no sidecar metadata naming one")
        return self._companion_loader(role)

    def time_left(self) -> float:
        import time

        return float("inf") if self._deadline is None else self._deadline - time.monotonic()

    def timed(self, phase: str) -> "contextlib.AbstractContextManager[None]":
        """Time a phase of this analyzer's work for the report: ``with context.timed("randomisation"): ...``.

        The seconds spent inside the block are added to ``phases[phase]`` (a phase entered several times
        is summed), and the report lists them under the analyzer beside its total, so that the CLI
        (``-v``), the HTML report and the dashboard can say where its time went. Phases should not nest:
        the time the analyzer spent outside every phase is shown as ``other``.
        """
        if not isinstance(phase, str) or not phase:
            raise ValueError(f"a phase name must be a non-empty string, got {phase!r}")
        return _Timer(self._phases, phase)

    @property
    def phases(self) -> dict[str, float]:
        """Seconds per phase timed so far with :meth:`timed` (a copy)."""
        return dict(self._phases)


class _Timer:
    def __init__(self, phases: dict[str, float], name: str):
        self.phases, self.name = phases, name

    def __enter__(self) -> None:
        import time

        self.t0 = time.perf_counter()

    def __exit__(self, *exc) -> bool:
        import time

        self.phases[self.name] = self.phases.get(self.name, 0.0) + time.perf_counter() - self.t0
        return False


class Analyzer:
    """Base class of every analyzer, built-in or third-party.

    Subclasses set the metadata below and implement :meth:`run`. Register the class from a plugin
    with the ``register_analyzers`` hook. The host instantiates it with no arguments.

    Metadata (class attributes):
        name: unique identifier, lower-case with dots/underscores (``"weights"``, ``"explain.ig"``).
        category: ``"model"``, ``"health"``, ``"explanation"`` or your own.
        description: one line shown by ``diagnose plugins``.
        model_kinds: the model kinds it applies to (subset of MODEL_KINDS).
        data: what it needs of the data: ``"none"``, ``"x"``, ``"xy"`` or ``"train_val"``.
        backends: Keras backends it can run under, preferred first.
        requires: import names of optional libraries it needs (checked without importing them).
        reference: the paper or document the method implements.
        options: the :class:`Option` s it reads from ``context.options`` (None: not declared, any key
            is passed through unchecked). ``--option ANALYZER.KEY=...`` with an undeclared KEY is a
            usage error before anything loads.
        explains: the other analyzers' findings a warning or error of this one explains (cause before
            symptom): a glob of finding codes -> the sentence that says how, or -> {glob of this
            analyzer's own codes: sentence} when the sentence depends on which cause it found. The host
            leads each such finding's message with it, naming this analyzer's findings
            ({"health.overfitting.gap": "the validation inputs are distributed unlike the training inputs..."}).
    """

    name: ClassVar[str] = ""
    category: ClassVar[str] = "model"
    description: ClassVar[str] = ""
    model_kinds: ClassVar[frozenset[str]] = MODEL_KINDS
    data: ClassVar[str] = "none"
    backends: ClassVar[tuple[str, ...]] = BACKENDS
    requires: ClassVar[tuple[str, ...]] = ()
    reference: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...] | None] = None
    explains: ClassVar[Mapping[str, str | Mapping[str, str]]] = {}

    @classmethod
    def declared_options(cls) -> tuple[Option, ...] | None:
        """The options this analyzer takes (None when it does not declare them)."""
        return cls.options

    def run(self, context: Context) -> Result:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def metadata_problems(cls) -> list[str]:
        """Why the host cannot use this class ([] when its metadata is complete)."""
        problems = []
        if not isinstance(cls.name, str) or not cls.name or cls.name != cls.name.strip().lower() or " " in cls.name:
            problems.append(f"name must be a non-empty lower-case identifier, got {cls.name!r}")
        if not cls.description:
            problems.append("description is empty")
        if not set(cls.model_kinds) or not set(cls.model_kinds) <= MODEL_KINDS:
            problems.append(f"model_kinds must be a non-empty subset of {sorted(MODEL_KINDS)}, got {sorted(cls.model_kinds)}")
        if cls.data not in DATA_NEEDS:
            problems.append(f"data must be one of {DATA_NEEDS}, got {cls.data!r}")
        if not cls.backends or not set(cls.backends) <= set(BACKENDS):
            problems.append(f"backends must be a non-empty subset of {BACKENDS}, got {cls.backends!r}")
        if cls.run is Analyzer.run:
            problems.append("run() is not implemented")
        explains = cls.explains

        def sentence(v) -> bool:
            return isinstance(v, str) and bool(v.strip())

        def fine(v) -> bool:  # a sentence, or {glob of this analyzer's codes: sentence}
            return sentence(v) or (isinstance(v, Mapping) and bool(v) and all(
                isinstance(g, str) and g and sentence(s) for g, s in v.items()))

        if not isinstance(explains, Mapping) or not all(isinstance(k, str) and k and fine(v) for k, v in explains.items()):
            problems.append(f"explains must map finding-code globs to non-empty sentences (or to {{glob of its own "
                            f"codes: sentence}}), got {explains!r}")
        elif any(fnmatch.fnmatchcase(f"{cls.name}.x", k) for k in explains):
            problems.append(f"explains names this analyzer's own findings ({', '.join(sorted(explains))}): a cause "
                            f"explains other analyzers' findings")
        return problems

"""Health as a type: declared measures, one judging pipeline, and the typed report section.

What :mod:`diagnostics.explainers` did for explanations, this does for health checks:

- :class:`Measure`: one quantity a health analyzer measures, declared as class metadata (Quantus
  style): its name, title, unit, scale, scope (model / layer / epoch / class / feature), which
  direction is worse, the threshold keys of its warning and error, and the paper or reason behind
  them. Nothing is measured by declaring it.
- :class:`HealthAnalyzer`: an :class:`~diagnostics.Analyzer` whose plugin writes one
  ``measure(context) -> Measurements`` (a list of :class:`Value` s). The host judges every value
  against its thresholds with the same :class:`~diagnostics._verdicts.Outcome` the explanations use
  (on the conservative end of the value's interval when it has one), names each finding
  ``<analyzer>.<measure>``, and draws one chart per measure (:mod:`diagnostics._measure_charts`).
- :class:`MeasureSection`: the report's typed section for one measure (beside
  :class:`~diagnostics._verdicts.MethodExplanation`), which the HTML report, the dashboard, the sweep
  index, MLflow, JUnit and the summary read, so none of them guesses at metric keys.

Plain dataclasses and enums, no numpy: the CLI and the dashboard import this.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Any, ClassVar, Mapping, Sequence

from .analyzer import Analyzer, Context, Finding, Result, Severity
from ._verdicts import Outcome


class Scope(enum.StrEnum):
    """What one value of a measure is about: the whole model, or one layer, epoch, class or feature."""

    MODEL = "model"
    LAYER = "layer"
    EPOCH = "epoch"
    CLASS = "class"
    FEATURE = "feature"


class Direction(enum.StrEnum):
    """Which values are worse. ``band``: values outside ``[low, high]`` are; ``neutral``: never judged
    (a value shown for context, such as the loss per epoch)."""

    HIGHER_IS_WORSE = "higher_is_worse"
    LOWER_IS_WORSE = "lower_is_worse"
    BAND = "band"
    NEUTRAL = "neutral"


#: The severity of the finding each outcome of a health check makes.
SEVERITY_OF = {Outcome.DOUBTFUL: Severity.WARNING, Outcome.FAILED: Severity.ERROR}


@dataclasses.dataclass(frozen=True)
class Measure:
    """One quantity a health analyzer measures (declared, as class metadata of a :class:`HealthAnalyzer`).

    - ``name``: identifier within the analyzer; findings on it are coded ``<analyzer>.<name>``.
    - ``title``: what the chart and the report call it ("Train − validation accuracy").
    - ``unit``: the unit of a value ("" for a plain number, "fraction", "epochs", "L2 norm").
    - ``scale``: ``linear`` or ``log`` (how a chart draws it).
    - ``scope``: a :class:`Scope`: one value for the model, or one per layer / epoch / class / feature.
    - ``direction``: a :class:`Direction`.
    - ``warning`` / ``error``: threshold keys in the analyzer's threshold section (see
      :func:`diagnostics.health.thresholds`); for ``band`` a pair of keys (low, high). None: no such level.
    - ``thresholds``: the threshold section the keys are in ("" = the analyzer's ``threshold_section``).
    - ``reference``: the paper or the reason behind the thresholds, shown with every finding.
    - ``advice``: what usually fixes it, ending the finding's message.
    - ``format``: how a value is printed (a format spec: ``.3g``, ``.0%``).
    """

    name: str
    title: str
    unit: str = ""
    scale: str = "linear"
    scope: Scope = Scope.MODEL
    direction: Direction = Direction.NEUTRAL
    warning: str | tuple[str, str] | None = None
    error: str | tuple[str, str] | None = None
    thresholds: str = ""
    reference: str = ""
    advice: str = ""
    format: str = ".3g"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", Scope(self.scope))
        object.__setattr__(self, "direction", Direction(self.direction))

    def problems(self) -> list[str]:
        """Why the host cannot judge this declaration ([] when it is complete)."""
        out = []
        if not self.name or not isinstance(self.name, str) or self.name != self.name.strip().lower() or " " in self.name:
            out.append(f"measure name must be a non-empty lower-case identifier, got {self.name!r}")
        if not self.title:
            out.append(f"measure {self.name!r} has no title")
        if self.scale not in ("linear", "log"):
            out.append(f"measure {self.name!r}: scale must be 'linear' or 'log', got {self.scale!r}")
        for level in ("warning", "error"):
            key = getattr(self, level)
            if key is None:
                continue
            if self.direction is Direction.NEUTRAL:
                out.append(f"measure {self.name!r} is neutral but names a {level} threshold")
            elif (self.direction is Direction.BAND) != isinstance(key, tuple):
                out.append(f"measure {self.name!r}: a band takes a (low, high) pair of threshold keys, a one-sided "
                           f"direction one key; {level} is {key!r}")
        return out


@dataclasses.dataclass(frozen=True)
class Value:
    """One measured value, as a plugin's ``measure()`` returns it.

    - ``measure``: the declared :class:`Measure`'s name.
    - ``value``: the number (None: not measurable here, e.g. non-finite; shown, never judged).
    - ``where``: the layer, epoch, class or feature ("" for a model-wide value, or the place a
      model-wide value is worst, such as the layer with the largest gradient).
    - ``series``: for several lines of one measure (``train`` and ``validation`` loss per epoch).
    - ``interval``: the 95% confidence interval, when the value has one: the host judges its
      conservative end, so a small sample cannot raise a finding the interval does not support.
    - ``n``: how many samples the value was measured on.
    - ``note``: what the plugin knows that the number does not say, appended to a finding
      ("on 512 validation samples; largest in dense_2: 4.1e3").
    - ``ceiling``: the strongest severity this value may support (``warning`` for a value measured
      without an interval, say); None: no ceiling.
    """

    measure: str
    value: float | None
    where: str = ""
    series: str = ""
    interval: tuple[float, float] | None = None
    n: int | None = None
    note: str = ""
    ceiling: Severity | None = None

    def __post_init__(self) -> None:
        if self.value is not None:
            v = float(self.value)
            object.__setattr__(self, "value", v if math.isfinite(v) else None)
        if self.interval is not None:
            object.__setattr__(self, "interval", (float(self.interval[0]), float(self.interval[1])))
        if self.ceiling is not None:
            object.__setattr__(self, "ceiling", Severity(self.ceiling))


@dataclasses.dataclass(frozen=True)
class Measurements:
    """What :meth:`HealthAnalyzer.measure` returns.

    ``values``: one :class:`Value` per measured thing. ``findings``: what no threshold on a value
    expresses (non-finite outputs, a diagnosis from several values); their codes start with the
    analyzer's name as every code does. ``metrics`` and ``artifacts`` as in :class:`~diagnostics.Result`
    (details the sections do not carry, further pictures). ``skipped``: why the analyzer does not apply.
    """

    values: Sequence[Value] = ()
    findings: Sequence[Finding] = ()
    metrics: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    artifacts: Mapping[str, str] = dataclasses.field(default_factory=dict)
    skipped: str | None = None

    @classmethod
    def skip(cls, reason: str) -> "Measurements":
        return cls(skipped=reason)


@dataclasses.dataclass(frozen=True)
class Judged:
    """One value in the report, with the host's judgment: its outcome and the threshold it crossed."""

    value: float | None
    where: str = ""
    series: str = ""
    interval: tuple[float, float] | None = None
    n: int | None = None
    note: str = ""
    outcome: Outcome = Outcome.PASSED
    threshold: float | None = None  #: the threshold crossed (None when it passed)

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        if self.interval is not None:
            object.__setattr__(self, "interval", tuple(self.interval))

    @property
    def label(self) -> str:
        """How a chart or a table names this value: ``where``, ``series``, both, or ``value``."""
        return " · ".join(p for p in (self.series, self.where) if p) or "value"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"value": self.value, "where": self.where, "outcome": self.outcome.value}
        for key in ("series", "note"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        if self.interval is not None:
            d["interval"] = list(self.interval)
        if self.n is not None:
            d["n"] = self.n
        if self.threshold is not None:
            d["threshold"] = self.threshold
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Judged":
        interval = d.get("interval")
        return cls(value=d.get("value"), where=d.get("where", ""), series=d.get("series", ""),
                   interval=None if interval is None else tuple(interval), n=d.get("n"), note=d.get("note", ""),
                   outcome=Outcome(d.get("outcome", "passed")), threshold=d.get("threshold"))


@dataclasses.dataclass(frozen=True)
class MeasureSection:
    """One measure of one analyzer in the report: its declaration, the thresholds it was judged
    against in this run (``{"warning": 0.05, "error": 0.2}``, a band as ``[low, high]``), every value
    with its outcome, and ``chart``: the picture the host drew (a path relative to the report
    directory once in a report; "" when there is none)."""

    measure: str
    code: str
    title: str
    unit: str = ""
    scale: str = "linear"
    scope: Scope = Scope.MODEL
    direction: Direction = Direction.NEUTRAL
    reference: str = ""
    thresholds: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    values: tuple[Judged, ...] = ()
    chart: str = ""
    #: how the measure prints a value (its declared format spec), so every view writes it as the findings do
    format: str = ".3g"

    def __post_init__(self) -> None:
        object.__setattr__(self, "scope", Scope(self.scope))
        object.__setattr__(self, "direction", Direction(self.direction))
        object.__setattr__(self, "values", tuple(self.values))
        object.__setattr__(self, "thresholds", dict(self.thresholds))

    @property
    def worst(self) -> Outcome:
        rank = {Outcome.PASSED: 0, Outcome.DOUBTFUL: 1, Outcome.FAILED: 2}
        return max((v.outcome for v in self.values), key=rank.__getitem__, default=Outcome.PASSED)

    def value(self, where: str = "", series: str = "") -> float | None:
        """The value measured at ``where`` (and ``series``); KeyError lists the places there are."""
        for v in self.values:
            if v.where == where and v.series == series:
                return v.value
        raise KeyError(f"{self.code} has no value at {where or 'model'!r}; it has {[v.label for v in self.values]}")

    def to_dict(self) -> dict[str, Any]:
        return {"measure": self.measure, "code": self.code, "title": self.title, "unit": self.unit, "scale": self.scale,
                "scope": self.scope.value, "direction": self.direction.value, "reference": self.reference,
                "thresholds": dict(self.thresholds), "values": [v.to_dict() for v in self.values], "chart": self.chart,
                "format": self.format}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MeasureSection":
        return cls(measure=d["measure"], code=d["code"], title=d.get("title", d["measure"]), unit=d.get("unit", ""),
                   scale=d.get("scale", "linear"), scope=Scope(d.get("scope", "model")),
                   direction=Direction(d.get("direction", "neutral")), reference=d.get("reference", ""),
                   thresholds=d.get("thresholds", {}), values=tuple(Judged.from_dict(v) for v in d.get("values", ())),
                   chart=d.get("chart", ""), format=d.get("format", ".3g"))

    def relocated(self, prefix: str) -> "MeasureSection":
        """The same section with its chart path under ``prefix`` (the host's report layout)."""
        return dataclasses.replace(self, chart=f"{prefix}/{self.chart}") if self.chart else self


class HealthAnalyzer(Analyzer):
    """Base class of a health analyzer: declare ``measures``, implement :meth:`measure`.

    Metadata (class attributes, besides :class:`~diagnostics.Analyzer`'s):
        measures: the :class:`Measure` s it measures.
        threshold_section: the section of :data:`diagnostics._thresholds.DEFAULT_THRESHOLDS` its measures'
            threshold keys are in ("" = ``default_thresholds`` below, under the analyzer's name).
        default_thresholds: a third-party analyzer's own thresholds ``{key: value}``; overridden like
            the built-in ones (``--option NAME.KEY=VALUE`` or a section ``[NAME]`` of the thresholds file).

    The host calls :meth:`run`, which calls :meth:`measure` and judges what it returns (see
    :func:`judge`): do not override ``run``.
    """

    category: ClassVar[str] = "health"
    measures: ClassVar[tuple[Measure, ...]] = ()
    threshold_section: ClassVar[str] = ""
    default_thresholds: ClassVar[Mapping[str, float]] = {}

    def measure(self, context: Context) -> Measurements:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, context: Context) -> Result:
        measured = self.measure(context)
        if not isinstance(measured, Measurements):
            raise TypeError(f"measure() returned {type(measured).__name__}, expected diagnostics.Measurements")
        if measured.skipped:
            return Result.skip(measured.skipped)
        return judge(type(self), measured, thresholds_of(type(self), context.options), context.artifact_dir)

    @classmethod
    def declared_measure(cls, name: str) -> Measure:
        for m in cls.measures:
            if m.name == name:
                return m
        raise KeyError(f"{cls.name} declares no measure {name!r}; it declares {[m.name for m in cls.measures]}")

    @classmethod
    def metadata_problems(cls) -> list[str]:
        problems = super().metadata_problems()
        if cls.run is not HealthAnalyzer.run:
            problems.append("a HealthAnalyzer implements measure(), not run()")
        if cls.measure is HealthAnalyzer.measure:
            problems.append("measure() is not implemented")
        names = [m.name for m in cls.measures]
        if len(set(names)) != len(names):
            problems.append(f"measure names repeat: {names}")
        for m in cls.measures:
            if not isinstance(m, Measure):
                problems.append(f"measures contains {type(m).__name__}, expected diagnostics.Measure")
                continue
            problems.extend(m.problems())
        return problems


# -- the host's side -------------------------------------------------------------------------------
def thresholds_of(cls: type[HealthAnalyzer], options: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Every threshold section the analyzer's measures name, resolved for this run's options."""
    from ._thresholds import DEFAULT_THRESHOLDS, thresholds

    sections = {section_of(cls, m) for m in cls.measures if m.warning or m.error}
    return {s: thresholds(options, s, defaults=None if s in DEFAULT_THRESHOLDS else dict(cls.default_thresholds))
            for s in sections}


def section_of(cls: type[HealthAnalyzer], m: Measure) -> str:
    """The threshold section a measure's keys are in: its own, its analyzer's, or the analyzer's name."""
    return m.thresholds or cls.threshold_section or cls.name


def judge(cls: type[HealthAnalyzer], measured: Measurements, thresholds: Mapping[str, Mapping[str, float]],
          artifact_dir=None) -> Result:
    """The :class:`~diagnostics.Result` of a health analyzer: every value judged against its measure's
    thresholds, a finding ``<analyzer>.<measure>`` for each one that did not pass, a
    :class:`MeasureSection` per measure, and one chart per measure with more than one value."""
    declared = {m.name: m for m in cls.measures}
    unknown = sorted({v.measure for v in measured.values} - set(declared))
    if unknown:
        raise ValueError(f"measure() returned values of undeclared measure(s) {unknown}; {cls.name} declares "
                         f"{sorted(declared)}")
    findings: list[Finding] = []
    sections: list[MeasureSection] = []
    artifacts = dict(measured.artifacts)
    for m in cls.measures:
        values = [v for v in measured.values if v.measure == m.name]
        if not values:
            continue
        limits = _limits(m, thresholds.get(section_of(cls, m), {}))
        judged = []
        for v in values:
            outcome, crossed = _outcome(m, v, limits)
            judged.append(Judged(value=v.value, where=v.where, series=v.series, interval=v.interval, n=v.n,
                                 note=v.note, outcome=outcome, threshold=crossed))
            if outcome is not Outcome.PASSED:
                findings.append(Finding(f"{cls.name}.{m.name}", SEVERITY_OF[outcome], where=v.where,
                                        message=_message(m, v, outcome, crossed)))
        section = MeasureSection(measure=m.name, code=f"{cls.name}.{m.name}", title=m.title, unit=m.unit, scale=m.scale,
                                 scope=m.scope, direction=m.direction, reference=m.reference,
                                 thresholds={k: v for k, v in limits.items() if v is not None}, values=tuple(judged),
                                 format=m.format)
        if artifact_dir is not None and len(judged) > 1:
            from ._measure_charts import draw

            chart = draw(section, artifact_dir / f"measure_{m.name}.png")
            if chart:
                section = dataclasses.replace(section, chart=chart)
        sections.append(section)
    return Result(findings=(*measured.findings, *findings), metrics=measured.metrics, artifacts=artifacts, measures=tuple(sections))


def _limits(m: Measure, section: Mapping[str, float]) -> dict[str, Any]:
    def resolve(key):
        if key is None:
            return None
        if isinstance(key, tuple):
            return [float(section[key[0]]), float(section[key[1]])]
        return float(section[key])

    return {"warning": resolve(m.warning), "error": resolve(m.error)}


def _judged_end(m: Measure, v: Value) -> float:
    """The number that is judged: the value, or the end of its interval nearest to passing."""
    if v.interval is None:
        return v.value
    lo, hi = v.interval
    if m.direction is Direction.HIGHER_IS_WORSE:
        return lo
    if m.direction is Direction.LOWER_IS_WORSE:
        return hi
    return v.value


def _crosses(m: Measure, x: float, limit) -> bool:
    if limit is None:
        return False
    if m.direction is Direction.HIGHER_IS_WORSE:
        return x >= limit
    if m.direction is Direction.LOWER_IS_WORSE:
        return x < limit
    if m.direction is Direction.BAND:
        return not limit[0] <= x <= limit[1]
    return False


def _outcome(m: Measure, v: Value, limits: Mapping[str, Any]) -> tuple[Outcome, Any]:
    if v.value is None or m.direction is Direction.NEUTRAL:
        return Outcome.PASSED, None
    x = _judged_end(m, v)
    if m.direction is Direction.BAND and v.interval is not None:
        # a band is crossed only when the whole interval lies outside it
        lo, hi = v.interval
        for level, outcome in (("error", Outcome.FAILED), ("warning", Outcome.DOUBTFUL)):
            band = limits[level]
            if band is not None and (hi < band[0] or lo > band[1]):
                return _capped(outcome, v), band
        return Outcome.PASSED, None
    for level, outcome in (("error", Outcome.FAILED), ("warning", Outcome.DOUBTFUL)):
        if _crosses(m, x, limits[level]):
            capped = _capped(outcome, v)
            if capped is outcome:
                return outcome, limits[level]
            if capped is Outcome.PASSED:
                return capped, None
            return capped, limits["warning"] if limits["warning"] is not None else limits[level]
    return Outcome.PASSED, None


def _capped(outcome: Outcome, v: Value) -> Outcome:
    """``outcome`` no stronger than the value's ceiling (its message then names the warning threshold)."""
    if v.ceiling is not None and v.ceiling.rank < SEVERITY_OF[outcome].rank:
        return Outcome.DOUBTFUL if v.ceiling is Severity.WARNING else Outcome.PASSED
    return outcome


def formatted(value: float | None, fmt: str) -> str:
    """A value as the measure prints it ("n/a" for None)."""
    return "n/a" if value is None else format(value, fmt)


def _message(m: Measure, v: Value, outcome: Outcome, crossed) -> str:
    unit = f" {m.unit}" if m.unit and "%" not in m.format else ""
    text = f"{m.title} {formatted(v.value, m.format)}{unit}"
    if v.interval is not None:
        text += f" (95% CI {formatted(v.interval[0], m.format)}–{formatted(v.interval[1], m.format)})"
    if v.n is not None:
        text += f" on {v.n} samples"
    level = SEVERITY_OF[outcome].value
    if m.direction is Direction.BAND:
        text += f", outside the healthy band {formatted(crossed[0], 'g')}–{formatted(crossed[1], 'g')}"
    else:
        side = "at or above" if m.direction is Direction.HIGHER_IS_WORSE else "below"
        text += f", {side} the {level} threshold {formatted(crossed, 'g')}"
    if m.reference:
        text += f" ({m.reference})"
    if v.note:
        text += f": {v.note}"
    if m.advice:
        text += f" — {m.advice}"
    return text

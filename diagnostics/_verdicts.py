"""The typed explanation section of the report: one :class:`MethodExplanation` per attribution method.

Written by :class:`diagnostics.explainers.ExplanationAnalyzer` (the one trust pipeline) and read by
the CLI table, the HTML report and the dashboard, so none of them has to guess which metric key an
analyzer wrote. Plain frozen dataclasses and enums, no numpy: the CLI imports this.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Mapping


class Verdict(str, enum.Enum):
    """How far an explanation method's maps can be trusted on this model and data."""

    TRUSTED = "trusted"
    #: only undecided checks kept it from "trusted": their intervals still straddle a threshold at the
    #: last look (more samples, or a longer budget, would decide them)
    UNDECIDED = "undecided"
    DOUBTFUL = "doubtful"
    FAILED = "failed"


class Outcome(str, enum.Enum):
    """The result of one trust check: ``passed``, or the verdict it pulls the method down to."""

    PASSED = "passed"
    #: the interval still straddles the pass threshold at the last look (diagnostics._intervals)
    UNDECIDED = "undecided"
    DOUBTFUL = "doubtful"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class Check:
    """One trust check of one method: what was measured (``value``) against which ``threshold``.

    ``higher_is_better`` says which side of the threshold passes; ``reason`` is the sentence shown
    when the check did not pass; ``detail`` holds the check's further numbers (curves, step counts).
    ``interval`` is the confidence interval of ``value`` at two-sided ``level`` (the level of the last
    look, see :mod:`diagnostics._intervals`) over ``samples`` audited samples; it, not ``value``,
    decided the ``outcome``. A check that measures a fact of the explained maps (finite attributions)
    has no interval.
    """

    name: str
    value: float | None
    threshold: float | None
    outcome: Outcome
    higher_is_better: bool = True
    reason: str = ""
    detail: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    interval: tuple[float, float] | None = None
    samples: int | None = None
    level: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        object.__setattr__(self, "detail", dict(self.detail))
        if self.interval is not None:
            object.__setattr__(self, "interval", (float(self.interval[0]), float(self.interval[1])))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "threshold": self.threshold, "outcome": self.outcome.value,
                "higher_is_better": self.higher_is_better, "reason": self.reason, "detail": dict(self.detail),
                "interval": None if self.interval is None else list(self.interval), "samples": self.samples,
                "level": self.level}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Check":
        """Reads schema 2-4 (a check without ``interval``, ``samples``, ``level`` predates issue 23)."""
        interval = d.get("interval")
        return cls(name=d["name"], value=d.get("value"), threshold=d.get("threshold"), outcome=Outcome(d["outcome"]),
                   higher_is_better=d.get("higher_is_better", True), reason=d.get("reason", ""),
                   detail=d.get("detail", {}), interval=None if interval is None else tuple(interval),
                   samples=d.get("samples"), level=d.get("level"))


@dataclasses.dataclass(frozen=True)
class MethodExplanation:
    """One attribution method's outcome in one analyzer.

    - ``method``: the explainer's name (``integrated_gradients``); ``reference``: the paper.
    - ``verdict`` and ``reasons``: from the ``checks`` (failed checks first, then doubtful ones).
    - ``sample_indices``: rows of the evaluation data explained; ``targets``: the output unit explained
      per sample and ``signs`` (-1 where class 0 of a one-unit sigmoid is explained as -p);
      ``target``: how the targets were chosen.
    - ``artifacts``: ``attributions`` (the raw attributions, one row per sample), ``inputs`` (the
      explained inputs themselves), ``map`` (one value per feature: pixel, time step, token, column)
      ``mask`` (planted ground truth, when the data has one) and ``labels`` (the true labels of the
      explained samples, when the data has them); paths relative to the report
      directory once in a report, to the analyzer's artifact directory in a :class:`~diagnostics.Result`.
    - ``skipped``: why a method offered by the analyzer did not run on this model ("" when it ran).
    """

    method: str
    verdict: Verdict | None
    reasons: tuple[str, ...] = ()
    checks: tuple[Check, ...] = ()
    sample_indices: tuple[int, ...] = ()
    targets: tuple[int, ...] = ()
    signs: tuple[float, ...] = ()
    target: str = ""
    artifacts: Mapping[str, str] = dataclasses.field(default_factory=dict)
    reference: str = ""
    space: str = "input"
    skipped: str = ""

    def __post_init__(self) -> None:
        if self.verdict is not None:
            object.__setattr__(self, "verdict", Verdict(self.verdict))
        for name in ("reasons", "checks", "sample_indices", "targets", "signs"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "artifacts", dict(self.artifacts))

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "verdict": None if self.verdict is None else self.verdict.value,
                "reasons": list(self.reasons), "checks": [c.to_dict() for c in self.checks],
                "sample_indices": list(self.sample_indices), "targets": list(self.targets), "signs": list(self.signs),
                "target": self.target, "artifacts": dict(self.artifacts), "reference": self.reference,
                "space": self.space, "skipped": self.skipped}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "MethodExplanation":
        return cls(method=d["method"], verdict=None if d.get("verdict") is None else Verdict(d["verdict"]),
                   reasons=tuple(d.get("reasons", ())), checks=tuple(Check.from_dict(c) for c in d.get("checks", ())),
                   sample_indices=tuple(d.get("sample_indices", ())), targets=tuple(d.get("targets", ())),
                   signs=tuple(d.get("signs", ())), target=d.get("target", ""), artifacts=d.get("artifacts", {}),
                   reference=d.get("reference", ""), space=d.get("space", "input"), skipped=d.get("skipped", ""))

    def relocated(self, prefix: str) -> "MethodExplanation":
        """The same section with every artifact path under ``prefix`` (the host's report layout)."""
        return dataclasses.replace(self, artifacts={k: f"{prefix}/{v}" for k, v in self.artifacts.items()})


def verdict_of(checks: tuple[Check, ...] | list[Check]) -> tuple[Verdict, tuple[str, ...]]:
    """The verdict the checks imply and its reasons: failed checks first, then doubtful ones, then
    undecided ones. A method whose only problems are undecided checks is ``undecided``, not failed."""
    failed = [c.reason for c in checks if c.outcome is Outcome.FAILED]
    doubts = [c.reason for c in checks if c.outcome is Outcome.DOUBTFUL]
    open_ = [c.reason for c in checks if c.outcome is Outcome.UNDECIDED]
    if failed:
        return Verdict.FAILED, tuple(failed + doubts + open_)
    if doubts:
        return Verdict.DOUBTFUL, tuple(doubts + open_)
    if open_:
        return Verdict.UNDECIDED, tuple(open_)
    return Verdict.TRUSTED, ()


def format_interval(interval: tuple[float, float] | None, digits: int = 2) -> str:
    """``[−0.01, 0.11]`` (a real minus sign), or "" without a finite interval."""
    if interval is None or not all(-1e300 < v < 1e300 for v in interval):
        return ""
    def fmt(v: float) -> str:
        text = f"{v:.{digits}f}"
        return "0." + "0" * digits if text.lstrip("-") == "0." + "0" * digits else text.replace("-", "\u2212")
    return f"[{fmt(interval[0])}, {fmt(interval[1])}]"


#: How a person reads the share of samples an axiom check counts (completeness: "complete on 3 of 8").
_WITHIN = {"completeness": "complete", "additivity": "additive"}


def phrase(check: Check) -> str:
    """What a person reads for a check, in the CLI table, the reports and the reasons:

    - an axiom check: "complete on 3 of 8 samples (all wanted)", "additive on 7 of 8 samples (90% wanted)";
    - a check with an interval: "faithfulness 0.047 [−0.01, 0.11], 8 samples: undecided against 0.02"
      ("..., lower wanted" when lower is better);
    - a check of a report written before intervals (schema 2-3): "stability 0.5 (> 0.8 wanted)".
    """
    v, t = check.value, check.threshold
    num = lambda x: "n/a" if x is None else f"{x:.3g}".replace("-", "\u2212")  # noqa: E731 - as the interval's
    if check.name in _WITHIN and check.samples and "within" in check.detail:
        wanted = "all wanted" if t is not None and t >= 1 else f"{num(None if t is None else t * 100)}% wanted"
        return f"{_WITHIN[check.name]} on {check.detail['within']} of {check.samples} samples ({wanted})"
    if check.samples:
        ci = format_interval(check.interval)
        lower = "" if check.higher_is_better else ", lower wanted"
        return (f"{check.name} {num(v)}{' ' + ci if ci else ''}, {check.samples} sample{'s' if check.samples != 1 else ''}: "
                f"{check.outcome.value} against {num(t)}{lower}")
    return f"{check.name} {num(v)} ({'>' if check.higher_is_better else '<'} {num(t)} wanted)"

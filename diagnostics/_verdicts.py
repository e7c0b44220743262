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
    DOUBTFUL = "doubtful"
    FAILED = "failed"


class Outcome(str, enum.Enum):
    """The result of one trust check: ``passed``, or the verdict it pulls the method down to."""

    PASSED = "passed"
    DOUBTFUL = "doubtful"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class Check:
    """One trust check of one method: what was measured (``value``) against which ``threshold``.

    ``higher_is_better`` says which side of the threshold passes; ``reason`` is the sentence shown
    when the check did not pass; ``detail`` holds the check's further numbers (curves, step counts).
    """

    name: str
    value: float | None
    threshold: float | None
    outcome: Outcome
    higher_is_better: bool = True
    reason: str = ""
    detail: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        object.__setattr__(self, "detail", dict(self.detail))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "threshold": self.threshold, "outcome": self.outcome.value,
                "higher_is_better": self.higher_is_better, "reason": self.reason, "detail": dict(self.detail)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Check":
        return cls(name=d["name"], value=d.get("value"), threshold=d.get("threshold"), outcome=Outcome(d["outcome"]),
                   higher_is_better=d.get("higher_is_better", True), reason=d.get("reason", ""),
                   detail=d.get("detail", {}))


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
    """The verdict the checks imply and its reasons: failed checks first, then doubtful ones."""
    failed = [c.reason for c in checks if c.outcome is Outcome.FAILED]
    doubts = [c.reason for c in checks if c.outcome is Outcome.DOUBTFUL]
    if failed:
        return Verdict.FAILED, tuple(failed + doubts)
    if doubts:
        return Verdict.DOUBTFUL, tuple(doubts)
    return Verdict.TRUSTED, ()

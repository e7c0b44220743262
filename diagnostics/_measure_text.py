"""How the views word a health measure (:class:`~diagnostics._measures.MeasureSection`), in plain text.

The HTML report, the notebook and the job summary read a section by its scope, direction and outcomes,
never by the analyzer's name or a metric key, so a new health analyzer shows in each of them unedited.
These functions compose the words they share ("error at ≥ 1e+03", "2 of 12 layers", the worst value);
each view escapes them for its sink (:mod:`diagnostics._textsafe`), as it escapes the names.
"""

from __future__ import annotations

from typing import Any

from ._measures import Direction, Judged, MeasureSection, Scope
from ._verdicts import Outcome

#: What a health outcome is called in the views: the severity of the finding it made.
OUTCOME_WORDS = {Outcome.PASSED: "passed", Outcome.DOUBTFUL: "warning", Outcome.FAILED: "error"}
_RANK = {Outcome.PASSED: 0, Outcome.DOUBTFUL: 1, Outcome.FAILED: 2}
_PLURAL = {Scope.MODEL: "values", Scope.LAYER: "layers", Scope.EPOCH: "epochs", Scope.CLASS: "classes",
           Scope.FEATURE: "features"}


def value(section: MeasureSection, v: Any) -> str:
    """A measured value as its measure prints it (its declared format; "n/a" when not measurable)."""
    try:
        return "n/a" if v is None else format(float(v), section.format)
    except ValueError:  # a format from a hostile file that is no format spec
        return number(v)


def number(v: Any) -> str:
    """A value or a threshold as the views print it ("n/a" when it was not measurable)."""
    return "n/a" if v is None else f"{float(v):.3g}"


def judged(section: MeasureSection) -> bool:
    """Whether the measure is judged at all (a neutral one, a loss per epoch say, is only shown)."""
    return section.direction is not Direction.NEUTRAL


def scope_words(section: MeasureSection) -> str:
    """What one value is about: ``model-wide``, or ``one per layer`` (epoch, class, feature)."""
    return "model-wide" if section.scope is Scope.MODEL else f"one per {section.scope.value}"


def where_heading(section: MeasureSection) -> str:
    """The heading of the column naming each value: the scope's noun (``layer``), ``where`` for a model."""
    return "where" if section.scope is Scope.MODEL else section.scope.value


def crossed(section: MeasureSection, threshold: Any) -> str:
    """The threshold a value crossed, as a relation (``≥ 0.1``, ``< 0.001``, ``outside 0.2–0.8``)."""
    if threshold is None:
        return ""
    if section.direction is Direction.BAND:
        lo, hi = threshold
        return f"outside {number(lo)}–{number(hi)}"
    return f"{'≥' if section.direction is Direction.HIGHER_IS_WORSE else '<'} {number(threshold)}"


def thresholds(section: MeasureSection) -> str:
    """The thresholds the measure was judged against in this run (``warning at ≥ 0.1, error at ≥ 0.5``,
    ``warning outside 0.2–0.8``)."""
    if not judged(section):
        return "shown, not judged"
    at = "" if section.direction is Direction.BAND else " at"
    parts = [f"{level}{at} {crossed(section, section.thresholds[level])}" for level in ("warning", "error")
             if section.thresholds.get(level) is not None]
    return ", ".join(parts) or "no threshold set"


def not_passed(section: MeasureSection) -> list[Judged]:
    """The values that did not pass, worst first (errors, then warnings; each in the section's order)."""
    bad = [v for v in section.values if v.outcome is not Outcome.PASSED]
    return sorted(bad, key=lambda v: -_RANK[v.outcome])


def worst_value(section: MeasureSection) -> Judged | None:
    """The value furthest past its threshold among those of the worst outcome (None when every value passed)."""
    bad = not_passed(section)
    if not bad:
        return None
    top = [v for v in bad if v.outcome is bad[0].outcome and v.value is not None] or bad[:1]

    def beyond(v: Judged) -> float:
        if v.value is None or v.threshold is None:
            return 0.0
        if section.direction is Direction.HIGHER_IS_WORSE:
            return v.value - float(v.threshold)
        if section.direction is Direction.LOWER_IS_WORSE:
            return float(v.threshold) - v.value
        lo, hi = v.threshold
        return max(float(lo) - v.value, v.value - float(hi))

    return max(top, key=beyond)


def tally(section: MeasureSection) -> str:
    """How many values did not pass, by outcome, out of how many (``1 error, 10 warnings of 21 layers``);
    a single value's outcome alone (``error``)."""
    if len(section.values) <= 1:
        return OUTCOME_WORDS[section.worst]
    bad = not_passed(section)
    parts = []
    for outcome in (Outcome.FAILED, Outcome.DOUBTFUL):
        k = sum(v.outcome is outcome for v in bad)
        if k:
            parts.append(f"{k} {OUTCOME_WORDS[outcome]}{'s' if k > 1 else ''}")
    return f"{', '.join(parts) or 'none'} of {len(section.values)} {_PLURAL[section.scope]}"


def interval(v: Judged) -> str:
    """A value's 95% interval (``0.2–0.4``), "" when it has none."""
    return "" if v.interval is None else f"{number(v.interval[0])}–{number(v.interval[1])}"

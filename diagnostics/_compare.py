"""``diagnose compare``: is the candidate model worse than the baseline, and where?

:func:`compare` reads two :class:`~diagnostics.report.Report` s (no model is loaded) and returns a
:class:`Comparison`: one :class:`Item` per compared thing, each with the two values, their intervals and
a :class:`Change`. The rules, so that noise is not called a regression:

- **analyzer** (its status): the same status on both sides is ``unchanged``; any other pair (ok -> skipped,
  ok -> failed, only on one side) is ``not_comparable``, and nothing inside that analyzer is compared: a
  check that did not run did not get worse.
- **measure** (every value of every declared :class:`~diagnostics._measures.Measure` with a direction, per
  layer / class / feature / series): when *both* values carry an interval, the value changed only when the
  intervals do not overlap (overlapping intervals are ``unchanged``, however far apart the two numbers are).
  Then the measure's direction says which way: to the better side is ``improved``; to the worse side is
  ``regressed`` when the candidate's value does not pass (or the baseline's did not either, or the measure
  has no thresholds), and ``changed`` when both pass: an interval is the sampling noise of one model, not
  the spread between two trainings of one recipe, so a real move within the healthy range is shown, not
  gated. Without an interval on both sides (and always for a ``band`` measure, which has no single worse
  side) the value changed only when it crossed one of its measure's own thresholds: its outcome (passed <
  doubtful < failed, as the run judged it) got worse or better. ``neutral`` measures (a loss curve, a parameter count) are context, not
  compared. A value measured on one side only, or not measurable (None) on one, is ``not_comparable``.
- **finding** (by analyzer, code and where): one that appears or rises in severity ``regressed``, with the
  candidate finding's severity; one that vanishes or falls ``improved``. An explanation finding
  (``<analyzer>.<method>.<verdict>``) is keyed without its verdict, so doubtful -> failed is one finding
  that rose, not one that vanished and one that appeared.
- **verdict** (of each explanation method): trusted > undecided > doubtful > failed; a worse verdict
  ``regressed``, a better one ``improved``; a method that ran on one side only is ``not_comparable``.
- **check** (each trust check of each method): as a measure, with the check's ``higher_is_better`` as its
  direction and its ``threshold``.
- **attribution** (per method, both reports on disk): the mean Spearman rank correlation of the two runs'
  ``map`` artifacts, sample by sample on the rows both runs explained (``sample_indices``; fewer than two
  in common is ``not_comparable``), with its 95% interval. Maps whose correlation interval lies wholly
  below :data:`ATTRIBUTION_MOVED_BELOW` ``changed``; others are ``unchanged``. A retrained model may
  legitimately explain itself differently, so this is shown, never gated on.
- **weights** (per layer, when both sides are model files with the same layers and shapes): the relative
  change ``||W_cand - W_base|| / ||W_base||``; ``changed`` when it is above :data:`WEIGHTS_MOVED_ABOVE`,
  else ``unchanged``; another architecture is ``not_comparable``. Shown, never gated on.

The severity of a regression is the candidate finding's severity for a finding, ``warning`` for a measure,
a verdict or a check. :meth:`Comparison.regressions` (``--fail-on``) compares with it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

from .analyzer import Severity

#: 1: the first version of ``compare.json``.
SCHEMA = 1
COMPARE_JSON = "compare.json"
COMPARE_HTML = "compare.html"
#: An attribution map moved when the upper end of the 95% interval of its rank correlation is below this.
ATTRIBUTION_MOVED_BELOW = 0.5
#: A layer's weights moved when their relative change is above this.
WEIGHTS_MOVED_ABOVE = 1e-6


class Kind(enum.StrEnum):
    """What an :class:`Item` compares."""

    ANALYZER = "analyzer"
    MEASURE = "measure"
    FINDING = "finding"
    VERDICT = "verdict"
    CHECK = "check"
    ATTRIBUTION = "attribution"
    WEIGHTS = "weights"


class Change(enum.StrEnum):
    """How the candidate compares with the baseline on one item.

    ``changed``: it moved, and has no worse side (weights, attribution maps): shown, never gated on.
    ``not_comparable``: one side lacks it or did not run it (ok -> skipped is this, not a regression).
    """

    REGRESSED = "regressed"
    IMPROVED = "improved"
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    NOT_COMPARABLE = "not_comparable"


_OUTCOME_RANK = {"passed": 0, "undecided": 1, "doubtful": 2, "failed": 3}
_VERDICT_RANK = {"trusted": 0, "undecided": 1, "doubtful": 2, "failed": 3}
_VERDICTS = ("trusted", "undecided", "doubtful", "failed")
_FAIL_ON = ("info", "warning", "error", "never")


@dataclasses.dataclass(frozen=True)
class Item:
    """One compared thing.

    - ``kind``: a :class:`Kind`; ``analyzer``: whose it is; ``name``: the measure's code, the finding's
      code, the method, ``method/check``, or the weights' layer path; ``where``: the layer, class or feature
      ("" for the model), with the ``series`` when a measure has several.
    - ``baseline`` / ``candidate``: the two values (a number, an outcome, a severity or a status; None: absent)
      and ``baseline_interval`` / ``candidate_interval`` their 95% intervals when they have one.
    - ``change``: a :class:`Change`; ``severity``: of a regression (None otherwise).
    - ``note``: why (the rule that decided, or why the item is not comparable).
    - ``format``: how the values print (the measure's declared format spec).
    """

    kind: Kind
    analyzer: str
    name: str
    change: Change
    where: str = ""
    series: str = ""
    baseline: Any = None
    candidate: Any = None
    baseline_interval: tuple[float, float] | None = None
    candidate_interval: tuple[float, float] | None = None
    severity: Severity | None = None
    note: str = ""
    format: str = ".3g"

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", Kind(self.kind))
        object.__setattr__(self, "change", Change(self.change))
        if self.severity is not None:
            object.__setattr__(self, "severity", Severity(self.severity))
        for key in ("baseline_interval", "candidate_interval"):
            v = getattr(self, key)
            if v is not None:
                object.__setattr__(self, key, (float(v[0]), float(v[1])))
        if (self.change is Change.REGRESSED) != (self.severity is not None):
            raise ValueError(f"an item has a severity exactly when it regressed; got change {self.change.value!r} "
                             f"with severity {self.severity!r} on {self.kind.value} {self.name!r}")

    @property
    def label(self) -> str:
        """``name [where · series]`` (``analyzer: name`` when the name does not start with the analyzer's),
        how the table and the reports name the item."""
        at = " · ".join(p for p in (self.where, self.series) if p)
        head = self.name if self.name.startswith(f"{self.analyzer}.") else f"{self.analyzer}: {self.name}"
        return head + (f" [{at}]" if at else "")

    def shown(self, side: str) -> str:
        """One side's value as text, with its interval ("-" when absent)."""
        value = getattr(self, side)
        interval = getattr(self, f"{side}_interval")
        if value is None:
            return "-"
        if isinstance(value, float):
            text = format(value, self.format)
            if interval is not None:
                text += f" [{format(interval[0], self.format)}, {format(interval[1], self.format)}]"
            return text
        return str(value)

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind.value, "analyzer": self.analyzer, "name": self.name, "change": self.change.value,
             "where": self.where, "series": self.series, "baseline": self.baseline, "candidate": self.candidate,
             "baseline_interval": None if self.baseline_interval is None else list(self.baseline_interval),
             "candidate_interval": None if self.candidate_interval is None else list(self.candidate_interval),
             "severity": None if self.severity is None else self.severity.value, "note": self.note,
             "format": self.format}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Item":
        return cls(kind=Kind(d["kind"]), analyzer=d["analyzer"], name=d["name"], change=Change(d["change"]),
                   where=d.get("where", ""), series=d.get("series", ""), baseline=d.get("baseline"),
                   candidate=d.get("candidate"), baseline_interval=d.get("baseline_interval"),
                   candidate_interval=d.get("candidate_interval"),
                   severity=None if d.get("severity") is None else Severity(d["severity"]), note=d.get("note", ""),
                   format=d.get("format", ".3g"))


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The compare report: what the two sides were, and one :class:`Item` per compared thing.

    ``baseline`` / ``candidate`` describe each side (``name``, ``sha256``, ``report``: its report directory,
    ``seed``, ``data``); ``fail_on`` is the level the gate was run with (``--fail-on``).
    """

    baseline: Mapping[str, Any]
    candidate: Mapping[str, Any]
    items: tuple[Item, ...]
    fail_on: str = "warning"
    schema: int = SCHEMA

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        if self.fail_on not in _FAIL_ON:
            raise ValueError(f"fail_on must be one of {_FAIL_ON}, got {self.fail_on!r}")

    def regressions(self, at_least: str | Severity | None = None) -> list[Item]:
        """The regressed items at or above ``at_least`` (default: :attr:`fail_on`; ``never``: none)."""
        level = self.fail_on if at_least is None else getattr(at_least, "value", at_least)
        if level == "never":
            return []
        floor = Severity(level).rank
        return [i for i in self.items if i.change is Change.REGRESSED and i.severity.rank >= floor]

    def count(self, change: Change | str) -> int:
        return sum(i.change is Change(change) for i in self.items)

    @property
    def exit_code(self) -> int:
        """1 when something regressed at or above :attr:`fail_on`, else 0 (:class:`~diagnostics.ExitCode`)."""
        from ._exitcodes import ExitCode

        return int(ExitCode.FINDINGS if self.regressions() else ExitCode.OK)

    def with_fail_on(self, fail_on: str) -> "Comparison":
        return dataclasses.replace(self, fail_on=fail_on)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "baseline": dict(self.baseline), "candidate": dict(self.candidate),
                "fail_on": self.fail_on, "exit_code": self.exit_code,
                "counts": {c.value: self.count(c) for c in Change}, "items": [i.to_dict() for i in self.items]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Comparison":
        if d.get("schema") != SCHEMA:
            raise ValueError(f"compare report schema {d.get('schema')!r} is not supported: this diagnostics reads "
                             f"schema {SCHEMA}; re-run diagnose compare to regenerate it")
        return cls(baseline=d.get("baseline", {}), candidate=d.get("candidate", {}),
                   items=tuple(Item.from_dict(i) for i in d.get("items", ())), fail_on=d.get("fail_on", "warning"),
                   schema=d["schema"])

    @classmethod
    def load(cls, path) -> "Comparison":
        """Read ``compare.json``, or the directory holding it."""
        p = Path(path)
        if p.is_dir():
            p = p / COMPARE_JSON
        return cls.from_dict(json.loads(p.read_text(encoding="utf-8")))


# -- comparing ------------------------------------------------------------------------------------
def side_summary(report, directory: str | None = None) -> dict[str, Any]:
    """What the compare report says about one side (no arrays, nothing that varies between runs)."""
    model = report.model or {}
    return {"name": model.get("name"), "sha256": model.get("sha256"), "seed": report.seed,
            "data": (report.data or {}).get("source"),
            "report": directory if directory is not None else getattr(report, "directory", None)}


def compare(baseline, candidate, *, fail_on: str = "warning", models: tuple[str, str] | None = None,
            directories: tuple[str | None, str | None] | None = None) -> Comparison:
    """Compare two :class:`~diagnostics.report.Report` s (the module docstring gives the rules).

    The attribution items need the reports' artifacts on disk: ``directories``, else where ``Report.load``
    read each report; ``models``: the two model files, for the weights items (read with h5py, never loaded
    by Keras).
    """
    dir_a, dir_b = directories or (getattr(baseline, "directory", None), getattr(candidate, "directory", None))
    items: list[Item] = []
    base = {r.name: r for r in baseline.analyzers}
    cand = {r.name: r for r in candidate.analyzers}
    for name in dict.fromkeys([*base, *cand]):
        a, b = base.get(name), cand.get(name)
        sa = None if a is None else a.status.value
        sb = None if b is None else b.status.value
        if sa == sb:
            items.append(Item(Kind.ANALYZER, name, "status", Change.UNCHANGED, baseline=sa, candidate=sb))
        else:
            why = (f"only in the {'candidate' if a is None else 'baseline'}" if a is None or b is None
                   else f"{sa} -> {sb}" + (f": {b.reason}" if b.reason else f": {a.reason}" if a.reason else ""))
            items.append(Item(Kind.ANALYZER, name, "status", Change.NOT_COMPARABLE, baseline=sa, candidate=sb,
                              note=why + "; nothing in it is compared"))
        if sa != "ok" or sb != "ok":
            continue
        items += _measures(a, b)
        items += _findings(a, b)
        items += _explanations(a, b, dir_a, dir_b)
    if models is not None:
        items += weights_items(*models)
    return Comparison(baseline=side_summary(baseline, dir_a), candidate=side_summary(candidate, dir_b),
                      items=tuple(items), fail_on=fail_on)


def _disjoint(x: tuple[float, float], y: tuple[float, float]) -> bool:
    return x[1] < y[0] or y[1] < x[0]


def _judge(higher_is_worse: bool | None, va: float, vb: float, ia, ib, oa: str, ob: str,
           judged: bool = True) -> tuple[Change, str]:
    """The interval rule when both sides have an interval and a direction, else the threshold rule.

    Disjoint intervals say the value really moved; the thresholds say whether that matters. A move to the worse
    side that stays within the thresholds (passed on both sides) is ``changed``: an interval measures the
    sampling noise of one model, not how far two trainings of the same recipe differ (the zoo mlp retrained
    with another seed moves checks beyond their intervals and stays healthy). ``judged``: the value has
    thresholds at all; one without any regresses on the interval rule alone.
    """
    if higher_is_worse is not None and ia is not None and ib is not None:
        if not _disjoint(ia, ib):
            return Change.UNCHANGED, "the 95% intervals overlap"
        worse = vb > va if higher_is_worse else vb < va
        if not worse:
            return Change.IMPROVED, "the 95% intervals do not overlap"
        if judged and oa == "passed" and ob == "passed":
            return Change.CHANGED, "the 95% intervals do not overlap, to the worse side, within the thresholds"
        return Change.REGRESSED, "the 95% intervals do not overlap" + (f" ({oa} -> {ob})" if judged else "")
    ra, rb = _OUTCOME_RANK.get(oa, 0), _OUTCOME_RANK.get(ob, 0)
    if rb > ra:
        return Change.REGRESSED, f"crossed a threshold: {oa} -> {ob}"
    if rb < ra:
        return Change.IMPROVED, f"back within a threshold: {oa} -> {ob}"
    return Change.UNCHANGED, f"{ob} on both sides"


def _measures(a, b) -> list[Item]:
    out: list[Item] = []
    sections_b = {s.code: s for s in b.measures}
    sections_a = {s.code: s for s in a.measures}
    for code in dict.fromkeys([*sections_a, *sections_b]):
        sa, sb = sections_a.get(code), sections_b.get(code)
        section = sa or sb
        direction = section.direction.value
        if direction == "neutral" or section.scope.value == "epoch":
            continue  # context (a loss curve, a count), with no worse side to judge
        if sa is None or sb is None:
            out.append(Item(Kind.MEASURE, a.name, code, Change.NOT_COMPARABLE, format=section.format,
                            note=f"measured only in the {'baseline' if sb is None else 'candidate'}"))
            continue
        higher_is_worse = {"higher_is_worse": True, "lower_is_worse": False}.get(direction)
        # a model-wide value's ``where`` is where it is worst (the layer with the largest gradient): it moves
        # from run to run and is not part of what is compared
        model_wide = section.scope.value == "model"
        va = {("" if model_wide else v.where, v.series): v for v in sa.values}
        vb = {("" if model_wide else v.where, v.series): v for v in sb.values}
        for key in dict.fromkeys([*va, *vb]):
            x, y = va.get(key), vb.get(key)
            common = dict(kind=Kind.MEASURE, analyzer=a.name, name=code, where=key[0], series=key[1],
                          format=section.format)
            if x is not None and y is not None and x.value is None and y.value is None:
                out.append(Item(**common, change=Change.UNCHANGED, note="not measurable on either side"))
                continue
            if x is None or y is None or x.value is None or y.value is None:
                missing = "baseline" if x is None or x.value is None else "candidate"
                out.append(Item(**common, change=Change.NOT_COMPARABLE,
                                baseline=None if x is None else x.value, candidate=None if y is None else y.value,
                                note=f"no value in the {missing}"))
                continue
            change, why = _judge(higher_is_worse, x.value, y.value, x.interval, y.interval, x.outcome.value,
                                 y.outcome.value, judged=bool(sa.thresholds or sb.thresholds))
            if model_wide and x.where != y.where:
                why += f" (worst at {x.where or 'the model'}, then at {y.where or 'the model'})"
            out.append(Item(**common, change=change, baseline=x.value, candidate=y.value, baseline_interval=x.interval,
                            candidate_interval=y.interval, note=why,
                            severity=Severity.WARNING if change is Change.REGRESSED else None))
    return out


def _finding_key(record_a, record_b, code: str) -> str:
    """An explanation finding's code without its verdict (``explain.gradients.saliency``)."""
    stem, _, last = code.rpartition(".")
    methods = {e.method for r in (record_a, record_b) for e in r.explanations}
    if last in _VERDICTS and stem.rpartition(".")[2] in methods:
        return stem
    return code


def _findings(a, b) -> list[Item]:
    def worst(record) -> dict[tuple[str, str], Any]:
        out: dict[tuple[str, str], Any] = {}
        for f in record.findings:
            key = (_finding_key(a, b, f.code), f.where)
            if key not in out or f.severity.rank > out[key].severity.rank:
                out[key] = f
        return out

    fa, fb = worst(a), worst(b)
    items = []
    for key in dict.fromkeys([*fa, *fb]):
        x, y = fa.get(key), fb.get(key)
        sx, sy = (None if x is None else x.severity), (None if y is None else y.severity)
        rx, ry = (-1 if sx is None else sx.rank), (-1 if sy is None else sy.rank)
        if ry > rx:
            change, note = Change.REGRESSED, ("appeared: " if x is None else f"rose from {sx.value}: ") + y.message
        elif ry < rx:
            change, note = Change.IMPROVED, ("gone: " + x.message) if y is None else f"fell from {sx.value}: {y.message}"
        else:
            change, note = Change.UNCHANGED, y.message
        items.append(Item(Kind.FINDING, a.name, (y or x).code, change, where=key[1],
                          baseline=None if sx is None else sx.value, candidate=None if sy is None else sy.value,
                          severity=sy if change is Change.REGRESSED else None, note=note))
    return items


def _explanations(a, b, dir_a: str | None, dir_b: str | None) -> list[Item]:
    items = []
    ea = {e.method: e for e in a.explanations}
    eb = {e.method: e for e in b.explanations}
    for method in dict.fromkeys([*ea, *eb]):
        x, y = ea.get(method), eb.get(method)
        vx = None if x is None or x.verdict is None else x.verdict.value
        vy = None if y is None or y.verdict is None else y.verdict.value
        if vx is None and vy is None and x is not None and y is not None:
            items.append(Item(Kind.VERDICT, a.name, method, Change.UNCHANGED, note=f"not run on either side: {y.skipped or '-'}"))
            continue
        if vx is None or vy is None:
            why = ("not offered by the " + ("baseline" if x is None else "candidate")) if x is None or y is None else \
                f"not run in the {'baseline' if vx is None else 'candidate'}: {(x if vx is None else y).skipped or '-'}"
            items.append(Item(Kind.VERDICT, a.name, method, Change.NOT_COMPARABLE, baseline=vx, candidate=vy, note=why))
            continue
        rx, ry = _VERDICT_RANK.get(vx, 0), _VERDICT_RANK.get(vy, 0)
        change = Change.REGRESSED if ry > rx else Change.IMPROVED if ry < rx else Change.UNCHANGED
        items.append(Item(Kind.VERDICT, a.name, method, change, baseline=vx, candidate=vy,
                          severity=Severity.WARNING if change is Change.REGRESSED else None,
                          note="; ".join(y.reasons) if change is Change.REGRESSED else ""))
        items += _checks(a.name, x, y)
        items.append(attribution_item(a.name, x, y, dir_a, dir_b))
    return items


def _checks(analyzer: str, x, y) -> list[Item]:
    items = []
    ca = {c.name: c for c in x.checks}
    cb = {c.name: c for c in y.checks}
    for name in dict.fromkeys([*ca, *cb]):
        p, q = ca.get(name), cb.get(name)
        common = dict(kind=Kind.CHECK, analyzer=analyzer, name=f"{x.method}/{name}")
        if p is None or q is None or p.value is None or q.value is None:
            out = "baseline" if p is None or p.value is None else "candidate"
            items.append(Item(**common, change=Change.NOT_COMPARABLE, baseline=None if p is None else p.value,
                              candidate=None if q is None else q.value, note=f"no value in the {out}"))
            continue
        ip, iq = getattr(p, "interval", None), getattr(q, "interval", None)
        change, why = _judge(not q.higher_is_better, float(p.value), float(q.value), ip, iq, p.outcome.value,
                             q.outcome.value, judged=p.threshold is not None or q.threshold is not None)
        items.append(Item(**common, change=change, baseline=float(p.value), candidate=float(q.value),
                          baseline_interval=ip, candidate_interval=iq, note=why,
                          severity=Severity.WARNING if change is Change.REGRESSED else None))
    return items


def attribution_item(analyzer: str, x, y, dir_a: str | None, dir_b: str | None) -> Item:
    """How far one method's attribution maps moved between the runs (the Spearman rank correlation of
    the two maps of each sample, averaged, with a 95% t-interval over the samples)."""
    common = dict(kind=Kind.ATTRIBUTION, analyzer=analyzer, name=x.method, format=".2f")
    if "map" not in x.artifacts or "map" not in y.artifacts:
        return Item(**common, change=Change.NOT_COMPARABLE, note="no attribution map on one side")
    if dir_a is None or dir_b is None:
        return Item(**common, change=Change.NOT_COMPARABLE, note="a report without its directory (its maps are files)")
    # A method explains as many samples as its checks need to decide (issue 23), so the two runs may explain
    # more or fewer of the same rows: the maps are compared on the rows both explained.
    shared = sorted(set(x.sample_indices) & set(y.sample_indices))
    if len(shared) < 2:
        return Item(**common, change=Change.NOT_COMPARABLE,
                    note=f"fewer than 2 samples explained on both sides ({len(x.sample_indices)} and "
                         f"{len(y.sample_indices)} explained, {len(shared)} in common): run both on the same data "
                         "and seed")
    import numpy as np

    try:
        ma = np.load(Path(dir_a) / x.artifacts["map"], allow_pickle=False)
        mb = np.load(Path(dir_b) / y.artifacts["map"], allow_pickle=False)
    except (OSError, ValueError) as e:
        return Item(**common, change=Change.NOT_COMPARABLE, note=f"cannot read a map: {e}")
    if ma.ndim < 1 or len(ma) != len(x.sample_indices) or len(mb) != len(y.sample_indices) or ma.shape[1:] != mb.shape[1:]:
        return Item(**common, change=Change.NOT_COMPARABLE,
                    note=f"maps of other shapes: {ma.shape} vs {mb.shape} for {len(x.sample_indices)} and "
                         f"{len(y.sample_indices)} samples")
    row_a = {s: i for i, s in enumerate(x.sample_indices)}
    row_b = {s: i for i, s in enumerate(y.sample_indices)}
    rhos = [rho for rho in (_spearman(ma[row_a[s]].ravel(), mb[row_b[s]].ravel(), np) for s in shared)
            if rho is not None]
    if not rhos:
        return Item(**common, change=Change.NOT_COMPARABLE, note="every map is constant: no ranking to compare")
    mean = float(np.mean(rhos))
    half = 1.96 * float(np.std(rhos, ddof=1)) / math.sqrt(len(rhos)) if len(rhos) > 1 else 0.0
    interval = (max(-1.0, mean - half), min(1.0, mean + half))
    moved = interval[1] < ATTRIBUTION_MOVED_BELOW
    return Item(**common, change=Change.CHANGED if moved else Change.UNCHANGED, baseline=1.0, candidate=mean,
                candidate_interval=interval,
                note=f"rank correlation of the two maps over {len(rhos)} samples"
                     + (f", below {ATTRIBUTION_MOVED_BELOW}: the maps moved" if moved else ""))


def _spearman(p, q, np) -> float | None:
    def ranks(v):
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v), dtype=np.float64)
        r[order] = np.arange(len(v), dtype=np.float64)
        # ties share their mean rank
        _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, weights=r)
        return (sums / counts)[inverse]

    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(q))):
        return None
    rp, rq = ranks(p), ranks(q)
    sp, sq = rp.std(), rq.std()
    if sp == 0 or sq == 0:
        return None
    return float(np.mean((rp - rp.mean()) * (rq - rq.mean())) / (sp * sq))


# -- weights --------------------------------------------------------------------------------------
def weights_items(model_a: str | Path, model_b: str | Path) -> list[Item]:
    """Per layer, how far the weights moved (``||W_b - W_a|| / ||W_a||``), when the two files have the same
    layers and shapes; one ``not_comparable`` item naming the difference otherwise. The files are read in
    a child process confined to reading them, with a memory ceiling and a deadline
    (:mod:`diagnostics._weights_probe`): this process never parses a model's HDF5."""
    import json
    import subprocess
    import sys
    import zipfile

    from ._limits import DEFAULT as DEFAULT_LIMITS

    def not_comparable(note: str) -> list[Item]:
        return [Item(Kind.WEIGHTS, "weights", "layers", Change.NOT_COMPARABLE, note=note)]

    if zipfile.is_zipfile(model_a) != zipfile.is_zipfile(model_b):
        return not_comparable("one file is .keras, the other .h5: they name their weights differently; compare two "
                              "files saved the same way")
    request = {"a": str(Path(model_a).resolve()), "b": str(Path(model_b).resolve()),
               "memory": DEFAULT_LIMITS.h5_scan_memory}
    script = Path(__file__).with_name("_weights_probe.py")
    try:
        proc = subprocess.run([sys.executable, "-I", str(script), json.dumps(request)], capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=DEFAULT_LIMITS.load_timeout_s)
        found = json.loads(proc.stdout.decode("utf-8"))
    except subprocess.TimeoutExpired:
        return not_comparable(f"reading the weights did not finish within {DEFAULT_LIMITS.load_timeout_s:g} s")
    except (ValueError, UnicodeDecodeError):
        found = None
    if not isinstance(found, dict) or proc.returncode != 0:
        return not_comparable(f"reading the weights ended with exit code {proc.returncode}")
    if "error" in found:
        return not_comparable(str(found["error"]))
    if "shapes" in found:
        return not_comparable(f"another architecture: the weight arrays differ ({', '.join(found['shapes'])})")
    items = []
    for layer, got in found["layers"].items():
        if got == "nonfinite":
            items.append(Item(Kind.WEIGHTS, "weights", layer, Change.NOT_COMPARABLE,
                              note="non-finite weights on one side (the weights analyzer reports them)"))
            continue
        rel, arrays, size = got
        items.append(Item(Kind.WEIGHTS, "weights", layer, Change.CHANGED if rel > WEIGHTS_MOVED_ABOVE else
                          Change.UNCHANGED, baseline=0.0, candidate=float(rel), format=".3g",
                          note=f"relative change of {arrays} array(s), {size} weights"))
    return items


# -- the terminal table ----------------------------------------------------------------------------
def table(comparison: Comparison, show: Iterable[Change] = (Change.REGRESSED, Change.IMPROVED, Change.CHANGED,
                                                            Change.NOT_COMPARABLE), colour: bool = False) -> str:
    """The comparison for a terminal: one line per item whose change is in ``show``, the counts, and the
    gate's verdict. Every name came from a file: it is escaped (:func:`diagnostics._textsafe.terminal`)."""
    from ._textsafe import terminal as t, workflow_safe

    colours = {"regressed": "31", "improved": "32", "changed": "34", "not_comparable": "90"}

    def c(text: str, key: str) -> str:
        return f"\033[{colours[key]}m{text}\033[0m" if colour and key in colours else text

    shown = [i for i in comparison.items if i.change in tuple(show)]
    order = {Change.REGRESSED: 0, Change.IMPROVED: 1, Change.CHANGED: 2, Change.NOT_COMPARABLE: 3, Change.UNCHANGED: 4}
    shown.sort(key=lambda i: (order[i.change], -(i.severity.rank if i.severity else -1)))
    rows = [("change", "kind", "item", "baseline", "candidate")]
    for i in shown:
        change = i.change.value + (f" ({i.severity.value})" if i.severity else "")
        rows.append((change, i.kind.value, t(i.label), t(i.shown("baseline")), t(i.shown("candidate"))))
    lines = []
    if len(rows) > 1:
        widths = [max(len(r[k]) for r in rows) for k in range(5)]
        for n, r in enumerate(rows):
            cells = [cell.ljust(w) for cell, w in zip(r, widths)]
            if n:
                cells[0] = c(cells[0], shown[n - 1].change.value)
            lines.append("  ".join(cells).rstrip())
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines.append("")
    counts = ", ".join(f"{comparison.count(ch)} {ch.value.replace('_', ' ')}" for ch in Change)
    lines.append(f"compared {len(comparison.items)} items: {counts}")
    bad = comparison.regressions()
    lines.append(f"compare: {len(bad)} regressed at or above {t(comparison.fail_on)} -> exit {comparison.exit_code}")
    return workflow_safe("\n".join(lines))

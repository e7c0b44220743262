"""The sequential audit of an explanation analyzer's methods (issue 23): explain a few samples, run the
trust checks, and explain and audit more only for the methods whose checks are not yet settled.

A look audits the first ``n`` samples of the seeded sample order (:func:`diagnostics.explain.sample_order`),
``n`` growing 4, 8, 16, ... up to the cap (:func:`diagnostics._intervals.look_sizes`). Each look
explains the new samples with every method still open, runs the re-running and perturbing checks on
them (another seed, the weight-randomised model, the deletion/insertion curves, the planted ground truth),
pools their per-sample values with the earlier looks' and judges every check again at the per-look
level (:func:`diagnostics._intervals.per_look_level`). A method leaves the audit once all its checks
are settled; the audit ends when none is left, at the cap, or when the time budget cannot hold another
look (the checks then still open are ``undecided``, and say why).

:class:`MethodTrack` is one method's state over the looks; :func:`run_looks` the loop. The analyzer
(:class:`diagnostics.explainers.ExplanationAnalyzer`) prepares the samples, targets and views, and turns
the tracks into report sections.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable

import numpy as np

from . import _intervals as I
from . import _trust_checks as C
from . import explain as E
from ._verdicts import Check, Outcome


#: Another look is started only when the time left is at least this many times the last look's: it
#: explains and audits twice the samples, and the report must still be written after it.
LOOK_ROOM = 3.0


@dataclasses.dataclass
class MethodTrack:
    """One method through the looks: its attributions and maps so far (rows in sample order), the
    per-sample values of each check, the notes its calls left (pooled), and its checks at the last look."""

    explainer: Any
    raw: list = dataclasses.field(default_factory=list)
    maps: list = dataclasses.field(default_factory=list)
    notes: dict = dataclasses.field(default_factory=dict)
    gaps: list = dataclasses.field(default_factory=list)
    deltas: list = dataclasses.field(default_factory=list)
    randomisation: list = dataclasses.field(default_factory=list)
    stability: list = dataclasses.field(default_factory=list)
    curves: dict = dataclasses.field(default_factory=dict)
    ground_rows: list = dataclasses.field(default_factory=list)  # audited samples scored on the planted truth
    audited: int = 0
    checks: list = dataclasses.field(default_factory=list)
    open: bool = True
    #: why its looks ended: "settled", "failed" (a check failed for sure), "cap", or the reason the
    #: time budget or the memory gave
    ended: str = ""

    @property
    def name(self) -> str:
        return self.explainer.name

    @property
    def explained(self) -> int:
        return sum(len(m) for m in self.maps)

    def all_raw(self) -> np.ndarray:
        return np.concatenate(self.raw)

    def all_maps(self) -> np.ndarray:
        return np.concatenate(self.maps)

    def keep_notes(self, new: dict) -> None:
        """Pool the notes of another call: lists and arrays are concatenated, counts added, the rest replaced."""
        for k, v in new.items():
            old = self.notes.get(k)
            if isinstance(v, (list, np.ndarray)) and isinstance(old, (list, np.ndarray)):
                self.notes[k] = list(old) + list(v)
            elif isinstance(v, dict) and isinstance(old, dict) and all(isinstance(x, (int, float)) for x in v.values()):
                self.notes[k] = {key: old.get(key, 0) + v.get(key, 0) for key in {**old, **v}}
            else:
                self.notes[k] = v


@dataclasses.dataclass
class Audit:
    """What :func:`run_looks` needs of the analyzer's run: the samples in order (``x``, ``targets``,
    ``sign``: every sample any look may explain), the views, the thresholds and options, and the
    callbacks of the analyzer (``explain(track, rows)`` attributes rows, returning False when the method
    has to stop; ``axiom(track, rows, attributions)`` per-sample gap and delta or None)."""

    x: np.ndarray
    targets: np.ndarray
    sign: np.ndarray
    view: Any
    limits: dict
    opts: dict
    seed: int
    informative: np.ndarray
    scale: float
    mask: np.ndarray | None
    looks: list
    level: float
    explain_at_least: int
    #: the deletion/insertion curves' feature fractions (set by the first curves drawn)
    fractions: np.ndarray | None = None


def judge(track: MethodTrack, audit: Audit) -> list[Check]:
    """The method's checks on everything pooled so far, at the audit's level."""
    ex, t, level = track.explainer, audit.limits, audit.level
    raw = track.all_raw()
    finite = bool(np.isfinite(raw).all())
    checks = [Check("finite", float(np.isfinite(raw).mean()), 1.0, Outcome.PASSED if finite else Outcome.FAILED,
                    reason="attributions contain NaN or Inf", detail={"settled": True})]
    if ex.axiom is not None and track.gaps:
        what = "completeness" if ex.axiom == "completeness" else "additivity"
        checks.append(C.axiom_check(what, np.concatenate(track.gaps), np.concatenate(track.deltas),
                                    t[f"{what}_tolerance"], t[f"{what}_fail"], t[f"{what}_min_fraction"], level,
                                    notes=track.notes))
    ex.notes, ex.level = dict(track.notes), level
    checks += ex.extra_checks(t)
    if track.randomisation:
        checks.append(C.randomisation_of(np.concatenate(track.randomisation), ex.signed, t, level))
    if track.curves:
        pooled = {k: np.concatenate(v) for k, v in track.curves.items()}
        summary = E.summarise_curves(pooled, audit.fractions, audit.scale)
        checks.append(C.faithfulness_check({**summary, "scored_samples": len(next(iter(pooled.values())))}, t, level))
    if track.ground_rows:
        rows = np.concatenate(track.ground_rows)
        gt = E.ground_truth_scores(track.all_maps()[rows], audit.mask[rows])
        precisions = gt.pop("precisions")
        checks.append(C.sample_check("ground_truth", precisions, t["ground_truth_min"], level, detail=gt, bounds=C.FRACTION,
                                     reasons={Outcome.DOUBTFUL: "top-k precision on the planted positions is {value:.2f} "
                                                                "{interval}, {n} samples"}))
    if track.stability:
        checks.append(C.sample_check("stability", np.concatenate(track.stability), t["stability_min"], level,
                                     bounds=C.CORRELATION,
                                     reasons={Outcome.DOUBTFUL: "unstable across seeds (correlation {value:.2f} "
                                                                "{interval}, {n} samples)"}))
    return checks


def run_looks(tracks: list[MethodTrack], audit: Audit, *, explain: Callable, axiom: Callable,
              sanity: Callable[[], str | None], too_slow: Callable[[str, float], str | None],
              progress: Callable[[int, int, str], None], timed: Callable[[str], Any],
              cost: dict[str, float]) -> dict[str, Any]:
    """Run the looks; returns what the report says about them: the samples audited per look, the sanity
    checks' skip reason, and why the looks ended (``"settled"``, ``"cap"`` or the time budget's reason)."""
    view, opts = audit.view, audit.opts
    # Samples are explained in chunks between look sizes, and every re-run (another seed, the randomised
    # model) takes the same chunk: a sampling method's noise depends on a sample's place in its batch,
    # so the map and its re-run must come from the same batch to differ only by the seed or the weights.
    bounds = sorted({0, *audit.looks, max(audit.explain_at_least, audit.looks[-1])})
    sanity_skip, ended, done_audit, last_s = None, "cap", 0, 0.0
    looks_run: list[int] = []
    for k, n in enumerate(audit.looks):
        active = [tr for tr in tracks if tr.open]
        if not active:
            ended = "settled"
            break
        m = min(b for b in bounds if b >= max(audit.explain_at_least, n))
        if k:  # another look costs about as much as all the work for its new samples
            evals = sum(cost[tr.name] * ((m - tr.explained) + (n - tr.audited) * (3 if tr.explainer.sampling else 2))
                        for tr in active)
            why = too_slow(f"a look at {n} samples", evals)
            if why is None and view.time_left() < LOOK_ROOM * last_s:  # the next look does about twice the last's work
                why = (f"the {view.time_left():.0f} s left of the analyzer's budget do not hold another look "
                       f"(the last took {last_s:.1f} s); raise --timeout")
            if why:
                ended = why
                break
        t0 = time.monotonic()
        for i, tr in enumerate(active):
            progress(i, len(active), f"{tr.name}: samples {tr.explained + 1}-{m}")
            for lo, hi in zip(bounds, bounds[1:]):
                if lo < tr.explained or hi > m:
                    continue
                rows = np.arange(lo, hi)
                if not explain(tr, rows):
                    tr.open, tr.ended = False, tr.ended or "stopped"
                    if not tr.checks:  # never judged: left out (the analyzer says why), not trusted unaudited
                        tr.raw.clear()
                        tr.maps.clear()
                    break
                gap = axiom(tr, rows, tr.raw[-1])
                if gap is not None:
                    tr.gaps.append(gap[0])
                    tr.deltas.append(gap[1])
        active = [tr for tr in active if tr.open]
        new = np.arange(done_audit, n)  # one chunk: the looks are chunk boundaries
        if k == 0:
            sanity_skip = sanity()
        if sanity_skip is None and len(new):
            _sanity(active, audit, new, progress, timed)
        if opts["faithfulness"] and len(new):
            _faithfulness(active, audit, new, timed, k)
        if audit.mask is not None and len(new):
            keep = new[audit.informative[new]]
            for tr in active:
                if len(keep):
                    tr.ground_rows.append(keep)
        for tr in active:
            tr.audited = n
            tr.checks = judge(tr, audit)
            # open while a check is unsettled, unless one has already failed for sure: the verdict is then failed
            failed = any(c.outcome is Outcome.FAILED and C.settled(c) for c in tr.checks)
            tr.open = not all(C.settled(c) for c in tr.checks) and not failed
            tr.ended = "" if tr.open else "failed" if failed else "settled"
        done_audit = n
        looks_run.append(n)
        last_s = time.monotonic() - t0
    else:
        if not any(tr.open for tr in tracks):
            ended = "settled"
    for tr in tracks:
        if tr.open:
            tr.open, tr.ended = False, ended
    return {"looks": looks_run, "sanity_skipped": sanity_skip, "ended": ended}


def _sanity(active: list[MethodTrack], audit: Audit, rows: np.ndarray, progress, timed) -> None:
    """Another seed for the sampling methods, the weight-randomised model for all: per-sample values.
    Each call uses the seed the maps were made with (plus one for the other seed), whatever the look, so
    only the weights (or only the seed) differ from the map it is compared with."""
    view, x, t, sign = audit.view, audit.x[rows], audit.targets[rows], audit.sign[rows]
    for i, tr in enumerate(active):
        ex = tr.explainer
        if ex.sampling:
            progress(i, len(active), f"{ex.name} with another seed")
            ex.stage = "stability"
            with timed("stability"):
                a2 = np.asarray(ex.attribute(view, x, t, audit.seed + 1), np.float64)
            mine = tr.all_maps()[rows]
            tr.stability.append(E.pearson(np.abs(mine), np.abs(view.feature_map(_signed(a2, sign), x))))
    with view.randomised_weights(audit.seed) as rview:
        if rview is None:
            return
        for i, tr in enumerate(active):
            ex = tr.explainer
            progress(i, len(active), f"{ex.name} on the randomised model")
            ex.stage = "randomisation"
            with timed("randomisation"):
                ra = np.asarray(ex.attribute(rview, x, t, audit.seed), np.float64)  # only the weights differ
            mine, theirs = tr.all_maps()[rows], view.feature_map(_signed(ra, sign), x)
            if not ex.signed:
                mine, theirs = np.abs(mine), np.abs(theirs)
            tr.randomisation.append(E.rank_correlation(mine, theirs))


def _faithfulness(active: list[MethodTrack], audit: Audit, rows: np.ndarray, timed, look: int) -> None:
    """Deletion/insertion curves of the new audited samples (the informative ones, see
    :func:`diagnostics.explain.informative_samples`, unless fewer than two of the whole order are)."""
    use_all = audit.informative.sum() < 2
    keep = rows if use_all else rows[audit.informative[rows]]
    if not len(keep):
        return
    view = audit.view
    x = audit.x[keep]
    for tr in active:
        with timed("faithfulness"):
            c = E.perturbation_curves(view.forward, x, view.baseline_like(x), tr.all_maps()[keep], audit.targets[keep],
                                      audit.sign[keep], seed=audit.seed + 7919 * look,
                                      feature_shape=view.feature_shape(x), scale=audit.scale)
        for key, v in c["sample_curves"].items():
            tr.curves.setdefault(key, []).append(v)
        audit.fractions = np.asarray(c["fractions"])


def _signed(a: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """Attributions of -p for the samples explained as class 0 of a one-unit sigmoid."""
    return a * np.asarray(sign).reshape((-1,) + (1,) * (a.ndim - 1))

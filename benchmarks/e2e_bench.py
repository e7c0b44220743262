"""End to end: the default ``diagnose`` against a cold start, as medians of back-to-back pairs.

    .venv/bin/python benchmarks/e2e_bench.py [--models cnn,lstm,mlp] [--pairs 3] [--format h5]
        [--baseline-src DIR] [--no-growth] [--no-peer] [--json out.json]
    .venv/bin/python benchmarks/e2e_bench.py --added data.drift,data.leakage,predictions.quality [--models ...]

What it measures, each in fresh processes as a user runs them (the issue "Speed: the default diagnosis
within 2x of a cold start"):

- ``diagnose / floor`` per zoo model: the default ``diagnose MODEL`` (every analyzer) against the cold
  floor, a fresh process that imports keras with TensorFlow, loads the same model file and runs one
  compiled forward+backward pass (the loss's gradient for every trainable variable) over the validation
  set of the model's sidecar dataset. Each pair runs back to back; the ratio is the median of the pairs'
  ratios, so that load from other processes cancels out as far as it can. The phase breakdown of the
  last report (``Report.phase_breakdown``) is printed beside it.
- ``without explanations / floor``, in the same pairs: ``diagnose`` with every explanation analyzer
  skipped (the run's fixed costs: pre-scan, workers, imports, load, data, the health analyzers, the
  report). What the default run costs above it is the explanation methods and their trust checks.
- ``--baseline-src DIR``: also run, in each pair, ``diagnose`` from another source tree of the
  ``diagnostics`` package (e.g. ``git archive <commit> diagnostics | tar -x -C DIR``; the plugins stay
  this checkout's), to measure a change of the core as a ratio in the same run.
- cost growth: ``diagnose --only explain.gradients`` explaining 256 samples against 16
  (``--option explain.gradients.samples=N``): the analyzer's time ratio (target <= 8) and the
  TensorFlow worker's peak-memory ratio (target <= 1.5).
- the peer: a ten-line captum ``IntegratedGradients`` script on the zoo cnn under KERAS_BACKEND=torch
  (100 samples, 50 steps, convergence delta) against ``diagnose cnn --only explain.gradients`` with
  Integrated Gradients alone on 100 samples, 50 steps and the sanity and faithfulness checks off
  (``--peer-option`` replaces those options once the explanation pipeline renames them). Ratio
  captum / ours > 1 means we are faster end to end.

- ``--added NAMES`` (instead of all the above): the default run against the same run with those
  analyzers skipped, per model: what they add, as a share of the run without them.

It prints the machine's load average before and after: on a shared machine, read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ZOO = REPO / "models" / "artifacts"
DIAGNOSE = str(Path(sys.executable).parent / "diagnose")

FLOOR = r'''
import os, sys, time
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import keras
import tensorflow as tf
model = keras.saving.load_model(sys.argv[1], compile=False)
d = np.load(sys.argv[2])
x, y = d["x_val"], d["y_val"]
units = int(np.prod(model.outputs[0].shape[1:]))
if np.issubdtype(y.dtype, np.integer) and units > 1:
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
elif units == 1 and np.isin(y, (0, 1)).all():
    loss_fn = keras.losses.BinaryCrossentropy()
else:
    loss_fn = keras.losses.MeanSquaredError()
variables = model.trainable_variables
@tf.function
def step(xb, yb):
    with tf.GradientTape() as tape:
        loss = loss_fn(yb, model(xb, training=False))
    return loss, tape.gradient(loss, variables)
loss, grads = step(tf.constant(x), tf.constant(y))
[g.numpy() for g in grads if g is not None]
'''

CAPTUM = r'''
import os, sys; os.environ["KERAS_BACKEND"] = "torch"
import keras, numpy as np, torch
from captum.attr import IntegratedGradients
model = keras.saving.load_model(sys.argv[1], compile=False)
x = torch.tensor(np.load(sys.argv[2])["x_val"][:100], dtype=torch.float32)
target = model(x).argmax(-1)
ig = IntegratedGradients(lambda t: model(t))
attr, delta = ig.attribute(x, target=target, n_steps=50, return_convergence_delta=True)
print(float(delta.abs().max()))
'''

PEER_OPTIONS = ("explain.gradients.methods=integrated_gradients", "explain.gradients.samples=100",
                "explain.gradients.steps=50", "explain.gradients.max_steps=50", "explain.gradients.sanity=false",
                "explain.gradients.faithfulness=false")


def _env(src: str | None = None) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    env.pop("KERAS_BACKEND", None)
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
    return env


def _timed(cmd: list[str], env: dict, cwd: str) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t0, proc


def _validation_set(model_path: Path, out: Path) -> Path:
    """The validation split of the model's sidecar dataset, saved once as .npz for the floor."""
    import numpy as np

    from diagnostics._data import find_sidecar, load_dataset, read_sidecar
    from diagnostics._plugin_manager import PluginHost

    meta = read_sidecar(find_sidecar(str(model_path)))
    data = load_dataset(meta["dataset"], int(meta.get("split_seed", 0)), PluginHost().load().datasets)
    np.savez(out, x_val=data.x_val, y_val=data.y_val)
    return out


SRC: str | None = None  # --src: the diagnostics/ tree measured as "ours" (default: the installed one)


def _diagnose(model: Path, out: Path, cwd: str, src: str | None = None, extra: tuple[str, ...] = ()):
    seconds, proc = _timed([DIAGNOSE, str(model), "-o", str(out), "-q", *extra], _env(src or SRC), cwd)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"diagnose {model.name} {' '.join(extra)} exited {proc.returncode}:\n{proc.stdout[-2000:]}"
                         f"\n{proc.stderr[-2000:]}")
    from diagnostics import Report

    return seconds, Report.load(out)


def _median(values):
    return statistics.median(values) if values else float("nan")


def _breakdown(reports) -> list[tuple[str, float]]:
    """Median seconds per phase over the given reports, slowest first."""
    per: dict[str, list[float]] = {}
    for r in reports:
        for label, s in r.phase_breakdown():
            per.setdefault(label, []).append(s)
    return sorted(((k, _median(v)) for k, v in per.items()), key=lambda kv: -kv[1])


def end_to_end(args, work: Path, results: dict) -> None:
    for name in args.models:
        model = ZOO / f"{name}.{args.format}"
        val = _validation_set(model, work / f"{name}-val.npz")
        rows, reports, base_reports = [], [], []
        for i in range(args.pairs):
            floor, proc = _timed([sys.executable, "-c", FLOOR, str(model), str(val)], _env(), str(work))
            if proc.returncode:
                raise SystemExit(f"the floor failed on {name}:\n{proc.stderr[-2000:]}")
            ours, report = _diagnose(model, work / f"{name}-{i}", str(work))
            row = {"floor_s": floor, "diagnose_s": ours, "ratio": ours / floor}
            explaining = sorted(r.name for r in report.analyzers if r.category == "explanation")
            if explaining:
                fixed, _ = _diagnose(model, work / f"{name}-fixed-{i}", str(work), extra=("--skip", ",".join(explaining)))
                row.update(fixed_s=fixed, fixed_ratio=fixed / floor)
            if args.baseline_src:
                base, base_report = _diagnose(model, work / f"{name}-base-{i}", str(work), args.baseline_src)
                row.update(baseline_s=base, baseline_ratio=base / floor, new_over_baseline=ours / base)
                base_reports.append(base_report)
            reports.append(report)
            rows.append(row)
            print(f"{name} pair {i + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items())
                  + f"  load {os.getloadavg()[0]:.1f}", flush=True)
        verdicts = sorted((r.name, r.status, r.worst.value if r.worst else "-") for r in reports[-1].analyzers)
        entry = {"pairs": rows, "ratio_median": _median([r["ratio"] for r in rows]),
                 "floor_median_s": _median([r["floor_s"] for r in rows]),
                 "diagnose_median_s": _median([r["diagnose_s"] for r in rows]),
                 "fixed_ratio_median": _median([r["fixed_ratio"] for r in rows if "fixed_ratio" in r]),
                 "phases": _breakdown(reports), "workers": dict(reports[-1].workers), "verdicts": verdicts}
        if args.baseline_src:
            entry.update(baseline_ratio_median=_median([r["baseline_ratio"] for r in rows]),
                         new_over_baseline_median=_median([r["new_over_baseline"] for r in rows]),
                         baseline_phases=_breakdown(base_reports), baseline_workers=dict(base_reports[-1].workers))
            base_verdicts = sorted((r.name, r.status, r.worst.value if r.worst else "-") for r in base_reports[-1].analyzers)
            entry["verdicts_unchanged"] = base_verdicts == verdicts and all(
                sorted((f.code, f.severity.value) for f in a.findings) == sorted((f.code, f.severity.value) for f in b.findings)
                for a, b in zip(reports[-1].analyzers, base_reports[-1].analyzers))
        results["models"][name] = entry
        print(f"{name}: diagnose / floor median {entry['ratio_median']:.2f} (floor {entry['floor_median_s']:.1f} s, "
              f"diagnose {entry['diagnose_median_s']:.1f} s; without the explanation analyzers "
              f"{entry['fixed_ratio_median']:.2f})"
              + (f"; baseline / floor {entry['baseline_ratio_median']:.2f}, new / baseline "
                 f"{entry['new_over_baseline_median']:.2f}, verdicts unchanged: {entry['verdicts_unchanged']}"
                 if args.baseline_src else ""), flush=True)
        _print_phases("phases", entry["phases"], entry["workers"])
        if args.baseline_src:
            _print_phases("baseline phases", entry["baseline_phases"], entry["baseline_workers"])


def added(args, work: Path, results: dict) -> None:
    """``--added NAMES``: what some analyzers add to the default run, as the median over back-to-back pairs of
    the default ``diagnose MODEL`` against the same run with them skipped (issue 25: the data analyzers
    must add less than 15% on the zoo's healthy models). No floor: the ratio is the answer."""
    names = ",".join(args.added)
    out = results.setdefault("added", {"analyzers": args.added, "models": {}})
    for name in args.models:
        model = ZOO / f"{name}.{args.format}"
        rows = []
        for i in range(args.pairs):
            # alternate which runs first, so that a trend in the machine's load does not favour one side
            order = (("with", ()), ("without", ("--skip", names)))
            times, report = {}, None
            for side, extra in order if i % 2 == 0 else order[::-1]:
                times[side], rep = _diagnose(model, work / f"{name}-added-{side}-{i}", str(work), extra=extra)
                report = rep if side == "with" else report
            own = {r.name: r.duration_s for r in report.analyzers if r.name in args.added}
            rows.append({"with_s": times["with"], "without_s": times["without"],
                         "added": times["with"] / times["without"] - 1, "own_s": own,
                         "status": {r.name: r.status for r in report.analyzers if r.name in args.added}})
            print(f"{name} added pair {i + 1}: with {times['with']:.1f} s, without {times['without']:.1f} s, "
                  f"added {rows[-1]['added']:+.1%}; their own times {own}  load {os.getloadavg()[0]:.1f}", flush=True)
        out["models"][name] = {"pairs": rows, "added_median": _median([r["added"] for r in rows])}
        print(f"{name}: {names} add {out['models'][name]['added_median']:+.1%} to the default run (median of "
              f"{len(rows)} pairs)", flush=True)


def _print_phases(title, phases, workers, top=12):
    print(f"  {title} (median seconds; workers overlap):")
    for label, s in phases[:top]:
        print(f"    {label:<44} {s:7.2f}")
    for b, w in sorted(workers.items()):
        if "peak_rss_mib" in w:
            print(f"    peak memory, {b} worker: {w['peak_rss_mib']:.0f} MiB")


def growth(args, work: Path, results: dict) -> None:
    model = ZOO / f"cnn.{args.format}"
    rows = []
    for i in range(args.pairs):
        row = {}
        for n in (16, 256):
            _, rep = _diagnose(model, work / f"growth-{n}-{i}", str(work),
                               extra=("--only", "explain.gradients", "--option", f"explain.gradients.samples={n}",
                                      "--timeout", "3600"))  # 256 samples on a loaded machine outlast the default 300 s
            rec = rep.record("explain.gradients")
            if rec.status != "ok":
                raise SystemExit(f"explain.gradients on {n} samples: {rec.status}: {rec.reason}")
            row[n] = (rec.duration_s, rep.workers.get("tensorflow", {}).get("peak_rss_mib", float("nan")))
            print(f"  {n} samples: explain.gradients {row[n][0]:.1f} s, worker peak {row[n][1]:.0f} MiB", flush=True)
        rows.append({"time_16_s": row[16][0], "time_256_s": row[256][0], "time_ratio": row[256][0] / row[16][0],
                     "peak_16_mib": row[16][1], "peak_256_mib": row[256][1], "memory_ratio": row[256][1] / row[16][1]})
        print("growth pair {}: ".format(i + 1) + ", ".join(f"{k} {v:.2f}" for k, v in rows[-1].items()), flush=True)
    results["growth"] = {"pairs": rows, "time_ratio_median": _median([r["time_ratio"] for r in rows]),
                         "memory_ratio_median": _median([r["memory_ratio"] for r in rows])}
    print(f"cost growth 256 / 16 samples (explain.gradients on cnn): time {results['growth']['time_ratio_median']:.2f} "
          f"(target <= 8), worker peak memory {results['growth']['memory_ratio_median']:.2f} (target <= 1.5)", flush=True)


def peer(args, work: Path, results: dict) -> None:
    model = ZOO / "cnn.keras"
    val = work / "cnn-val.npz"
    if not val.exists():
        _validation_set(model, val)
    options = [a for o in (args.peer_option or PEER_OPTIONS) for a in ("--option", o)]
    rows = []
    for i in range(args.pairs):
        env = {**_env(), "KERAS_BACKEND": "torch"}
        captum_s, proc = _timed([sys.executable, "-c", CAPTUM, str(model), str(val)], env, str(work))
        if proc.returncode:
            raise SystemExit(f"the captum script failed:\n{proc.stderr[-2000:]}")
        ours_s, rep = _diagnose(model, work / f"peer-{i}", str(work), extra=("--only", "explain.gradients", *options))
        rec = rep.record("explain.gradients")
        rows.append({"captum_s": captum_s, "ours_s": ours_s, "captum_over_ours": captum_s / ours_s,
                     "analyzer_s": rec.duration_s, "captum_max_delta": float(proc.stdout.strip().splitlines()[-1])})
        print(f"peer pair {i + 1}: " + ", ".join(f"{k} {v:.3g}" for k, v in rows[-1].items()), flush=True)
    results["peer"] = {"pairs": rows, "options": list(args.peer_option or PEER_OPTIONS),
                       "captum_over_ours_median": _median([r["captum_over_ours"] for r in rows])}
    print(f"captum script / diagnose --only explain.gradients (IG only): {results['peer']['captum_over_ours_median']:.2f} "
          f"(> 1: ours is faster end to end)", flush=True)


IMPORT = "import os, sys; os.environ['KERAS_BACKEND'] = sys.argv[1]; import keras; keras.ops.ones((2,))"


def imports(args, work: Path, results: dict) -> None:
    """Two workers importing their framework at once (what a run needing both backends does now) against
    one after the other (what staggering them would do): the time until both are ready."""
    rows = []
    env = _env()
    for i in range(args.pairs):
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", IMPORT, b], env=env, cwd=str(work), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for b in ("tensorflow", "torch")]
        for p in procs:
            p.wait()
        together = time.perf_counter() - t0
        t0 = time.perf_counter()
        for b in ("tensorflow", "torch"):
            subprocess.run([sys.executable, "-c", IMPORT, b], env=env, cwd=str(work), capture_output=True)
        staggered = time.perf_counter() - t0
        rows.append({"together_s": together, "one_after_other_s": staggered, "ratio": together / staggered})
        print(f"imports pair {i + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in rows[-1].items()), flush=True)
    results["imports"] = {"pairs": rows, "ratio_median": _median([r["ratio"] for r in rows])}
    print(f"both framework imports at once / one after the other: {results['imports']['ratio_median']:.2f} "
          f"(< 1: importing together finishes sooner)", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="cnn,lstm,mlp", type=lambda s: [m for m in s.split(",") if m],
                        help="zoo models for the end-to-end ratios (comma-separated; '' for none)")
    parser.add_argument("--pairs", type=int, default=3, help="back-to-back pairs per measurement (default 3)")
    parser.add_argument("--format", default="h5", choices=("h5", "keras"), help="model file format (make demo uses .h5)")
    parser.add_argument("--baseline-src", metavar="DIR", help="a source tree holding another diagnostics/ to compare with")
    parser.add_argument("--src", metavar="DIR", help="measure the diagnostics/ of this source tree as ours "
                        "(a snapshot, so that the checkout can change while the benchmark runs)")
    parser.add_argument("--no-growth", action="store_true", help="skip the cost-growth measurement")
    parser.add_argument("--no-peer", action="store_true", help="skip the captum comparison")
    parser.add_argument("--imports", action="store_true", help="also time the two framework imports at once vs one after the other")
    parser.add_argument("--peer-option", action="append", metavar="ANALYZER.KEY=VALUE",
                        help=f"options of our side of the peer comparison (default: {' '.join(PEER_OPTIONS)})")
    parser.add_argument("--added", type=lambda s: [a for a in s.split(",") if a], metavar="NAMES",
                        help="only measure what these analyzers add to the default run (comma-separated), "
                             "against the same run with them skipped")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    global SRC
    SRC = args.src
    results: dict = {"models": {}, "load_before": os.getloadavg(), "cpus": os.cpu_count(), "format": args.format,
                     "pairs": args.pairs}
    print(f"{os.cpu_count()} CPUs, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)
    with tempfile.TemporaryDirectory(prefix="e2e-bench-") as tmp:
        work = Path(tmp)
        if args.added:
            added(args, work, results)
            args.no_growth = args.no_peer = True
        else:
            end_to_end(args, work, results)
        if not args.no_growth:
            growth(args, work, results)
        if not args.no_peer:
            peer(args, work, results)
        if args.imports:
            imports(args, work, results)
    results["load_after"] = os.getloadavg()
    print(f"load average after: {' '.join(f'{v:.1f}' for v in results['load_after'])}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, sort_keys=True, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

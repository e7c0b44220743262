"""Sweeps and sharded explanations, local workers against Ray actors: ``python benchmarks/ray_bench.py``.

Everything goes through the real ``diagnose`` command, one process per measurement, as a user runs it:

startup    ``diagnose mlp.keras --only architecture``: local workers vs ``--executor ray`` (which starts
           a local Ray instance first); the difference of the medians is Ray's start-up overhead;
sweep      ``diagnose sweep`` over the first N of the zoo's checkpoints (data-cheap analyzers) for
           each N, with local workers (1 lane), Ray with 1 actor and Ray with 2 actors (``--workers``);
shards     ``testing.smoothgrad`` (diagnostics.testing.sharded) explaining 2,000 samples of a
           28x28 images with the zoo ``cnn`` (``--shard-model mlp``: a 30-feature table): unsharded,
           locally and on one Ray actor, and ``--shards 4`` on Ray with 2 actors.

Prints one JSON line per measurement and a summary. Timings on a shared machine are noisy: compare
within one run, and repeat (``--reps``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ZOO = REPO / "models" / "artifacts"
CHECKPOINTS = ZOO / "checkpoints" / "cnn_overfit"
DIAGNOSE = str(Path(sys.executable).parent / "diagnose")


def timed(args, env=None) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    p = subprocess.run([DIAGNOSE, *map(str, args)], capture_output=True, text=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - t0, p.returncode, p.stderr[-400:]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--sizes", default="2,4,7")
    ap.add_argument("--only", default="startup,sweep,shards")
    ap.add_argument("--shard-model", default="cnn", choices=["cnn", "mlp"], help="zoo model explained (default: cnn)")
    ap.add_argument("--shard-configs", default="local1,ray1,ray2x4", help="local1, local4, ray1, ray2x4")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    results = []

    def record(kind, **kw):
        results.append({"kind": kind, **kw})
        print(json.dumps(results[-1]), flush=True)

    parts = args.only.split(",")
    if "startup" in parts:
        for rep in range(args.reps):
            for ex in ("local", "ray"):
                s, code, err = timed([ZOO / "mlp.keras", "--only", "architecture", "--out", work / f"s-{ex}-{rep}", "-q",
                                      "--executor", ex])
                record("startup", executor=ex, rep=rep, wall_s=round(s, 2), exit=code, err="" if code == 0 else err)
    if "sweep" in parts:
        ckpts = sorted(CHECKPOINTS.glob("*.keras"))
        for rep in range(args.reps):
            for n in map(int, args.sizes.split(",")):
                for ex, workers in (("local", 1), ("ray", 1), ("ray", 2)):
                    out = work / f"sw-{ex}{workers}-{n}-{rep}"
                    s, code, err = timed(["sweep", *ckpts[:n], "--out", out, "-q", "--executor", ex, "--workers", workers])
                    record("sweep", executor=ex, workers=workers, n=n, rep=rep, wall_s=round(s, 2), exit=code,
                           err="" if code <= 1 else err)
    if "shards" in parts:
        import numpy as np

        rng = np.random.default_rng(0)
        shape = (2000, 28, 28, 1) if args.shard_model == "cnn" else (2000, 30)
        x = rng.random(shape) if args.shard_model == "cnn" else rng.normal(size=shape)
        np.savez(work / "x2000.npz", x=x.astype("float32"))
        site = work / "site"
        site.mkdir()
        (site / "sharded_demo.py").write_text("from diagnostics.testing.sharded import register_analyzers  # noqa: F401\n")
        dist = site / "sharded_demo-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sharded_demo\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text("[diagnostics]\nsharded_demo = sharded_demo\n")
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
        common = [ZOO / f"{args.shard_model}.keras", "--data", work / "x2000.npz", "--only", "testing.smoothgrad", "-q",
                  "--option", "testing.smoothgrad.samples=2000", "--timeout", "1200"]
        maps = {}
        for rep in range(args.reps):
            configs = {"local1": ("local, 1 shard", ["--executor", "local"]),
                       "local4": ("local, 4 shards (1 worker)", ["--executor", "local", "--shards", "4"]),
                       "ray1": ("ray, 1 actor, 1 shard", ["--executor", "ray"]),
                       "ray2x4": ("ray, 2 actors, 4 shards", ["--executor", "ray", "--workers", "2", "--shards", "4"])}
            for label, extra in (configs[c] for c in args.shard_configs.split(",")):
                out = work / f"sh-{len(results)}"
                s, code, err = timed([*common, "--out", out, *extra], env)
                report = json.loads((out / "report.json").read_text()) if (out / "report.json").is_file() else {}
                rec = (report.get("analyzers") or [{}])[0]
                maps[label] = (out / "artifacts/testing.smoothgrad/maps.npy").read_bytes() if rec.get("status") == "ok" else b""
                record("shards", config=label, rep=rep, wall_s=round(s, 2), analyzer_s=rec.get("duration_s"),
                       status=rec.get("status"), exit=code, same_maps_as_first=maps[label] == next(iter(maps.values())))
    summary = {}
    for r in results:
        key = (r["kind"], r.get("executor"), r.get("workers"), r.get("n"), r.get("config"))
        summary.setdefault(key, []).append(r["wall_s"])
    print("\nmedians (s):")
    for key, vals in summary.items():
        print("  ", " ".join(str(k) for k in key if k is not None), round(statistics.median(vals), 2), vals)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

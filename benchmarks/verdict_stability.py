"""How stable the explanation verdicts are across seeds (issue 23): the zoo's healthy models diagnosed with
every explanation analyzer at several seeds, the only change being ``--seed``.

    .venv/bin/python benchmarks/verdict_stability.py [--models cnn,mlp,lstm,transformer] [--seeds 10]
        [--json out.json [--resume]] [--markdown out.md] [--from runs.json]

Per method it reports the verdict at each seed, the most common verdict, how many seeds differ from it,
whether the method is trusted at one seed and failed at another (a flip a gate would trip on), and the
samples each check used (the sequential looks: fewer when a check decides early). The totals line says
how many (method, seed) pairs differ from their method's most common verdict (target: at most 5%) and
how many methods flip between trusted and failed (target: none). Each run gets ``--timeout 1200``:
a look that would not fit an analyzer's budget is not started, so on a loaded machine the default 300 s
could cut the looks short and leave checks undecided that a quiet machine decides; with the longer
budget the verdicts do not depend on the load. ``--json`` is written after every run and ``--resume``
skips the runs it already holds; ``--from`` re-prints the tables of a saved ``--json``.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ZOO = REPO / "models" / "artifacts"
DIAGNOSE = str(Path(sys.executable).parent / "diagnose")
EXPLAINERS = ("explain.gradients", "explain.captum", "explain.shap", "explain.lime")


def run_one(model: str, seed: int) -> dict:
    """``{analyzer:method: {"verdict", "checks": {name: [outcome, samples]}}}`` of one seeded run."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [DIAGNOSE, str(ZOO / f"{model}.keras"), "--seed", str(seed), "--out", tmp, "-q", "--timeout", "1200"]
        for a in EXPLAINERS:
            args += ["--only", a]
        t0 = time.monotonic()
        proc = subprocess.run(args, capture_output=True, text=True)
        report = Path(tmp) / "report.json"
        if not report.exists():
            raise SystemExit(f"{model} seed {seed}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
        data = json.loads(report.read_text())
    out = {"_seconds": round(time.monotonic() - t0, 1), "_exit": proc.returncode}
    for a in data["analyzers"]:
        for e in a.get("explanations", ()):
            key = f"{a['name']}:{e['method']}"
            out[key] = {"verdict": e["verdict"] or "not run",
                        "checks": {c["name"]: [c["outcome"], c.get("samples")] for c in e["checks"]}}
    return out


def summarise(runs: dict[str, dict[int, dict]]) -> tuple[list[dict], dict]:
    rows, pairs, off, flips = [], 0, 0, 0
    for model, by_seed in runs.items():
        methods = sorted({k for r in by_seed.values() for k in r if not k.startswith("_")})
        for m in methods:
            verdicts = [by_seed[s].get(m, {}).get("verdict", "missing") for s in sorted(by_seed)]
            mode, _ = collections.Counter(verdicts).most_common(1)[0]
            differ = sum(v != mode for v in verdicts)
            flip = "trusted" in verdicts and "failed" in verdicts
            samples = sorted({max((n or 0) for _, n in by_seed[s][m]["checks"].values()) for s in by_seed
                              if m in by_seed[s] and by_seed[s][m]["checks"]})
            rows.append({"model": model, "method": m, "verdicts": verdicts, "mode": mode, "differ": differ,
                         "flip": flip, "samples": samples})
            pairs += len(verdicts)
            off += differ
            flips += flip
    return rows, {"pairs": pairs, "differ": off, "differ_share": off / pairs if pairs else 0.0, "flipping_methods": flips}


def markdown(rows: list[dict], totals: dict, seeds: int) -> str:
    short = {"trusted": "T", "undecided": "U", "doubtful": "D", "failed": "F", "not run": "-", "missing": "?"}
    lines = ["| model | method | verdicts by seed (T trusted, U undecided, D doubtful, F failed) | most common | "
             "differ | trusted↔failed | samples audited |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['method']} | {' '.join(short.get(v, v) for v in r['verdicts'])} | {r['mode']} | "
                     f"{r['differ']}/{len(r['verdicts'])} | {'**yes**' if r['flip'] else 'no'} | "
                     f"{', '.join(map(str, r['samples'])) or '-'} |")
    lines.append("")
    lines.append(f"{totals['differ']} of {totals['pairs']} (method, seed) pairs differ from their method's most common "
                 f"verdict ({totals['differ_share']:.1%}; target ≤ 5%); {totals['flipping_methods']} method(s) trusted "
                 f"at one seed and failed at another (target: none). {seeds} seeds.")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="cnn,mlp,lstm,transformer")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--from", dest="load", type=Path, help="print the tables of a saved --json")
    ap.add_argument("--resume", action="store_true", help="keep the runs the --json file already holds")
    a = ap.parse_args(argv)
    if a.load:
        runs = {m: {int(s): r for s, r in v.items()} for m, v in json.loads(a.load.read_text())["runs"].items()}
    else:
        runs: dict[str, dict[int, dict]] = {}
        if a.resume and a.json and a.json.exists():
            runs = {m: {int(s): r for s, r in v.items()} for m, v in json.loads(a.json.read_text())["runs"].items()}
        for model in a.models.split(","):
            runs.setdefault(model, {})
            for seed in range(a.seeds):
                if seed in runs[model]:
                    continue
                runs[model][seed] = run_one(model, seed)
                print(f"{model} seed {seed}: {runs[model][seed]['_seconds']} s", file=sys.stderr, flush=True)
                if a.json:  # kept as it goes: a long run stopped midway loses nothing
                    a.json.write_text(json.dumps({"runs": runs}, indent=1, sort_keys=True))
    rows, totals = summarise(runs)
    text = markdown(rows, totals, max(len(v) for v in runs.values()))
    print(text)
    if a.json:
        a.json.write_text(json.dumps({"runs": runs, "rows": rows, "totals": totals}, indent=1, sort_keys=True))
    if a.markdown:
        a.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

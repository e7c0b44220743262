"""What the suite says about the zoo, in one comparable file: for each artifact in ``models/artifacts``,
the status of every analyzer, the verdict of every explanation method, and the finding codes with
their severities. Run it before and after a change and compare, to show which verdicts moved:

    python benchmarks/zoo_verdicts.py --out before.json [cnn lstm ...]   # default: every artifact
    python benchmarks/zoo_verdicts.py --compare before.json after.json

Each model is diagnosed with default options (``diagnose FILE``, the sidecar gives the data), one at a
time; ``--compare`` prints every difference and exits 1 when there is one.

``zoo_verdicts_all.json`` beside this script is the whole zoo (20 artifacts, 700 keys) as of issue 27,
where a trusted explanation method stopped making an INFO finding (the 108 ``finding:…trusted@…`` keys
of the issue-14 baseline went; every other key was unchanged): compare a change with it
(``--out after.json`` then ``--compare benchmarks/zoo_verdicts_all.json after.json``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "models" / "artifacts"


def summarise(report: dict) -> dict[str, str]:
    """``{key: value}``: ``status:ANALYZER``, ``verdict:ANALYZER:METHOD`` and ``finding:CODE@WHERE``."""
    out = {}
    for a in report["analyzers"]:
        out[f"status:{a['name']}"] = a["status"]
        for e in a.get("explanations", ()):
            out[f"verdict:{a['name']}:{e['method']}"] = e["verdict"] or f"skipped: {e['skipped']}"
        for f in a.get("findings", ()):
            out[f"finding:{f['code']}@{f.get('where') or ''}"] = f["severity"]
    return dict(sorted(out.items()))


def collect(names: list[str]) -> dict[str, dict]:
    exe = str(Path(sys.executable).parent / "diagnose")
    results = {}
    for name in names:
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run([exe, str(ARTIFACTS / f"{name}.keras"), "--out", tmp], capture_output=True, text=True)
            path = Path(tmp) / "report.json"
            results[name] = ({"exit": proc.returncode, **summarise(json.loads(path.read_text()))} if path.exists()
                             else {"exit": proc.returncode, "error": proc.stderr[-500:]})
        print(f"{name}: exit {proc.returncode}", file=sys.stderr, flush=True)
    return results


def compare(before: dict, after: dict) -> list[str]:
    diffs = []
    for model in sorted(set(before) | set(after)):
        b, a = before.get(model, {}), after.get(model, {})
        for key in sorted(set(b) | set(a)):
            if b.get(key) != a.get(key):
                diffs.append(f"{model}: {key}: {b.get(key, '-')} -> {a.get(key, '-')}")
    return diffs


def main(argv: list[str]) -> int:
    if argv[:1] == ["--compare"]:
        before, after = (json.loads(Path(p).read_text()) for p in argv[1:3])
        diffs = compare(before, after)
        print("\n".join(diffs) if diffs else "no differences")
        return 1 if diffs else 0
    out = None
    if "--out" in argv:
        i = argv.index("--out")
        out, argv = Path(argv[i + 1]), argv[:i] + argv[i + 2:]
    names = argv or sorted(p.name.removesuffix(".keras") for p in ARTIFACTS.glob("*.keras"))
    text = json.dumps(collect(names), indent=1, sort_keys=True)
    if out:
        out.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

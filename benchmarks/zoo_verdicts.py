"""What the suite says about the zoo, in one comparable file: for each artifact in ``models/artifacts``,
the status of every analyzer, the verdict of every explanation method, and the finding codes with
their severities. Run it before and after a change and compare, to show which verdicts moved:

    python benchmarks/zoo_verdicts.py --out before.json [cnn lstm ...]   # default: every artifact
    python benchmarks/zoo_verdicts.py --compare before.json after.json

Each model is diagnosed with default options (``diagnose FILE``, the sidecar gives the data), one at a
time; ``--compare`` prints every difference and exits 1 when there is one. Old finding codes in the
BEFORE file (before issue 24's rename) are compared under the code(s) that replaced them
(``diagnostics.codes.ALIASES``; the first line says how many keys were mapped), so a renamed finding
at the same where with the same severity is no difference.

``zoo_verdicts_all.json`` beside this script is the whole zoo (20 artifacts, 734 keys) as of issue 24,
written with the new finding codes: against the issue-27 baseline (700 keys, old codes) it maps 78 keys
through the aliases and shows no differences (one old key can stand for several new ones, such as
``gan.mode_collapse`` for ``health.gan.coverage`` and ``health.gan.top2_share``). Compare a change with it
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


def renamed(before: dict, after: dict) -> tuple[dict, int]:
    """``before`` with its old finding codes written as the codes that replaced them (issue 24,
    :data:`diagnostics.codes.ALIASES`), and how many keys were mapped.

    ``finding:OLD@WHERE`` becomes every ``finding:NEW@WHERE`` of ``after`` that NEW replaced, at the
    same WHERE and with the old severity, so a renamed finding with the same where and severity is not
    a difference and a changed severity shows under the new code. An old code stands for every code
    that replaced it (``explain.baseline_not_neutral`` for each explanation analyzer's own, which the
    old key had collapsed into one). A key ``after`` still has (an analyzer not renamed yet), or whose
    replacements ``after`` lacks at that WHERE, stays as it is: its disappearance is a difference.
    """
    import fnmatch

    sys.path.insert(0, str(REPO))
    from diagnostics.codes import ALIASES

    mapped, out = 0, {}
    for model, keys in before.items():
        after_keys = after.get(model, {})
        new_keys: dict = {}
        for key, value in keys.items():
            code, _, where = key.removeprefix("finding:").partition("@")
            targets = []
            if key.startswith("finding:") and code in ALIASES and key not in after_keys:
                for k in after_keys:
                    c, _, w = k.removeprefix("finding:").partition("@")
                    if k.startswith("finding:") and w == where and any(fnmatch.fnmatchcase(c, n) for n in ALIASES[code]):
                        targets.append(k)
            if targets:
                mapped += 1
                for t in targets:
                    new_keys.setdefault(t, value)
            else:
                new_keys[key] = value
        # a key that already had its current name in ``before`` wins over one mapped from an alias
        out[model] = {**new_keys, **{k: v for k, v in keys.items() if k in new_keys}}
    return out, mapped


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
        before, mapped = renamed(before, after)
        print(f"{mapped} key(s) of {argv[1]} mapped from old finding codes to their replacements (diagnostics.codes)")
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

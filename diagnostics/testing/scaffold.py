"""``diagnose plugin new NAME``: a new plugin package, ready to install, test and ship.

The analyzer it writes is the one built step by step in docs/plugins.md (a test keeps the two
identical), renamed. Standard library only: the CLI imports this module.
"""

from __future__ import annotations

import re
from pathlib import Path

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")

MODULE = '''"""{title}: a diagnostics plugin.

Prediction confidence: how sure the model is of its own predictions on the evaluation data.
"""

from __future__ import annotations

import diagnostics
from diagnostics import Analyzer, Context, Finding, Result, Severity

DIAGNOSTICS_API_VERSION = 1
DEFAULTS = {{"samples": 512, "low": 0.6, "max_low_fraction": 0.3}}


class {cls}(Analyzer):
    """Mean top-class probability, and the share of predictions the model is unsure of."""

    name = "{name}"
    category = "health"
    description = "Prediction confidence: mean top-class probability and the share of low-confidence predictions."
    model_kinds = frozenset({{"image", "sequence", "token", "tabular"}})
    data = "x"
    reference = "Guo et al., On Calibration of Modern Neural Networks, ICML 2017"

    def run(self, context: Context) -> Result:
        import numpy as np

        unknown = sorted(set(context.options) - set(DEFAULTS) - {{"target"}})
        if unknown:
            raise ValueError(f"unknown option(s) {{unknown}}; {name} takes {{sorted(DEFAULTS)}}")
        opts = {{**DEFAULTS, **context.options}}
        if context.info.output_activation not in ("softmax", "sigmoid"):
            return Result.skip(f"needs probabilities (a softmax or sigmoid output); "
                               f"this model's output is {{context.info.output_activation}}")
        x = np.asarray(context.data.x)
        rng = np.random.default_rng(context.seed)
        n = min(int(opts["samples"]), len(x))
        x = x[np.sort(rng.choice(len(x), size=n, replace=False))]
        p = np.asarray(context.model.predict(x, batch_size=256, verbose=0), dtype=np.float64).reshape(n, -1)
        if p.shape[1] == 1:
            p = np.concatenate([1 - p, p], axis=1)
        confidence = p.max(axis=1)
        low = float(np.mean(confidence < opts["low"]))
        findings = []
        if low > opts["max_low_fraction"]:
            findings.append(Finding(
                "{name}.low", Severity.WARNING, where="outputs",
                message=f"{{low:.0%}} of predictions have a top-class probability below {{opts['low']:g}}: "
                        f"the model is unsure on much of its data — check the labels and train longer"))
        artifacts = {{}}
        try:
            import matplotlib
        except ImportError:
            pass
        else:
            matplotlib.use("Agg", force=True)
            import matplotlib.pyplot as plt

            fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
            ax.hist(confidence, bins=20, range=(0, 1), color="#1565c0")
            ax.axvline(opts["low"], color="#ef6c00", linestyle="--")
            ax.set_xlabel("top-class probability")
            ax.set_ylabel("predictions")
            fig.tight_layout()
            fig.savefig(context.artifact_dir / "confidence.png", metadata={{"Software": None}})
            plt.close(fig)
            artifacts["confidence histogram"] = "confidence.png"
        metrics = {{"samples": n, "mean_confidence": round(float(confidence.mean()), 6), "low_fraction": round(low, 6)}}
        return Result(findings=findings, metrics=metrics, artifacts=artifacts)


@diagnostics.hookimpl
def register_analyzers(register):
    register({cls})
'''

PYPROJECT = '''[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "diagnostics-{dash}"
version = "0.1.0"
description = "{title}: a diagnostics plugin"
requires-python = ">=3.11"
dependencies = ["diagnostics>=0.1"]

[project.entry-points.diagnostics]
{name} = "diagnostics_{name}"

[tool.setuptools]
package-dir = {{ "" = "src" }}
packages = ["diagnostics_{name}"]
'''

TEST = '''"""The analyzer keeps the contract diagnostics relies on (run: pytest)."""

from diagnostics.testing import assert_analyzer_contract
from diagnostics_{name} import {cls}


def test_contract():
    assert_analyzer_contract({cls}, options={{"samples": 32}})
'''

README = '''# diagnostics-{dash}

A [diagnostics](https://example.invalid/diagnostics) plugin adding the `{name}` analyzer.

```
pip install -e .
diagnose plugins              # lists {name} 0.1.0
diagnose MODEL.keras --data DATA.npz --only {name}
pytest                        # the analyzer contract, on tiny models of every kind
```

Edit `src/diagnostics_{name}/__init__.py`; docs/plugins.md of diagnostics documents every hook and field.
'''


def module_source(name: str) -> str:
    """The plugin module for analyzer ``name`` (the tutorial's, renamed)."""
    return MODULE.format(name=name, cls=class_name(name), title=name.replace("_", " ").capitalize())


def class_name(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def create(name: str, parent: Path) -> list[Path]:
    """Write the package ``diagnostics-NAME`` under ``parent``; return the files written.

    Raises ValueError for a bad name and FileExistsError when the directory exists.
    """
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"plugin name must be lower-case letters, digits and underscores, starting with a letter "
                         f"(it becomes the module diagnostics_NAME and the analyzer NAME); got {name!r}")
    root = Path(parent) / f"diagnostics-{name.replace('_', '-')}"
    if root.exists():
        raise FileExistsError(f"{root} already exists; choose another name or remove it")
    fields = {"name": name, "cls": class_name(name), "dash": name.replace("_", "-"),
              "title": name.replace("_", " ").capitalize()}
    files = {
        root / "pyproject.toml": PYPROJECT.format(**fields),
        root / "README.md": README.format(**fields),
        root / "src" / f"diagnostics_{name}" / "__init__.py": module_source(name),
        root / "tests" / f"test_{name}.py": TEST.format(**fields),
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)

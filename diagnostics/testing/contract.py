"""``assert_analyzer_contract``: check, in seconds, everything the host relies on from an analyzer.

The checks, in order (each failure names the analyzer, the model kind and what to fix):

1. **metadata** — :func:`declaration_problems` is empty: :meth:`Analyzer.metadata_problems` (name,
   description, model_kinds, data, backends, run()), and for a :class:`~diagnostics.HealthAnalyzer`
   its measures (each :meth:`Measure.problems`, no ``run()`` of its own, every threshold key it names
   present in its threshold section's defaults).
2. **runs on every declared kind, with only the declared data** — for each kind in
   ``model_kinds`` the analyzer gets the tiny model of that kind and exactly the data its ``data``
   attribute asks for (nothing for ``"none"``, inputs without labels for ``"x"``, the validation
   split for ``"xy"``, both splits for ``"train_val"``). It must return a result or
   ``Result.skip(reason)``; raising is a failure.
3. **result shape** — :func:`diagnostics.analyzer.validate_result` finds no problem (findings are
   Findings, metrics are finite JSON values, artifacts are relative paths to files it wrote);
   finding codes are stable dotted identifiers that start with the analyzer's name
   (``<analyzer>.<what>``); a health analyzer's values each name a declared measure; PNG artifacts are PNGs and ``.npy`` artifacts load
   without pickle; progress calls are ``(done, total, message)`` with ``0 <= done <= total``.
4. **JSON round trip** — the result, as an :class:`AnalyzerRecord` in a :class:`Report`, survives
   ``to_json`` -> ``from_dict`` -> ``to_dict`` unchanged.
5. **model and data untouched** — :func:`diagnostics.loading.weights_fingerprint` is the same before
   and after; the data arrays are handed over read-only (the host shares them between analyzers)
   and must hash the same afterwards.
6. **honest skip** — a skip carries a non-empty reason, and the analyzer does not skip every tiny
   model of the kinds it declares (if it applies to none of them, ``model_kinds`` over-claims).
7. **determinism** — a second run with the same seed, on the first kind that produced a result,
   gives the same findings and metrics (floats equal to a relative 1e-6).
8. **budget** — each run ends within ``budget_s`` (default 120 s on the tiny models).

Analyzers run in the calling process when its Keras backend is one the analyzer supports;
otherwise the whole check runs in a subprocess on the analyzer's preferred backend (the class must
then be importable by its module path).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import unittest
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..analyzer import Analyzer, Context, Data, Result, validate_result
from .._measures import HealthAnalyzer, Measurements, section_of
from ..report import AnalyzerRecord, Report

CODE_PATTERN = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)+")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REL_TOL = 1e-6


class ContractError(AssertionError):
    """An analyzer breaks the contract; the message lists every problem found."""


@dataclasses.dataclass
class KindOutcome:
    kind: str
    status: str  #: "ok" or "skipped"
    reason: str
    duration_s: float
    result: Result


@dataclasses.dataclass
class ContractReport:
    """What :func:`assert_analyzer_contract` ran, per kind (returned when every check passed)."""

    analyzer: str
    backend: str
    outcomes: list[KindOutcome]
    determinism_kind: str | None

    def summary(self) -> str:
        parts = [f"{o.kind}: {o.status}{' (' + o.reason + ')' if o.reason else ''} {o.duration_s:.2f}s" for o in self.outcomes]
        return f"{self.analyzer} on {self.backend}: " + "; ".join(parts)


def current_backend() -> str:
    """The Keras backend of this process: the imported keras's, else what KERAS_BACKEND will give."""
    keras = sys.modules.get("keras")
    if keras is not None:
        return keras.backend.backend()
    return os.environ.get("KERAS_BACKEND", "tensorflow")


def context_for(cls: type[Analyzer], kind: str, *, seed: int = 0, options: Mapping[str, Any] | None = None,
                artifact_dir: Path, budget_s: float = 120.0, progress=None, data: Data | None | str = "declared",
                model: Any = None, history: dict | None = None, metadata: dict | None = None) -> Context:
    """A :class:`Context` like the host builds, on the tiny model of ``kind`` (or on ``model``).

    ``data="declared"`` gives exactly what ``cls.data`` asks for of the tiny task's data; pass a
    :class:`Data` or None to choose yourself (required with your own ``model``).
    """
    from ..modelinfo import inspect_model
    from .._runner import _loss_of
    from .models import tiny_case

    if model is None:
        case = tiny_case(kind, seed=0)
        model, loader = case.model, case.companion_loader()
        history = case.history if history is None else history
        metadata = dict(case.metadata) if metadata is None else metadata
        if isinstance(data, str):
            data = declared_data(case.data, cls.data)
    else:
        loader = None
        metadata = {"model_kind": kind, **(metadata or {})}
        if isinstance(data, str):
            raise ValueError("pass data=Data(...) or data=None with your own model")
    info = inspect_model(model, loss=_loss_of(model), kind_hint=kind)
    artifact_dir.mkdir(parents=True, exist_ok=True)
    return Context(
        model=model, info=info, data=data, history=history, metadata=metadata, seed=seed,
        artifact_dir=artifact_dir, budget_s=budget_s, backend=current_backend(), options=dict(options or {}),
        progress=progress or (lambda done, total, message="": None), _companion_loader=loader,
        _deadline=time.monotonic() + budget_s,
    )


def declared_data(full: Data, need: str) -> Data | None:
    """Only the parts of ``full`` that an analyzer declaring ``data=need`` may rely on, as read-only copies.

    Read-only because the host shares one copy of the data between the analyzers of a worker: an
    analyzer that normalises ``context.data.x`` in place would change what the next one sees.
    """
    if need == "none":
        return None
    keep = {"x": ("x_val",), "xy": ("x_val", "y_val")}.get(need, ("x_train", "y_train", "x_val", "y_val"))
    source = full.source + {"x": " (inputs only)", "xy": " (validation)"}.get(need, "")
    return Data(**{k: _frozen(getattr(full, k)) for k in keep}, extras={k: _frozen(v) for k, v in full.extras.items()},
                source=source)


def _frozen(a):
    if a is None:
        return None
    import numpy as np

    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _data_digest(data: Data | None) -> str:
    import hashlib

    import numpy as np

    h = hashlib.blake2b(digest_size=16)
    if data is not None:
        arrays = {k: getattr(data, k) for k in ("x_train", "y_train", "x_val", "y_val")}
        arrays.update({f"extras[{k}]": v for k, v in data.extras.items()})
        for k, a in sorted(arrays.items()):
            if a is not None:
                h.update(k.encode())
                h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def declaration_problems(cls: type[Analyzer]) -> list[str]:
    """What the host cannot use in ``cls``'s declared metadata, found without running it ([] when none).

    :meth:`Analyzer.metadata_problems`, and for a :class:`~diagnostics.HealthAnalyzer` (which it covers:
    each :meth:`~diagnostics.Measure.problems`, no ``run()`` override) every threshold key a measure
    names, looked up where the host will look for it: its section of
    :data:`diagnostics.health.DEFAULT_THRESHOLDS`, or the analyzer's own ``default_thresholds``.
    """
    problems = list(cls.metadata_problems())
    if isinstance(cls, type) and issubclass(cls, HealthAnalyzer) and not problems:
        from ..health import DEFAULT_THRESHOLDS

        for m in cls.measures:
            section = section_of(cls, m)
            known = DEFAULT_THRESHOLDS.get(section, cls.default_thresholds if section == cls.name else {})
            where = (f"section {section!r} of diagnostics.health.DEFAULT_THRESHOLDS" if section in DEFAULT_THRESHOLDS
                     else f"{cls.__name__}.default_thresholds")
            for level in ("warning", "error"):
                keys = getattr(m, level)
                for key in (keys if isinstance(keys, tuple) else (keys,) if keys else ()):
                    if key not in known:
                        problems.append(f"measure {m.name!r}: its {level} threshold {key!r} is not in {where} "
                                        f"(keys there: {sorted(known)}); declare its default there")
    return problems


def code_problems(cls: type[Analyzer], codes: Iterable[str]) -> list[str]:
    """Finding codes that are not ``<analyzer>.<what>``: a dotted identifier starting with ``cls.name``."""
    out = []
    for code in dict.fromkeys(codes):
        if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
            out.append(f"finding code {code!r} is not a stable dotted identifier like 'robustness.noise_sensitive'")
        elif not code.startswith(f"{cls.name}."):
            out.append(f"finding code {code!r} does not start with the analyzer's name: codes are "
                       f"'<analyzer>.<what>' ({cls.name}.<what>), so an --allow glob or a CI rule can select one "
                       f"analyzer's findings")
    return out


def run_analyzer(cls: type[Analyzer], kind: str, *, seed: int = 0, options: Mapping[str, Any] | None = None,
                 artifact_dir: Path | None = None, data: Data | None | str = "declared", model: Any = None,
                 history: dict | None = None, metadata: dict | None = None) -> tuple[Result, Context]:
    """Run ``cls`` once as a worker would (seeded first), on the tiny ``kind`` model or on ``model``; no checks."""
    from .._tensorflow_hidden import seed_everything

    artifact_dir = Path(artifact_dir or tempfile.mkdtemp(prefix=f"contract-{cls.name}-"))
    context = context_for(cls, kind, seed=seed, options=options, artifact_dir=artifact_dir, data=data, model=model,
                          history=history, metadata=metadata)
    seed_everything(seed)
    return cls().run(context), context


def assert_analyzer_contract(cls: type[Analyzer], *, kinds: Iterable[str] | None = None,
                             options: Mapping[str, Any] | None = None, seed: int = 0, budget_s: float = 120.0,
                             backend: str | None = None) -> ContractReport:
    """Raise :class:`ContractError` listing every broken promise of ``cls``; return what ran otherwise.

    ``kinds`` limits the model kinds tried (default: all it declares); ``options`` become
    ``context.options`` (use them to make an expensive analyzer cheap on tiny models);
    ``backend`` forces one (default: this process's, when the analyzer supports it).
    Raises ``unittest.SkipTest`` (which pytest reports as a skip) when a library the analyzer
    ``requires`` is not installed.
    """
    problems = [f"metadata: {p}" for p in declaration_problems(cls)]
    if problems:
        raise ContractError(_format(cls, problems))
    missing = [m for m in cls.requires if not _installed(m)]
    if missing:
        raise unittest.SkipTest(f"{cls.name} requires {', '.join(missing)}, which is not installed")
    here = current_backend()
    target = backend or (here if here in cls.backends else cls.backends[0])
    if target != here:
        return _in_subprocess(cls, target, kinds=kinds, options=options, seed=seed, budget_s=budget_s)
    return _check(cls, kinds=kinds, options=options, seed=seed, budget_s=budget_s)


def _check(cls, *, kinds, options, seed, budget_s) -> ContractReport:
    from ..loading import weights_fingerprint
    from .models import KINDS, tiny_case

    declared = [k for k in KINDS if k in cls.model_kinds]
    chosen = [k for k in (kinds or declared) if k in cls.model_kinds]
    if not chosen:
        raise ContractError(_format(cls, [f"none of the kinds asked for ({sorted(kinds or [])}) is in its model_kinds "
                                          f"{sorted(cls.model_kinds)}"]))
    problems: list[str] = []
    outcomes: list[KindOutcome] = []
    root = Path(tempfile.mkdtemp(prefix=f"contract-{cls.name}-"))
    try:
        for kind in chosen:
            case = tiny_case(kind)
            before = weights_fingerprint(case.model)
            outcome, kind_problems = _one_run(cls, kind, root / kind, options, seed, budget_s)
            if weights_fingerprint(case.model) != before:
                kind_problems.append("changed the model's weights: analyzers must leave context.model as they found "
                                     "it (work on a copy: keras.models.clone_model + set_weights)")
                tiny_case(kind)  # restores the weights for whoever comes next
            problems += [f"{kind} model: {p}" for p in kind_problems]
            if outcome is not None:
                outcomes.append(outcome)
        ran = [o for o in outcomes if o.status == "ok"]
        if outcomes and not ran and kinds is None:
            problems.append(f"skipped every tiny model of the kinds it declares ({', '.join(chosen)}); if it applies "
                            f"to none of them, narrow model_kinds — skip reasons: "
                            + "; ".join(f"{o.kind}: {o.reason}" for o in outcomes))
        determinism_kind = ran[0].kind if ran else None
        if determinism_kind is not None and not problems:
            again, more = _one_run(cls, determinism_kind, root / f"{determinism_kind}-again", options, seed, budget_s)
            problems += [f"{determinism_kind} model, second run: {p}" for p in more]
            if again is not None:
                problems += [f"{determinism_kind} model: not deterministic under seed {seed}: {d}"
                             for d in _differences(ran[0].result, again.result)]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if problems:
        raise ContractError(_format(cls, problems))
    return ContractReport(cls.name, current_backend(), outcomes, determinism_kind)


def _one_run(cls, kind, artifact_dir: Path, options, seed, budget_s) -> tuple[KindOutcome | None, list[str]]:
    from .._tensorflow_hidden import seed_everything

    problems: list[str] = []

    def progress(done, total, message=""):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (done, total)):
            problems.append(f"progress() takes numbers (done, total), got {done!r}, {total!r}")
        elif not 0 <= done <= total:
            problems.append(f"progress({done}, {total}) is outside 0 <= done <= total")
        if not isinstance(message, str):
            problems.append(f"progress() message must be a string, got {type(message).__name__}")

    context = context_for(cls, kind, seed=seed, options=options, artifact_dir=artifact_dir, budget_s=budget_s,
                          progress=progress)
    data_before = _data_digest(context.data)
    seed_everything(seed)
    analyzer, measured = cls(), []
    if isinstance(analyzer, HealthAnalyzer):
        measure = analyzer.measure

        def recorded(ctx):  # the host's own run() judges it; the kit sees what measure() returned
            out = measure(ctx)
            measured.append(out)
            return out

        analyzer.measure = recorded
    t0 = time.perf_counter()
    try:
        result = analyzer.run(context)
    except Exception as e:  # noqa: BLE001
        undeclared = _value_problems(cls, measured)
        if undeclared:
            return None, undeclared
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__, limit=-4))
        given = "no data" if context.data is None else "only " + ", ".join(
            k for k in ("x_train", "y_train", "x_val", "y_val") if getattr(context.data, k) is not None)
        hint = ("; the data arrays are read-only, as the host shares them between analyzers: copy before changing them"
                if "read-only" in str(e) else "; return Result.skip(reason) when it does not apply")
        return None, [f"raised {type(e).__name__}: {e} (it declares data={cls.data!r} and was given {given}{hint})\n{tb}"]
    duration = time.perf_counter() - t0
    if _data_digest(context.data) != data_before:
        problems.append("changed context.data: the host shares the data between analyzers; work on a copy")
    if duration > budget_s:
        problems.append(f"took {duration:.1f} s on a tiny model, over the {budget_s:g} s budget")
    problems += validate_result(result, artifact_dir)
    if not isinstance(result, Result):
        return None, problems
    if result.skipped is not None:
        if not isinstance(result.skipped, str) or not result.skipped.strip():
            problems.append(f"skipped without a reason ({result.skipped!r}): say why, the user sees it")
        if result.findings or result.metrics or result.artifacts:
            problems.append("skipped but also returned findings/metrics/artifacts: a skip carries only its reason")
        return KindOutcome(kind, "skipped", str(result.skipped), duration, result), problems
    problems += code_problems(cls, [f.code for f in result.findings if isinstance(f.code, str)])
    problems += _value_problems(cls, measured)
    problems += _artifact_problems(result, artifact_dir)
    problems += _round_trip_problems(cls, result)
    return KindOutcome(kind, "ok", "", duration, result), problems


def _value_problems(cls, measured: list) -> list[str]:
    """A health analyzer's values that name no declared measure (the host refuses to judge them)."""
    declared = [m.name for m in getattr(cls, "measures", ())]
    out = []
    for m in measured:
        if not isinstance(m, Measurements):
            continue  # run() itself refuses it, naming the type
        for name in dict.fromkeys(v.measure for v in m.values):
            if name not in declared:
                out.append(f"measure() returned a Value of measure {name!r}, which {cls.name} does not declare "
                           f"(it declares {declared}): add a Measure for it to measures")
    return out


def _artifact_problems(result: Result, artifact_dir: Path) -> list[str]:
    out = []
    for name, rel in result.artifacts.items():
        path = artifact_dir / rel
        if not path.is_file():
            continue  # validate_result has reported it
        if rel.lower().endswith(".png") and path.read_bytes()[:8] != PNG_MAGIC:
            out.append(f"artifact {name!r} ({rel}) is named .png but is not a PNG file")
        if rel.lower().endswith(".npy"):
            import numpy as np

            try:
                np.load(path, allow_pickle=False)
            except Exception as e:  # noqa: BLE001
                out.append(f"artifact {name!r} ({rel}) does not load with numpy.load(allow_pickle=False): {e}")
    return out


def _round_trip_problems(cls, result: Result) -> list[str]:
    try:
        record = AnalyzerRecord(name=cls.name, plugin="contract", category=cls.category, status="ok",
                                backend=current_backend(), findings=result.findings, metrics=result.metrics,
                                artifacts={k: f"artifacts/{cls.name}/{v}" for k, v in result.artifacts.items()},
                                explanations=tuple(e.relocated(f"artifacts/{cls.name}") for e in result.explanations))
        report = Report(model={"name": "tiny"}, data=None, environment={}, plugins=(), analyzers=(record,), seed=0,
                        fail_on="error")
        text = report.to_json()
        back = Report.from_dict(json.loads(text))
    except Exception as e:  # noqa: BLE001
        return [f"the result does not survive the JSON report round trip: {type(e).__name__}: {e}"]
    if back.to_dict() != report.to_dict():
        return ["the result changes in the JSON report round trip (tuples, non-string keys or numpy scalars in metrics?)"]
    if back.analyzers[0].findings != tuple(result.findings):
        return ["findings change in the JSON report round trip"]
    return []


def _differences(a: Result, b: Result) -> list[str]:
    out = []
    if [f.to_dict() for f in a.findings] != [f.to_dict() for f in b.findings]:
        out.append(f"findings differ: {[f.to_dict() for f in a.findings]} then {[f.to_dict() for f in b.findings]}")
    out += [f"metrics{p}" for p in _value_differences(dict(a.metrics), dict(b.metrics), "")]
    if sorted(a.artifacts) != sorted(b.artifacts):
        out.append(f"artifact names differ: {sorted(a.artifacts)} then {sorted(b.artifacts)}")
    return out[:10]


def _value_differences(a: Any, b: Any, path: str):
    if isinstance(a, float) or isinstance(b, float):
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)):
            yield f"{path}: {a!r} then {b!r}"
    elif isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(a) != set(b):
            yield f"{path}: keys {sorted(map(str, a))} then {sorted(map(str, b))}"
        for k in sorted(set(a) & set(b), key=str):
            yield from _value_differences(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            yield f"{path}: length {len(a)} then {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            yield from _value_differences(x, y, f"{path}[{i}]")
    elif a != b:
        yield f"{path}: {a!r} then {b!r}"


def _format(cls, problems: list[str]) -> str:
    where = f"{cls.__module__}.{cls.__qualname__}"
    return f"analyzer {cls.name!r} ({where}) breaks the analyzer contract:\n" + "\n".join(f"  - {p}" for p in problems)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# -- other backends: the same check in a subprocess ---------------------------------------------------
def _in_subprocess(cls, backend, *, kinds, options, seed, budget_s) -> ContractReport:
    target = f"{cls.__module__}:{cls.__qualname__}"
    spec = json.dumps({"target": target, "kinds": list(kinds) if kinds else None, "options": dict(options or {}),
                       "seed": seed, "budget_s": budget_s})
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")]).strip(os.pathsep)
    proc = subprocess.run([sys.executable, "-m", "diagnostics.testing.contract", spec], capture_output=True, text=True,
                          env=env, timeout=budget_s * 12 + 120)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stdout + proc.stderr).strip()[-4000:]
        if proc.returncode == 3:
            raise ContractError(tail)
        raise ContractError(f"analyzer {cls.name!r}: the contract check on the {backend} backend did not complete "
                            f"(exit code {proc.returncode}):\n{tail}")
    d = json.loads(lines[-1])
    outcomes = [KindOutcome(o["kind"], o["status"], o["reason"], o["duration_s"], Result()) for o in d["outcomes"]]
    return ContractReport(cls.name, backend, outcomes, d["determinism_kind"])


def _main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    from .._plugin_manager import _import_target

    cls = _import_target(spec["target"])
    try:
        rep = _check(cls, kinds=spec["kinds"], options=spec["options"], seed=spec["seed"], budget_s=spec["budget_s"])
    except ContractError as e:
        print(str(e))
        return 3
    print(json.dumps({"outcomes": [{"kind": o.kind, "status": o.status, "reason": o.reason, "duration_s": o.duration_s}
                                   for o in rep.outcomes], "determinism_kind": rep.determinism_kind}))
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through _in_subprocess
    sys.exit(_main(sys.argv[1:]))

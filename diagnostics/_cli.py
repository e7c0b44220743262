"""The ``diagnose`` command. Imports neither keras, tensorflow nor torch: those live in workers."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import click

from ._exitcodes import ExitCode
from ._textsafe import terminal

# Every line printed here may quote a name that a file or a plugin chose (a model or checkpoint file
# name, a layer, an analyzer, a plugin's error): it goes through textsafe.terminal, so it cannot hide
# or forge the verdict, retitle the terminal, or pass for a GitHub workflow command.

FAIL_ON = ("info", "warning", "error", "never")


_IMPLICIT_RUN = "diagnose.implicit_run"  #: in ctx.meta (shared by the nested contexts): `run` was not typed


class _RunContext(click.Context):
    """The run command's context: when the user typed ``diagnose MODEL``, its usage line and help hint
    say ``diagnose``, not a ``diagnose run`` they never typed."""

    @property
    def command_path(self) -> str:
        if self.meta.get(_IMPLICIT_RUN) and self.parent is not None:
            return self.parent.command_path
        return super().command_path


class _RunCommand(click.Command):
    context_class = _RunContext


class _DefaultGroup(click.Group):
    """``diagnose MODEL ...`` means ``diagnose run MODEL ...``; ``--help`` shows both."""

    def parse_args(self, ctx, args):
        # Anything but a command name or the group's own -h/--version starts a run, options first
        # too (diagnose --out DIR MODEL); the run's usage errors then say `diagnose`, not `run`.
        own = {o for p in self.get_params(ctx) for o in (*p.opts, *p.secondary_opts)}
        if args and args[0] not in self.commands and args[0] not in own:
            args = ["run", *args]
            ctx.meta[_IMPLICIT_RUN] = True
        return super().parse_args(ctx, args)

    def format_help(self, ctx, formatter):
        super().format_help(ctx, formatter)
        run = self.commands["run"]
        with formatter.section("Options of `diagnose MODEL` (the run command)"):
            run_ctx = click.Context(run, info_name="run", parent=ctx)
            formatter.write_dl([p.get_help_record(run_ctx) for p in run.get_params(run_ctx) if p.get_help_record(run_ctx)])
        with formatter.section("Exit codes"):
            formatter.write_dl([(str(int(c)), c.name) for c in ExitCode])


@click.group(cls=_DefaultGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="diagnostics", prog_name="diagnose")
def cli():
    """Diagnose a Keras model: diagnose MODEL.keras|MODEL.h5 [OPTIONS]

    Loads the model safely (a static pre-scan first; code stored in the file never runs without
    --trust), runs every applicable analyzer in worker processes, prints a verdict table, writes
    report.json and report.html, and exits non-zero when a check fails.
    """


def _parse_options(values: tuple[str, ...]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected ANALYZER.KEY=VALUE or KEY=VALUE, got {item!r}", param_hint="--option")
        analyzer, dot, name = key.rpartition(".")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(analyzer if dot else "*", {})[name] = value
    return out


def _names(ctx, param, values):
    """``--only a,b --only c`` -> ``("a", "b", "c")``: comma-separated lists and repetition both work."""
    return tuple(n.strip() for v in values for n in v.split(",") if n.strip())


def use_colour(stream, environ=None) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set to anything but "" (no-color.org)."""
    environ = os.environ if environ is None else environ
    return bool(getattr(stream, "isatty", lambda: False)()) and not environ.get("NO_COLOR")


def _size(ctx, param, value):
    from .safety import parse_size

    try:
        return parse_size(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _optional_size(ctx, param, value):
    return None if value is None else _size(ctx, param, value)
#: Issue 24: sample sharding neither became a mode of the pipelines nor stays in the core (docs/ray.md).
SHARDS_DEPRECATED = ("--shards is deprecated and goes in the next release: no built-in analyzer shards over "
                     "samples, and the explanation pipeline now decides how many samples to audit as it goes, which a "
                     "split fixed in advance cannot follow; --executor ray and sweeps spread whole analyzers instead")


def _memory_limit(ctx, param, value):
    if value is None:
        return None
    from .memory import parse_limit

    try:
        return parse_limit(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@cli.command("run", cls=_RunCommand)
@click.argument("model", metavar="MODEL")
@click.option("--data", "data_path", metavar="FILE", help="Data: .npz (x_train, y_train, x_val, y_val | x, y) or .csv for tabular models. Default: the dataset named by the model's sidecar metadata.")
@click.option("-o", "--out", "out_dir", metavar="DIR", help="Report directory. Default: reports/<model name>.")
@click.option("--only", multiple=True, metavar="NAME[,NAME...]", callback=_names, help="Run only these analyzers (comma-separated, or repeat the option).")
@click.option("--skip", multiple=True, metavar="NAME[,NAME...]", callback=_names, help="Do not run these analyzers (comma-separated, or repeat the option).")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="error", show_default=True, help="Exit 1 when a finding is at least this severe.")
@click.option("--timeout", "timeout_s", metavar="SECONDS", type=click.FloatRange(min=0.1), default=300.0, show_default=True, help="Seconds each analyzer may take before it is stopped.")
@click.option("--seed", metavar="N", type=int, default=0, show_default=True, help="Seed for every random choice; same seed, same report.")
@click.option("--deadline", "deadline_s", metavar="SECONDS", type=click.FloatRange(min=1), default=1800.0, show_default=True, help="Seconds the whole run may take: budgets and load timeouts shrink to what is left, and analyzers whose turn comes after it are not run (timed_out).")
@click.option("--target", metavar="[OUTPUT:]CLASS", default=None,
              help="What to explain: a class, an output (several outputs) or OUTPUT:CLASS; default: the predicted "
                   "class of the first output.")
@click.option("--option", "options", multiple=True, metavar="[ANALYZER.]KEY=VALUE", help="Analyzer option, value parsed as JSON when it can be (repeatable).")
@click.option("--backend", type=click.Choice(["auto", "tensorflow", "torch"]), default="auto", show_default=True, help="Backend for analyzers that support several.")
@click.option("--trust", is_flag=True, help="Allow code stored in the model file (Lambda layers...) to run, after listing it.")
@click.option("--no-sandbox", "no_sandbox", is_flag=True, help="Run the worker processes unconfined: model code may then use the network and any file you can (docs/security.md). Recorded in the report.")
@click.option("--max-model-size", metavar="SIZE", default="1GiB", show_default=True, callback=_size, help="Refuse model files larger than this.")
@click.option("--max-params", metavar="N", type=click.IntRange(min=1), default=200_000_000, show_default=True, help="Refuse models whose config or weights declare more weights than this.")
@click.option("--load-timeout", "load_timeout_s", metavar="SECONDS", type=click.FloatRange(min=0.1), default=300.0, show_default=True, help="Seconds a worker may take to load the model before it is stopped and the model refused.")
@click.option("--max-worker-memory", default=None, callback=_optional_size, metavar="SIZE", help="Memory ceiling (RLIMIT_DATA) of each worker process and of diagnose itself; past it loading is refused and an analyzer fails cleanly. Default: 3/4 of physical memory; 0: none.")
@click.option("--max-memory", default=None, metavar="SIZE|PCT%", callback=_memory_limit, help="Memory the analyzer workers may use together (e.g. 8GiB or 40%); batch sizes shrink to fit it. Default: half of the machine's memory.")
@click.option("--strict-plugins", is_flag=True, help="Stop the run at the first plugin problem (import error, crash, timeout, bad result).")
@click.option("--disable", multiple=True, metavar="PLUGIN[,PLUGIN...]", callback=_names, help="Do not load these plugins (comma-separated or repeated; '*' blocks all third-party plugins). Also DIAGNOSTICS_DISABLE_PLUGINS=a,b.")
@click.option("--label-column", metavar="NAME", default=None, help="CSV column holding the labels (default: label, target, y or class).")
@click.option("--junit-xml", "junit_xml", metavar="FILE", help="Also write a JUnit XML test report (one test case per analyzer) for CI test-report pages.")
@click.option("--summary-md", "summary_md", metavar="FILE", help="Also write a Markdown summary (verdict table, worst findings). Appended to $GITHUB_STEP_SUMMARY when that is set.")
@click.option("--mlflow", "mlflow_run", is_flag=False, flag_value="", default=None, metavar="[RUN_ID]", help="Log report, metrics and verdict to MLflow: into RUN_ID, else the active run (MLFLOW_RUN_ID), else a new one; MLFLOW_TRACKING_URI says where. Needs diagnostics[mlflow].")
@click.option("--baseline", "baseline", metavar="DIR_OR_MODEL", default=None, help="After the run, gate it against this report directory or model file as `diagnose compare` does (compare.json and compare.html in the report directory; --fail-on applies to the regressions too).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="Also print the three slowest phases of the run and each worker's peak memory under the verdict table.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Where analyzers run: local worker processes, or Ray actors (pip install 'diagnostics[ray]'; see docs/ray.md).")
@click.option("--ray-address", default=None, metavar="ADDRESS", help="With --executor ray: join this cluster (host:port from `ray start --head`). Default: a local Ray instance on 127.0.0.1.")
@click.option("--workers", metavar="N", type=click.IntRange(min=1), default=1, show_default=True, help="With --executor ray: actors (jobs in flight) per backend.")
@click.option("--shards", metavar="N", type=click.IntRange(min=1), default=1, show_default=True, help="Deprecated (goes in the next release): split analyzers that shard over samples into this many jobs (same result, see docs/ray.md).")
def run_command(model, out_dir, target, options, disable, no_sandbox, junit_xml, summary_md, mlflow_run, baseline,
                quiet, verbose, **settings):
    """Diagnose MODEL (.keras or .h5)."""
    # ``settings``: the options whose destination is named after a RunConfig field (--data data_path,
    # --timeout timeout_s, --workers workers...), which go into it as they are; the ones named here are
    # translated (--disable, --no-sandbox, --target into the options) or are about this command's output.
    from ._runner import Progress, RunConfig, run_file

    _check_executor(settings["executor"])
    if settings.get("shards", 1) > 1:
        click.echo(f"diagnose: {SHARDS_DEPRECATED}", err=True)

    if mlflow_run is not None:
        from . import mlflow as mlflow_mod

        if not mlflow_mod.available():
            raise click.UsageError(f"--mlflow needs MLflow, which is not installed: {mlflow_mod.INSTALL_HINT}")

    opts = _parse_options(options)
    if target is not None:
        try:
            target_value = int(target)
        except ValueError:
            target_value = target
        opts.setdefault("*", {})["target"] = target_value
    out = Path(out_dir) if out_dir else Path("reports") / Path(model).name.split(".")[0]
    progress = _safe_progress(Progress)(quiet=quiet)
    config = RunConfig(model_path=model, out_dir=out, options=opts, disabled=frozenset(disable), sandbox=not no_sandbox,
                       confirm_trust=_confirm_trust, **settings)
    from ._limits import apply_worker_memory_ceiling

    apply_worker_memory_ceiling(config.max_worker_memory)  # this process too: a file it reads cannot take the machine
    outcome = run_file(config, progress)
    if outcome.report is not None:
        from ._table import verdict_table

        click.echo(verdict_table(outcome.report, colour=use_colour(sys.stdout)))
        if verbose:
            from ._table import slowest_phases

            text = slowest_phases(outcome.report)
            if text:
                click.echo("\n" + text)
        click.echo(f"report: {terminal(out / 'report.json')}  {terminal(out / 'report.html')}", err=True)
    if outcome.message:
        click.echo(f"diagnose: {terminal(outcome.message)}", err=True)
    code = outcome.exit_code
    lost = _write_outputs(outcome, model, out, junit_xml, summary_md, mlflow_run)
    if lost and code in (ExitCode.OK, ExitCode.FINDINGS):
        # an output that was asked for and is missing must not pass CI silently; and the verdict line
        # above said another code, so say which one wins and why
        click.echo(f"diagnose: exit {int(ExitCode.USAGE)}, not {int(code)}: {terminal(' and '.join(lost))} "
                   f"{'was' if len(lost) == 1 else 'were'} asked for and not written", err=True)
        code = ExitCode.USAGE
    if baseline is not None and outcome.report is not None:
        code = _run_gate(baseline, model, out, config, quiet, code)
    sys.exit(int(code))


def _run_gate(baseline: str, model: str, out: Path, config, quiet: bool, code: ExitCode) -> ExitCode:
    """``diagnose MODEL --baseline B``: the run just written in ``out`` is the candidate, B the baseline (a
    model is run with the same settings into OUT/baseline). The run's own failure codes win; else 1 when
    either the run's findings or the gate's regressions reach --fail-on."""
    from . import _compare_run as cr
    from ._runner import Progress, run_file

    say = (lambda text: None) if quiet else (lambda text: click.echo(terminal(text), err=True))
    try:
        side = cr.resolve(baseline, "baseline", out, config, lambda cfg: run_file(cfg, _safe_progress(Progress)(quiet=quiet)), say)
    except cr.CompareError as e:
        click.echo(f"diagnose: {terminal(e)}", err=True)
        return e.exit_code if code in (ExitCode.OK, ExitCode.FINDINGS) else code
    candidate = cr.Side(cr.load_report(out), out, model=Path(model))
    click.echo("")
    gate = _gate(side, candidate, config.fail_on, out, False, None, None, None)
    if code not in (ExitCode.OK, ExitCode.FINDINGS):
        return code
    if gate not in (ExitCode.OK, ExitCode.FINDINGS):
        return gate
    return max(code, gate)


def _attempt(failures: list[str], what: str, action) -> None:
    """Write one output that was asked for; a failure is said on stderr and added to ``failures``, not raised."""
    try:
        action()
    except Exception as e:  # noqa: BLE001 - any failure to write an output is reported, not a crash
        failures.append(what)
        click.echo(f"diagnose: could not write {terminal(what)}: {type(e).__name__}: {terminal(e)}", err=True)


def _write_outputs(outcome, model: str, out: Path, junit_xml: str | None, summary_md: str | None,
                   mlflow_run: str | None) -> list[str]:
    """Write the JUnit XML, the Markdown summary and the MLflow run that were asked for; return the failures."""
    from . import _junit as junit, _summary as summary

    report, name = outcome.report, Path(model).name
    failures = []

    def attempt(what: str, action) -> None:
        _attempt(failures, what, action)

    if junit_xml:
        xml = junit.to_junit_xml(report) if report else junit.failed_run_xml(name, outcome.message, outcome.exit_code)
        attempt(f"the JUnit XML to {junit_xml}", lambda: _write_file(junit_xml, xml))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_md or step_summary:
        run_url = None
        if all(os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")):
            run_url = f"{os.environ['GITHUB_SERVER_URL']}/{os.environ['GITHUB_REPOSITORY']}/actions/runs/{os.environ['GITHUB_RUN_ID']}"
        md = (summary.to_markdown(report, html_path=str(out / "report.html"), run_url=run_url) if report
              else summary.failed_run_markdown(name, outcome.message, outcome.exit_code))
        if summary_md:
            attempt(f"the Markdown summary to {summary_md}", lambda: _write_file(summary_md, md))
        if step_summary:
            def append():
                with open(step_summary, "a", encoding="utf-8") as f:
                    f.write(md + "\n")

            attempt(f"the step summary to $GITHUB_STEP_SUMMARY ({step_summary})", append)
    if mlflow_run is not None and report is not None:
        from . import mlflow as mlflow_mod

        def log():
            run_id = mlflow_mod.log_report(out, run_id=mlflow_run or None)
            click.echo(f"mlflow: logged to run {terminal(run_id)}", err=True)

        attempt("the report to MLflow", log)
    return failures


def _write_file(path: str, text: str) -> None:
    """Write ``text`` to ``path`` (parents created) through a temporary file renamed into place."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, p)


def _check_executor(executor: str) -> None:
    """``--executor ray`` without Ray installed is a usage error naming the install command."""
    if executor == "ray":
        from ._ray_executor import RayUnavailable, require_ray

        try:
            require_ray()
        except RayUnavailable as e:
            click.echo(f"diagnose: {terminal(e)}", err=True)
            sys.exit(int(ExitCode.USAGE))


def _safe_progress(progress_cls):
    """``progress_cls`` (the runner's :class:`Progress`) whose every line is passed through
    :func:`textsafe.terminal` first: progress lines quote analyzer names, reasons and file names."""

    class SafeProgress(progress_cls):
        def say(self, text: str) -> None:
            super().say(terminal(text))

        def step(self, name: str, done: int, total: int, message: str = "") -> None:
            super().step(terminal(name), done, total, terminal(message))

        def live(self, text: str) -> None:
            super().live(terminal(text))

    return SafeProgress


def _confirm_trust(items: list[str]) -> bool:
    click.echo("--trust: loading this model will run code stored in the file:", err=True)
    for item in items:
        click.echo(f"  - {terminal(item)}", err=True)
    if sys.stdin is not None and sys.stdin.isatty():
        return click.confirm("Run it?", default=False, err=True)
    return True


@cli.command("sweep")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("-o", "--out", "out_dir", metavar="DIR", default="reports/sweep", show_default=True, help="Sweep directory: sweep.json and one report per checkpoint under checkpoints/.")
@click.option("--only", multiple=True, metavar="NAME[,NAME...]", callback=_names, help="Run only these analyzers (comma-separated or repeated). Default: every analyzer but the explanations.")
@click.option("--skip", multiple=True, metavar="NAME[,NAME...]", callback=_names, help="Do not run these analyzers (comma-separated or repeated).")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="error", show_default=True, help="Exit 1 when a checkpoint has a finding at least this severe.")
@click.option("--timeout", "timeout_s", metavar="SECONDS", type=click.FloatRange(min=0.1), default=300.0, show_default=True, help="Seconds each analyzer may take per checkpoint.")
@click.option("--seed", metavar="N", type=int, default=0, show_default=True, help="Seed for every random choice.")
@click.option("--option", "options", multiple=True, metavar="[ANALYZER.]KEY=VALUE", help="Analyzer option (repeatable).")
@click.option("--max-model-size", metavar="SIZE", default="1GiB", show_default=True, callback=_size, help="Refuse checkpoint files larger than this.")
@click.option("--disable", multiple=True, metavar="PLUGIN[,PLUGIN...]", callback=_names, help="Do not load these plugins (comma-separated or repeated).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Local worker processes or Ray actors (docs/ray.md).")
@click.option("--ray-address", default=None, metavar="ADDRESS", help="With --executor ray: join this cluster. Default: a local instance on 127.0.0.1.")
@click.option("--workers", metavar="N", type=click.IntRange(min=1), default=1, show_default=True, help="Checkpoints diagnosed at once (each on its own worker or actor).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def sweep_command(paths, out_dir, only, skip, fail_on, timeout_s, seed, options, max_model_size, disable, executor,
                  ray_address, workers, quiet):
    """Diagnose every checkpoint of a training run: files, a directory or a glob (ModelCheckpoint names
    such as model.{epoch:02d}-{val_loss:.2f}.keras give the step). Resumes an interrupted sweep."""
    from ._runner import RunConfig
    from ._sweep import SweepError, run_sweep

    _check_executor(executor)
    out = Path(out_dir)
    base = RunConfig(model_path="", out_dir=out, only=tuple(only), skip=tuple(skip), fail_on=fail_on, timeout_s=timeout_s,
                     seed=seed, max_model_size=max_model_size, disabled=frozenset(disable), options=_parse_options(options),
                     executor=executor, ray_address=ray_address)
    say = (lambda text: None) if quiet else (lambda text: click.echo(terminal(text), err=True))
    try:
        outcome = run_sweep(paths, base, out, workers=workers, say=say)
    except SweepError as e:
        click.echo(f"diagnose: {terminal(e)}", err=True)
        sys.exit(int(ExitCode.USAGE))
    # the first column is the sweep's axis: the epochs (or steps) the file names or sidecars state
    rows = [(outcome.axis, "checkpoint", "verdict", "findings")]
    rows += [(terminal(e["at"]), terminal(e["checkpoint"]), terminal(e["verdict"]), str(len(e["findings"])))
             for e in outcome.entries]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[3])
    _say_what_changed(outcome, say)
    click.echo(f"sweep: {terminal(out / 'sweep.json')} ({outcome.ran} run, {outcome.reused} already done, {outcome.wall_s:.1f}s)", err=True)
    sys.exit(int(outcome.exit_code))


def _say_what_changed(outcome, say) -> None:
    """Why the verdict moved: the warnings and errors that appeared, went or changed severity at each
    checkpoint since the previous one (the index's ``changes``), on stderr beside the progress."""
    from ._sweep import describe_changes

    lines = []
    previous = None
    for e in outcome.entries:
        if e.get("since") and e.get("changes"):
            moved = f"{previous} -> {e['verdict']}" if previous != e["verdict"] else e["verdict"]
            unit = outcome.axis if outcome.axis != "position" else "checkpoint"
            lines.append(f"  {unit} {e['at']}: {moved}: {describe_changes(e)}")
        if e.get("verdict") not in ("refused", "failed"):
            previous = e["verdict"]
    if lines:
        say("what changed (warnings and errors, since the checkpoint before):")
        for line in lines:
            say(line)


@cli.command("compare")
@click.argument("baseline", metavar="BASELINE")
@click.argument("candidate", metavar="CANDIDATE")
@click.option("--data", "data_path", metavar="FILE", help="Data both model sides are run on (as for `diagnose MODEL --data`). Default: each model's sidecar dataset.")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="warning", show_default=True, help="Exit 1 when something regressed at least this severely (a measure, verdict or check regresses as a warning; a finding at its own severity).")
@click.option("-o", "--out", "out_dir", metavar="DIR", default="reports/compare", show_default=True, help="Where compare.json and compare.html go, and the reports of model sides (DIR/baseline, DIR/candidate).")
@click.option("--only", multiple=True, metavar="NAME[,NAME...]", callback=_names, help="Run only these analyzers on a model side.")
@click.option("--skip", multiple=True, metavar="NAME[,NAME...]", callback=_names, help="Do not run these analyzers on a model side.")
@click.option("--seed", metavar="N", type=int, default=0, show_default=True, help="Seed of both model sides' runs.")
@click.option("--option", "options", multiple=True, metavar="[ANALYZER.]KEY=VALUE", help="Analyzer option for both model sides (repeatable).")
@click.option("--timeout", "timeout_s", metavar="SECONDS", type=click.FloatRange(min=0.1), default=300.0, show_default=True, help="Seconds each analyzer may take.")
@click.option("--junit-xml", "junit_xml", metavar="FILE", help="Also write a JUnit XML report: one test case per compared item, a failure per regression.")
@click.option("--summary-md", "summary_md", metavar="FILE", help="Also write a Markdown summary. Appended to $GITHUB_STEP_SUMMARY when that is set.")
@click.option("--mlflow", "mlflow_run", is_flag=False, flag_value="", default=None, metavar="[RUN_ID]", help="Log compare.json and the counts to MLflow (as `diagnose --mlflow`).")
@click.option("-a", "--all", "show_all", is_flag=True, help="List the unchanged items too.")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def compare_command(baseline, candidate, data_path, fail_on, out_dir, only, skip, seed, options, timeout_s, junit_xml,
                    summary_md, mlflow_run, show_all, quiet):
    """Is CANDIDATE worse than BASELINE, and where? Each is a report directory (read as it is) or a model
    file (diagnosed with the same data, seed and options; its report is reused when the file and settings
    match). Writes compare.json and compare.html, prints what regressed, improved or could not be compared
    (docs/compare.md gives the rules), and exits 1 when something regressed at or above --fail-on."""
    from ._runner import Progress, RunConfig, run_file
    from . import _compare_run as cr

    if mlflow_run is not None:
        from . import mlflow as mlflow_mod

        if not mlflow_mod.available():
            raise click.UsageError(f"--mlflow needs MLflow, which is not installed: {mlflow_mod.INSTALL_HINT}")
    out = Path(out_dir)
    config = RunConfig(model_path="", out_dir=out, data_path=data_path, only=tuple(only), skip=tuple(skip),
                       seed=seed, timeout_s=timeout_s, options=_parse_options(options), fail_on="never",
                       confirm_trust=_confirm_trust)
    say = (lambda text: None) if quiet else (lambda text: click.echo(terminal(text), err=True))
    run = lambda cfg: run_file(cfg, _safe_progress(Progress)(quiet=quiet))  # noqa: E731
    try:
        sides = [cr.resolve(path, role, out, config, run, say) for path, role in ((baseline, "baseline"),
                                                                                  (candidate, "candidate"))]
    except cr.CompareError as e:
        click.echo(f"diagnose: {terminal(e)}", err=True)
        sys.exit(int(e.exit_code))
    for difference in cr.mismatch(sides[0].report, sides[1].report):
        click.echo(f"diagnose: warning: the two sides were run differently ({terminal(difference)}): their "
                   f"differences may be the runs', not the models'", err=True)
    sys.exit(int(_gate(sides[0], sides[1], fail_on, out, show_all, junit_xml, summary_md, mlflow_run)))


def _gate(baseline, candidate, fail_on: str, out: Path, show_all: bool, junit_xml, summary_md, mlflow_run) -> ExitCode:
    """Compare two sides, print the table, write compare.json / compare.html and the outputs asked for;
    the exit code (see :func:`diagnostics._compare_run.exit_code`)."""
    from . import _compare_run as cr
    from ._compare import Change, table

    comparison = cr.compare_sides(baseline, candidate, fail_on)
    json_path, html_path = cr.write(comparison, out)[::-1]
    show = tuple(Change) if show_all else (Change.REGRESSED, Change.IMPROVED, Change.CHANGED, Change.NOT_COMPARABLE)
    click.echo(table(comparison, show=show, colour=use_colour(sys.stdout)))
    click.echo(f"compare: {terminal(json_path)}  {terminal(html_path)}", err=True)
    code = cr.exit_code(comparison, baseline, candidate)
    lost = _write_compare_outputs(comparison, out, junit_xml, summary_md, mlflow_run)
    if lost and code in (ExitCode.OK, ExitCode.FINDINGS):
        click.echo(f"diagnose: exit {int(ExitCode.USAGE)}, not {int(code)}: {terminal(' and '.join(lost))} "
                   f"{'was' if len(lost) == 1 else 'were'} asked for and not written", err=True)
        code = ExitCode.USAGE
    return code


def _write_compare_outputs(comparison, out: Path, junit_xml, summary_md, mlflow_run) -> list[str]:
    """The JUnit XML, Markdown summary and MLflow logging of a comparison; return what failed."""
    from . import _junit as junit, _summary as summary

    failures = []

    def attempt(what: str, action) -> None:
        _attempt(failures, what, action)

    if junit_xml:
        attempt(f"the JUnit XML to {junit_xml}", lambda: _write_file(junit_xml, junit.compare_junit_xml(comparison)))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_md or step_summary:
        md = summary.compare_markdown(comparison, html_path=str(out / "compare.html"))
        if summary_md:
            attempt(f"the Markdown summary to {summary_md}", lambda: _write_file(summary_md, md))
        if step_summary:
            def append():
                with open(step_summary, "a", encoding="utf-8") as f:
                    f.write(md + "\n")

            attempt(f"the step summary to $GITHUB_STEP_SUMMARY ({step_summary})", append)
    if mlflow_run is not None:
        from . import mlflow as mlflow_mod

        def log():
            run_id = mlflow_mod.log_comparison(out, run_id=mlflow_run or None)
            click.echo(f"mlflow: logged to run {terminal(run_id)}", err=True)

        attempt("the comparison to MLflow", log)
    return failures


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--disable", multiple=True, metavar="PLUGIN[,PLUGIN...]", callback=_names, help="Do not load these plugins (comma-separated or repeated).")
def plugins_command(as_json, disable):
    """List installed plugins with their versions, hooks and analyzers."""
    from .options import options_metadata
    from ._plugin_manager import PluginHost

    host = PluginHost(disabled=set(disable)).load()
    records = [r.to_dict() for r in host.records.values()]
    if as_json:
        analyzers = {name: {"plugin": e.plugin, "category": e.cls.category, "description": e.cls.description,
                            "model_kinds": sorted(e.cls.model_kinds), "data": e.cls.data, "backends": list(e.cls.backends),
                            "requires": list(e.cls.requires), "options": options_metadata(e.cls)}
                     for name, e in sorted(host.analyzers.items())}
        # JSON escapes control characters itself; "##[" (a workflow command anywhere in a line) can only
        # sit inside a string, where "\u005b" is the same "[".
        click.echo(json.dumps({"plugins": records, "analyzers": analyzers}, sort_keys=True, indent=2)
                   .replace("##[", "##\\u005b"))
    else:
        rows = [("plugin", "version", "hooks", "analyzers", "status")]
        for r in records:
            status = "disabled" if r["disabled"] else f"ERROR: {r['error']}" if r["error"] else "ok"
            rows.append((terminal(r["name"]) + ("" if not r["builtin"] else " (built-in)"), terminal(r["version"]),
                         terminal(", ".join(h.replace("register_", "") for h in r["hooks"]) or "-"),
                         terminal(", ".join(r["analyzers"]) or "-"), terminal(status)))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[4])
    sys.exit(int(ExitCode.PLUGIN_ERROR if host.problems else ExitCode.OK))


@cli.group("plugin")
def plugin_group():
    """Write your own analyzer plugin (see docs/plugins.md)."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--dir", "parent", metavar="DIR", default=".", show_default=True, type=click.Path(file_okay=False), help="Where to create the package.")
def plugin_new_command(name, parent):
    """Create diagnostics-NAME/: a plugin package with a working analyzer NAME and its contract test."""
    from .testing.scaffold import create

    try:
        files = create(name, Path(parent))
    except (ValueError, FileExistsError) as e:
        raise click.UsageError(str(e)) from None
    root = files[0].parent
    for f in files:
        click.echo(f"created {terminal(f)}")
    click.echo(f"next: pip install -e {terminal(root)} && diagnose plugins && pytest {terminal(root)}")


@cli.command("dashboard")
@click.argument("path", required=False, metavar="[REPORT_OR_DIRECTORY]", type=click.Path(exists=True))
@click.option("--port", metavar="PORT", type=click.IntRange(1, 65535), default=8501, show_default=True, help="Port on 127.0.0.1 to serve on.")
def dashboard_command(path, port):
    """Browse reports, compare runs and run a diagnosis in the browser (Streamlit, 127.0.0.1 only).

    REPORT_OR_DIRECTORY is a report directory, its report.json, or a folder of reports
    (default: ./reports).
    """
    import importlib.util

    # Located, not imported: the core never imports the dashboard package (nor streamlit) itself.
    spec = importlib.util.find_spec("diagnostics_dashboard")
    if spec is None or spec.origin is None or importlib.util.find_spec("streamlit") is None:
        click.echo("diagnose: the dashboard is not installed: pip install 'diagnostics[dashboard]'", err=True)
        sys.exit(int(ExitCode.USAGE))
    app = Path(spec.origin).parent / "app.py"
    target = Path(path or "reports").resolve()
    # The shipped dashboard/.streamlit/config.toml sets the rest (no usage statistics, no error details
    # in the page, upload limit, XSRF); the flags repeat what must hold even if the environment says otherwise.
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", "127.0.0.1",
           "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
           "--server.enableXsrfProtection", "true", "--client.showErrorDetails", "none"]
    click.echo(f"diagnose: dashboard on http://127.0.0.1:{port} for {terminal(target)} (Ctrl-C stops it)", err=True)
    sys.stdout.flush()
    os.execve(sys.executable, cmd, {**os.environ, "DIAGNOSTICS_DASHBOARD_REPORT": str(target)})


def main(argv=None) -> None:
    """Console-script entry point: maps every outcome onto :class:`ExitCode`."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        cli.main(args=argv, prog_name="diagnose", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        if isinstance(e, getattr(click.exceptions, "NoArgsIsHelpError", ())):  # its message is our help: as is
            e.show()
        else:
            _show_usage_error(e)
        sys.exit(int(ExitCode.USAGE))
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("diagnose: interrupted: the previous report, if any, is left as it was", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001
        if os.environ.get("DIAGNOSTICS_DEBUG"):
            raise
        click.echo(f"diagnose: internal error: {type(e).__name__}: {terminal(e)} (set DIAGNOSTICS_DEBUG=1 for the traceback, and please report it)", err=True)
        sys.exit(int(ExitCode.INTERNAL_ERROR))
    sys.exit(0)


def _show_usage_error(e: click.ClickException) -> None:
    """Click's usage line and help hint, then one line in the house form, ``diagnose: what is wrong``.

    The message is escaped (it may quote an argument: a file name from a glob). A misspelt option gets
    the one closest spelling, as git does: ``diagnose: no such option --ouy (did you mean --out?)``.
    """
    import difflib

    ctx = getattr(e, "ctx", None)
    if ctx is not None:
        help_option = ctx.command.get_help_option(ctx)
        hint = f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help.\n" if help_option is not None else ""
        click.echo(f"{ctx.get_usage()}\n{hint}", err=True, color=ctx.color)
    if isinstance(e, click.NoSuchOption):
        best = difflib.get_close_matches(e.option_name, e.possibilities or (), n=1)
        message = f"no such option {e.option_name}" + (f" (did you mean {best[0]}?)" if best else "")
    else:
        message = e.format_message()
        if message[:1].isupper() and message[1:2].islower():  # Click's "Invalid value ...", after "diagnose: "
            message = message[0].lower() + message[1:]
    click.echo(f"diagnose: {terminal(message)}", err=True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":  # pragma: no cover
    main()

"""The ``diagnose`` command. Imports neither keras, tensorflow nor torch: those live in workers."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import click

from .exitcodes import ExitCode

FAIL_ON = ("info", "warning", "error", "never")


class _DefaultGroup(click.Group):
    """``diagnose MODEL ...`` means ``diagnose run MODEL ...``; ``--help`` shows both."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
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


def _size(ctx, param, value):
    from .safety import parse_size

    try:
        return parse_size(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _memory_limit(ctx, param, value):
    if value is None:
        return None
    from .memory import parse_limit

    try:
        return parse_limit(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@cli.command("run")
@click.argument("model", metavar="MODEL")
@click.option("--data", "data_path", metavar="FILE", help="Data: .npz (x_train, y_train, x_val, y_val | x, y) or .csv for tabular models. Default: the dataset named by the model's sidecar metadata.")
@click.option("--out", "out_dir", metavar="DIR", help="Report directory. Default: reports/<model name>.")
@click.option("--only", multiple=True, metavar="NAME", help="Run only this analyzer (repeatable).")
@click.option("--skip", multiple=True, metavar="NAME", help="Do not run this analyzer (repeatable).")
@click.option("--fail-on", type=click.Choice(FAIL_ON), default="error", show_default=True, help="Exit 1 when a finding is at least this severe.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1), default=300.0, show_default=True, help="Seconds each analyzer may take before it is stopped.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for every random choice; same seed, same report.")
@click.option("--target", default=None, help="Output class (or output name) to explain; default: the predicted class.")
@click.option("--option", "options", multiple=True, metavar="[ANALYZER.]KEY=VALUE", help="Analyzer option, value parsed as JSON when it can be (repeatable).")
@click.option("--backend", type=click.Choice(["auto", "tensorflow", "torch"]), default="auto", show_default=True, help="Backend for analyzers that support several.")
@click.option("--trust", is_flag=True, help="Allow code stored in the model file (Lambda layers...) to run, after listing it.")
@click.option("--max-model-size", default="1GiB", show_default=True, callback=_size, help="Refuse model files larger than this.")
@click.option("--max-memory", default=None, metavar="SIZE|PCT%", callback=_memory_limit, help="Memory the analyzer workers may use together (e.g. 8GiB or 40%); batch sizes shrink to fit it. Default: half of the machine's memory.")
@click.option("--strict-plugins", is_flag=True, help="Stop the run at the first plugin problem (import error, crash, timeout, bad result).")
@click.option("--disable", multiple=True, metavar="PLUGIN", help="Do not load this plugin (repeatable; '*' blocks all third-party plugins). Also DIAGNOSTICS_DISABLE_PLUGINS=a,b.")
@click.option("--label-column", default=None, help="CSV column holding the labels (default: label, target, y or class).")
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
def run_command(model, data_path, out_dir, only, skip, fail_on, timeout_s, seed, target, options, backend, trust,
                max_model_size, strict_plugins, disable, label_column, quiet, max_memory=None):
    """Diagnose MODEL (.keras or .h5)."""
    from .runner import Progress, RunConfig, run_file

    opts = _parse_options(options)
    if target is not None:
        try:
            target_value = int(target)
        except ValueError:
            target_value = target
        opts.setdefault("*", {})["target"] = target_value
    out = Path(out_dir) if out_dir else Path("reports") / Path(model).name.split(".")[0]
    progress = Progress(quiet=quiet)
    config = RunConfig(
        model_path=model, out_dir=out, data_path=data_path, only=tuple(only), skip=tuple(skip), fail_on=fail_on,
        timeout_s=timeout_s, seed=seed, trust=trust, max_model_size=max_model_size, backend=backend,
        strict_plugins=strict_plugins, disabled=frozenset(disable), options=opts, label_column=label_column,
        confirm_trust=_confirm_trust, max_memory=max_memory,
    )
    outcome = run_file(config, progress)
    if outcome.report is not None:
        from .table import verdict_table

        click.echo(verdict_table(outcome.report, colour=sys.stdout.isatty()))
        click.echo(f"report: {out / 'report.json'}  {out / 'report.html'}", err=True)
    if outcome.message:
        click.echo(f"diagnose: {outcome.message}", err=True)
    sys.exit(int(outcome.exit_code))


def _confirm_trust(items: list[str]) -> bool:
    click.echo("--trust: loading this model will run code stored in the file:", err=True)
    for item in items:
        click.echo(f"  - {item}", err=True)
    if sys.stdin is not None and sys.stdin.isatty():
        return click.confirm("Run it?", default=False, err=True)
    return True


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--disable", multiple=True, metavar="PLUGIN", help="Do not load this plugin (repeatable).")
def plugins_command(as_json, disable):
    """List installed plugins with their versions, hooks and analyzers."""
    from .plugin_manager import PluginHost

    host = PluginHost(disabled=set(disable)).load()
    records = [r.to_dict() for r in host.records.values()]
    if as_json:
        analyzers = {name: {"plugin": e.plugin, "category": e.cls.category, "description": e.cls.description,
                            "model_kinds": sorted(e.cls.model_kinds), "data": e.cls.data, "backends": list(e.cls.backends),
                            "requires": list(e.cls.requires)} for name, e in sorted(host.analyzers.items())}
        click.echo(json.dumps({"plugins": records, "analyzers": analyzers}, sort_keys=True, indent=2))
    else:
        rows = [("plugin", "version", "hooks", "analyzers", "status")]
        for r in records:
            status = "disabled" if r["disabled"] else f"ERROR: {r['error']}" if r["error"] else "ok"
            rows.append((r["name"] + ("" if not r["builtin"] else " (built-in)"), r["version"],
                         ", ".join(h.replace("register_", "") for h in r["hooks"]) or "-",
                         ", ".join(r["analyzers"]) or "-", status))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        for row in rows:
            click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[4])
    sys.exit(int(ExitCode.PLUGIN_ERROR if host.problems else ExitCode.OK))


@cli.group("plugin")
def plugin_group():
    """Write your own analyzer plugin (see docs/plugins.md)."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--dir", "parent", default=".", show_default=True, type=click.Path(file_okay=False), help="Where to create the package.")
def plugin_new_command(name, parent):
    """Create diagnostics-NAME/: a plugin package with a working analyzer NAME and its contract test."""
    from .testing.scaffold import create

    try:
        files = create(name, Path(parent))
    except (ValueError, FileExistsError) as e:
        raise click.UsageError(str(e)) from None
    root = files[0].parent
    for f in files:
        click.echo(f"created {f}")
    click.echo(f"next: pip install -e {root} && diagnose plugins && pytest {root}")


@cli.command("dashboard")
@click.argument("path", required=False, metavar="[REPORT_OR_DIRECTORY]", type=click.Path(exists=True))
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True, help="Port on 127.0.0.1 to serve on.")
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
    click.echo(f"diagnose: dashboard on http://127.0.0.1:{port} for {target} (Ctrl-C stops it)", err=True)
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
        e.show()
        sys.exit(int(ExitCode.USAGE))
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("diagnose: interrupted: the previous report, if any, is left as it was", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001
        if os.environ.get("DIAGNOSTICS_DEBUG"):
            raise
        click.echo(f"diagnose: internal error: {type(e).__name__}: {e} (set DIAGNOSTICS_DEBUG=1 for the traceback, and please report it)", err=True)
        sys.exit(int(ExitCode.INTERNAL_ERROR))
    sys.exit(0)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":  # pragma: no cover
    main()

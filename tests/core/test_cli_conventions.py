"""Command-line conventions: -o, comma-separated lists, --version, NO_COLOR, a synopsis (docs/usage.md) that
matches the parser. In-process and without a model: the run itself is replaced by a recorder."""

from __future__ import annotations

import importlib.metadata
import io
import itertools
import re
import sys
from collections import Counter
from pathlib import Path

import click
import pytest

from diagnostics import AnalyzerRecord, ExitCode, Finding, Report
from diagnostics import _cli as cli, _runner as runner

USAGE = Path(__file__).resolve().parents[2] / "docs" / "usage.md"


def _report() -> Report:
    record = AnalyzerRecord(name="weights", plugin="weights", category="health", status="ok", duration_s=0.5,
                            findings=(Finding("weights.nonfinite", "error", "1 of 12 weights are NaN", "dense/kernel"),))
    return Report(model={"name": "m.keras"}, data=None, environment={}, plugins=(), analyzers=(record,), seed=0,
                  fail_on="error", exit_code=1)


@pytest.fixture
def recorded(monkeypatch):
    """Run the CLI in this process; ``run_file`` records its RunConfig and returns a finished report."""
    configs = []

    def fake_run_file(config, progress=None):
        configs.append(config)
        return runner.Outcome(_report(), ExitCode.FINDINGS)

    monkeypatch.setattr(runner, "run_file", fake_run_file)

    def run(*argv):
        with pytest.raises(SystemExit) as e:
            cli.main(list(argv))
        return e.value.code, (configs[-1] if configs else None)

    return run


def test_short_out_and_comma_separated_lists(recorded, tmp_path):
    code, config = recorded("m.keras", "-o", str(tmp_path / "r"), "--only", "health.gradients,weights", "--only", "architecture",
                            "--skip", " explain.lime , explain.shap,", "--disable", "a,b", "--disable", "c", "-q")
    assert code == ExitCode.FINDINGS
    assert config.out_dir == tmp_path / "r"
    assert config.only == ("health.gradients", "weights", "architecture")
    assert config.skip == ("explain.lime", "explain.shap")
    assert config.disabled == frozenset({"a", "b", "c"})


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"diagnose, version {importlib.metadata.version('diagnostics')}\n"


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("no_color, tty, coloured", [("", True, True), ("1", True, False), ("", False, False)])
def test_colour_only_on_a_terminal_and_never_with_no_color(recorded, monkeypatch, tmp_path, no_color, tty, coloured):
    monkeypatch.setenv("NO_COLOR", no_color)  # no-color.org: set to a non-empty value means no colour
    out = _Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    code, _ = recorded("m.keras", "-o", str(tmp_path / "r"), "-q")
    assert code == ExitCode.FINDINGS
    text = out.getvalue()
    assert "weights.nonfinite [dense/kernel]: 1 of 12 weights are NaN" in text
    assert ("\033[31m" in text) is coloured, repr(text[-300:])


def test_use_colour_reads_the_stream_and_environment():
    assert cli.use_colour(_Terminal(), {}) is True
    assert cli.use_colour(_Terminal(), {"NO_COLOR": "0"}) is False  # any non-empty value
    assert cli.use_colour(_Terminal(), {"NO_COLOR": ""}) is True
    assert cli.use_colour(io.StringIO(), {}) is False


def test_mlflow_without_the_extra_is_a_usage_error_naming_the_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what an environment without MLflow looks like to importlib
    called = []
    monkeypatch.setattr(runner, "run_file", lambda *a, **k: called.append(1))
    with pytest.raises(SystemExit) as e:
        cli.main(["m.keras", "-o", str(tmp_path / "r"), "--mlflow"])
    assert e.value.code == ExitCode.USAGE
    assert "--mlflow needs MLflow, which is not installed: pip install 'diagnostics[mlflow]'" in capsys.readouterr().err
    assert not called, "refused before any work"
    from diagnostics import mlflow as diag_mlflow

    with pytest.raises(diag_mlflow.MlflowMissing, match=r"pip install 'diagnostics\[mlflow\]'"):
        diag_mlflow.log_report(_report())


# -- the synopsis in docs/usage.md is the parser's ------------------------------------------------------
def _render(param: click.Parameter, ctx: click.Context) -> str:
    """How the synopsis writes one parameter: ``[-o|--out DIR]``, ``[--only NAME[,NAME...]]...``."""
    if isinstance(param, click.Argument):
        return param.make_metavar(ctx)
    flags = "|".join(sorted(param.opts + param.secondary_opts, key=lambda o: (o.startswith("--"), o)))
    if param.is_flag:
        value = ""
    elif isinstance(param.type, click.Choice):
        value = " " + "|".join(param.type.choices)
    else:
        value = " " + (param.metavar or param.name.upper())
    return f"[{flags}{value}]" + ("..." if param.multiple else "")


def _groups(text: str) -> list[str]:
    """The top-level ``[...]`` groups of a synopsis line (with a trailing ``...``), and its bare words."""
    out, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "[":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                end = i + 1
                if text.startswith("...", end):
                    end += 3
                out.append(text[start:end])
                i = end
                continue
        i += 1
    return out


def _readme_synopsis() -> dict[str, str]:
    section = USAGE.read_text().split("## Synopsis", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    commands: list[str] = []
    for line in block.splitlines():
        line = line.split("  #", 1)[0].rstrip()
        if line.startswith(" ") and commands:
            commands[-1] += " " + line.strip()
        elif line:
            commands.append(line)
    by_key = {}
    for c in commands:
        words = c.split()[1:]
        if words[0].startswith("MODEL"):
            key = "MODEL"
        else:
            key = " ".join(itertools.takewhile(lambda w: re.fullmatch(r"[a-z]+", w), words))
        by_key[key] = c
    return by_key


def _leaf_commands():
    ctx = click.Context(cli.cli, info_name="diagnose", **cli.cli.context_settings)
    yield "", cli.cli, ctx
    for name, cmd in cli.cli.commands.items():
        sub = click.Context(cmd, info_name=name, parent=ctx)
        if isinstance(cmd, click.Group):
            for sub_name, leaf in cmd.commands.items():
                yield f"{name} {sub_name}", leaf, click.Context(leaf, info_name=sub_name, parent=sub)
        else:
            yield ("MODEL" if name == "run" else name), cmd, sub


def test_readme_synopsis_matches_the_parser():
    readme = _readme_synopsis()
    for key, cmd, ctx in _leaf_commands():
        assert key in readme, f"docs/usage.md's synopsis has no line for `diagnose {key}`: {sorted(readme)}"
        line = readme[key]
        help_option = cmd.get_help_option(ctx)
        params = [p for p in cmd.get_params(ctx) if not (key and p is help_option)]
        expected = [_render(p, ctx) for p in params if not isinstance(p, click.Argument) or p.required is False]
        documented = [g for g in _groups(line) if g.startswith("[-") or any(g == _render(p, ctx) for p in params)]
        assert Counter(documented) == Counter(expected), (
            f"`diagnose {key}`: docs/usage.md says {sorted(set(documented) - set(expected))}, "
            f"the parser has {sorted(set(expected) - set(documented))}")
        for p in params:
            if isinstance(p, click.Argument) and p.required:
                assert p.make_metavar(ctx).strip("[]") in line, f"`diagnose {key}` lacks its argument {p.name}"
    assert "NAME ...]" not in USAGE.read_text(), "an option takes one value; write NAME[,NAME...] or repeat it"


def test_mlflow_option_takes_an_optional_run_id_and_a_failed_output_is_exit_2(recorded, monkeypatch, tmp_path, capsys):
    from diagnostics import mlflow as diag_mlflow

    calls = []
    monkeypatch.setattr(diag_mlflow, "log_report", lambda report, run_id=None: calls.append((report, run_id)) or "r1")
    out = tmp_path / "r"
    assert recorded("m.keras", "-o", str(out), "--mlflow", "0123abcd", "-q")[0] == ExitCode.FINDINGS
    assert recorded("m.keras", "-o", str(out), "--mlflow", "-q")[0] == ExitCode.FINDINGS
    assert calls == [(out, "0123abcd"), (out, None)]

    def unreachable(report, run_id=None):
        raise ConnectionError("tracking server at http://127.0.0.1:9 refused the connection")

    monkeypatch.setattr(diag_mlflow, "log_report", unreachable)
    code, _ = recorded("m.keras", "-o", str(out), "--mlflow", "--junit-xml", str(tmp_path / "j.xml"))
    assert code == ExitCode.USAGE, "a run that found problems (1) but lost an output it was asked for is 2"
    err = capsys.readouterr().err
    assert "diagnose: could not write the report to MLflow: ConnectionError: tracking server at http://127.0.0.1:9 refused" in err
    assert err.splitlines()[-1] == "diagnose: exit 2, not 1: the report to MLflow was asked for and not written", \
        "the verdict line said exit 1: the last line says which code wins and why"
    assert (tmp_path / "j.xml").is_file(), "the other outputs are still written"


# -- usage errors: diagnose MODEL is not `diagnose run`, and a typo gets the closest name ------------------
def _usage_error(capsys, *argv) -> tuple[int, str]:
    with pytest.raises(SystemExit) as e:
        cli.main(list(argv))
    captured = capsys.readouterr()
    assert captured.out == ""
    return e.value.code, captured.err


@pytest.mark.parametrize("argv", [("m.keras", "--ouy", "r"), ("--ouy", "r", "m.keras")])
def test_a_misspelt_option_names_the_closest_and_not_a_run_command_the_user_never_typed(capsys, argv):
    assert _usage_error(capsys, *argv) == (ExitCode.USAGE, (
        "Usage: diagnose [OPTIONS] MODEL\n"
        "Try 'diagnose -h' for help.\n"
        "\n"
        "diagnose: no such option --ouy (did you mean --out?)\n"))


def test_usage_errors_in_the_house_form_with_the_command_the_user_typed(capsys):
    code, err = _usage_error(capsys, "m.keras", "--fail-on", "sometimes")
    assert code == ExitCode.USAGE and err.splitlines()[0] == "Usage: diagnose [OPTIONS] MODEL"
    assert err.splitlines()[-1] == ("diagnose: invalid value for '--fail-on': 'sometimes' is not one of 'info', "
                                    "'warning', 'error', 'never'.")
    code, err = _usage_error(capsys, "run", "m.keras", "--ony", "weights")  # typed `run`: its usage says so
    assert code == ExitCode.USAGE and err == ("Usage: diagnose run [OPTIONS] MODEL\nTry 'diagnose run -h' for help.\n\n"
                                              "diagnose: no such option --ony (did you mean --only?)\n")
    code, err = _usage_error(capsys, "sweep", "--ouy", "x", "a.keras")
    assert code == ExitCode.USAGE and err.splitlines()[::3] == ["Usage: diagnose sweep [OPTIONS] PATH...",
                                                                "diagnose: no such option --ouy (did you mean --out?)"]
    code, err = _usage_error(capsys, "m.keras", "--zzz")
    assert code == ExitCode.USAGE and err.splitlines()[-1] == "diagnose: no such option --zzz"


def test_options_may_come_before_the_model(recorded, tmp_path):
    code, config = recorded("-o", str(tmp_path / "r"), "--only", "weights", "-q", "m.keras")
    assert code == ExitCode.FINDINGS and config.out_dir == tmp_path / "r" and config.model_path == "m.keras"


@pytest.mark.parametrize("name, hint", [
    ("health.gradient", "did you mean health.gradients?"),
    ("weight", "did you mean weights?"),
    ("lime", "did you mean explain.lime?"),
    ("gradients", "did you mean explain.gradients or health.gradients?"),
    ("explain", "did you mean one of explain.captum, explain.gradients, explain.lime, explain.shap, explain.shortcut?"),
])
def test_an_unknown_analyzer_gets_the_names_it_was_meant_to_be_not_the_whole_list(capsys, tmp_path, name, hint):
    from diagnostics._plugin_manager import PluginHost

    installed = len(PluginHost().load().analyzers)
    for flag in ("--only", "--skip"):
        code, err = _usage_error(capsys, str(tmp_path / "never-read.keras"), flag, name, "-o", str(tmp_path / "r"), "-q")
        assert (code, err) == (ExitCode.USAGE, f"diagnose: unknown analyzer {name!r}; {hint} ({installed} installed)\n")
    assert not (tmp_path / "r").exists(), "refused before any output folder is made"

"""Output no file can forge: a name from a model file, a checkpoint's file name or a plugin's message
is escaped for every place it is written (terminal, job summary, JUnit XML, HTML report, notebook), and so
is a health measure's section (its title, unit, reference, where, series and note, from a plugin or a
report someone sent).

The hostile strings are the red team's: a layer name with newlines, a fake ``verdict: clean -> exit 0``
line, ``ESC[8m`` (hides what follows on a terminal), a ``::notice`` workflow command and the older
``##[add-mask]`` one (GitHub Actions runs both), an OSC sequence (retitles the terminal) and a bidi
override; a model file name that would add ``## ✅ PASSED`` to the job summary; Markdown and HTML that
would render as a link, an image or a badge.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import junitparser
import pytest

from diagnostics import AnalyzerRecord, ExitCode, Finding, Report
from diagnostics import _textsafe as textsafe
from diagnostics._html import render_html
from diagnostics._junit import failed_run_xml, to_junit_xml
from diagnostics._summary import failed_run_markdown, to_markdown
from diagnostics._table import slowest_phases, verdict_table
from diagnostics._verdicts import Check, MethodExplanation

from ..conftest import run_diagnose

FAKE_VERDICT = "verdict: clean (fail on error) -> exit 0"
#: A layer name: newline, hidden text, a forged verdict line, both kinds of workflow command.
LAYER = f"dense\n\x1b[8m{FAKE_VERDICT}\x1b[0m\n::notice title=ok::all clean ##[add-mask]error"
#: What the terminal shows for it: one line, every control character visible, the commands broken.
LAYER_SHOWN = (r"dense\n\x1b[8m" + FAKE_VERDICT + r"\x1b[0m\n::notice title=ok::all clean ##\[add-mask]error")
#: A model file name: an OSC title sequence, a clear screen, and a second Markdown heading.
MODEL = "m\x1b]0;pwned\x07\x1b[2J.keras\n## ✅ PASSED"
MARKUP = "![t](http://evil.example/t.png) [clean](http://phish.example) <b>x</b> | `code` :green-badge[clean]"

# Our own colour codes: SGR, digits only. Anything else after an ESC came from the report.
_OUR_SGR = re.compile(r"\x1b\[\d+m")


def hostile_report() -> Report:
    section = MethodExplanation(method=f"ig\n{FAKE_VERDICT}", verdict="doubtful", reasons=("r\x1b[8m",),
                                checks=(Check(f"faith\x1b]0;t\x07", 0.1, 0.5, "doubtful"),), skipped="")
    records = (
        AnalyzerRecord(name="::warning::forged", plugin="evil", category="health", status="ok", duration_s=0.5,
                       findings=(Finding("w.zero\n::error::x", "error", f"msg \u202eclean\u202c\n{FAKE_VERDICT}", LAYER),
                                 Finding("w.md|`x`", "warning", MARKUP, "<b>layer</b>"))),
        AnalyzerRecord(name=f"explain\n{FAKE_VERDICT}", plugin="evil", category="explanation", status="ok",
                       duration_s=0.25, explanations=(section,)),
        AnalyzerRecord(name="slow\x1b[8m", plugin="evil", category="health", status="failed", duration_s=0.1,
                       reason=f"plugin 'slow': boom\n{FAKE_VERDICT}", traceback="Traceback\n  \x1b[8mhidden\n"),
    )
    return Report(model={"name": MODEL, "path": MODEL, "info": {"kind": "tabular"}}, data=None, environment={},
                  plugins=({"name": "bad\n::error::p", "error": "ImportError: \x1b]8;;http://e\x07link\x1b]8;;\x07"},),
                  analyzers=records, seed=0, fail_on="error", exit_code=int(ExitCode.ANALYZER_FAILED),
                  timings={"total_s": 1.0})


def _assert_terminal_safe(text: str, verdict: bool = True) -> None:
    """No ESC but our own colour codes, no bidi override, no line a CI runner would run, one verdict."""
    assert not [m for m in re.finditer("\x1b", text) if not _OUR_SGR.match(text, m.start())], repr(text)
    assert not re.search("[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]", text)
    for line in text.splitlines():
        assert not line.lstrip().startswith("::"), line
        assert "##[" not in line, line
    assert FAKE_VERDICT not in text.splitlines()
    if verdict:
        assert [line for line in text.splitlines() if line.startswith("verdict:")] == [text.splitlines()[-1]]


# -- the sink functions --------------------------------------------------------------------------------
def test_terminal_shows_control_and_bidi_characters_as_escapes_and_keeps_ordinary_unicode():
    assert textsafe.terminal(LAYER) == LAYER_SHOWN
    assert textsafe.terminal("a\rb\tc\x00\x7f\x85\x9b\u2028\u2029\u202e\u2066\u200f\udcff") == \
        r"a\rb\tc\x00\x7f\x85\x9b\u2028\u2029\u202e\u2066\u200f\udcff"
    assert textsafe.terminal("café ✅ 中文 ß") == "café ✅ 中文 ß"
    assert textsafe.terminal("  ::notice::x") == r"  \:\:notice::x"  # the runner trims leading space first
    assert textsafe.workflow_safe("ok\n\t::error::x\nbad ##[add-mask]y") == "ok\n\t\\:\\:error::x\nbad ##\\[add-mask]y"


def test_markdown_sinks():
    assert textsafe.markdown(MODEL) == r"m\x1b]0;pwned\x07\x1b[2J.keras\n## ✅ PASSED".replace("\\", "\\\\") \
        .replace("[", "\\[").replace("]", "\\]")
    assert textsafe.markdown("a|b <i> *x* _y_ ~z~ [l](u)") == r"a\|b \<i\> \*x\* \_y\_ \~z\~ \[l\](u)"
    # A code span is fenced with more backticks than it holds, never shortened; no newline survives.
    assert textsafe.markdown_code("a`b``c") == "```a`b``c```"
    assert textsafe.markdown_code("`x\ny") == "`` `x\\ny ``"
    assert textsafe.markdown_code("a|b", in_table=True) == "`a\\|b`"
    assert textsafe.streamlit_markdown(":red[x]\n$y$") == r"\:red\[x\]\\n\$y\$"
    assert textsafe.streamlit_markdown("a\nb", multiline=True) == "a  \nb"


def test_xml_and_html_sinks():
    assert textsafe.xml_text("a\x1b[31mb\tc\nd\ufffe\x85") == "a\\x1b[31mb\tc\nd\\ufffe\\x85"
    assert textsafe.html_text("<a href='x'>\u202e</a>\n") == "&lt;a href=&#x27;x&#x27;&gt;\\u202e&lt;/a&gt;\n"


# -- the writers, on a report holding every hostile string ------------------------------------------------
@pytest.mark.parametrize("colour", [False, True])
def test_verdict_table_cannot_be_forged(colour):
    report = hostile_report()
    text = verdict_table(report, colour=colour)
    _assert_terminal_safe(text)
    plain = _OUR_SGR.sub("", text)
    lines = plain.splitlines()
    assert lines[-1] == "verdict: error (fail on error), and 1 analyzer failed and 1 plugin failed to load -> exit 3"
    assert f"ERROR w.zero\\n::error::x [{LAYER_SHOWN}]: msg \\u202eclean\\u202c\\n{FAKE_VERDICT}" in lines
    assert any(re.match(r"\\:\\:warning::forged +ok +error +2 +0.5s$", line) for line in lines), lines
    assert any(line.startswith(r"explain\nverdict: clean (fail on error) -> exit 0:ig\nverdict") for line in lines)
    assert r"faith\x1b]0;t\x07 0.1 (> 0.5 wanted)" in plain
    assert f"slow\\x1b[8m: failed: plugin 'slow': boom\\n{FAKE_VERDICT}" in lines
    assert r"plugin 'bad\n::error::p': ImportError: \x1b]8;;http://e\x07link\x1b]8;;\x07" in lines
    # The columns are padded to the escaped names: each row's status sits under the header's.
    col = lines[0].index("status")
    assert [line[col:].split()[0] for line in lines[2:5]] == ["ok", "ok", "failed"]


def test_slowest_phases_escape_analyzer_names():
    text = slowest_phases(hostile_report(), n=5)
    _assert_terminal_safe(text, verdict=False)
    assert r"  \:\:warning::forged" in text


def test_summary_has_one_heading_and_no_line_from_a_name():
    md = to_markdown(hostile_report(), html_path="out/report`.html")
    lines = md.splitlines()
    assert [line for line in lines if line.startswith("#")] == [lines[0]]
    assert lines[0] == r"### diagnose `m\x1b]0;pwned\x07\x1b[2J.keras\n## ✅ PASSED`: FAILED"
    assert not any(line.startswith(("## ", "::", "verdict")) or FAKE_VERDICT == line for line in lines)
    assert "\x1b" not in md and "\u202e" not in md
    # Every table row has exactly its header's cells: no name or message can open a cell.
    cells = [len(re.findall(r"(?<!\\)\|", line)) for line in lines if line.startswith("|")]
    assert cells == [6] * 5 + [4] * 3 + [5] * 4, cells  # analyzers, explanation methods, worst findings
    assert (r"| explain\\nverdict: clean (fail on error) -\> exit 0: ig\\nverdict: clean (fail on error) -\> exit 0 "
            r"| doubtful | faith\\x1b\]0;t\\x07 0.1 (\> 0.5 wanted) |") in lines  # the whole phrase escaped
    row = next(line for line in lines if "w.md" in line)
    assert row == ("| warning | `` w.md\\|`x` `` | \\<b\\>layer\\</b\\> | !\\[t\\](http://evil.example/t.png) "
                   "\\[clean\\](http://phish.example) \\<b\\>x\\</b\\> \\| \\`code\\` :green-badge\\[clean\\] |")
    assert r"| \:\:warning::forged |" not in md and r"| ::warning::forged | ok |" in md  # a cell, not a line start
    assert r"- `slow\x1b[8m` failed: plugin 'slow': boom\\nverdict: clean (fail on error) -\> exit 0" in lines
    assert lines[-1] == "Full report: ``out/report`.html``"
    failed = failed_run_markdown(MODEL, f"model refused: {MODEL} is not a model", 4)
    assert [line for line in failed.splitlines() if line.startswith("#")] == [failed.splitlines()[0]]
    assert "\x1b" not in failed


def test_junit_xml_parses_and_holds_the_escaped_text():
    text = to_junit_xml(hostile_report())
    suite = next(iter(junitparser.JUnitXml.fromstring(text)))
    assert suite.name == r"diagnose m\x1b]0;pwned\x07\x1b[2J.keras\n## ✅ PASSED"
    cases = {c.name: c for c in suite}
    assert set(cases) == {"::warning::forged", rf"explain\n{FAKE_VERDICT}", r"slow\x1b[8m", r"bad\n::error::p"}
    [failure] = cases["::warning::forged"].result
    assert failure.type == r"w.zero\n::error::x"
    # One line per finding: the layer name's newlines cannot add a finding line of its own.
    assert failure.text.splitlines() == [r"ERROR w.zero\n::error::x [dense\n\x1b[8m" + FAKE_VERDICT + r"\x1b[0m\n"
                                         r"::notice title=ok::all clean ##[add-mask]error]: msg \u202eclean\u202c\n"
                                         + FAKE_VERDICT]
    [error] = cases[r"slow\x1b[8m"].result
    assert error.message == f"plugin 'slow': boom\\n{FAKE_VERDICT}"
    assert error.text == "Traceback\n  \\x1b[8mhidden\n"  # a traceback keeps its lines; the ESC is shown
    assert "\x1b" not in text and "\u202e" not in text
    ET.fromstring(text.split("\n", 1)[1])
    assert "\x1b" not in failed_run_xml(MODEL, f"model refused: {MODEL}", 4)


def hostile_measures(tmp_path: Path) -> AnalyzerRecord:
    """A health analyzer whose name, measure title, unit, reference, layer names, series and note are the
    attack, judged and drawn by the host's own pipeline as a run would."""
    from diagnostics import Direction, HealthAnalyzer, Measure, Measurements, Scope, Value
    from diagnostics._measures import judge, thresholds_of

    class Hostile(HealthAnalyzer):
        name = "::warning::forged<b>"
        description = "d"
        default_thresholds = {"w": 1.0}
        measures = (Measure("norm", f"Norm <script>alert(1)</script>\n{FAKE_VERDICT}", unit="<b>u</b>|`x`",
                            scope=Scope.LAYER, direction=Direction.HIGHER_IS_WORSE, warning="w",
                            reference="<img src=x onerror=alert(1)>\u202e"),)

        def measure(self, context):  # judged directly
            raise NotImplementedError

    values = [Value("norm", 5.0, where=LAYER, series="::error::s\u202e", note=MARKUP),
              Value("norm", 0.5, where="<b>layer</b>", series="::error::s\u202e")]
    art = tmp_path / "artifacts" / "hostile"
    art.mkdir(parents=True)
    result = judge(Hostile, Measurements(values=values), thresholds_of(Hostile, {}), art)
    return AnalyzerRecord(name=Hostile.name, plugin="evil", category="health", status="ok", findings=result.findings,
                          measures=tuple(s.relocated("artifacts/hostile") for s in result.measures))


def _no_markup_from_names(page: str) -> None:
    assert "<script>" not in page and "<img src=x" not in page and "<b>u</b>" not in page and "<b>layer</b>" not in page
    assert "\x1b" not in page and "\u202e" not in page
    assert not [v for v in re.findall(r"='([^']*)'", page) if "<" in v or ">" in v]  # no attribute broken out of
    assert f"Norm &lt;script&gt;alert(1)&lt;/script&gt;\n{FAKE_VERDICT.replace('>', '&gt;')}" in page  # white space in HTML
    assert "&lt;b&gt;u&lt;/b&gt;|`x`" in page and "&lt;img src=x onerror=alert(1)&gt;\\u202e" in page
    assert "<code>::warning::forged&lt;b&gt;.norm</code>" in page
    assert "dense\n\\x1b[8m" + FAKE_VERDICT.replace(">", "&gt;") in page and "::error::s\\u202e" in page
    assert "![t](http://evil.example/t.png) [clean](http://phish.example) &lt;b&gt;x&lt;/b&gt;" in page


def test_html_report_and_notebook_escape_a_health_section(tmp_path):
    record = hostile_measures(tmp_path)
    report = Report(model={"name": "m"}, data=None, environment={}, plugins=(), analyzers=(record,), seed=0,
                    fail_on="error")
    page = render_html(report, tmp_path)
    assert page.count("data:image/png;base64,") == 1  # the chart the host drew, embedded
    _no_markup_from_names(page)
    object.__setattr__(report, "directory", str(tmp_path))
    _no_markup_from_names(report._repr_html_())


def test_summary_escapes_a_health_section(tmp_path):
    record = hostile_measures(tmp_path)
    report = Report(model={"name": "m"}, data=None, environment={}, plugins=(), analyzers=(record,), seed=0,
                    fail_on="error", exit_code=0)
    lines = to_markdown(report).splitlines()
    assert [line for line in lines if line.startswith("#")] == [lines[0]]
    start = lines.index("| health measure | not passed | worst | threshold |")
    row = lines[start + 2]
    assert len(re.findall(r"(?<!\\)\|", row)) == 5, row  # no name opens a cell
    assert row == ("| ::warning::forged\\<b\\>: Norm \\<script\\>alert(1)\\</script\\>\\\\nverdict: clean (fail on "
                   "error) -\\> exit 0 (\\<b\\>u\\</b\\>\\|\\`x\\`) | 1 warning of 2 layers | 5 at ::error::s\\\\u202e · "
                   + textsafe.markdown(LAYER) + " | ≥ 1 |")
    assert "\x1b" not in "\n".join(lines) and "\u202e" not in "\n".join(lines)


def test_html_report_escapes_and_shows_control_characters(tmp_path):
    arts = AnalyzerRecord(name="arts", plugin="evil", category="health", status="ok",
                          artifacts={"evil": "javascript:alert(1)", "up": "../../etc/passwd", "ok": "arts/table.csv"})
    report = dataclasses.replace(hostile_report(), analyzers=hostile_report().analyzers[:1] + (arts,))
    page = render_html(report, tmp_path)
    assert "<b>" not in page and "<img" not in page and "\x1b" not in page
    assert "\u202e" not in page and r"msg \u202eclean" in page
    assert "href='javascript:" not in page and "href='../" not in page
    assert "<a href='arts/table.csv'>ok</a>" in page
    assert "evil (javascript:alert(1))" in page
    assert "&lt;b&gt;layer&lt;/b&gt;" in page


# -- end to end: a real model whose layer name is the attack, through the real CLI ---------------------------
@pytest.fixture(scope="module")
def evil_model(tmp_path_factory):
    import os

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import numpy as np

    d = tmp_path_factory.mktemp("evil")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name=LAYER),
                              keras.layers.Dense(2, activation="softmax", name="out")], name="m")
    model.layers[0].set_weights([np.zeros((4, 3), "float32"), np.zeros(3, "float32")])  # weights.zero_units
    path = d / "m\x1b]0;pwned\x07\n## ✅ PASSED.keras"
    model.save(path)
    return path


def test_cli_prints_no_forged_line_and_ci_files_hold_the_escaped_name(evil_model, tmp_path):
    proc = run_diagnose(evil_model, "--only", "weights", "--fail-on", "warning", "-o", tmp_path / "out",
                        "--summary-md", tmp_path / "s.md", "--junit-xml", tmp_path / "j.xml")
    assert proc.returncode == ExitCode.FINDINGS, proc.stdout + proc.stderr
    _assert_terminal_safe(proc.stdout)
    assert f"WARNING weights.zero_units [{LAYER_SHOWN}]: " in proc.stdout
    assert proc.stdout.splitlines()[-1] == "verdict: warning (fail on warning) -> exit 1"
    assert "\x1b" not in proc.stderr and not any(line.lstrip().startswith("::") for line in proc.stderr.splitlines())
    md = (tmp_path / "s.md").read_text()
    assert [line for line in md.splitlines() if line.startswith("#")] == \
        [r"### diagnose `m\x1b]0;pwned\x07\n## ✅ PASSED.keras`: FAILED"]
    suite = next(iter(junitparser.JUnitXml.fromfile(str(tmp_path / "j.xml"))))
    # one failure, in whichever test case holds it (the analyzer's, or its measure's)
    [failure] = [r for case in suite for r in case.result]
    assert failure.text.startswith(f"WARNING weights.zero_units [{textsafe.visible(LAYER)}]: ")


def test_sweep_rows_show_checkpoint_names_escaped(evil_model, tmp_path):
    d = tmp_path / "ckpts"
    d.mkdir()
    (d / "model.01-\x1b]0;pwned\x07\x1b[2J.keras").write_bytes(b"junk")  # refused: its name is in the message
    (d / "model.02-\n::error::forged.keras").write_bytes(Path(evil_model).read_bytes())
    proc = run_diagnose("sweep", d, "--only", "weights", "-o", tmp_path / "sweep")
    assert proc.returncode == ExitCode.MODEL_REFUSED, proc.stdout + proc.stderr
    for text in (proc.stdout, proc.stderr):
        assert "\x1b" not in text and "\x07" not in text
        assert not any(line.lstrip().startswith("::") for line in text.splitlines()), text
    rows = proc.stdout.splitlines()
    assert len(rows) == 3, proc.stdout + proc.stderr
    assert rows[1].split() == ["1", r"model.01-\x1b]0;pwned\x07\x1b[2J.keras", "refused", "0"]
    assert rows[2].split() == ["2", r"model.02-\n::error::forged.keras", "warning", "1"], proc.stderr
    assert r"refused: model refused: model.01-\x1b]0;pwned\x07\x1b[2J.keras is not" in proc.stderr


def test_usage_errors_quote_arguments_escaped_and_help_stays_readable():
    proc = run_diagnose("run", "a", "b", f"x\x1b[8m\n{FAKE_VERDICT}\n::error::y")  # e.g. file names from a glob
    assert proc.returncode == ExitCode.USAGE
    assert proc.stderr.splitlines()[-1] == rf"diagnose: got unexpected extra arguments (b x\x1b[8m\n{FAKE_VERDICT}\n::error::y)"
    help_text = run_diagnose("plugin").stdout + run_diagnose("plugin").stderr  # our own help: lines kept
    assert "Usage: diagnose plugin" in help_text and "\n  Write your own analyzer plugin" in help_text

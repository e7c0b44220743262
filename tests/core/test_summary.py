"""The job summary's health rows (--summary-md): read from the measure sections by outcome, one row per
measure that did not pass, the passing ones counted; nothing for a report without sections."""

from __future__ import annotations

from diagnostics import Value
from diagnostics._summary import MAX_FINDINGS, to_markdown

from .health_probe import Probe, probe_record, report_of

HEAD = "| health measure | not passed | worst | threshold |"


class Calm(Probe):
    name = "calm.health"


def _health_lines(md: str) -> list[str]:
    lines = md.splitlines()
    if HEAD not in lines:
        return []
    start = lines.index(HEAD)
    return lines[start:lines.index("**Worst findings**", start)]


def test_a_measure_that_did_not_pass_is_one_row_and_the_passing_ones_are_counted(tmp_path):
    calm = probe_record(tmp_path, Calm, values=[Value("norm", 0.5, where="d1"), Value("norm", 0.2, where="d2"),
                                                Value("gap", 0.01), Value("loss", 1.0, where="1")])
    md = to_markdown(report_of(probe_record(tmp_path), calm))
    assert _health_lines(md) == [
        HEAD, "|---|---|---|---|",
        # the worst is the error furthest past its threshold; the tally counts in the scope's noun
        "| probe.health: Gradient norm (L2 norm) | 1 error, 10 warnings of 21 layers | 40 at big | ≥ 10 |",
        "| probe.health: Tail exponent | 1 warning of 2 layers | 7 at attn | outside 2–6 |",
        "| probe.health: Accuracy gap (fraction) | warning | 0.25 | ≥ 0.1 |",
        "", "2 other health measure(s) passed.", ""]  # calm's norm and gap; a neutral loss is not counted


def test_the_worst_of_a_lower_is_worse_measure_is_the_lowest(tmp_path):
    from diagnostics import Direction, Measure, Scope

    class Floor(Probe):
        name = "floor.health"
        default_thresholds = {"low_warning": 1.0, "low_error": 0.1}
        measures = (Measure("ratio", "First/last ratio", scope=Scope.LAYER, direction=Direction.LOWER_IS_WORSE,
                            warning="low_warning", error="low_error"),)

    record = probe_record(tmp_path, Floor, values=[Value("ratio", v, where=w) for w, v in
                                                   (("a", 0.5), ("b", 0.05), ("c", 0.01), ("d", 3.0))])
    assert _health_lines(to_markdown(report_of(record)))[2] == (
        "| floor.health: First/last ratio | 2 errors, 1 warning of 4 layers | 0.01 at c | \\< 0.1 |")


def test_every_measure_passed_is_one_line_and_a_report_without_sections_has_none(tmp_path):
    calm = probe_record(tmp_path, Calm, values=[Value("norm", 0.5, where="d1"), Value("gap", 0.0)])
    lines = to_markdown(report_of(calm)).splitlines()
    assert HEAD not in lines and "All 2 health measure(s) passed." in lines
    from diagnostics import AnalyzerRecord

    plain = AnalyzerRecord(name="weights", plugin="weights", category="health", status="ok", metrics={"n": 3})
    md = to_markdown(report_of(plain))
    assert "health measure" not in md


def test_the_rows_stop_at_the_limit_and_say_how_many_more(tmp_path):
    records = []
    for i in range(MAX_FINDINGS + 2):
        cls = type(f"P{i}", (Probe,), {"name": f"p{i:02d}.health"})
        records.append(probe_record(tmp_path, cls, values=[Value("gap", 0.5)]))
    lines = _health_lines(to_markdown(report_of(*records)))
    assert len([line for line in lines if line.startswith("| p")]) == MAX_FINDINGS
    assert lines[-2] == "2 more health measure(s) did not pass."

"""Cause before symptom: a finding that another analyzer's finding explains says so, first.

An analyzer that finds a cause declares which other analyzers' findings it can explain
(:attr:`diagnostics.Analyzer.explains`: a glob of finding codes → the sentence that says how, or → a
mapping from a glob of its own codes to the sentence for that kind of cause). After
every analyzer has run, the host puts that sentence at the head of each matching finding (warning or
error) while the explaining analyzer has a warning or error of its own, naming it and where. The
symptom keeps its code and severity (a gate on it still holds); its message leads with the likely
cause instead of its own usual one: a train/validation gap the data's drift explains no longer reads
only "the model has fitted its training set's noise", and gradients measured on unscaled inputs no
longer blame only the learning rate.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from . import codes
from .analyzer import Finding, Severity
from .report import AnalyzerRecord

#: How many of the explaining analyzer's findings a symptom names (the rest are counted).
NAMED = 3


def attribute(records: tuple[AnalyzerRecord, ...], classes: Mapping[str, type]) -> tuple[AnalyzerRecord, ...]:
    """``records`` with each finding another analyzer explains led by that explanation (see the module)."""
    causes = []
    for r in records:
        explains = getattr(classes.get(r.name), "explains", None) or {}
        found = [f for f in r.findings if f.severity.rank >= Severity.WARNING.rank]
        if explains and found:
            causes.append((r.name, found, explains))
    if not causes:
        return records
    out = []
    for r in records:
        findings = tuple(_led(f, r.name, causes) for f in r.findings)
        out.append(r if findings == r.findings else dataclasses.replace(r, findings=findings))
    return tuple(out)


def _led(f: Finding, owner: str, causes) -> Finding:
    if f.severity.rank < Severity.WARNING.rank:
        return f
    leads = []
    for name, found, explains in causes:
        if name == owner:
            continue
        for pattern, how in explains.items():
            if not codes.matches(f.code, pattern):
                continue
            # one sentence for any of the cause's findings, or one per kind of cause (a glob of its codes)
            ways = {"*": how} if isinstance(how, str) else how
            why, named = next(((s, [c for c in found if codes.matches(c.code, g)]) for g, s in ways.items()
                               if any(codes.matches(c.code, g) for c in found)), (None, []))
            if why:
                leads.append(f"likely cause: {why} ({name} found {_named(named)})")
                break
    if not leads:
        return f
    return dataclasses.replace(f, message="; ".join(leads) + f". What {owner} measured: {f.message}")


def _named(found: list[Finding]) -> str:
    parts = [f.code + (f" at {f.where}" if f.where else "") for f in found[:NAMED]]
    more = len(found) - NAMED
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")

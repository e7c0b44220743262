"""Text from a file or a plugin, made inert for the place it is written: one function per sink.

A model file, a checkpoint's file name, a sidecar, a report.json someone sent you or a third-party
plugin chooses the strings the suite writes out: layer names, file names, finding codes, where and
messages. Written raw, such a string can forge the output around it: a newline and a fake
``verdict: clean ... -> exit 0`` line, ``ESC[8m`` hiding the real verdict on a terminal, an OSC
sequence retitling the terminal, a Unicode bidi override reversing what follows, a GitHub workflow
command (``::notice ...``, ``##[add-mask]error``) that the Actions runner executes, a Markdown
heading in the job summary, a link or an image in the dashboard. Every writer in the suite passes
such strings through the function for its sink, here, and nowhere else:

- :func:`terminal` -- stdout and stderr: control characters shown as ``\\x1b``-style escapes, and
  workflow commands broken; :func:`workflow_safe` guards whole lines we compose ourselves.
- :func:`markdown` and :func:`markdown_code` -- GitHub-flavoured Markdown (the job summary);
  :func:`streamlit_markdown` -- Streamlit's Markdown, which adds directives, icons and LaTeX.
- :func:`xml_text` -- XML 1.0 (JUnit), beyond what ElementTree escapes itself.
- :func:`html_text` -- HTML text and attribute values (the HTML report, Plotly labels).

Ordinary Unicode (é, ✅, 中文) passes unchanged: only what can change how the rest is read is shown
as an escape.
"""

from __future__ import annotations

import html
import re
import string

__all__ = ["visible", "terminal", "workflow_safe", "markdown", "markdown_code", "streamlit_markdown", "xml_text",
           "html_text"]

# C0 and C1 controls and DEL (ESC among them: CSI, OSC, colour codes), the Unicode line and paragraph
# separators, the bidi embeddings, overrides, isolates and marks, lone surrogates (file names that were
# not UTF-8: printing one raises), and the two non-characters XML 1.0 cannot carry.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                     "\ud800-\udfff\ufffe\uffff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible(text: object, keep: str = "") -> str:
    """``text`` with every control, separator and bidi character shown as a Python-style escape
    (``\\x1b``, ``\\n``, ``\\u202e``); the characters in ``keep`` (e.g. ``"\\n"``) are left as they are."""
    return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escape(m.group()), str(text))


# -- terminal --------------------------------------------------------------------------------------
# GitHub Actions runs a line as a command when it starts with "::" after leading white space, or when
# "##[" appears anywhere in it (the older syntax, still parsed: add-mask, error, set-output...).
_LEADING_COMMAND = re.compile(r"^(\s*)::")
_OLD_COMMAND = "##["


def workflow_safe(line: str) -> str:
    """One line (or several) that a CI runner reads as plain output, never as a workflow command:
    a leading ``::`` is shown as ``\\:\\:``, and ``##[`` as ``##\\[``. Control characters are left
    alone (the line may hold our own colour codes): use it on lines *we* composed from escaped parts."""
    return "\n".join(_LEADING_COMMAND.sub(r"\1\\:\\:", part).replace(_OLD_COMMAND, "##\\[")
                     for part in str(line).split("\n"))


def terminal(text: object) -> str:
    """``text`` for stdout or stderr: one line, every control character (ESC, CR, newline...) and bidi
    override shown as an escape, and nothing a CI runner would take for a workflow command."""
    return workflow_safe(visible(text))


# -- Markdown --------------------------------------------------------------------------------------
# What makes markup in GitHub-flavoured Markdown text (a table cell, a list item): code spans,
# emphasis, strike-through, links and images, HTML, table cells, and the backslash itself. Other
# punctuation (quotes, colons, parentheses, &) reads as itself there, so it is left unescaped.
_GFM_SPECIAL = "\\`*_[]<>|~"
# Streamlit's Markdown adds colour and badge directives and icons (":red[...]", ":material/x:"),
# emoji short codes and LaTeX ("$"): there every ASCII punctuation mark is escaped, which CommonMark
# allows for any of them, so the text still reads the same.
_ALL_PUNCTUATION = string.punctuation


def _markdown(text: object, specials: str, multiline: bool) -> str:
    out = []
    for ch in visible(text, keep="\n" if multiline else ""):
        if ch in specials:
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("  \n")  # a hard line break inside the same paragraph: never a new block
        else:
            out.append(ch)
    return "".join(out)


def markdown(text: object) -> str:
    """``text`` as literal GitHub-flavoured Markdown on one line (a table cell, a list item, a heading):
    newlines and control characters shown as escapes, markup characters backslash-escaped."""
    return _markdown(text, _GFM_SPECIAL, multiline=False)


def markdown_code(text: object, in_table: bool = False) -> str:
    """``text`` as a one-line Markdown code span: control characters shown as escapes, fenced with
    more backticks than it holds (so a backtick cannot close it); ``in_table`` also escapes ``|``,
    which GitHub's tables split on even inside a code span."""
    body = visible(text)
    runs = [len(r) for r in re.findall(r"`+", body)]
    fence = "`" * (max(runs, default=0) + 1)
    if body.startswith("`") or body.endswith("`"):
        body = f" {body} "
    if in_table:
        body = body.replace("|", "\\|")
    return f"{fence}{body}{fence}"


def streamlit_markdown(text: object, multiline: bool = False) -> str:
    """``text`` as literal Streamlit Markdown (``st.markdown``, titles, captions, alerts, widget and
    metric labels): every ASCII punctuation mark backslash-escaped, so nothing becomes a link, an
    image, HTML, a directive, an icon or LaTeX; control characters shown as escapes. With
    ``multiline`` a newline is kept as a line break inside the same paragraph, else shown as ``\\n``."""
    return _markdown(text, _ALL_PUNCTUATION, multiline)


# -- XML and HTML ----------------------------------------------------------------------------------
def xml_text(text: object) -> str:
    """Text or an attribute value for XML 1.0, on top of ElementTree's own escaping of ``<&>"``:
    characters XML 1.0 cannot carry (most C0 controls, lone surrogates, U+FFFE/U+FFFF), and those that
    forge what a reader sees (C1 controls, bidi overrides), shown as escapes; tab and newline kept."""
    return visible(text, keep="\n\t")


def html_text(text: object) -> str:
    """``text`` for HTML text or a quoted attribute value: ``<&>"'`` escaped and control and bidi
    characters shown as escapes (a bidi override would reverse the text after it); tab and newline,
    which HTML reads as white space, kept."""
    return html.escape(visible(text, keep="\n\t"), quote=True)

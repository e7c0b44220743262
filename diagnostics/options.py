"""Strict ``--option`` checking: every option addressed to an analyzer is one it declares, of the
declared type, and names an analyzer that exists — checked after the plugins load and before any
model or data is read, so a typo is a usage error (exit 2), not a silently ignored setting.

Options given without an analyzer name (``--option samples=4``, ``*`` in the parsed mapping) go to
every analyzer and are kept apart: such a key must be declared by at least one installed analyzer.
An analyzer that declares no options (``Analyzer.options is None``, third-party code written before
options were metadata) receives whatever it is given, unchecked.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from .analyzer import Option
from ._plugin_manager import unknown_analyzer


class OptionError(ValueError):
    """An ``--option`` that no analyzer takes, or a value of the wrong type; the message says which."""


def _shown(analyzer: str, key: str, value: Any) -> str:
    return f"--option {'' if analyzer == '*' else analyzer + '.'}{key}={json.dumps(value)}"


def declared(cls) -> tuple[Option, ...] | None:
    getter = getattr(cls, "declared_options", None)
    return getter() if callable(getter) else getattr(cls, "options", None)


def check_options(options: Mapping[str, Mapping[str, Any]], analyzers: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``options`` ({analyzer or "*": {key: value}}) checked against the analyzer classes in
    ``analyzers`` ({name: class}) and converted to the declared types; raises :class:`OptionError`."""
    decl = {name: declared(cls) for name, cls in analyzers.items()}
    out: dict[str, dict[str, Any]] = {}
    for analyzer, values in options.items():
        out[analyzer] = {}
        for key, value in values.items():
            if analyzer == "*":
                takers = [o for d in decl.values() if d is not None for o in d if o.name == key]
                if not takers and all(d is not None for d in decl.values()):
                    valid = sorted({o.name for d in decl.values() if d for o in d})
                    raise OptionError(f"{_shown(analyzer, key, value)}: no analyzer takes an option {key!r}; "
                                      f"options of the installed analyzers: {', '.join(valid)}")
                for option in takers:
                    try:
                        option.parse(value)
                    except ValueError as e:
                        raise OptionError(f"{_shown(analyzer, key, value)}: {e}") from None
                out[analyzer][key] = value
                continue
            if analyzer not in decl:
                raise OptionError(f"{_shown(analyzer, key, value)}: {unknown_analyzer(analyzer, decl)}")
            if decl[analyzer] is None:
                out[analyzer][key] = value
                continue
            option = next((o for o in decl[analyzer] if o.name == key), None)
            if option is None:
                raise OptionError(f"{_shown(analyzer, key, value)}: {analyzer} has no option {key!r}; valid: "
                                  f"{', '.join(sorted(o.name for o in decl[analyzer])) or 'none'}")
            try:
                out[analyzer][key] = option.parse(value)
            except ValueError as e:
                raise OptionError(f"{_shown(analyzer, key, value)}: {e}") from None
    return out


def options_metadata(cls) -> list[dict[str, Any]] | None:
    """An analyzer's declared options as JSON (``diagnose plugins --json``); None when undeclared."""
    d = declared(cls)
    return None if d is None else [o.to_dict() for o in d]


def health_options(*sections: str, **extra: Option) -> tuple[Option, ...]:
    """The options of a health analyzer: the thresholds of ``sections`` and the thresholds file."""
    from ._thresholds import DEFAULT_THRESHOLDS, THRESHOLDS_OPTION

    opts = [Option(k, float, v, f"threshold ({s})") for s in sections for k, v in DEFAULT_THRESHOLDS[s].items()]
    opts.append(Option(THRESHOLDS_OPTION, str, "", "thresholds file (TOML or JSON), one section per analyzer family"))
    return tuple({o.name: o for o in [*opts, *extra.values()]}.values())

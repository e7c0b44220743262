"""The companion models a sidecar names (a GAN's discriminator, a judge classifier): plain file names
inside the model's own folder, never paths out of it.

A sidecar is as untrusted as the model beside it. A companion named ``/etc/shadow`` or
``../../.ssh/id_rsa`` would make a worker open a file the user never pointed at, and the report's
wording ("unsupported format" against "not found") would tell an outside file's existence. So a
name is checked as a string first (one path component, no ``..``), and then as a file that is no
link, before anything reads it; the message never depends on what lies outside the folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._data import SIDECAR_SUFFIX, DataRefused


def companion_names(metadata: dict[str, Any], sidecar: str = "the sidecar") -> dict[str, str]:
    """``metadata["companions"]`` checked: role -> a plain file name (raises DataRefused otherwise)."""
    companions = metadata.get("companions") or {}
    if not isinstance(companions, dict):
        raise DataRefused(f"{sidecar}: 'companions' must map roles to file names, not a {type(companions).__name__}")
    for role, name in companions.items():
        if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
            raise DataRefused(f"{sidecar}: companion {str(role)!r} must be the name of a file in the model's own "
                              f"folder (no path): refused")
    return {str(k): v for k, v in companions.items()}


def companion_path(model_path: str | Path, name: str) -> Path:
    """The companion file ``name`` beside the model; a link is refused without following it."""
    path = Path(model_path).parent / name
    if path.is_symlink():
        raise DataRefused(f"companion {name!r} is a symbolic link: companions must be plain files in the model's folder")
    return path


def companion_files(model_path: str | Path, metadata: dict[str, Any]) -> list[Path]:
    """Every file the companions bring (each model and its own sidecar) that exists as a plain file."""
    out = []
    for name in sorted(set(companion_names(metadata).values())):
        path = companion_path(model_path, name)
        side = path.with_name(path.name.split(".")[0] + SIDECAR_SUFFIX)
        out += [p for p in (path, side) if p.is_file() and not p.is_symlink()]
    return out

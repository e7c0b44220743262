"""The end of a zip archive's central directory, read by hand before :mod:`zipfile` reads the directory.

Shared by the model pre-scan (``.keras``, :mod:`diagnostics.safety`) and the data reader (``.npz``,
:mod:`diagnostics._data`): each bounds the entry count and the directory's size from this record, so
that an archive declaring millions of entries is refused before ``zipfile`` builds them in memory.
zipfile reads a zip64 record whenever its locator precedes the classic record, whatever the classic
record says, and uses its numbers (Python 3.11 reads it right before the locator, later versions where
the locator points): so the zip64 record must sit there, and agree with every classic field that is
not a zip64 marker, or it could hide the real directory from the bounds.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path


class ZipDirectoryError(ValueError):
    """The record cannot be trusted; ``not_zip`` when there is no end record at all (not a zip archive)."""

    def __init__(self, detail: str, not_zip: bool = False):
        super().__init__(detail)
        self.not_zip = not_zip


@dataclasses.dataclass(frozen=True)
class EndRecord:
    entries: int  #: central-directory entries
    directory_bytes: int  #: size of the central directory
    multi_disk: bool  #: a multi-part archive


def read_end_record(p: Path) -> EndRecord:
    """The archive's end-of-central-directory numbers (zip64's where it has one), checked for consistency."""
    size = p.stat().st_size
    with p.open("rb") as fh:
        tail_len = min(size, 22 + 0xFFFF)
        fh.seek(size - tail_len)
        tail = fh.read(tail_len)
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            raise ZipDirectoryError("no end-of-directory record", not_zip=True)
        disk, cd_disk, here_entries, entries, cd_size, cd_offset, _ = struct.unpack("<HHHHIIH", tail[at + 4:at + 22])
        eocd_at = size - tail_len + at
        locator = tail[at - 20:at] if at >= 20 else b""
        if locator[:4] == b"PK\x06\x07":
            _, record_at, disks = struct.unpack("<IQI", locator[4:20])
            if record_at != eocd_at - 20 - 56:
                raise ZipDirectoryError(f"zip64 record is not where its locator says (at {record_at:,}, expected "
                                        f"{eocd_at - 76:,}): an ambiguous archive")
            fh.seek(record_at)
            record = fh.read(56)
            if record[:4] != b"PK\x06\x06":
                raise ZipDirectoryError("zip64 record is missing: the file is truncated or corrupt")
            _, _, _, disk64, cd_disk64, here64, entries64, cd_size64, cd_offset64 = struct.unpack("<QHHIIQQQQ", record[4:56])
            for what, classic, wide, sentinel in (("entry count", entries, entries64, 0xFFFF),
                                                  ("entry count on this disk", here_entries, here64, 0xFFFF),
                                                  ("directory size", cd_size, cd_size64, 0xFFFFFFFF),
                                                  ("directory offset", cd_offset, cd_offset64, 0xFFFFFFFF),
                                                  ("disk number", disk, disk64, 0xFFFF)):
                if classic != sentinel and classic != wide:
                    raise ZipDirectoryError(f"zip64 end record says {what} {wide:,}, its classic end record {classic:,}: "
                                            f"an ambiguous archive, refused before reading its directory")
            disk, cd_disk, entries, cd_size = disk64, cd_disk64 or int(disks > 1), entries64, cd_size64
        elif entries == 0xFFFF or cd_size == 0xFFFFFFFF or cd_offset == 0xFFFFFFFF:  # zip64: the real numbers are elsewhere
            raise ZipDirectoryError("zip64 locator is missing: the file is truncated or corrupt")
    return EndRecord(entries=entries, directory_bytes=cd_size, multi_disk=bool(disk or cd_disk))

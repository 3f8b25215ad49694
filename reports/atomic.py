"""Write aside, rename at the end: a report, plan text or any other output recon writes is
either the complete new file or the previous one, never half of either; a failed write removes
its aside file too, so nothing half-written is left behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from reports.errors import ReportError


class OutputError(ReportError):
    """An output file could not be written (the previous one, if any, is untouched)."""


def write_bytes_atomic(path: Path | str, data: bytes) -> Path:
    """``path`` gets ``data`` whole or not at all (temp file in the same directory, then
    ``os.replace``)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}; check that its directory "
                          "exists and is writable") from e
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise OutputError(f"cannot write {path}: {e.strerror or e}; the previous file (if "
                              "any) is unchanged — free space or fix permissions and re-run"
                              ) from e
        raise
    return path


def write_text_atomic(path: Path | str, text: str) -> Path:
    """UTF-8 text, written as :func:`write_bytes_atomic` does."""
    return write_bytes_atomic(path, text.encode("utf-8"))

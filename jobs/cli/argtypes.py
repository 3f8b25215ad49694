"""Typed ``argparse`` validators: every numeric option and every path option of ``recon`` is
checked where it is parsed, and each validator carries its declared range or kind, so the
CLI test reads them from the parser (``action.type``) instead of repeating them.

A bad value makes argparse exit 2 with ``recon COMMAND: error: argument --OPTION: …`` — the
option is named, nothing reaches the command. Path checks are cheap and exact: an input file
must exist, be a regular file and be UTF-8 text (``utf8=True``); an input directory must be a
directory; an output must be creatable (a probe file is written and removed in the nearest
existing directory, which also catches a read-only file system, where ``os.access`` would
lie to root).
"""

from __future__ import annotations

import argparse
import codecs
import datetime as dt
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

# the largest int a local BIGINT, DuckDB or numpy seed holds
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class _Range:
    """``type=<Range>(lo, hi)``: a number with ``lo <= x <= hi``. A subclass says how a number
    is parsed and shown; the checks and messages are written once here."""

    lo: float
    hi: float
    what: str = "a number"
    kind = "a number"  # what the "give …" hint asks for

    def parse(self, text: str) -> float:
        raise NotImplementedError

    def show(self, x: float) -> str:
        raise NotImplementedError

    def echo(self, x: float, text: str) -> str:
        """The value as an out-of-range message repeats it: as typed."""
        return text

    def __call__(self, text: str) -> float:
        try:
            x = self.parse(text.strip().replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {self.what}; give {self.kind} from {self.show(self.lo)} to "
                f"{self.show(self.hi)}") from None
        if not math.isfinite(x) or not self.lo <= x <= self.hi:
            raise argparse.ArgumentTypeError(
                f"{self.echo(x, text)} is out of range: give {self.what} from {self.show(self.lo)} to "
                f"{self.show(self.hi)}")
        return x

    def __repr__(self) -> str:  # argparse says "invalid <repr> value" only if we do not raise
        return f"{type(self).__name__}({self.lo}, {self.hi})"


@dataclass(frozen=True, repr=False)
class IntRange(_Range):
    """``type=IntRange(lo, hi)``: an integer with ``lo <= n <= hi``."""

    lo: int
    hi: int
    what: str = "a whole number"
    kind = "a whole number"

    def parse(self, text: str) -> int:
        return int(text)

    def show(self, x: float) -> str:
        return f"{x:,}"

    def echo(self, x: float, text: str) -> str:
        return self.show(x)


@dataclass(frozen=True, repr=False)
class FloatRange(_Range):
    """``type=FloatRange(lo, hi)``: a finite number with ``lo <= x <= hi``."""

    def parse(self, text: str) -> float:
        return float(text)

    def show(self, x: float) -> str:
        return f"{x:g}"


IN_FILE, IN_DIR, OUT_FILE, OUT_DIR = "input file", "input directory", "output file", \
    "output directory"


def _probe_writable(directory: Path) -> str | None:
    """None when a file can be created in ``directory`` (tried, then removed), else why not."""
    try:
        fd, name = tempfile.mkstemp(prefix=".recon-probe-", dir=directory)
    except OSError as e:
        return e.strerror or type(e).__name__
    os.close(fd)
    os.unlink(name)
    return None


def _nearest_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _not_utf8(fh: BinaryIO, block: int = 1 << 20) -> str | None:
    """None when the stream is UTF-8, else where it is not (read in blocks: a large plan file
    is never held twice)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    while True:
        data = fh.read(block)
        try:
            decoder.decode(data, final=not data)
        except UnicodeDecodeError as e:
            # e.object is the decoder's pending bytes (never a newline) + this block
            line += e.object[:e.start].count(b"\n")
            byte = e.object[e.start]
            return (f"is not UTF-8 text (byte 0x{byte:02x} at line {line}); give the file "
                    "recon wrote, or re-save it as UTF-8")
        if not data:
            return None
        line += data.count(b"\n")


@dataclass(frozen=True)
class PathArg:
    """``type=PathArg(kind)``: a path checked for its role; returns the text unchanged (the
    commands take ``str``). ``utf8``: an input file must decode as UTF-8 (TOML, JSON plans)."""

    kind: str
    utf8: bool = True

    def __call__(self, text: str) -> str:
        if not text:
            raise argparse.ArgumentTypeError(f"an empty path is not an {self.kind}")
        p = Path(text).expanduser()
        check = {IN_FILE: self._in_file, IN_DIR: self._in_dir, OUT_FILE: self._out_file,
                 OUT_DIR: self._out_dir}[self.kind]
        problem = check(p)
        if problem:
            raise argparse.ArgumentTypeError(f"{text}: {problem}")
        return text

    def _in_file(self, p: Path) -> str | None:
        if not p.exists():
            return "no such file"
        if p.is_dir():
            return "is a directory, not a file"
        try:
            with p.open("rb") as fh:
                return _not_utf8(fh) if self.utf8 else None
        except OSError as e:
            return f"cannot be read ({e.strerror})"

    def _in_dir(self, p: Path) -> str | None:
        if not p.exists():
            return "no such directory"
        if not p.is_dir():
            return "is a file, not a directory"
        if not os.access(p, os.R_OK | os.X_OK):
            return "cannot be read (permission denied)"
        return None

    def _out_file(self, p: Path) -> str | None:
        if p.is_dir():
            return "is a directory; give a file name"
        return self._writable_under(p.parent)

    def _out_dir(self, p: Path) -> str | None:
        if p.exists() and not p.is_dir():
            return "is a file, not a directory"
        return self._writable_under(p)

    @staticmethod
    def _writable_under(p: Path) -> str | None:
        base = _nearest_existing(p)
        if not base.is_dir():
            return f"cannot be created: {base} is a file, not a directory"
        why = _probe_writable(base)
        return None if why is None else f"cannot be written: {base} is not writable ({why})"

    def __repr__(self) -> str:
        return f"PathArg({self.kind!r})"


def zone(text: str) -> str:
    """``type=zone``: an IANA time zone name (``America/Los_Angeles``), checked by zoneinfo."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a time zone; give an IANA name such as America/Los_Angeles or "
            "UTC") from None
    return text


def date(text: str) -> dt.date:
    """``type=date``: a calendar date, ``YYYY-MM-DD``."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from e


# Declared once: the ranges recon's options accept.
COUNT = IntRange(1, 10_000_000, "a count")          # accounts, chunk, batch size
LIMIT = IntRange(1, 1_000_000, "a number of rows")  # runs --limit
LIMIT_OR_ALL = IntRange(0, 1_000_000, "a number of rows (0: all)")  # history --limit
SEED = IntRange(0, 2**32 - 1, "a seed")
PORT = IntRange(0, 65_535, "a TCP port (0: any free one)")
HOURS = FloatRange(0.0, 720.0, "a number of hours")  # ≤ 30 days: Zuora's deleted-record window
SHARE = FloatRange(0.0, 1.0, "a fraction")
DRIFT = FloatRange(0.0, 0.5, "a fraction of subscriptions")

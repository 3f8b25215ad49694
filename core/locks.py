"""The one file-lock primitive: exclusive, non-blocking, labelled, released when its holder dies.

Three places need "only one of us at a time" on a file: the extract (one per data directory,
:func:`core.snapshot.run_lock`), a job run (``jobs.locks``, DuckDB setups) and a repair apply
(``repair.lock``, DuckDB). They used to carry three copies of the same ``fcntl`` code, each
with its own small differences. This is that code once:

* ``flock(LOCK_EX | LOCK_NB)``: a second holder is refused at once (the caller decides whether
  to wait, retry or report), and the kernel releases the lock when the holder's file
  descriptor closes — including when the process is killed with ``kill -9`` — so there is never
  a stale lock to clean up. ``flock`` locks belong to the open file, not to the process, so a
  second :class:`FileLock` in the *same* process (another thread) is refused as well.
* The holder may write a label (JSON) into the file, so a refusal can name who holds it. The
  content is only a label: it is truncated on release, and a leftover never blocks anyone.

Callers turn :class:`LockBusy` into their own typed error (``ExtractBusy``, ``JobLocked``,
``LockHeld``) with their own message; the primitive knows nothing of jobs or repairs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import socket
from pathlib import Path
from types import TracebackType
from typing import Any

from core.errors import ReconError

log = logging.getLogger("recon.locks")

_MAX_LABEL = 65536


class LockBusy(ReconError):
    """Another open file holds the lock. ``holder`` is its label ({} when it wrote none or the
    label is unreadable); callers re-raise their own typed error naming it."""

    def __init__(self, path: Path, holder: dict[str, Any]) -> None:
        super().__init__(f"lock {path} is held")
        self.path = path
        self.holder = holder


def holder_label(**fields: Any) -> dict[str, Any]:
    """``fields`` plus where and since when: host, pid and the UTC start (to the second)."""
    return {**fields, "host": socket.gethostname(), "pid": os.getpid(),
            "since": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()}


class FileLock:
    """``with FileLock(path, label):`` — hold ``path`` exclusively or raise :class:`LockBusy`.

    The parent directory is created if needed. :meth:`acquire` may raise ``OSError`` when the
    file cannot be opened (a read-only data directory): the caller knows what that file is for
    and words the error. :meth:`release` never raises, because it runs while the holder's own
    error may be on its way out; nothing is lost, closing the descriptor releases the lock.
    """

    def __init__(self, path: Path | str, label: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.label = label
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        if self._fd is not None:
            raise RuntimeError(f"lock {self.path} is already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                raw = os.pread(fd, _MAX_LABEL, 0).decode("utf-8", "replace")
            finally:
                os.close(fd)
            raise LockBusy(self.path, _parse(raw)) from None
        except BaseException:
            os.close(fd)
            raise
        if self.label is not None:
            try:
                data = json.dumps(self.label).encode()
                os.ftruncate(fd, 0)
                os.pwrite(fd, data, 0)
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self.label is not None:
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as e:
            log.warning("releasing the lock %s: %s (closing it releases it)", self.path, e)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _parse(raw: str) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}

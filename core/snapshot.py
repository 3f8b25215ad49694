"""Snapshots: one consistent, complete export of Zuora and the local database, on disk.

Layout (``DATA`` is ``Settings.data_dir``)::

    DATA/snapshots/<run_id>/zuora/<Object>.parquet    every catalogue object, typed by the catalogue
    DATA/snapshots/<run_id>/local/<table>.parquet     every local table
    DATA/snapshots/<run_id>/rejects/<Object>.parquet  values that failed typing (never dropped)
    DATA/snapshots/<run_id>/delta/<Object>.parquet    incremental runs: the exported changes
    DATA/snapshots/<run_id>/manifest.json             rows, HWMs, API calls, retries, bytes,
                                                      durations, sha256 of every file, status

A run writes into ``DATA/snapshots/.tmp-<run_id>/`` and renames it to ``<run_id>`` only when
everything is written and checksummed (status ``complete``). A run that fails is renamed to
``<run_id>.failed`` with status ``failed`` and the error in its manifest: kept for diagnosis,
never returned by :func:`latest_complete`. A run that died without cleaning up (killed, power
loss) leaves a ``.tmp-`` directory, which the next run marks failed (``interrupted``).
Only one extract runs at a time per data directory (:func:`run_lock`).

A complete snapshot is not yet a trusted one: its validation verdict (recon's state, see
``core.state.Verdict`` and ``jobs.lineage``) decides whether it may be the base of an
incremental extract or the baseline of a volume check (:func:`last_passed`); the manifest
records the lineage (``base_run_id``, ``base_verdict``, ``mode_reason``) and the volume check
run before completion (``volume``).

Run ids start with the UTC start time (``20261122T223935123456Z-1a2b``), so their order is
their age.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import ReconError, TransientError
from core.layout import FAILED_SUFFIX, MANIFEST, TMP_PREFIX, DataLayout
from core.locks import FileLock, LockBusy
from core.profile import Profiler

# "deleted": per object, the Ids an incremental export saw deleted in Zuora and when
# (``Id``, ``deleted_at``), kept for as long as Zuora exports deleted records, so the
# reconciler can hold a deletion inside the grace window as pending (issue 15 point 5)
KINDS = ("zuora", "local", "rejects", "delta", "deleted")

COMPLETE = "complete"
FAILED = "failed"
RUNNING = "running"


class SnapshotError(ReconError):
    """A snapshot is missing, incomplete, or does not match its manifest."""


def new_run_id(now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(2)


def snapshots_dir(data_dir: Path | str) -> Path:
    return DataLayout(data_dir).snapshots


def _utc_iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def parse_utc(s: str | None) -> dt.datetime | None:
    if not s:
        return None
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(dt.UTC)


@dataclass
class Manifest:
    """What a snapshot holds and how it was made (``manifest.json``)."""

    run_id: str
    mode: str  # "full" | "incremental" (what was done)
    requested_mode: str = ""  # what was asked (incremental may fall back to full)
    status: str = RUNNING
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    tenant_tz: str = ""
    track_id: str = ""
    base_run_id: str | None = None  # incremental: the snapshot the changes were merged onto
    lag_s: float | None = None
    note: str | None = None
    zuora: dict[str, dict[str, Any]] = field(default_factory=dict)  # per object
    local: dict[str, dict[str, Any]] = field(default_factory=dict)  # per table
    # the local database's identity (core.localdb.identity), read in the export transaction;
    # None: not exported, or the database was never stamped (`recon db stamp`)
    local_identity: dict[str, Any] | None = None
    hwms: dict[str, str] = field(default_factory=dict)  # object -> UTC ISO high-water mark
    api: dict[str, Any] = field(default_factory=dict)
    aqua: dict[str, Any] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # relpath -> bytes, sha256
    error: str | None = None
    error_type: str | None = None
    # "all": every catalogue object and local table (nightly, full); "catalog": the product
    # catalog only (the daily catalog job). Only "all" snapshots are bases for incremental
    # extracts and the default for `recon reconcile`.
    scope: str = "all"
    # Lineage (``jobs.lineage``): the verdict of the base when it was chosen, why this run is
    # full or incremental, and the volume check run before the snapshot was marked complete
    # (``outcome`` passed | failed, ``baseline_run_id``, ``failures``).
    base_verdict: str | None = None
    mode_reason: str | None = None
    volume: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.status == COMPLETE

    def rows(self, obj: str) -> int:
        return int(self.zuora.get(obj, {}).get("rows", 0))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls.from_json((Path(path) / MANIFEST).read_text())


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def _write_manifest(directory: Path, manifest: Manifest, *, fsync: bool = True) -> None:
    tmp = directory / (MANIFEST + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(manifest.to_json())
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    os.replace(tmp, directory / MANIFEST)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class SnapshotWriter:
    """The temporary directory a run writes into, finished by :meth:`complete` or
    :meth:`fail` (exactly one of them)."""

    def __init__(self, data_dir: Path | str, run_id: str, *, durable: bool = True) -> None:
        """``durable=False``: no fsync — for a dataset nobody needs after a crash (a
        targeted sync's keyed snapshot: the sync is retried and reads Zuora again)."""
        layout = DataLayout(data_dir)
        self.durable = durable
        self.root = layout.snapshots
        self.run_id = run_id
        self.dir = layout.tmp_snapshot_dir(run_id)
        self.final_dir = layout.snapshot_dir(run_id)
        self.failed_dir = layout.failed_snapshot_dir(run_id)
        if self.final_dir.exists() or self.failed_dir.exists() or self.dir.exists():
            raise SnapshotError(f"snapshot {run_id} already exists under {self.root}")
        for kind in KINDS:
            (self.dir / kind).mkdir(parents=True, exist_ok=True)
        self.finished: Path | None = None

    def path(self, kind: str, name: str) -> Path:
        if kind not in KINDS:
            raise ValueError(f"unknown snapshot part {kind!r}; expected one of {KINDS}")
        return self.dir / kind / f"{name}.parquet"

    def _checksum(self, manifest: Manifest) -> None:
        files: dict[str, dict[str, Any]] = {}
        for p in sorted(self.dir.rglob("*")):
            if p.is_file() and p.name not in (MANIFEST, MANIFEST + ".tmp"):
                rel = p.relative_to(self.dir).as_posix()
                files[rel] = {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
        manifest.files = files

    def complete(self, manifest: Manifest) -> Path:
        """Checksum every file, write the manifest, rename into place. Atomic for readers:
        the final name appears only with everything in it."""
        if self.finished is not None:
            raise SnapshotError(f"snapshot {self.run_id} was already finished")
        self._checksum(manifest)
        manifest.status = COMPLETE
        manifest.error = None
        _write_manifest(self.dir, manifest, fsync=self.durable)
        if self.durable:
            _fsync_dir(self.dir)
        os.rename(self.dir, self.final_dir)
        if self.durable:
            _fsync_dir(self.root)
        self.finished = self.final_dir
        return self.final_dir

    def fail(self, manifest: Manifest, error: BaseException | str) -> Path:
        """Mark the run failed (status and directory name) and keep what was written."""
        if self.finished is not None:
            return self.finished
        manifest.status = FAILED
        manifest.error = str(error)
        manifest.error_type = type(error).__name__ if isinstance(error, BaseException) else None
        with contextlib.suppress(OSError):
            self._checksum(manifest)
        _write_manifest(self.dir, manifest)
        os.rename(self.dir, self.failed_dir)
        self.finished = self.failed_dir
        return self.failed_dir


@dataclass(frozen=True)
class Snapshot:
    """A finished snapshot directory (complete or failed) and its manifest."""

    path: Path
    manifest: Manifest

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def complete(self) -> bool:
        return self.manifest.complete and self.path.name == self.manifest.run_id

    def zuora_path(self, obj: str) -> Path:
        return self.path / "zuora" / f"{obj}.parquet"

    def local_path(self, table: str) -> Path:
        return self.path / "local" / f"{table}.parquet"

    def rejects_path(self, obj: str) -> Path:
        return self.path / "rejects" / f"{obj}.parquet"

    def deleted_path(self, obj: str) -> Path:
        """Zuora deletions seen by incremental exports (``Id``, ``deleted_at`` UTC); absent
        when none were seen (always absent in a full snapshot: a full export cannot see
        deletions, only their absence)."""
        return self.path / "deleted" / f"{obj}.parquet"

    def read_zuora(self, obj: str) -> pl.DataFrame:
        return pl.read_parquet(self.zuora_path(obj))

    def read_local(self, table: str) -> pl.DataFrame:
        return pl.read_parquet(self.local_path(table))

    def read_rejects(self, obj: str) -> pl.DataFrame:
        from core.values import REJECT_SCHEMA

        p = self.rejects_path(obj)
        return pl.read_parquet(p) if p.is_file() else pl.DataFrame(schema=REJECT_SCHEMA)

    def verify(self) -> None:
        """Every file the manifest lists is there with its size and sha256, and nothing
        else is; raises :class:`SnapshotError` naming the first mismatch."""
        listed = self.manifest.files
        present = {p.relative_to(self.path).as_posix() for p in self.path.rglob("*")
                   if p.is_file() and p.name != MANIFEST}
        extra = present - set(listed)
        if extra:
            raise SnapshotError(f"snapshot {self.path}: files not in the manifest: {sorted(extra)}")
        for rel, meta in listed.items():
            p = self.path / rel
            if not p.is_file():
                raise SnapshotError(f"snapshot {self.path}: {rel} is missing")
            if p.stat().st_size != meta["bytes"] or sha256_file(p) != meta["sha256"]:
                raise SnapshotError(f"snapshot {self.path}: {rel} does not match its checksum")


def open_snapshot(path: Path | str) -> Snapshot:
    path = Path(path)
    try:
        return Snapshot(path, Manifest.read(path))
    except (OSError, ValueError, TypeError) as e:
        raise SnapshotError(f"{path} is not a readable snapshot: {e}") from e


def list_snapshots(data_dir: Path | str) -> list[Snapshot]:
    """Every finished snapshot (complete and failed), oldest first. Running or abandoned
    ``.tmp-`` directories are not snapshots."""
    root = snapshots_dir(data_dir)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        if not p.is_dir() or p.name.startswith(".") or not (p / MANIFEST).is_file():
            continue
        try:
            out.append(open_snapshot(p))
        except SnapshotError:
            continue
    return out


def latest_complete(data_dir: Path | str, scope: str = "all") -> Snapshot | None:
    """The newest complete snapshot of ``scope``, or None. Never a failed, partial or running
    one: the directory name must be the bare run id *and* the manifest must say ``complete``."""
    done = [s for s in list_snapshots(data_dir) if s.complete and s.manifest.scope == scope]
    return max(done, key=lambda s: s.run_id) if done else None


def baseline_scopes(scope: str) -> tuple[str, ...]:
    """Snapshots of which scopes hold what a ``scope`` snapshot holds (a catalog snapshot
    compares with catalog and complete-tenant snapshots; a tenant one with tenant ones)."""
    return ("catalog", "all") if scope == "catalog" else (scope,)


def last_passed(data_dir: Path | str, scope: str = "all", before: str | None = None,
                usable: Iterable[str] | None = None) -> Snapshot | None:
    """The newest complete snapshot whose verdict is passed or accepted (``usable``: those run
    ids; default: read from recon's state), of a scope holding ``scope``'s objects, older than
    run id ``before`` when given. A snapshot that failed validation, or was never validated,
    is never returned: it is neither a base nor a volume baseline."""
    if usable is None:
        from core.state import StateDB

        with StateDB(data_dir) as st:
            usable = [r for r, v in st.verdicts().items() if v.usable]
    ok = set(usable)
    scopes = baseline_scopes(scope)
    done = [s for s in list_snapshots(data_dir)
            if s.complete and s.manifest.scope in scopes and s.run_id in ok
            and (before is None or s.run_id < before)]
    return max(done, key=lambda s: s.run_id) if done else None


def find_complete(data_dir: Path | str, run_id: str) -> Snapshot | None:
    p = DataLayout(data_dir).snapshot_dir(run_id)
    if not (p / MANIFEST).is_file():
        return None
    s = open_snapshot(p)
    return s if s.complete else None


def mark_interrupted(data_dir: Path | str) -> list[Path]:
    """Rename abandoned ``.tmp-<run_id>`` directories to ``<run_id>.failed`` with a failed
    manifest. Call only while holding :func:`run_lock` (no other run can be writing)."""
    root = snapshots_dir(data_dir)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.glob(f"{TMP_PREFIX}*")):
        run_id = p.name[len(TMP_PREFIX):]
        try:
            m = Manifest.read(p)
        except (OSError, ValueError, TypeError):
            m = Manifest(run_id=run_id, mode="unknown")
        m.status = FAILED
        m.error = m.error or "interrupted: the run stopped before finishing its snapshot"
        m.error_type = m.error_type or "Interrupted"
        _write_manifest(p, m)
        target = root / f"{run_id}{FAILED_SUFFIX}"
        if target.exists():
            shutil.rmtree(p)
            continue
        os.rename(p, target)
        out.append(target)
    return out


class ExtractBusy(SnapshotError, TransientError):
    """Another extract holds the data directory's lock (e.g. the catalog job while the nightly
    runs). Transient: the job retries it after a backoff."""


@contextlib.contextmanager
def run_lock(data_dir: Path | str) -> Iterator[None]:
    """Exclusive per data directory: a second extract fails fast instead of interleaving."""
    layout = DataLayout(data_dir)
    lock = FileLock(layout.extract_lock)
    try:
        lock.acquire()
    except LockBusy:
        raise ExtractBusy(f"another extract is running on {layout.snapshots} "
                          f"(lock {layout.extract_lock} is held)") from None
    try:
        yield
    finally:
        lock.release()


utc_iso = _utc_iso


# ------------------------------------------------------------------------------------------
# Writing helpers shared by the Zuora and local exports
# ------------------------------------------------------------------------------------------
class IterStream(io.RawIOBase):
    """A read-only binary file over an iterator of byte chunks (an HTTP body, a COPY
    stream), so pyarrow's streaming CSV reader can consume it without holding it whole.
    Counts bytes and hashes them on the way. Bytes pass unchanged: a NUL inside a Zuora value
    is kept (tap-zuora 1.0.2 dropped them), and the diff reports it as not fitting locally."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._it = iter(chunks)
        self._buf = memoryview(b"")
        self.bytes = 0
        self.sha256 = hashlib.sha256()
        self.ended_with_newline = True

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        while not self._buf:
            try:
                chunk = next(self._it)
            except StopIteration:
                return False
            chunk = bytes(chunk)
            if not chunk:
                continue
            self.bytes += len(chunk)
            self.sha256.update(chunk)
            self._buf = memoryview(chunk)
            self.ended_with_newline = chunk.endswith(b"\n")
        return True

    def empty(self) -> bool:
        """True when the stream has no bytes at all (pyarrow refuses an empty CSV)."""
        return not self._fill()

    def readinto(self, b: Any) -> int:
        """Fill ``b`` as far as the source allows (many small chunks, e.g. one COPY row
        each, become one large read for pyarrow)."""
        view = memoryview(b).cast("B")
        got = 0
        while got < len(view) and self._fill():
            n = min(len(view) - got, len(self._buf))
            view[got:got + n] = self._buf[:n]
            self._buf = self._buf[n:]
            got += n
        return got

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        parts: list[bytes] = []
        got = 0
        while got < size and self._fill():
            n = min(size - got, len(self._buf))
            parts.append(bytes(self._buf[:n]))
            self._buf = self._buf[n:]
            got += n
        return b"".join(parts)


ROW_GROUP_ROWS = 65_536  # rows per row group of the files recon writes


class ParquetSink:
    """Appends Arrow batches to one Parquet file with a fixed schema; ``close()`` returns
    the rows written. Batches are gathered into row groups of :data:`ROW_GROUP_ROWS` rows
    (small row groups read slowly) and nothing is held beyond the current one but the
    column profile (``core.profile``: a number per string column, the values of enum
    columns, a hash per key value), which ``close()`` writes into the footer for validation.
    ``unique``: the keys to profile; ``enums``: the columns whose values to keep."""

    def __init__(self, path: Path, schema: pa.Schema, compression: str = "zstd",
                 unique: Iterable[Sequence[str]] = (), enums: Iterable[str] = ()) -> None:
        self.path = Path(path)
        self.schema = schema
        self.rows = 0
        self._writer = pq.ParquetWriter(self.path, schema, compression=compression)
        self._profile = Profiler(schema, unique, enums)
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, table: pa.Table | pa.RecordBatch) -> None:
        if table.num_rows == 0:
            return
        if isinstance(table, pa.RecordBatch):
            table = pa.Table.from_batches([table])
        self._pending.append(table.select(self.schema.names).cast(self.schema))
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        group = pa.concat_tables(self._pending).combine_chunks()
        self._pending, self._pending_rows = [], 0
        self._profile.update(group)
        self._writer.write_table(group, row_group_size=max(group.num_rows, 1))

    def close(self) -> int:
        self._flush()
        self._writer.add_key_value_metadata(self._profile.metadata())
        self._writer.close()
        return self.rows

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._writer.close()
        with contextlib.suppress(OSError):
            self.path.unlink()

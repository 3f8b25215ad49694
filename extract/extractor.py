"""The extract run: every catalogue object from Zuora and every local table, into one
complete snapshot (``extract.snapshot``), or a snapshot marked failed and an error.

Modes
-----
``full``
    One AQuA job, one query per object, no WHERE. Deletions are found by absence.
``incremental``
    ``UpdatedDate >= HWM and < now − lag`` per object (lag 2 h by default: Zuora's advice,
    so long transactions that commit late are not skipped), deleted rows included with
    ``forceExport``; the changes are merged onto the snapshot the marks belong to, so every
    snapshot is the complete Zuora state. Falls back to ``full`` (and says so in the
    manifest) when there are no marks, the marked snapshot is gone, a mark is older than
    Zuora keeps deleted records (30 days), or an object's stored schema is not the
    catalogue's any more; a single object without a usable mark is exported whole.

High-water marks live in recon's state (``extract.state``) and are written only after the
snapshot has been renamed complete. A full export's mark is its start time − lag.

Safety
------
A zero-row object that had rows in the previous complete snapshot is suspect (an empty export
must never look like "everything was deleted"): the run fails unless the object is in
``allow_empty``. Duplicate or null Ids fail the run. Any failure cancels a running AQuA job,
keeps the partial snapshot as ``<run_id>.failed`` and raises :class:`ExtractError`, whose
message names the stage, the objects and the cause.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from extract.aqua import DELETED_FLAG, AquaExporter, AquaOptions, ExportQuery, Window
from extract.catalog import OBJECTS, ObjectSpec
from extract.client import MISSING_SECRET, RetryPolicy, ZuoraClient
from extract.config import Settings
from extract.errors import ReconError
from extract.local_export import export_local_snapshot
from extract.profile import (
    merged_profile,
    profile_metadata,
    read_profile,
    unique_counts,
    zuora_keys,
)
from extract.snapshot import (
    ROW_GROUP_ROWS,
    Manifest,
    Snapshot,
    SnapshotWriter,
    find_complete,
    latest_complete,
    list_snapshots,
    mark_interrupted,
    new_run_id,
    parse_utc,
    run_lock,
    utc_iso,
)
from extract.state import StateDB
from extract.values import empty_frame

MODES = ("full", "incremental")
DEFAULT_LAG = dt.timedelta(hours=2)
DELETED_RETENTION = dt.timedelta(days=29)  # Zuora keeps deleted records 30 days; 1 day spare

Progress = Callable[[str], None]


class ExtractError(ReconError):
    """The extract run failed; no snapshot was marked complete and no mark moved."""

    def __init__(self, message: str, *, objects: tuple[str, ...] = (),
                 snapshot: Path | None = None, stage: str = "") -> None:
        super().__init__(message)
        self.objects = objects
        self.snapshot = snapshot
        self.stage = stage


class SuspectExportError(ExtractError):
    """An object came back empty although the previous complete snapshot had rows."""


@dataclass
class ExtractOptions:
    """Knobs beyond ``run_extract``'s arguments (production defaults; tests shrink them)."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    aqua: AquaOptions = field(default_factory=AquaOptions)
    objects: tuple[str, ...] | None = None  # default: every catalogue object
    local_tables: list[str] | None = None  # default: every local table
    export_local: bool = True
    http_timeout: tuple[float, float] = (10.0, 120.0)
    zuora_version: str | None = None
    deleted_retention: dt.timedelta = DELETED_RETENTION
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)


@dataclass
class _Plan:
    mode: str
    queries: list[ExportQuery]
    hwms: dict[str, dt.datetime]  # the marks this snapshot will record
    base: Snapshot | None = None  # incremental: merged onto this snapshot
    merge: set[str] = field(default_factory=set)  # objects whose delta is merged
    note: str | None = None


def _floor_s(t: dt.datetime) -> dt.datetime:
    """Zuora's UpdatedDate has one-second precision: marks are whole seconds."""
    return t.astimezone(dt.UTC).replace(microsecond=0)


def _schema_matches(path: Path, spec: ObjectSpec) -> bool:
    try:
        return pq.read_schema(path).names == spec.field_names
    except (OSError, ValueError):
        return False


def plan(mode: str, specs: list[ObjectSpec], data_dir: Path, now: dt.datetime,
         lag: dt.timedelta, retention: dt.timedelta = DELETED_RETENTION) -> _Plan:
    """What to export and which marks the resulting snapshot will carry."""
    end = _floor_s(now - lag)
    full = _Plan("full", [ExportQuery(s) for s in specs], {s.name: end for s in specs})
    if mode == "full":
        return full
    with StateDB(data_dir) as st:
        marks = st.hwms()
    wanted = {s.name: marks[s.name] for s in specs if s.name in marks}
    if not wanted:
        full.note = "incremental requested but there are no high-water marks yet: full export"
        return full
    runs = {m.run_id for m in wanted.values()}
    if len(runs) > 1:
        full.note = (f"incremental requested but the marks come from several snapshots "
                     f"({', '.join(sorted(runs))}): full export")
        return full
    base_id = runs.pop()
    base = find_complete(data_dir, base_id)
    if base is None:
        full.note = (f"incremental requested but snapshot {base_id}, which the marks belong "
                     "to, is not there as a complete snapshot: full export")
        return full
    oldest = min(m.hwm for m in wanted.values())
    if now - oldest > retention:
        full.note = (f"incremental requested but the oldest mark ({utc_iso(oldest)}) is older "
                     f"than Zuora keeps deleted records: full export")
        return full
    p = _Plan("incremental", [], {}, base=base)
    for s in specs:
        mark = wanted.get(s.name)
        if mark is None or not _schema_matches(base.zuora_path(s.name), s):
            p.queries.append(ExportQuery(s))  # whole object, replaces the base's
            p.hwms[s.name] = end
            continue
        start = mark.hwm
        p.queries.append(ExportQuery(s, Window(start, max(start, end)), deleted=True))
        p.merge.add(s.name)
        p.hwms[s.name] = max(start, end)
    return p


# ------------------------------------------------------------------------------------------
# Merge and validation
# ------------------------------------------------------------------------------------------
def merge_object(base_path: Path, delta_path: Path, out_path: Path) -> tuple[int, int, int]:
    """base ∖ ids(delta) ∪ live rows of delta → ``out_path``; returns (rows, upserted,
    deleted). Set-based and streaming (polars lazy, ``sink_parquet``). When an Id appears
    more than once in the delta the last row wins."""
    delta = pl.scan_parquet(delta_path).unique(subset=["Id"], keep="last", maintain_order=True)
    ids = delta.select("Id")
    kept = pl.scan_parquet(base_path).join(ids, on="Id", how="anti")
    upserts = delta.filter(~pl.col(DELETED_FLAG)).drop(DELETED_FLAG)
    merged = pl.concat([kept, upserts], how="vertical")
    # The merged file's column profile (extract.profile): lengths and values bounded by the
    # two files' (it holds a subset of their rows), the key measured on the merged keys.
    rows, unique = unique_counts(merged, zuora_keys(base_path.stem))
    profile = merged_profile(read_profile(base_path), read_profile(delta_path), rows, unique)
    merged.sink_parquet(out_path, compression="zstd", row_group_size=ROW_GROUP_ROWS,
                        metadata=profile_metadata(profile))
    counts = delta.select(
        (~pl.col(DELETED_FLAG)).sum().alias("up"), pl.col(DELETED_FLAG).sum().alias("del"),
    ).collect().row(0)
    return pq.ParquetFile(out_path).metadata.num_rows, int(counts[0]), int(counts[1])


def merge_rejects(base: Path | None, delta_rejects: Path | None, delta_path: Path,
                  out_path: Path) -> int:
    """Rejects of rows the delta did not touch carry over; the delta's own rejects replace
    the rest. Returns the number written (no file when there are none)."""
    parts = []
    if base is not None and base.is_file():
        ids = pl.scan_parquet(delta_path).select(pl.col("Id").alias("key"))
        parts.append(pl.scan_parquet(base).join(ids, on="key", how="anti"))
    if delta_rejects is not None and delta_rejects.is_file():
        parts.append(pl.scan_parquet(delta_rejects))
    if not parts:
        return 0
    rej = pl.concat(parts).collect()
    if rej.height:
        rej.write_parquet(out_path)
    return rej.height


def link_or_copy(src: Path, dst: Path) -> None:
    """Snapshots are immutable, so an unchanged object's file is shared by a hard link
    (copied when the file system cannot link)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def check_keys(obj: str, path: Path) -> None:
    """Every row has an Id and no Id appears twice."""
    stats = pl.scan_parquet(path).select(
        pl.len().alias("rows"), pl.col("Id").n_unique().alias("ids"),
        pl.col("Id").null_count().alias("nulls")).collect().row(0, named=True)
    if stats["nulls"]:
        raise ExtractError(f"{obj}: {stats['nulls']} exported row(s) have no Id",
                           objects=(obj,), stage="validation")
    if stats["ids"] != stats["rows"]:
        dup = (pl.scan_parquet(path).group_by("Id").len().filter(pl.col("len") > 1)
               .select("Id").head(3).collect()["Id"].to_list())
        raise ExtractError(
            f"{obj}: {stats['rows'] - stats['ids']} duplicate Id(s) in the export, e.g. {dup}",
            objects=(obj,), stage="validation")


def check_not_suspect(rows: dict[str, int], previous: Snapshot | None,
                      allow_empty: Iterable[str]) -> None:
    """Zero rows where the previous complete snapshot had some: refuse, unless allowed."""
    if previous is None:
        return
    allowed = set(allow_empty)
    suspect = [(o, previous.manifest.rows(o)) for o, n in rows.items()
               if n == 0 and previous.manifest.rows(o) > 0 and o not in allowed]
    if suspect:
        what = ", ".join(f"{o} (had {n} rows)" for o, n in suspect)
        names = tuple(o for o, _ in suspect)
        raise SuspectExportError(
            f"suspect export: 0 rows for {what} in snapshot {previous.run_id}'s successor; an "
            "empty export must not look like every record was deleted. If Zuora really has "
            f"none now, rerun allowing it (allow_empty={list(names)}, --allow-empty "
            f"{','.join(names)})", objects=names, stage="validation")


# ------------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------------
def choose_mode(settings: Settings, requested: str | None = None,
                now: dt.datetime | None = None) -> str:
    """The mode a run should use: ``requested`` when given (a person asked), else the
    configured default, except that an incremental default becomes ``full`` when no complete
    full snapshot is younger than ``extract_full_every_days`` — deletions older than Zuora's
    30-day deleted-record window are only found by a full export."""
    if requested:
        return requested
    if settings.extract_mode == "full":
        return "full"
    now = now or dt.datetime.now(dt.UTC)
    fulls = [s for s in list_snapshots(settings.data_dir)
             if s.complete and s.manifest.mode == "full"]
    if not fulls:
        return "full"
    last = max(parse_utc(s.manifest.finished_at) or parse_utc(s.manifest.started_at)
               or dt.datetime.min.replace(tzinfo=dt.UTC) for s in fulls)
    return "full" if now - last >= dt.timedelta(days=settings.extract_full_every_days) \
        else "incremental"


def run_extract(settings: Settings, mode: str = "full", *, progress: Progress | None = None,
                allow_empty: Iterable[str] = (), lag: dt.timedelta = DEFAULT_LAG,
                options: ExtractOptions | None = None) -> Manifest:
    """Export Zuora (AQuA) and the local database into ``DATA/snapshots/<run_id>/``.

    Returns the manifest of the complete snapshot; raises :class:`ExtractError` (a
    ``ReconError``: CLI exit 2) when the run fails, after marking the snapshot failed.
    """
    if mode not in MODES:
        raise ExtractError(f"unknown extract mode {mode!r}; use one of {', '.join(MODES)}")
    if lag < dt.timedelta(0):
        raise ExtractError(f"lag must not be negative (got {lag})")
    if not settings.zuora_client_secret:
        raise ExtractError(MISSING_SECRET)  # before any snapshot directory exists
    opt = options or ExtractOptions()
    say = progress or (lambda _msg: None)
    data_dir = Path(settings.data_dir)
    specs = [s for s in OBJECTS if opt.objects is None or s.name in opt.objects]
    allow = tuple(allow_empty)
    with run_lock(data_dir):
        for p in mark_interrupted(data_dir):
            say(f"marked an interrupted run failed: {p.name}")
        return _Run(settings, mode, opt, say, data_dir, specs, allow, lag).run()


def scope_of(opt: ExtractOptions) -> str:
    """What a snapshot made with ``opt`` covers (see ``Manifest.scope``)."""
    if opt.objects is None and opt.local_tables is None:
        return "all"
    catalog = {o.name for o in OBJECTS if o.group == "catalog"}
    if opt.objects is not None and set(opt.objects) == catalog:
        return "catalog"
    return "partial"


class _Run:
    def __init__(self, settings: Settings, mode: str, opt: ExtractOptions, say: Progress,
                 data_dir: Path, specs: list[ObjectSpec], allow: tuple[str, ...],
                 lag: dt.timedelta) -> None:
        self.settings, self.opt, self.say = settings, opt, say
        self.data_dir, self.specs, self.allow, self.lag = data_dir, specs, allow, lag
        self.started = opt.clock()
        self.t0 = time.monotonic()
        self.run_id = new_run_id(self.started)
        self.writer = SnapshotWriter(data_dir, self.run_id)
        self.manifest = Manifest(
            run_id=self.run_id, mode=mode, requested_mode=mode, started_at=utc_iso(self.started),
            tenant_tz=settings.tenant_tz, lag_s=lag.total_seconds(), scope=scope_of(opt))
        self.stage = "setup"
        self.client: ZuoraClient | None = None
        self.exporter: AquaExporter | None = None
        self.local_done = False
        self.planned: tuple[str, ...] = ()

    def run(self) -> Manifest:
        try:
            return self._run()
        except BaseException as e:
            self._fail(e)
            err = self._error(e)
            if err is e:
                raise
            raise err from e
        finally:
            if self.client is not None:
                self.client.close()

    # -- happy path ------------------------------------------------------------------------
    def _run(self) -> Manifest:
        m, opt = self.manifest, self.opt
        self.stage = "plan"
        previous = latest_complete(self.data_dir, m.scope)
        if m.scope != "all" and m.mode != "full":
            raise ExtractError(f"a {m.scope} extract is always full (incremental marks belong "
                               "to the complete snapshots)")
        p = plan(m.mode, self.specs, self.data_dir, self.started, self.lag,
                 opt.deleted_retention)
        m.mode, m.note = p.mode, p.note
        self.planned = tuple(q.name for q in p.queries)
        m.base_run_id = p.base.run_id if p.base else None
        if p.note:
            self.say(p.note)
        self.say(f"extract {self.run_id}: {p.mode}"
                 + (f" onto {p.base.run_id}" if p.base else "") + f", {len(p.queries)} objects")

        self.stage = "zuora export"
        self.client = ZuoraClient.from_settings(
            self.settings, track_id=self.run_id, policy=opt.policy, timeout=opt.http_timeout,
            zuora_version=opt.zuora_version)
        m.track_id = self.client.track_id
        self.exporter = AquaExporter(self.client, self.settings.tenant_tz, opt.aqua, self.say)
        target = self.writer.dir / ("delta" if p.mode == "incremental" else "zuora")
        rejects_dir = self.writer.dir / "rejects"
        if p.mode == "incremental":
            rejects_dir = self.writer.dir / "delta" / "rejects"
            rejects_dir.mkdir(parents=True, exist_ok=True)
        z0 = time.monotonic()
        result = self.exporter.export(p.queries, target, rejects_dir,
                                      job_name=f"recon-{self.run_id}",
                                      on_submitted=self._export_local)
        m.aqua = {**result.as_dict(), **m.aqua}  # keeps local_export_s set meanwhile
        m.aqua["zuora_export_s"] = round(time.monotonic() - z0, 3)
        if not self.local_done:
            self._export_local()

        self.stage = "merge"
        rows: dict[str, int] = {}
        for q in p.queries:
            name = q.name
            ox = result.objects[name]
            entry = ox.as_dict()
            entry["file"] = f"zuora/{name}.parquet"
            entry["hwm"] = utc_iso(p.hwms[name])
            entry["window"] = ({"from": utc_iso(q.window.start), "to": utc_iso(q.window.end)}
                               if q.window else "full")
            final = self.writer.path("zuora", name)
            if name in p.merge and ox.rows == 0:  # nothing changed: share the base's files
                assert p.base is not None
                link_or_copy(p.base.zuora_path(name), final)
                rej = 0
                if p.base.rejects_path(name).is_file():
                    link_or_copy(p.base.rejects_path(name), self.writer.path("rejects", name))
                    rej = pq.ParquetFile(self.writer.path("rejects", name)).metadata.num_rows
                entry.update(rows=pq.ParquetFile(final).metadata.num_rows, delta_rows=0,
                             upserted=0, deleted_rows=0, rejects=rej, merge_s=0.0)
            elif name in p.merge:
                assert p.base is not None
                t = time.monotonic()
                n, up, dele = merge_object(p.base.zuora_path(name), ox.path, final)
                rej = merge_rejects(p.base.rejects_path(name), ox.rejects_path, ox.path,
                                    self.writer.path("rejects", name))
                entry.update(rows=n, delta_rows=ox.rows, upserted=up, deleted_rows=dele,
                             rejects=rej, merge_s=round(time.monotonic() - t, 3))
            elif p.mode == "incremental":  # exported whole inside an incremental run
                ox.path.rename(final)
                if ox.rejects_path is not None:
                    ox.rejects_path.rename(self.writer.path("rejects", name))
            rows[name] = int(entry["rows"])
            m.zuora[name] = entry
            m.hwms[name] = utc_iso(p.hwms[name]) or ""
        if p.mode == "incremental":
            for s in self.specs:  # a catalogue object missing from the plan cannot happen,
                assert s.name in rows  # but a snapshot must never silently lack one

        self.stage = "validation"
        for name in rows:
            check_keys(name, self.writer.path("zuora", name))
        check_not_suspect(rows, previous, self.allow)

        self.stage = "publish"
        self._stats()
        m.finished_at = utc_iso(self.opt.clock())
        m.duration_s = round(time.monotonic() - self.t0, 3)
        path = self.writer.complete(m)
        self.say(f"snapshot complete: {path}")
        self.stage = "state"
        if m.scope != "all":  # marks belong to complete snapshots only (incremental bases)
            return m
        try:
            with StateDB(self.data_dir) as st:
                st.set_hwms(self.run_id, m.mode, p.hwms)
        except Exception as e:  # the snapshot is complete and stays so; the marks did not
            # move, so the next incremental run starts from the previous ones (still correct)
            self.say(f"warning: snapshot {self.run_id} is complete but its high-water marks "
                     f"could not be recorded in {self.data_dir / 'state.duckdb'}: {e}")
        return m

    def _export_local(self) -> None:
        """Runs once, while Zuora executes the AQuA job."""
        if self.local_done or not self.opt.export_local:
            self.local_done = True
            return
        stage, self.stage = self.stage, "local export"
        t = time.monotonic()
        export = export_local_snapshot(self.settings.local_database_url,
                                       self.writer.dir / "local", self.opt.local_tables)
        res = export.tables
        self.manifest.local_identity = export.identity.as_dict() if export.identity else None
        for table, r in res.items():
            self.manifest.local[table] = r.as_dict()
        self.manifest.aqua["local_export_s"] = round(time.monotonic() - t, 3)
        self.say(f"local export: {len(res)} tables, {sum(r.rows for r in res.values())} rows")
        self.local_done = True
        self.stage = stage

    def _stats(self) -> None:
        if self.client is not None:
            self.manifest.api = self.client.stats.as_dict()

    # -- failure ---------------------------------------------------------------------------
    def _fail(self, e: BaseException) -> None:
        if self.exporter is not None:
            try:
                self.exporter.cancel_active()
            except Exception:  # cancelling is best effort; the error below matters more
                pass
        self._stats()
        m = self.manifest
        m.finished_at = utc_iso(self.opt.clock())
        m.duration_s = round(time.monotonic() - self.t0, 3)
        if self.writer.finished is None:
            self.writer.fail(m, f"{self.stage}: {e}")
        self.say(f"extract {self.run_id} failed during {self.stage}: {e}")

    def _error(self, e: BaseException) -> BaseException:
        if isinstance(e, ExtractError):
            e.snapshot = self.writer.finished
            e.stage = e.stage or self.stage
            if self.writer.finished is not None and self.writer.finished != self.writer.final_dir:
                e.args = (f"{e} (snapshot kept as {self.writer.finished}, marked failed)",)
            return e
        if not isinstance(e, Exception):
            return e  # KeyboardInterrupt, SystemExit: the snapshot is marked, let it go
        objects = tuple(getattr(e, "objects", ()) or ())
        if not objects and self.stage == "zuora export":
            objects = self.planned  # a job-level failure concerns every object in the job
        where = f" (objects: {', '.join(objects)})" if objects else ""
        kept = (f"; snapshot kept as {self.writer.finished}, marked failed"
                if self.writer.finished is not None else "")
        cls = SuspectExportError if isinstance(e, SuspectExportError) else ExtractError
        return cls(f"extract {self.run_id} failed during {self.stage}{where}: {e}{kept}",
                   objects=tuple(objects), snapshot=self.writer.finished, stage=self.stage)


def read_snapshot_object(snapshot: Snapshot, spec: ObjectSpec) -> pl.DataFrame:
    """A snapshot object's typed frame (empty with the catalogue schema when absent)."""
    p = snapshot.zuora_path(spec.name)
    return pl.read_parquet(p) if p.is_file() else empty_frame(spec)


__all__ = [
    "DEFAULT_LAG", "MODES", "ExtractError", "ExtractOptions", "SuspectExportError",
    "check_keys", "check_not_suspect", "merge_object", "merge_rejects", "plan",
    "read_snapshot_object", "run_extract",
]

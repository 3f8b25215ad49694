"""The extract run: every catalogue object from Zuora and every local table, into one
complete snapshot (``core.snapshot``), or a snapshot marked failed and an error.

Modes
-----
``full``
    One AQuA job, one query per object, no WHERE. Deletions are found by absence.
``incremental``
    ``UpdatedDate >= HWM and < now − lag`` per object (lag 2 h by default: Zuora's advice,
    so long transactions that commit late are not skipped), deleted rows included with
    ``forceExport``; the changes are merged onto the *base*, so every snapshot is the complete
    Zuora state. Falls back to ``full`` (and says so in the manifest) when there is no base,
    a base mark is older than Zuora keeps deleted records (30 days), or an object's stored
    schema is not the catalogue's any more; a single object without a usable mark is
    exported whole.

Lineage
-------
The extractor does not choose its base: the caller (``jobs.lineage``, one floor above
``expectations``) passes a :class:`Base` — a complete snapshot and its validation verdict,
which must be passed or accepted — and the marks are that snapshot's own (its manifest's
``hwms``). The caller also passes the ``baseline`` for the zero-row check and a
``before_complete`` hook that runs the volume check on the finished files *before* the
snapshot is renamed complete (its result lands in ``manifest.volume``). The extractor writes
no mark: a snapshot's marks become the current ones only once its verdict is passed.

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

from core.catalog import OBJECTS, ObjectSpec
from core.config import Settings
from core.errors import ReconError
from core.inbox import RequestBudget, shared_budget
from core.profile import (
    merged_profile,
    profile_metadata,
    read_profile,
    unique_counts,
    zuora_keys,
)
from core.snapshot import (
    ROW_GROUP_ROWS,
    Manifest,
    Snapshot,
    SnapshotWriter,
    mark_interrupted,
    new_run_id,
    parse_utc,
    run_lock,
    utc_iso,
)
from core.state import USABLE
from core.values import empty_frame
from extract.aqua import DELETED_FLAG, AquaExporter, AquaOptions, ExportQuery, Window
from extract.client import MISSING_SECRET, RetryPolicy, ZuoraClient
from extract.local_export import export_local_snapshot

MODES = ("full", "incremental")
DEFAULT_LAG = dt.timedelta(hours=2)
DELETED_RETENTION = dt.timedelta(days=29)  # Zuora keeps deleted records 30 days; 1 day spare
# Quarantined keys an incremental query asks for by name; beyond this the object is exported
# whole (a ZOQL statement has a length limit, and so many bad records need a full look).
MAX_REREQUESTED_KEYS = 200

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
    # the snapshot's id (default: a new one): a job attempt names its snapshot after itself
    # (``<run>`` or ``<run>.a<N>``), so the run, its snapshot and its run directory share it
    run_id: str | None = None


@dataclass(frozen=True)
class Base:
    """The snapshot an incremental extract builds on, with the verdict its validation gave.
    Only a passed or accepted snapshot can be a base (anything else is refused by name)."""

    snapshot: Snapshot
    verdict: str

    def __post_init__(self) -> None:
        if self.verdict not in USABLE:
            raise ExtractError(
                f"snapshot {self.snapshot.run_id} cannot be the base of an incremental extract: "
                f"its validation verdict is {self.verdict!r} (only passed or accepted "
                "snapshots are bases)")
        if not self.snapshot.complete or self.snapshot.manifest.scope != "all":
            raise ExtractError(f"snapshot {self.snapshot.run_id} is not a complete snapshot of "
                               "the whole tenant and cannot be a base")

    @property
    def run_id(self) -> str:
        return self.snapshot.run_id

    @property
    def marks(self) -> dict[str, dt.datetime]:
        """The base's high-water marks (from its manifest), per object."""
        out = {}
        for obj, text in self.snapshot.manifest.hwms.items():
            t = parse_utc(text)
            if t is not None:
                out[obj] = t
        return out


BeforeComplete = Callable[[Snapshot], dict]


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


def plan(mode: str, specs: list[ObjectSpec], base: Base | None, now: dt.datetime,
         lag: dt.timedelta, retention: dt.timedelta = DELETED_RETENTION) -> _Plan:
    """What to export and which marks the resulting snapshot will carry."""
    end = _floor_s(now - lag)
    full = _Plan("full", [ExportQuery(s) for s in specs], {s.name: end for s in specs})
    if mode == "full":
        return full
    if base is None:
        full.note = ("incremental requested but no snapshot passed validation to build on: "
                     "full export")
        return full
    marks = base.marks
    wanted = {s.name: marks[s.name] for s in specs if s.name in marks}
    if not wanted:
        full.note = (f"incremental requested but base {base.run_id} has no high-water marks: "
                     "full export")
        return full
    oldest = min(wanted.values())
    if now - oldest > retention:
        full.note = (f"incremental requested but the oldest mark of base {base.run_id} "
                     f"({utc_iso(oldest)}) is older than Zuora keeps deleted records: "
                     "full export")
        return full
    snap = base.snapshot
    p = _Plan("incremental", [], {}, base=snap)
    for s in specs:
        mark = wanted.get(s.name)
        if mark is None or not _schema_matches(snap.zuora_path(s.name), s):
            p.queries.append(ExportQuery(s))  # whole object, replaces the base's
            p.hwms[s.name] = end
            continue
        start = mark
        keys = quarantined_keys(snap, s.name)
        if len(keys) > MAX_REREQUESTED_KEYS:  # too many to ask for by key: export it whole
            p.queries.append(ExportQuery(s))
            p.hwms[s.name] = end
            continue
        p.queries.append(ExportQuery(s, Window(start, max(start, end)), deleted=True,
                                     keys=keys))
        p.merge.add(s.name)
        p.hwms[s.name] = max(start, end)
    return p


def quarantined_keys(base: Snapshot, obj: str) -> tuple[str, ...]:
    """The keys ``base`` holds quarantined for ``obj`` (its rejects): an incremental run asks
    for them again by key, whatever their UpdatedDate, until they parse (or are deleted); a
    record whose key could not be read cannot be asked for — a full export settles it."""
    path = base.rejects_path(obj)
    if not path.is_file():
        return ()
    keys = pl.read_parquet(path, columns=["key"])["key"].drop_nulls().unique().sort()
    return tuple(keys.to_list())


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
    # The merged file's column profile (core.profile): lengths and values bounded by the
    # two files' (it holds a subset of their rows), the key measured on the merged keys.
    rows, unique = unique_counts(merged, zuora_keys(base_path.stem))
    profile = merged_profile(read_profile(base_path), read_profile(delta_path), rows, unique)
    merged.sink_parquet(out_path, compression="zstd", row_group_size=ROW_GROUP_ROWS,
                        metadata=profile_metadata(profile))
    counts = delta.select(
        (~pl.col(DELETED_FLAG)).sum().alias("up"), pl.col(DELETED_FLAG).sum().alias("del"),
    ).collect().row(0)
    return pq.ParquetFile(out_path).metadata.num_rows, int(counts[0]), int(counts[1])


def merge_deletions(base: Path | None, delta_path: Path, out_path: Path,
                    horizon: dt.datetime) -> int:
    """The deletions this snapshot knows (``Id``, ``deleted_at``): the delta's deleted rows
    (their ``UpdatedDate`` is the deletion time) and the base's still younger than
    ``horizon`` (Zuora's retention) whose Id the delta did not bring back. Kept so that a row
    deleted in Zuora inside the grace window is ``pending`` rather than drift, even when a
    later incremental run no longer sees the deletion. Returns the rows written (no file
    when there are none)."""
    delta = pl.scan_parquet(delta_path).unique(subset=["Id"], keep="last", maintain_order=True)
    parts = [delta.filter(pl.col(DELETED_FLAG))
             .select("Id", pl.col("UpdatedDate").cast(pl.Datetime("us")).alias("deleted_at"))]
    if base is not None and base.is_file():
        parts.append(pl.scan_parquet(base).join(delta.select("Id"), on="Id", how="anti"))
    out = (pl.concat(parts, how="vertical_relaxed")
           .filter(pl.col("deleted_at") >= horizon).collect())
    if out.height:
        out.write_parquet(out_path)
    return out.height


def merge_rejects(base: Path | None, delta_rejects: Path | None, delta_path: Path,
                  out_path: Path) -> int:
    """Rejects of rows the delta did not touch carry over (the base's quarantine markers,
    and its records with unreadable keys, which no delta can name); the delta's own rejects
    replace the rest: a re-requested key that parses now leaves the quarantine, one that
    still does not is quarantined again with today's value. Returns the number written (no
    file when there are none)."""
    parts = []
    if base is not None and base.is_file():
        ids = pl.scan_parquet(delta_path).select(pl.col("Id").alias("key"))
        parts.append(pl.scan_parquet(base).join(ids, on="key", how="anti", nulls_equal=False))
    if delta_rejects is not None and delta_rejects.is_file():
        parts.append(pl.scan_parquet(delta_rejects))
    if not parts:
        return 0
    rej = pl.concat(parts, how="diagonal_relaxed").collect()
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
def run_extract(settings: Settings, mode: str = "full", *, progress: Progress | None = None,
                allow_empty: Iterable[str] = (), lag: dt.timedelta = DEFAULT_LAG,
                options: ExtractOptions | None = None, base: Base | None = None,
                baseline: Snapshot | None = None, before_complete: BeforeComplete | None = None,
                mode_reason: str | None = None, requested_mode: str | None = None) -> Manifest:
    """Export Zuora (AQuA) and the local database into ``DATA/snapshots/<run_id>/``.

    ``base``: the passed snapshot an incremental run merges onto (None: a full export);
    ``baseline``: the passed snapshot the zero-row check compares with (default: the base);
    ``before_complete``: called with the finished, not yet complete snapshot; its dict is
    stored as ``manifest.volume``; ``mode_reason``: why the caller chose this mode;
    ``requested_mode``: what was asked, when the caller's choice differs (the manifest's
    ``note`` then gives ``mode_reason``).
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
        run = _Run(settings, mode, opt, say, data_dir, specs, allow, lag)
        run.base, run.baseline = base, baseline if baseline is not None else (
            base.snapshot if base else None)
        run.before_complete = before_complete
        run.manifest.mode_reason = mode_reason
        if requested_mode:
            run.manifest.requested_mode = requested_mode
            if requested_mode != mode:
                run.manifest.note = mode_reason
        return run.run()


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
        self.run_id = opt.run_id or new_run_id(self.started)
        self.writer = SnapshotWriter(data_dir, self.run_id)
        self.manifest = Manifest(
            run_id=self.run_id, mode=mode, requested_mode=mode, started_at=utc_iso(self.started),
            tenant_tz=settings.tenant_tz, lag_s=lag.total_seconds(), scope=scope_of(opt))
        self.stage = "setup"
        self.client: ZuoraClient | None = None
        self.budget: RequestBudget | None = None
        self.exporter: AquaExporter | None = None
        self.local_done = False
        self.planned: tuple[str, ...] = ()
        self.base: Base | None = None
        self.baseline: Snapshot | None = None
        self.before_complete: BeforeComplete | None = None

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
            if self.budget is not None:
                self.budget.backend.close()

    # -- happy path ------------------------------------------------------------------------
    def _run(self) -> Manifest:
        m, opt = self.manifest, self.opt
        self.stage = "plan"
        previous = self.baseline
        if m.scope != "all" and m.mode != "full":
            raise ExtractError(f"a {m.scope} extract is always full (incremental marks belong "
                               "to the complete snapshots)")
        p = plan(m.mode, self.specs, self.base, self.started, self.lag,
                 opt.deleted_retention)
        m.mode, m.note = p.mode, p.note or m.note
        if p.note:
            m.mode_reason = p.note
        self.planned = tuple(q.name for q in p.queries)
        m.base_run_id = p.base.run_id if p.base else None
        m.base_verdict = self.base.verdict if p.base and self.base else None
        if p.note:
            self.say(p.note)
        self.say(f"extract {self.run_id}: {p.mode}"
                 + (f" onto {p.base.run_id}" if p.base else "") + f", {len(p.queries)} objects")

        self.stage = "zuora export"
        # the request budget the callout workers share (when callouts are received here):
        # the nightly draws from it too, so together they stay inside Zuora's limits
        self.budget = shared_budget(self.settings)
        self.client = ZuoraClient.from_settings(
            self.settings, track_id=self.run_id, policy=opt.policy, timeout=opt.http_timeout,
            zuora_version=opt.zuora_version, budget=self.budget)
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
                if p.base.deleted_path(name).is_file():
                    link_or_copy(p.base.deleted_path(name), self.writer.path("deleted", name))
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
                merge_deletions(p.base.deleted_path(name), ox.path,
                                self.writer.path("deleted", name),
                                self.opt.clock().astimezone(dt.UTC).replace(tzinfo=None)
                                - self.opt.deleted_retention)
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

        self.stage = "volume check"
        self._stats()
        if self.before_complete is not None:  # the verdict exists before the snapshot does
            m.volume = dict(self.before_complete(Snapshot(self.writer.dir, m)))

        self.stage = "publish"
        m.finished_at = utc_iso(self.opt.clock())
        m.duration_s = round(time.monotonic() - self.t0, 3)
        path = self.writer.complete(m)
        self.say(f"snapshot complete: {path}")
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
            if self.budget is not None:  # time spent waiting for the shared request budget
                self.manifest.api["budget_wait_s"] = round(self.budget.waited_s, 3)

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
    "DEFAULT_LAG", "MODES", "Base", "ExtractError", "ExtractOptions", "SuspectExportError",
    "check_keys", "check_not_suspect", "merge_deletions", "merge_object", "merge_rejects",
    "plan", "read_snapshot_object", "run_extract",
]

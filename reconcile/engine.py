"""One reconciliation of one complete snapshot: diff, rules, annotation, grace, history.

Writes ``DATA/runs/<run_id>/drift.parquet`` (the output contract, docs/pipeline.md "Drift output"),
``object_stats.parquet``, ``field_stats.parquet`` and ``summary.json``, and the same drift
rows into recon's state table ``drift``. The run id is the snapshot's run id: one nightly run
is one extract, one validation, one reconciliation.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from core.catalog import ObjectSpec
from core.layout import (
    DRIFT_FILE,
    FIELD_STATS_FILE,
    MANIFEST,
    OBJECT_STATS_FILE,
    SUMMARY_FILE,
    DataLayout,
    run_dir,
)
from core.snapshot import Snapshot, latest_complete, open_snapshot, snapshots_dir
from core.state import StateDB
from expectations.quarantine import read_quarantine
from reconcile import annotate, events, history
from reconcile.diff import diff_all
from reconcile.findings import FINDINGS_DDL, insert
from reconcile.load import ReconcileError, SnapshotDB, open_snapshot_db, scope_objects
from reconcile.quarantine import hold_back
from reconcile.rules import CATALOG_RULES, RULES, prepare_rules, reads_order_relations


@dataclass
class ReconcileResult:
    run_id: str
    path: Path  # the run directory
    drift: pl.DataFrame  # this run's rows (resolved ones included)
    object_stats: pl.DataFrame
    field_stats: pl.DataFrame
    summary: dict[str, Any]
    previous_run: str | None
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def open(self) -> pl.DataFrame:
        """Findings that are drift now (not resolved, not pending)."""
        return self.drift.filter(pl.col("status").is_in(["new", "persisting"]))


def resolve_snapshot(data_dir: Path | str, run_id: str | None) -> Snapshot:
    """The snapshot to reconcile: ``run_id``'s, or the latest complete one (of every object;
    catalog-only snapshots are named explicitly). A failed or partial snapshot is refused by
    name."""
    if run_id is None:
        snap = latest_complete(data_dir)
        if snap is None:
            raise ReconcileError(f"no complete snapshot under {snapshots_dir(data_dir)}; run "
                                 "`recon extract` first")
        return snap
    layout = DataLayout(data_dir)
    for candidate in (layout.snapshot_dir(run_id), layout.failed_snapshot_dir(run_id)):
        if (candidate / MANIFEST).is_file():
            return open_snapshot(candidate)
    raise ReconcileError(f"no snapshot {run_id!r} under {snapshots_dir(data_dir)}")


def _summary(drift: pl.DataFrame) -> dict[str, Any]:
    open_ = drift.filter(pl.col("status") != "resolved")

    def counts(frame: pl.DataFrame, col: str) -> dict[str, int]:
        return {str(k): int(v) for k, v in frame.group_by(col).len().sort(col).iter_rows()}

    drifting = open_.filter(pl.col("status") != "pending")
    return {
        "findings": open_.height,
        "drift": drifting.height,
        "by_status": counts(drift, "status"),
        "by_kind": counts(drifting, "kind"),
        "by_action": counts(drifting, "action"),
        "by_severity": counts(drifting, "severity"),
        "by_object": counts(drifting, "object"),
        "by_rule": counts(drifting.filter(pl.col("rule").is_not_null()), "rule"),
    }


def reconcile_snapshot(snapshot: Snapshot, data_dir: Path | str, *, grace_hours: float = 2.0,
                       quarantine: pl.DataFrame | None = None,
                       progress: Callable[[str], None] | None = None,
                       threads: int | None = None,
                       activity: pl.DataFrame | None = None,
                       keyed: bool = False, db: SnapshotDB | None = None,
                       about: frozenset[str] | None = None) -> ReconcileResult:
    """Reconcile ``snapshot`` (refused unless complete) and record the run.

    ``activity``: the event path's per-key activity (``reconcile.events.ACTIVITY_SCHEMA``,
    read from the inbox by the caller); None when no callouts are received, and then nothing
    is held and no event-path figures are written.

    ``keyed``: the snapshot is a targeted sync's keyed dataset (``sync``), a few records per
    object, reconciled once and never compared with an earlier run. Its findings are the
    same — the same diff, rules and annotation —, but it skips what only a run needs: the
    history in recon's state (no previous run: every finding is ``new`` unless in the grace
    window or held, as it is against an empty state), the diff of objects with no row on
    either side (they cannot have a finding; their statistics are left out) and the
    annotation of objects the diff found nothing about (it only updates an object's own
    findings) and of fields it found nothing about (``annotate(narrow=True)``). A sync runs within seconds of a callout, and those steps were most of its time.

    ``about`` (keyed only): the objects (catalogue objects and local tables) whose findings
    the caller keeps — a sync's subject. The rules that cannot produce one
    (:attr:`~reconcile.rules.Rule.about`) do not run; nor does the diff of other objects
    unless a rule that runs reads its findings (``Rule.reads``); nor the order derivation
    when no rule that runs reads it. The findings about those objects are the same
    (``tests/sync/test_keyed.py``); the others are not computed.

    ``db``: ``snapshot`` opened already (:func:`open_for_reconcile`), to reconcile in and
    leave open — a sync plans in that connection next instead of opening the snapshot
    again; None: opened here and closed."""
    t0 = time.perf_counter()
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    say = progress or (lambda _msg: None)
    own = db is None
    if db is None:
        db = open_for_reconcile(snapshot, data_dir, quarantine, threads=threads)
    elif db.snapshot.run_id != snapshot.run_id:
        raise ReconcileError(f"reconcile_snapshot was given {db.snapshot.run_id}'s database "
                             f"for snapshot {snapshot.run_id}")
    timings: dict[str, float] = {}
    try:
        con = db.con
        con.execute(FINDINGS_DDL)
        say("diff")
        t = time.perf_counter()
        scope = snapshot.manifest.scope
        objects = scope_objects(snapshot)
        rules = RULES if scope == "all" else CATALOG_RULES
        if keyed:
            objects = [o for o in objects if _rows(snapshot, o)]
        if keyed and about is not None:
            rules = [r for r in rules if about.intersection(r.about)]
            diffed = about.union(*(r.reads for r in rules))
            objects = [o for o in objects if o.name in diffed]
        object_stats, field_stats = diff_all(
            con, objects, {s.name: snapshot.zuora_path(s.name) for s in objects})
        timings["diff"] = time.perf_counter() - t
        say("rules")
        t = time.perf_counter()
        sqls = {r.id: r.sql() for r in rules}  # built once: prepared for, then run
        db.prepared = prepare_rules(con, db.as_of.isoformat(sep=" "), scope,
                                    orders=reads_order_relations(*sqls.values()))
        timings["prepare"] = time.perf_counter() - t
        t = time.perf_counter()
        if keyed:  # annotation updates each object's findings only: skip those without
            found = {r[0] for r in con.execute("SELECT DISTINCT object FROM findings").fetchall()}
            objects = [o for o in objects if o.name in found]
        # rules may narrow their work to annotated findings
        annotate.annotate(con, objects, narrow=keyed)
        timings["annotate"] = time.perf_counter() - t
        t = time.perf_counter()
        for rule in rules:
            try:
                con.execute(insert(sqls[rule.id]))
            except Exception as e:  # a broken rule must name itself, not fail anonymously
                raise ReconcileError(f"rule {rule.id} ({rule.title}) failed: {e}") from e
            timings[f"rule {rule.id}"] = time.perf_counter() - t
        timings["rules"] = time.perf_counter() - t
        hold_back(con, scope)  # what depends on a quarantined record waits too
        annotate.add_quarantined(con)
        grace_at = db.as_of - dt.timedelta(hours=grace_hours)
        grace_start = grace_at.isoformat(sep=" ")
        if activity is not None:
            events.register_activity(con, activity)
            # the newest Zuora change this snapshot can hold: an incremental export stops at
            # its start minus the lag, so a sync after that may be fresher than the snapshot
            zuora_upper = db.as_of - dt.timedelta(seconds=snapshot.manifest.lag_s or 0)
            events.hold(con, history.FINGERPRINT, zuora_upper, grace_at)
        else:
            events.no_holds(con)
        with (nullcontext(None) if keyed else StateDB(data_dir)) as state:
            drift, prev = history.with_history(con, state, snapshot.run_id, grace_start, scope)
            drift = drift.sort("object", "kind", "key", "field", nulls_last=True)
            summary = _summary(drift)
            if activity is not None:
                summary["event_path"] = events.count(con, drift, grace_at).as_dict()
            seconds = round(time.perf_counter() - t0, 3)
            run = {
                "run_id": snapshot.run_id, "as_of": db.as_of,
                "snapshot_mode": snapshot.manifest.mode, "started_at": started,
                "finished_at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
                "duration_s": seconds, "grace_hours": float(grace_hours),
                "previous_run": prev, "findings": summary["findings"], "summary": summary,
                "scope": scope,
            }
            out = run_dir(data_dir, snapshot.run_id)
            out.mkdir(parents=True, exist_ok=True)
            _write(out / DRIFT_FILE, drift)
            _write(out / OBJECT_STATS_FILE, object_stats)
            _write(out / FIELD_STATS_FILE, field_stats)
            (out / SUMMARY_FILE).write_text(json.dumps(
                {**run, "as_of": db.as_of.isoformat() + "Z", "started_at":
                 started.isoformat() + "Z", "finished_at": run["finished_at"].isoformat() + "Z",
                 "quarantined_rows": db.quarantined, "timings": timings},
                indent=2, sort_keys=True, default=str) + "\n")
            if state is not None:
                history.store(state, snapshot.run_id, drift, run, object_stats)
    finally:
        if own:
            db.close()
    return ReconcileResult(snapshot.run_id, out, drift, object_stats, field_stats, summary,
                           prev, seconds, timings)


def open_for_reconcile(snapshot: Snapshot, data_dir: Path | str,
                       quarantine: pl.DataFrame | None = None, *,
                       threads: int | None = None, shared: bool = False) -> SnapshotDB:
    """``snapshot`` as :func:`reconcile_snapshot` opens it: its views, with what the
    contracts quarantined for its run (read from ``data_dir`` when not given) hidden.
    ``shared``: see :func:`~reconcile.load.open_snapshot_db`."""
    if quarantine is None:  # what the contracts quarantined for this run (expectations)
        quarantine = read_quarantine(data_dir, snapshot.run_id)
    return open_snapshot_db(snapshot, quarantine, threads=threads, shared=shared)


def _rows(snapshot: Snapshot, spec: ObjectSpec) -> int:
    """Rows of ``spec`` on both sides of ``snapshot``, as its manifest counts them (a keyed
    dataset records every file's rows)."""
    m = snapshot.manifest
    return (int((m.zuora.get(spec.name) or {}).get("rows", 1))
            + int((m.local.get(spec.table) or {}).get("rows", 1)))


def _write(path: Path, frame: pl.DataFrame) -> None:
    """Write atomically: a reader never sees half a file."""
    tmp = path.with_suffix(".tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)

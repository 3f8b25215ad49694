"""``recon repair apply`` / ``revert`` / ``history``: the public API of the repair executor.

Only the LOCAL database is ever written (Zuora is the source of truth and is never called),
only the rows the plan names, and only when ``yes=True``; otherwise everything runs as a dry
run that reports exactly what would change and writes nothing (not even the audit).

Order of an apply: validate the plan file → take the repair lock → open the local database →
the target's identity equals the plan's (else refused, nothing written anywhere, whatever
``force`` says) → recon's objects at this recon's schema version → guards (snapshot complete,
validation, plan age, change fraction) → record the apply as ``running`` → batches (each one
transaction with its audit rows) → record the final status. A refusal raises a
:class:`~repair.guards.RepairRefused` subclass before any data is written (with
``yes=True`` a refusal by the later guards is recorded in ``recon_repair_applies``). A revert
is bound the same way: to the identity recorded with the apply it undoes.

``hooks`` (:class:`~repair.executor.BatchHooks`) lets the kill -9 and lock tests hold a batch
open or slow an apply down; nothing else passes them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from core.config import Settings, redact_url
from core.errors import ConfigError, LocalDatabaseError
from core.localdb.connect import LocalDB, connect
from core.localdb.dialect import database_file
from core.localdb.guards import triggers_on
from core.localdb.identity import DatabaseIdentity, read_identity
from repair import audit
from repair.audit import Session, utc_now
from repair.executor import (
    ALREADY,
    APPLIED,
    CONFLICT,
    NO_HOOKS,
    REF_MISSING,
    SUPERSEDED,
    BatchHooks,
    Executor,
    Outcome,
    later_values,
    make_batches,
)
from repair.guards import (
    ApplyNotFound,
    GuardTrip,
    RepairFailed,
    RepairRefused,
    check_fraction,
    check_plan,
    check_target,
    check_triggers,
)
from repair.lock import RepairLock, _user
from repair.plan import (
    Op,
    chunk_columns,
    column_types,
    decode,
    iter_chunks,
    open_plan,
    primary_key,
    require_applicable,
    verify_chunks,
)
from repair.target import Target, require_target, resolve

Progress = Callable[[str], None] | None

_COUNT_SCHEMA = {"table": pl.String, "op": pl.String, "planned": pl.Int64, "applied": pl.Int64,
                 "already_applied": pl.Int64, "conflict": pl.Int64,
                 "referenced_row_missing": pl.Int64, "skipped": pl.Int64,
                 "superseded": pl.Int64}
_OUTCOME_SCHEMA = {"seq": pl.Int64, "batch": pl.Int64, "table": pl.String, "op": pl.String,
                   "group": pl.String, "key": pl.String, "status": pl.String,
                   "detail": pl.String, "expected": pl.String, "current": pl.String}


@dataclass
class ApplyResult:
    """What an apply, revert or dry run did (or, for a dry run, would do)."""

    apply_id: str | None  # None for a dry run (nothing is recorded)
    kind: str  # apply | revert
    dry_run: bool
    status: str  # complete | partial | dry_run
    plan_id: str | None
    run_id: str | None
    batches: int
    outcomes: list[Outcome]
    seconds: float
    reverts_apply_id: str | None = None
    notes: list[str] = field(default_factory=list)
    # the database it ran on and why that one (None: built by hand, e.g. in a test)
    target: Target | None = None
    # a dry run: the guards --yes would trip (an apply with --yes refuses instead)
    guards: list[GuardTrip] = field(default_factory=list)

    @property
    def ops_planned(self) -> int:
        return len(self.outcomes)

    @property
    def ops_applied(self) -> int:
        """Applied (dry run: would be applied)."""
        return sum(o.status == APPLIED for o in self.outcomes)

    @property
    def ops_skipped(self) -> int:
        return self.ops_planned - self.ops_applied

    @property
    def needs_a_person(self) -> bool:
        """A real apply that skipped operations as conflicts or missing references."""
        return not self.dry_run and bool(self.count(CONFLICT) or self.count(REF_MISSING))

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def counts(self) -> pl.DataFrame:
        """Per (table, op): planned, applied (dry run: would apply), already_applied,
        conflict, referenced_row_missing and skipped (= planned − applied)."""
        acc: dict[tuple[str, str], dict[str, int]] = {}
        for o in self.outcomes:
            c = acc.setdefault((o.table, o.op), dict.fromkeys(
                ("planned", APPLIED, ALREADY, CONFLICT, REF_MISSING, SUPERSEDED), 0))
            c["planned"] += 1
            c[o.status] += 1
        rows = [(t, op, c["planned"], c[APPLIED], c[ALREADY], c[CONFLICT], c[REF_MISSING],
                 c["planned"] - c[APPLIED], c[SUPERSEDED]) for (t, op), c in sorted(acc.items())]
        return pl.DataFrame(rows, schema=_COUNT_SCHEMA, orient="row")

    def _frame(self, outcomes: list[Outcome]) -> pl.DataFrame:
        def js(v: Any) -> str | None:
            return None if v is None else json.dumps(v, sort_keys=True)

        rows = [(o.seq, o.batch, o.table, o.op, o.group, js(o.key), o.status, o.detail,
                 js(o.expected), js(o.current)) for o in outcomes]
        return pl.DataFrame(rows, schema=_OUTCOME_SCHEMA, orient="row")

    @property
    def skipped(self) -> pl.DataFrame:
        """Every operation not applied: seq, batch, table, op, group, key, status
        (already_applied | conflict | referenced_row_missing), detail, expected, current
        (JSON text)."""
        return self._frame([o for o in self.outcomes if o.status != APPLIED])

    @property
    def operations(self) -> pl.DataFrame:
        return self._frame(self.outcomes)


def snapshot_time(settings: Settings, run_id: str) -> dt.datetime | None:
    """The Zuora as-of time of the plan's snapshot (naive UTC): the earliest upper bound of
    its export windows (``now − lag`` of an incremental extract; its high-water marks), else
    its extract's start. Rows a targeted sync wrote after it hold values at least as new as
    the plan's, which skips them as superseded. None for a sync's own plan or a snapshot no
    longer on disk."""
    from core.snapshot import find_complete, parse_utc

    if run_id.startswith(SYNC_PREFIX):
        return None
    snap = find_complete(settings.data_dir, run_id)
    if snap is None:
        return None
    marks = [t for t in (parse_utc(v) for v in snap.manifest.hwms.values()) if t is not None]
    t = min(marks) if marks else parse_utc(snap.manifest.started_at)
    return t.astimezone(dt.UTC).replace(tzinfo=None) if t is not None else None


def new_apply_id(kind: str = "apply") -> str:
    prefix = "ap" if kind == "apply" else "rv"
    return f"{prefix}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _batch_size(settings: Settings, batch_size: int | None) -> int:
    n = settings.repair_batch_size if batch_size is None else batch_size
    if n < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {n}")
    return n


def _fraction(sess: Session, ops: list[Op] | dict[str, int], settings: Settings, force: bool,
              what: str) -> list[str]:
    """The change-fraction guard; ``ops``: the operations, or their updates + deletes per
    table already counted (a streamed plan's)."""
    changes: dict[str, int] = {}
    if isinstance(ops, dict):
        changes = dict(ops)
    for op in ops if isinstance(ops, list) else ():
        if op.op in ("update", "delete"):
            changes[op.table] = changes.get(op.table, 0) + 1
    try:
        rows = {t: sess.count_rows(t) for t in changes}
    except Exception as e:
        raise LocalDatabaseError(
            f"cannot count the rows of {', '.join(sorted(changes))} in the local database "
            f"({type(e).__name__}: {' '.join(str(e).split())}); is its schema created "
            "(`recon db init`)?") from e
    return check_fraction(changes, rows, settings.repair_max_change_fraction, force, what)


def _triggers(db: LocalDB, tables: set[str], settings: Settings, what: str) -> None:
    """Refuse (:class:`~repair.guards.ForeignTrigger`) when a table the operations write
    carries a trigger that is neither recon's guard nor in ``repair.allowed_triggers``."""
    check_triggers(triggers_on(db, tables), settings.repair_allowed_triggers, what)


def _target(db: LocalDB) -> DatabaseIdentity | None:
    try:
        return read_identity(db)
    except LocalDatabaseError:
        raise
    except Exception as e:
        raise LocalDatabaseError(
            f"cannot read the identity of the local database {redact_url(db.url)} "
            f"({type(e).__name__}: {' '.join(str(e).split())})") from e


def _apply_row(apply_id: str, kind: str, *, plan_id: str | None, run_id: str | None,
               plan_path: str | None, ops: int, status: str, message: str | None = None,
               reverts: str | None = None,
               target: DatabaseIdentity | None = None) -> dict[str, Any]:
    now = utc_now()
    return {"target_identity": json.dumps(target.as_dict(), sort_keys=True) if target else None,
            "apply_id": apply_id, "kind": kind, "reverts_apply_id": reverts, "plan_id": plan_id,
            "run_id": run_id, "plan_path": plan_path, "started_at": now,
            "finished_at": now if status != "running" else None, "status": status,
            "ops_planned": ops, "ops_applied": 0, "ops_skipped": 0, "dry_run": False,
            "host": socket.gethostname(), "pid": os.getpid(), "os_user": _user(),
            "message": message}


def _summary(outcomes: list[Outcome]) -> tuple[str, str | None]:
    conflicts = sum(o.status == CONFLICT for o in outcomes)
    missing = sum(o.status == REF_MISSING for o in outcomes)
    already = sum(o.status == ALREADY for o in outcomes)
    synced = sum(o.status == SUPERSEDED for o in outcomes)
    status = "partial" if conflicts or missing else "complete"
    parts = []
    if already:
        parts.append(f"{already} already applied")
    if synced:  # not a conflict: a newer apply or a sync wrote the row (listed per operation)
        parts.append(f"{synced} superseded by later applies or syncs")
    if conflicts:
        parts.append(f"{conflicts} skipped as conflicts")
    if missing:
        parts.append(f"{missing} skipped: referenced row missing")
    return status, ("; ".join(parts) or None)


def _execute(sess: Session, batches: list[list[Op]] | Iterable[list[list[Op]]], *,
             yes: bool, apply_id: str,
             row: dict[str, Any], progress: Progress, hooks: BatchHooks = NO_HOOKS,
             superseded_after: dt.datetime | None = None,
             note: str | None = None,
             writer: tuple[str, str] | None = None,
             plan_id: str | None = None,
             as_of: Callable[[str], dt.datetime | None] | None = None,
             ) -> tuple[str, list[Outcome]]:
    """Run the batches; with ``yes`` record running → complete/partial/failed. ``note``
    leads the audit row's message (who asked for the apply, e.g. a sync and its trigger);
    ``writer``: the (kind, ident) each batch's transaction is marked with."""

    def message(text: str | None) -> str | None:
        joined = "; ".join(t for t in (note, text) if t)
        return joined[:2000] if joined else None

    # ``batches``: one list of batches, or segments of them (a streamed plan's chunks), run
    # in order by one executor under one apply row
    segments: Iterable[list[list[Op]]] = (
        [batches] if isinstance(batches, list) else batches)

    def run(ex: Executor) -> list[Outcome]:
        for seg in segments:
            ex.later = later_values([op for b in seg for op in b])
            ex.run(seg)
        return ex.outcomes

    if not yes:
        return "dry_run", run(Executor(sess, dry_run=True, apply_id=None, progress=progress,
                                       superseded_after=superseded_after, plan_id=plan_id,
                                       as_of=as_of))
    stale = audit.mark_abandoned(sess)
    if stale and progress:
        progress(f"marked abandoned applies as failed: {', '.join(stale)}")
    audit.insert_apply(sess, row)
    ex = Executor(sess, dry_run=False, apply_id=apply_id, progress=progress,
                  hooks=hooks, superseded_after=superseded_after,
                  writer=writer or (row["kind"], apply_id), plan_id=plan_id, as_of=as_of)
    try:
        outcomes = run(ex)
    except BaseException as e:
        done = ex.outcomes
        msg = str(e) if isinstance(e, RepairFailed) else f"{type(e).__name__}: {e}"
        counts = (sum(o.status == APPLIED for o in done), sum(o.status != APPLIED for o in done))
        try:
            audit.finish_apply(sess, apply_id, "failed", *counts, message(msg))
        except Exception:  # noqa: BLE001 — the session died with the error (server restart)
            _finish_on_a_new_session(sess.db.url, apply_id, counts, message(msg) or "")
        raise
    status, summary = _summary(outcomes)
    audit.finish_apply(sess, apply_id, status, sum(o.status == APPLIED for o in outcomes),
                       sum(o.status != APPLIED for o in outcomes), message(summary))
    return status, outcomes


def _finish_on_a_new_session(url: str, apply_id: str, counts: tuple[int, int], msg: str,
                             wait_s: float = 10.0) -> bool:
    """Record ``failed`` for an apply whose own session is gone (e.g. PostgreSQL restarted
    under it), on a new connection, retrying while the server comes back. Best effort: if it
    never does, the next apply marks the row abandoned; the original error is what the caller
    raises either way."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with connect(url) as db:
                audit.finish_apply(Session(db), apply_id, "failed", *counts, msg)
            return True
        except Exception:  # noqa: BLE001 — best effort, see above
            if time.monotonic() > deadline:
                return False
            time.sleep(0.25)


def _checks(yes: bool, checks: list[Callable[[], list[str]]]) -> tuple[list[str],
                                                                        list[GuardTrip]]:
    """Run the guards: with ``yes`` the first refusal raises; a dry run runs every one and
    returns the trips ``--yes`` would refuse on, so a preview is always a preview. Returns
    the notes of guards ``--force`` let through, and the trips."""
    notes: list[str] = []
    trips: list[GuardTrip] = []
    for check in checks:
        try:
            notes += check() or []
        except RepairRefused as e:
            if yes:
                raise
            trips.append(GuardTrip.of(e))
    return notes, trips


def _as_of(settings: Settings) -> Callable[[str], dt.datetime | None]:
    """run id → its snapshot's as-of time (cached; None: unknown or gone)."""
    cache: dict[str, dt.datetime | None] = {}

    def get(run_id: str) -> dt.datetime | None:
        if run_id not in cache:
            try:
                cache[run_id] = snapshot_time(settings, run_id)
            except Exception:  # noqa: BLE001 — an unreadable old manifest: unknown
                cache[run_id] = None
        return cache[run_id]
    return get


def apply_plan(plan_path: str | Path, settings: Settings, *, yes: bool = False,
               batch_size: int | None = None, force: bool = False, progress: Progress = None,
               now: dt.datetime | None = None, hooks: BatchHooks = NO_HOOKS,
               note: str | None = None, db: str | None = None) -> ApplyResult:
    """Apply a repair plan to the local database (``yes=False``: dry run, writes nothing).
    ``db``: the target URL (``--db``); else the plan's own DuckDB file, else
    ``local.database_url`` (:mod:`repair.target`). ``note``: leads the audit row's message
    (``recon repair history``): who asked for it. A version 3 plan is streamed: one chunk
    file's operations in memory at a time.

    A dry run is a preview: the target's identity is checked (a refusal raises), but the
    other guards are only listed (``ApplyResult.guards``) with what ``--yes`` would say."""
    t0 = time.monotonic()
    plan = require_applicable(open_plan(plan_path))
    verify_chunks(plan)
    size = _batch_size(settings, batch_size)
    apply_id = new_apply_id("apply")
    target = resolve(settings, db, plan.local_identity)
    url = target.url
    path = str(Path(plan_path).resolve())
    changes: dict[str, int] = {}
    written: set[str] = set()
    n_ops = 0
    for frame in chunk_columns(plan, ["table", "op"]):
        n_ops += frame.height
        written.update(frame["table"].unique().to_list())
        for table, n in frame.filter(pl.col("op").is_in(["update", "delete"])).group_by(
                "table").len().iter_rows():
            changes[table] = changes.get(table, 0) + n
    counted = {"batches": 0}

    def segments() -> Iterator[list[list[Op]]]:
        for ops in iter_chunks(plan):
            seg = make_batches(ops, size)
            counted["batches"] += len(seg)
            yield seg
    require_target(target, plan.local_identity)
    with RepairLock(url, apply_id, "apply"), connect(url) as conn:
        ident = _target(conn)
        what = f"{'' if yes else 'a dry run of '}plan {plan.plan_id} (snapshot {plan.run_id})"
        check_target(plan.local_identity, ident, what, target.describe())
        sess = Session(conn)
        audit.ensure_tables(sess)
        try:
            notes, trips = _checks(yes, [
                lambda: check_plan(plan, settings, now),
                lambda: _triggers(conn, written, settings, f"plan {plan.plan_id}"),
                lambda: _fraction(sess, changes, settings, force, f"plan {plan.plan_id}")])
        except RepairRefused as e:
            audit.insert_apply(sess, _apply_row(
                apply_id, "apply", plan_id=plan.plan_id, run_id=plan.run_id,
                plan_path=path, ops=n_ops, status="refused",
                message=str(e)[:2000], target=ident))
            raise
        if progress:
            for n in notes:
                progress(n)
            for t in trips:
                progress(f"--yes would refuse ({t.guard}): {t.message}")
            progress(f"{'applying' if yes else 'dry run of'} plan {plan.plan_id}: "
                     f"{n_ops} operations in {len(plan.chunks or [None])} chunk(s), batches "
                     f"of up to {size}")
        row = _apply_row(apply_id, "apply", plan_id=plan.plan_id, run_id=plan.run_id,
                         plan_path=path, ops=n_ops, status="running", target=ident)
        status, outcomes = _execute(sess, segments(), yes=yes, apply_id=apply_id, row=row,
                                    progress=progress, hooks=hooks,
                                    superseded_after=snapshot_time(settings, plan.run_id),
                                    note=note, plan_id=plan.plan_id, as_of=_as_of(settings))
    return ApplyResult(apply_id=apply_id if yes else None, kind="apply", dry_run=not yes,
                       status=status, plan_id=plan.plan_id, run_id=plan.run_id,
                       batches=counted["batches"], outcomes=outcomes,
                       seconds=time.monotonic() - t0, notes=notes, target=target,
                       guards=trips)


def revert_ops(rows: pl.DataFrame) -> list[Op]:
    """The operations that undo an apply, from its audit rows, in reverse order: an inserted
    row is deleted (if it still equals the after image), an updated row is set back to its
    before image (if it still equals the after image), a deleted row is re-inserted from its
    full before image, same id (if absent). One group per original batch."""
    ops: list[Op] = []
    for i, r in enumerate(rows.sort("seq", descending=True).iter_rows(named=True), 1):
        table = r["table_name"]
        types = column_types(table)
        pk = primary_key(table)

        def img(text: str | None, types: dict[str, str] = types) -> dict[str, Any] | None:
            if text is None:
                return None
            return {c: decode(v, types[c]) for c, v in json.loads(text).items() if c in types}

        before, after = img(r["before"]), img(r["after"])
        common = {"seq": i, "step": "catalog", "group": f"batch-{r['batch']}", "table": table,
                  "reason": f"revert {r['apply_id']} seq {r['seq']}"}
        if r["op"] == "insert":
            assert after is not None
            ops.append(Op(op="delete", key={pk: after[pk]}, before=after, after=None, **common))
        elif r["op"] == "update":
            assert before is not None and after is not None
            diff = {c: v for c, v in before.items() if after.get(c) != v}
            if diff:
                ops.append(Op(op="update", key={pk: before[pk]}, before=after, after=diff,
                              **common))
        else:
            assert before is not None
            ops.append(Op(op="insert", key={pk: before[pk]}, before=None, after=before,
                          **common))
    return ops


def revert_apply(apply_id: str, settings: Settings, *, yes: bool = False, force: bool = False,
                 progress: Progress = None, batch_size: int | None = None,
                 hooks: BatchHooks = NO_HOOKS, db: str | None = None) -> ApplyResult:
    """Undo an apply from its audit (``yes=False``: dry run). Rows changed since the apply are
    skipped and reported, never overwritten. ``db``: the database holding the apply (``--db``;
    default ``local.database_url``)."""
    t0 = time.monotonic()
    size = _batch_size(settings, batch_size)
    rid = new_apply_id("revert")
    where = resolve(settings, db)
    url = where.url
    require_target(where)
    with RepairLock(url, rid, "revert"), connect(url) as db:
        target = _target(db)
        what = f"{'' if yes else 'a dry run of '}reverting {apply_id}"
        # refuses an unstamped target
        check_target(target, target, what, where.describe())
        sess = Session(db)
        audit.ensure_tables(sess)
        apply_id = _sync_apply(sess, apply_id)
        orig = audit.get_apply(sess, apply_id)
        if orig is None:
            raise ApplyNotFound(f"no apply {apply_id!r} in {audit.APPLIES} of the local "
                                f"database {where.describe()}; `recon repair history` lists "
                                "the applies of a database (--db URL for another one)")
        notes: list[str] = []
        if orig["target_identity"]:  # the database the apply wrote (a copy has the audit too)
            check_target(DatabaseIdentity.from_dict(json.loads(orig["target_identity"])),
                         target, what, where.describe())
        else:
            notes.append(f"{apply_id} was recorded before applies named their database; "
                         "reverting it from this database's own audit")
        rows = audit.read_audit(sess, apply_id)
        ops = revert_ops(rows)
        batches = make_batches(ops, size)
        # a targeted sync's apply was bounded by sync.max_rows_per_key, not by a table
        # fraction (one key of a small table is a large fraction): undoing it is too; a
        # backfill chunk's only inserted rows (filling an empty table is its purpose), so
        # undoing it deletes just those
        by_sync = (str(orig["run_id"] or "").startswith(SYNC_PREFIX)
                   or str(orig["plan_id"] or "").startswith(BACKFILL_PREFIX))
        try:
            over, trips = _checks(yes, [
                lambda: _triggers(db, {op.table for op in ops}, settings, what),
                lambda: _fraction(sess, ops, settings, force or by_sync,
                                  f"reverting {apply_id}")])
            notes += over if force or not by_sync else []
        except RepairRefused as e:
            audit.insert_apply(sess, _apply_row(
                rid, "revert", plan_id=orig["plan_id"], run_id=orig["run_id"],
                plan_path=orig["plan_path"], ops=len(ops), status="refused",
                message=str(e)[:2000], reverts=apply_id, target=target))
            raise
        if progress:
            for n in notes:
                progress(n)
            for t in trips:
                progress(f"--yes would refuse ({t.guard}): {t.message}")
            progress(f"{'reverting' if yes else 'dry run of reverting'} {apply_id}: "
                     f"{len(ops)} operations in {len(batches)} batches")
        row = _apply_row(rid, "revert", plan_id=orig["plan_id"], run_id=orig["run_id"],
                         plan_path=orig["plan_path"], ops=len(ops), status="running",
                         reverts=apply_id, target=target)
        status, outcomes = _execute(sess, batches, yes=yes, apply_id=rid, row=row,
                                    progress=progress, hooks=hooks)
    return ApplyResult(apply_id=rid if yes else None, kind="revert", dry_run=not yes,
                       status=status, plan_id=orig["plan_id"], run_id=orig["run_id"],
                       batches=len(batches), outcomes=outcomes,
                       seconds=time.monotonic() - t0, reverts_apply_id=apply_id, notes=notes,
                       target=where, guards=trips)


SYNC_PREFIX = "sync-"  # sync.model.new_sync_id: a targeted sync's apply has it as run_id
# repair.backfill: a backfill's id, and the plan id of each chunk's apply ("bf-…/chunk-00003")
BACKFILL_PREFIX = "bf-"


def _sync_apply(sess: Session, apply_id: str) -> str:
    """``recon repair revert SYNC_ID``: the apply a targeted sync made (its run id is the
    sync id); any other id is returned as given."""
    if not apply_id.startswith(SYNC_PREFIX) or not sess.table_exists(audit.APPLIES):
        return apply_id
    rows = sess.rows(f"SELECT apply_id FROM {audit.APPLIES} WHERE run_id = {sess.ph} AND "
                     "kind = 'apply' ORDER BY started_at DESC", [apply_id])
    return rows[0][0] if rows else apply_id


def list_applies(settings: Settings, db: str | None = None) -> pl.DataFrame:
    """Every apply and revert recorded in the local database (``db``: ``--db``, default
    ``local.database_url``), oldest first. A DuckDB file that does not exist holds none (and
    is not created)."""
    url = resolve(settings, db).url
    path = database_file(url)
    if path is not None and not path.exists():
        return audit.list_applies_empty()
    with connect(url) as conn:
        return audit.list_applies(Session(conn))

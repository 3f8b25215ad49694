"""``sync_keys``: one targeted sync, through the nightly's own stages.

A sync is the nightly on a keyed dataset, not a second implementation of it:

1. read the keys' Zuora records and the local rows the rules need (:mod:`sync.subtree`);
   a key Zuora does not return is read a second time before it counts as gone;
2. refuse a bad record (the contracts of :mod:`expectations.contracts`, the extractor's
   parse rules) with :class:`~sync.model.SyncBadRecord`, and a subtree larger than
   ``sync.max_rows_per_key`` rows per key, before anything is written;
3. write them as a complete snapshot of a small data directory of its own,
   ``DATA/syncs/<sync_id>/`` (``snapshots/<sync_id>/`` in the snapshot format), and reconcile
   it with :func:`reconcile.engine.reconcile_snapshot` — the same diff, normalisation,
   annotation and rules — as a *keyed* reconcile (``keyed=True``: no history in any state,
   so a sync is never a run in ``recon runs`` or the nightly's history; objects and fields
   without rows or findings skipped, which cannot change a finding:
   ``tests/sync/test_keyed.py``);
4. keep the findings about the keys' subtree (:func:`subject`), plan them with
   :func:`repair.planner.build_plan` (the same repair steps, in the reconcile's own DuckDB
   connection: the snapshot is opened once) and apply the plan with
   :func:`repair.apply.apply_plan` (the same executor, optimistic concurrency and audit;
   the table-fraction guard does not fit one key and is passed, the row cap replaces it);
   the apply's audit row names the sync and its trigger.

Around it: more than ``sync.batch_threshold`` keys are read with one incremental export
instead of per-key queries (:meth:`sync.subtree.Reader.export_current`); a sync that finds
the repair lock held (the nightly applying) waits for it and reads everything again, so it
never plans from values older than what that apply committed; every failure is typed —
:class:`~sync.model.SyncError`, :class:`~sync.model.SyncTransient` (retry later) or
:class:`~sync.model.SyncBadRecord` (dead-letter).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from core.catalog import OBJECTS
from core.catalog.events import ACCOUNT_OBJECTS, CATALOG_OBJECTS, SUBSCRIPTION_OBJECTS
from core.config import Settings
from core.errors import LocalDatabaseError, ReconError, TransientError
from core.inbox import shared_budget
from core.layout import DRIFT_FILE, PLAN_FILE, DataLayout
from core.localdb.connect import connect, require_exists
from core.snapshot import Manifest, SnapshotWriter, utc_iso
from extract.client import RetryPolicy, ZuoraClient, ZuoraError
from sync.model import (
    SYNC_LEFT,
    SYNC_OK,
    Change,
    Leftover,
    SyncBadRecord,
    SyncError,
    SyncRequest,
    SyncResult,
    SyncTransient,
    new_sync_id,
)
from sync.subtree import (
    CATALOG,
    STORM_OBJECTS,
    LocalSide,
    Reader,
    ZuoraSide,
    read_local,
)

SYNCS = "syncs"
Progress = Callable[[str], None]


def sync_dir(data_dir: Path | str, sync_id: str) -> Path:
    """``DATA/syncs/<sync_id>/``: the sync's keyed snapshot, drift and plan."""
    return Path(data_dir) / SYNCS / sync_id


def prune_syncs(data_dir: Path | str, older_than: dt.timedelta) -> list[str]:
    """Remove the keyed datasets of syncs older than ``older_than`` (by the time in their
    id); returns the sync ids removed. What a sync changed stays in the local database's
    audit: the dataset only explains how it was decided."""
    root = Path(data_dir) / SYNCS
    if not root.is_dir():
        return []
    cutoff = dt.datetime.now(dt.UTC) - older_than
    gone = []
    for d in sorted(root.iterdir()):
        try:
            when = dt.datetime.strptime(d.name.split("-")[1], "%Y%m%dT%H%M%SZ").replace(
                tzinfo=dt.UTC)
        except (IndexError, ValueError):
            continue  # not a sync's directory: never ours to remove
        if when < cutoff:
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d.name)
    return gone


@dataclass
class _Read:
    zuora: ZuoraSide
    local: LocalSide
    found: dict[str, str | None]  # key → Zuora id (None: Zuora does not return it)
    as_of: dt.datetime


# -- reading ---------------------------------------------------------------------------------
def _read_zuora(reader: Reader, req: SyncRequest, keys: tuple[str, ...]) -> tuple[
        ZuoraSide, dict[str, str | None]]:
    side = ZuoraSide()
    if req.object == "account":
        found = reader.accounts(side, keys)
    elif req.object == "contact":
        found = reader.contacts(side, keys)
    elif req.object == "subscription":
        found = reader.subscriptions(side, keys)
    else:
        found = reader.catalog(side, keys or None)
    return side, found


def _storm(settings: Settings, req: SyncRequest, reader: Reader, sync_id: str,
           say: Progress) -> None:
    """More than ``sync.batch_threshold`` keys of one object: read the object (and its
    subtree) with one incremental export merged onto the latest complete snapshot instead
    of per-key queries. Without such a snapshot the keys are read one query per 50."""
    from core.snapshot import latest_complete

    objects = STORM_OBJECTS.get(req.object)
    if objects is None or len(req.keys) <= settings.sync_batch_threshold:
        return
    base = latest_complete(settings.data_dir)
    if base is None:
        say(f"{sync_id}: {len(req.keys)} keys but no complete snapshot to build an "
            "incremental export on: reading them by key")
        return
    work = sync_dir(settings.data_dir, sync_id) / "export"
    rows = reader.export_current(objects, base, work, f"recon-{sync_id}", say)
    say(f"{sync_id}: {len(req.keys)} keys > sync.batch_threshold "
        f"({settings.sync_batch_threshold}): one incremental export of "
        f"{', '.join(objects)} onto {base.run_id} ({rows} rows changed)")


def _read(settings: Settings, req: SyncRequest, client: ZuoraClient, sync_id: str = "",
          say: Progress = lambda _m: None) -> _Read:
    reader = Reader(client, settings.tenant_tz)
    _storm(settings, req, reader, sync_id, say)
    side, found = _read_zuora(reader, req, req.keys)
    gone = tuple(k for k, v in found.items() if v is None)
    if gone:  # a key Zuora does not return: read it once more (by key) before believing it
        reader = Reader(client, settings.tenant_tz)
        again, found2 = _read_zuora(reader, req, gone)
        for obj, frame in again.frames.items():
            side.add(obj, frame)
        side.requests += again.requests
        found.update({k: v for k, v in found2.items() if v is not None})
    as_of = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
    kw: dict = {}
    if req.object == "subscription":
        kw["names"] = req.keys
    elif req.object == "account":
        kw["accounts"] = [v or k for k, v in found.items()]
    elif req.object == "contact":
        kw["contacts"] = req.keys
    else:
        kw["catalog"] = req.keys or "*"
    try:
        require_exists(settings.local_database_url)
        with connect(settings.local_database_url) as db:
            local = read_local(db, side, **kw)
    except ReconError:
        raise  # typed already: sync_keys maps it to SyncError or SyncTransient
    except Exception as e:
        raise SyncTransient(f"cannot read the local rows of {req.object} "
                            f"{', '.join(req.keys) or '(whole catalog)'}: {type(e).__name__}: "
                            f"{' '.join(str(e).split())[:300]}") from e
    return _Read(side, local, found, as_of)


# -- guards ----------------------------------------------------------------------------------
def _check_records(read: _Read) -> None:
    """A record that breaks a contract or does not parse: refuse the sync, naming it."""
    from expectations.contracts import contract, row_failures

    rej = read.zuora.rejects
    if rej.height:
        r = rej.row(0, named=True)
        raise SyncBadRecord(
            f"Zuora's {r['object']} {r['key']} breaks the rule {r['rule']} on {r['field']} "
            f"(value {str(r['value'])[:80]!r}); nothing was written — fix the record in Zuora"
            + (f" ({rej.height - 1} more bad values)" if rej.height > 1 else ""))
    for spec in OBJECTS:
        frame = read.zuora.frames[spec.name]
        if not frame.height:
            continue
        bad = row_failures(contract("zuora", spec.name), frame)
        if bad.height:
            r = bad.row(0, named=True)
            raise SyncBadRecord(
                f"Zuora's {spec.name} {r['key']} breaks the contract rule {r['rule']} on "
                f"{r['column']} (value {str(r['value'])[:80]!r}); nothing was written — fix "
                "the record in Zuora" + (f" ({bad.height - 1} more failures)"
                                         if bad.height > 1 else ""))


def _check_cap(settings: Settings, req: SyncRequest, read: _Read) -> None:
    """``sync.max_rows_per_key``: a sync may rewrite its key's whole subtree, never more
    than this many rows per key (Zuora's and the local side's together)."""
    cap = settings.sync_max_rows_per_key
    if req.object == "subscription":
        sizes = _subtree_sizes(read, "Subscription", "Name")
    elif req.object == "catalog" and not req.keys:
        sizes = {"(whole catalog)": sum(read.zuora.frames[o].height for o in CATALOG)}
    elif req.object == "catalog":
        sizes = _subtree_sizes(read, "Product", "Id")
    else:  # accounts and contacts: a row or three each, no subtree below them
        total = read.zuora.rows + read.local.rows
        sizes = {k: -(-total // max(1, len(req.keys))) for k in req.keys}
    big = {k: n for k, n in sizes.items() if n > cap}
    if big:
        k, n = max(big.items(), key=lambda kv: kv[1])
        raise SyncError(
            f"refusing to sync {req.object} {k}: its subtree holds {n:,} rows (Zuora and "
            f"local), more than sync.max_rows_per_key ({cap:,}); the nightly reconciles it "
            "(or raise RECON_SYNC_MAX_ROWS_PER_KEY)"
            + (f"; {len(big) - 1} more key(s) over the cap" if len(big) > 1 else ""))


def _subtree_sizes(read: _Read, root: str, key_field: str) -> dict[str, int]:
    """Rows per key of ``root`` (a subscription by Name: all its versions; a product by Id)
    over the root and every object whose catalogue parent chain (``ObjectSpec.parent``) leads
    to it, Zuora's rows and the local side's together. Context the sync also reads (accounts,
    the catalog behind a subscription) is not the key's to rewrite and is not counted."""
    by_name = {spec.name: spec for spec in OBJECTS}

    def rows(spec_name: str, ref: str) -> pl.DataFrame:
        """(id, ref) of one object's rows on both sides, ``ref`` a field of it."""
        spec = by_name[spec_name]
        parts = []
        z = read.zuora.frames.get(spec_name)
        if z is not None and z.height:
            parts.append(z.select(pl.col("Id").cast(pl.String).alias("id"),
                                  pl.col(ref).cast(pl.String).alias("ref")))
        col = spec.field(ref).column
        if spec.table in read.local.tables and col is not None:
            lo = read.local.frame(spec.table)
            if lo.height:
                parts.append(lo.select(pl.col(spec.key_column).cast(pl.String).alias("id"),
                                       pl.col(col).cast(pl.String).alias("ref")))
        return (pl.concat(parts) if parts
                else pl.DataFrame(schema={"id": pl.String, "ref": pl.String}))

    top = rows(root, key_field).rename({"ref": "key"})
    counted = [top.select("key")]
    owner = {root: top.unique(subset="id", keep="first")}
    for spec in OBJECTS:  # parents are declared before their children
        if spec.parent is None or spec.parent[1] not in owner:
            continue
        parent_field, parent = spec.parent
        hit = rows(spec.name, parent_field).join(owner[parent].rename({"id": "ref"}),
                                                 on="ref", how="inner")
        counted.append(hit.select("key"))
        owner[spec.name] = hit.select("id", "key").unique(subset="id", keep="first")
    sizes = pl.concat(counted).drop_nulls().group_by("key").len()
    return dict(zip(sizes["key"].to_list(), sizes["len"].to_list(), strict=True))


def _check_catalog_shrink(settings: Settings, req: SyncRequest, read: _Read) -> None:
    """A catalog sync must not turn a short or broken answer into mass deletions: per table,
    rows Zuora no longer returns may be at most ``sync.catalog_max_shrink`` of the local
    rows, with ``sync.catalog_min_rows`` as the floor for small tables."""
    if req.object != "catalog":
        return
    from core.catalog import BY_NAME

    for obj in CATALOG:
        spec = BY_NAME[obj]
        local = read.local.frame(spec.table)
        have = set(read.zuora.frames[obj]["Id"].to_list())
        gone = [k for k in local[spec.key_column].to_list() if k not in have]
        limit = max(settings.sync_catalog_min_rows,
                    int(settings.sync_catalog_max_shrink * local.height))
        if len(gone) > limit:
            raise SyncError(
                f"refusing the catalog sync: Zuora no longer returns {len(gone):,} of the "
                f"{local.height:,} local {spec.table} rows, more than the limit of {limit:,} "
                "(sync.catalog_max_shrink of the table, at least sync.catalog_min_rows); a "
                "catalog does not shrink like that — check Zuora, then run the catalog job")


# -- the keyed snapshot ----------------------------------------------------------------------
def _write_snapshot(root: Path, sync_id: str, req: SyncRequest, read: _Read,
                    settings: Settings) -> Path:
    scope = "catalog" if req.object == "catalog" else "all"
    w = SnapshotWriter(root, sync_id, durable=False)
    m = Manifest(run_id=sync_id, mode="full", requested_mode="sync",
                 started_at=utc_iso(read.as_of), tenant_tz=settings.tenant_tz, scope=scope,
                 note=f"targeted sync of {req.object} {' '.join(req.keys) or '*'} "
                      f"({req.trigger})")
    ident = read.local.identity
    m.local_identity = ident.as_dict() if ident is not None else None  # type: ignore[attr-defined]
    for obj, frame in read.zuora.frames.items():
        m.zuora[obj] = {"rows": frame.height, "file": f"zuora/{obj}.parquet", "window": "keys"}
    for table, t in read.local.tables.items():
        m.local[table] = {"rows": t.num_rows, "file": f"local/{table}.parquet"}
    # forty-odd small files: written side by side (the encoders release the GIL), as the
    # reconcile's first step waits on them
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = [pool.submit(frame.write_parquet, w.path("zuora", obj))
                for obj, frame in read.zuora.frames.items()]
        done += [pool.submit(pq.write_table, t, w.path("local", table))
                 for table, t in read.local.tables.items()]
        for f in done:
            f.result()
    m.finished_at = utc_iso(dt.datetime.now(dt.UTC))
    return w.complete(m)


# the objects (catalogue objects, local tables) a sync's findings can be about, per sync
# object — what the catalogue says each sync covers (core.catalog.events), and for a
# subscription also the accounts created with it (see subject). :func:`subject` keeps no
# other, so the reconcile computes no other (``reconcile_snapshot(about=...)``)
SUBJECT_OBJECTS: dict[str, frozenset[str]] = {
    "contact": frozenset({"Contact"}),
    "account": frozenset(ACCOUNT_OBJECTS),
    "subscription": frozenset(SUBSCRIPTION_OBJECTS + ACCOUNT_OBJECTS),
    "catalog": frozenset(CATALOG_OBJECTS),
}


def _account_subject(accts: list[str], read: _Read) -> pl.Expr:
    """Findings about accounts ``accts``: the account, its contacts (Zuora's Bill-To and
    Sold-To and the local ones of the account), its customers and memberships."""
    obj, key = pl.col("object"), pl.col("key")
    acc = read.zuora.frames["Account"].filter(pl.col("Id").is_in(accts))
    contacts = ([v for c in ("BillToId", "SoldToId") for v in acc[c].to_list() if v]
                + read.local.frame("billing_account_contacts").filter(
                    pl.col("zuora_account_id").is_in(accts))["zuora_contact_id"].to_list())
    return (((obj == "Account") & key.is_in(accts))
            | ((obj == "Contact") & key.is_in(contacts))
            | (obj.is_in(["customers", "billing_account_memberships"])
               & pl.col("account_id").is_in(accts)))


def subject(req: SyncRequest, read: _Read) -> pl.Expr:
    """Which findings are the sync's: about its keys and their subtree, and only about
    :data:`SUBJECT_OBJECTS`. The context the rules needed (other accounts, catalog rows,
    other orders) is the nightly's business."""
    return pl.col("object").is_in(sorted(SUBJECT_OBJECTS[req.object])) & _subject(req, read)


def _subject(req: SyncRequest, read: _Read) -> pl.Expr:
    keys = list(req.keys)
    obj, key = pl.col("object"), pl.col("key")
    if req.object == "subscription":
        # an account of theirs the local copy lacks is created with them (its contacts and
        # Sold-To customer too): the order needs its billing account
        have = set(read.local.frame("billing_accounts")["zuora_account_id"].to_list())
        subs = read.zuora.frames["Subscription"]
        new = sorted({a for c in ("AccountId", "InvoiceOwnerId") for a in subs[c].to_list()
                      if a and a not in have})
        return (pl.col("subscription_name").is_in(keys)
                | ((obj == "orders") & key.is_in(keys))
                | ((obj == "Subscription") & key.is_in(read.zuora.ids("Subscription")))
                | _account_subject(new, read))
    if req.object == "account":
        accts = [v for v in read.found.values() if v] + [k for k, v in read.found.items()
                                                         if v is None]
        return _account_subject(accts, read)
    if req.object == "contact":
        return (obj == "Contact") & key.is_in(keys)
    if not keys:
        return obj.is_in(list(CATALOG))
    ids = set(keys)
    for obj_name in CATALOG:
        ids |= set(read.zuora.ids(obj_name))
    from core.catalog import BY_NAME

    for obj_name in CATALOG:  # local rows of the products' subtrees Zuora lost
        spec = BY_NAME[obj_name]
        ids |= set(read.local.frame(spec.table)[spec.key_column].to_list())
    return obj.is_in(list(CATALOG)) & key.is_in(sorted(ids))


# -- the sync --------------------------------------------------------------------------------
LOCK_WAIT_S = 120.0  # how long a sync waits for a running apply before "retry later"
LOCK_POLL_S = 0.1


class _Busy(Exception):  # noqa: N818 - a signal between the attempt and its loop
    """Another apply holds the repair lock: nothing was written; read again when it ends."""


def sync_keys(settings: Settings, request: SyncRequest, *, client: ZuoraClient | None = None,
              progress: Progress | None = None, keep: bool = True,
              lock_wait_s: float = LOCK_WAIT_S) -> SyncResult:
    """Sync ``request``'s keys (see the module doc). Raises :class:`SyncError` (could not
    sync: exit 2), :class:`SyncTransient` (retry later) or :class:`SyncBadRecord` (a record
    Zuora returned breaks a contract: nothing written). ``keep=False`` removes the keyed
    snapshot afterwards (the audit in the local database is the record of what changed).

    When an apply (the nightly's) holds the repair lock, the sync waits for it to end and
    then reads Zuora and the local rows AGAIN before planning: what it read before may be
    older than what that apply committed, and a sync never writes an older value over a
    newer one (up to ``lock_wait_s``; then :class:`SyncTransient`)."""
    say = progress or (lambda _m: None)
    started = dt.datetime.now(dt.UTC)
    sync_id = new_sync_id(started)
    own = client is None
    budget = None
    if client is None:
        if not settings.zuora_client_secret:
            raise SyncError("no Zuora client secret configured: set zuora.client_secret (or "
                            "RECON_ZUORA_CLIENT_SECRET)")
        # the request budget the callout workers and the nightly share, where callouts are
        # received (an inbox exists); a tenant without callouts gets no new store
        budget = shared_budget(settings)
        client = ZuoraClient.from_settings(settings, track_id=sync_id,
                                           policy=RetryPolicy(attempts=4, backoff_cap=10.0),
                                           budget=budget)
    deadline = time.monotonic() + lock_wait_s
    try:
        while True:
            root = sync_dir(settings.data_dir, sync_id)
            try:
                return _attempt(settings, request, client, sync_id, started, say)
            except SyncError:
                raise
            except ReconError as e:  # a stage below refused (typed): say which sync
                cls = SyncTransient if isinstance(e, TransientError) else SyncError
                raise cls(f"{sync_id} ({request.object} "
                          f"{' '.join(request.keys) or '*'}): {e}") from e
            except _Busy as e:
                if time.monotonic() > deadline:
                    raise SyncTransient(f"{sync_id}: another repair held the lock for more "
                                        f"than {lock_wait_s:g}s ({e}); retry later") from None
                say(f"{sync_id}: waiting for the repair lock ({e}); the sync reads again "
                    "once it is free")
                shutil.rmtree(root, ignore_errors=True)
                _wait_for_lock(settings, deadline)
            finally:
                if not keep:
                    shutil.rmtree(root, ignore_errors=True)
    finally:
        if own:
            client.close()
        if budget is not None:
            budget.backend.close()


def warm_up() -> None:
    """Do once what a process's first sync would pay for on top of its own work (1.5–2 s on
    2 busy cores): import the stages (they import lazily, so ``recon --help`` stays quick),
    the contracts' models (pandera, and pandas that Arrow also loads for the local rows)
    and DuckDB. A long-lived worker calls this when it starts."""
    import duckdb
    import pandas  # noqa: F401  (what pyarrow loads at the first local rows it converts)

    import reconcile.engine  # noqa: F401
    import repair.apply  # noqa: F401
    import repair.plan  # noqa: F401
    import repair.planner  # noqa: F401
    from core.snapshot import open_snapshot  # noqa: F401
    from expectations.contracts import contracts

    contracts()  # built once per process (cached)
    duckdb.connect().close()


def _wait_for_lock(settings: Settings, deadline: float) -> None:
    """Poll the repair lock (without holding it) until it is free or the deadline passes."""
    from repair.guards import LockHeld
    from repair.lock import RepairLock

    while time.monotonic() < deadline:
        try:
            with RepairLock(settings.local_database_url, "sync-probe", "apply"):
                return
        except LockHeld:
            time.sleep(LOCK_POLL_S)


def _attempt(settings: Settings, request: SyncRequest, client: ZuoraClient, sync_id: str,
             started: dt.datetime, say: Progress) -> SyncResult:
    from reconcile.engine import open_for_reconcile, reconcile_snapshot
    from repair.apply import apply_plan
    from repair.executor import CONFLICT
    from repair.guards import LockHeld, RepairRefused
    from repair.plan import write_plan
    from repair.planner import build_plan

    try:
        read = _read(settings, request, client, sync_id, say)
    except ZuoraError as e:
        if isinstance(e, TransientError):
            raise SyncTransient(f"reading {request.object} from Zuora failed for the "
                                f"moment: {e}") from e
        raise SyncError(f"reading {request.object} from Zuora failed: {e}") from e
    say(f"{sync_id}: read {read.zuora.rows} Zuora records ({read.zuora.requests} requests), "
        f"{read.local.rows} local rows")
    _check_records(read)
    _check_cap(settings, request, read)
    _check_catalog_shrink(settings, request, read)

    root = sync_dir(settings.data_dir, sync_id)
    snap_path = _write_snapshot(root, sync_id, request, read, settings)
    from core.snapshot import open_snapshot

    snap = open_snapshot(snap_path)
    # one connection for the reconciliation and the plan: opening the snapshot is a good
    # part of a sync's time, and the plan reads the same views
    # in the process's shared single-threaded DuckDB instance: a keyed snapshot is a few
    # rows, and a new instance would cost as much as the reconcile
    db = open_for_reconcile(snap, root, shared=True)
    try:
        result = reconcile_snapshot(snap, root, grace_hours=0.0, keyed=True, db=db,
                                    about=SUBJECT_OBJECTS[request.object])
        # the plan reads the run's drift file: only the sync's findings stay in it
        result.drift.filter(subject(request, read)).write_parquet(
            DataLayout(root).run_dir(sync_id) / DRIFT_FILE)
        plan = build_plan(root, sync_id, local_database_url=settings.local_database_url,
                          db=db)
    finally:
        db.close()
    plan_path = write_plan(plan, DataLayout(root).run_dir(sync_id) / PLAN_FILE)
    leftovers = [Leftover("human", p.object, p.key, p.rule, p.field, p.explanation)
                 for p in plan.needs_a_person]
    leftovers += [Leftover("skipped", u.object, u.key, u.rule, u.field,
                           f"no repair operation for this finding: {u.explanation}")
                  for u in plan.not_planned]
    ops = {op.seq: op for op in plan.operations}
    changes: list[Change] = []
    apply_id = None
    if request.dry_run:
        changes = [Change(op.table, op.op, _plain(op.key), _columns(op.op, op.after),
                          op.reason) for op in plan.operations]
    elif plan.operations:
        try:
            # the audit row names the sync and what triggered it (``manual`` or the callout
            # ids), in the message ``recon repair history`` shows; its run_id is the sync id
            res = apply_plan(plan_path, settings, yes=True, force=True,
                             note=f"sync {sync_id}: {request.object} "
                                  f"{' '.join(request.keys) or '*'}; trigger {request.trigger}")
        except LockHeld as e:
            raise _Busy(str(e)) from e
        except RepairRefused as e:
            raise SyncError(f"{sync_id}: the repair was refused: {e}") from e
        except LocalDatabaseError as e:
            raise SyncTransient(f"{sync_id}: the local database failed: {e}") from e
        for o in res.outcomes:
            op = ops[o.seq]
            if o.status == "applied":
                changes.append(Change(o.table, o.op, _plain(o.key),
                                      _columns(o.op, op.after), op.reason))
            elif o.status != "already_applied":
                leftovers.append(Leftover(
                    "conflict" if o.status == CONFLICT else "skipped", o.table,
                    json.dumps(_plain(o.key), sort_keys=True, default=str), None, None,
                    f"{o.op} skipped ({o.status}): {o.detail}"))
        apply_id = res.apply_id
    missing = tuple(k for k, v in read.found.items() if v is None)
    code = SYNC_OK if request.dry_run or not leftovers else SYNC_LEFT
    return SyncResult(
        sync_id=sync_id, object=request.object, keys=request.keys, trigger=request.trigger,
        dry_run=request.dry_run, started_at=started, finished_at=dt.datetime.now(dt.UTC),
        exit_code=code, changes=tuple(changes), leftovers=tuple(leftovers), missing=missing,
        apply_id=apply_id,
        resolved=tuple((k, v) for k, v in read.found.items() if v and v != k))


def _plain(key: dict) -> dict:
    """A plan key with its references resolved to text (JSON-ready)."""
    return {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v))
            for k, v in key.items()}


def _columns(op: str, after: dict | None) -> tuple[str, ...]:
    if op != "update" or not after:
        return ()
    return tuple(sorted(after))

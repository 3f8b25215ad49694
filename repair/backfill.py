"""``recon backfill``: fill an empty or partial local copy from a validated snapshot, in chunks
of accounts, resumable, audited per chunk.

A backfill only *inserts*: every row the snapshot's Zuora side says the local copy should hold
and the target database does not hold yet — the catalog cache, billing accounts, their
Bill-To/Sold-To contacts (and the pointers of the accounts it inserts), every subscription
version with its rate plans, charges and tiers, an order per paid subscription (as the D13
repair creates it), a customer per Sold-To e-mail with a membership per billing account (as
D19's). A row that exists is never updated or deleted, whatever it holds: the next reconcile
reports what differs, as usual.

Chunks: chunk 0 is the catalog; chunks 1…n are the snapshot's accounts in ``Id`` order,
``chunk_accounts`` each, with everything that hangs off them (contacts and subscription
versions by their ``AccountId``, an order by its latest version's, a membership by its billing
account's). Each chunk is

1. *planned* by the repair planner's own step queries (:mod:`repair.steps`) over that chunk's
   Zuora rows and a synthetic set of ``missing_in_local``/D13 findings: the keys of the chunk
   the target lacks, read from the target itself just before (so a backfill into another
   database than the snapshot's local side is right too, and a chunk after a kill sees what
   the committed chunks wrote);
2. written as one Parquet chunk of a version 3 plan (``DATA/backfills/<id>/plan.json`` and
   ``plan.ops/chunk-NNNNN.parquet``; :mod:`repair.plan`) and hashed;
3. *applied* in ONE transaction marked as the ``backfill`` writer (set-based on PostgreSQL,
   :mod:`repair.bulk`; by the repair executor on DuckDB), with its audit rows, its row in
   ``recon_repair_applies`` (an apply id of its own, so ``recon repair history`` lists it and
   ``recon repair revert`` deletes its rows by key) and its checkpoint row in
   ``recon_backfill_chunks``: committed together, or not at all.

On PostgreSQL chunk N+1 is planned (1–2, and :func:`repair.bulk.prepare`) on a thread with a
connection of its own while chunk N applies (:class:`_Planner`).

Killed (even ``kill -9``) at any point, a re-run with the same snapshot and chunk size continues
after the last committed chunk; a chunk whose apply was reverted is filled again. Memory and
plan size grow with a chunk: the Zuora side is first copied once into a DuckDB work file
sorted by chunk (its zone maps let each chunk read only its own rows).

Rows shared by several chunks are created once: a customer is created by the first chunk of
the run that meets its e-mail (its ``zuora_account_id`` and names come from the e-mail's first
account, whichever chunk that is); a later chunk of the run references it by e-mail (resolved
when it applies, whether or not that chunk had committed when this one was planned) and only
adds its memberships; a customer the target held before the run is referenced by its id.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from core.catalog import OBJECTS, get
from core.catalog.orders import PAID_STATUSES
from core.config import Settings, redact_url
from core.errors import LocalDatabaseError
from core.layout import DataLayout
from core.localdb import recon_objects
from core.localdb.connect import connect, require_exists
from core.localdb.identity import DatabaseIdentity
from core.localdb.schema import all_tables
from core.localdb.writer import mark
from core.snapshot import MANIFEST, Snapshot, last_passed, open_snapshot
from core.state import ACCEPTED, FAILED, PASSED, StateDB
from expectations.quarantine import read_quarantine
from reconcile.load import ReconcileError, check_reconcilable, open_snapshot_db
from reconcile.rules import prepare_rules
from reconcile.rules.base import ns
from repair import audit
from repair.apply import BACKFILL_PREFIX, _apply_row, _execute, _target, new_apply_id
from repair.audit import Session, utc_now
from repair.bulk import Prepared, apply_chunk, prepare
from repair.executor import APPLIED, CONFLICT, LOCK_TIMEOUT, REF_MISSING, BatchHooks
from repair.guards import RepairFailed, RepairRefused, TargetNotStamped, failed_checks
from repair.lock import RepairLock
from repair.plan import (
    SCHEMA_VERSION,
    Op,
    Plan,
    PlanChunk,
    ops_dir,
    ops_from_frame,
    summary_document,
    write_chunk,
    write_summary,
)
from repair.planner import operations_frame
from repair.sql import jv, ref
from repair.steps import account_refs_sql, create_orders_sql, inserts_sql

DEFAULT_CHUNK_ACCOUNTS = 1000
PLAN_NAME = "plan.json"
CHECKPOINTS = recon_objects.BACKFILL_CHUNKS
# what a chunk of accounts inserts, in the catalogue's order (contacts and subscription
# versions by their account, the subtree by its version)
ACCOUNT_OBJECTS = tuple(o.name for o in OBJECTS if o.group in ("accounts", "subscriptions"))
CATALOG_OBJECTS = tuple(o.name for o in OBJECTS if o.group == "catalog")
_PAID = ", ".join(f"'{s}'" for s in PAID_STATUSES)
# the people of a chunk before the orders that reference them (same step, ``orders``)
_PEOPLE_FIRST = "CASE WHEN grp LIKE 'people:%' THEN 0 ELSE 1 END"
# each chunk's table of the Zuora side: the object's rows of that chunk (bf_chunk)
_PARENT = {"Account": ("Id", "acct"), "Contact": ("AccountId", "acct"),
           "Subscription": ("AccountId", "acct"), "RatePlan": ("SubscriptionId", "Subscription"),
           "RatePlanCharge": ("SubscriptionId", "Subscription"),
           "RatePlanChargeTier": ("RatePlanChargeId", "RatePlanCharge")}


class BackfillRefused(RepairRefused):
    """The backfill will not run on this snapshot or target (nothing was written)."""


@dataclass
class ChunkResult:
    """One chunk of a backfill: what this run did with it."""

    chunk: int
    status: str  # committed | partial | done_before (committed by an earlier run)
    apply_id: str | None
    accounts: int
    first_key: str | None
    last_key: str | None
    ops_planned: int = 0
    ops_applied: int = 0
    conflicts: int = 0
    ref_missing: int = 0
    inserted: dict[str, int] = field(default_factory=dict)
    plan_file: str | None = None
    sha256: str | None = None
    seconds: float = 0.0


@dataclass
class BackfillResult:
    """What ``recon backfill`` did."""

    backfill_id: str
    run_id: str
    chunk_accounts: int
    plan_path: Path
    chunks: list[ChunkResult]
    seconds: float
    prepare_seconds: float = 0.0

    @property
    def done_before(self) -> int:
        return sum(c.status == "done_before" for c in self.chunks)

    @property
    def ops_applied(self) -> int:
        return sum(c.ops_applied for c in self.chunks)

    @property
    def skipped(self) -> int:
        return sum(c.conflicts + c.ref_missing for c in self.chunks)

    @property
    def inserted(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.chunks:
            for t, n in c.inserted.items():
                out[t] = out.get(t, 0) + n
        return dict(sorted(out.items()))

    @property
    def plan_bytes(self) -> int:
        """Bytes of the plan on disk: its JSON summary and every chunk file."""
        files = [self.plan_path, *ops_dir(self.plan_path).glob("chunk-*.parquet")]
        return sum(p.stat().st_size for p in files if p.is_file())

    def as_dict(self) -> dict[str, Any]:
        return {"backfill_id": self.backfill_id, "run_id": self.run_id,
                "chunk_accounts": self.chunk_accounts, "plan": str(self.plan_path),
                "plan_bytes": self.plan_bytes, "seconds": round(self.seconds, 3),
                "chunks_total": len(self.chunks), "chunks_done_before": self.done_before,
                "ops_applied": self.ops_applied, "skipped": self.skipped,
                "inserted": self.inserted,
                "chunks": [c.__dict__ for c in self.chunks]}


def backfill_id_of(run_id: str, chunk_accounts: int) -> str:
    """The id of a backfill: one per (snapshot, chunk size), so a re-run with the same two
    finds its checkpoints and continues."""
    return f"{BACKFILL_PREFIX}{run_id}-c{chunk_accounts}"


# -- which snapshot -------------------------------------------------------------------------
def resolve_backfill_snapshot(data_dir: Path, run_id: str | None) -> Snapshot:
    """The snapshot to fill from: ``run_id``'s, or the newest whose verdict is passed.
    Refused by name (:class:`BackfillRefused`): a failed or partial snapshot, one of part of
    the catalogue, one whose validation failed or never ran."""
    layout = DataLayout(data_dir)
    if run_id is None:
        snap = last_passed(data_dir) if layout.state_file.is_file() else None
        if snap is None:
            raise BackfillRefused(
                f"no complete snapshot under {layout.snapshots} has passed validation; run "
                "`recon extract` and `recon validate`, or name one with --snapshot")
    else:
        for candidate in (layout.snapshot_dir(run_id), layout.failed_snapshot_dir(run_id)):
            if (candidate / MANIFEST).is_file():
                snap = open_snapshot(candidate)
                break
        else:
            raise BackfillRefused(f"no snapshot {run_id!r} under {layout.snapshots} "
                                  "(`recon snapshots` lists them)")
    rid = snap.run_id
    m = snap.manifest
    if not snap.complete:
        why = f": {m.error}" if m.error else ""
        raise BackfillRefused(
            f"refusing to backfill from snapshot {rid}: it is {m.status or 'incomplete'} "
            f"(partial{why}); a partial export would leave the copy partial. Run "
            "`recon extract` until a snapshot completes")
    if m.scope != "all":
        raise BackfillRefused(f"refusing to backfill from snapshot {rid}: it covers only part "
                              f"of the catalogue (scope {m.scope!r}); use a whole-tenant one")
    try:
        check_reconcilable(snap)  # every file present, at its recorded size
    except ReconcileError as e:
        raise BackfillRefused(f"refusing to backfill from snapshot {rid}: {e}") from None
    verdict = None
    if layout.state_file.is_file():
        with StateDB(data_dir) as st:
            verdict = st.verdict(rid)
    if verdict is None or verdict.verdict not in (PASSED, ACCEPTED):
        if verdict is not None and verdict.verdict == FAILED:
            raise BackfillRefused(
                f"refusing to backfill from snapshot {rid}: it failed validation "
                f"({verdict.message or 'see `recon snapshots`'}); fill only from a snapshot "
                "that passed")
        raise BackfillRefused(
            f"refusing to backfill from snapshot {rid}: it is unvalidated (its volume and "
            "contract checks have not both run: `recon snapshots` shows verdicts); fill from "
            "a snapshot a job validated, e.g. one `recon run full` extracted")
    failed = failed_checks(data_dir, rid)
    if failed:
        raise BackfillRefused(
            f"refusing to backfill from snapshot {rid}: recon's state records {len(failed)} "
            f"failed error-severity check(s): {'; '.join(failed[:3])}. See `recon validate`")
    return snap


# -- the working copy of the snapshot, sorted by chunk ----------------------------------------
def _prepare(con: duckdb.DuckDBPyConnection, work: Path, chunk_accounts: int,
             as_of: str) -> int:
    """Build what every chunk reads, once: the order derivation over the whole tenant, the
    Zuora side of accounts and subscriptions copied into ``work`` sorted by chunk, the people
    (Sold-To e-mails) and orders per chunk. The snapshot's local side is never read: the
    target may be another database, and what it holds is read from it per chunk."""
    for table in all_tables():  # empty, typed stand-ins, filled per chunk from the target
        con.execute(f"DROP VIEW local.{table}")
        con.execute(f"CREATE TABLE local.{table} AS SELECT * FROM local_all.{table} LIMIT 0")
    prepare_rules(con, as_of, "all", orders=True)
    if work.exists():
        work.unlink()
    con.execute(f"ATTACH '{work}' AS bf")
    con.execute(f"""CREATE TABLE bf.acct AS SELECT "Id" AS id,
        CAST((row_number() OVER (ORDER BY "Id") - 1) // {int(chunk_accounts)} + 1 AS INTEGER)
        AS chunk FROM zuora."Account" """)
    for name in ACCOUNT_OBJECTS:
        col, parent = _PARENT[name]
        src = ("bf.acct" if parent == "acct"
               else f'(SELECT "Id" AS id, bf_chunk AS chunk FROM bf."{parent}")')
        scope = get(name).zuora_scope  # e.g. only Bill-To and Sold-To contacts are copied
        rel = (f'(SELECT * FROM zuora."{name}" WHERE {scope})' if scope
               else f'zuora."{name}"')
        con.execute(f'CREATE TABLE bf."{name}" AS SELECT z.*, p.chunk AS bf_chunk '
                    f'FROM {rel} z JOIN {src} p ON p.id = z."{col}" ORDER BY bf_chunk')
    con.execute(f"""CREATE TABLE bf.orders AS
        SELECT d.subscription_name AS name, {ns('d.namespace_id')} AS ns, k.chunk
        FROM derived d JOIN bf.acct k ON k.id = d.zuora_account_id
        WHERE d.latest_status IN ({_PAID}) ORDER BY k.chunk""")
    con.execute("""CREATE TABLE bf.people AS
        SELECT NULLIF(lower(trim(sc."WorkEmail")), '') AS email, a."Id" AS zid, k.chunk,
               sc."FirstName" AS first_name, sc."LastName" AS last_name
        FROM zuora."Account" a JOIN zuora."Contact" sc ON sc."Id" = a."SoldToId"
        JOIN bf.acct k ON k.id = a."Id"
        WHERE NULLIF(lower(trim(sc."WorkEmail")), '') IS NOT NULL ORDER BY k.chunk""")
    # a customer's facts come from its e-mail's first account, whichever chunk creates it
    con.execute("""CREATE TABLE bf.emails AS
        SELECT email, min(zid) AS zid, arg_min(first_name, zid) AS first_name,
               arg_min(last_name, zid) AS last_name FROM bf.people GROUP BY email""")
    # from here on, each object's Zuora view is the current chunk's rows
    for name in ACCOUNT_OBJECTS:
        con.execute(f'CREATE OR REPLACE VIEW zuora."{name}" AS SELECT * EXCLUDE (bf_chunk) '
                    f'FROM bf."{name}" WHERE bf_chunk = getvariable(\'bf_chunk\')')
    return int(con.execute("SELECT coalesce(max(chunk), 0) FROM bf.acct").fetchone()[0])


def _chunk_keys(con: duckdb.DuckDBPyConnection, chunk: int) -> pl.DataFrame:
    """(obj, key) of everything chunk ``chunk`` may insert: catalogue objects by Zuora Id,
    ``orders`` by subscription name, ``email`` by Sold-To e-mail, ``ns`` by namespace."""
    con.execute(f"SET VARIABLE bf_chunk = {int(chunk)}")
    names = CATALOG_OBJECTS if chunk == 0 else ACCOUNT_OBJECTS
    parts = [f"SELECT '{n}' AS obj, CAST(\"Id\" AS VARCHAR) AS key FROM zuora.\"{n}\""
             for n in names]
    if chunk:
        parts += [f"SELECT 'orders', name FROM bf.orders WHERE chunk = {chunk}",
                  f"SELECT DISTINCT 'ns', ns FROM bf.orders WHERE chunk = {chunk} "
                  "AND ns IS NOT NULL",
                  f"SELECT DISTINCT 'email', email FROM bf.people WHERE chunk = {chunk}"]
    return con.sql(" UNION ALL ".join(parts)).pl()


# -- what the target holds --------------------------------------------------------------------
@dataclass
class Present:
    """What the target already holds of a chunk's keys."""

    have: pl.DataFrame  # obj, key: catalogue rows and non-trial orders that exist
    customers: pl.DataFrame  # email (trimmed, lower case), id
    members: pl.DataFrame  # email, zid: memberships of the chunk's accounts that exist
    namespaces: pl.DataFrame  # ns: namespaces existing orders use


def read_present(sess: Session, keys: pl.DataFrame) -> Present:
    """One read-only transaction on the target: which of ``keys`` it holds (key lists loaded
    as a temporary table and joined; nothing per row)."""
    tmp = sess.temp_name("bfk")
    rows = [(o, k) for o, k in keys.iter_rows() if k is not None]
    have: list[tuple] = []
    with sess.transaction(rollback=True):
        sess.load_temp(tmp, [("obj", "VARCHAR(64)"), ("k", "VARCHAR(255)")], rows)
        try:
            objs = set(keys["obj"].unique().to_list())
            for name in (n for n in objs if n in CATALOG_OBJECTS + ACCOUNT_OBJECTS):
                spec = get(name)
                have += sess.rows(
                    f"SELECT '{name}', x.k FROM {tmp} x JOIN {spec.table} t "
                    f"ON CAST(t.{spec.key_column} AS VARCHAR) = x.k WHERE x.obj = '{name}'")
            have += sess.rows(
                f"SELECT DISTINCT 'orders', x.k FROM {tmp} x JOIN orders o "
                f"ON o.subscription_name = x.k WHERE x.obj = 'orders' "
                f"AND NOT coalesce(o.trial, false)")
            customers = sess.rows(
                f"SELECT x.k, min(c.id) FROM {tmp} x JOIN customers c "
                f"ON lower(trim(c.email)) = x.k WHERE x.obj = 'email' GROUP BY x.k")
            members = sess.rows(
                f"SELECT DISTINCT lower(trim(c.email)), ba.zuora_account_id FROM {tmp} x "
                f"JOIN billing_accounts ba ON ba.zuora_account_id = x.k "
                f"JOIN billing_account_memberships m ON m.billing_account_id = ba.id "
                f"JOIN customers c ON c.id = m.customer_id WHERE x.obj = 'Account'")
            namespaces = sess.rows(
                f"SELECT DISTINCT x.k FROM {tmp} x JOIN orders o "
                f"ON trim(CAST(o.gl_namespace_id AS VARCHAR)) = x.k WHERE x.obj = 'ns'")
        finally:
            sess.drop_temp(tmp)
    return Present(
        have=pl.DataFrame(have, schema={"obj": pl.String, "key": pl.String}, orient="row"),
        customers=pl.DataFrame(customers, schema={"email": pl.String, "id": pl.Int64},
                               orient="row"),
        members=pl.DataFrame(members, schema={"email": pl.String, "zid": pl.String},
                             orient="row"),
        namespaces=pl.DataFrame(namespaces, schema={"ns": pl.String}, orient="row"))


# -- one chunk's plan ---------------------------------------------------------------------------
def _customer_sql() -> str:
    """JSON of an order's customer: the existing customer of its account's Sold-To e-mail,
    else a reference to the one this chunk creates (NULL without an e-mail)."""
    return (f"coalesce((SELECT CASE WHEN c.id IS NOT NULL THEN to_json(c.id) ELSE "
            f"{ref('customers', 'email', 'p.email')} END FROM bf.people p "
            f"LEFT JOIN local.customers c ON c.email = p.email "
            f"WHERE p.zid = d.zuora_account_id), 'null'::JSON)")


def people_sql(chunk: int, now: str, finding: str) -> str:
    """D19 as a backfill makes it: a customer for each Sold-To e-mail of the chunk the target
    lacks and no earlier chunk of this run creates (``bf_created``), and a membership of each
    of the chunk's accounts to it (its id when the target held it before, else a reference by
    e-mail, resolved at apply time)."""
    cust = {"email": "to_json(e.email)", "first_name": jv("e.first_name", "VARCHAR"),
            "last_name": jv("e.last_name", "VARCHAR"), "zuora_account_id": jv("e.zid", "VARCHAR"),
            "created_at": f"to_json('{now}')", "updated_at": f"to_json('{now}')"}
    after = "json_object(" + ", ".join(f"'{k}', {v}" for k, v in cust.items()) + ")"
    member = ("CASE WHEN c.id IS NOT NULL THEN to_json(c.id) ELSE "
              + ref("customers", "email", "p.email") + " END")
    account = ref("billing_accounts", "zuora_account_id", "p.zid")
    return f"""
    SELECT 'orders' AS step, 'people:' || e.email AS grp, 'customers' AS tbl, 'insert' AS op,
           json_object('email', e.email) AS key, NULL::JSON AS before, {after} AS after,
           'backfill: no customer has ' || e.email || ', the Sold-To e-mail of account '
               || e.zid AS reason, ['{finding}'] AS findings, 1 AS ord
    FROM bf.emails e
    WHERE e.email IN (SELECT email FROM bf.people WHERE chunk = {chunk})
      AND e.email NOT IN (SELECT email FROM local.customers)
      AND e.email NOT IN (SELECT email FROM bf_created)
    UNION ALL
    SELECT 'orders', 'people:' || p.email, 'billing_account_memberships', 'insert',
           json_object('customer_id', {member}, 'billing_account_id', {account}), NULL::JSON,
           json_object('customer_id', {member}, 'billing_account_id', {account},
                       'created_at', to_json('{now}'), 'updated_at', to_json('{now}')),
           'backfill: membership of ' || p.email || ' to the billing account of ' || p.zid,
           ['{finding}'], 2
    FROM bf.people p LEFT JOIN local.customers c ON c.email = p.email
    WHERE p.chunk = {chunk}
      AND NOT EXISTS (SELECT 1 FROM bf_members m WHERE m.email = p.email AND m.zid = p.zid)"""


def plan_chunk(con: duckdb.DuckDBPyConnection, chunk: int, keys: pl.DataFrame,
               present: Present, now: dt.datetime, finding: str,
               created: pl.DataFrame | None = None) -> pl.DataFrame:
    """Chunk ``chunk``'s operations (plan rows, seq from 1): inserts of what the target lacks,
    by the repair's own step queries over the chunk's Zuora rows. ``created``: the e-mails
    (column ``email``) whose customer an earlier chunk of this run creates — not created
    again, referenced by e-mail."""
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if created is None:
        created = pl.DataFrame(schema={"email": pl.String})
    missing = keys.join(present.have, on=["obj", "key"], how="anti")
    con.register("_bf_missing", missing.to_arrow())
    con.register("_bf_cust", present.customers.to_arrow())
    con.register("_bf_members", present.members.to_arrow())
    con.register("_bf_ns", present.namespaces.to_arrow())
    con.register("_bf_created", created.select("email").to_arrow())
    try:
        con.execute(f"""CREATE OR REPLACE TEMP TABLE auto AS
            SELECT obj AS object, key,
                   CASE WHEN obj = 'orders' THEN 'rule_violation' ELSE 'missing_in_local' END
                       AS kind,
                   CASE WHEN obj = 'orders' THEN 'D13' END AS rule, NULL::VARCHAR AS field,
                   'backfill chunk {chunk}: absent from the local copy' AS explanation,
                   '{finding}' AS fingerprint, NULL::JSON AS evidence
            FROM _bf_missing WHERE obj NOT IN ('ns', 'email')""")
        con.execute("CREATE OR REPLACE TEMP TABLE bf_members AS SELECT * FROM _bf_members")
        con.execute("CREATE OR REPLACE TEMP TABLE bf_created AS SELECT email FROM _bf_created")
        con.execute("DELETE FROM local.customers")
        con.execute("INSERT INTO local.customers (id, email) SELECT id, email FROM _bf_cust")
        con.execute("DELETE FROM local.orders")
        con.execute("INSERT INTO local.orders (id, gl_namespace_id, trial) "
                    "SELECT row_number() OVER (), ns, false FROM _bf_ns")
    finally:
        for name in ("_bf_missing", "_bf_cust", "_bf_members", "_bf_ns", "_bf_created"):
            con.unregister(name)
    if chunk == 0:
        parts = [inserts_sql(get(n), stamp) for n in CATALOG_OBJECTS]
    else:
        parts = [inserts_sql(get(n), stamp) for n in ACCOUNT_OBJECTS]
        parts += [account_refs_sql(), create_orders_sql(stamp, _customer_sql()),
                  people_sql(chunk, stamp, finding)]
    return operations_frame(con, parts, first=_PEOPLE_FIRST)


# -- the run ----------------------------------------------------------------------------------
def _committed(sess: Session, backfill_id: str) -> dict[int, dict[str, Any]]:
    """Checkpoints of ``backfill_id`` whose chunk was not reverted since."""
    cols = ("chunk", "apply_id", "plan_file", "plan_sha256", "ops_planned", "ops_applied",
            "accounts", "first_key", "last_key", "counts")
    rows = sess.rows(
        f"SELECT {', '.join('c.' + c for c in cols)} FROM {CHECKPOINTS} c "
        f"WHERE c.backfill_id = {sess.ph} AND NOT EXISTS (SELECT 1 FROM {audit.APPLIES} r "
        f"WHERE r.kind = 'revert' AND r.reverts_apply_id = c.apply_id "
        f"AND r.status IN ('complete', 'partial'))", [backfill_id])
    return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}


def _require_target(sess: Session, url: str) -> DatabaseIdentity:
    target = _target(sess.db)
    if target is None:
        raise TargetNotStamped(
            f"the local database {redact_url(url)} has no identity: run `recon db stamp` "
            "(or `recon db init` on a new database) before backfilling it")
    audit.ensure_tables(sess)
    missing = [t for t in all_tables() if not sess.table_exists(t)]
    if missing:
        raise LocalDatabaseError(
            f"the local database {redact_url(url)} lacks {', '.join(missing[:4])}"
            f"{' …' if len(missing) > 4 else ''}: create the schema with `recon db init` "
            "(or the application's migrations) first")
    return target


def backfill(settings: Settings, run_id: str | None = None, *,
             chunk_accounts: int = DEFAULT_CHUNK_ACCOUNTS,
             progress: Callable[[str], None] | None = None,
             committed: Callable[[int], None] | None = None,
             memory_limit: str = "1GB", executor: bool = False) -> BackfillResult:
    """Fill the local database of ``settings`` from snapshot ``run_id`` (default: the newest
    that passed validation), chunk by chunk; see the module doc. ``committed(chunk)`` is
    called after each chunk commits (tests). ``executor``: apply every chunk through the
    generic executor, as on DuckDB, instead of the set-based path (tests compare the two).
    Raises :class:`BackfillRefused` (nothing
    written) for a snapshot that is not a passed, complete whole-tenant one."""
    t0 = time.monotonic()
    if chunk_accounts < 1:
        raise BackfillRefused(f"--chunk-accounts must be >= 1, got {chunk_accounts}")
    data_dir = Path(settings.data_dir)
    snap = resolve_backfill_snapshot(data_dir, run_id)
    bid = backfill_id_of(snap.run_id, chunk_accounts)
    url = settings.local_database_url
    require_exists(url)
    say = progress or (lambda _m: None)
    home = DataLayout(data_dir).backfill_dir(bid)
    plan_path = home / PLAN_NAME
    with RepairLock(url, bid, "backfill"), connect(url) as db:
        sess = Session(db)
        target = _require_target(sess, url)
        done = _committed(sess, bid)
        home.mkdir(parents=True, exist_ok=True)
        (home / "tmp").mkdir(exist_ok=True)
        sdb = open_snapshot_db(snap, read_quarantine(data_dir, snap.run_id), threads=2,
                               memory_limit=memory_limit)
        try:
            con = sdb.con
            con.execute(f"SET temp_directory = '{home / 'tmp'}'")
            t1 = time.monotonic()
            last = _prepare(con, home / "work.duckdb", chunk_accounts,
                            sdb.as_of.isoformat(sep=" "))
            prepare_s = time.monotonic() - t1
            ranges = {c: (n, f, lk) for c, n, f, lk in con.execute(
                "SELECT chunk, count(*), min(id), max(id) FROM bf.acct GROUP BY chunk").fetchall()}
            say(f"backfill {bid}: {last} chunk(s) of up to {chunk_accounts} accounts and the "
                f"catalog from snapshot {snap.run_id} into {redact_url(url)}; "
                f"{len(done)} committed before")
            results: list[ChunkResult] = []
            chunk_files: dict[int, PlanChunk] = {
                c: PlanChunk(file=Path(r["plan_file"] or "").name,
                             operations=int(r["ops_planned"]), sha256=r["plan_sha256"] or "",
                             label=_label(c, r["first_key"], r["last_key"]))
                for c, r in done.items()}
            todo = [c for c in range(0, last + 1) if c not in done]
            planner = _Planner(con, sess, url, bid, plan_path,
                               {c: ranges.get(c, (0, None, None)) for c in todo},
                               bulk=sess.pg and not executor)
            with planner:
                for chunk in range(0, last + 1):
                    if chunk in done:
                        r = done[chunk]
                        results.append(ChunkResult(
                            chunk, "done_before", r["apply_id"], int(r["accounts"]),
                            r["first_key"], r["last_key"], int(r["ops_planned"]), 0,
                            plan_file=r["plan_file"], sha256=r["plan_sha256"]))
                        continue
                    planned = planner.take(chunk)  # and the next one is planned meanwhile
                    res = _apply_planned(sess, snap.run_id, bid, last, chunk_accounts,
                                         planned, plan_path, target, executor)
                    results.append(res)
                    chunk_files[chunk] = planned.file
                    _write_backfill_plan(plan_path, bid, snap.run_id, url, target,
                                         chunk_files)
                    say(f"chunk {chunk}/{last}: {res.ops_applied:,} of {res.ops_planned:,} "
                        f"inserted ({res.seconds:.1f}s), apply {res.apply_id}")
                    if committed is not None:
                        committed(chunk)
            _write_backfill_plan(plan_path, bid, snap.run_id, url, target, chunk_files)
        finally:
            sdb.close()
            (home / "work.duckdb").unlink(missing_ok=True)
            shutil.rmtree(home / "tmp", ignore_errors=True)
    return BackfillResult(bid, snap.run_id, chunk_accounts, plan_path, results,
                          time.monotonic() - t0, prepare_s)


def _label(chunk: int, first: str | None, last: str | None) -> str:
    return "the catalog" if chunk == 0 else f"accounts {first}…{last}"


@dataclass
class _Planned:
    """A chunk planned and written, not applied yet."""

    chunk: int
    span: tuple[int, str | None, str | None]  # accounts, first and last account
    frame: pl.DataFrame
    file: PlanChunk
    seconds: float
    prepared: Prepared | None = None  # for the set-based path (repair.bulk.prepare)


class _Planner:
    """Plans the chunks to run, in order, each as soon as the one before it is planned: on
    PostgreSQL on a thread of its own with a connection of its own, so chunk N+1 is planned
    (DuckDB, releasing the GIL) while PostgreSQL applies chunk N; on DuckDB in line.

    A chunk's plan reads what the target holds of its own keys, which no other chunk writes,
    except the customers of e-mails shared with earlier chunks: the planner remembers the
    e-mails whose customer an earlier chunk of this run creates (committed or in flight),
    never plans them again and references them by e-mail (resolved at apply time to the
    row that chunk inserted), so a plan never depends on whether the chunk before it has
    committed yet, and a pipelined run writes what a sequential one writes. (Namespaces
    used by earlier chunks' orders are carried over likewise.)"""

    def __init__(self, con: duckdb.DuckDBPyConnection, sess: Session, url: str, bid: str,
                 plan_path: Path, spans: dict[int, tuple[int, str | None, str | None]],
                 bulk: bool):
        self.con, self.bid, self.plan_path, self.spans = con, bid, plan_path, spans
        self.bulk = bulk
        self.order = sorted(spans)
        self.created: set[str] = set()
        self.linked: set[str] = set()
        self.threaded = sess.pg and len(self.order) > 1
        self.db = connect(url) if self.threaded else None
        self.sess = Session(self.db) if self.db is not None else sess
        self.pool = ThreadPoolExecutor(1, "recon-backfill-plan") if self.threaded else None
        self.pending: dict[int, Future[_Planned]] = {}

    def __enter__(self) -> _Planner:
        return self

    def __exit__(self, *exc: object) -> None:
        """Wait for a plan in flight (it uses the DuckDB connection the caller closes next),
        then close the thread and the connection."""
        for fut in self.pending.values():
            fut.cancel()
            try:
                fut.result()
            except BaseException:  # noqa: BLE001,S110 — the run failed already; the plan
                pass  # of the next chunk is discarded with it
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        if self.db is not None:
            self.db.close()

    def take(self, chunk: int) -> _Planned:
        """Chunk ``chunk`` planned and written; the next chunk's planning started."""
        fut = self.pending.pop(chunk, None)
        planned = fut.result() if fut is not None else self._plan(chunk)
        i = self.order.index(chunk)
        if self.pool is not None and i + 1 < len(self.order):
            nxt = self.order[i + 1]
            self.pending[nxt] = self.pool.submit(self._plan, nxt)
        return planned

    def _plan(self, chunk: int) -> _Planned:
        t0 = time.monotonic()
        span = self.spans[chunk]
        keys = _chunk_keys(self.con, chunk)
        present = read_present(self.sess, keys)
        created = pl.DataFrame({"email": sorted(self.created)}, schema={"email": pl.String})
        present.customers = present.customers.filter(
            ~pl.col("email").is_in(created["email"].implode()))
        present.namespaces = pl.concat([present.namespaces, pl.DataFrame(
            {"ns": sorted(self.linked)}, schema={"ns": pl.String})]).unique()
        frame = plan_chunk(self.con, chunk, keys, present, utc_now(),
                           f"{self.bid}.{chunk:05d}", created)
        file = write_chunk(frame, ops_dir(self.plan_path) / f"chunk-{chunk:05d}.parquet",
                           _label(chunk, span[1], span[2]))
        ins = frame.filter(pl.col("op") == "insert")
        self.created.update(ins.filter(pl.col("table") == "customers")["key"]
                            .str.json_path_match("$.email").drop_nulls().to_list())
        self.linked.update(ins.filter(pl.col("table") == "orders")["after"]
                           .str.json_path_match("$.gl_namespace_id").drop_nulls().to_list())
        prepared = None
        if self.bulk:
            try:
                prepared = prepare(frame)
            except RepairFailed:
                prepared = None  # raised again when the chunk applies, in its transaction
        return _Planned(chunk, span, frame, file, time.monotonic() - t0, prepared)


def _apply_planned(sess: Session, run_id: str, bid: str, last: int, chunk_accounts: int,
                   planned: _Planned, plan_path: Path, target: DatabaseIdentity,
                   executor: bool = False) -> ChunkResult:
    """Apply one planned chunk (one transaction with its audit and checkpoint): on
    PostgreSQL set-based (:mod:`repair.bulk`), on DuckDB — or with ``executor`` — by the
    generic executor."""
    t0 = time.monotonic()
    chunk, frame, file = planned.chunk, planned.frame, planned.file
    n, first, lastk = planned.span
    chunk_id = f"{bid}.{chunk:05d}"
    apply_id = new_apply_id("apply")
    chunk_path = str((ops_dir(plan_path) / file.file).resolve())
    note = (f"backfill {bid} chunk {chunk} of {last}: {_label(chunk, first, lastk)} "
            f"({n} accounts); plan sha256 {file.sha256}")
    row = _apply_row(apply_id, "apply", plan_id=f"{bid}/chunk-{chunk:05d}", run_id=run_id,
                     plan_path=chunk_path, ops=frame.height, status="running", target=target)
    counts: dict[str, int] = {}

    def checkpoint(_batch: int) -> None:
        """In the chunk's transaction, after its rows and audit: the checkpoint."""
        p = sess.ph
        written = sess.rows(f"SELECT table_name, op, count(*) FROM {audit.AUDIT} WHERE "
                            f"apply_id = {p} GROUP BY table_name, op ORDER BY table_name",
                            [apply_id])
        counts.update({t: int(c) for t, o, c in written if o == "insert"})
        sess.run(f"DELETE FROM {CHECKPOINTS} WHERE backfill_id = {p} AND chunk = {p}",
                 [bid, chunk])
        sess.run(f"INSERT INTO {CHECKPOINTS} (backfill_id, chunk, run_id, chunk_accounts, "
                 "first_key, last_key, accounts, apply_id, plan_file, plan_sha256, "
                 "ops_planned, ops_applied, counts, committed_at) VALUES "
                 f"({', '.join([p] * 14)})",
                 [bid, chunk, run_id, chunk_accounts, first, lastk, n, apply_id, chunk_path,
                  file.sha256, frame.height, sum(int(c) for *_, c in written),
                  json.dumps(counts), utc_now()])

    if sess.pg and not executor:
        status, applied, conflicts, missing = _apply_bulk(
            sess, frame, apply_id, row, note, ("backfill", chunk_id), checkpoint,
            planned.prepared)
    else:
        # one transaction: a chunk is committed whole or not at all
        ops: list[Op] = ops_from_frame(frame, plan_path)
        status, outcomes = _execute(sess, [ops], yes=True, apply_id=apply_id, row=row,
                                    progress=None, hooks=BatchHooks(written=checkpoint),
                                    note=note, writer=("backfill", chunk_id))
        applied = sum(o.status == APPLIED for o in outcomes)
        conflicts = sum(o.status == CONFLICT for o in outcomes)
        missing = sum(o.status == REF_MISSING for o in outcomes)
    return ChunkResult(
        chunk, "committed" if status == "complete" else status, apply_id, n, first, lastk,
        frame.height, applied, conflicts, missing, dict(counts), chunk_path, file.sha256,
        planned.seconds + time.monotonic() - t0)


def _apply_bulk(sess: Session, frame: pl.DataFrame, apply_id: str, row: dict[str, Any],
                note: str, writer: tuple[str, str], checkpoint: Callable[[int], None],
                prepared: Prepared | None = None) -> tuple[str, int, int, int]:
    """A chunk's operations applied set-based (:func:`repair.bulk.apply_chunk`) in ONE
    transaction marked with the backfill's writer, with its audit and ``checkpoint``; the
    apply row recorded running → complete/partial (or failed, the transaction rolled back),
    as :func:`repair.apply._execute` records it. Returns (status, applied, conflicts,
    referenced rows missing)."""
    stale = audit.mark_abandoned(sess)
    audit.insert_apply(sess, row)
    try:
        with sess.transaction():
            timeout = sess.dialect.lock_timeout_sql(LOCK_TIMEOUT)
            if timeout:
                sess.run(timeout)
            mark(sess.db, *writer)
            res = apply_chunk(sess, frame, apply_id=apply_id, now=utc_now(),
                              prepared=prepared)
            checkpoint(1)
    except BaseException as e:
        msg = str(e) if isinstance(e, RepairFailed) else (
            f"the chunk failed and was rolled back: {type(e).__name__}: "
            f"{' '.join(str(e).split())}; re-run the backfill to continue")
        try:
            audit.finish_apply(sess, apply_id, "failed", 0, 0, f"{note}; {msg}"[:2000])
        except Exception:  # noqa: BLE001 — the session died with the error; the next run
            pass  # marks the apply abandoned
        if isinstance(e, Exception) and not isinstance(e, RepairFailed):
            raise RepairFailed(msg) from e
        raise
    skipped = res.planned - res.applied
    parts = [f"{res.conflicts} skipped as conflicts"] if res.conflicts else []
    if res.ref_missing:
        parts.append(f"{res.ref_missing} skipped: referenced row missing")
    if stale:
        parts.append(f"marked abandoned applies as failed: {', '.join(stale)}")
    status = "partial" if skipped else "complete"
    audit.finish_apply(sess, apply_id, status, res.applied, skipped,
                       "; ".join([note, *parts])[:2000])
    return status, res.applied, res.conflicts, res.ref_missing


def _write_backfill_plan(path: Path, bid: str, run_id: str, url: str,
                         target: DatabaseIdentity, chunks: dict[int, PlanChunk]) -> None:
    """The backfill's version 3 plan summary, naming the chunk files written so far; bound
    to the target it fills."""
    plan = Plan(schema_version=SCHEMA_VERSION, plan_id=bid, run_id=run_id,
                created_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
                snapshot_complete=True, validation="passed",
                local_database=redact_url(url), local_identity=target, operations=[],
                only="backfill")
    doc = summary_document(plan, [chunks[c] for c in sorted(chunks)])
    doc["summary"] = {"operations": sum(c.operations for c in chunks.values()),
                      "chunks": len(chunks)}
    write_summary(path, doc)

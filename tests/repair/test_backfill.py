"""``recon backfill`` on a real PostgreSQL local database: a small generated tenant written as a
passed snapshot, filled into empty schemas in chunks of a few accounts.

* killed with SIGKILL (a real ``python -m jobs.cli backfill`` process) after its first chunks
  committed, then re-run: the result equals an uninterrupted backfill into another empty
  schema by the generic executor (every table and every chunk's audit, surrogate ids mapped
  to natural keys, local timestamps left out): the set-based path writes and audits exactly
  what the executor does, and skips (counting them) rows that exist by the time it runs;
* a Sold-To e-mail shared by accounts of different chunks yields one customer with a
  membership to each account;
* the next reconcile of the filled copy has no ``auto`` finding: nothing a backfill should
  have written is missing;
* a failed, unvalidated or partial snapshot is refused by name (exit 2), nothing written;
* reverting one chunk's apply deletes exactly its rows, and a re-run fills it again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from core.config import Settings
from core.localdb.connect import connect
from core.localdb.schema import all_tables
from core.localdb.writer import hatch_sql
from core.state import StateDB
from jobs.cli import main
from reconcile.engine import reconcile_snapshot
from repair.apply import list_applies, revert_apply
from repair.audit import Session, utc_now
from repair.backfill import backfill, backfill_id_of
from repair.bulk import apply_chunk
from repair.plan import OPS_SCHEMA, iter_chunks, open_plan, verify_chunks
from tests.support.pg import pg_schema
from tests.support.repair import REPO, one, rows
from tests.support.snapshots import write_snapshot
from tests.support.worlds import fresh_world

pytestmark = pytest.mark.postgres

ACCOUNTS, SEED, CHUNK = 20, 11, 3
RUN = "20260101T070000000000Z-bf01"
# surrogate id columns → (referenced table); each table's natural key replaces its id
REFS = {("billing_accounts", "bill_to_contact_id"): "billing_account_contacts",
        ("billing_accounts", "sold_to_contact_id"): "billing_account_contacts",
        ("billing_account_contacts", "billing_account_id"): "billing_accounts",
        ("billing_account_memberships", "customer_id"): "customers",
        ("billing_account_memberships", "billing_account_id"): "billing_accounts",
        ("orders", "customer_id"): "customers",
        ("orders", "billing_account_id"): "billing_accounts"}
NATURAL = {"billing_accounts": "zuora_account_id",
           "billing_account_contacts": "zuora_contact_id", "customers": "email"}
LOCAL_TIMES = ("created_at", "updated_at")


@dataclass(frozen=True)
class Tenant:
    data: Path
    run_id: str
    shared_email: str
    shared_accounts: tuple[str, str]  # the first and the last account: different chunks


@pytest.fixture(scope="module")
def tenant(tmp_path_factory: pytest.TempPathFactory) -> Tenant:
    """A clean generated world as a snapshot that passed validation; the last account's
    Sold-To contact is given the first account's e-mail (in another chunk)."""
    data = tmp_path_factory.mktemp("backfill") / "data"
    world = fresh_world(ACCOUNTS, SEED)
    acct = world.zuora["Account"].sort("Id")
    first, last = acct["Id"][0], acct["Id"][-1]
    sold = dict(zip(acct["Id"], acct["SoldToId"], strict=True))
    contacts = world.zuora["Contact"]
    email = contacts.filter(pl.col("Id") == sold[first])["WorkEmail"][0]
    world.zuora["Contact"] = contacts.with_columns(
        WorkEmail=pl.when(pl.col("Id") == sold[last]).then(pl.lit(f"  {email.upper()} "))
        .otherwise(pl.col("WorkEmail")))
    write_snapshot(world, data, RUN)
    _verdict(data, RUN, "passed")
    return Tenant(data, RUN, email.strip().lower(), (first, last))


def _verdict(data: Path, run_id: str, outcome: str | None) -> None:
    with StateDB(data) as st:
        if outcome is not None:
            st.record_check(run_id, "volume", outcome, None,
                            "Account: 20 -> 2 rows" if outcome == "failed" else None)
            st.record_check(run_id, "contracts", "passed")


def _empty(url: str) -> str:
    with connect(url) as db:
        db.init_schema()
    return url


@pytest.fixture
def second(pg_dsn: str) -> Iterator[str]:
    with pg_schema(pg_dsn) as url:
        yield _empty(url)


def _settings(url: str, tenant: Tenant) -> Settings:
    return Settings(local_database_url=url, data_dir=tenant.data)


def _natural(url: str) -> dict[str, list[tuple]]:
    """Every table as sorted rows of text, surrogate ids replaced by natural keys, local
    timestamps left out."""
    with connect(url) as db:
        frames = {t: db.read_table(t) for t in all_tables()}
    maps = {t: dict(zip(frames[t]["id"].to_list(), frames[t][k].to_list(), strict=True))
            for t, k in NATURAL.items()}
    out = {}
    for table, frame in frames.items():
        cols = []
        for c in frame.columns:
            if c in LOCAL_TIMES or (c == "id" and table in NATURAL | {
                    "billing_account_memberships": "", "orders": ""}):
                continue
            target = REFS.get((table, c))
            s = frame[c]
            if target is not None:
                s = s.replace_strict(maps[target], default=None, return_dtype=pl.String)
            cols.append(s.cast(pl.String).alias(c))
        out[table] = sorted(pl.DataFrame(cols).rows(), key=repr) if cols else []
    return out


def test_kill_9_then_resume_equals_an_uninterrupted_backfill(tenant: Tenant, pg_url: str,
                                                             second: str) -> None:
    _empty(pg_url)
    bid = backfill_id_of(tenant.run_id, CHUNK)
    env = {**os.environ, "RECON_DATA_DIR": str(tenant.data), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "-q", "backfill", "--snapshot", tenant.run_id,
         "--chunk-accounts", str(CHUNK), "--db", pg_url], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    committed = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                committed = one(pg_url, "SELECT count(*) FROM recon_backfill_chunks")
            except Exception:  # noqa: BLE001 — not migrated yet
                committed = 0
            if committed >= 2:  # the catalog and the first chunk of accounts
                break
            time.sleep(0.01)
        running = proc.poll() is None
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    chunks = -(-ACCOUNTS // CHUNK) + 1
    assert running, f"the backfill ended before it could be killed: {proc.stderr.read()!r}"
    at_kill = one(pg_url, "SELECT count(*) FROM recon_backfill_chunks")
    assert 2 <= at_kill < chunks, "killed in the middle"
    # every committed chunk's rows are there whole: its audit is its checkpoint's count
    for apply_id, applied in rows(pg_url, "SELECT apply_id, ops_applied FROM "
                                          "recon_backfill_chunks"):
        assert one(pg_url, f"SELECT count(*) FROM recon_repair_audit WHERE apply_id = "
                           f"'{apply_id}'") == applied

    resumed = backfill(_settings(pg_url, tenant), tenant.run_id, chunk_accounts=CHUNK)
    assert resumed.backfill_id == bid and len(resumed.chunks) == chunks
    assert resumed.done_before == at_kill and resumed.skipped == 0
    assert {c.status for c in resumed.chunks[at_kill:]} == {"committed"}

    # uninterrupted, by the generic executor (the path before the set-based one): the same
    # rows, the same audit (chunk, seq, table, op, key, full images), the same counts
    whole = backfill(_settings(second, tenant), tenant.run_id, chunk_accounts=CHUNK,
                     executor=True)
    assert whole.done_before == 0 and whole.skipped == 0
    assert whole.inserted["billing_accounts"] == ACCOUNTS
    assert _natural(pg_url) == _natural(second)
    assert _audit(pg_url) == _audit(second)
    assert [c.ops_applied for c in resumed.chunks[at_kill:]] == \
        [c.ops_applied for c in whole.chunks[at_kill:]]
    # the plan is the record of what each chunk meant to insert: a version 3 plan that
    # `repair apply` reads (each chunk checked and parsed), one operation per audit row
    plan = open_plan(resumed.plan_path)
    verify_chunks(plan)
    assert plan.schema_version == 3
    assert sum(len(ops) for ops in iter_chunks(plan)) == one(
        pg_url, "SELECT count(*) FROM recon_repair_audit")

    # a chunk's rows that exist by now (as if written since it was planned): the set-based
    # path skips and counts every one, writes and audits nothing
    frame = pl.read_parquet(resumed.chunks[-1].plan_file)
    with connect(pg_url) as db:
        sess = Session(db)
        with sess.transaction(rollback=True):
            db.execute(hatch_sql("test-bulk-again"))
            res = apply_chunk(sess, frame, apply_id="ap-test-again", now=utc_now())
            assert res.planned == frame.height > 0 and res.applied == 0
            assert res.conflicts == frame.height and res.ref_missing == 0
            assert sess.rows("SELECT count(*) FROM recon_repair_audit WHERE apply_id = "
                             "'ap-test-again'")[0][0] == 0

    # the shared e-mail: one customer, a membership from each of its accounts (2 chunks)
    first, last = tenant.shared_accounts
    assert one(second, f"SELECT count(*) FROM customers WHERE email = "
                       f"'{tenant.shared_email}'") == 1
    members = {r[0] for r in rows(second, f"""
        SELECT ba.zuora_account_id FROM billing_account_memberships m
        JOIN customers c ON c.id = m.customer_id
        JOIN billing_accounts ba ON ba.id = m.billing_account_id
        WHERE c.email = '{tenant.shared_email}'""")}
    assert {first, last} <= members

    # a re-run finds everything committed and writes nothing
    again = backfill(_settings(second, tenant), tenant.run_id, chunk_accounts=CHUNK)
    assert again.done_before == chunks and again.ops_applied == 0

    # the next reconcile of the filled copy: nothing a backfill should have written is missing
    with connect(second) as db:
        local = {t: db.read_table(t) for t in all_tables()}
    world = fresh_world(ACCOUNTS, SEED)
    world.zuora["Contact"] = pl.read_parquet(tenant.data / "snapshots" / tenant.run_id /
                                             "zuora" / "Contact.parquet")
    world.local = local
    data = tenant.data.parent / "after"
    snap = write_snapshot(world, data, "20260101T080000000000Z-bf02")
    result = reconcile_snapshot(snap, data)
    auto = result.open.filter(pl.col("action") == "auto")
    assert auto.height == 0, auto.select("object", "key", "kind", "rule", "field",
                                         "explanation").to_dicts()


def test_a_failed_unvalidated_or_partial_snapshot_is_refused_by_name(
        tenant: Tenant, pg_url: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    _empty(pg_url)
    data = tmp_path / "data"
    src = tenant.data / "snapshots" / tenant.run_id
    cases = {"20260102T000000000000Z-fail": "failed validation (Account: 20 -> 2 rows)",
             "20260103T000000000000Z-none": "is unvalidated",
             "20260104T000000000000Z-part": "is failed (partial"}
    for run_id in cases:
        copy = shutil.copytree(src, data / "snapshots" / run_id)
        manifest = copy / "manifest.json"
        manifest.write_text(manifest.read_text().replace(tenant.run_id, run_id))
    _verdict(data, "20260102T000000000000Z-fail", "failed")
    _verdict(data, "20260103T000000000000Z-none", None)
    part = data / "snapshots" / "20260104T000000000000Z-part"
    manifest = (part / "manifest.json").read_text().replace('"status": "complete"',
                                                             '"status": "failed"')
    (part / "manifest.json").write_text(manifest)
    part.rename(part.with_name(part.name + ".failed"))
    env = {"RECON_DATA_DIR": str(data), "RECON_LOCAL_DATABASE_URL": pg_url}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for run_id, why in cases.items():
            code = main(["-q", "backfill", "--snapshot", run_id])
            err = capsys.readouterr().err
            assert code == 2, err
            assert f"refusing to backfill from snapshot {run_id}: " in err and why in err, err
            assert "Traceback" not in err
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert one(pg_url, "SELECT count(*) FROM billing_accounts") == 0
    assert one(pg_url, "SELECT count(*) FROM recon_repair_applies") == 0


def test_reverting_a_chunk_deletes_its_rows_and_a_rerun_fills_it_again(
        tenant: Tenant, pg_url: str) -> None:
    _empty(pg_url)
    settings = _settings(pg_url, tenant)
    first = backfill(settings, tenant.run_id, chunk_accounts=CHUNK * 3)
    full = _natural(pg_url)
    last = first.chunks[-1]
    history = list_applies(settings)
    chunk_rows = history.filter(pl.col("apply_id") == last.apply_id).row(0, named=True)
    assert chunk_rows["plan_id"] == f"{first.backfill_id}/chunk-{last.chunk:05d}"
    assert chunk_rows["ops_applied"] == last.ops_applied > 0
    assert f"accounts {last.first_key}…{last.last_key}" in chunk_rows["message"]
    assert history.height == len(first.chunks)  # one apply per chunk

    undo = revert_apply(last.apply_id, settings, yes=True)
    assert undo.status == "complete" and undo.ops_applied == last.ops_applied
    kept = {r[0] for r in rows(pg_url, "SELECT zuora_account_id FROM billing_accounts")}
    ids = pl.read_parquet(tenant.data / "snapshots" / tenant.run_id / "zuora" /
                          "Account.parquet")["Id"].to_list()
    gone = [a for a in ids if last.first_key <= a <= last.last_key]
    assert gone and not kept & set(gone), "the chunk's accounts are deleted"
    assert len(kept) == ACCOUNTS - len(gone)
    assert one(pg_url, "SELECT count(*) FROM zuora_local_subscriptions WHERE account_id IN "
                       f"({', '.join(repr(a) for a in gone)})") == 0

    # a partial copy: one of the reverted accounts is back, written by someone else with
    # another name; the re-run fills the rest around it and never touches it
    planted = gone[0]
    with connect(pg_url) as db, db.transaction():
        db.execute(hatch_sql("test-partial-copy"))
        db.execute("INSERT INTO billing_accounts (zuora_account_id, zuora_account_name) "
                   f"VALUES ('{planted}', 'kept as it is')")
    again = backfill(settings, tenant.run_id, chunk_accounts=CHUNK * 3)
    assert [c.chunk for c in again.chunks if c.status == "committed"] == [last.chunk]
    assert again.skipped == 0
    assert rows(pg_url, f"SELECT zuora_account_name, bill_to_contact_id FROM billing_accounts "
                        f"WHERE zuora_account_id = '{planted}'") == [("kept as it is", None)]
    filled = _natural(pg_url)
    for table in full:
        if table != "billing_accounts":
            assert filled[table] == full[table], table
    assert len(filled["billing_accounts"]) == ACCOUNTS

def test_the_set_based_path_keeps_empty_texts_nulls_and_odd_characters(pg_url: str) -> None:
    """Values go to PostgreSQL as typed CSV columns: an empty text stays empty, a NULL stays
    NULL, quotes, commas, backslashes and line breaks arrive as written; the audit encodes
    timestamps as the executor does (microseconds only when not zero)."""
    _empty(pg_url)
    odd = 'a,"b"\nc\\d ü'
    afters = [{"email": "one@example.com", "first_name": "", "last_name": odd, "company": None,
               "billable": True, "confirmed_at": "2026-01-02T03:04:05.500000",
               "created_at": "2026-01-02T03:04:05.000000"},
              {"email": "two@example.com", "first_name": None, "last_name": "\\N",
               "company": "", "billable": False, "confirmed_at": None,
               "created_at": "2026-01-02T03:04:06.000000"}]
    frame = pl.DataFrame(
        [(i + 1, "orders", f"people:{a['email']}", "customers", "insert",
          json.dumps({"email": a["email"]}), None, json.dumps(a), "test", ["f"])
         for i, a in enumerate(afters)], schema=OPS_SCHEMA, orient="row")
    with connect(pg_url) as db:
        sess = Session(db)
        with sess.transaction(rollback=True):
            db.execute(hatch_sql("test-bulk-values"))
            res = apply_chunk(sess, frame, apply_id="ap-test-values", now=utc_now())
            assert res.applied == 2
            got = sess.rows("SELECT first_name, last_name, company, billable FROM customers "
                            "ORDER BY email")
            audit = [json.loads(a) for (a,) in sess.rows(
                "SELECT after FROM recon_repair_audit WHERE apply_id = 'ap-test-values' "
                "ORDER BY seq")]
    assert got == [("", odd, None, True), (None, "\\N", "", False)]
    assert audit[0]["confirmed_at"] == "2026-01-02T03:04:05.500000"
    assert audit[0]["created_at"] == "2026-01-02T03:04:05"
    assert audit[1]["confirmed_at"] is None and audit[1]["company"] == ""


def _audit(url: str) -> list[tuple]:
    """Every backfill chunk's audit rows as (chunk, seq, table, op, key, before, after), the
    images parsed, local timestamps left out and surrogate ids replaced by natural keys."""
    with connect(url) as db:
        frames = {t: db.read_table(t) for t in NATURAL}
    maps = {t: {str(i): k for i, k in zip(f["id"].to_list(), f[NATURAL[t]].to_list(),
                                           strict=True)} for t, f in frames.items()}

    def img(table: str, text: str | None) -> dict | None:
        if text is None:
            return None
        out = {}
        for c, v in json.loads(text).items():
            if c in LOCAL_TIMES or (c == "id" and table not in NATURAL):
                continue
            target = NATURAL.get(table) if c == "id" else None
            target = REFS.get((table, c), target) if c != "id" else table
            out[c] = maps[target].get(str(v)) if target in maps and v is not None else v
        return out

    return sorted(
        (chunk, seq, table, op, img(table, key), img(table, before), img(table, after))
        for chunk, seq, table, op, key, before, after in rows(url, """
            SELECT c.chunk, a.seq, a.table_name, a.op, a.key, a.before, a.after
            FROM recon_repair_audit a JOIN recon_backfill_chunks c ON c.apply_id = a.apply_id
        """))

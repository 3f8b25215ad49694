"""Repair end to end on a real PostgreSQL local database: a generated tenant with every auto
scenario, served by the Zuora sandbox over HTTP → extract → validate → reconcile → plan →
apply → a fresh extract → reconcile shows zero auto findings, the human findings unchanged,
and every row outside the plan byte-for-byte as it was."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from core.config import Secret, Settings
from core.localdb.connect import connect
from core.localdb.identity import read_identity
from core.localdb.schema import all_tables
from extract.extractor import run_extract
from reconcile.engine import reconcile_snapshot, resolve_snapshot
from repair.apply import apply_plan, revert_apply
from repair.plan import write_plan
from repair.planner import build_plan
from sandbox.generate.run import Options, generate
from sandbox.server import SandboxServer

SECRET = "sandbox-secret"


def _checksums(url: str) -> dict[str, list[str]]:
    """Per table: the sorted md5 of every row (all columns)."""
    out = {}
    with connect(url) as db:
        for table in all_tables():
            out[table] = sorted(db.query(
                f"SELECT md5(CAST(t.* AS TEXT)) AS h FROM {table} t")["h"].to_list())
    return out


def _extract_reconcile(settings: Settings):
    manifest = run_extract(settings, "full")
    snap = resolve_snapshot(settings.data_dir, manifest.run_id)
    return reconcile_snapshot(snap, settings.data_dir)


@pytest.mark.slow
@pytest.mark.postgres
def test_plan_apply_then_a_fresh_reconcile_has_no_auto_findings(tmp_path: Path,
                                                                 pg_url: str) -> None:
    tenant = tmp_path / "tenant"
    generate(Options(accounts=500, seed=13, drift=0.06), tenant, db_url=pg_url)
    with SandboxServer(tenant, client_id="recon", client_secret=SECRET) as srv:
        srv.store.preload()
        settings = Settings(zuora_base_url=srv.url, zuora_client_secret=Secret(SECRET),
                            local_database_url=pg_url, data_dir=tmp_path / "data")
        first = _extract_reconcile(settings)
        auto = first.open.filter(pl.col("action") == "auto")
        human = first.open.filter(pl.col("action") == "human")
        assert auto.height > 100 and human.height > 10
        plan = build_plan(settings.data_dir, first.run_id, local_database_url=pg_url)
        # the target's identity travels: local export (manifest) → plan, never the settings
        with connect(pg_url) as db:
            assert plan.local_identity == read_identity(db)
        path = write_plan(plan, tmp_path / "plan.json")
        before = _checksums(pg_url)
        dry = apply_plan(path, settings, force=True)
        assert dry.dry_run and _checksums(pg_url) == before, "a dry run writes nothing"
        result = apply_plan(path, settings, yes=True, force=True)
        assert result.status == "complete", result.skipped
        after = _checksums(pg_url)

        second = _extract_reconcile(settings)
    still_auto = second.open.filter(pl.col("action") == "auto")
    assert still_auto.height == 0, still_auto.select("object", "key", "kind", "rule", "field",
                                                     "explanation")
    assert set(second.open["fingerprint"]) == set(human["fingerprint"]), \
        "human findings are neither repaired nor created"
    assert set(second.drift.filter(pl.col("status") == "resolved")["fingerprint"]) == set(
        auto["fingerprint"])

    # every row the plan did not touch is unchanged; every changed row is in the audit
    with connect(pg_url) as db:
        audit = db.query("SELECT table_name, op, before, after FROM recon_repair_audit "
                         "WHERE apply_id = %s", (result.apply_id,))
    touched = audit.group_by("table_name").len()
    for table in all_tables():
        old, new = set(before[table]), set(after[table])
        n = int(touched.filter(pl.col("table_name") == table)["len"].sum() or 0)
        assert len(old - new) <= n and len(new - old) <= n, table
        if n == 0:
            assert old == new, f"{table} changed although the plan does not touch it"

    # and the apply can be undone exactly (the audit tables themselves aside)
    undo = revert_apply(result.apply_id, settings, yes=True, force=True)
    assert undo.status == "complete", undo.skipped
    assert _checksums(pg_url) == before

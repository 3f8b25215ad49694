"""Snapshot retention (issue 17): `recon snapshots prune` removes old snapshots but never the
next incremental's base, a newer never-validated candidate, the marks' snapshot or the
snapshot of a saved plan not applied yet; it lists what it removed and kept, `--dry-run`
removes nothing, `--json` keeps its schema; `snapshots.keep_days` prunes after a job run."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import pytest

from core.config import Settings
from core.localdb.connect import connect
from core.snapshot import list_snapshots
from jobs.cli import main
from jobs.retention import prune_snapshots
from repair import audit
from repair.apply import _apply_row
from repair.audit import Session
from tests.jobs.test_lineage import NOW, make
from tests.support.json_schema import check
from tests.support.repair import plan_doc


def _plan(data: Path, run_id: str, plan_id: str) -> None:
    """A saved plan of ``run_id`` under DATA/runs/, an hour old: still applicable (the
    snapshots' clock, NOW, is earlier: a plan made since is younger still)."""
    d = data / "runs" / run_id
    d.mkdir(parents=True)
    created = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    (d / "repair-plan.json").write_text(json.dumps(plan_doc(
        [], plan_id=plan_id, run_id=run_id, created_at=created,
        local_identity={"uuid": "u", "dialect": "duckdb", "path": "/x.duckdb"})))


@pytest.fixture
def world(tmp_path: Path) -> tuple[Settings, dict[str, str]]:
    """Old and young snapshots with every reason to keep one, and a local database whose
    audit records that one saved plan was applied."""
    data = tmp_path / "data"
    runs = {
        "applied_plan": make(data, "20261001T000000000000Z-0001", age_days=52),
        "failed": make(data, "20261002T000000000000Z-0002", age_days=51, failed=True),
        "unapplied_plan": make(data, "20261003T000000000000Z-0003", age_days=50),
        "base": make(data, "20261004T000000000000Z-0004", age_days=49),
        "unvalidated": make(data, "20261005T000000000000Z-0005", age_days=48, verdict=None),
        "catalog": make(data, "20261006T000000000000Z-0006", age_days=47, scope="catalog"),
        "young": make(data, "20261120T000000000000Z-0007", age_days=2, verdict=None),
    }
    _plan(data, runs["applied_plan"], "plan-applied")
    _plan(data, runs["unapplied_plan"], "plan-waiting")
    url = f"duckdb:///{tmp_path / 'local.duckdb'}"
    with connect(url) as db:
        db.init_schema()
        audit.insert_apply(Session(db), _apply_row(
            "ap-1", "apply", plan_id="plan-applied", run_id=runs["applied_plan"],
            plan_path=None, ops=0, status="complete"))
    settings = replace(Settings(), data_dir=data, local_database_url=url)
    return settings, runs


def test_prune_keeps_the_base_a_planned_snapshot_and_what_lineage_needs(world) -> None:
    settings, runs = world
    dry = prune_snapshots(settings, 30, dry_run=True, now=NOW)
    assert {i.run_id for i in dry.removed} == {runs["applied_plan"], runs["failed"]}
    assert len(list_snapshots(settings.data_dir)) == 7  # a dry run removes nothing
    res = prune_snapshots(settings, 30, now=NOW)
    assert [i.run_id for i in res.removed] == [runs["applied_plan"], runs["failed"]]
    assert res.bytes_freed > 0 and all(not Path(i.path).exists() for i in res.removed)
    why = {i.run_id: i.reason for i in res.kept}
    assert "next incremental's base" in why[runs["base"]]
    assert "not applied yet" in why[runs["unapplied_plan"]]
    assert "never validated" in why[runs["unvalidated"]]
    assert "catalog job's baseline" in why[runs["catalog"]]
    left = {s.run_id for s in list_snapshots(settings.data_dir)}
    assert left == set(runs.values()) - {runs["applied_plan"], runs["failed"]}


def test_prune_on_the_command_line(world, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    settings, runs = world
    monkeypatch.setenv("RECON_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("RECON_LOCAL_DATABASE_URL", settings.local_database_url)
    monkeypatch.delenv("RECON_SNAPSHOTS_KEEP_DAYS", raising=False)
    assert main(["snapshots", "prune"]) == 2  # no retention given
    assert "--keep-days" in capsys.readouterr().err
    assert main(["snapshots", "--json"]) == 0
    listed = check("snapshots", capsys.readouterr().out)
    assert {s["run_id"] for s in listed["snapshots"]} == set(runs.values())
    assert main(["snapshots", "prune", "--keep-days", "30", "--dry-run", "--json"]) == 0
    doc = check("snapshots prune", capsys.readouterr().out)
    assert doc["dry_run"] and {i["run_id"] for i in doc["removed"]} == {
        runs["applied_plan"], runs["failed"]}
    monkeypatch.setenv("RECON_SNAPSHOTS_KEEP_DAYS", "30")  # the setting, without the flag
    assert main(["snapshots", "prune"]) == 0
    out = capsys.readouterr().out
    assert "removed 2 snapshot(s) older than 30 days" in out and runs["failed"] in out
    assert "kept 4 older snapshot(s) still needed" in out
    assert len(list_snapshots(settings.data_dir)) == 5


def test_keep_days_prunes_after_a_job_run(world) -> None:
    from jobs.pipeline import run_job

    settings, runs = world
    said: list[str] = []
    done = run_job("nightly", replace(settings, snapshots_keep_days=30.0),
                   steps=lambda *_a, **_k: {"status": "ok", "counts": {}},
                   progress=said.append)
    assert done.status == "ok"
    assert any(m.startswith("pruned 2 snapshot(s) older than 30 days") for m in said)
    assert {s.run_id for s in list_snapshots(settings.data_dir)} == set(runs.values()) - {
        runs["applied_plan"], runs["failed"]}

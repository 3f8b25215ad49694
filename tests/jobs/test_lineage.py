"""Snapshot lineage without a tenant: verdicts folded from checks and acceptances, which
snapshot is a base and a baseline, the full/incremental policy and its reasons, marks that
never move back, and `recon snapshots` on the command line. (The chain over HTTP and
PostgreSQL is in tests/jobs/test_lineage_chain.py.)"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from core.config import Settings
from core.snapshot import Manifest, SnapshotWriter, last_passed, utc_iso
from core.state import StateDB, fold_verdict
from jobs.cli import main
from jobs.lineage import LineageError, accept, choose, promote_marks, snapshot_rows
from tests.support.json_schema import check

NOW = dt.datetime(2026, 11, 22, 3, 0, tzinfo=dt.UTC)


def make(data: Path, run_id: str, *, mode: str = "full", age_days: float = 0.0,
         scope: str = "all", verdict: str | None = "passed", failed: bool = False) -> str:
    """A snapshot directory with a manifest only (no files: the policy reads manifests and
    verdicts), and its verdict recorded as the checks would."""
    t = NOW - dt.timedelta(days=age_days)
    w = SnapshotWriter(data, run_id)
    m = Manifest(run_id=run_id, mode=mode, started_at=utc_iso(t), finished_at=utc_iso(t),
                 scope=scope, hwms={"Account": utc_iso(t - dt.timedelta(hours=2)) or ""})
    if failed:
        w.fail(m, "boom")
    else:
        w.complete(m)
    with StateDB(data) as st:
        if verdict == "passed":
            st.record_check(run_id, "volume", "passed")
            st.record_check(run_id, "contracts", "passed")
        elif verdict == "volume-failed":
            st.record_check(run_id, "volume", "failed", None, "Account: 120 -> 60 rows")
            st.record_check(run_id, "contracts", "passed")
        elif verdict == "contracts-failed":
            st.record_check(run_id, "volume", "passed")
            st.record_check(run_id, "contracts", "failed", None, "Account.Id duplicated")
    return run_id


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return replace(Settings(), data_dir=tmp_path, extract_mode="incremental",
                   extract_full_every_days=7)


def test_verdicts_fold_checks_and_acceptances() -> None:
    p, f = ("passed", None, None), ("failed", "b", "drop")
    assert fold_verdict("r", {"volume": p, "contracts": p}, None).verdict == "passed"
    assert fold_verdict("r", {"volume": p}, None).verdict == "unvalidated"
    assert fold_verdict("r", {}, None).verdict == "unvalidated"
    assert fold_verdict("r", {"volume": f, "contracts": p}, None).verdict == "failed"
    acc = ("real churn", NOW, "ops")
    assert fold_verdict("r", {"volume": f, "contracts": p}, acc).verdict == "accepted"
    # a contract failure is never made good by an acceptance
    assert fold_verdict("r", {"volume": f, "contracts": ("failed", None, "dup")},
                        acc).verdict == "failed"
    assert fold_verdict("r", {"volume": p, "contracts": ("failed", None, "dup")},
                        acc).verdict == "failed"


def test_policy_full_then_incremental_then_weekly_full(settings: Settings) -> None:
    data = Path(settings.data_dir)
    c = choose(settings, None, now=NOW)
    assert (c.mode, c.base, c.baseline) == ("full", None, None)
    assert "no complete snapshot passed validation" in c.reason
    make(data, "20261120T000000000000Z-aaaa", age_days=2)
    c = choose(settings, None, now=NOW)
    assert c.mode == "incremental" and c.base is not None
    assert c.base.run_id == "20261120T000000000000Z-aaaa" and c.base.verdict == "passed"
    assert c.baseline is not None and c.baseline.run_id == c.base.run_id
    c = choose(settings, None, now=NOW + dt.timedelta(days=6))
    assert c.mode == "full" and "full_every_days" in c.reason
    assert choose(settings, "incremental", now=NOW + dt.timedelta(days=6)).mode == "incremental"
    assert choose(replace(settings, extract_mode="full"), None, now=NOW).mode == "full"
    c = choose(settings, "incremental", now=NOW + dt.timedelta(days=31))
    assert c.mode == "full" and "older than Zuora keeps deleted records" in c.reason


def test_a_failed_snapshot_is_never_a_base_nor_a_baseline(settings: Settings) -> None:
    data = Path(settings.data_dir)
    good = make(data, "20261119T000000000000Z-good", age_days=3)
    make(data, "20261120T000000000000Z-drop", age_days=2, verdict="volume-failed")
    make(data, "20261121T000000000000Z-dupe", age_days=1, mode="incremental",
         verdict="contracts-failed")
    make(data, "20261121T120000000000Z-dead", age_days=0.5, failed=True, verdict=None)
    c = choose(settings, None, now=NOW)
    assert c.mode == "incremental" and c.base is not None and c.base.run_id == good
    assert "skipped" in c.reason and "-dupe: failed" in c.reason and "-drop: failed" in c.reason
    assert last_passed(data).run_id == good
    assert last_passed(data, before="20261121T000000000000Z-dupe").run_id == good
    assert last_passed(data, before=good) is None
    # the weekly policy counts passed full exports only: the failed full of 2 days ago is not one
    c = choose(settings, None, now=NOW + dt.timedelta(days=4.5))
    assert c.mode == "full" and good in c.reason


def test_catalog_snapshots_are_baselines_of_catalog_runs_only(settings: Settings) -> None:
    data = Path(settings.data_dir)
    full = make(data, "20261119T000000000000Z-full", age_days=3)
    cat = make(data, "20261120T000000000000Z-catl", age_days=2, scope="catalog")
    assert last_passed(data, "all").run_id == full
    assert last_passed(data, "catalog").run_id == cat
    c = choose(settings, None, now=NOW)
    assert c.base is not None and c.base.run_id == full  # a catalog snapshot is never a base
    c = choose(settings, None, scope="catalog", now=NOW)
    assert c.mode == "full" and c.base is None and c.baseline.run_id == cat


def test_accept_only_a_volume_drop_and_marks_never_move_back(settings: Settings) -> None:
    data = Path(settings.data_dir)
    old = make(data, "20261119T000000000000Z-oldr", age_days=3)
    drop = make(data, "20261120T000000000000Z-drop", age_days=2, verdict="volume-failed")
    dupe = make(data, "20261121T000000000000Z-dupe", age_days=1, verdict="contracts-failed")
    dead = make(data, "20261121T120000000000Z-dead", age_days=0.5, failed=True, verdict=None)
    assert promote_marks(data, next(s for s in _snaps(data) if s.run_id == old))
    with pytest.raises(LineageError, match="cannot be accepted"):
        accept(settings, dupe, "we know")
    with pytest.raises(LineageError, match="not complete"):
        accept(settings, dead, "we know")
    with pytest.raises(LineageError, match="no failed volume check"):
        accept(settings, old, "we know")
    with pytest.raises(LineageError, match="--reason"):
        accept(settings, drop, "  ")
    with pytest.raises(LineageError, match="no snapshot 'nope'"):
        accept(settings, "nope", "x")
    v = accept(settings, drop, "half of the accounts were really closed")
    assert v.verdict == "accepted" and v.accept_reason.startswith("half")
    with StateDB(data) as st:
        assert {m.run_id for m in st.hwms().values()} == {drop}
    c = choose(settings, None, now=NOW)
    assert c.base is not None and c.base.run_id == drop and c.base.verdict == "accepted"
    # accepting an older snapshot later never moves the marks back
    assert not promote_marks(data, next(s for s in _snaps(data) if s.run_id == old))
    with StateDB(data) as st:
        assert {m.run_id for m in st.hwms().values()} == {drop}
    rows = {r["run_id"]: r for r in snapshot_rows(data)}
    assert rows[drop]["verdict"] == "accepted" and rows[drop]["current_marks"]
    assert rows[drop]["accepted_reason"] == "half of the accounts were really closed"
    assert rows[dupe]["verdict"] == "failed" and "duplicated" in rows[dupe]["message"]
    assert rows[dead]["status"] == "failed" and rows[dead]["verdict"] == "not usable"


def _snaps(data: Path):
    from core.snapshot import list_snapshots

    return list_snapshots(data)


def test_snapshots_cli_lists_and_accepts(settings: Settings, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    data = Path(settings.data_dir)
    monkeypatch.setenv("RECON_DATA_DIR", str(data))
    monkeypatch.delenv("RECON_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    make(data, "20261119T000000000000Z-oldr", age_days=3)
    drop = make(data, "20261120T000000000000Z-drop", age_days=2, verdict="volume-failed")
    assert main(["snapshots", "--json"]) == 0
    rows = check("snapshots", capsys.readouterr().out)["snapshots"]
    assert [r["verdict"] for r in rows] == ["failed", "passed"]
    assert main(["snapshots", "accept", drop]) == 2  # --reason is required
    assert "--reason" in capsys.readouterr().err
    assert main(["snapshots", "accept", "nope", "--reason", "x"]) == 2
    assert "no snapshot 'nope'" in capsys.readouterr().err
    assert main(["snapshots", "accept", drop, "--reason", "accounts closed in bulk"]) == 0
    assert main(["snapshots"]) == 0
    out = capsys.readouterr().out
    assert "accepted" in out and "accounts closed in bulk" in out and "(current marks)" in out


def test_a_manual_run_never_takes_a_ticks_key(tmp_path: Path) -> None:
    """Fake steps through the real run_job: a manual run has its own key and does not count as
    the tick having run; `--scheduled --date D` takes D's slot, and D's tick is then a no-op."""
    import functools

    from jobs import runs
    from jobs.cli.run import run_request
    from jobs.pipeline import run_job
    from jobs.scheduler import catch_up_due, job_triggers
    from tests.support.jobs import fake_steps, settings_for

    settings = settings_for(tmp_path)
    steps = functools.partial(fake_steps, work=0.0)
    today = runs.now_utc().date()
    manual = run_job("nightly", settings, steps=steps)
    assert manual.status == "clean"
    due = catch_up_due(settings, job_triggers(settings))
    assert "nightly" in due, "a manual run is not the tick: the catch-up still runs"
    tick = run_job("nightly", settings, trigger="catch-up", day=today, steps=steps)
    assert tick.status == "clean", "the manual run did not make the catch-up a no-op"
    again = run_job("nightly", settings, trigger="schedule", day=today, steps=steps)
    assert again.status == "skipped"

    from jobs.cli import build_parser

    args = build_parser().parse_args(["run", "nightly", "--scheduled", "--date", "2026-11-30"])
    s, request = run_request(args, settings)
    assert request == {"trigger": "schedule", "day": dt.date(2026, 11, 30)}
    assert run_job("nightly", s, steps=steps, **request).status == "clean"
    assert run_job("nightly", s, trigger="schedule", day=dt.date(2026, 11, 30),
                   steps=steps).status == "skipped"
    with StateDB(tmp_path) as st:
        keys = [r[0] for r in st.con.execute(
            "SELECT idem_key FROM job_runs ORDER BY started_at").fetchall()]
    assert keys[0].startswith(f"nightly:{today.isoformat()}:manual:")
    assert keys[1:] == [f"nightly:{today.isoformat()}"] * 2 + ["nightly:2026-11-30"] * 2


@pytest.mark.parametrize("bad", ["-1", "abc", "nan", "inf"])
def test_run_lag_hours_is_validated_where_parsed(bad: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from jobs.cli import build_parser

    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["run", "nightly", "--lag-hours", bad])
    assert e.value.code == 2 and "--lag-hours" in capsys.readouterr().err


def test_the_extract_package_never_imports_a_higher_floor() -> None:
    """The extractor receives its base and verdict; choosing and validating live above it."""
    import ast

    root = Path(__file__).resolve().parents[2] / "extract"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(root)}: {n}" for n in names
                          if n.split(".")[0] in ("expectations", "reconcile", "reports", "jobs")]
    assert offenders == []


def test_contract_verdicts_judge_the_zuora_side(tmp_path: Path) -> None:
    """A duplicated Zuora key fails the verdict (never a base); a broken local table stops the
    run but the Zuora files it holds are still a sound base."""
    import polars as pl

    from expectations.errors import ContractError
    from jobs.lineage import validate_recorded
    from tests.support.expectations import run_id_at, world_frames, write_snapshot

    zuora, local = world_frames()
    z = {k: v.head(50) for k, v in zuora.items()}
    loc = {k: v.head(50) for k, v in local.items()}
    s = replace(Settings(), data_dir=tmp_path, tenant_tz="America/Los_Angeles")
    dup = dict(z, Account=pl.concat([z["Account"], z["Account"].head(1)]))
    bad_zuora = write_snapshot(tmp_path, dup, loc, run_id=run_id_at(0))
    with pytest.raises(ContractError, match="more than once"):
        validate_recorded(bad_zuora, tmp_path, settings=s, gx=False)
    with StateDB(tmp_path) as st:
        v = st.verdict(bad_zuora.run_id)
    assert (v.verdict, v.contracts) == ("failed", "failed") and "Account" in v.message
    bad_local = write_snapshot(tmp_path, z, dict(loc, customers=loc["customers"].drop(
        loc["customers"].columns[-1])), run_id=run_id_at(60))
    with pytest.raises(ContractError):
        validate_recorded(bad_local, tmp_path, settings=s, gx=False)
    with StateDB(tmp_path) as st:
        v = st.verdict(bad_local.run_id)
    assert v.contracts == "passed" and v.volume is None and v.verdict == "unvalidated"


def test_too_many_quarantined_records_fail_the_verdict(tmp_path: Path) -> None:
    """More than validate.max_quarantine_share quarantined stops the run (issue 13): such a
    snapshot is failed, so it is never a base and its marks never become current."""
    from core.snapshot import find_complete
    from expectations.errors import QuarantineError
    from jobs.lineage import record_validation

    run_id = make(tmp_path, "20261121T000000000000Z-quar", verdict=None)
    snap = find_complete(tmp_path, run_id)
    assert snap is not None
    v = record_validation(tmp_path, snap, error=QuarantineError(
        "too many records quarantined: Account 3 of 120 (2.50%)"))
    assert (v.verdict, v.contracts) == ("failed", "failed") and "Account 3 of 120" in v.message
    with StateDB(tmp_path) as st:
        assert st.verdict(run_id).verdict == "failed"


def test_a_snapshot_that_failed_validation_is_never_reconciled(tmp_path: Path) -> None:
    """Issue 13 point 1: a complete snapshot whose volume check failed is refused by the
    reconciler too (by hand, `recon reconcile --run`), naming the way out; once an operator
    accepts the drop it reconciles. A snapshot nobody validated is not refused."""
    from jobs.lineage import accept
    from reconcile.load import ReconcileError, check_reconcilable
    from tests.support.expectations import run_id_at, world_frames, write_snapshot

    zuora, local = world_frames()
    z = {k: v.head(50) for k, v in zuora.items()}
    loc = {k: v.head(50) for k, v in local.items()}
    snap = write_snapshot(tmp_path, z, loc, run_id=run_id_at(0))
    check_reconcilable(snap)  # unvalidated: not refused here (the job validates first)
    with StateDB(tmp_path) as st:
        st.record_check(snap.run_id, "contracts", "passed")
        st.record_check(snap.run_id, "volume", "failed", None, "Account: 100 -> 50 rows")
    with pytest.raises(ReconcileError, match="failed validation") as e:
        check_reconcilable(snap)  # what every reconcile (and so every plan) goes through
    assert "Account: 100 -> 50 rows" in str(e.value)
    assert f"recon snapshots accept {snap.run_id}" in str(e.value)
    s = replace(Settings(), data_dir=tmp_path)
    assert accept(s, snap.run_id, "accounts closed in bulk").verdict == "accepted"
    check_reconcilable(snap)

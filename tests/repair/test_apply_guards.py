"""Repair guards, the repair lock held by another process, and ``kill -9`` in the middle of an
apply — on DuckDB and on a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import re
import signal
import subprocess
from pathlib import Path

import duckdb
import pytest

from expectations.results import CheckResult, results_frame, store_results
from repair import audit
from repair.apply import apply_plan, list_applies, revert_apply
from repair.guards import (
    ChangeFractionExceeded,
    LockHeld,
    PlanTooOld,
    SnapshotIncomplete,
    ValidationFailed,
)
from repair.lock import lock_file_path
from tests.support.repair import (
    account_updates,
    dump,
    one,
    retry_locked,
    rows,
    settings_for,
    spawn,
    utc_iso,
    wait_for_line,
    write_plan,
)


def _refused_unchanged(db_url: str, tmp_path: Path, plan: Path, exc: type, match: str,
                       **settings_kw: object) -> str:
    """The apply with --yes refuses with ``exc`` (its dry run lists the guard and previews);
    nothing changes; the --yes refusal is recorded. Returns the message."""
    settings = settings_for(db_url, tmp_path, **settings_kw)
    before = dump(db_url)
    dry = apply_plan(plan, settings)  # a dry run previews, naming the guard --yes trips
    assert [t.guard for t in dry.guards] == [exc.guard] and re.search(match, dry.guards[0].message)
    assert dry.ops_planned and one(db_url, f"SELECT count(*) FROM {audit.APPLIES}") == 0
    with pytest.raises(exc, match=match) as e:
        apply_plan(plan, settings, yes=True)
    assert dump(db_url) == before
    h = list_applies(settings)
    assert h["status"].to_list() == ["refused"] and h["message"][0] == str(e.value)
    assert one(db_url, f"SELECT count(*) FROM {audit.AUDIT}") == 0
    return str(e.value)


def _passes(plan: Path, settings: object, n: int = 1, **kw: object) -> bool:
    """The dry run finds no guard --yes would trip and would apply ``n`` operations."""
    dry = apply_plan(plan, settings, **kw)
    return dry.guards == [] and dry.ops_applied == n


def test_incomplete_snapshot_is_refused(url: str, tmp_path: Path) -> None:
    plan = write_plan(url, tmp_path / "p.json", account_updates(url, 1), snapshot_complete=False)
    msg = _refused_unchanged(url, tmp_path, plan, SnapshotIncomplete, "not complete")
    assert "recon extract" in msg and "run-test" in msg


def test_failed_validation_is_refused(url: str, tmp_path: Path) -> None:
    plan = write_plan(url, tmp_path / "p.json", account_updates(url, 1), validation="failed")
    _refused_unchanged(url, tmp_path, plan, ValidationFailed, "failed validation")


def _state_checks(data_dir: Path, results: list[tuple[str, str, str, str]]) -> None:
    """recon's state holding these check results, stored by ``expectations`` itself (the
    writer whose reader the guard uses)."""
    runs: dict[str, list[CheckResult]] = {}
    for run_id, rule, severity, outcome in results:
        runs.setdefault(run_id, []).append(CheckResult(
            run_id=run_id, source="gx", suite="account", object="Account", column=None,
            rule=rule, severity=severity, outcome=outcome, message="3 rows break it"))
    for run_id, checks in runs.items():
        store_results(data_dir, run_id, results_frame(checks))


def test_validation_failures_recorded_in_state_are_refused(url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    plan = write_plan(url, tmp_path / "p.json", account_updates(url, 1), validation="not_run")
    # a state without check_results, then only passes, warnings and other runs: applies
    duckdb.connect(str(data / "state.duckdb")).close()
    assert _passes(plan, settings_for(url, data))
    (data / "state.duckdb").unlink()
    _state_checks(data, [("run-test", "balance_not_null", "error", "passed"),
                         ("run-test", "name_length", "warning", "failed"),
                         ("run-older", "currency_known", "error", "failed")])
    assert _passes(plan, settings_for(url, data))
    (data / "state.duckdb").unlink()
    _state_checks(data, [("run-test", "currency_known", "error", "failed"),
                         ("run-test", "suite_broken", "error", "error")])
    msg = _refused_unchanged(url, data, plan, ValidationFailed, "2 failed error-severity")
    assert "currency_known" in msg and "suite_broken" in msg


def test_a_plan_older_than_the_limit_is_refused(url: str, tmp_path: Path) -> None:
    plan = write_plan(url, tmp_path / "p.json", account_updates(url, 1), created_at=utc_iso(30))
    msg = _refused_unchanged(url, tmp_path, plan, PlanTooOld, "30.0 hours ago")
    assert "repair.max_plan_age_hours (24)" in msg
    assert _passes(plan, settings_for(url, tmp_path, repair_max_plan_age_hours=48.0))
    now = dt.datetime.now(dt.UTC) - dt.timedelta(hours=10)  # the `now` parameter is honoured
    assert _passes(plan, settings_for(url, tmp_path), now=now)


def test_changing_too_much_of_a_table_needs_force(url: str, tmp_path: Path) -> None:
    n = one(url, "SELECT count(*) FROM billing_accounts")  # 40: 2 rows = 5% pass, 3 do not
    assert _passes(write_plan(url, tmp_path / "ok.json", account_updates(url, 2)),
                   settings_for(url, tmp_path, repair_max_change_fraction=0.05), n=2)
    plan = write_plan(url, tmp_path / "p.json", account_updates(url, 3))
    msg = _refused_unchanged(url, tmp_path, plan, ChangeFractionExceeded, "--force",
                             repair_max_change_fraction=0.05)
    assert f"3 of the {n} rows of billing_accounts (7.5%)" in msg
    assert "repair.max_change_fraction (5%)" in msg
    result = apply_plan(plan, settings_for(url, tmp_path, repair_max_change_fraction=0.05),
                        yes=True, force=True)
    assert result.status == "complete" and result.ops_applied == 3
    assert any("--force" in n for n in result.notes)
    # the revert is under the same guard
    with pytest.raises(ChangeFractionExceeded, match="reverting"):
        revert_apply(result.apply_id, settings_for(url, tmp_path,
                                                   repair_max_change_fraction=0.05), yes=True)
    assert revert_apply(result.apply_id, settings_for(url, tmp_path), yes=True).ops_applied == 3


HOLD_LOCK = """
import sys, time
from repair.lock import RepairLock
lock = RepairLock(sys.argv[1] if len(sys.argv) > 1 else {url!r}, "ap-holder-1", "apply")
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def test_a_lock_held_by_another_process_is_refused_and_freed_by_kill_9(
        url: str, tmp_path: Path) -> None:
    plan = write_plan(url, tmp_path / "p.json", account_updates(url, 1))
    settings = settings_for(url, tmp_path)
    holder = spawn(HOLD_LOCK.format(url=url))
    try:
        wait_for_line(holder, "stdout", "locked")
        before = dump(url)
        for yes in (False, True):
            with pytest.raises(LockHeld, match="another repair holds the lock") as e:
                apply_plan(plan, settings, yes=yes)
            assert "ap-holder-1" in str(e.value) and str(holder.pid) in str(e.value)
        with pytest.raises(LockHeld):
            revert_apply("ap-whatever", settings, yes=True)
        assert e.value.holder["apply_id"] == "ap-holder-1"
        assert dump(url) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the kernel (DuckDB: flock) or the server (PostgreSQL: session ends) frees the lock
    result = retry_locked(lambda: apply_plan(plan, settings, yes=True))
    assert result.ops_applied == 1
    if url.startswith("duckdb"):
        assert lock_file_path(url).exists()  # stale content, no lock: harmless


APPLY_IN_CHILD = """
import sys, time
from core.config import Settings
from repair.apply import apply_plan
from repair.executor import BatchHooks
IN_BATCH, BETWEEN = float(sys.argv[4]), float(sys.argv[5])

def written(b):  # the batch's rows and audit are written; COMMIT has not happened
    if IN_BATCH:
        print(f"batch {b} written, sleeping {IN_BATCH}s before COMMIT", file=sys.stderr,
              flush=True)
        time.sleep(IN_BATCH)

def committed(b):
    time.sleep(BETWEEN)

settings = Settings(local_database_url=sys.argv[1], data_dir=sys.argv[2],
                    repair_max_change_fraction=1.0)
r = apply_plan(sys.argv[3], settings, yes=True, batch_size=5,
               progress=lambda m: print(m, flush=True),
               hooks=BatchHooks(written=written, committed=committed))
print("finished", r.status, flush=True)
"""


def _apply_in_child(url: str, tmp_path: Path, plan: Path, *, in_batch: float = 0.0,
                    between: float = 0.0) -> subprocess.Popen:
    """``apply_plan`` in another process, held open by test hooks passed explicitly
    (:class:`repair.executor.BatchHooks`): ``in_batch`` seconds after each batch's writes,
    before its COMMIT; ``between`` seconds after each commit."""
    return spawn(APPLY_IN_CHILD.replace("sys.argv[1]", repr(url))
                 .replace("sys.argv[2]", repr(str(tmp_path)))
                 .replace("sys.argv[3]", repr(str(plan)))
                 .replace("sys.argv[4]", repr(str(in_batch)))
                 .replace("sys.argv[5]", repr(str(between))))


@pytest.mark.slow
def test_kill_9_mid_apply_leaves_whole_batches_and_a_rerun_completes(
        url: str, tmp_path: Path) -> None:
    ops = account_updates(url, 20)  # 4 batches of 5
    plan = write_plan(url, tmp_path / "p.json", ops)
    original = dump(url)
    child = _apply_in_child(url, tmp_path, plan, in_batch=0.4)
    try:
        # batches 1 and 2 commit; batch 3 has written its rows and audit and waits before
        # COMMIT: kill -9 it there
        wait_for_line(child, "stderr", "batch 3 written")
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL

    def state() -> tuple[dict[str, int], set[str]]:
        names = dict(rows(url, "SELECT zuora_account_id, zuora_account_name "
                               "FROM billing_accounts"))
        batch_of = dict(rows(url, f"SELECT seq, batch FROM {audit.AUDIT}"))
        fixed = {o["key"]["zuora_account_id"] for o in ops
                 if names[o["key"]["zuora_account_id"]] == o["after"]["zuora_account_name"]}
        return batch_of, fixed

    batch_of, fixed = state()
    assert sorted(set(batch_of.values())) == [1, 2]  # batch 3 never committed
    assert sorted(batch_of) == list(range(1, 11))
    # every committed audit row has its change, and nothing else changed
    assert fixed == {o["key"]["zuora_account_id"] for o in ops if o["seq"] <= 10}
    hist = list_applies(settings_for(url, tmp_path))
    assert hist["status"].to_list() == ["running"]  # the killed process never finished

    rerun = retry_locked(lambda: apply_plan(plan, settings_for(url, tmp_path), yes=True,
                                            batch_size=5))
    assert rerun.status == "complete"
    assert [o.status for o in rerun.outcomes] == ["already_applied"] * 10 + ["applied"] * 10
    _, fixed = state()
    assert fixed == {o["key"]["zuora_account_id"] for o in ops}
    hist = list_applies(settings_for(url, tmp_path))
    assert hist["status"].to_list() == ["failed", "complete"]
    assert "abandoned" in hist["message"][0] and hist["ops_applied"][0] == 10
    # the two applies together revert to the original, newest first
    settings = settings_for(url, tmp_path)
    revert_apply(rerun.apply_id, settings, yes=True)
    revert_apply(hist["apply_id"][0], settings, yes=True)
    assert dump(url) == original


@pytest.mark.slow
def test_the_between_batches_hook_holds_the_lock_for_a_real_apply(
        url: str, tmp_path: Path) -> None:
    """A real apply in another process (slowed by a test hook it is given) holds the lock: a second
    apply is refused, naming it; it then finishes normally."""
    plan = write_plan(url, tmp_path / "p.json", account_updates(url, 10))
    child = _apply_in_child(url, tmp_path, plan, between=1.0)
    try:
        wait_for_line(child, "stdout", "batch 1/2")
        with pytest.raises(LockHeld, match=r"apply ap-") as e:
            apply_plan(plan, settings_for(url, tmp_path), yes=True)
        assert str(child.pid) in str(e.value)
        out = wait_for_line(child, "stdout", "finished")
        assert out[-1] == "finished complete"
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    assert list_applies(settings_for(url, tmp_path))["status"].to_list() == ["complete"]

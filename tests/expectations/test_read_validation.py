"""``expectations.results.read_validation``: the one reader of a run's recorded validation
(the planner stamps its verdict into a plan; the repair guards refuse a failed run)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from core.state import state_path
from expectations.results import (
    CheckResult,
    ResultsUnreadable,
    read_validation,
    results_frame,
    store_results,
)


def _check(run_id: str, rule: str, severity: str = "error", outcome: str = "passed",
           source: str = "gx") -> CheckResult:
    return CheckResult(run_id=run_id, source=source, suite="s", object="Account", column=None,
                       rule=rule, severity=severity, outcome=outcome, message=f"{rule} says",
                       sample_keys=["A1"])


def test_verdicts_and_failures(tmp_path: Path) -> None:
    assert read_validation(tmp_path, "r1").verdict == "not_run"
    assert not state_path(tmp_path).exists(), "reading never creates recon's state"
    store_results(tmp_path, "r1", results_frame([
        _check("r1", "b_rule", outcome="failed"), _check("r1", "a_rule", outcome="error",
                                                         source="volume"),
        _check("r1", "warned", severity="warning", outcome="failed"), _check("r1", "ok")]))
    store_results(tmp_path, "r2", results_frame([_check("r2", "ok"),
                                                 _check("r2", "w", "warning", "failed")]))
    r1 = read_validation(tmp_path, "r1")
    assert r1.verdict == "failed" and r1.checks == 4
    # error-severity failures and errors only, by source, object, rule
    assert [(c.source, c.rule, c.outcome) for c in r1.failures] == [
        ("gx", "b_rule", "failed"), ("volume", "a_rule", "error")]
    assert r1.failures[0].message == "b_rule says" and r1.failures[0].sample_keys == ["A1"]
    r2 = read_validation(tmp_path, "r2")
    assert r2.verdict == "passed" and r2.checks == 2 and r2.failures == ()
    assert read_validation(tmp_path, "r3").verdict == "not_run"


def test_a_state_without_results_is_not_run_and_a_locked_one_is_named(tmp_path: Path) -> None:
    duckdb.connect(str(state_path(tmp_path))).close()
    assert read_validation(tmp_path, "r1").verdict == "not_run"
    state_path(tmp_path).write_text("not a database")
    with pytest.raises(ResultsUnreadable, match="cannot read recon's state") as e:
        read_validation(tmp_path, "r1")
    assert e.value.path == state_path(tmp_path)

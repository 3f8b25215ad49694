"""The data directory's layout is declared once (core.layout) and every floor uses it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core import layout as L
from core.layout import DataLayout, run_dir
from core.snapshot import snapshots_dir
from core.state import state_path
from expectations.quarantine import quarantine_dir

REPO = Path(__file__).resolve().parents[2]


def test_the_layout_names_every_place_under_the_data_directory(tmp_path: Path) -> None:
    lay = DataLayout(str(tmp_path))
    assert lay.root == tmp_path
    assert lay.state_file == tmp_path / "state.duckdb"
    assert lay.snapshots == tmp_path / "snapshots"
    assert lay.snapshot_dir("r1") == tmp_path / "snapshots" / "r1"
    assert lay.failed_snapshot_dir("r1") == tmp_path / "snapshots" / "r1.failed"
    assert lay.tmp_snapshot_dir("r1") == tmp_path / "snapshots" / ".tmp-r1"
    assert lay.extract_lock == tmp_path / "snapshots" / ".lock"
    assert lay.runs == tmp_path / "runs"
    assert lay.run_dir("r1") == tmp_path / "runs" / "r1"
    assert lay.quarantine_dir("r1") == tmp_path / "runs" / "r1" / "quarantine"
    assert lay.plan_file("r1") == tmp_path / "runs" / "r1" / "repair-plan.json"
    assert lay.report_html("r1") == tmp_path / "runs" / "r1" / "report.html"
    assert lay.locks == tmp_path / "locks"
    assert lay.job_lock("nightly") == tmp_path / "locks" / "nightly.lock"
    assert lay.crash == tmp_path / "crash"
    assert lay.demo == tmp_path / "demo"
    assert not any(tmp_path.iterdir())  # a layout is pure: it creates nothing


def test_the_layout_is_frozen_and_compares_by_root(tmp_path: Path) -> None:
    lay = DataLayout(tmp_path)
    assert lay == DataLayout(str(tmp_path)) and hash(lay) == hash(DataLayout(tmp_path))
    with pytest.raises(AttributeError):
        lay.root = Path("/elsewhere")  # type: ignore[misc]


def test_the_floors_ask_the_layout(tmp_path: Path) -> None:
    lay = DataLayout(tmp_path)
    assert snapshots_dir(tmp_path) == lay.snapshots
    assert state_path(tmp_path) == lay.state_file
    assert quarantine_dir(tmp_path, "r9") == lay.quarantine_dir("r9")
    assert run_dir(tmp_path, "r9") == lay.run_dir("r9")
    assert (L.DRIFT_FILE, L.SUMMARY_FILE, L.PLAN_FILE, L.PLAN_SUMMARY_FILE, L.REPORT_JSON) == (
        "drift.parquet", "summary.json", "repair-plan.json", "repair-plan.txt", "report.json")


def test_no_production_module_restates_the_layout() -> None:
    """The directory names are spelled in core/layout.py only: a restatement elsewhere (as
    ``RUNS = "runs"`` once was, three times) fails here, naming the file."""
    names = ['"runs"', '"snapshots"', '"locks"', '"crash"', '"demo"', '"state.duckdb"',
             '"drift.parquet"', '"summary.json"', '"repair-plan.json"', '"report.html"']
    out = subprocess.run(
        ["git", "grep", "-n", "-F", *[x for n in names for x in ("-e", f"/ {n}")], "--",
         "*.py", ":!tests", ":!bench", ":!sandbox", ":!mutate", ":!tools"],
        cwd=REPO, capture_output=True, text=True)
    assert out.returncode in (0, 1), out.stderr
    assert out.stdout == "", f"restated layout (use core.layout):\n{out.stdout}"

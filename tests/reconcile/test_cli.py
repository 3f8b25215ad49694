"""End to end through the real path: generated tenant → Zuora sandbox over HTTP → extract →
reconcile, compared with the generator's labels; and `recon reconcile` exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from core.snapshot import Manifest, SnapshotWriter
from jobs.cli import main
from tests.support.findings import compare

DEMO = ["--accounts", "500", "--drift", "0.05", "--seed", "7"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("demo")
    assert main(["-q", "demo", "--data-dir", str(data), *DEMO]) == 0
    return data


def _runs(data: Path) -> list[Path]:
    return sorted(p for p in (data / "runs").iterdir() if (p / "drift.parquet").is_file())


@pytest.mark.slow
def test_http_extract_then_reconcile_matches_every_label(demo_dir: Path) -> None:
    drift = pl.read_parquet(_runs(demo_dir)[0] / "drift.parquet")
    labels = pl.read_parquet(demo_dir / "demo" / "labels.parquet")
    assert {f"D{i:02d}" for i in range(1, 27)} <= set(labels["scenario"])
    mismatch = compare(drift, labels)  # as multisets: a finding emitted twice fails
    assert not mismatch, str(mismatch)


def _summary_line(out: str, run: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(f"run {run}:"))


@pytest.mark.slow
def test_reconcile_again_marks_findings_persisting_and_fails_on_drift(demo_dir: Path,
                                                                      capsys) -> None:
    env_cfg = demo_dir / "recon.toml"
    env_cfg.write_text(f'[paths]\ndata_dir = "{demo_dir}"\n')
    first = _runs(demo_dir)[0].name
    # Reconciling the same snapshot again replaces its run: every finding still new.
    assert main(["--config", str(env_cfg), "reconcile", "--run", first]) == 0
    drift = pl.read_parquet(_runs(demo_dir)[0] / "drift.parquet")
    opened = drift.filter(pl.col("status") == "new")
    human = opened.filter(pl.col("action") == "human").height
    assert 0 < human < opened.height and set(drift["status"]) <= {"new", "pending"}
    line = _summary_line(capsys.readouterr().out, first)
    assert f"({opened.height:,} new, 0 persisting)" in line, line
    assert f"{human:,} need a person" in line, line
    # A second demo extracts the same tenant again: the same findings, now persisting since
    # the first run, and the next reconcile exits 1 under --fail-on-drift.
    assert main(["-q", "demo", "--data-dir", str(demo_dir), *DEMO]) == 0
    capsys.readouterr()
    runs = _runs(demo_dir)
    assert len(runs) == 2 and runs[0].name == first
    again = pl.read_parquet(runs[1] / "drift.parquet")
    assert sorted(again["fingerprint"]) == sorted(drift["fingerprint"])  # the same findings
    assert set(again["status"]) <= {"persisting", "pending"}  # none new, none resolved
    persisting = again.filter(pl.col("status") == "persisting")
    assert set(opened["fingerprint"]) <= set(persisting["fingerprint"])
    assert set(persisting["first_seen_run"]) == {first}
    assert main(["--config", str(env_cfg), "-q", "reconcile", "--fail-on-drift"]) == 1
    assert capsys.readouterr().out == ""
    summary = json.loads((runs[1] / "summary.json").read_text())
    assert summary["previous_run"] == first
    assert summary["summary"]["by_status"].get("persisting") == persisting.height
    assert summary["summary"]["by_status"].get("new", 0) == 0


@pytest.mark.slow
def test_a_reconcile_by_hand_is_a_run_in_the_history(demo_dir: Path, capsys) -> None:
    """Issue 17: a snapshot reconciled by hand (as if from `recon extract`) is a run — job
    `reconcile`, trigger `manual`, its id the snapshot's — listed by `runs` and `status`;
    `--json` keeps its contract. (A job's snapshot reconciled again, as the test above does,
    stays that job's run; reconciling by hand again replaces the row: test_runs_cli.)"""
    import shutil

    from tests.support.json_schema import check

    cfg = demo_dir / "recon.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{demo_dir}"\n[schedule]\nnightly = ""\n'
                   'catalog = ""\nfull = ""\n')
    hand = "20991231T000000000000Z-hand"  # the newest: as if `recon extract` made it now
    src = demo_dir / "snapshots" / _runs(demo_dir)[-1].name
    shutil.copytree(src, demo_dir / "snapshots" / hand)
    manifest = demo_dir / "snapshots" / hand / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "run_id": hand}))

    def recon(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["--config", str(cfg), *argv])
        return code, capsys.readouterr().out

    code, out = recon("reconcile", "--run", hand, "--json")
    doc = check("reconcile", out)
    assert code == 0 and doc["run_id"] == doc["snapshot_run"] == hand
    assert doc["findings"] == sum(o["findings"] for o in doc["objects"]) > 0
    assert doc["by_status"].get("persisting", 0) > 0 and Path(doc["drift_path"]).is_file()
    code, out = recon("runs", "--json")
    listed = check("runs", out)["runs"]
    manual = [r for r in listed if r["job"] == "reconcile"]
    assert code == 0 and len(manual) == 1
    assert (manual[0]["run_id"], manual[0]["trigger"], manual[0]["status"]) == (
        hand, "manual", "drift")
    assert {r["trigger"] for r in listed if r["job"] == "full"} == {"demo"}
    code, out = recon("status", "--json")
    jobs = {j["job"]: j for j in check("status", out)["jobs"]}
    assert code == 0 and jobs["reconcile"]["latest_attempt"]["run_id"] == hand
    assert jobs["reconcile"]["schedule"] is None and jobs["reconcile"]["state"] == "ok"


def test_reconcile_refuses_a_failed_snapshot_with_exit_2(tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "recon.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{tmp_path}"\n')
    w = SnapshotWriter(tmp_path, "20261101T000000Z")
    w.fail(Manifest(run_id="20261101T000000Z", mode="full"), "Zuora returned 0 rows")
    assert main(["--config", str(cfg), "reconcile", "--run", "20261101T000000Z"]) == 2
    err = capsys.readouterr().err
    assert "is failed (Zuora returned 0 rows)" in err and "only complete snapshots" in err
    assert main(["--config", str(cfg), "reconcile"]) == 2
    assert "no complete snapshot" in capsys.readouterr().err

"""End to end through the real path: generated tenant → Zuora sandbox over HTTP → extract →
reconcile, compared with the generator's labels; and `recon reconcile` exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from extract.snapshot import Manifest, SnapshotWriter
from jobs.cli import main

KEYS = ["object", "key", "kind", "rule", "field", "action"]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("demo")
    assert main(["-q", "demo", "--data-dir", str(data), "--accounts", "500", "--drift",
                 "0.05", "--seed", "7"]) == 0
    return data


def _runs(data: Path) -> list[Path]:
    return sorted(p for p in (data / "runs").iterdir() if (p / "drift.parquet").is_file())


def test_http_extract_then_reconcile_matches_every_label(demo_dir: Path) -> None:
    drift = pl.read_parquet(_runs(demo_dir)[0] / "drift.parquet")
    labels = pl.read_parquet(demo_dir / "demo" / "labels.parquet")
    assert {f"D{i:02d}" for i in range(1, 27)} <= set(labels["scenario"])
    expected = labels.filter(pl.col("kind") != "none").select(KEYS).unique()
    got = drift.select(KEYS).unique()
    assert got.join(expected, on=KEYS, how="anti", nulls_equal=True).height == 0
    assert expected.join(got, on=KEYS, how="anti", nulls_equal=True).height == 0


def test_reconcile_again_marks_findings_persisting_and_fails_on_drift(demo_dir: Path,
                                                                      capsys) -> None:
    env_cfg = demo_dir / "recon.toml"
    env_cfg.write_text(f'[paths]\ndata_dir = "{demo_dir}"\n')
    first = _runs(demo_dir)[0].name
    assert main(["--config", str(env_cfg), "reconcile", "--run", first]) == 0
    out = capsys.readouterr().out
    assert f"run {first}:" in out and "need a person" in out
    assert main(["--config", str(env_cfg), "-q", "reconcile", "--fail-on-drift"]) == 1
    assert capsys.readouterr().out == ""
    summary = json.loads((_runs(demo_dir)[-1] / "summary.json").read_text())
    assert summary["findings"] > 0


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

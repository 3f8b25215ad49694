"""``recon callouts status|retry|work|serve`` in-process: the queue and dead letters shown
(text and JSON, exit 1 when a person is needed), requeue, and the refusals with a reason."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from core.config import Settings
from core.inbox import NewEvent, open_inbox
from jobs.cli import main
from tests.support.json_schema import check


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for k in list(__import__("os").environ):
        if k.startswith("RECON_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RECON_LOCAL_DATABASE_URL", f"duckdb:///{tmp_path / 'local.duckdb'}")
    return dataclasses.replace(Settings(), data_dir=tmp_path / "data",
                               local_database_url=f"duckdb:///{tmp_path / 'local.duckdb'}")


def test_status_without_an_inbox(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["callouts", "status"]) == 0
    assert "no callout inbox yet" in capsys.readouterr().out
    assert main(["callouts", "status", "--json"]) == 0
    assert check("callouts status", capsys.readouterr().out)["inbox"] is None


def test_status_retry_and_json(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    with open_inbox(env) as ib:
        ib.store_event(NewEvent("n1", None, "account", (("account", "A1"),), "{}",
                                {"account": 0.0}))
        ib.store_event(NewEvent("n2", None, "contact", (("contact", "C1"),), "{}",
                                {"contact": 3600.0}))
        [c] = ib.claim(limit=1, batch_threshold=100, lease_s=60)
        ib.dead_letter(c, reason="account A1: Currency 'XXX' is not ISO 4217",
                       sync_id="sync-x")
    assert main(["callouts", "status"]) == 1  # a dead letter needs a person
    out = capsys.readouterr().out
    assert "dead letters: 1" in out and "ISO 4217" in out and "C1" in out
    assert main(["callouts", "status", "--json"]) == 1
    doc = check("callouts status", capsys.readouterr().out)
    assert doc["health"]["queue_depth"] == 1 and doc["needs_a_person"]
    assert doc["next"] == ["recon callouts retry --all-dead"]
    [dead] = doc["dead_letters"]
    assert dead["key"] == "A1" and dead["notification_ids"] == ["n1"]
    assert main(["callouts", "retry", str(dead["id"])]) == 0
    assert main(["callouts", "retry", str(dead["id"])]) == 2  # already requeued
    assert "no dead letter" in capsys.readouterr().err
    assert main(["callouts", "status"]) == 0
    assert main(["callouts", "retry"]) == 2


def test_work_needs_postgres_and_serve_needs_auth(env: Settings,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["callouts", "work"]) == 2
    assert "needs a PostgreSQL local side" in capsys.readouterr().err
    assert main(["callouts", "serve", "--port", "0"]) == 2
    assert "needs authentication" in capsys.readouterr().err

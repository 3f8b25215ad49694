"""`recon run`: the whole job against the Zuora sandbox over HTTP and a real PostgreSQL local
database — history, retries of transient failures only, the job lock (and its recovery after
kill -9), alerts without secrets, idempotency, and the catalog-only job."""

from __future__ import annotations

import http.server
import json
import re
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from core.config import Secret
from jobs.pipeline import run_job
from jobs.runs import resolve_run
from tests.support.pipeline import SECRET, job_run_rows, steps

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.postgres


@pytest.mark.slow
def test_nightly_run_records_history_and_a_report(env) -> None:
    _, settings = env
    result = run_job("nightly", settings, steps=steps())
    assert result.status == "drift" and result.attempt == 1
    (row,) = job_run_rows(settings)
    assert row["status"] == "drift" and row["trigger"] == "manual"
    assert row["snapshot_run"] == result.snapshot_run
    counts = json.loads(row["counts"])
    assert counts["new"] > 0 and counts["repair_operations"] > 0
    assert counts["zuora_rows"] > 0 and counts["local_rows"] > 0
    assert row["report_path"] and Path(row["report_path"]).is_file()
    plan = settings.data_dir / "runs" / result.snapshot_run / "repair-plan.json"
    assert plan.is_file(), "the plan is written for review; nothing applied without repair.auto"
    summary = plan.with_suffix(".txt")  # README promises the summary beside it (issue 14 (a))
    assert summary.is_file() and summary.read_text().strip(), "repair-plan.txt is written"
    assert "apply_id" not in counts and "repair" not in counts, "nothing applied"
    # a second manual run: the same findings are now persisting
    again = run_job("nightly", settings, steps=steps())
    assert again.counts["persisting"] == result.counts["new"] and again.counts.get("new", 0) == 0


@pytest.mark.slow
def test_transient_failure_is_retried_and_recorded_as_attempt_2(env) -> None:
    srv, settings = env
    srv.add_fault("aqua_submit", "5xx", times=2, status=503)  # exhausts attempt 1's 2 tries
    result = run_job("nightly", settings, steps=steps())
    assert result.status == "drift" and result.attempt == 2
    first, second = job_run_rows(settings)
    assert (first["status"], first["attempt"], first["trigger"]) == ("failed", 1, "manual")
    assert first["error_class"] == "ExtractError" and "503" in first["error_message"]
    assert (second["status"], second["attempt"], second["trigger"]) == ("drift", 2, "retry")
    assert first["idem_key"] == second["idem_key"]
    # one run id: attempt 2 is <run>.a2, names its snapshot, and the run id resolves to it
    assert result.run_id == first["run_id"] == first["run"] == second["run"]
    assert second["run_id"] == result.attempt_id == result.snapshot_run == f"{result.run_id}.a2"
    assert (settings.data_dir / "snapshots" / second["run_id"]).is_dir()
    assert resolve_run(settings.data_dir, result.run_id).target == second["run_id"]


@pytest.mark.slow
def test_validation_failure_is_not_retried(env) -> None:
    srv, settings = env
    assert run_job("nightly", settings, steps=steps()).status == "drift"
    accounts = srv.store.typed("Account")["Id"].to_list()
    for account in accounts[: int(len(accounts) * 0.3)]:  # 30% of accounts vanish
        srv.store.delete("Account", account)
    result = run_job("full", settings, steps=steps())  # a full export sees the deletions now
    assert result.status == "failed" and result.attempt == 1
    assert type(result.error).__name__ == "VolumeError"
    last = job_run_rows(settings)[-1]
    assert last["status"] == "failed" and last["error_class"] == "VolumeError"
    assert len(job_run_rows(settings)) == 2, "a validation failure is never retried"


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        n = int(self.headers["Content-Length"])
        type(self).bodies.append({"path": self.path, "body": json.loads(self.rfile.read(n))})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.slow
def test_alert_reaches_a_local_receiver_without_secrets(env) -> None:
    srv, settings = env
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Receiver.bodies = []
    hook = f"http://127.0.0.1:{server.server_address[1]}/hooks/T0/B0/tok3n-secret"
    try:
        settings = replace(settings, alerts_webhook_url=Secret(hook),
                           zuora_client_secret=Secret("wrong-secret-value"))
        failed = run_job("nightly", settings, steps=steps())  # bad credentials: not transient
        assert failed.status == "failed" and failed.attempt == 1
        good = run_job("nightly", replace(settings, zuora_client_secret=Secret(SECRET)),
                       steps=steps())
        assert good.status == "drift"
    finally:
        server.shutdown()
    kinds = [b["body"]["recon"]["alert"] for b in _Receiver.bodies]
    assert kinds == ["failed", "drift"]
    fail, drift = (b["body"] for b in _Receiver.bodies)
    assert fail["recon"]["job"] == "nightly" and fail["recon"]["run_id"] == failed.run_id
    assert fail["recon"]["status"] == "failed" and "text" in fail
    assert drift["recon"]["counts"]["new"] >= 1 and drift["recon"]["report_path"]
    # issue 17: the new findings, compactly, by identifiers only (no value, no e-mail)
    lines = drift["recon"]["findings"]
    assert lines and all(line["why"] == "new" for line in lines)
    assert drift["text"].count("\n• ") == len(lines)
    assert not re.search(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.", json.dumps(drift))
    text = json.dumps(_Receiver.bodies)
    for secret in ("wrong-secret-value", SECRET, "tok3n-secret", "postgresql://"):
        assert secret not in text.replace(_Receiver.bodies[0]["path"], ""), secret


@pytest.mark.slow
def test_scheduled_tick_runs_once_per_date(env) -> None:
    _, settings = env
    import datetime as dt

    tick = dt.datetime(2026, 11, 23, 2, 30)
    first = run_job("nightly", settings, trigger="schedule", scheduled_for=tick, steps=steps())
    dup = run_job("nightly", settings, trigger="schedule",
                  scheduled_for=tick + dt.timedelta(hours=1), day=tick.date(), steps=steps())
    assert first.status == "drift" and dup.status == "skipped"
    rows = job_run_rows(settings)
    assert [r["status"] for r in rows] == ["drift", "skipped"]
    assert "duplicate tick" in rows[1]["error_message"]

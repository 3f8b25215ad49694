"""The callout service's alerts: a dead letter, a stale queue, a burst of 400/401 — each once
per window, through the shared webhook primitive (a real local webhook receiver)."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from callouts.alerts import Alerts
from core.config import Secret, Settings
from tests.support.clock import FakeClock


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict]]]:
    """A webhook endpoint on loopback that records the JSON it is posted."""
    got: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/hook", got
    finally:
        srv.shutdown()


def test_alerts_fire_once_per_window(hook: tuple[str, list[dict]]) -> None:
    url, got = hook
    settings = dataclasses.replace(Settings(), alerts_webhook_url=Secret(url),
                                   callouts_alert_rejects=3, callouts_alert_window_s=60,
                                   callouts_alert_oldest_pending_s=900)
    clock = FakeClock()
    alerts = Alerts(settings, clock=clock)
    for _ in range(2):
        alerts.rejected("account", 401)
    assert alerts.sent == []
    for _ in range(5):  # the burst: alerted once, not five times
        alerts.rejected("account", 400)
    assert [a["recon"]["alert"] for a in alerts.sent] == ["rejects"]
    alerts.queue_age(899, 3)
    alerts.queue_age(901, 3)
    alerts.queue_age(950, 3)
    assert [a["recon"]["alert"] for a in alerts.sent] == ["rejects", "stale_queue"]
    clock.advance(61)
    alerts.queue_age(1000, 3)
    alerts.dead_letter("account", ("A1",), "account A1: Currency 'XXX' is not ISO 4217")
    kinds = [a["recon"]["alert"] for a in alerts.sent]
    assert kinds == ["rejects", "stale_queue", "stale_queue", "dead_letter"]
    deadline = time.monotonic() + 5
    while len(got) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sorted(g["recon"]["alert"] for g in got) == sorted(kinds)
    assert "ISO 4217" in alerts.sent[-1]["text"]

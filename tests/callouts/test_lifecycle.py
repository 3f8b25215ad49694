"""The receiver's process lifecycle: SIGTERM drains the sync in flight and exits 0; kill -9
in the middle of a stream loses no event that was answered 200."""

from __future__ import annotations

import json
import signal
import threading
import uuid
from pathlib import Path

import pytest
import requests

from tests.callouts.conftest import auth_header, receiver_env, sign, start_receiver, stop
from tests.callouts.test_receiver import inbox_of, wait_for

AUTH = auth_header()


def _db(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'local.duckdb'}"


def test_sigterm_drains_the_sync_in_flight_and_exits_0(tmp_path: Path) -> None:
    env = receiver_env(tmp_path, _db(tmp_path), FAKE_SYNC_DELAY="0.8",
                       RECON_CALLOUTS_DEBOUNCE_ACCOUNT_S="0")
    r = start_receiver(tmp_path, env)
    try:
        n = uuid.uuid4().hex
        assert r.post("/callouts/account", {"AccountId": "A-term"}, nid=n,
                      auth=AUTH).status_code == 200
        wait_for(lambda: any(s["at"] == "start" for s in r.syncs()))
        r.proc.send_signal(signal.SIGTERM)
        assert r.proc.wait(20) == 0
        assert [s["at"] for s in r.syncs()] == ["start", "end"]  # finished, not cut
        with inbox_of(r) as ib:
            assert ib.pending() == []
            [e] = ib.events()
            assert e.status == "processed"
            assert ib.last_syncs()[0].status == "ok"
    finally:
        stop(r)


@pytest.mark.slow
def test_kill_9_mid_stream_loses_no_accepted_event(tmp_path: Path) -> None:
    env = receiver_env(tmp_path, _db(tmp_path), RECON_CALLOUTS_DEBOUNCE_ACCOUNT_S="60")
    r = start_receiver(tmp_path, env, workers=0)
    accepted: list[str] = []
    stop_posting = threading.Event()

    def stream() -> None:
        with requests.Session() as s:  # keep-alive, like Zuora's dispatcher
            while not stop_posting.is_set():
                n = uuid.uuid4().hex
                try:
                    resp = s.post(r.base + "/callouts/account", json={"AccountId": n[:6]},
                                  headers={"Zuora-Notification-Id": n, "Authorization": AUTH,
                                           "X-Zuora-Signature": _sig(n[:6])}, timeout=5)
                except requests.RequestException:
                    return
                if resp.status_code == 200:
                    accepted.append(n)

    posters = [threading.Thread(target=stream) for _ in range(3)]
    try:
        for t in posters:
            t.start()
        wait_for(lambda: len(accepted) > 50)
        r.proc.kill()  # SIGKILL: no drain, no cleanup
        r.proc.wait(10)
        stop_posting.set()
        for t in posters:
            t.join(10)
        r2 = start_receiver(tmp_path, env, workers=0)
        try:
            with inbox_of(r2) as ib:
                stored = ib.event_ids()
            assert set(accepted) <= stored
            assert len(accepted) > 50
        finally:
            stop(r2)
    finally:
        stop_posting.set()
        stop(r)


def _sig(key: str) -> str:
    return sign(json.dumps({"AccountId": key}).encode())

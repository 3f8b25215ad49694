"""Workers apart from the receiver on the PostgreSQL inbox (``recon callouts work``): two
processes drain one queue without ever syncing a key twice, SIGTERM drains and exits 0, and a
worker killed with -9 mid-sync has its key taken over at once (its connection is gone)."""

from __future__ import annotations

import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.callouts.conftest import (
    Receiver,
    auth_header,
    receiver_env,
    start_receiver,
    start_workers,
    stop,
)
from tests.callouts.test_receiver import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
AUTH = auth_header()


@pytest.fixture
def pg_receiver(pg_url: str, tmp_path: Path) -> Iterator[Receiver]:
    env = receiver_env(tmp_path, pg_url, RECON_CALLOUTS_DEBOUNCE_ACCOUNT_S="0",
                       FAKE_SYNC_DELAY="0.05")
    r = start_receiver(tmp_path, env, workers=0)
    try:
        yield r
    finally:
        stop(r)


def _end(p: subprocess.Popen) -> int:
    p.send_signal(signal.SIGTERM)
    return p.wait(20)


def test_two_worker_processes_share_the_queue(pg_receiver: Receiver) -> None:
    r = pg_receiver
    a, b = start_workers(r.data_dir, r.env, 2), start_workers(r.data_dir, r.env, 2)
    try:
        for i in range(40):
            assert r.post("/callouts/account", {"AccountId": f"A{i % 20}"}, nid=uuid.uuid4().hex,
                          auth=AUTH).status_code == 200
        wait_for(lambda: len({k for s in r.syncs() if s["at"] == "end"
                              for k in s["keys"]}) == 20, timeout=30)
        assert _end(a) == 0 and _end(b) == 0
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
    started = [k for s in r.syncs() if s["at"] == "start" for k in s["keys"]]
    # no key synced twice at once; a key may be synced again only for events that arrived
    # during its first sync (then its trigger names only those)
    triggers = [s["trigger"] for s in r.syncs() if s["at"] == "start"]
    assert sorted(set(started)) == sorted(f"A{i}" for i in range(20))
    assert sum(len(t.split(",")) for t in triggers) == 40  # every event in exactly one sync
    for key in set(started):  # per key: start, end, start, end… never two starts in a row
        seq = [s["at"] for s in r.syncs() if key in s["keys"]]
        assert seq == ["start", "end"] * (len(seq) // 2), (key, seq)


def test_kill_9_of_a_worker_mid_sync_is_taken_over(pg_receiver: Receiver) -> None:
    r = pg_receiver
    slow = start_workers(r.data_dir, {**r.env, "FAKE_SYNC_DELAY": "60"})
    other = None
    try:
        assert r.post("/callouts/account", {"AccountId": "A-kill"}, nid="n-kill",
                      auth=AUTH).status_code == 200
        wait_for(lambda: any(s["at"] == "start" for s in r.syncs()), timeout=20)
        slow.kill()
        slow.wait(10)
        other = start_workers(r.data_dir, r.env)
        done = wait_for(lambda: [s for s in r.syncs() if s["at"] == "end"], timeout=20)
        assert [s["keys"] for s in done] == [["A-kill"]]
        assert done[0]["trigger"] == "callout:n-kill"
        assert _end(other) == 0
    finally:
        for p in (slow, other):
            if p is not None and p.poll() is None:
                p.kill()

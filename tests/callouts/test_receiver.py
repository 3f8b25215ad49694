"""The callout receiver as a real process (uvicorn on loopback): the Basic-auth challenge,
HMAC, dedupe, size limit, malformed payloads kept for inspection, /healthz and /metrics."""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

import requests

from core.config import Settings
from core.inbox import Inbox, open_inbox
from tests.callouts.conftest import Receiver, auth_header

AUTH = auth_header()


def inbox_of(r: Receiver) -> Inbox:
    """The receiver's SQLite inbox, read from this process while the receiver writes."""
    return open_inbox(dataclasses.replace(Settings(), data_dir=Path(r.env["RECON_DATA_DIR"]),
                                          local_database_url=r.env["RECON_LOCAL_DATABASE_URL"]))


def nid() -> str:
    return uuid.uuid4().hex


def wait_for(check, timeout: float = 10.0):  # noqa: ANN001, ANN201 - a test helper
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_non_preemptive_basic_handshake(receiver: Receiver) -> None:
    n = nid()
    first = receiver.post("/callouts/account", {"AccountId": "A-hand"}, nid=n)
    assert first.status_code == 401
    assert first.headers["WWW-Authenticate"] == 'Basic realm="recon"'
    second = receiver.post("/callouts/account", {"AccountId": "A-hand"}, nid=n, auth=AUTH)
    assert second.status_code == 200 and second.json() == {"success": True}
    with inbox_of(receiver) as ib:
        [e] = [e for e in ib.events() if e.notification_id == n]
        assert e.keys == (("account", "A-hand"),) and e.deliveries == 1


def test_refusals_store_nothing(receiver: Receiver) -> None:
    ids = {
        "wrong password": receiver.post("/callouts/account", {"AccountId": "A-x"}, nid=nid(),
                                        auth=auth_header(password="nope")),
        "bad signature": receiver.post("/callouts/account", {"AccountId": "A-x"}, nid=nid(),
                                       auth=AUTH, secret="other-key"),
        "no signature": receiver.post("/callouts/account", {"AccountId": "A-x"}, nid=nid(),
                                      auth=AUTH, secret=None),
        "oversized": receiver.post("/callouts/account", {"AccountId": "A-x",
                                                         "Pad": "x" * 3000},
                                   nid=nid(), auth=AUTH),
    }
    assert {k: v.status_code for k, v in ids.items()} == {
        "wrong password": 401, "bad signature": 401, "no signature": 401, "oversized": 413}
    assert "WWW-Authenticate" in ids["wrong password"].headers
    with inbox_of(receiver) as ib:
        assert not [e for e in ib.events() if ("account", "A-x") in e.keys]
        assert not [p for p in ib.pending() if p.key == "A-x"]
        assert not [r for r in ib.rejected() if "A-x" in r.payload]


def test_malformed_payloads_answer_400_and_are_kept(receiver: Receiver) -> None:
    cases = {
        "not json": receiver.post("/callouts/contact", None, nid=nid(), auth=AUTH,
                                  raw=b"{ContactId: C-1"),
        "no key": receiver.post("/callouts/contact", {"Id": "C-bad"}, nid=nid(), auth=AUTH),
        "no notification id": receiver.post("/callouts/contact", {"ContactId": "C-noid"},
                                            auth=AUTH),
    }
    assert {k: v.status_code for k, v in cases.items()} == dict.fromkeys(cases, 400)
    assert "not JSON" in cases["not json"].json()["reason"]
    assert "ContactId" in cases["no key"].json()["reason"]
    assert "Zuora-Notification-Id" in cases["no notification id"].json()["reason"]
    with inbox_of(receiver) as ib:
        kept = {r.payload for r in ib.rejected()}
        assert {"{ContactId: C-1", '{"Id": "C-bad"}', '{"ContactId": "C-noid"}'} <= kept
        assert not [e for e in ib.events() if e.kind == "contact" and
                    e.keys in ((("contact", "C-bad"),), (("contact", "C-noid"),))]


def test_duplicates_are_one_event_and_one_sync(receiver: Receiver) -> None:
    n = nid()
    answers = [receiver.post("/callouts/subscription", {"SubscriptionName": "S-dup"}, nid=n,
                             auth=AUTH).status_code for _ in range(3)]
    assert answers == [200, 200, 200]
    with inbox_of(receiver) as ib:
        [e] = [e for e in ib.events() if e.notification_id == n]
        assert e.deliveries == 3
    synced = wait_for(lambda: [s for s in receiver.syncs()
                               if s["at"] == "end" and s["keys"] == ["S-dup"]])
    assert len(synced) == 1 and synced[0]["trigger"] == f"callout:{n}"


def test_order_processed_names_several_keys(receiver: Receiver) -> None:
    n = nid()
    r = receiver.post("/callouts/order-processed",
                      {"SubscriptionNames": "S-o1,S-o2", "AccountIds": ["A-o1"]}, nid=n,
                      auth=AUTH)
    assert r.status_code == 200
    with inbox_of(receiver) as ib:
        [e] = [e for e in ib.events() if e.notification_id == n]
        assert e.keys == (("subscription", "S-o1"), ("subscription", "S-o2"),
                          ("account", "A-o1"))
    wait_for(lambda: {"S-o1", "S-o2", "A-o1"} <= {k for s in receiver.syncs()
                                                   if s["at"] == "end" for k in s["keys"]})


def test_healthz_and_metrics(receiver: Receiver) -> None:
    h = requests.get(receiver.base + "/healthz", timeout=5)
    assert h.status_code == 200 and h.json()["inbox"] == "sqlite"
    assert requests.get(receiver.base + "/metrics", timeout=5).status_code == 404
    n = nid()
    assert receiver.post("/callouts/account", {"AccountId": "A-m"}, nid=n).status_code == 401
    for _ in range(2):
        receiver.post("/callouts/catalog", {"ObjectType": "Product", "Id": "P1"}, nid=n,
                      auth=AUTH)
    text = requests.get(receiver.metrics + "/metrics", timeout=5).text
    assert 'recon_callouts_received_total{kind="catalog"} 1.0' in text
    assert 'recon_callouts_deduplicated_total{kind="catalog"} 1.0' in text
    assert "recon_callouts_queue_depth" in text
    assert "recon_callouts_oldest_pending_age_seconds" in text
    assert 'recon_callouts_rejected_total{kind="account",status="401"}' in text
    wait_for(lambda: 'recon_callouts_syncs_total{object="catalog",status="ok"}' in
             requests.get(receiver.metrics + "/metrics", timeout=5).text)

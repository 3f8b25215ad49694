"""The sandbox sends Zuora's callouts (issue 15 point 4; docs/zuora-api.md §5): each mutation's
event kind and ids-only payload, the non-preemptive Basic handshake, retries that keep the
Notification-Id and change the Request-Id, only 200 counting, HMAC, and the seeded loss, delay
and reordering — all over real HTTP on loopback, to a small recording receiver below."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from jobs.cli import build_parser, main
from sandbox.generate.run import Options, generate
from sandbox.server import SandboxError, SandboxServer
from tests.conftest import free_port

HEX32 = re.compile(r"^[0-9a-f]{32}$")
RETRY = 0.1  # seconds between attempts here (Zuora: 1800)


# -- the receiver: test equipment that records every request -------------------------------
@dataclass
class Seen:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    status: int
    at: float

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers 200 ``{"success": true}`` unless told otherwise: ``auth`` demands Basic (401
    with the challenge first), ``script`` maps an id in the payload to the statuses to answer
    in turn, ``slow`` delays every answer."""

    url: str = ""
    auth: tuple[str, str] | None = None
    script: dict[str, list[int]] = field(default_factory=dict)
    slow: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    cv: threading.Condition = field(default_factory=threading.Condition)

    def reset(self) -> None:
        with self.cv:
            self.auth, self.script, self.slow, self.seen = None, {}, 0.0, []

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict]:
        time.sleep(self.slow)
        extra: dict[str, str] = {}
        want = self.auth and "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
        if want and headers.get("authorization") != want:
            status, extra = 401, {"WWW-Authenticate": 'Basic realm="recon"'}
        else:
            ids = [v for v in json.loads(body).values() if isinstance(v, str)]
            todo = next((self.script[i] for i in ids if self.script.get(i)), None)
            status = todo.pop(0) if todo else 200
            if 300 <= status < 400:
                extra = {"Location": f"{self.url}/elsewhere"}
        with self.cv:
            self.seen.append(Seen(path, headers, body, status, time.monotonic()))
            self.cv.notify_all()
        return status, extra

    def wait(self, n: int, timeout: float = 5.0) -> list[Seen]:
        """The first ``n`` requests, waiting for them; then a short quiet check for extras."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while len(self.seen) < n:
                assert self.cv.wait(max(0.0, deadline - time.monotonic())), \
                    f"{len(self.seen)} of {n} callouts arrived: {self.seen}"
            return list(self.seen)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        rec: Receiver = self.server.receiver  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, extra = rec.answer(self.path, {k.lower(): v for k, v in self.headers.items()},
                                   body)
        out = b'{"success": true}' if status == 200 else b'{"success": false}'
        self.send_response(status)
        for k, v in {"Content-Type": "application/json", "Content-Length": str(len(out)),
                     **extra}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    rec = Receiver(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.receiver = rec  # type: ignore[attr-defined]
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield rec
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("callout_tenant")
    generate(Options(accounts=4, seed=3), out)
    return out


@pytest.fixture
def make(data_dir: Path, receiver: Receiver) -> Iterator[Callable[..., SandboxServer]]:
    """A fresh sandbox (the pristine tenant) sending callouts to the receiver."""
    receiver.reset()
    servers: list[SandboxServer] = []

    def _make(**kw: Any) -> SandboxServer:
        kw = {"callout_url": receiver.url, "callout_retry_interval": RETRY,
              "callout_seed": 7, **kw}
        srv = SandboxServer(data_dir, **kw).start()
        servers.append(srv)
        return srv

    yield _make
    for srv in servers:
        srv.stop()


def mutate(srv: SandboxServer, *mutations: dict[str, Any]) -> dict[str, Any]:
    body = mutations[0] if len(mutations) == 1 else {"mutations": list(mutations)}
    r = requests.post(f"{srv.url}/sandbox/mutations", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def ids(srv: SandboxServer, obj: str) -> list[str]:
    return srv.store.live(obj)["Id"].cast(str).to_list()


def row(srv: SandboxServer, obj: str, id_: str) -> dict[str, Any]:
    found = srv.store.peek(obj, id_)
    assert found is not None
    return found


def drained(srv: SandboxServer) -> dict[str, Any]:
    """``GET /sandbox/callouts`` once every notification has reached its outcome."""
    assert srv.callouts is not None and srv.drain_callouts(5)
    r = requests.get(f"{srv.url}/sandbox/callouts", timeout=10)
    assert r.status_code == 200
    return r.json()


# -- what each mutation sends -------------------------------------------------------------
def test_each_mutation_sends_its_event_kind_with_ids_only(make, receiver: Receiver) -> None:
    srv = make()
    c1, c2 = ids(srv, "Contact")[:2]
    acct = row(srv, "Contact", c1)["AccountId"]
    subs = srv.store.live("Subscription").filter(IsLatestVersion=True).head(2).rows(named=True)
    old, other = subs
    tier = next(t for t in ids(srv, "RatePlanChargeTier")
                if row(srv, "RatePlanCharge", row(srv, "RatePlanChargeTier", t)[
                    "RatePlanChargeId"])["SubscriptionId"] == other["Id"])
    ptier = ids(srv, "ProductRatePlanChargeTier")[0]
    pcharge = row(srv, "ProductRatePlanChargeTier", ptier)["ProductRatePlanChargeId"]
    product = row(srv, "ProductRatePlan", row(srv, "ProductRatePlanCharge", pcharge)[
        "ProductRatePlanId"])["ProductId"]
    prp = ids(srv, "ProductRatePlan")[-1]
    prp_product = row(srv, "ProductRatePlan", prp)["ProductId"]
    new_v = "8a8a" + "0" * 28

    mutate(srv, {"op": "update", "object": "Contact", "id": c1, "fields": {"City": "Oslo"}})
    mutate(srv, {"op": "update", "object": "Account", "id": acct, "fields": {"SoldToId": c2}})
    mutate(srv, {"op": "update", "object": "Subscription", "id": old["Id"],
                 "fields": {"GitLabNamespaceName__c": "acme"}})
    mutate(srv,  # a new version: one order, one Order Processed
           {"op": "insert", "object": "Subscription", "id": new_v, "fields": {
               "Name": old["Name"], "AccountId": old["AccountId"], "Version": old["Version"] + 1,
               "PreviousSubscriptionId": old["Id"], "Status": "Active",
               "IsLatestVersion": True}},
           {"op": "insert", "object": "RatePlan", "fields": {"SubscriptionId": new_v}},
           {"op": "update", "object": "Subscription", "id": old["Id"],
            "fields": {"Status": "Expired", "IsLatestVersion": False}})
    mutate(srv, {"op": "update", "object": "RatePlanChargeTier", "id": tier,
                 "fields": {"Price": "9.5"}})
    mutate(srv, {"op": "update", "object": "ProductRatePlanChargeTier", "id": ptier,
                 "fields": {"Price": "12"}})
    new_product = mutate(srv, {"op": "insert", "object": "Product",
                               "fields": {"Name": "New"}})["id"]
    mutate(srv, {"op": "delete", "object": "ProductRatePlan", "id": prp})
    srv.store.update("Contact", c2, City="Bergen")  # the Python path sends too

    seen = receiver.wait(9)
    got = sorted((s.path, json.dumps(s.payload, sort_keys=True)) for s in seen)
    order = next(s.payload for s in seen if s.path == "/callouts/order-processed"
                 and s.payload["SubscriptionNames"] == old["Name"])
    assert re.fullmatch(r"O-SBX\d{8}", order["OrderNumber"])
    want = [
        ("/callouts/contact", {"ContactId": c1, "AccountId": acct, "ChangeType": "UPDATE"}),
        ("/callouts/contact", {"ContactId": c2, "AccountId": row(srv, "Contact", c2)["AccountId"],
                               "ChangeType": "UPDATE"}),
        ("/callouts/account", {"AccountId": acct, "AccountNumber": row(srv, "Account", acct)[
            "AccountNumber"], "BillToId": row(srv, "Account", acct)["BillToId"],
            "SoldToId": c2, "ChangeType": "UPDATE"}),
        ("/callouts/subscription", {"SubscriptionName": old["Name"], "SubscriptionId": old["Id"],
                                    "AccountId": old["AccountId"], "ChangeType": "UPDATE"}),
        ("/callouts/order-processed", {"OrderNumber": order["OrderNumber"],
                                       "SubscriptionNames": old["Name"],
                                       "AccountIds": old["AccountId"]}),
        ("/callouts/catalog", {"ObjectType": "ProductRatePlanChargeTier", "Id": ptier,
                               "ProductId": product, "ChangeType": "UPDATE"}),
        ("/callouts/catalog", {"ObjectType": "Product", "Id": new_product,
                               "ProductId": new_product, "ChangeType": "INSERT"}),
        ("/callouts/catalog", {"ObjectType": "ProductRatePlan", "Id": prp,
                               "ProductId": prp_product, "ChangeType": "DELETE"}),
    ]
    tier_order = next(s.payload for s in seen if s.path == "/callouts/order-processed"
                      and s.payload["SubscriptionNames"] == other["Name"])
    want.append(("/callouts/order-processed", {**tier_order, "AccountIds": other["AccountId"]}))
    assert got == sorted((p, json.dumps(b, sort_keys=True)) for p, b in want)
    for s in seen:
        assert s.headers["content-type"] == "application/json"
        assert HEX32.match(s.headers["zuora-request-id"])
        assert HEX32.match(s.headers["zuora-notification-id"])
        assert s.headers["x-amzn-trace-id"].startswith("Root=1-")
        assert "authorization" not in s.headers and s.status == 200

    rep = drained(srv)
    assert rep["counts"] == {"sent": 9, "dropped": 0, "failed": 0, "pending": 0}
    by_kind = {d["kind"]: d["keys"] for d in rep["sent"]}
    assert by_kind["subscription"] == {"subscription": [old["Name"]]}
    assert by_kind["catalog"] == {"catalog": ["*"]}
    merged = next(d for d in rep["sent"] if d["payload"] == order)
    assert merged["keys"] == {"subscription": [old["Name"]], "account": [old["AccountId"]]}
    assert len(merged["causes"]) == 3  # three mutations, one order


def test_a_batch_names_every_subscription_it_touches_and_answers_before_the_callout(
        make, receiver: Receiver) -> None:
    srv = make()
    subs = srv.store.live("Subscription").filter(IsLatestVersion=True).head(2).rows(named=True)
    receiver.slow = 0.6
    t0 = time.monotonic()
    mutate(srv, *({"op": "update", "object": "Subscription", "id": s["Id"],
                   "fields": {"AutoRenew": False}} for s in subs))
    assert time.monotonic() - t0 < 0.4  # the answer never waits for the callout
    (seen,) = receiver.wait(1)
    names = ",".join(dict.fromkeys(s["Name"] for s in subs))
    accounts = ",".join(dict.fromkeys(s["AccountId"] for s in subs))
    assert seen.payload["SubscriptionNames"] == names
    assert seen.payload["AccountIds"] == accounts
    receiver.slow = 0.0
    with srv.mutation_batch():  # the Python path: one order too, custom fields included
        for s in subs:
            srv.store.update("Subscription", s["Id"], Notes="renewed")
            srv.store.update("Subscription", s["Id"], GitLabNamespaceName__c="in-order")
    assert srv.drain_callouts(5)
    assert [s.payload["SubscriptionNames"] for s in receiver.seen] == [names, names]


# -- delivery -----------------------------------------------------------------------------
def contact_update(srv: SandboxServer, contact: str, city: str = "Oslo") -> None:
    mutate(srv, {"op": "update", "object": "Contact", "id": contact, "fields": {"City": city}})


def test_basic_auth_is_non_preemptive_by_default(make, receiver: Receiver) -> None:
    receiver.auth = ("zuora", "pa:ss")
    srv = make(callout_auth="zuora:pa:ss")
    contact_update(srv, ids(srv, "Contact")[0])
    first, second = receiver.wait(2)
    assert "authorization" not in first.headers and first.status == 401
    assert second.headers["authorization"] == "Basic " + base64.b64encode(b"zuora:pa:ss").decode()
    assert second.status == 200
    assert first.headers["zuora-notification-id"] == second.headers["zuora-notification-id"]
    assert first.headers["zuora-request-id"] != second.headers["zuora-request-id"]
    (sent,) = drained(srv)["sent"]
    assert sent["attempts"] == 1 and [r["status"] for r in sent["requests"]] == [401, 200]


def test_preemptive_auth_and_the_hmac_signature(make, receiver: Receiver) -> None:
    receiver.auth = ("zuora", "pw")
    srv = make(callout_auth="zuora:pw", callout_preemptive=True, callout_secret="shh")
    contact_update(srv, ids(srv, "Contact")[0])
    (only,) = receiver.wait(1)
    assert only.status == 200 and only.headers["authorization"].startswith("Basic ")
    assert only.headers["x-zuora-signature"] == hmac.new(b"shh", only.body,
                                                         hashlib.sha256).hexdigest()
    srv.drain_callouts(2)
    assert len(receiver.seen) == 1


def test_wrong_credentials_fail_without_a_retry(make, receiver: Receiver) -> None:
    receiver.auth = ("zuora", "right")
    srv = make(callout_auth="zuora:wrong")
    contact_update(srv, ids(srv, "Contact")[0])
    rep = drained(srv)
    assert [r.status for r in receiver.seen] == [401, 401]
    assert rep["counts"]["failed"] == 1 and rep["failed"][0]["attempts"] == 1


def test_only_200_counts_and_retries_keep_the_notification_id(make, receiver: Receiver) -> None:
    srv = make()
    contacts = ids(srv, "Contact")[:5]
    script = {contacts[0]: [500], contacts[1]: [400], contacts[2]: [302],
              contacts[3]: [429, 503, 403], contacts[4]: [201]}
    receiver.script = {k: list(v) for k, v in script.items()}
    for c in contacts:
        contact_update(srv, c)
    rep = drained(srv)
    by_contact: dict[str, list[Seen]] = {}
    for s in receiver.seen:
        by_contact.setdefault(s.payload["ContactId"], []).append(s)
    tries = {c: [s.status for s in by_contact[c]] for c in contacts}
    assert tries == {contacts[0]: [500, 200], contacts[1]: [400], contacts[2]: [302],
                     contacts[3]: [429, 503, 403], contacts[4]: [201]}
    for seen in by_contact.values():
        assert len({s.headers["zuora-notification-id"] for s in seen}) == 1
        assert len({s.headers["zuora-request-id"] for s in seen}) == len(seen)
        gaps = [b.at - a.at for a, b in zip(seen, seen[1:], strict=False)]
        assert all(g >= RETRY * 0.9 for g in gaps), gaps
    assert "/elsewhere" not in {s.path for s in receiver.seen}  # 3xx not followed
    outcome = {d["payload"]["ContactId"]: (d["outcome"], d["attempts"])
               for k in ("sent", "failed") for d in rep[k]}
    assert outcome == {contacts[0]: ("sent", 2), contacts[1]: ("failed", 1),
                       contacts[2]: ("failed", 1), contacts[3]: ("failed", 3),
                       contacts[4]: ("failed", 1)}


def test_a_receiver_that_is_down_is_retried_then_failed(make) -> None:
    srv = make(callout_url=f"http://127.0.0.1:{free_port()}", callout_attempts=2)
    contact_update(srv, ids(srv, "Contact")[0])
    (failed,) = drained(srv)["failed"]
    assert failed["attempts"] == 2 and failed["last_status"] is None
    assert "ConnectionError" in failed["last_error"]


# -- loss, delay, reordering --------------------------------------------------------------
def test_a_seeded_share_is_lost_and_logged_with_its_keys(make, receiver: Receiver,
                                                         tmp_path: Path) -> None:
    dropped_runs = []
    for run in (1, 2):
        receiver.reset()
        log = tmp_path / f"callouts-{run}.jsonl"
        srv = make(callout_loss=0.4, callout_log=log, callout_seed=11)
        contacts = ids(srv, "Contact")
        for i, c in enumerate(contacts * 2):
            contact_update(srv, c, f"City {i}")
        rep = drained(srv)
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        dropped = [d for d in lines if d["outcome"] == "dropped"]
        assert 0 < len(dropped) < len(contacts) * 2
        assert rep["counts"] == {"sent": len(lines) - len(dropped), "dropped": len(dropped),
                                 "failed": 0, "pending": 0}
        assert all(d["keys"] == {"contact": [d["payload"]["ContactId"]]} and d["kind"] ==
                   "contact" and d["attempts"] == 0 for d in dropped)
        received = {s.headers["zuora-notification-id"] for s in receiver.seen}
        assert received == {d["notification_id"] for d in lines if d["outcome"] == "sent"}
        assert not received & {d["notification_id"] for d in dropped}
        dropped_runs.append(sorted(d["seq"] for d in dropped))
    assert dropped_runs[0] == dropped_runs[1]  # same seed, same losses


def test_reordering_lets_the_next_notification_overtake(make, receiver: Receiver) -> None:
    srv = make(callout_reorder=1.0, callout_senders=1)
    contacts = ids(srv, "Contact")[:4]
    for c in contacts:
        contact_update(srv, c)
    seen = receiver.wait(4)
    a, b, c, d = contacts
    assert [s.payload["ContactId"] for s in seen] == [b, a, d, c]


def test_delays_are_random_up_to_the_bound_and_reorder_arrivals(make,
                                                                receiver: Receiver) -> None:
    srv = make(callout_delay=0.5, callout_seed=38, callout_senders=1)  # delays ≥ 40 ms apart
    contacts = ids(srv, "Contact")
    posted: dict[str, float] = {}
    for c in contacts:
        posted[c] = time.monotonic()
        contact_update(srv, c)
    seen = receiver.wait(len(contacts))
    rep = drained(srv)
    delay = {d["payload"]["ContactId"]: d["delay"] for d in rep["sent"]}
    assert all(0 <= v <= 0.5 for v in delay.values()) and len(set(delay.values())) > 1
    for s in seen:
        c = s.payload["ContactId"]
        assert s.at >= posted[c] + delay[c] - 0.01
    arrived = [s.payload["ContactId"] for s in seen]
    assert arrived != contacts  # seed 38's delays overtake
    # in the order of their due times (posted + delay), up to the machine's scheduling
    # jitter: a pair due further apart than that never arrives the wrong way round
    due = {c: posted[c] + delay[c] for c in contacts}
    jitter = 0.25
    late = [(a, b) for i, a in enumerate(arrived) for b in arrived[i + 1:]
            if due[a] > due[b] + jitter]
    assert late == [], late


# -- configuration and the CLI ------------------------------------------------------------
def test_bad_callout_settings_are_refused_with_a_reason(data_dir: Path) -> None:
    with pytest.raises(SandboxError, match="not an http"):
        SandboxServer(data_dir, callout_url="ftp://example.com")
    with pytest.raises(SandboxError, match="1 to 5"):
        SandboxServer(data_dir, callout_url="http://127.0.0.1:1", callout_attempts=6)
    with pytest.raises(SandboxError, match="USER:PASS"):
        SandboxServer(data_dir, callout_url="http://127.0.0.1:1", callout_auth="nopassword")
    with pytest.raises(SandboxError, match="callout log .*append"):
        SandboxServer(data_dir, callout_url="http://127.0.0.1:1", callout_log=data_dir)


def test_serve_help_shows_the_callout_flags_and_they_need_a_url(data_dir: Path, capsys,
                                                               monkeypatch) -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["sandbox"]
    serve = next(a for a in sub._actions if a.dest == "sandbox_command").choices["serve"]
    text = serve.format_help()
    for flag in ("--callout-url", "--callout-auth", "--callout-secret", "--callout-loss",
                 "--callout-retry-interval", "--callout-attempts", "--callout-preemptive",
                 "--callout-delay", "--callout-reorder", "--callout-seed", "--callout-log"):
        assert flag in text
    monkeypatch.chdir(data_dir.parent)
    code = main(["sandbox", "serve", "--data", str(data_dir), "--callout-loss", "0.1"])
    assert code == 2 and "--callout-loss need(s) --callout-url" in capsys.readouterr().err


def test_recon_sandbox_serve_sends_callouts(data_dir: Path, receiver: Receiver,
                                            tmp_path: Path) -> None:
    """The CLI's flags reach the sender: a real `recon sandbox serve` process, one mutation."""
    receiver.reset()
    receiver.auth = ("zuora", "pw")
    port, log = free_port(), tmp_path / "callouts.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env["RECON_SANDBOX_CALLOUT_AUTH"] = "zuora:pw"
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobs.cli", "sandbox", "serve", "--data", str(data_dir),
         "--port", str(port), "--callout-url", receiver.url, "--callout-secret", "shh",
         "--callout-log", str(log), "--callout-seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        out = ""
        while "serving" not in out:
            line = proc.stdout.readline()
            assert line, f"recon sandbox serve ended: {proc.stderr.read()}"
            out += line
        assert "callouts to " + receiver.url in out and "pw" not in out and "shh" not in out
        contact = json.loads((data_dir / "zuora" / "Contact.jsonl").open().readline())["Id"]
        r = requests.post(f"http://127.0.0.1:{port}/sandbox/mutations", timeout=10, json={
            "op": "update", "object": "Contact", "id": contact, "fields": {"City": "Oslo"}})
        assert r.status_code == 200, r.text
        first, second = receiver.wait(2)
        assert (first.status, second.status) == (401, 200)
        assert second.headers["x-zuora-signature"] == hmac.new(b"shh", second.body,
                                                               hashlib.sha256).hexdigest()
        deadline = time.monotonic() + 5
        while not log.exists() or not log.read_text():
            assert time.monotonic() < deadline, "nothing logged"
            time.sleep(0.02)
        line = json.loads(log.read_text().splitlines()[0])
        assert line["outcome"] == "sent" and line["keys"] == {"contact": [contact]}
    finally:
        proc.terminate()
        proc.wait(timeout=10)

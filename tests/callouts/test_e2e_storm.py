"""1,000 callouts for 50 keys posted to a real receiver (``recon callouts serve``, the real sync)
within one debounce window (15 s here; every other test keeps ≤ 2 s): nothing is synced before
the window closes, then exactly 50 syncs run, one per key, each coalescing that key's 20
notifications, and every key is consistent (its local rows equal the projection of Zuora's)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from core.config import Secret, Settings
from core.inbox import open_inbox
from sandbox.server import SandboxServer
from tests.callouts.conftest import PASSWORD, SECRET, USER
from tests.callouts.e2e import (
    generate_tenant,
    out_of_step,
    pg_schema,
    serve,
    serve_env,
    terminate,
    wait_for,
)
from tests.conftest import free_port
from tests.support.pipeline import SECRET as ZUORA_SECRET

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
WINDOW_S, KEYS, PER_KEY = 15.0, 50, 20
SENDERS = 8  # keep-alive sessions posting at once (Zuora sends in parallel too)


def test_1000_callouts_for_50_keys_in_one_window(pg_dsn: str, tmp_path: Path) -> None:
    tenant = generate_tenant(tmp_path / "tenant", accounts=40, seed=18)
    data, port = tmp_path / "data", free_port()
    with pg_schema(pg_dsn, tenant) as url, SandboxServer(
            tenant, client_secret=ZUORA_SECRET) as srv:  # no callouts of its own: the test's
        srv.store.preload()
        accounts = srv.store.typed("Account")
        contacts = sorted(set(accounts["BillToId"].to_list())
                          | set(accounts["SoldToId"].to_list()))
        assert len(contacts) >= KEYS, len(contacts)
        keys = contacts[:KEYS]
        for i, key in enumerate(keys):  # Zuora changed: every key is stale locally
            srv.store.update("Contact", key, City=f"Storm City {i}")
        settings = Settings(zuora_base_url=srv.url, zuora_client_secret=Secret(ZUORA_SECRET),
                            local_database_url=url, data_dir=data, tenant_tz=srv.tenant_tz)
        env = serve_env(data, url, srv, RECON_CALLOUTS_DEBOUNCE_CONTACT_S=str(WINDOW_S),
                        RECON_SYNC_BATCH_THRESHOLD="1000")
        with serve(env, data, port) as proc:
            auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

            def post(batch: list[tuple[str, str]]) -> list[int]:
                with requests.Session() as http:  # keep-alive, as Zuora's sender
                    out = []
                    for key, nid in batch:
                        body = json.dumps({"ContactId": key, "ChangeType": "UPDATE"}).encode()
                        out.append(http.post(
                            f"http://127.0.0.1:{port}/callouts/contact", data=body, timeout=10,
                            headers={"Content-Type": "application/json", "Authorization": auth,
                                     "Zuora-Notification-Id": nid,
                                     "Zuora-Request-Id": uuid.uuid4().hex,
                                     "X-Zuora-Signature": hmac.new(
                                         SECRET.encode(), body, hashlib.sha256).hexdigest()},
                        ).status_code)
                    return out

            # round r posts one callout per key: every key's first event is in round 0
            calls = [(key, uuid.uuid4().hex) for _ in range(PER_KEY) for key in keys]
            started = time.monotonic()
            with ThreadPoolExecutor(SENDERS) as pool:
                statuses = [s for part in pool.map(
                    post, [calls[i::SENDERS] for i in range(SENDERS)]) for s in part]
            posted_in = time.monotonic() - started
            assert statuses == [200] * (KEYS * PER_KEY)
            # every key's first event came in the first round: the last round must land
            # before the first key's window closes
            assert posted_in < WINDOW_S - 0.5, f"posting took {posted_in:.1f}s: not one window"
            with open_inbox(settings) as ib:
                assert ib.sync_log() == [], "a sync ran inside the debounce window"
                assert len(ib.pending()) == KEYS

            def synced() -> list:
                with open_inbox(settings) as ib:
                    done = [k for k in ib.last_syncs(["contact"]) if k.sync_id]
                    return done if len(done) == KEYS and not ib.pending() else []

            done = wait_for(synced, WINDOW_S + 120, "50 keys synced", 0.25)
            with open_inbox(settings) as ib:
                log = ib.sync_log(1000)
                events = ib.events(limit=5000)
            assert terminate(proc) == 0
        assert sorted(k.key for k in done) == keys
        assert all(k.status == "ok" for k in done), [k for k in done if k.status != "ok"]
        assert len(log) == KEYS and {e.keys for e in log} == {1}, "exactly one sync per key"
        assert len({k.sync_id for k in done}) == KEYS
        first = min(e.received_at for e in events)  # the window is from a key's first event
        assert min(e.started_at for e in log) >= first + dt.timedelta(seconds=WINDOW_S - 0.5)
        by_sync = {e.sync_id: e for e in log}
        for k in done:  # each sync coalesced its key's 20 notifications
            assert len(by_sync[k.sync_id].trigger.split(":", 1)[1].split(",")) == PER_KEY
        assert len(events) == KEYS * PER_KEY and {e.status for e in events} == {"processed"}
        stale = {k: p for k in keys if (p := out_of_step(srv, url, "contact", k))}
        assert stale == {}


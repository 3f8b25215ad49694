"""kill -9 in the middle of a stream of sandbox mutations: of the receiver (``recon callouts
serve``, no workers of its own) and of a separate worker (``recon callouts work``, PostgreSQL
inbox), each restarted. Afterwards every callout the receiver answered 200 is in the inbox and
processed, no key is left stale (its local rows equal the projection of Zuora's), and nothing
was written twice (every value a mutation set appears in at most one audit write)."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import polars as pl
import pytest
import requests

from core.config import Secret, Settings
from core.inbox import open_inbox
from core.localdb.connect import connect
from tests.callouts.e2e import (
    callout_sandbox,
    generate_tenant,
    out_of_step,
    pg_schema,
    recon_process,
    serve,
    serve_env,
    terminate,
    wait_for,
)
from tests.conftest import free_port
from tests.support.pipeline import SECRET as ZUORA_SECRET

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_kill_9_of_receiver_and_worker_mid_stream(pg_dsn: str, tmp_path: Path) -> None:
    tenant = generate_tenant(tmp_path / "tenant", accounts=8, seed=17)
    data, port = tmp_path / "data", free_port()
    # Zuora retries a callout that got no 200: 5 attempts 4 s apart outlast a restart (a
    # receiver starting on 2 busy cores may take several seconds)
    with pg_schema(pg_dsn, tenant) as url, callout_sandbox(
            tenant, port, callout_retry_interval=4.0, callout_attempts=5) as srv:
        srv.store.preload()
        settings = Settings(zuora_base_url=srv.url, zuora_client_secret=Secret(ZUORA_SECRET),
                            local_database_url=url, data_dir=data, tenant_tz=srv.tenant_tz)
        env = serve_env(data, url, srv)
        subs = srv.store.live("Subscription").filter(pl.col("IsLatestVersion")).sort("Name")
        targets = ([("Subscription", r["Id"], "Notes", ("subscription", r["Name"]))
                    for r in subs.head(3).iter_rows(named=True)]
                   + [("Account", a, "Name", ("account", a))
                      for a in srv.store.typed("Account").sort("AccountNumber")["Id"][:3]])
        values: list[str] = []
        done = threading.Event()

        def stream() -> None:  # 18 changes, round robin over the 6 keys, ~80 ms apart
            try:
                for i in range(18):
                    obj, id_, field, _ = targets[i % len(targets)]
                    value = f"crash stream {i}"
                    r = requests.post(f"{srv.url}/sandbox/mutations", timeout=10, json={
                        "op": "update", "object": obj, "id": id_, "fields": {field: value}})
                    assert r.status_code == 200, r.text
                    values.append(value)
                    time.sleep(0.08)
            finally:
                done.set()

        worker_args = ["callouts", "work", "--workers", "1", "--metrics-port",
                       str(free_port())]
        with serve(env, data, port, "--workers", "0") as receiver, \
                recon_process(worker_args, env, data) as worker:
            feeder = threading.Thread(target=stream)
            feeder.start()
            wait_for(lambda: len(values) >= 5, 30, "the stream under way")
            receiver.send_signal(signal.SIGKILL)  # the receiver, mid-stream
            receiver.wait(10)
            with serve(env, data, port, "--workers", "0") as receiver2:
                # the worker, mid-sync
                wait_for(lambda: any(p.state == "running" for p in
                                     open_inbox(settings).pending()), 30, "a sync running")
                worker.send_signal(signal.SIGKILL)
                worker.wait(10)
                with recon_process(worker_args, env, data) as worker2:
                    feeder.join(60)
                    assert done.is_set() and len(values) == 18
                    assert srv.drain_callouts(60), "the sandbox still retries callouts"
                    wait_for(lambda: not open_inbox(settings).pending(), 120,
                             "the queue drained", 0.2)
                    assert terminate(worker2) == 0
                assert terminate(receiver2) == 0

        check_after_crash(srv, settings, url, targets, values)


def check_after_crash(srv, settings: Settings, url: str, targets: list, values: list[str]
                      ) -> None:
    """Every 200 processed, no key stale, no change written twice."""
    records = srv.callouts.sender.records()
    assert {d.outcome for d in records} == {"sent"}, \
        [(d.seq, d.outcome, d.attempts, d.requests[-1:]) for d in records if d.outcome != "sent"]
    answered = {d.notification_id for d in records}
    assert any(d.attempts > 1 for d in records), \
        "no callout met the receiver down (the kill came too late or too early)"
    with open_inbox(settings) as ib:
        events = {e.notification_id: e for e in ib.events(limit=10_000)}
        assert ib.dead_letters() == []
    assert answered <= set(events), answered - set(events)
    assert all(events[n].status == "processed" for n in answered), \
        [events[n] for n in answered if events[n].status != "processed"]
    with open_inbox(settings) as ib:
        last = {(k.object, k.key): k for k in ib.last_syncs()}
    for *_, (obj, key) in targets:
        assert out_of_step(srv, url, obj, key) == [], (obj, key, last.get((obj, key)), [
            (d.seq, d.notification_id, d.outcome) for d in records
            if key in d.event.keys.get(obj, ())])
    with connect(url) as db:
        audit = db.query("SELECT apply_id, table_name, key, after FROM recon_repair_audit "
                         "WHERE op = 'update' AND table_name IN ('zuora_local_subscriptions', "
                         "'billing_accounts')")
    written: dict[str, list[str]] = {}
    for row in audit.iter_rows(named=True):
        after = json.loads(row["after"])
        value = after.get("notes") or after.get("zuora_account_name")
        if value in values:
            written.setdefault(value, []).append(row["apply_id"])
    assert written, "no sync wrote a streamed change"
    assert {v: a for v, a in written.items() if len(a) > 1} == {}, "a change written twice"

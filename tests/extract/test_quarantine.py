"""Quarantine across incremental extracts, through the sandbox over HTTP: a record whose value
is not a valid Zuora value replaces its base row with a quarantine marker (the row with that
value NULL, plus its reject) — never the stale base value, never a deletion — and is asked
for again by key on every incremental run until it parses."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from core.errors import DatasetError
from core.snapshot import find_complete
from extract.extractor import run_extract
from jobs.lineage import extract_step
from sandbox.server import SandboxServer
from tests.support.extract import SECRET, base_dataset, fast_options, next_second, settings

LAG0 = dt.timedelta(0)


@pytest.mark.slow
def test_quarantined_key_is_a_marker_and_is_re_requested_until_it_parses(tmp_path: Path
                                                                         ) -> None:
    data = tmp_path / "data"
    with SandboxServer(base_dataset(), client_secret=SECRET, job_step_delay=0.01) as srv:
        s = settings(srv.url, data)
        full = extract_step(s, "full", lag=LAG0, options=fast_options())
        base = find_complete(data, full.run_id)
        assert base is not None
        acct = base.read_zuora("Account").sort("Id").row(0, named=True)
        key, old_name, updated = acct["Id"], acct["Name"], acct["UpdatedDate"]
        assert old_name

        # Zuora now sends an Account Name that is not UTF-8 (a real change: UpdatedDate moves)
        next_second()
        srv.store.set_raw("Account", key, "Name", b"Acme \xff Corp")
        next_second()
        inc = extract_step(s, "incremental", lag=LAG0, options=fast_options())
        snap = find_complete(data, inc.run_id)
        assert snap is not None and inc.mode == "incremental"
        assert inc.zuora["Account"]["downloads"] == 1  # a value is not a transport fault
        row = snap.read_zuora("Account").filter(pl.col("Id") == key)
        assert row.height == 1 and row["Name"][0] is None  # the marker: not stale, not gone
        rej = snap.read_rejects("Account").to_dicts()
        assert [(r["key"], r["field"], r["value"], r["rule"]) for r in rej] == [
            (key, "Name", "Acme \\xff Corp", "utf8")]
        assert snap.manifest.zuora["Account"]["rows"] == base.manifest.zuora["Account"]["rows"]

        # nothing changes in Zuora: the key is asked for again and stays quarantined
        next_second()
        again = extract_step(s, "incremental", lag=LAG0, options=fast_options())
        assert f"Id = '{key}'" in again.zuora["Account"]["query"]
        snap2 = find_complete(data, again.run_id)
        assert snap2 is not None
        assert snap2.read_rejects("Account")["key"].to_list() == [key]
        assert snap2.read_zuora("Account").filter(pl.col("Id") == key)["Name"][0] is None

        # Zuora's value is repaired without moving UpdatedDate (outside every window): only
        # the request by key finds it, and the record leaves the quarantine
        srv.store.update("Account", key, Name="Acme Corp", UpdatedDate=updated)
        next_second()
        fixed = extract_step(s, "incremental", lag=LAG0, options=fast_options())
        snap3 = find_complete(data, fixed.run_id)
        assert snap3 is not None
        assert snap3.read_zuora("Account").filter(pl.col("Id") == key)["Name"][0] == "Acme Corp"
        assert snap3.read_rejects("Account").height == 0
        assert fixed.zuora["Account"]["rejects"] == 0
        # and the next run asks for nothing by key any more
        next_second()
        last = extract_step(s, "incremental", lag=LAG0, options=fast_options())
        assert " or Id = " not in last.zuora["Account"]["query"]


@pytest.mark.parametrize("line", [2, 1201])  # in the fields check; in a later block
def test_sandbox_serve_names_the_file_and_line_of_invalid_utf8(tmp_path: Path, line: int
                                                               ) -> None:
    """A dataset line that is not UTF-8: `recon sandbox serve` exits 2 naming the file and
    the line (raw bytes go in a "$raw" member), never a traceback."""
    import subprocess
    import sys

    (tmp_path / "ds" / "zuora").mkdir(parents=True)
    path = tmp_path / "ds" / "zuora" / "Product.jsonl"
    lines = [b'{"Id": "p%d", "Name": "A"}' % i for i in range(max(line, 3))]
    lines[line - 1] = b'{"Id": "px", "Name": "B\xff"}'
    path.write_bytes(b"\n".join(lines) + b"\n")
    r = subprocess.run([sys.executable, "-m", "jobs.cli", "sandbox", "serve", "--data",
                        str(tmp_path / "ds"), "--port", "0"], capture_output=True, text=True,
                       timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert f"{path}: line {line} is not UTF-8" in r.stderr and '"$raw"' in r.stderr


def test_dataset_raw_bytes_are_read_exactly_and_bad_ones_are_rejects(tmp_path: Path) -> None:
    """"$raw" carries bytes JSON cannot spell: UTF-8 ones (a NUL, a quote) arrive as text,
    others are NULL and a reject naming record, field and the escaped bytes."""
    import base64
    import json

    from core import dataset
    from core.catalog import get

    spec = get("Product")
    (tmp_path / "zuora").mkdir()
    lines = [{"Id": "p1", "Name": "plain"},
             {"Id": "p2", "$raw": {"Name": base64.b64encode(b'a\x00"b').decode()}},
             {"Id": "p3", "$raw": {"Name": base64.b64encode(b"Acme \xff").decode()}}]
    (tmp_path / "zuora" / "Product.jsonl").write_text(
        "\n".join(json.dumps(x) for x in lines) + "\n")
    raw = dataset.read_object(tmp_path, spec)
    assert raw["Name"].to_list() == ["plain", 'a\x00"b', None]
    rej = dataset.raw_rejects(spec, raw)
    assert rej.select("key", "field", "value", "rule").rows() == [
        ("p3", "Name", "Acme \\xff", "utf8")]
    bad = json.dumps({"Id": "p4", "$raw": {"Nope": "AA=="}})
    (tmp_path / "zuora" / "Product.jsonl").write_text(bad + "\n")
    with pytest.raises(DatasetError, match=r"line 1: \"\$raw\" names 'Nope'"):
        dataset.read_object(tmp_path, spec)


@pytest.mark.slow  # two full extracts of the 60-account tenant, validate, reconcile, plan
def test_one_bad_record_costs_that_record_many_stop_the_night(tmp_path: Path) -> None:
    """Issue 13's case: one Account Name that is not UTF-8. The extract completes (the file
    read once), validation quarantines that account within the share (1 of 60 in a 5%
    share), the reconciler reports it and everything of it as quarantined, and the plan
    repairs the rest and touches nothing of it. Then three bad accounts in the default 1%
    share: the nightly job fails at validation — not retried, no plan, a failure alert."""
    import functools
    import http.server
    import json
    import threading
    from dataclasses import replace

    from core.config import Secret
    from expectations.validate import validate_snapshot
    from jobs.pipeline import run_job, run_steps
    from reconcile.engine import reconcile_snapshot
    from repair.plan import plan_document
    from repair.planner import build_plan

    bodies: list[dict] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    data = tmp_path / "data"
    root = base_dataset()
    local = f"duckdb:///{root / 'local.duckdb'}"
    try:
        with SandboxServer(root, client_secret=SECRET, job_step_delay=0.01) as srv:
            accounts = srv.store.typed("Account")["Id"]
            key = srv.store.typed("Subscription")["AccountId"].drop_nulls()[0]
            srv.store.set_raw("Account", key, "Name", b"Gringotts \xff\xfe Bank")
            other = accounts.filter(accounts != key)[0]
            srv.store.update("Account", other, Name="Renamed in Zuora")  # drift to repair
            s = replace(settings(srv.url, data, local), validate_max_quarantine_share=0.05)
            m = run_extract(s, "full", lag=LAG0, options=fast_options(local=True))
            snap = find_complete(data, m.run_id)
            assert snap is not None and m.zuora["Account"]["downloads"] == 1
            assert not validate_snapshot(snap, data, settings=s, gx=False).blocking
            result = reconcile_snapshot(snap, data, grace_hours=0)  # changes seconds old
            mine = result.drift.filter((pl.col("key") == key) | (pl.col("account_id") == key))
            assert mine.height and set(mine["kind"]) == {"quarantined"}
            assert set(mine["action"]) == {"human"}
            assert "utf8 on Name" in mine.filter(pl.col("key") == key)["explanation"][0]
            plan = plan_document(build_plan(data, snap.run_id, local_database_url=local))
            assert plan["validation"] == "passed"
            assert [op for op in plan["operations"]
                    if other in json.dumps(op["key"]) and op["op"] == "update"]
            assert not [op for op in plan["operations"] if key in json.dumps(op, default=str)]

            for bad in accounts.filter(accounts != key).head(2):  # 3 of 60: 5% > 1%
                srv.store.set_raw("Account", bad, "Name", b"\xff" + bad.encode())
            nightly = replace(s, validate_max_quarantine_share=0.01, jobs_retries=2,
                              jobs_retry_delay_s=0.0, alerts_webhook_url=Secret(
                                  f"http://127.0.0.1:{hook.server_address[1]}/hook"))
            steps = functools.partial(run_steps, extract_options=fast_options(local=True))
            failed = run_job("full", nightly, steps=steps)
    finally:
        hook.shutdown()
    assert failed.status == "failed" and failed.attempt == 1  # not retried
    assert type(failed.error).__name__ == "QuarantineError"
    assert "Account: 3 of 60 records quarantined" in str(failed.error)
    assert not (data / "runs" / str(failed.snapshot_run) / "repair-plan.json").exists()
    assert [b["recon"]["alert"] for b in bodies] == ["failed"]
    assert "QuarantineError" in json.dumps(bodies)


def test_raw_rows_are_written_as_polars_writes_the_rest() -> None:
    """The sandbox writes rows that hold raw bytes itself; given the very bytes polars would
    write, every row comes out the same (quoting, nulls, booleans, decimals, dateTimes)."""
    from core.catalog import get
    from sandbox.server import render
    from sandbox.server.store import Store

    for obj in ("RatePlanCharge", "ProductRatePlan", "Account"):
        spec = get(obj)
        frame = Store(base_dataset(), "America/Los_Angeles").live(obj).head(300).with_columns(
            pl.when(pl.int_range(pl.len()) % 7 == 0).then(pl.lit('a "q", b\nc'))
            .otherwise(pl.col("Name")).alias("Name"))
        plain = b"".join(render.csv_chunks(spec, frame, spec.field_names, "America/Los_Angeles",
                                           utc=True))
        text = render.render_frame(spec, frame.head(60), "America/Los_Angeles", "aqua_utc")
        raw = {r["Id"]: {"Name": r["Name"].encode()} for r in text.iter_rows(named=True)
               if r["Name"] is not None}
        mixed = b"".join(render.csv_chunks(spec, frame, spec.field_names, "America/Los_Angeles",
                                           utc=True, raw=raw))
        assert len(raw) > 10 and sorted(plain.split(b"\n")) == sorted(mixed.split(b"\n")), obj

"""The lineage chain through the real job (issue 13, point 1), the Zuora sandbox over HTTP and
a PostgreSQL local database:

full ok → a full export in which Zuora returns half of the accounts (fails on volume) →
incremental against the restored tenant: every account present, volume compared with the last
passed snapshot, no false orphan; the failed snapshot never a base and its marks never
current. Then a genuine drop fails, `recon snapshots accept` lets it pass, and the runs show
the lag setting honoured (`recon run --lag-hours`, RECON_EXTRACT_LAG_HOURS under the
scheduler), manual runs leaving the scheduled key alone, and `--scheduled --date` filling a
slot."""

from __future__ import annotations

import datetime as dt
import functools
import shutil
from dataclasses import replace
from pathlib import Path

import duckdb
import polars as pl
import pytest
import requests

from core.config import Secret, Settings, load_settings
from core.snapshot import Snapshot, find_complete, list_snapshots
from core.state import StateDB, state_path
from jobs import runs
from jobs.cli import build_parser, main
from jobs.cli.run import run_request
from jobs.pipeline import run_job, run_steps
from jobs.scheduler import run_tick
from sandbox.generate.run import Options, generate
from sandbox.server import SandboxServer
from tests.support.extract import fast_options, next_second
from tests.support.json_schema import check

SECRET = "sandbox-secret"
pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A clean 24-account tenant, and a copy of its Zuora side in which Account.jsonl holds
    only every other account (Zuora answering with half of them; nothing else changed)."""
    out = tmp_path_factory.mktemp("lineage-tenant")
    generate(Options(accounts=24, seed=5, drift=0.0, d26=0.0), out)
    half = tmp_path_factory.mktemp("lineage-half")
    shutil.copytree(out / "zuora", half / "zuora")
    shutil.copy(out / "tenant.json", half / "tenant.json")
    lines = (out / "zuora" / "Account.jsonl").read_text().splitlines(keepends=True)
    (half / "zuora" / "Account.jsonl").write_text("".join(lines[::2]))
    return out, half


def steps() -> functools.partial:
    """The declared job steps through reconciliation (the plan and the report decide nothing
    about lineage and would only make the chain slow)."""
    return functools.partial(run_steps, extract_options=fast_options(attempts=2, local=True),
                             through="reconcile")


def newest(data: Path) -> Snapshot:
    return max(list_snapshots(data), key=lambda s: s.run_id)


def marks_run(data: Path) -> set[str]:
    with StateDB(data) as st:
        return {m.run_id for m in st.hwms().values()}


def verdict(data: Path, run_id: str) -> str:
    with StateDB(data) as st:
        return st.verdict(run_id).verdict


def account_ids(snap: Snapshot) -> set[str]:
    return set(snap.read_zuora("Account")["Id"].to_list())


def findings(data: Path, run_id: str) -> pl.DataFrame:
    con = duckdb.connect(str(state_path(data)), read_only=True)
    try:
        return con.sql("SELECT object, key, kind FROM drift WHERE run_id = ? AND status <> "
                       "'resolved'", params=[run_id]).pl()
    finally:
        con.close()


def mutate(url: str, op: str, obj: str, id_: str, **fields: object) -> None:
    r = requests.post(f"{url}/sandbox/mutations", json={"op": op, "object": obj, "id": id_,
                                                         "fields": fields}, timeout=10)
    assert r.status_code == 200 and r.json()["success"], r.text


def test_the_chain(tenants: tuple[Path, Path], tmp_path: Path, pg_url: str,
                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from core.localdb.connect import connect, duckdb_url
    from core.localdb.schema import all_tables

    tenant, half = tenants
    with connect(duckdb_url(tenant / "local.duckdb")) as src, connect(pg_url) as dst:
        dst.init_schema()
        with dst.writing("load", "tests"):
            for table in all_tables():
                dst.load(table, src.read_table(table))
        dst.reset_identities()
    data = tmp_path / "data"
    with SandboxServer(tenant, client_id="recon", client_secret=SECRET) as srv:
        srv.store.preload()
        settings = Settings(zuora_base_url=srv.url, zuora_client_secret=Secret(SECRET),
                            local_database_url=pg_url, data_dir=data, jobs_retries=0,
                            extract_lag_hours=0.0)
        everyone = set(srv.store.typed("Account")["Id"].to_list())

        # 1. full, ok: passed, its marks current
        r1 = run_job("full", settings, steps=steps())
        assert r1.status == "clean", r1.error
        s1 = find_complete(data, r1.snapshot_run)
        assert s1 is not None and account_ids(s1) == everyone
        assert verdict(data, s1.run_id) == "passed" and marks_run(data) == {s1.run_id}

        # 2. Zuora answers with half of the accounts: complete, volume failed, never current
        with SandboxServer(half, client_id="recon", client_secret=SECRET) as glitch:
            r2 = run_job("full", replace(settings, zuora_base_url=glitch.url), steps=steps())
        assert r2.status == "failed" and type(r2.error).__name__ == "VolumeError"
        s2 = newest(data)
        assert s2.complete and s2.manifest.volume["outcome"] == "failed"
        assert s2.manifest.volume["baseline_run_id"] == s1.run_id
        assert "Account" in " ".join(s2.manifest.volume["failures"])
        assert len(account_ids(s2)) == (len(everyone) + 1) // 2
        assert verdict(data, s2.run_id) == "failed"
        assert marks_run(data) == {s1.run_id}, "a failed snapshot's marks never become current"

        # 3. Zuora restored; one real change. A manual `recon run nightly --lag-hours 0`:
        # incremental onto the last PASSED snapshot, every account there, no false orphan.
        changed = sorted(everyone)[0]
        mutate(srv.url, "update", "Account", changed, Name="Renamed after the glitch")
        next_second()
        args = build_parser().parse_args(["run", "nightly", "--lag-hours", "0"])
        run_settings, request = run_request(args, replace(settings, extract_lag_hours=7.0))
        assert run_settings.extract_lag_hours == 0.0 and request["trigger"] == "manual"
        r3 = run_job("nightly", run_settings, steps=steps(), **request)
        assert r3.status in ("clean", "drift"), r3.error
        s3 = find_complete(data, r3.snapshot_run)
        assert s3 is not None
        m3 = s3.manifest
        assert (m3.mode, m3.base_run_id, m3.base_verdict) == ("incremental", s1.run_id, "passed")
        assert s2.run_id in (m3.mode_reason or "") and "skipped" in (m3.mode_reason or "")
        assert m3.volume == {"outcome": "passed", "baseline_run_id": s1.run_id, "failures": []}
        assert m3.lag_s == 0.0 and m3.zuora["Account"]["delta_rows"] == 1
        assert account_ids(s3) == everyone
        f3 = findings(data, s3.run_id)
        assert f3.filter(pl.col("kind") == "orphaned_in_local").height == 0, f3
        assert f3.filter(pl.col("object") == "Account")["key"].to_list() in ([], [changed])
        assert verdict(data, s3.run_id) == "passed" and marks_run(data) == {s3.run_id}
        with StateDB(data) as st:  # a manual run is not a scheduled one
            assert runs.last_success(st, "nightly", scheduled_only=True) is None

        # 4. a genuine drop (60% of the accounts deleted in Zuora), run by the scheduler's
        # tick for today with RECON_EXTRACT_LAG_HOURS from the environment; the manual run of
        # step 3 (same day) did not make this tick a no-op.
        for account in sorted(everyone)[: int(len(everyone) * 0.6)]:
            mutate(srv.url, "delete", "Account", account)
        next_second()
        cfg = tmp_path / "recon.toml"
        cfg.write_text(f'[paths]\ndata_dir = "{data}"\n[local]\ndatabase_url = "{pg_url}"\n'
                       f'[zuora]\nbase_url = "{srv.url}"\n')
        monkeypatch.setenv("RECON_ZUORA_CLIENT_SECRET", SECRET)
        monkeypatch.setenv("RECON_EXTRACT_LAG_HOURS", "0")
        monkeypatch.delenv("RECON_CONFIG", raising=False)
        env_settings = replace(load_settings(cfg), jobs_retries=0)
        assert env_settings.extract_lag_hours == 0.0
        tick = dt.datetime.now(dt.UTC).replace(microsecond=0)
        r4 = run_tick("nightly", env_settings, tick,
                      runner=functools.partial(run_job, steps=steps()))
        assert r4 is not None and r4.status == "failed", "the tick ran (not skipped)"
        assert type(r4.error).__name__ == "VolumeError"
        s4 = newest(data)
        assert s4.manifest.base_run_id == s3.run_id and s4.manifest.lag_s == 0.0
        assert s4.manifest.zuora["Account"]["deleted_rows"] == int(len(everyone) * 0.6)
        assert verdict(data, s4.run_id) == "failed" and marks_run(data) == {s3.run_id}

        # 5. the operator accepts the drop; `recon snapshots` shows the whole story
        reason = "60% of the accounts were closed by the March clean-up"
        assert main(["--config", str(cfg), "snapshots", "accept", s4.run_id,
                     "--reason", reason]) == 0
        assert main(["--config", str(cfg), "snapshots", "accept", s2.run_id, "--reason",
                     "x"]) == 0  # a glitch can be accepted too; it is older: marks stay
        assert marks_run(data) == {s4.run_id}
        capsys.readouterr()
        assert main(["--config", str(cfg), "snapshots", "--json"]) == 0
        listed = {r["run_id"]: r
                  for r in check("snapshots", capsys.readouterr().out)["snapshots"]}
        assert listed[s4.run_id]["verdict"] == "accepted"
        assert listed[s4.run_id]["accepted_reason"] == reason
        assert listed[s3.run_id]["base_run_id"] == s1.run_id
        assert listed[s3.run_id]["verdict"] == "passed"
        assert listed[s1.run_id]["why"] == "full export requested"

        # 6. `recon run nightly --scheduled --date D --lag-hours 3` fills the slot of D: the
        # accepted snapshot is the base and the volume baseline; the drop passes now.
        args = build_parser().parse_args(["run", "nightly", "--scheduled", "--date",
                                          "2026-11-30", "--lag-hours", "3"])
        run_settings, request = run_request(args, env_settings)
        r5 = run_job("nightly", run_settings, steps=steps(), **request)
        assert r5.status in ("clean", "drift"), r5.error
        s5 = find_complete(data, r5.snapshot_run)
        assert s5 is not None and s5.manifest.base_run_id == s4.run_id
        assert s5.manifest.base_verdict == "accepted"
        assert s5.manifest.volume["baseline_run_id"] == s4.run_id
        assert s5.manifest.lag_s == 3 * 3600.0
        window = s5.manifest.zuora["Account"]["window"]
        started = dt.datetime.fromisoformat(s5.manifest.started_at.replace("Z", "+00:00"))
        assert s5.manifest.hwms["Account"] == window["to"]
        assert window["to"] == s4.manifest.hwms["Account"], \
            "now − 3 h is before the base's mark: the window stays at the mark"
        assert started - dt.timedelta(hours=3) < dt.datetime.fromisoformat(
            window["to"].replace("Z", "+00:00"))
        # the slot is filled: the scheduler's tick for that date is a recorded no-op
        dup = run_job("nightly", env_settings, trigger="schedule",
                      scheduled_for=dt.datetime(2026, 11, 30, 2, 30), steps=steps())
        assert dup.status == "skipped"

    with StateDB(data) as st:
        rows = st.con.sql("SELECT run_id, idem_key, trigger, status FROM job_runs "
                          "ORDER BY started_at").pl().to_dicts()
        ever = {r[0] for r in st.con.execute("SELECT run_id FROM extract_hwm").fetchall()}
    assert s2.run_id not in ever
    keys = [r["idem_key"] for r in rows]
    today = tick.date().isoformat()
    assert keys[2].startswith(f"nightly:{today}:manual:")  # step 3, its own key
    assert keys[3] == f"nightly:{today}" and rows[3]["trigger"] == "schedule"
    assert keys[4] == "nightly:2026-11-30" and rows[4]["status"] in ("clean", "drift")
    assert rows[5]["status"] == "skipped" and keys[5] == "nightly:2026-11-30"

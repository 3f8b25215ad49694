"""Incremental extracts: UpdatedDate windows from the high-water marks, deleted rows through
forceExport, merged onto the marks' snapshot: after a series of mutations (updates, soft
deletes, inserts, a new subscription version) the merged snapshot equals a fresh full one."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from core.snapshot import Snapshot, find_complete, latest_complete
from core.state import StateDB
from extract.extractor import ExtractError, ExtractOptions, run_extract
from jobs.lineage import extract_step, validate_base
from sandbox.server import SandboxServer
from tests.support.extract import (
    assert_same_zuora,
    fast_options,
    next_second,
    settings,
)

LAG0 = dt.timedelta(0)


def run(srv: SandboxServer, data: Path, mode: str, lag: dt.timedelta = LAG0,
        options: ExtractOptions | None = None):
    """The extract step every command shares (jobs.lineage): base and baseline chosen from
    the validation verdicts, a never-validated base checked before it is used."""
    return extract_step(settings(srv.url, data), mode, lag=lag,
                        options=options or fast_options())


def snap(data: Path, run_id: str) -> Snapshot:
    s = find_complete(data, run_id)
    assert s is not None
    return s


def rows(frame: pl.DataFrame, **eq: object) -> list[dict]:
    for k, v in eq.items():
        frame = frame.filter(pl.col(k) == v)
    return frame.to_dicts()


def new_version(srv: SandboxServer, s: Snapshot) -> tuple[str, str]:
    """Amend a subscription the way Zuora does: a new version row with its own rate plan
    subtree (new Ids), the previous version set Expired and not latest."""
    subs = s.read_zuora("Subscription")
    old = rows(subs, IsLatestVersion=True, Status="Active")[0]
    new = {k: v for k, v in old.items() if k not in ("Id", "CreatedDate", "UpdatedDate")}
    new.update(Version=old["Version"] + 1, PreviousSubscriptionId=old["Id"],
               Revision=f"{old['Version'] + 1}.0", Notes="seat add-on")
    new_id = srv.store.insert("Subscription", new)
    srv.store.update("Subscription", old["Id"], Status="Expired", IsLatestVersion=False)
    charges = s.read_zuora("RatePlanCharge")
    tiers = s.read_zuora("RatePlanChargeTier")
    for rp in rows(s.read_zuora("RatePlan"), SubscriptionId=old["Id"]):
        rp_new = srv.store.insert("RatePlan", {**_fresh(rp), "SubscriptionId": new_id})
        for ch in rows(charges, RatePlanId=rp["Id"]):
            ch_new = srv.store.insert("RatePlanCharge", {
                **_fresh(ch), "RatePlanId": rp_new, "SubscriptionId": new_id,
                "Quantity": (ch["Quantity"] or Decimal(0)) + 5})
            for t in rows(tiers, RatePlanChargeId=ch["Id"]):
                srv.store.insert("RatePlanChargeTier", {**_fresh(t), "RatePlanChargeId": ch_new})
    return old["Id"], new_id


def _fresh(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in ("Id", "CreatedDate", "UpdatedDate")}


@pytest.mark.slow
def test_incremental_merge_equals_a_fresh_full_export(srv: SandboxServer,
                                                      tmp_path: Path) -> None:
    full = run(srv, tmp_path, "full")
    a = snap(tmp_path, full.run_id)

    # Round 1: updates, soft deletes, an insert, a new subscription version.
    acct = a.read_zuora("Account")["Id"][0]
    srv.store.update("Account", acct, Name="Renamed & Co. <Ünïcode>")
    tier = a.read_zuora("RatePlanChargeTier")["Id"][3]
    srv.store.update("RatePlanChargeTier", tier, Price="123.45")
    srv.store.delete("Contact", a.read_zuora("Contact")["Id"][5])
    srv.store.delete("RatePlanChargeTier", a.read_zuora("RatePlanChargeTier")["Id"][7])
    new_acct = srv.store.insert("Account", {
        **_fresh(a.read_zuora("Account").row(1, named=True)),
        "Name": "Brand New Ltd", "AccountNumber": "A-NEW-1"})
    old_v, new_v = new_version(srv, a)
    next_second()
    inc1 = run(srv, tmp_path, "incremental")
    assert inc1.mode == "incremental" and inc1.base_run_id == full.run_id
    z = inc1.zuora
    assert z["Account"]["delta_rows"] == 2 and z["Account"]["rows"] == a.manifest.rows(
        "Account") + 1
    assert z["Contact"]["deleted_rows"] == 1
    assert z["RatePlanChargeTier"]["deleted_rows"] == 1
    assert z["Subscription"]["delta_rows"] == 2  # the new version and the expired one
    assert z["Product"]["delta_rows"] == 0 and z["Product"]["rows"] == 13
    assert z["Subscription"]["window"]["from"] == full.hwms["Subscription"]
    b = snap(tmp_path, inc1.run_id)
    b.verify()
    # the deletions and when they happened travel with the snapshot (reconcile holds them
    # pending inside the grace window); the file is checksummed like the others
    gone = pl.read_parquet(b.deleted_path("Contact"))
    assert gone["Id"].to_list() == [a.read_zuora("Contact")["Id"][5]]
    assert gone["deleted_at"].dtype == pl.Datetime("us") and gone["deleted_at"][0] is not None
    assert "deleted/Contact.parquet" in b.manifest.files
    assert not b.deleted_path("Account").exists()
    subs = b.read_zuora("Subscription")
    assert rows(subs, Id=old_v)[0]["Status"] == "Expired"
    assert rows(subs, Id=new_v)[0]["IsLatestVersion"] is True
    assert rows(b.read_zuora("Account"), Id=new_acct)[0]["Name"] == "Brand New Ltd"
    assert rows(b.read_zuora("RatePlanChargeTier"), Id=tier)[0]["Price"] == Decimal("123.45")

    # Round 2, merged onto the incremental snapshot: more changes, incl. a delete of a row
    # inserted in round 1 and an update of a row updated in round 1.
    srv.store.update("Account", acct, Name="Renamed again")
    srv.store.delete("Account", new_acct)
    srv.store.update("Subscription", new_v, Notes="note 2", AutoRenew=False)
    srv.store.delete("Product", a.read_zuora("Product")["Id"][0])
    next_second()
    inc2 = run(srv, tmp_path, "incremental")
    assert inc2.base_run_id == inc1.run_id
    c = snap(tmp_path, inc2.run_id)
    # carried over from round 1 (the delta no longer sees it), plus round 2's own
    assert pl.read_parquet(c.deleted_path("Contact"))["Id"].to_list() == gone["Id"].to_list()
    assert pl.read_parquet(c.deleted_path("Account"))["Id"].to_list() == [new_acct]

    fresh = run(srv, tmp_path, "full")
    assert_same_zuora(c, snap(tmp_path, fresh.run_id))
    assert c.manifest.zuora["Product"]["rows"] == 12


@pytest.mark.slow
def test_marks_follow_validated_snapshots_only(srv: SandboxServer, tmp_path: Path) -> None:
    full = run(srv, tmp_path, "full")
    started = dt.datetime.fromisoformat(full.started_at.replace("Z", "+00:00"))
    assert full.hwms["Account"] == started.replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")
    with StateDB(tmp_path) as st:
        assert st.hwms() == {}, "marks wait for the snapshot's verdict (contracts not run yet)"

    srv.store.update("Account", snap(tmp_path, full.run_id).read_zuora("Account")["Id"][0],
                     Name="x")
    next_second()
    srv.add_fault("aqua_file", "file_404", times=99)
    with pytest.raises(ExtractError, match="HTTP 404"):
        run(srv, tmp_path, "incremental", options=fast_options(job_attempts=2))
    with StateDB(tmp_path) as st:  # the base was checked before use: its marks are current
        marks = st.hwms()
        assert {m.run_id for m in marks.values()} == {full.run_id}
        assert st.verdict(full.run_id).verdict == "passed"
    assert marks["Account"].hwm == started.replace(microsecond=0)
    assert latest_complete(tmp_path).run_id == full.run_id

    srv.clear_faults()
    inc = run(srv, tmp_path, "incremental")
    assert inc.base_run_id == full.run_id and inc.base_verdict == "passed"  # never the failed
    assert inc.zuora["Account"]["delta_rows"] == 1
    with StateDB(tmp_path) as st:
        assert st.hwms() == marks, "the new snapshot is not validated yet: marks stay"
    verdict = validate_base(settings(srv.url, tmp_path), snap(tmp_path, inc.run_id))
    assert verdict.verdict == "passed"
    with StateDB(tmp_path) as st:
        assert {m.run_id for m in st.hwms().values()} == {inc.run_id}


@pytest.mark.slow
def test_lag_keeps_recent_changes_for_the_next_run(srv: SandboxServer, tmp_path: Path) -> None:
    lag = dt.timedelta(hours=2)
    full = run(srv, tmp_path, "full", lag=lag)
    acct = snap(tmp_path, full.run_id).read_zuora("Account")["Id"][0]
    srv.store.update("Account", acct, Name="changed just now")
    next_second()
    inc = run(srv, tmp_path, "incremental", lag=lag)
    started = dt.datetime.fromisoformat(inc.started_at.replace("Z", "+00:00"))
    window = inc.zuora["Account"]["window"]
    assert window["to"] == (started - lag).replace(microsecond=0).isoformat().replace(
        "+00:00", "Z")
    assert inc.zuora["Account"]["delta_rows"] == 0  # younger than the lag: next time
    assert inc.hwms["Account"] == window["to"]


def test_incremental_without_marks_runs_full(srv: SandboxServer, tmp_path: Path) -> None:
    m = run(srv, tmp_path, "incremental")
    assert (m.requested_mode, m.mode) == ("incremental", "full")
    assert "no complete snapshot passed validation" in m.note


@pytest.mark.slow
def test_marks_older_than_deleted_retention_force_full(srv: SandboxServer,
                                                       tmp_path: Path) -> None:
    run(srv, tmp_path, "full")
    later = fast_options()
    later.clock = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=40)
    m = run(srv, tmp_path, "incremental", options=later)
    assert m.mode == "full" and "older than Zuora keeps deleted records" in m.note


def test_the_extractor_refuses_a_base_that_did_not_pass(srv: SandboxServer,
                                                      tmp_path: Path) -> None:
    from extract.extractor import Base

    full = run(srv, tmp_path, "full")
    with pytest.raises(ExtractError, match="verdict is 'failed'"):
        Base(snap(tmp_path, full.run_id), "failed")
    with pytest.raises(ExtractError, match="verdict is 'unvalidated'"):
        Base(snap(tmp_path, full.run_id), "unvalidated")


def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExtractError, match="unknown extract mode 'weekly'"):
        run_extract(settings("http://127.0.0.1:9", tmp_path), "weekly")

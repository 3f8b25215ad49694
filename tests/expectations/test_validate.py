"""``recon validate`` end to end: the committed fixture datasets give exactly their expected
failures and exit codes; snapshots are validated with quarantine, rejects and the volume check
against the previous complete snapshot; every result is stored in recon's state."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from core.values import REJECT_SCHEMA, REJECTS
from expectations import contracts as ct
from expectations.errors import ContractError, VolumeError
from expectations.quarantine import read_quarantine
from expectations.results import RESULT_SCHEMA, read_results
from expectations.validate import validate_path, validate_snapshot
from jobs.cli import validate as validate_cmd
from sandbox.generate.run import Options, generate
from tests.support.expectations import (
    FIXTURE_SETS,
    FIXTURES,
    run_id_at,
    settings,
    world_frames,
    write_snapshot,
)

REPO = Path(__file__).resolve().parents[2]
FAILURE_FIELDS = ("source", "object", "column", "rule", "severity", "failing_count")


def cli(capsys: pytest.CaptureFixture[str], data_dir: Path, *argv: str) -> tuple[int, str, str]:
    """``recon validate …`` through the command's own parser (as jobs.cli wires it)."""
    args = validate_cmd.build_parser().parse_args(["validate", *argv])
    code = validate_cmd.run(args, settings(data_dir))
    out = capsys.readouterr()
    return code, out.out, out.err


def expected(name: str) -> dict:
    return json.loads((FIXTURES / name / "expected.json").read_text())


def failures_of(results: list[dict]) -> list[tuple]:
    return sorted((tuple(r[f] for f in FAILURE_FIELDS), sorted(r["sample_keys"] or []))
                  for r in results if r.get("outcome", "failed") != "passed")


# -- the committed fixtures ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", FIXTURE_SETS)
def test_fixture_sets_give_exactly_the_expected_failures(
        name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    want = expected(name)
    code, out, err = cli(capsys, tmp_path, str(FIXTURES / name), "--json")
    assert code == want["exit_code"], out + err
    doc = json.loads(out)
    assert failures_of(doc["results"]) == failures_of(want["failures"])
    assert not [r for r in doc["results"] if r["outcome"] == "error"]
    if want["stops_run"]:
        assert want["stops_run"] in doc["stopped"] and want["stops_run"] in err
    else:
        assert doc["stopped"] is None and err == ""
    q = read_quarantine(tmp_path, doc["run_id"]).drop("severity")
    assert sorted(q.rows(named=True), key=lambda r: json.dumps(r, sort_keys=True)) == sorted(
        want["quarantine"], key=lambda r: json.dumps(r, sort_keys=True))
    assert doc["quarantined"] == len(want["quarantine"])
    stored = read_results(tmp_path, doc["run_id"])
    assert stored.height == len(doc["results"]) > 0  # the report finds them in recon's state


@pytest.mark.slow
def test_validate_prints_a_compact_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    code, out, _ = cli(capsys, tmp_path, str(FIXTURES / "bad_values"), "--no-gx")
    lines = out.splitlines()
    assert code == 1
    assert lines[0].split() == ["OUTCOME", "SEVERITY", "SOURCE", "OBJECT.COLUMN", "RULE",
                                "FAILING", "%", "SAMPLE"]
    assert len(lines) == 1 + len(expected("bad_values")["failures"]) + 1
    assert any("Subscription.Status" in x and "enum" in x and "'Actve'" in x for x in lines)
    assert any("customers.email" in x and "not_null" in x and "70=NULL" in x for x in lines)
    assert lines[-1].startswith(f"dataset {FIXTURES / 'bad_values'}: ")
    assert "8 quarantined" in lines[-1]
    code, out, _ = cli(capsys, tmp_path, str(FIXTURES / "good"), "--no-gx")
    assert code == 0 and len(out.splitlines()) == 1 and "0 failed, 0 errors" in out
    args = validate_cmd.build_parser().parse_args(["-q", "validate", "--no-gx",
                                                   str(FIXTURES / "good")])
    assert validate_cmd.run(args, settings(tmp_path)) == 0
    assert capsys.readouterr().out == ""  # -q: silent when clean (cron)


@pytest.mark.slow
def test_recon_validate_in_its_own_process(tmp_path: Path) -> None:
    """The real entry point in a fresh interpreter: exit code, table, state (``--no-gx``: the
    suites' 4–6 s import is paid once, by the in-process tests)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env.update(RECON_DATA_DIR=str(tmp_path), PYTHONPATH=str(REPO))
    code = "import sys; from jobs.cli.validate import main; sys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, "-c", code, "-q", "validate", "--no-gx",
                        str(FIXTURES / "bad_values")], capture_output=True, text=True, env=env,
                       cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    # bad_values quarantines more than 1% of two objects: the share check stops the run
    assert r.stderr.startswith("recon: validation stops the run: too many records quarantined")
    assert "Traceback" not in r.stderr
    assert "Subscription.Status" in r.stdout and "8 quarantined" in r.stdout
    assert (tmp_path / "state.duckdb").is_file()
    assert (tmp_path / "runs").is_dir()


def test_unreadable_input_is_exit_2_naming_the_file_and_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = tmp_path / "ds"
    shutil.copytree(FIXTURES / "good", ds)
    acc = ds / "zuora" / "Account.jsonl"
    acc.write_text(acc.read_text().replace('"Status"', '"Stattus"', 1))
    assert validate_cmd.main(["validate", str(ds)]) == 2
    err = capsys.readouterr().err
    assert "Account.jsonl" in err and "Stattus" in err
    assert validate_cmd.main(["validate", str(tmp_path / "nowhere")]) == 2
    assert "nowhere: no such directory" in capsys.readouterr().err


@pytest.mark.slow
def test_contracts_pass_on_a_generated_dataset(tmp_path: Path) -> None:
    """A generated tenant with drift: no contract failure, nothing quarantined; drift shows
    up only as local-side business-rule warnings."""
    ds = tmp_path / "ds"
    generate(Options(accounts=50, seed=3, drift=0.02), ds)
    r = validate_path(ds, settings(tmp_path / "data"))
    res = r.results
    assert r.quarantined == 0 and r.kind == "dataset"
    assert res.filter(pl.col("source") == "pandera")["outcome"].unique().to_list() == ["passed"]
    bad = res.filter(pl.col("outcome") != "passed")
    assert bad.height > 0 and set(bad["severity"]) == {"warning"} and set(bad["outcome"]) == {
        "failed"}
    assert r.exit_code == 1 and not r.blocking


# -- snapshots ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("profiles", [False, True], ids=["rows", "profiles"])
def test_snapshot_validation_quarantines_rejects_and_bad_rows(tmp_path: Path,
                                                              profiles: bool) -> None:
    """The same failures whether the rules run on the rows or start from the extractor's
    column profiles (which must then send the failing rules to the rows)."""
    zuora, local = world_frames()
    subs = zuora["Subscription"]
    key = subs["Id"][3]
    z = dict(zuora, Subscription=subs.with_columns(
        TermStartDate=pl.when(pl.col("Id") == key).then(None).otherwise("TermStartDate")))
    tiers = local["zuora_local_rate_plan_charge_tiers"]
    charges = local["zuora_local_rate_plan_charges"]
    loc = dict(local, zuora_local_rate_plan_charge_tiers=tiers.with_columns(
        currency=pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("EURO"))
        .otherwise("currency")),
        # a NOT NULL column that the Parquet statistics cannot prove NULL-free is read
        zuora_local_rate_plan_charges=charges.with_columns(
            segment=pl.when(pl.int_range(pl.len()) == 9).then(None).otherwise("segment")))
    rejects = {"Subscription": pl.DataFrame(
        {"object": ["Subscription"], "key": [key], "field": ["TermStartDate"],
         "value": ["2021-13-01"], "rule": ["parse:d"]}, schema=REJECT_SCHEMA)}
    snap = write_snapshot(tmp_path, z, loc, rejects=rejects, profiles=profiles)
    r = validate_snapshot(snap, tmp_path, settings=settings(tmp_path), gx=False)
    assert r.run_id == snap.run_id and r.quarantined == 3 and r.failed and not r.errors
    q = read_quarantine(tmp_path, snap.run_id)
    assert sorted(q.select("side", "object", "table", "key", "column", "check", "value").rows(),
                  key=str) == sorted([
        ("zuora", "Subscription", None, key, "TermStartDate", "parse:d", "2021-13-01"),
        ("local", "RatePlanChargeTier", "zuora_local_rate_plan_charge_tiers",
         tiers["zuora_id"][0], "currency", "max_length", "EURO"),
        ("local", "RatePlanCharge", "zuora_local_rate_plan_charges", charges["zuora_id"][9],
         "segment", "not_null", None)], key=str)
    assert (tmp_path / "runs" / snap.run_id / "quarantine" / "RatePlanChargeTier.parquet").is_file()
    stored = read_results(tmp_path, snap.run_id)
    assert stored.schema == pl.Schema(RESULT_SCHEMA)
    assert sorted(stored.filter(pl.col("outcome") == "failed")
                  .select("source", "object", "rule").rows()) == [
        ("extract", "Subscription", "parse:d"),
        ("pandera", "zuora_local_rate_plan_charge_tiers", "max_length"),
        ("pandera", "zuora_local_rate_plan_charges", "not_null")]
    # every rule has a result, proven by statistics or checked on the rows
    full = validate_snapshot(snap, tmp_path, settings=settings(tmp_path), gx=False).results
    assert full.filter(pl.col("source") == "pandera").height == sum(
        len(c.checks) + 1 for c in ct.contracts().values())
    # validating the same run again replaces its results, it does not add to them
    again = validate_snapshot(snap, tmp_path, settings=settings(tmp_path), gx=False)
    assert read_results(tmp_path, snap.run_id).height == again.results.height == stored.height


def test_wrong_shape_in_a_snapshot_stops_the_run(tmp_path: Path) -> None:
    zuora, local = world_frames()
    z = dict(zuora, RatePlan=zuora["RatePlan"].drop("Name").with_columns(Color=pl.lit("red")),
             Account=zuora["Account"].with_columns(pl.col("BillCycleDay").cast(pl.String)))
    loc = dict(local, orders=local["orders"].with_columns(pl.col("quantity").cast(pl.Float64)))
    snap = write_snapshot(tmp_path, z, loc)
    with pytest.raises(ContractError) as e:
        validate_snapshot(snap, tmp_path, settings=settings(tmp_path))
    msg = str(e.value)
    for text in ("RatePlan.Name: column is missing (rule: column_present)",
                 "RatePlan.Color: column is not in the contract (rule: strict)",
                 "Account.BillCycleDay: type String, expected Int64 (rule: dtype)",
                 "orders.quantity: type Float64, expected Int32 (rule: dtype)"):
        assert text in msg
    stored = read_results(tmp_path, snap.run_id).filter(pl.col("outcome") == "failed")
    assert stored.height == 4 and e.value.result is not None and e.value.result.exit_code == 1


@pytest.mark.parametrize("profiles", [False, True], ids=["rows", "profiles"])
def test_duplicated_zuora_key_in_a_snapshot_stops_the_run(tmp_path: Path,
                                                          profiles: bool) -> None:
    zuora, local = world_frames()
    rp = zuora["RatePlan"]
    snap = write_snapshot(tmp_path, dict(zuora, RatePlan=pl.concat([rp, rp.tail(2)])), local,
                          profiles=profiles)
    with pytest.raises(ContractError, match=r"RatePlan\.Id: 2 key value\(s\).*rule: unique"):
        validate_snapshot(snap, tmp_path, settings=settings(tmp_path), gx=False)


def test_profiles_settle_clean_rules_without_reading_and_send_failing_ones_to_the_rows(
        tmp_path: Path) -> None:
    """A snapshot written as the extractor writes it: the clean rules are proven from the
    footers (no column is read for them), and an over-long value, an unknown enum value and
    a duplicated local key are still found row by row, exactly as without profiles."""
    from expectations import sources
    from expectations.validate import contract_rows

    zuora, local = world_frames()
    subs, tiers = zuora["Subscription"], local["zuora_local_rate_plan_charge_tiers"]
    z = dict(zuora, Subscription=subs.with_columns(
        Status=pl.when(pl.int_range(pl.len()) == 2).then(pl.lit("Bogus")).otherwise("Status"),
        # a Zuora id longer than its local column (a long *string* is valid in Zuora)
        AccountId=pl.when(pl.int_range(pl.len()) == 4).then(pl.lit("x" * 65))
        .otherwise("AccountId")))
    loc = dict(local, zuora_local_rate_plan_charge_tiers=pl.concat([tiers, tiers.head(1)]))
    found = {}
    for profiles in (False, True):
        snap = write_snapshot(tmp_path / str(profiles), z, loc, profiles=profiles)
        r = validate_snapshot(snap, tmp_path / str(profiles), settings=settings(tmp_path),
                              gx=False)
        found[profiles] = sorted(
            read_quarantine(tmp_path / str(profiles), snap.run_id)
            .select("object", "key", "column", "check", "value").rows(), key=str)
        failed = r.results.filter(pl.col("outcome") == "failed")
        assert sorted(failed.select("object", "column", "rule").rows()) == [
            ("Subscription", "AccountId", "max_length"), ("Subscription", "Status", "enum"),
            ("zuora_local_rate_plan_charge_tiers", "zuora_id", "unique")]
    assert found[True] == found[False] and len(found[True]) == 4  # 2 rows share the key
    src = sources.SnapshotSource(snap)  # the profiled one
    c = ct.contract("zuora", "RatePlanCharge")
    settled = ct.settled_by_profile(c, src.profile("zuora", "RatePlanCharge"))
    proven = src.null_free("zuora", "RatePlanCharge", c.not_null_columns())
    assert c.needed_columns(proven, settled) == []  # clean: nothing to read
    outcome, _ = contract_rows(src, "zuora", "RatePlanCharge", "r")
    assert {x.outcome for x in outcome.results} == {"passed"}
    assert len(outcome.results) == len(c.checks)


# -- volume ----------------------------------------------------------------------------------
def _two_runs(tmp_path: Path, kept: int, table: str | None = None) -> tuple:
    """A previous snapshot with 100 accounts and a newer one keeping ``kept`` of them (or
    of the rows of a local ``table``)."""
    zuora, local = world_frames()
    z100 = {k: v.head(100) for k, v in zuora.items()}  # small: only the counts matter here
    l100 = {k: v.head(100) for k, v in local.items()}
    prev = write_snapshot(tmp_path, z100, l100, run_id=run_id_at(0))
    _passed(tmp_path, prev.run_id)  # only a passed snapshot is a volume baseline
    if table is None:
        z, loc = dict(z100, Account=z100["Account"].head(kept)), l100
    else:
        z, loc = z100, dict(l100, **{table: l100[table].head(kept)})
    return write_snapshot(tmp_path, z, loc, run_id=run_id_at(60)), prev.run_id


def _passed(data: Path, run_id: str) -> None:
    from core.state import StateDB

    with StateDB(data) as st:
        st.record_check(run_id, "volume", "passed")
        st.record_check(run_id, "contracts", "passed")


def test_volume_baseline_is_the_last_passed_snapshot(tmp_path: Path) -> None:
    """A newer snapshot that failed (or was never validated) is not the baseline: the half
    export compared with it would pass. The comparison is with the last passed one."""
    from core.state import StateDB

    zuora, local = world_frames()
    z100 = {k: v.head(100) for k, v in zuora.items()}
    l100 = {k: v.head(100) for k, v in local.items()}
    good = write_snapshot(tmp_path, z100, l100, run_id=run_id_at(0))
    _passed(tmp_path, good.run_id)
    half = dict(z100, Account=z100["Account"].head(50))
    bad = write_snapshot(tmp_path, half, l100, run_id=run_id_at(60))
    with StateDB(tmp_path) as st:
        st.record_check(bad.run_id, "volume", "failed", good.run_id, "Account: 100 -> 50")
    unchecked = write_snapshot(tmp_path, half, l100, run_id=run_id_at(90))
    again = write_snapshot(tmp_path, half, l100, run_id=run_id_at(120))
    with pytest.raises(VolumeError, match="Account: 100 -> 50 rows") as e:
        validate_snapshot(again, tmp_path, settings=settings(tmp_path), gx=False)
    assert e.value.result.previous_run_id == good.run_id != unchecked.run_id


@pytest.mark.parametrize("kept,fails", [(79, True), (80, False), (81, False)])
def test_volume_drop_beyond_the_limit_stops_the_run(tmp_path: Path, kept: int,
                                                    fails: bool) -> None:
    snap, prev = _two_runs(tmp_path, kept)
    s = settings(tmp_path)
    if fails:
        with pytest.raises(VolumeError) as e:
            validate_snapshot(snap, tmp_path, settings=s, gx=False)
        assert "Account: 100 -> 79 rows (-21.0%; limit -20%)" in str(e.value)
        result = e.value.result
    else:
        result = validate_snapshot(snap, tmp_path, settings=s, gx=False)
    assert result.previous_run_id == prev
    vol = read_results(tmp_path, snap.run_id).filter(
        (pl.col("source") == "volume") & (pl.col("object") == "Account")).row(0, named=True)
    assert vol["outcome"] == ("failed" if fails else "passed")
    assert vol["failing_count"] == 100 - kept and vol["total_count"] == 100
    assert vol["severity"] == "error"


def test_volume_limit_is_configurable_and_local_drops_only_warn(tmp_path: Path) -> None:
    snap, _ = _two_runs(tmp_path, 50, table="customers")
    r = validate_snapshot(snap, tmp_path, settings=settings(tmp_path), gx=False)
    vol = r.results.filter((pl.col("source") == "volume") & (pl.col("outcome") == "failed"))
    assert vol.select("object", "severity").rows() == [("customers", "warning")]
    snap2, _ = _two_runs(tmp_path / "b", 60)
    r = validate_snapshot(snap2, tmp_path / "b", gx=False,
                          settings=settings(tmp_path / "b", validate_max_volume_drop=0.5))
    assert not r.results.filter(pl.col("source") == "volume")["outcome"].is_in(["failed"]).any()


def _subscription_rejects(keys: list[str]) -> dict[str, pl.DataFrame]:
    return {"Subscription": pl.DataFrame(
        {"object": "Subscription", "key": keys, "field": "Version",
         "value": "1.5", "rule": "parse:int", "location": [f"file f1 record {i + 1}"
                                                          for i in range(len(keys))]},
        schema=REJECTS)}


@pytest.mark.parametrize("share", [0.01, 0.5])
def test_quarantine_share_decides_whether_the_run_may_be_repaired(tmp_path: Path,
                                                                  share: float) -> None:
    """A few invalid Zuora values quarantine their records and the run goes on (the reject
    result is a warning, nothing error-severity fails, so repairs may be planned); more
    than validate.max_quarantine_share of an object stops the run with an error-severity
    check the repair guards read."""
    from dataclasses import replace

    from expectations.errors import QuarantineError
    from repair.guards import failed_checks

    zuora, local = world_frames()
    subs = zuora["Subscription"]
    bad = subs["Id"].head(max(2, int(subs.height * 0.05))).to_list()  # 5% of Subscription
    zuora = dict(zuora, Subscription=subs.with_columns(  # the extractor nulls what it rejects
        Version=pl.when(pl.col("Id").is_in(bad)).then(None).otherwise("Version")))
    snap = write_snapshot(tmp_path, zuora, local, rejects=_subscription_rejects(bad))
    s = replace(settings(tmp_path), validate_max_quarantine_share=share)
    if share == 0.5:
        r = validate_snapshot(snap, tmp_path, settings=s, gx=False)
        assert r.quarantined == len(bad) and not r.blocking
        assert failed_checks(tmp_path, snap.run_id) == []
        rej = r.results.filter(pl.col("source") == "extract")
        assert rej["severity"].to_list() == ["warning"] and rej["failing_count"][0] == len(bad)
        return
    with pytest.raises(QuarantineError, match=r"Subscription: [\d,]+ of [\d,]+ records quarantined"):
        validate_snapshot(snap, tmp_path, settings=s, gx=False)
    failed = failed_checks(tmp_path, snap.run_id)
    assert len(failed) == 1 and failed[0].startswith(
        "quarantine Subscription max_quarantine_share: failed"), failed

"""The plan contract (validation names the operation and the problem) and the ``repair``
command line (exit codes, dry run, history, no secrets)."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote, urlencode

import polars as pl
import pytest
from psycopg.conninfo import conninfo_to_dict

from core.localdb.identity import DatabaseIdentity
from jobs.cli import repair as cli
from repair.apply import apply_plan
from repair.plan import (
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    PersonFinding,
    PlanFormatError,
    Ref,
    UnknownPlanVersion,
    UnplannedFinding,
    load_plan,
    parse_plan,
    read_plan,
)
from repair.plan import write_plan as write_model
from tests.support.repair import (
    account_updates,
    dump,
    identity_of,
    make_db,
    op,
    plan_doc,
    ref,
    settings_for,
    write_plan,
)

ACCT = {"zuora_account_id": "A1", "zuora_account_name": "Acme"}


def upd(seq: int = 7, **kw: object) -> dict:
    base = op(seq, "billing_accounts", "update", {"zuora_account_id": "A1"},
              {"zuora_account_name": "Old"}, {"zuora_account_name": "New"})
    base.update(kw)
    return base


def bad(ops: list[dict], match: str, seq: int | None = 7, **kw: object) -> PlanFormatError:
    with pytest.raises(PlanFormatError, match=match) as e:
        parse_plan(plan_doc(ops, **kw), path="plan.json")
    assert e.value.seq == seq
    if seq is not None:
        assert f"operation seq {seq}" in str(e.value)
    assert str(e.value).startswith("repair plan plan.json")
    return e.value


def test_a_valid_plan_is_typed_by_column() -> None:
    tier = op(3, "zuora_local_product_rate_plan_charge_tiers", "update", {"zuora_id": "T1"},
              {"price": "10.5", "updated_date": "2026-01-02T03:04:05.5",
               "created_date": "2026-01-02T03:04:05+02:00"},
              {"price": "11.00"}, step="catalog")
    contact = op(2, "billing_account_contacts", "insert", {"zuora_contact_id": "C1"}, None,
                 {"zuora_contact_id": "C1", "zuora_account_id": "A1",
                  "billing_account_id": ref("billing_accounts", {"zuora_account_id": "A1"})})
    plan = parse_plan(plan_doc([tier, contact]))
    assert [o.seq for o in plan.operations] == [2, 3]  # ascending seq
    t = plan.operations[1]
    assert t.before["price"] == Decimal("10.50") and str(t.before["price"]) == "10.50"
    assert t.before["updated_date"] == dt.datetime(2026, 1, 2, 3, 4, 5, 500000)
    assert t.before["created_date"] == dt.datetime(2026, 1, 2, 1, 4, 5)  # to naive UTC
    r = plan.operations[0].after["billing_account_id"]
    assert r == Ref("billing_accounts", (("zuora_account_id", "A1"),), "id")
    assert plan.created_at.tzinfo is not None


@pytest.mark.parametrize(("op_doc", "match"), [
    (upd(table="invoices"), "table 'invoices' is not a local table"),
    (upd(after={"nope": "x"}), "after names column 'nope'"),
    (upd(before={"zuora_account_name": 1.5}, after={"zuora_account_name": "x"}),
     "JSON float"),
    (upd(op="upsert"), "op must be insert, update or delete"),
    (upd(step="later"), "step must be one of"),
    (upd(group=""), "group must be a non-empty string"),
    (upd(extra=1), r"unknown field\(s\) extra"),
    (upd(before={"currency": "USD"}), "missing zuora_account_name"),
    (upd(before={"zuora_account_id": "A1"}, after={"zuora_account_id": "A2"}),
     "changes key column 'zuora_account_id'"),
    (upd(after={"zuora_account_name": None}, before={"zuora_account_name": "x"}),
     "NOT NULL"),
    (upd(before=None), "needs both before"),
    (upd(key={"zuora_account_id": None}), "a key value must not be null"),
    (upd(key={}), "key must be a non-empty object"),
    (upd(before={"zuora_account_name": "x" * 300}, after={"zuora_account_name": "y"}),
     r"300 characters do not fit VARCHAR\(255\)"),
    (upd(before={"created_at": "2026-13-01T00:00:00"}, after={"created_at":
                                                             "2026-01-01T00:00:00"}),
     "not a valid timestamp"),
    (op(7, "zuora_local_product_rate_plan_charge_tiers", "update", {"zuora_id": "T"},
        {"price": "1.005"}, {"price": "1.01"}), "more than 2 decimal places"),
    (op(7, "orders", "update", {"id": 1}, {"start_date": "1/2/2026"},
        {"start_date": "2026-01-02"}), "not a date YYYY-MM-DD"),
    (op(7, "orders", "update", {"id": "1"}, {"quantity": 1}, {"quantity": 2}),
     "not an integer"),
    (op(7, "orders", "update", {"id": 1}, {"trial": "false"}, {"trial": True}),
     "not true/false"),
    (op(7, "billing_accounts", "insert", {"zuora_account_id": "A1"}, {"currency": "USD"},
        ACCT), "an insert has before: null"),
    (op(7, "billing_accounts", "insert", {"zuora_account_id": "A1"}, None,
        {"zuora_account_id": "A1"}), "after is missing 'zuora_account_name'"),
    (op(7, "billing_accounts", "insert", {"zuora_account_id": "A9"}, None, ACCT),
     "key column 'zuora_account_id' must also be in after"),
    (op(7, "billing_accounts", "delete", {"id": 1}, None, None), "needs before"),
    (op(7, "billing_accounts", "delete", {"id": 1}, {"id": 1}, {"id": 1}),
     "a delete has after: null"),
    (upd(after={"bill_to_contact_id": ref("nope", {"id": 1})},
         before={"bill_to_contact_id": None}), "\\$ref table 'nope'"),
    (upd(after={"bill_to_contact_id": ref("billing_account_contacts", {"id": 1},
                                          "zuora_contact_id")},
         before={"bill_to_contact_id": None}), "is VARCHAR\\(64\\), the target column is BIGINT"),
    (upd(after={"bill_to_contact_id": {"$ref": {"table": "customers", "match": {}, "column":
                                                "id"}}},
         before={"bill_to_contact_id": None}), "match must be a non-empty object"),
    (upd(after={"bill_to_contact_id": {"id": 1}}, before={"bill_to_contact_id": None}),
     "must be a reference"),
])
def test_invalid_operations_name_their_seq_and_problem(op_doc: dict, match: str) -> None:
    bad([op(1, "customers", "delete", {"id": 1}, {"id": 1}), op_doc], match)


def test_plan_level_problems() -> None:
    bad([upd(), upd()], "seq is used by another operation")
    bad([], "schema_version is 4", seq=None, schema_version=4)
    bad([], "is a version 3 plan: its operations are chunk files", seq=None, schema_version=3)
    bad([], "plan_id must be a non-empty string", seq=None, plan_id="")
    bad([], "validation must be one of", seq=None, validation="maybe")
    bad([], "snapshot_complete must be true or false", seq=None, snapshot_complete="yes")
    bad([], "created_at .* is not an ISO-8601", seq=None, created_at="yesterday")
    bad([{"seq": "1"}], r"operations\[0\] has no integer seq", seq=None)


def test_unreadable_plan_files(tmp_path: Path) -> None:
    with pytest.raises(PlanFormatError, match="cannot be read"):
        load_plan(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(PlanFormatError, match="not valid JSON"):
        load_plan(tmp_path / "broken.json")


# -- versions: every format recon ever wrote is read, any other refused by name ---------------
IDENT = {"uuid": "5f0c2a8e-0000-4000-8000-000000000001", "dialect": "duckdb",
         "path": "/srv/local.duckdb"}
PERSON = {"object": "Account", "key": "A9", "kind": "mismatch", "rule": None, "field": "Name",
          "severity": "high", "explanation": "Name differs", "subscription_name": None,
          "account_id": "A9", "fingerprint": "f9"}
UNPLANNED = {"object": "Account", "key": "A8", "kind": "mismatch", "rule": "D03",
             "field": "Name", "explanation": "no operation"}


def _written_by(version: int) -> dict:
    """A plan document as the planner of ``version`` wrote it (field for field: version 1,
    commit 6328842/15852ec, had no local_identity; version 2 added it after local_database)."""
    tier = op(1, "zuora_local_product_rate_plan_charge_tiers", "update", {"zuora_id": "T1"},
              {"price": "10.50", "updated_date": "2026-01-02T03:04:05.000000"},
              {"price": "11.00", "updated_date": "2026-02-03T04:05:06.500000"}, step="catalog")
    contact = op(2, "billing_account_contacts", "insert", {"zuora_contact_id": "C1"}, None,
                 {"zuora_contact_id": "C1", "zuora_account_id": "A1",
                  "billing_account_id": ref("billing_accounts", {"zuora_account_id": "A1"})},
                 step="contacts")
    doc: dict = {"schema_version": version, "plan_id": "20261201T010203Z-abcdef",
                 "run_id": "r1", "created_at": "2026-12-01T01:02:03Z",
                 "snapshot_complete": True, "validation": "passed", "local_database": ""}
    if version >= 2:
        doc["local_identity"] = IDENT
    doc.update(only=None, operations=[tier, contact], needs_a_person=[PERSON],
               not_planned=[UNPLANNED], summary={"operations": 2})
    return doc


def test_every_version_ever_written_is_read(tmp_path: Path) -> None:
    assert READABLE_VERSIONS == (1, 2, 3) and SCHEMA_VERSION == 3
    plans = {}
    for v in (1, 2):  # one JSON document, operations inline
        path = tmp_path / f"v{v}.json"
        path.write_text(json.dumps(_written_by(v), indent=1))
        plans[v] = read_plan(path)
        assert plans[v].schema_version == v and plans[v].path == path
    # version 3: the summary, the operations in a Parquet chunk beside it
    path = write_model(plans[2], tmp_path / "v3.json")
    assert (tmp_path / "v3.ops" / "chunk-00001.parquet").is_file()
    plans[3] = read_plan(path)
    assert plans[3].schema_version == 3 and plans[3].path == path
    v1, v2, v3 = plans[1], plans[2], plans[3]
    assert v1.local_identity is None  # version 1 named no target
    assert v2.local_identity == v3.local_identity == DatabaseIdentity.from_dict(IDENT)
    for p in (v1, v2, v3):
        assert [o.seq for o in p.operations] == [1, 2]
        tier, contact = p.operations
        assert tier.before == {"price": Decimal("10.50"),
                               "updated_date": dt.datetime(2026, 1, 2, 3, 4, 5)}
        assert contact.after["billing_account_id"] == Ref(
            "billing_accounts", (("zuora_account_id", "A1"),), "id")
        assert p.created_at == dt.datetime(2026, 12, 1, 1, 2, 3, tzinfo=dt.UTC)
        assert p.needs_a_person == [PersonFinding(**PERSON)]
        assert p.not_planned == [UnplannedFinding(**UNPLANNED)]
        # the file's summary is informational: the model's is derived from the operations
        assert p.summary.operations == 2 and p.summary.groups == 2
        assert p.summary.needs_a_person == {"mismatch": 1} and p.summary.not_planned == 1
    # reading is not applying: apply refuses the version 1 plan by name, before any database
    with pytest.raises(PlanFormatError, match=r"plan '20261201T010203Z-abcdef' has "
                                              r"schema_version 1, an older format"):
        load_plan(tmp_path / "v1.json")
    assert load_plan(tmp_path / "v2.json") == v2
    assert load_plan(tmp_path / "v3.json").operations == v2.operations


@pytest.mark.parametrize("version", [4, 0, "2", None, True, 2.0])
def test_an_unknown_version_is_refused_by_name(version: object, tmp_path: Path) -> None:
    doc = _written_by(2)
    doc["schema_version"] = version
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    for read in (read_plan, load_plan):
        with pytest.raises(UnknownPlanVersion) as e:
            read(path)
        assert e.value.version == version
        assert f"schema_version is {version!r}, a plan format this recon does not know " \
               "(it reads versions 1, 2, 3)" in str(e.value)
        assert isinstance(e.value, PlanFormatError) and e.value.seq is None


def test_write_then_read_is_the_same_plan(tmp_path: Path) -> None:
    plan = parse_plan(_written_by(2))
    path = write_model(plan, tmp_path / "plan.json")
    again = read_plan(path)  # a version 2 plan, written now: version 3, the same plan
    assert dataclasses.replace(again, schema_version=2) == plan
    assert again.schema_version == SCHEMA_VERSION
    assert write_model(again, tmp_path / "again.json").read_text() == path.read_text()
    doc = json.loads(path.read_text())
    assert doc["local_identity"] == IDENT and doc["only"] is None
    assert "operations" not in doc and [c["operations"] for c in doc["chunks"]] == [2]
    chunk = pl.read_parquet(tmp_path / "plan.ops" / doc["chunks"][0]["file"])
    assert json.loads(chunk["after"][0]) == {"price": "11.00",
                                             "updated_date": "2026-02-03T04:05:06.500000"}
    assert doc["needs_a_person"] == [PERSON] and doc["not_planned"] == [UNPLANNED]
    # a version 1 plan is written in the current format: still naming no target (refused
    # by every apply as "without a recon identity"), but no longer an old format
    old = read_plan(_write_doc(tmp_path / "v1.json", _written_by(1)))
    upgraded = read_plan(write_model(old, tmp_path / "v1-now.json"))
    assert upgraded.schema_version == SCHEMA_VERSION and upgraded.local_identity is None
    assert upgraded.operations == old.operations


def test_a_chunked_plan_is_applied_chunk_by_chunk(duckdb_url: str, tmp_path: Path) -> None:
    """Version 3 streams: each chunk file (whole groups) is read, checked and applied in
    turn under one apply; a chunk file that changed since the plan was written is refused by
    name before anything is written."""
    make_db(duckdb_url)
    settings = settings_for(duckdb_url, tmp_path / "data")
    ops = account_updates(duckdb_url, 7, per_group=2)  # 4 groups: 2, 2, 2, 1 operations
    plan = parse_plan(plan_doc(ops, local_identity=identity_of(duckdb_url)))
    path = write_model(plan, tmp_path / "plan.json", chunk_operations=3)
    doc = json.loads(path.read_text())
    assert [c["operations"] for c in doc["chunks"]] == [2, 2, 3]  # a group never splits
    before = dump(duckdb_url, ["billing_accounts"])
    tampered = tmp_path / "plan.ops" / doc["chunks"][2]["file"]
    good = tampered.read_bytes()
    pl.read_parquet(tampered).with_columns(reason=pl.lit("edited")).write_parquet(tampered)
    with pytest.raises(PlanFormatError, match=r"chunk-00003\.parquet does not have the sha256 "
                                              r"the plan records"):
        apply_plan(path, settings, yes=True)
    assert dump(duckdb_url, ["billing_accounts"]) == before, "checked before writing"
    tampered.write_bytes(good)
    result = apply_plan(path, settings, yes=True, batch_size=2)
    assert result.status == "complete" and result.ops_applied == 7
    # batches of whole groups, numbered across the chunks [2] [2] [2+1]
    assert result.batches == 4 and sorted({o.batch for o in result.outcomes}) == [1, 2, 3, 4]


def _write_doc(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


# -- the command line ------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recon")
    p.add_argument("--config")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("--progress", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    cli.add_parser(sub)  # repair plan | apply | revert | history
    return p


def _run(*argv: str) -> int:
    args = _parser().parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, duckdb_url: str) -> str:
    monkeypatch.chdir(tmp_path)
    for k in ("RECON_CONFIG", "RECON_REPAIR_MAX_CHANGE_FRACTION"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("RECON_LOCAL_DATABASE_URL", duckdb_url)
    monkeypatch.setenv("RECON_DATA_DIR", str(tmp_path / "data"))
    make_db(duckdb_url)
    return duckdb_url


def test_cli_dry_run_apply_history_revert(env: str, tmp_path: Path, capsys) -> None:
    plan = write_plan(env, tmp_path / "p.json", account_updates(env, 2))
    before = dump(env)
    assert _run("repair", "apply", str(plan)) == 0
    out = capsys.readouterr().out
    assert "DRY RUN, nothing was written" in out and " → " in out and dump(env) == before
    assert _run("-q", "repair", "apply", str(plan), "--yes", "--batch-size", "1") == 0
    assert capsys.readouterr().out == ""
    assert dump(env) != before
    assert _run("repair", "history") == 0
    out = capsys.readouterr().out
    apply_id = out.split("\n")[2].split()[0]
    assert apply_id.startswith("ap-") and "complete" in out and "plan-test (run-test)" in out
    assert _run("repair", "revert", apply_id, "--yes") == 0
    out = capsys.readouterr().out
    assert f"revert of {apply_id}" in out and "2 of 2 operations applied" in out
    assert dump(env) == before


def test_cli_refusals_exit_2_with_the_reason(env: str, tmp_path: Path, capsys) -> None:
    plan = write_plan(env, tmp_path / "p.json", account_updates(env, 3))
    assert _run("repair", "apply", str(plan), "--yes") == 2
    err = capsys.readouterr().err
    assert err.startswith("recon: error: refusing") and "--force" in err
    assert _run("repair", "apply", str(plan), "--yes", "--force") == 0
    assert _run("repair", "revert", "ap-nope") == 2
    assert "no apply 'ap-nope'" in capsys.readouterr().err
    # bad input is refused where it is parsed (argparse exits 2 naming the argument)
    with pytest.raises(SystemExit, match="2"):
        _run("repair", "apply", str(tmp_path / "nope.json"))
    assert "argument plan" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="2"):
        _run("repair", "apply", str(plan), "--batch-size", "0")
    assert "argument --batch-size: 0 is out of range" in capsys.readouterr().err


def test_cli_refuses_an_unknown_plan_version_by_name(env: str, tmp_path: Path,
                                                    capsys) -> None:
    plan = write_plan(env, tmp_path / "p.json", account_updates(env, 1), schema_version=9)
    before = dump(env)
    for yes in ((), ("--yes",)):
        assert _run("repair", "apply", str(plan), *yes) == 2
        err = capsys.readouterr().err
        assert "schema_version is 9, a plan format this recon does not know" in err
        assert "Traceback" not in err
    assert dump(env) == before


def test_cli_skips_are_reported_even_when_quiet(env: str, tmp_path: Path, capsys) -> None:
    ops = account_updates(env, 1)
    ops[0]["before"]["zuora_account_name"] = "someone else's"
    plan = write_plan(env, tmp_path / "p.json", ops)
    assert _run("-q", "repair", "apply", str(plan), "--yes") == 1  # done, a skip to look at
    captured = capsys.readouterr()
    assert captured.out == "" and "1 operations skipped" in captured.err
    assert "conflict" in captured.err


@pytest.mark.postgres
def test_no_password_in_output_or_lock_messages(pg_url: str, tmp_path: Path, capsys,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    params = conninfo_to_dict(pg_url)
    dbname = params.pop("dbname")
    host, port, user = params.pop("host"), params.pop("port"), params.pop("user")
    secret_url = (f"postgresql://{user}:pa55word@{host}:{port}/{dbname}?"
                  + urlencode(params, quote_via=quote))
    make_db(secret_url)
    plan = write_plan(secret_url, tmp_path / "p.json", account_updates(secret_url, 1))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RECON_LOCAL_DATABASE_URL", secret_url)
    monkeypatch.setenv("RECON_DATA_DIR", str(tmp_path))
    assert _run("repair", "apply", str(plan)) == 0
    captured = capsys.readouterr()
    assert "pa55word" not in captured.out + captured.err and ":***@" in captured.out
    from repair.lock import RepairLock

    with RepairLock(secret_url, "ap-other", "apply"):
        assert _run("repair", "apply", str(plan), "--yes") == 2
    err = capsys.readouterr().err
    assert "ap-other" in err and "pa55word" not in err
    r = apply_plan(plan, settings_for(secret_url, tmp_path), yes=True)
    assert r.ops_applied == 1
    assert "pa55word" not in json.dumps(r.operations.to_dicts())

"""The repair executor on DuckDB and on a real PostgreSQL: dry run, set-based apply with its
audit, optimistic concurrency, idempotence, references, generated ids, groups, revert."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from jobs.cli.repair import format_result
from repair import audit
from repair.apply import apply_plan, list_applies, revert_apply
from repair.executor import make_batches, schedule
from repair.guards import RepairFailed
from repair.plan import parse_plan
from tests.support.pg import outside_write
from tests.support.repair import (
    account_updates,
    dump,
    make_db,
    one,
    op,
    ref,
    row_json,
    rows,
    settings_for,
    write_plan,
)

NEW_ACCOUNT = {"zuora_account_id": "acct-new-1", "zuora_account_name": "Initech Ltd",
               "zuora_account_number": "A99000001", "currency": "EUR",
               "created_at": "2026-11-20T10:00:00", "updated_at": "2026-11-20T10:00:00.250000"}


def mixed_plan(db_url: str, tmp_path: Path, name: str = "plan.json",
               suffix: str = " (fixed)") -> Path:
    """Updates, an insert (generated id), a dependent insert by reference, and a delete."""
    ops = account_updates(db_url, 3, suffix=suffix)
    victim = row_json(db_url, "billing_account_contacts",
                      "id = (SELECT min(id) FROM billing_account_contacts)")
    ops += [
        op(10, "billing_accounts", "insert", {"zuora_account_id": "acct-new-1"}, None,
           NEW_ACCOUNT, group="new"),
        op(11, "billing_account_contacts", "insert", {"zuora_contact_id": "ct-new-1"}, None,
           {"zuora_contact_id": "ct-new-1", "zuora_account_id": "acct-new-1",
            "first_name": "Peter", "last_name": "Gibbons",
            "billing_account_id": ref("billing_accounts", {"zuora_account_id": "acct-new-1"})},
           group="new", step="contacts"),
        op(20, "billing_account_contacts", "delete", {"id": victim["id"]}, victim,
           step="contacts"),
    ]
    return write_plan(db_url, tmp_path / name, ops)


def test_dry_run_writes_nothing_and_shows_every_change(url: str, tmp_path: Path) -> None:
    plan = mixed_plan(url, tmp_path)
    before = dump(url)
    result = apply_plan(plan, settings_for(url, tmp_path))
    assert result.dry_run and result.apply_id is None and result.status == "dry_run"
    assert dump(url) == before
    with_audit = [one(url, f"SELECT count(*) FROM {t}") for t in (audit.APPLIES, audit.AUDIT)]
    assert with_audit == [0, 0]  # not even an audit row
    assert {o.seq: o.status for o in result.outcomes} == dict.fromkeys(
        (1, 2, 3, 10, 11, 20), "applied")
    c = result.counts
    assert c.filter(table="billing_accounts", op="update")["applied"].item() == 3
    text = "\n".join(format_result(result))
    assert "DRY RUN" in text and "nothing was written" in text
    name = rows(url, "SELECT zuora_account_name FROM billing_accounts ORDER BY id LIMIT 1")[0][0]
    assert f'zuora_account_name: "{name}" → "{name} (fixed)"' in text
    assert 'zuora_account_name: → "Initech Ltd"' in text
    assert "<id of the row inserted by seq 10>" in text  # the reference, followed read-only
    assert "delete row:" in text


def test_apply_writes_rows_and_audit_with_full_images(url: str, tmp_path: Path) -> None:
    plan = mixed_plan(url, tmp_path)
    first = rows(url, "SELECT id, zuora_account_name FROM billing_accounts ORDER BY id LIMIT 1")
    max_id = one(url, "SELECT max(id) FROM billing_accounts")
    victim_id = one(url, "SELECT min(id) FROM billing_account_contacts")
    result = apply_plan(plan, settings_for(url, tmp_path), yes=True, batch_size=2)
    assert result.status == "complete" and result.ops_applied == 6 and result.batches == 4
    assert rows(url, f"SELECT zuora_account_name FROM billing_accounts WHERE id = "
                     f"{first[0][0]}")[0][0] == first[0][1] + " (fixed)"
    (new_id, currency, upd), = rows(url, "SELECT id, currency, updated_at FROM billing_accounts "
                                         "WHERE zuora_account_id = 'acct-new-1'")
    assert new_id > max_id and currency == "EUR" and upd.microsecond == 250000
    assert rows(url, "SELECT billing_account_id FROM billing_account_contacts "
                     "WHERE zuora_contact_id = 'ct-new-1'") == [(new_id,)]
    assert one(url, f"SELECT count(*) FROM billing_account_contacts WHERE id = {victim_id}") == 0

    aud = {r[0]: r for r in rows(url, f"SELECT seq, batch, table_name, op, key, before, after "
                                      f"FROM {audit.AUDIT} WHERE apply_id = "
                                      f"'{result.apply_id}'")}
    assert sorted(aud) == [1, 2, 3, 10, 11, 20]
    _, _, table, kind, key, before, after = aud[10]
    assert (table, kind, before) == ("billing_accounts", "insert", None)
    assert json.loads(after)["id"] == new_id  # the generated id is in the after image
    assert json.loads(key) == {"zuora_account_id": "acct-new-1"}
    b, a = json.loads(aud[1][5]), json.loads(aud[1][6])
    assert b["id"] == a["id"] == first[0][0] and len(b) == 13  # full rows
    assert a["zuora_account_name"] == b["zuora_account_name"] + " (fixed)"
    assert json.loads(aud[20][5])["id"] == victim_id and aud[20][6] is None
    assert aud[10][1] == aud[11][1]  # one group, one batch

    hist = list_applies(settings_for(url, tmp_path))
    assert hist.height == 1
    h = hist.row(0, named=True)
    assert (h["apply_id"], h["status"], h["kind"], h["ops_planned"], h["ops_applied"],
            h["dry_run"]) == (result.apply_id, "complete", "apply", 6, 6, False)
    assert h["finished_at"] >= h["started_at"] and h["plan_path"] == str(plan.resolve())


def test_decimals_and_timestamps_compare_exactly(url: str, tmp_path: Path) -> None:
    zid, price = rows(url, "SELECT zuora_id, price FROM zuora_local_product_rate_plan_charge_tiers"
                           " WHERE price IS NOT NULL ORDER BY zuora_id LIMIT 1")[0]
    loose = format(price.normalize(), "f")  # 10.50 → "10.5"
    plan = write_plan(url, tmp_path / "p.json", [op(
        1, "zuora_local_product_rate_plan_charge_tiers", "update", {"zuora_id": zid},
        {"price": loose}, {"price": str(price + 1)}, step="catalog")])
    result = apply_plan(plan, settings_for(url, tmp_path), yes=True)
    assert result.count("applied") == 1
    assert one(url, f"SELECT price FROM zuora_local_product_rate_plan_charge_tiers "
                    f"WHERE zuora_id = '{zid}'") == price + 1


def test_a_row_changed_after_planning_is_skipped_not_overwritten(url: str,
                                                                 tmp_path: Path) -> None:
    ops = account_updates(url, 3)
    plan = write_plan(url, tmp_path / "plan.json", ops)
    zid = ops[1]["key"]["zuora_account_id"]
    outside_write(url, f"UPDATE billing_accounts SET zuora_account_name = 'Renamed by the app' "
                       f"WHERE zuora_account_id = '{zid}'")  # the app, after the plan was made
    dry = apply_plan(plan, settings_for(url, tmp_path))
    assert [o.status for o in dry.outcomes] == ["applied", "conflict", "applied"]
    result = apply_plan(plan, settings_for(url, tmp_path), yes=True)
    assert result.status == "partial"
    assert one(url, f"SELECT zuora_account_name FROM billing_accounts "
                    f"WHERE zuora_account_id = '{zid}'") == "Renamed by the app"
    sk = result.skipped.row(0, named=True)
    assert sk["status"] == "conflict" and sk["seq"] == 2 and sk["table"] == "billing_accounts"
    assert json.loads(sk["key"]) == {"zuora_account_id": zid}
    assert json.loads(sk["expected"]) == ops[1]["before"]
    assert json.loads(sk["current"])["zuora_account_name"] == "Renamed by the app"
    assert "zuora_account_name: expected" in sk["detail"]
    assert one(url, f"SELECT count(*) FROM {audit.AUDIT}") == 2
    h = list_applies(settings_for(url, tmp_path)).row(0, named=True)
    assert h["status"] == "partial" and h["ops_skipped"] == 1 and "conflict" in h["message"]


def test_the_same_plan_twice_changes_nothing_the_second_time(url: str, tmp_path: Path) -> None:
    plan = mixed_plan(url, tmp_path)
    settings = settings_for(url, tmp_path)
    first = apply_plan(plan, settings, yes=True)
    after_first = dump(url)
    second = apply_plan(plan, settings, yes=True)
    assert dump(url) == after_first
    assert second.status == "complete" and second.ops_applied == 0
    assert {o.status for o in second.outcomes} == {"already_applied"}
    assert second.skipped.height == 6
    n = rows(url, f"SELECT apply_id, count(*) FROM {audit.AUDIT} GROUP BY apply_id")
    assert n == [(first.apply_id, 6)]


def test_references_resolve_to_rows_inserted_by_an_earlier_batch(url: str,
                                                                 tmp_path: Path) -> None:
    acct_ref = ref("billing_accounts", {"zuora_account_id": "acct-new-1"})
    ops = [
        op(1, "billing_accounts", "insert", {"zuora_account_id": "acct-new-1"}, None,
           NEW_ACCOUNT, group="a"),
        op(2, "customers", "insert", {"email": "peter@initech.example"}, None,
           {"email": "peter@initech.example", "first_name": "Peter"}, group="b"),
        op(3, "billing_account_memberships", "insert",
           {"customer_id": ref("customers", {"email": "peter@initech.example"}),
            "billing_account_id": acct_ref}, None,
           {"customer_id": ref("customers", {"email": "peter@initech.example"}),
            "billing_account_id": acct_ref}, group="c"),
        op(4, "orders", "insert", {"subscription_name": "S-NEW", "zuora_account_id": "nope"},
           None, {"subscription_name": "S-NEW", "zuora_account_id": "nope",
                  "billing_account_id": ref("billing_accounts", {"zuora_account_id": "nope"})},
           group="d", step="orders"),
    ]
    plan = write_plan(url, tmp_path / "plan.json", ops)
    result = apply_plan(plan, settings_for(url, tmp_path), yes=True, batch_size=1)
    assert result.batches == 4
    assert [o.status for o in result.outcomes] == ["applied"] * 3 + ["referenced_row_missing"]
    assert "billing_accounts.id where zuora_account_id='nope'" in result.outcomes[3].detail
    acct = one(url, "SELECT id FROM billing_accounts WHERE zuora_account_id = 'acct-new-1'")
    cust = one(url, "SELECT id FROM customers WHERE email = 'peter@initech.example'")
    assert rows(url, f"SELECT count(*) FROM billing_account_memberships WHERE customer_id = "
                     f"{cust} AND billing_account_id = {acct}") == [(1,)]
    assert one(url, "SELECT count(*) FROM orders WHERE subscription_name = 'S-NEW'") == 0
    assert result.status == "partial"


def test_generated_ids_on_both_backends(url: str, tmp_path: Path) -> None:
    before = {t: one(url, f"SELECT max(id) FROM {t}") for t in ("customers", "orders")}
    ops = [op(i, "customers", "insert", {"email": f"new{i}@example.com"}, None,
              {"email": f"new{i}@example.com", "billable": True}, group="c") for i in range(1, 4)]
    ops.append(op(9, "orders", "insert", {"id": before["orders"] + 100}, None,
                  {"id": before["orders"] + 100, "subscription_name": "S-X", "trial": False,
                   "reconciliation_accepted": False}, step="orders"))
    result = apply_plan(write_plan(url, tmp_path / "p.json", ops), settings_for(url, tmp_path),
                        yes=True)
    assert result.ops_applied == 4
    ids = [r[0] for r in rows(url, "SELECT id FROM customers WHERE email LIKE 'new%' "
                                   "ORDER BY email")]
    assert len(set(ids)) == 3 and min(ids) > before["customers"]
    assert one(url, "SELECT id FROM orders WHERE subscription_name = 'S-X'") == \
        before["orders"] + 100
    audit_ids = {json.loads(a)["id"] for (a,) in rows(
        url, f"SELECT after FROM {audit.AUDIT} WHERE table_name = 'customers'")}
    assert audit_ids == set(ids)


def test_a_group_is_never_split_across_batches(url: str, tmp_path: Path) -> None:
    ops = account_updates(url, 9, per_group=3)  # groups g0, g1, g2 of three operations
    plan = parse_plan(json.loads(write_plan(url, tmp_path / "p.json", ops).read_text()))
    for size in (1, 2, 4, 5):
        for batch in make_batches(plan.operations, size):
            groups = {o.group for o in batch}
            assert all(sum(o.group == g for o in batch) == 3 for g in groups)
    assert [len(b) for b in make_batches(plan.operations, 5)] == [3, 3, 3]
    assert [len(b) for b in make_batches(plan.operations, 6)] == [6, 3]
    result = apply_plan(tmp_path / "p.json", settings_for(url, tmp_path), yes=True,
                        batch_size=2)
    assert result.batches == 3
    batches = dict(rows(url, f"SELECT seq, batch FROM {audit.AUDIT}"))
    for g in range(3):
        assert len({batches[s] for s in range(3 * g + 1, 3 * g + 4)}) == 1


def test_a_failing_batch_rolls_back_with_its_audit(url: str, tmp_path: Path) -> None:
    """The audit rows are written in the batch's transaction: a batch that fails leaves
    neither its changes nor its audit rows; earlier batches keep both."""
    taken = one(url, "SELECT zuora_account_id FROM billing_accounts ORDER BY id LIMIT 1")
    mine = one(url, "SELECT zuora_account_id FROM billing_accounts WHERE id = 3")
    ops = account_updates(url, 1)
    ops += [op(5, "billing_accounts", "update", {"id": 2}, {"currency": row_json(
                url, "billing_accounts", "id = 2")["currency"]}, {"currency": "JPY"}, group="x"),
            op(6, "billing_accounts", "update", {"id": 3}, {"zuora_account_id": mine},
               {"zuora_account_id": taken}, group="x")]  # breaks UNIQUE (zuora_account_id)
    plan = write_plan(url, tmp_path / "p.json", ops)
    before = dump(url)
    with pytest.raises(RepairFailed, match=r"batch 2 of 2 .*rolled back.*1 earlier batch"):
        apply_plan(plan, settings_for(url, tmp_path), yes=True, batch_size=1)
    assert rows(url, f"SELECT seq, batch FROM {audit.AUDIT}") == [(1, 1)]
    assert one(url, "SELECT currency FROM billing_accounts WHERE id = 2") != "JPY"
    after = dump(url)
    changed = [r for r in after["billing_accounts"] if r not in before["billing_accounts"]]
    assert len(changed) == 1 and changed[0][2].endswith("(fixed)")
    h = list_applies(settings_for(url, tmp_path)).row(0, named=True)
    assert h["status"] == "failed" and "batch 2" in h["message"] and h["ops_applied"] == 1


def test_an_insert_that_would_break_a_unique_column_is_skipped(url: str,
                                                               tmp_path: Path) -> None:
    taken = one(url, "SELECT zuora_account_id FROM billing_accounts ORDER BY id LIMIT 1")
    ops = [op(1, "billing_accounts", "insert", {"zuora_account_number": "A-DUP"}, None,
              {"zuora_account_number": "A-DUP", "zuora_account_id": taken,
               "zuora_account_name": "duplicate Zuora id"}),
           op(2, "billing_accounts", "insert", {"zuora_account_id": "acct-new-1"}, None,
              NEW_ACCOUNT)]
    before = dump(url)
    result = apply_plan(write_plan(url, tmp_path / "p.json", ops), settings_for(url, tmp_path),
                        yes=True)
    assert [o.status for o in result.outcomes] == ["conflict", "applied"]
    assert "unique column" in result.outcomes[0].detail
    after = dump(url)
    added = [r for r in after["billing_accounts"] if r not in before["billing_accounts"]]
    assert [r[1] for r in added] == ["acct-new-1"]


@pytest.mark.slow
def test_revert_restores_the_exact_pre_apply_state(url: str, tmp_path: Path) -> None:
    settings = settings_for(url, tmp_path)
    # also delete a whole account (re-inserted with the same id by the revert)
    doomed = row_json(url, "billing_accounts", "id = 5")
    ops = account_updates(url, 3)
    ops.append(op(30, "billing_accounts", "delete", {"zuora_account_id":
                                                      doomed["zuora_account_id"]}, doomed))
    plan = write_plan(url, tmp_path / "plan.json", ops)
    before = dump(url)
    applied = apply_plan(plan, settings, yes=True)
    mixed = mixed_plan(url, tmp_path, "mixed.json", suffix=" (v2)")  # on top of the first
    applied2 = apply_plan(mixed, settings, yes=True)
    assert applied.ops_applied == 4 and applied2.ops_applied == 6
    assert dump(url) != before

    dry = revert_apply(applied2.apply_id, settings)
    assert dry.dry_run and dry.ops_applied == 6
    revert2 = revert_apply(applied2.apply_id, settings, yes=True)
    revert1 = revert_apply(applied.apply_id, settings, yes=True)
    assert revert2.status == revert1.status == "complete"
    assert dump(url) == before  # including the re-inserted rows, same ids
    again = revert_apply(applied.apply_id, settings, yes=True)
    assert again.ops_applied == 0 and {o.status for o in again.outcomes} == {"already_applied"}
    assert dump(url) == before
    hist = list_applies(settings)
    assert hist["kind"].to_list() == ["apply", "apply", "revert", "revert", "revert"]
    assert hist["reverts_apply_id"].to_list()[2:] == [applied2.apply_id, applied.apply_id,
                                                      applied.apply_id]


def test_revert_skips_rows_changed_since_the_apply(url: str, tmp_path: Path) -> None:
    settings = settings_for(url, tmp_path)
    ops = account_updates(url, 3)
    applied = apply_plan(write_plan(url, tmp_path / "p.json", ops), settings, yes=True)
    zid = ops[0]["key"]["zuora_account_id"]
    outside_write(url, f"UPDATE billing_accounts SET currency = 'CHF' WHERE zuora_account_id = "
                       f"'{zid}'")
    result = revert_apply(applied.apply_id, settings, yes=True)
    assert result.status == "partial"
    st = {o.seq: o for o in result.outcomes}
    conflict = [o for o in st.values() if o.status == "conflict"]
    assert len(conflict) == 1 and conflict[0].key == {"id": ops_id(url, zid)}
    assert "currency: expected" in conflict[0].detail
    assert rows(url, f"SELECT zuora_account_name, currency FROM billing_accounts WHERE "
                     f"zuora_account_id = '{zid}'")[0] == (ops[0]["after"]["zuora_account_name"],
                                                          "CHF")
    for o in ops[1:]:
        k = o["key"]["zuora_account_id"]
        assert one(url, f"SELECT zuora_account_name FROM billing_accounts WHERE "
                        f"zuora_account_id = '{k}'") == o["before"]["zuora_account_name"]


def ops_id(db_url: str, zid: str) -> int:
    return one(db_url, f"SELECT id FROM billing_accounts WHERE zuora_account_id = '{zid}'")


def test_history_on_a_database_without_repairs(tmp_path: Path) -> None:
    empty = f"duckdb:///{tmp_path / 'never.duckdb'}"
    assert list_applies(settings_for(empty, tmp_path)).height == 0
    assert not (tmp_path / "never.duckdb").exists()
    make_db(empty, {})
    assert list_applies(settings_for(empty, tmp_path)).height == 0


# -- scheduling: a batch becomes a few set-based statements, in an order that keeps the plan's
def _ops(*docs: dict) -> list:
    return parse_plan({"schema_version": 2, "plan_id": "p", "run_id": "r",
                       "created_at": "2026-11-23T01:00:00Z", "snapshot_complete": True,
                       "validation": "passed", "local_identity": None,
                       "operations": list(docs)}).operations


def _sub_row(zid: str, name: str) -> dict:
    return {"zuora_id": zid, "version": 1, "term_start_date": "2026-01-01",
            "subscription_start_date": "2026-01-01", "auto_renew": False, "account_id": "A",
            "invoice_owner_id": "A", "original_id": zid, "name": name, "created_by_id": "u",
            "created_date": "2026-01-01T00:00:00", "updated_by_id": "u",
            "updated_date": "2026-01-01T00:00:00"}


def test_planner_ordered_groups_become_one_statement_per_table_and_kind() -> None:
    docs, seq = [], 0
    for g in range(50):  # per version: insert the new row, update one, delete the old one
        grp = f"version:{g}"
        for kind in ("insert", "update", "delete"):
            seq += 1
            if kind == "insert":
                docs.append(op(seq, "zuora_local_subscriptions", "insert",
                               {"zuora_id": f"new{g}"}, None, _sub_row(f"new{g}", f"S{g}"),
                               group=grp, step="subscriptions"))
            elif kind == "update":
                docs.append(op(seq, "zuora_local_subscriptions", "update", {"zuora_id": f"u{g}"},
                               {"notes": None}, {"notes": "x"}, group=grp,
                               step="subscriptions"))
            else:
                docs.append(op(seq, "zuora_local_subscriptions", "delete", {"zuora_id": f"old{g}"},
                               _sub_row(f"old{g}", f"S{g}"), group=grp, step="subscriptions"))
    for g in range(50):  # people: a customer, then a membership referencing it
        email = f"p{g}@example.com"
        docs.append(op(seq + 1, "customers", "insert", {"email": email}, None, {"email": email},
                       group=f"people:{g}", step="orders"))
        member = {"customer_id": ref("customers", {"email": email}),
                  "billing_account_id": ref("billing_accounts", {"zuora_account_id": "A"})}
        docs.append(op(seq + 2, "billing_account_memberships", "insert", member, None, member,
                       group=f"people:{g}", step="orders"))
        seq += 2
    runs = schedule(_ops(*docs))
    assert [(r.table, r.op, len(r.ops)) for r in runs] == [
        ("zuora_local_subscriptions", "insert", 50), ("zuora_local_subscriptions", "update", 50),
        ("zuora_local_subscriptions", "delete", 50), ("customers", "insert", 50),
        ("billing_account_memberships", "insert", 50)]


def test_scheduling_keeps_the_order_that_matters() -> None:
    row = _sub_row("K", "S1")
    replace_same_key = _ops(
        op(1, "zuora_local_subscriptions", "delete", {"zuora_id": "K"}, row, group="g"),
        op(2, "zuora_local_subscriptions", "insert", {"zuora_id": "K"}, None,
           {**row, "notes": "new"}, group="g"),
        op(3, "zuora_local_subscriptions", "delete", {"zuora_id": "J"}, _sub_row("J", "S2"),
           group="g"))
    # the insert of K stays after the delete of K; the delete of J (another row) joins the
    # first delete
    assert [[o.seq for o in r.ops] for r in schedule(replace_same_key)] == [[1, 3], [2]]
    # a reference sees the rows written before it; a later insert the reference would match
    # stays after it (in plan order that reference is resolved without the row)
    contact = {"zuora_contact_id": "C1", "zuora_account_id": "A1",
               "billing_account_id": ref("billing_accounts", {"zuora_account_id": "A1"})}
    acct = {"zuora_account_id": "A1", "zuora_account_name": "n"}
    ordered = _ops(
        op(1, "billing_account_contacts", "insert", {"zuora_contact_id": "C1"}, None, contact),
        op(2, "billing_accounts", "insert", {"zuora_account_id": "A1"}, None, acct),
        op(3, "billing_account_contacts", "insert", {"zuora_contact_id": "C2"}, None,
           {**contact, "zuora_contact_id": "C2"}),
        op(4, "billing_accounts", "insert", {"zuora_account_id": "A2"}, None,
           {**acct, "zuora_account_id": "A2"}))
    assert [[o.seq for o in r.ops] for r in schedule(ordered)] == [[1], [2, 4], [3]]


def test_a_delete_and_an_insert_of_the_same_key_replace_the_row(url: str,
                                                                tmp_path: Path) -> None:
    old = row_json(url, "customers", "id = (SELECT min(id) FROM customers)")
    new = {**{k: v for k, v in old.items() if k != "id"}, "company": "Replaced Inc"}
    ops = [op(1, "customers", "delete", {"email": old["email"]}, old, group="g"),
           op(2, "customers", "insert", {"email": old["email"]}, None, new, group="g")]
    result = apply_plan(write_plan(url, tmp_path / "p.json", ops), settings_for(url, tmp_path),
                        yes=True)
    assert [o.status for o in result.outcomes] == ["applied", "applied"]
    assert rows(url, f"SELECT company FROM customers WHERE email = '{old['email']}'") == [
        ("Replaced Inc",)]


def test_a_row_changed_again_by_a_later_operation_is_already_applied_on_a_rerun(
        url: str, tmp_path: Path) -> None:
    """The planner's shapes: an account inserted without its bill-to contact, then pointed at
    the contact inserted after it; two updates of one order, the second on top of the first.
    A re-run finds the rows as the later operations left them: already applied."""
    oid, end = rows(url, "SELECT id, end_date FROM orders WHERE end_date IS NOT NULL "
                         "ORDER BY id LIMIT 1")[0]
    d1, d2 = end + dt.timedelta(days=1), end + dt.timedelta(days=2)
    contact_ref = ref("billing_account_contacts", {"zuora_contact_id": "ct-new-1"})
    ops = [
        op(1, "billing_accounts", "insert", {"zuora_account_id": "acct-new-1"}, None,
           {**NEW_ACCOUNT, "bill_to_contact_id": None}, group="acct"),
        op(2, "billing_account_contacts", "insert", {"zuora_contact_id": "ct-new-1"}, None,
           {"zuora_contact_id": "ct-new-1", "zuora_account_id": "acct-new-1",
            "billing_account_id": ref("billing_accounts", {"zuora_account_id": "acct-new-1"})},
           group="acct", step="contacts"),
        op(3, "billing_accounts", "update", {"zuora_account_id": "acct-new-1"},
           {"bill_to_contact_id": None}, {"bill_to_contact_id": contact_ref}, group="acct",
           step="contacts"),
        op(4, "orders", "update", {"id": oid}, {"end_date": end.isoformat()},
           {"end_date": d1.isoformat()}, step="references"),
        op(5, "orders", "update", {"id": oid}, {"end_date": d1.isoformat()},
           {"end_date": d2.isoformat()}, step="orders"),
    ]
    plan = write_plan(url, tmp_path / "p.json", ops)
    settings = settings_for(url, tmp_path)
    original = dump(url)
    dry = apply_plan(plan, settings)
    assert [o.status for o in dry.outcomes] == ["applied"] * 5  # the dry run follows its own
    first = apply_plan(plan, settings, yes=True, batch_size=2)
    assert first.status == "complete" and first.ops_applied == 5
    assert one(url, f"SELECT end_date FROM orders WHERE id = {oid}") == d2
    applied = dump(url)
    again = apply_plan(plan, settings, yes=True, batch_size=2)
    assert [o.status for o in again.outcomes] == ["already_applied"] * 5
    assert dump(url) == applied
    revert_apply(first.apply_id, settings, yes=True)
    assert dump(url) == original

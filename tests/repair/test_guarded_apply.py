"""Repair on a guarded PostgreSQL local copy (issue 16): apply and revert write through the
guards (their transactions carry recon's writer label), and an apply refuses a table that
carries a trigger that is neither recon's nor listed in ``repair.allowed_triggers``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import psycopg
import pytest

from core.localdb import guards
from core.localdb.connect import connect
from jobs.cli import main
from repair.apply import apply_plan, list_applies, revert_apply
from repair.guards import ForeignTrigger
from tests.support.repair import (
    account_updates,
    dump,
    make_db,
    op,
    row_json,
    rows,
    settings_for,
    write_plan,
)

pytestmark = pytest.mark.postgres
TIER = "zuora_local_product_rate_plan_charge_tiers"
APP_TRIGGER = ("CREATE FUNCTION app_touch() RETURNS trigger LANGUAGE plpgsql AS "
               "$$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$; "
               "CREATE TRIGGER app_touch BEFORE UPDATE ON billing_accounts FOR EACH ROW "
               "EXECUTE FUNCTION app_touch()")


@pytest.fixture
def db_url(pg_url: str) -> str:
    """The small repair world on PostgreSQL, billing_accounts opted in to column guards."""
    make_db(pg_url)
    with connect(pg_url) as db:
        guards.install(db, guards.plan(("billing_accounts",)))
    return pg_url


def guarded_plan(url: str, path: Path) -> Path:
    """Renames two accounts (guarded columns), changes a catalog tier price and deletes a
    contact (tables that copy Zuora)."""
    zid, price = rows(url, f"SELECT zuora_id, price FROM {TIER} WHERE price IS NOT NULL "
                           "ORDER BY zuora_id LIMIT 1")[0]
    victim = row_json(url, "billing_account_contacts",
                      "id = (SELECT min(id) FROM billing_account_contacts)")
    ops = account_updates(url, 2) + [
        op(10, TIER, "update", {"zuora_id": zid}, {"price": str(price)},
           {"price": str(price + 1)}, step="catalog"),
        op(11, "billing_account_contacts", "delete", {"id": victim["id"]}, victim,
           step="contacts")]
    return write_plan(url, path, ops)


def test_apply_and_revert_write_through_the_guards(db_url: str, tmp_path: Path) -> None:
    settings = settings_for(db_url, tmp_path)
    before = dump(db_url)
    with connect(db_url) as db, pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute(f"UPDATE {TIER} SET price = price + 1")  # a plain write is refused…
    applied = apply_plan(guarded_plan(db_url, tmp_path / "p.json"), settings, yes=True)
    assert (applied.status, applied.ops_applied) == ("complete", 4)  # …recon's goes through
    assert dump(db_url) != before
    reverted = revert_apply(applied.apply_id, settings, yes=True)
    assert (reverted.status, reverted.ops_applied) == ("complete", 4)
    assert dump(db_url) == before
    with connect(db_url) as db, pytest.raises(psycopg.errors.InsufficientPrivilege):
        db.execute("UPDATE billing_accounts SET zuora_account_name = 'x'")  # still guarded


def test_a_foreign_trigger_is_refused_unless_allowed(db_url: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with connect(db_url) as db:
        db.execute(APP_TRIGGER)
        # the subscription tables' foreign keys are internal triggers: not foreign
        assert db.fetch("SELECT count(*) FROM pg_trigger WHERE tgisinternal AND "
                        "tgrelid = 'zuora_local_rate_plans'::regclass")[0][0] > 0
        assert [t.name for t in guards.triggers_on(db, ["zuora_local_rate_plans"])] == [
            "recon_guard_copy"]
    plan = guarded_plan(db_url, tmp_path / "p.json")
    settings = settings_for(db_url, tmp_path)
    before = dump(db_url)
    dry = apply_plan(plan, settings)  # the dry run already says so, and previews
    assert [t.guard for t in dry.guards] == [ForeignTrigger.guard]
    with pytest.raises(ForeignTrigger) as err:
        apply_plan(plan, settings, yes=True)
    assert err.value.triggers == [("billing_accounts", "app_touch")]
    text = str(err.value)
    assert "app_touch on billing_accounts" in text and "repair.allowed_triggers" in text
    assert dry.guards[0].message == text  # what --yes says
    monkeypatch.setenv("RECON_LOCAL_DATABASE_URL", db_url)
    monkeypatch.setenv("RECON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RECON_REPAIR_MAX_CHANGE_FRACTION", "1")
    assert main(["repair", "apply", str(plan), "--yes"]) == 2
    assert "app_touch" in capsys.readouterr().err
    assert dump(db_url) == before
    assert list_applies(settings)["status"].to_list() == ["refused", "refused"]
    for allowed in ("app_touch", "billing_accounts.app_touch"):
        assert apply_plan(plan, dataclasses.replace(
            settings, repair_allowed_triggers=allowed)).guards == []
    monkeypatch.setenv("RECON_REPAIR_ALLOWED_TRIGGERS", "billing_accounts.app_touch")
    assert main(["-q", "repair", "apply", str(plan), "--yes"]) == 0
    assert dump(db_url) != before

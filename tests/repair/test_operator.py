"""The operator's side of repair (issue 17): a dry run is a preview even when ``--yes`` would
refuse; rows recon itself wrote are "already applied" or "superseded", not conflicts; the
target is the plan's own DuckDB file unless ``--db`` says otherwise, a wrong one is refused
naming the flag that points at the right one (never a password), a missing one is never
created; every printed command runs when pasted; ``--json`` outputs keep their schemas."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from core.commands import recon_command, split_command
from jobs.cli import main
from repair import audit
from repair.apply import apply_plan
from repair.executor import ALREADY, SUPERSEDED
from repair.guards import ChangeFractionExceeded, TargetMismatch
from tests.support.json_schema import check
from tests.support.pg import outside_write
from tests.support.repair import account_updates, dump, make_db, one, rows, settings_for, write_plan


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, duckdb_url: str) -> str:
    """A small DuckDB world; the settings point elsewhere (the default data/local.duckdb of
    the working directory): commands must find the plan's database by themselves."""
    monkeypatch.chdir(tmp_path)
    for k in ("RECON_CONFIG", "RECON_LOCAL_DATABASE_URL", "RECON_REPAIR_MAX_CHANGE_FRACTION"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("RECON_DATA_DIR", str(tmp_path / "data"))
    make_db(duckdb_url)
    return duckdb_url


def _paste(command: str, monkeypatch: pytest.MonkeyPatch) -> int:
    """Run a printed command exactly as printed (its RECON_* prefix as the environment)."""
    environ, argv = split_command(command)
    for k, v in environ.items():
        monkeypatch.setenv(k, v)
    return main(argv)


def _printed(out: str, lead: str) -> str:
    line = next(line for line in out.splitlines() if lead in line)
    return line[line.index("recon "):].strip() if "recon " in line else ""


def test_a_dry_run_that_trips_the_fraction_guard_previews_and_exits_0(
        env: str, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = write_plan(env, tmp_path / "p.json", account_updates(env, 3))  # 3 of 40 rows: 7.5%
    before = dump(env)
    assert main(["repair", "apply", str(plan)]) == 0
    out = capsys.readouterr().out
    assert "DRY RUN, nothing was written" in out and "3 would change a row" in out
    assert f"on {env} (from the plan's target)" in out
    assert "--yes would refuse: guard change fraction (repair.max_change_fraction)" in out
    assert "3 of the 40 rows of billing_accounts (7.5%)" in out and "add --force" in out
    assert dump(env) == before and one(env, f"SELECT count(*) FROM {audit.APPLIES}") == 0
    assert not (tmp_path / "data" / "local.duckdb").exists()  # the default was not touched
    # --json: the same preview, by its schema
    assert main(["repair", "apply", str(plan), "--json"]) == 0
    doc = check("repair apply", capsys.readouterr().out)
    assert doc["dry_run"] and doc["applied"] == 3 and doc["database"]["url"] == env
    assert [g["override"] for g in doc["guards"]] == ["--force"]
    # the printed command applies it, pasted as printed
    command = _printed(out, "to apply it:")
    assert command.endswith("--yes --force") and str(plan.resolve()) in command
    assert _paste(command, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "3 of 3 operations applied" in out and dump(env) != before
    # the undo and history commands it printed run too
    assert _paste(_printed(out, "history:"), monkeypatch) == 0
    hist = capsys.readouterr().out
    assert "complete" in hist and "plan-test (run-test)" in hist
    assert _paste(_printed(out, "undo with:") + " --force", monkeypatch) == 0
    assert dump(env) == before
    with pytest.raises(ChangeFractionExceeded):  # --yes still refuses without --force
        apply_plan(plan, settings_for(env, tmp_path, repair_max_change_fraction=0.05),
                   yes=True)


def test_reapplying_an_applied_plan_is_already_applied_not_conflicts(
        env: str, tmp_path: Path, capsys) -> None:
    ops = account_updates(env, 2)
    plan = write_plan(env, tmp_path / "p.json", ops)
    settings = settings_for(env, tmp_path)
    first = apply_plan(plan, settings, yes=True)
    zid = ops[0]["key"]["zuora_account_id"]
    # the application renames one of the rows afterwards
    outside_write(env, f"UPDATE billing_accounts SET zuora_account_name = 'App rename' "
                       f"WHERE zuora_account_id = '{zid}'")
    again = apply_plan(plan, settings, yes=True)
    assert [o.status for o in again.outcomes] == [ALREADY, ALREADY]
    assert again.outcomes[0].detail.startswith(f"already applied by {first.apply_id} of this")
    assert again.status == "complete" and not again.needs_a_person
    assert main(["repair", "apply", str(plan), "--yes"]) == 0  # exit 0: nothing for a person
    out = capsys.readouterr().out
    assert "0 skipped as conflicts" in out and "already applied by an earlier apply" in out


def test_a_plan_overwritten_by_a_later_apply_is_superseded_by_it(
        env: str, tmp_path: Path, capsys) -> None:
    settings = settings_for(env, tmp_path)
    older = write_plan(env, tmp_path / "older.json", account_updates(env, 2), plan_id="older")
    done = apply_plan(older, settings, yes=True)
    newer = write_plan(env, tmp_path / "newer.json",
                       account_updates(env, 1, suffix=" (newer)"), plan_id="newer")
    later = apply_plan(newer, settings, yes=True)
    assert later.ops_applied == 1
    again = apply_plan(older, settings)  # a dry run says it; --yes does the same
    by_seq = {o.seq: o for o in again.outcomes}
    assert by_seq[1].status == SUPERSEDED and by_seq[2].status == ALREADY
    assert by_seq[1].detail.startswith(f"superseded by apply {later.apply_id} (plan newer)")
    assert main(["repair", "apply", str(older), "--yes"]) == 0
    out = capsys.readouterr().out
    assert f"superseded by apply {later.apply_id}" in out and "0 skipped as conflicts" in out
    assert rows(env, "SELECT count(*) FROM billing_accounts WHERE zuora_account_name LIKE "
                     "'%(newer)'") == [(1,)]  # the newer value stays
    assert done.apply_id != later.apply_id


def test_a_missing_target_is_refused_and_never_created(env: str, tmp_path: Path,
                                                       capsys) -> None:
    plan = write_plan(env, tmp_path / "p.json", account_updates(env, 1))
    moved = tmp_path / "moved" / "local.duckdb"
    moved.parent.mkdir()
    shutil.move(env.removeprefix("duckdb:///"), moved)
    assert main(["repair", "apply", str(plan)]) == 2
    err = capsys.readouterr().err
    assert "no local database at" in err and "nothing was created" in err
    assert "--db duckdb:///NEW/PATH" in err and "Traceback" not in err
    assert not Path(env.removeprefix("duckdb:///")).exists()
    nowhere = tmp_path / "nowhere.duckdb"
    for argv in (["repair", "apply", str(plan), "--db", f"duckdb:///{nowhere}"],
                 ["repair", "revert", "ap-x", "--db", f"duckdb:///{nowhere}"]):
        assert main(argv) == 2
        assert "nothing was created" in capsys.readouterr().err
    assert not nowhere.exists()
    # history of a database that does not exist: none, and still nothing created
    assert main(["repair", "history", "--db", f"duckdb:///{nowhere}", "--json"]) == 0
    assert check("repair history", capsys.readouterr().out)["applies"] == []
    assert not nowhere.exists()
    # the moved file is found by --db (its identity names its old path: a copy, refused)
    with pytest.raises(TargetMismatch, match=f"add `--db {env}`"):
        apply_plan(plan, settings_for(env, tmp_path), db=f"duckdb:///{moved}")


@pytest.mark.postgres
def test_the_wrong_database_refusal_names_the_flag_and_never_the_password(
        env: str, pg_url: str, tmp_path: Path, capsys) -> None:
    make_db(pg_url)
    plan = write_plan(env, tmp_path / "p.json", account_updates(env, 1))
    parts = urlsplit(pg_url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    secret = "s3cr3t-pw"
    with_pw = (f"postgresql://{q.pop('user')}:{secret}@{q.pop('host')}:{q.pop('port')}"
               f"{parts.path}?options={quote(q['options'], safe='')}")
    assert main(["repair", "apply", str(plan), "--db", with_pw]) == 2
    err = capsys.readouterr().err
    assert f"add `--db {env}`" in err and secret not in err and ":***@" in err
    assert main(["repair", "history", "--db", with_pw]) == 0
    assert secret not in capsys.readouterr().out


def test_plan_history_and_revert_json_keep_their_schemas(env: str, tmp_path: Path,
                                                         capsys) -> None:
    plan = write_plan(env, tmp_path / "p.json", account_updates(env, 2))
    assert main(["repair", "apply", str(plan), "--yes", "--json"]) == 0
    done = check("repair apply", capsys.readouterr().out)
    assert done["status"] == "complete" and done["applied"] == 2 and done["guards"] == []
    undo = next(c for c in done["next"] if " revert " in c)
    assert f"--db {env}" in undo  # the revert has no plan: it needs the database
    assert main(["repair", "history", "--db", env, "--json"]) == 0
    hist = check("repair history", capsys.readouterr().out)
    assert [a["apply_id"] for a in hist["applies"]] == [done["apply_id"]]
    assert main(["repair", "revert", done["apply_id"], "--db", env, "--json"]) == 0
    dry = check("repair revert", capsys.readouterr().out)
    assert dry["dry_run"] and dry["applied"] == 2 and dry["reverts_apply_id"] == done["apply_id"]


def test_printed_commands_are_quoted_absolute_and_round_trip(tmp_path: Path) -> None:
    plan = tmp_path / "my runs" / "repair-plan.json"
    text = recon_command("repair", "apply", plan, "--yes", config=tmp_path / "r.toml",
                         env={"RECON_DATA_DIR": str(tmp_path / "d d")})
    env, argv = split_command(text)
    assert env == {"RECON_DATA_DIR": str(tmp_path / "d d")}
    assert argv == ["--config", str(tmp_path / "r.toml"), "repair", "apply", str(plan), "--yes"]
    assert json.dumps(text)  # one line, printable


def test_a_newer_snapshots_apply_supersedes_an_older_plan_never_the_reverse(
        env: str, tmp_path: Path) -> None:
    """Never applied itself, an older plan meets rows a newer plan's apply wrote: superseded
    (its snapshot is older). The newer plan meeting the older plan's writes: a conflict —
    an older snapshot's values never count as newer."""
    from tests.jobs.test_lineage import make

    data = tmp_path / "data"
    old_run = make(data, "20261101T000000000000Z-0old", age_days=3)
    new_run = make(data, "20261103T000000000000Z-0new", age_days=1)
    settings = settings_for(env, data)
    older = write_plan(env, tmp_path / "older.json", account_updates(env, 1, suffix=" (old)"),
                       plan_id="older", run_id=old_run)
    newer = write_plan(env, tmp_path / "newer.json", account_updates(env, 1, suffix=" (new)"),
                       plan_id="newer", run_id=new_run)
    done = apply_plan(newer, settings, yes=True)
    [o] = apply_plan(older, settings).outcomes
    assert o.status == SUPERSEDED and "from newer data than this plan's snapshot" in o.detail
    assert o.detail.startswith(f"superseded by apply {done.apply_id} (plan newer)")
    # the other way round: the older plan applied first is no reason to skip the newer one
    from repair.apply import revert_apply

    revert_apply(done.apply_id, settings, yes=True)
    assert apply_plan(older, settings, yes=True).ops_applied == 1
    [o] = apply_plan(newer, settings).outcomes
    assert o.status == "conflict", o.detail

"""Versioned schemas (issue 13): stores written by an older recon — a DuckDB and a PostgreSQL
local database and a state file, made by the code of a base commit exported from this
repository's own history and run in a subprocess — are upgraded in place by ``recon db
init`` / on opening; history, audits and plans stay readable; a store written by a newer
recon is refused by name. Later issues add their base commit to :data:`BASE_COMMITS`."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from core.errors import LocalDatabaseError
from core.inbox import NewEvent, open_inbox
from core.localdb import migrations, recon_objects
from core.localdb.connect import connect
from core.localdb.schema import missing_columns
from core.state import MIGRATIONS as STATE_MIGRATIONS
from core.state import StateDB, StateSchemaTooNew, register_migration
from extract.local_export import export_local
from jobs import runs
from jobs.cli import main
from repair import audit
from repair.apply import list_applies, revert_apply
from repair.guards import TargetNotStamped
from repair.plan import PlanFormatError, load_plan
from tests.support.repair import REPO, identity_of, one, rows, settings_for

# Commits whose stores this recon must upgrade (a16424a: issue 13's base, before versioning).
BASE_COMMITS = ("a16424a",)
# Commits in the house's module layout whose stores this recon upgrades by `db init`: 5304606
# is issue 15's base (the event path adds stores of its own, the inbox, beside the versioned
# ones and never changes theirs); 4d10f6f is issue 16's (the local copy gains a column,
# rate plans' amendment_type, its read-only guards and views; recon's objects the backfill
# checkpoint).
# d856705 is issue 17's (the state file gains the run id and acknowledgements; recon's objects
# are already current). Each with the version of recon's objects it writes.
SAME_SCHEMA_COMMITS = {"5304606": 2, "4d10f6f": 2, "d856705": 4}

# Runs with the OLD code on sys.path: a DuckDB and a PostgreSQL local database, each with an
# apply (audit rows), and a state file with high-water marks and a job run.
# (the old tree's module names: this runs the base commit's code, not ours)
_OLD = r"""
import datetime as dt, inspect, json, sys
from pathlib import Path
duck, pg, data = sys.argv[1], sys.argv[2], Path(sys.argv[3])
from repair_support import account_updates, make_db, settings_for, write_plan
from jobs.repair.apply import apply_plan
from extract.state import StateDB
from jobs import runs
out = {}
for name, url in (("duck", duck), ("pg", pg)):
    make_db(url)
    args = [data / f"{name}-plan.json", account_updates(url, 2)]
    if "target" in inspect.signature(write_plan).parameters:  # later base commits
        args.insert(0, url)
    plan = write_plan(*args)
    out[name] = apply_plan(plan, settings_for(url, data), yes=True).apply_id
with StateDB(data) as st:
    st.set_hwms("run-old", "full", {"Account": dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)})
    runs.start(st, "nightly-old", "nightly", "nightly:2026-11-23", "schedule", None, 1)
    runs.finish(st, "nightly-old", "clean")
print(json.dumps(out))
"""


# The same, in the house's layout (issue 14 onward: core/, repair/, tests/support/).
_OLD_HOUSE = r"""
import datetime as dt, json, sys
from pathlib import Path
duck, pg, data = sys.argv[1], sys.argv[2], Path(sys.argv[3])
from tests.support.repair import account_updates, make_db, settings_for, write_plan
from repair.apply import apply_plan
from core.state import StateDB
from jobs import runs
out = {}
for name, url in (("duck", duck), ("pg", pg)):
    make_db(url)
    plan = write_plan(url, data / f"{name}-plan.json", account_updates(url, 2))
    out[name] = apply_plan(plan, settings_for(url, data), yes=True).apply_id
with StateDB(data) as st:
    st.set_hwms("run-old", "full", {"Account": dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)})
    runs.start(st, "nightly-old", "nightly", "nightly:2026-11-23", "schedule", None, 1)
    runs.finish(st, "nightly-old", "clean")
print(json.dumps(out))
"""


def _export(commit: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A commit's tree, exported from this repository's history (``git archive``)."""
    dest = tmp_path_factory.mktemp(f"recon-{commit}")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", commit],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


@pytest.fixture(scope="module", params=BASE_COMMITS)
def old_code(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The base commit's tree."""
    return _export(request.param, tmp_path_factory)


@pytest.fixture(scope="module", params=sorted(SAME_SCHEMA_COMMITS))
def house_code(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    return _export(request.param, tmp_path_factory), SAME_SCHEMA_COMMITS[request.param]


def _run_old(old: Path, duck: str, pg: str, data: Path, script: str = _OLD) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env["PYTHONPATH"] = os.pathsep.join([str(old), str(old / "tests")])
    p = subprocess.run([sys.executable, "-c", script, duck, pg, str(data)], cwd=old, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
@pytest.mark.postgres
def test_stores_of_an_older_recon_are_upgraded_and_newer_ones_refused(
        old_code: Path, duckdb_url: str, pg_url: str, tmp_path: Path, capsys) -> None:
    data = tmp_path / "data"
    data.mkdir()
    applied = _run_old(old_code, duckdb_url, pg_url, data)

    for name, url in (("duck", duckdb_url), ("pg", pg_url)):
        with connect(url) as db:
            old_version = recon_objects.version(db)
        assert old_version < recon_objects.LATEST
        old_plan = data / f"{name}-plan.json"
        old_history = list_applies(settings_for(url, data)).drop("finished_at")
        # before the upgrade the database has no identity: repairs are refused with the hint
        with pytest.raises(TargetNotStamped, match="run `recon db stamp`"):
            revert_apply(applied[name], settings_for(url, data), yes=True)
        code, out, err = _cli(capsys, "db", "init", "--db", url)
        assert code == 0, err
        assert f"schema {recon_objects.LATEST} (upgraded from {old_version})" in out
        ident = identity_of(url)
        assert ident is not None
        versions = rows(url, "SELECT version FROM recon_schema_migrations ORDER BY version")
        assert [v for (v,) in versions] == list(range(1, recon_objects.LATEST + 1))
        # idempotent: a second init changes nothing
        code, out, _ = _cli(capsys, "db", "init", "--db", url)
        assert code == 0 and f"schema {recon_objects.LATEST} (up to date)" in out
        assert identity_of(url) == ident
        assert one(url, "SELECT count(*) FROM recon_schema_migrations") == recon_objects.LATEST

        # history and audits written by the old recon stay readable, and revertible
        settings = settings_for(url, data)
        history = list_applies(settings)
        assert history.drop("finished_at").equals(old_history)
        assert history.filter(history["apply_id"] == applied[name])["status"].to_list() == [
            "complete"]
        with connect(url) as db:
            trail = audit.read_audit(audit.Session(db), applied[name])
        assert trail.height == 2 and set(trail["op"]) == {"update"}
        undo = revert_apply(applied[name], settings, yes=True)
        assert undo.ops_applied == 2 and "before applies named their database" in undo.notes[0]
        # the old recon's plan is refused by name, not misread
        with pytest.raises(PlanFormatError, match="schema_version 1, an older format"):
            load_plan(old_plan)

        # a database written by a newer recon is refused by name, by db init and by repairs
        newer = recon_objects.LATEST + 7
        with connect(url) as db:
            ph = "%s" if db.dialect == "postgres" else "?"
            db.execute(f"INSERT INTO recon_schema_migrations VALUES ({ph}, {ph}, {ph})",
                       [newer, "from the future", dt.datetime(2030, 1, 1)])
        refusal = (f"this database was written by a newer recon (schema {newer} > "
                   f"{recon_objects.LATEST}); upgrade recon")
        code, _, err = _cli(capsys, "db", "init", "--db", url)
        assert code == 2 and refusal in err and "Traceback" not in err
        code, _, err = _cli(capsys, "db", "stamp", "--db", url)
        assert code == 2 and refusal in err
        with pytest.raises(migrations.SchemaTooNew, match=r"schema \d+ > \d+"):
            revert_apply(undo.apply_id, settings)

    # the state file: upgraded on opening, its rows intact; a newer one refused by name
    with StateDB(data) as st:
        assert st.schema_version() == STATE_MIGRATIONS[-1].version
        # issue 17's migration 2: acknowledged findings
        assert st.con.execute("SELECT count(*) FROM finding_acks").fetchall() == [(0,)]
        marks = st.hwms()
        assert marks["Account"].run_id == "run-old"
        assert marks["Account"].hwm == dt.datetime(2026, 11, 23, 1, 0, tzinfo=dt.UTC)
        listed = runs.list_runs(st)
        assert listed.filter(listed["run_id"] == "nightly-old")["status"].to_list() == ["clean"]
        n = one_state(st, "SELECT count(*) FROM recon_schema_migrations")
    with StateDB(data) as st:  # idempotent
        assert one_state(st, "SELECT count(*) FROM recon_schema_migrations") == n
        st.con.execute("INSERT INTO recon_schema_migrations VALUES (?, ?, ?)",
                       [STATE_MIGRATIONS[-1].version + 1, "future", dt.datetime(2030, 1, 1)])
    with pytest.raises(StateSchemaTooNew, match=r"recon state .*state\.duckdb: this database "
                                                r"was written by a newer recon \(schema"):
        StateDB(data)


@pytest.mark.slow
@pytest.mark.postgres
def test_stores_of_the_house_layout_bases_are_upgraded_and_take_the_inbox_beside_them(
        house_code: tuple[Path, int], duckdb_url: str, pg_url: str, tmp_path: Path,
        capsys) -> None:
    """Stores written by the code of issue 15's, 16's and 17's base commits. The first two:
    recon's objects at schema version 2 (issue 16 added the backfill checkpoint and the hatch
    log) and one local column short (rate plans' amendment_type): until ``db init`` the local
    export refuses, naming the column and the statement that adds it. ``db init`` upgrades
    them in place and installs the guards; the state file (issue 17: run ids,
    acknowledgements) upgrades on opening; their applies stay listed and revertible (through the guards), their plans
    readable, their state file intact; the callout inbox is created beside them (in the
    PostgreSQL local database, in a SQLite file for the DuckDB one) without touching them."""
    data = tmp_path / "data"
    data.mkdir()
    code_dir, wrote = house_code
    applied = _run_old(code_dir, duckdb_url, pg_url, data, _OLD_HOUSE)
    for name, url in (("duck", duckdb_url), ("pg", pg_url)):
        with connect(url) as db:  # version 3 (the backfill checkpoint) came in issue 16
            assert recon_objects.version(db) == wrote <= recon_objects.LATEST
        if wrote < 3:  # before issue 16: rate plans had no amendment_type
            with pytest.raises(LocalDatabaseError,
                               match=r"zuora_local_rate_plans\.amendment_type.*ALTER TABLE "
                                     r"zuora_local_rate_plans ADD COLUMN amendment_type"):
                export_local(url, tmp_path / f"export-{name}")
        code, out, err = _cli(capsys, "db", "init", "--db", url)
        upgraded = (f"(upgraded from {wrote})" if wrote < recon_objects.LATEST
                    else "(up to date)")
        assert code == 0 and f"schema {recon_objects.LATEST} {upgraded}" in out, err
        with connect(url) as db:
            assert missing_columns(db) == []
        code, out, err = _cli(capsys, "db", "check", "--db", url)
        assert code == 0, out + err
        if name == "pg":  # the guards are in: a plain write is refused, recon's revert passes
            with pytest.raises(psycopg.errors.InsufficientPrivilege,
                               match="zuora_local_rate_plans"):
                rows(url, "UPDATE zuora_local_rate_plans SET name = 'x'")
        settings = settings_for(url, data)
        before = list_applies(settings)
        assert before.filter(before["apply_id"] == applied[name])["status"].to_list() == [
            "complete"]
        assert len(load_plan(data / f"{name}-plan.json").operations) == 2
        with open_inbox(settings) as inbox:  # the event path's store, new beside the old ones
            inbox.store_event(NewEvent(f"n-{name}", None, "account",
                                       (("account", "A-1"),), "{}"))
            assert inbox.health().queue_depth == 1
        assert list_applies(settings).equals(before)
        undo = revert_apply(applied[name], settings, yes=True)
        assert undo.ops_applied == 2
    with StateDB(data) as st:
        assert st.hwms()["Account"].run_id == "run-old"
        listed = runs.list_runs(st)
        assert listed.filter(listed["run_id"] == "nightly-old")["status"].to_list() == ["clean"]


def one_state(st: StateDB, sql: str) -> int:
    return st.con.execute(sql).fetchall()[0][0]


def test_a_state_migration_runs_once_in_order_and_rolls_back_whole(tmp_path: Path,
                                                                   monkeypatch) -> None:
    """The mechanism itself, on the state file: a registered migration is applied to an
    existing file on the next opening, once; a failing one leaves the file as it was."""
    with StateDB(tmp_path) as st:
        st.con.execute("INSERT INTO extract_hwm VALUES ('Account', TIMESTAMP '2026-01-01', "
                       "'r1', 'full', TIMESTAMP '2026-01-01')")
        start = st.schema_version()
    monkeypatch.setattr("core.state.MIGRATIONS", list(STATE_MIGRATIONS))
    with pytest.raises(ValueError, match="expected"):
        register_migration(start + 2, "a gap")
    register_migration(start + 1, "note column",
                       ("ALTER TABLE extract_hwm ADD COLUMN IF NOT EXISTS note VARCHAR",
                        "UPDATE extract_hwm SET note = 'migrated'"))
    for _ in range(2):
        with StateDB(tmp_path) as st:
            assert st.schema_version() == start + 1
            assert st.con.execute("SELECT note FROM extract_hwm").fetchall() == [("migrated",)]
    register_migration(start + 2, "broken", ("ALTER TABLE extract_hwm ADD COLUMN x INTEGER",
                                             "SELECT * FROM no_such_table"))
    with pytest.raises(Exception, match="no_such_table"):
        StateDB(tmp_path)
    import duckdb

    con = duckdb.connect(str(tmp_path / "state.duckdb"))
    cols = [r[0] for r in con.execute("DESCRIBE extract_hwm").fetchall()]
    version = con.execute("SELECT max(version) FROM recon_schema_migrations").fetchall()[0][0]
    con.close()
    assert "x" not in cols and version == start + 1  # the failed migration left no trace

"""Plans bound to their target (issue 13): a plan made for one local database is refused on
any other — PostgreSQL ↔ DuckDB, two databases on one PostgreSQL server, a copy of the
database — for the apply, its dry run and a revert, whatever ``--force`` says, and nothing
is written; an unstamped database and an old-format plan are refused by name; ``recon db
stamp`` creates only recon's own objects on an application-owned schema."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from core.localdb import recon_objects
from core.localdb.connect import connect
from core.localdb.identity import read_identity
from extract.local_export import export_local_snapshot
from jobs.cli import main
from repair import audit
from repair.apply import apply_plan, list_applies, revert_apply
from repair.guards import TargetMismatch, TargetNotStamped
from repair.plan import PlanFormatError, load_plan
from tests.support.pg import to_url
from tests.support.repair import (
    account_updates,
    dump,
    identity_of,
    make_db,
    one,
    rows,
    settings_for,
    write_plan,
)

pytestmark = pytest.mark.postgres


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_of(url: str) -> Path:
    return Path(url[len("duckdb:///"):])


def state(url: str) -> tuple:
    """Everything an apply could write: the catalogue tables and recon's audit."""
    applies = (one(url, f"SELECT count(*) FROM {audit.APPLIES}")
               if _has(url, audit.APPLIES) else None)
    audits = one(url, f"SELECT count(*) FROM {audit.AUDIT}") if _has(url, audit.AUDIT) else None
    return dump(url), applies, audits


def _has(url: str, table: str) -> bool:
    return table in tables_of(url)


def tables_of(url: str) -> set[str]:
    if url.startswith("duckdb"):
        return {r[0] for r in rows(url, "SELECT table_name FROM information_schema.tables "
                                        "WHERE table_schema = current_schema()")}
    return {r[0] for r in rows(url, "SELECT tablename FROM pg_tables "
                                    "WHERE schemaname = current_schema()")}


@contextlib.contextmanager
def other_database(pg_dsn: str, template: str | None = None) -> Iterator[str]:
    """A second database on the same PostgreSQL server (optionally a copy of ``template``)."""
    name = f"recon_test_b_{secrets.token_hex(5)}"
    stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        stmt = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                sql.Identifier(template))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(stmt)
    url = to_url({**conninfo_to_dict(pg_dsn), "dbname": name})
    try:
        yield url
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


def refused_everywhere(plan: Path, target: str, data: Path, capsys) -> str:
    """Dry run, --yes and --yes --force all refuse with TargetMismatch; the CLI exits 2
    naming both identities. Returns the message."""
    settings = settings_for(target, data)
    for kw in ({}, {"yes": True}, {"yes": True, "force": True}):
        with pytest.raises(TargetMismatch) as e:
            apply_plan(plan, settings, db=target, **kw)
    msg = str(e.value)
    expected, actual = e.value.expected, e.value.actual
    assert expected.uuid in msg and actual.uuid in msg and expected != actual
    assert "--force does not change this" in msg
    # the refusal names what points at the plan's database (a DuckDB plan: the exact --db)
    if expected.dialect == "duckdb":
        assert f"add `--db duckdb:///{expected.path}`" in msg
    else:
        assert "RECON_LOCAL_DATABASE_URL" in msg and repr(expected.database) in msg
    capsys.readouterr()
    code = _cli(target, data, "repair", "apply", str(plan), "--db", target, "--yes", "--force")
    err = capsys.readouterr().err
    assert code == 2 and expected.uuid in err and actual.uuid in err, err
    assert "Traceback" not in err
    return msg


def _cli(url: str, data: Path, *argv: str) -> int:
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("RECON_LOCAL_DATABASE_URL", url)
        mp.setenv("RECON_DATA_DIR", str(data))
        mp.setenv("RECON_REPAIR_MAX_CHANGE_FRACTION", "1.0")
        return main(list(argv))
    finally:
        mp.undo()


# -- PostgreSQL ↔ DuckDB ---------------------------------------------------------------------
@pytest.mark.slow
def test_a_plan_for_postgres_is_refused_on_duckdb_and_back(pg_url: str, duckdb_url: str,
                                                          tmp_path: Path, capsys) -> None:
    make_db(pg_url)
    make_db(duckdb_url)
    for_pg = write_plan(pg_url, tmp_path / "pg.json", account_updates(pg_url, 3))
    for_duck = write_plan(duckdb_url, tmp_path / "duck.json", account_updates(duckdb_url, 3))
    duck_file = file_of(duckdb_url)
    before_file, before_pg = sha(duck_file), state(pg_url)

    msg = refused_everywhere(for_pg, duckdb_url, tmp_path, capsys)
    assert "PostgreSQL database" in msg and f"DuckDB file {duck_file}" in msg
    assert sha(duck_file) == before_file  # not one byte of the DuckDB file changed

    msg = refused_everywhere(for_duck, pg_url, tmp_path, capsys)
    assert f"DuckDB file {duck_file}" in msg and "PostgreSQL database" in msg
    assert state(pg_url) == before_pg
    # each plan still applies to its own database
    assert apply_plan(for_pg, settings_for(pg_url, tmp_path), yes=True).ops_applied == 3
    assert apply_plan(for_duck, settings_for(duckdb_url, tmp_path), yes=True).ops_applied == 3


# -- two databases on one PostgreSQL server; a copy of a database -----------------------------
@pytest.mark.slow
def test_two_databases_on_one_server_and_a_copy_are_told_apart(pg_dsn: str,
                                                                tmp_path: Path, capsys) -> None:
    with other_database(pg_dsn) as a_url, other_database(pg_dsn) as b_url:
        make_db(a_url)
        make_db(b_url)
        ident_a, ident_b = identity_of(a_url), identity_of(b_url)
        assert ident_a["system_identifier"] == ident_b["system_identifier"]  # same cluster
        assert ident_a["database"] != ident_b["database"]
        plan = write_plan(a_url, tmp_path / "a.json", account_updates(a_url, 2))
        before = state(b_url)
        msg = refused_everywhere(plan, b_url, tmp_path, capsys)
        assert repr(ident_a["database"]) in msg and repr(ident_b["database"]) in msg
        assert state(b_url) == before

        # apply on A; then copy A (CREATE DATABASE … TEMPLATE): the copy carries A's identity
        # row and A's audit, but it is another database: neither the plan nor a revert of
        # A's apply may run there
        done = apply_plan(plan, settings_for(a_url, tmp_path), yes=True)
        assert done.ops_applied == 2
        with other_database(pg_dsn, template=ident_a["database"]) as copy_url:
            assert identity_of(copy_url)["uuid"] == ident_a["uuid"]
            before = state(copy_url)
            msg = refused_everywhere(plan, copy_url, tmp_path, capsys)
            for kw in ({}, {"yes": True}, {"yes": True, "force": True}):
                with pytest.raises(TargetMismatch, match="reverting"):
                    revert_apply(done.apply_id, settings_for(copy_url, tmp_path), **kw)
            capsys.readouterr()
            assert _cli(copy_url, tmp_path, "repair", "revert", done.apply_id, "--yes") == 2
            assert ident_a["uuid"] in capsys.readouterr().err
            assert state(copy_url) == before
        # the original reverts fine
        assert revert_apply(done.apply_id, settings_for(a_url, tmp_path),
                            yes=True).ops_applied == 2


def test_a_revert_on_a_copied_duckdb_file_is_refused(duckdb_url: str, tmp_path: Path) -> None:
    make_db(duckdb_url)
    plan = write_plan(duckdb_url, tmp_path / "p.json", account_updates(duckdb_url, 2))
    done = apply_plan(plan, settings_for(duckdb_url, tmp_path), yes=True)
    copy = tmp_path / "copy" / "local.duckdb"
    copy.parent.mkdir()
    shutil.copy(file_of(duckdb_url), copy)
    before = sha(copy)
    copy_url = f"duckdb:///{copy}"
    for kw in ({}, {"yes": True}, {"yes": True, "force": True}):
        with pytest.raises(TargetMismatch, match=f"DuckDB file {copy}"):
            revert_apply(done.apply_id, settings_for(copy_url, tmp_path), **kw)
        with pytest.raises(TargetMismatch, match=f"add `--db {duckdb_url}`"):
            apply_plan(plan, settings_for(copy_url, tmp_path), db=copy_url, **kw)
    assert sha(copy) == before


# -- unstamped databases, plans without a target ----------------------------------------------
@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_an_unstamped_database_is_refused_with_the_stamp_hint(backend: str, request,
                                                              tmp_path: Path, capsys) -> None:
    url = request.getfixturevalue("pg_url" if backend == "postgres" else "duckdb_url")
    with connect(url) as db:
        db.init_schema(stamp=False)
    assert identity_of(url) is None
    other = f"duckdb:///{tmp_path / 'other.duckdb'}"
    make_db(other)
    plan = write_plan(other, tmp_path / "p.json", [])
    before = tables_of(url)
    for kw in ({}, {"yes": True, "force": True}):
        with pytest.raises(TargetNotStamped, match="run `recon db stamp`") as e:
            apply_plan(plan, settings_for(url, tmp_path), db=url, **kw)
        assert f"add `--db {other}`" in str(e.value)  # or it is the wrong database
        with pytest.raises(TargetNotStamped, match="run `recon db stamp`"):
            revert_apply("ap-x", settings_for(url, tmp_path), **kw)
    assert tables_of(url) == before  # not even the audit tables were created
    capsys.readouterr()
    assert _cli(url, tmp_path, "repair", "apply", str(plan), "--db", url) == 2
    assert "run `recon db stamp`" in capsys.readouterr().err
    # a plan whose snapshot came from an unstamped database names no target: refused too
    make_db(url, {})
    blind = write_plan(url, tmp_path / "blind.json", [], local_identity=None)
    with pytest.raises(TargetNotStamped, match="snapshot was taken from a local database "
                                               "without a recon identity"):
        apply_plan(blind, settings_for(url, tmp_path))


def test_a_plan_of_the_old_format_is_refused_by_name(duckdb_url: str, tmp_path: Path,
                                                     capsys) -> None:
    make_db(duckdb_url)
    path = write_plan(duckdb_url, tmp_path / "old.json", account_updates(duckdb_url, 1))
    doc = json.loads(path.read_text())
    doc["schema_version"] = 1
    del doc["local_identity"]
    path.write_text(json.dumps(doc))
    with pytest.raises(PlanFormatError, match=r"plan 'plan-test' has schema_version 1, an "
                                              r"older format without the identity"):
        load_plan(path)
    before = sha(file_of(duckdb_url))
    capsys.readouterr()
    assert _cli(duckdb_url, tmp_path, "repair", "apply", str(path), "--yes") == 2
    assert "schema_version 1" in capsys.readouterr().err
    assert sha(file_of(duckdb_url)) == before
    doc["schema_version"] = 2  # the current version without its identity field
    path.write_text(json.dumps(doc))
    with pytest.raises(PlanFormatError, match="has no local_identity"):
        load_plan(path)


# -- the identity travels: export → snapshot manifest → plan ----------------------------------
def test_the_export_reads_the_identity_in_its_transaction(pg_url: str, duckdb_url: str,
                                                          tmp_path: Path) -> None:
    for url in (pg_url, duckdb_url):
        make_db(url, {})
        out = export_local_snapshot(url, tmp_path / url[:6], ["billing_accounts"])
        assert out.identity is not None and out.identity.as_dict() == identity_of(url)
        assert out.tables["billing_accounts"].rows == 0
    plain = f"duckdb:///{tmp_path / 'plain.duckdb'}"
    with connect(plain) as db:
        db.init_schema(stamp=False)
    assert export_local_snapshot(plain, tmp_path / "plain", ["billing_accounts"]).identity is None


# -- recon db stamp on an application-owned schema ------------------------------------------------
@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
def test_db_stamp_creates_only_recons_objects(backend: str, request, tmp_path: Path,
                                              capsys) -> None:
    url = request.getfixturevalue("pg_url" if backend == "postgres" else "duckdb_url")
    with connect(url) as db:  # the application's own schema, with a table recon never made
        db.init_schema(stamp=False)
        db.execute("CREATE TABLE app_sessions (id INTEGER PRIMARY KEY, token VARCHAR(40))")
        db.execute("INSERT INTO app_sessions VALUES (1, 'abc')")
    before = tables_of(url)
    app_dump = dump(url)
    assert _cli(url, tmp_path, "db", "stamp", "--db", url) == 0
    out = capsys.readouterr().out
    after = tables_of(url)
    assert after - before == set(recon_objects.OBJECTS) and before <= after
    assert dump(url) == app_dump and rows(url, "SELECT * FROM app_sessions") == [(1, "abc")]
    ident = identity_of(url)
    assert ident is not None and ident["uuid"] in out
    assert f"schema {recon_objects.LATEST}" in out
    # idempotent: a second stamp keeps the identity and creates nothing
    assert _cli(url, tmp_path, "db", "stamp", "--db", url) == 0
    assert identity_of(url) == ident and tables_of(url) == after
    assert one(url, "SELECT count(*) FROM recon_schema_migrations") == recon_objects.LATEST
    with connect(url) as db:
        assert read_identity(db).uuid == ident["uuid"]
    # and `repair history` on it lists nothing
    assert list_applies(settings_for(url, tmp_path)).height == 0


def test_db_stamp_does_not_create_a_missing_duckdb_file(tmp_path: Path, capsys) -> None:
    url = f"duckdb:///{tmp_path / 'missing.duckdb'}"
    assert _cli(url, tmp_path, "db", "stamp") == 2
    assert "no local database at" in capsys.readouterr().err
    assert not (tmp_path / "missing.duckdb").exists()

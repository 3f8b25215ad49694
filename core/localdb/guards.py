"""Read-only guards on the local copy, generated from the catalogue's owners (issue 16).

On PostgreSQL the local copy of Zuora is read-only to everyone but recon. Privileges alone
cannot say that (a superuser at a psql prompt has them all), so the guards are triggers that
let a write through only when its transaction carries a recon writer label
(:mod:`core.localdb.writer`): recon's repair apply and revert, the targeted sync (through
apply), the backfill and recon's loaders set it; an administrator's escape hatch sets it by
hand. Two kinds, both decided by the catalogue, never by a second list:

* **copy tables** — every :class:`~core.catalog.ObjectSpec` whose rows Zuora owns
  (``row_owner`` ``Owner.ZUORA``: the subscription tables, the catalog cache, the billing
  account contacts). One statement-level trigger per table, ``recon_guard_copy``, rejects
  INSERT, UPDATE, DELETE and TRUNCATE (statement level: a bulk write of recon's costs one
  call, not one per row).
* **column-guarded tables** — tables whose rows the application creates but which hold
  Zuora-owned or derived columns (``billing_accounts``, ``orders``), guarded only when listed
  in ``local.guard_tables``. A row-level ``BEFORE UPDATE OF <those columns>`` trigger,
  ``recon_guard_columns``, rejects an UPDATE that changes one of them; INSERT and DELETE stay
  the application's, and local metadata columns stay writable (the trigger does not even
  fire for an UPDATE that sets only those).

The guards are a safety rail against mistakes, not a security boundary: a role that may drop
a trigger may drop these. ``recon db check`` (:func:`check`) compares what is installed with
what this module generates. DuckDB has no triggers: nothing is enforced there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.catalog import LOCAL_TABLES, OBJECTS, LocalTable, ObjectSpec, Owner
from core.errors import ConfigError, LocalDatabaseError
from core.localdb.dialect import Dialect
from core.localdb.recon_objects import HATCH_LOG
from core.localdb.writer import KINDS, SETTING

PREFIX = "recon_guard"
COPY = f"{PREFIX}_copy"  # the copy tables' trigger and its function (one name for both)
COLUMNS = f"{PREFIX}_columns"  # the column-guarded tables' trigger and its function
FUNCTIONS = (COPY, COLUMNS)
GUARD_TABLES_SETTING = "local.guard_tables"
# 42501 insufficient_privilege: drivers and ORMs report it as "not allowed", which it is
ERRCODE = "42501"
# pg_trigger.tgtype bits (src/include/catalog/pg_trigger.h)
_ROW, _BEFORE, _INSERT, _DELETE, _UPDATE, _TRUNCATE = 1, 2, 4, 8, 16, 32
COPY_TGTYPE = _BEFORE | _INSERT | _DELETE | _UPDATE | _TRUNCATE
COLUMNS_TGTYPE = _ROW | _BEFORE | _UPDATE

# A recon writer label: one of recon's kinds, a colon, then who (core.localdb.writer.label).
WRITER_PATTERN = f"^({'|'.join(KINDS)}):."
_IS_RECON = f"coalesce(current_setting('{SETTING}', true), '') ~ '{WRITER_PATTERN}'"
# writer.hatch_sql with a placeholder for who (which label() would refuse as a name)
HATCH_SQL = f"SELECT set_config('{SETTING}', 'hatch:<who>', true);"
_HATCH = HATCH_SQL.replace("'", "''")
_HINT = (f"an administrator writes by hand in one transaction: BEGIN; {_HATCH} <statement>; "
         "COMMIT; (docs/local-database.md \"Local copy guards\")")

# An escape-hatch write is logged (recon_hatch_log, recon's own table beside the audit: once
# per transaction, table and operation) so it stays distinguishable after its label is gone;
# skipped where recon's objects are absent (guards printed into an unstamped schema).
_LOG_HATCH = (
    f"IF current_setting('{SETTING}', true) LIKE 'hatch:%' AND to_regclass("
    f"quote_ident(TG_TABLE_SCHEMA) || '.{HATCH_LOG}') IS NOT NULL THEN\n"
    f"      EXECUTE format('INSERT INTO %I.{HATCH_LOG} (txid, table_name, op, writer, db_user, "
    "written_at) VALUES (txid_current(), $1, $2, $3, session_user, "
    "clock_timestamp() AT TIME ZONE ''UTC'') ON CONFLICT DO NOTHING', TG_TABLE_SCHEMA)\n"
    f"        USING TG_TABLE_NAME, TG_OP, current_setting('{SETTING}');\n"
    "    END IF;")

# The functions' bodies exactly as PostgreSQL keeps them (pg_proc.prosrc): `db check`
# compares them character for character.
COPY_BODY = f"""
BEGIN
  IF {_IS_RECON} THEN
    {_LOG_HATCH}
    RETURN NULL;
  END IF;
  RAISE EXCEPTION USING ERRCODE = '{ERRCODE}',
    MESSAGE = format('%s on %s refused: %s is a read-only copy of Zuora that only recon '
      'writes. Change the record in Zuora and run `recon sync` (or apply a repair plan: '
      '`recon repair apply`); an administrator can use the escape hatch (docs/local-database.md '
      '"Local copy guards")', TG_OP, TG_TABLE_NAME, TG_TABLE_NAME),
    HINT = '{_HINT}';
END;
"""

COLUMNS_BODY = f"""
DECLARE
  col text;
  changed text[] := '{{}}';
  old_row jsonb;
  new_row jsonb;
BEGIN
  IF {_IS_RECON} THEN
    {_LOG_HATCH}
    RETURN NEW;
  END IF;
  old_row := to_jsonb(OLD);
  new_row := to_jsonb(NEW);
  FOREACH col IN ARRAY TG_ARGV LOOP
    IF old_row -> col IS DISTINCT FROM new_row -> col THEN
      changed := changed || col;
    END IF;
  END LOOP;
  IF cardinality(changed) > 0 THEN
    RAISE EXCEPTION USING ERRCODE = '{ERRCODE}',
      MESSAGE = format('UPDATE of %s.%s refused: the Zuora-owned and derived columns of %s '
        'are written only by recon ({GUARD_TABLES_SETTING}). Change the record in Zuora and '
        'run `recon sync`; local metadata columns, INSERT and DELETE stay the '
        'application''s; an administrator can use the escape hatch (docs/local-database.md '
        '"Local copy guards")', TG_TABLE_NAME, array_to_string(changed, ', '), TG_TABLE_NAME),
      HINT = '{_HINT}';
  END IF;
  RETURN NEW;
END;
"""
BODIES = {COPY: COPY_BODY, COLUMNS: COLUMNS_BODY}
_COMMENTS = {
    COPY: "recon: rejects any write to a local copy of Zuora that does not come from recon "
          "(generated by recon; `recon db check` compares it)",
    COLUMNS: "recon: rejects an UPDATE of Zuora-owned or derived columns that does not come "
             "from recon (generated by recon; `recon db check` compares it)",
}


# -- what the catalogue says ---------------------------------------------------------------------
def copy_tables(objects: Sequence[ObjectSpec] = OBJECTS) -> tuple[str, ...]:
    """The tables that copy Zuora: every object whose rows Zuora owns."""
    return tuple(s.table for s in objects if s.row_owner is Owner.ZUORA)


def _recon_owned(owner: Owner) -> bool:
    return owner in (Owner.ZUORA, Owner.DERIVED)


def guardable_columns(objects: Sequence[ObjectSpec] = OBJECTS,
                      local_tables: Sequence[LocalTable] = LOCAL_TABLES
                      ) -> dict[str, tuple[str, ...]]:
    """Mixed tables (rows the application creates) → their Zuora-owned and derived columns,
    the ones ``local.guard_tables`` can guard; a table without any is not listed."""
    out: dict[str, tuple[str, ...]] = {}
    for s in objects:
        if s.row_owner is Owner.ZUORA:
            continue
        cols = [f.column for f in s.fields if f.column is not None and _recon_owned(f.owner)]
        cols += [c.name for c in s.extra_columns if _recon_owned(c.owner)]
        if cols:
            out[s.table] = tuple(cols)
    for t in local_tables:
        cols = [c.name for c in t.columns if _recon_owned(c.owner)]
        if cols:
            out[t.name] = tuple(cols)
    return out


def parse_names(text: str) -> tuple[str, ...]:
    """A list setting's value (``a, b`` or ``a b``) as names, in order, without repeats."""
    names: list[str] = []
    for part in text.replace(",", " ").split():
        if part not in names:
            names.append(part)
    return tuple(names)


@dataclass(frozen=True)
class TableGuard:
    """One guard trigger: ``kind`` is :data:`COPY` or :data:`COLUMNS` (its trigger's and
    function's name); ``columns`` the guarded columns of a :data:`COLUMNS` guard."""

    table: str
    kind: str
    columns: tuple[str, ...] = ()

    @property
    def trigger(self) -> str:
        return self.kind

    @property
    def tgtype(self) -> int:
        return COPY_TGTYPE if self.kind == COPY else COLUMNS_TGTYPE

    def create_sql(self) -> str:
        if self.kind == COPY:
            return (f"CREATE TRIGGER {COPY} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON "
                    f"{self.table} FOR EACH STATEMENT EXECUTE FUNCTION {COPY}()")
        args = ", ".join(f"'{c}'" for c in self.columns)
        return (f"CREATE TRIGGER {COLUMNS} BEFORE UPDATE OF {', '.join(self.columns)} ON "
                f"{self.table} FOR EACH ROW EXECUTE FUNCTION {COLUMNS}({args})")

    def drop_sql(self) -> str:
        return f"DROP TRIGGER IF EXISTS {self.trigger} ON {self.table}"


@dataclass(frozen=True)
class GuardSet:
    """Every guard one catalogue (and one ``local.guard_tables``) calls for."""

    guards: tuple[TableGuard, ...] = field(default_factory=tuple)

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(g.table for g in self.guards)

    def statements(self) -> list[str]:
        """The DDL that installs the guards (idempotent: functions replaced, triggers
        dropped and re-created)."""
        out = []
        for name in FUNCTIONS:
            out.append(f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql "
                       f"AS $recon_guard${BODIES[name]}$recon_guard$")
            out.append(f"COMMENT ON FUNCTION {name}() IS '{_COMMENTS[name]}'")
        for g in self.guards:
            out += [g.drop_sql(), g.create_sql()]
        return out

    def removal_statements(self) -> list[str]:
        return [g.drop_sql() for g in self.guards] + [
            f"DROP FUNCTION IF EXISTS {name}()" for name in FUNCTIONS]

    def render(self, remove: bool = False) -> str:
        """The DDL as one script (``recon db guards --print``), for an application's
        migrations; run it in one transaction."""
        head = ("-- recon: local copy guards, generated from the catalogue "
                "(docs/local-database.md \"Local copy guards\").\n-- Run in one transaction; "
                "`recon db check` compares what is installed with this.\n")
        if remove:
            head = "-- recon: remove the local copy guards.\n"
        stmts = self.removal_statements() if remove else self.statements()
        return head + ";\n\n".join(stmts) + ";\n"


def plan(guard_tables: Iterable[str] = (), objects: Sequence[ObjectSpec] = OBJECTS,
         local_tables: Sequence[LocalTable] = LOCAL_TABLES) -> GuardSet:
    """The guards of a catalogue (default: recon's own; a test passes a changed copy) with
    the mixed tables named in ``guard_tables`` (``local.guard_tables``) opted in. A name that
    is not a mixed table with something to guard is a :class:`ConfigError`."""
    guard_tables = tuple(guard_tables)
    try:
        check_guard_tables(guard_tables, objects, local_tables)
    except ValueError as e:
        raise ConfigError(f"{GUARD_TABLES_SETTING}: {e}") from None
    guards = [TableGuard(t, COPY) for t in copy_tables(objects)]
    mixed = guardable_columns(objects, local_tables)
    guards += [TableGuard(t, COLUMNS, mixed[t]) for t in guard_tables]
    return GuardSet(tuple(guards))


def check_guard_tables(names: Iterable[str], objects: Sequence[ObjectSpec] = OBJECTS,
                       local_tables: Sequence[LocalTable] = LOCAL_TABLES) -> None:
    """Refuse (ValueError) a ``local.guard_tables`` entry that names no mixed table with
    Zuora-owned or derived columns: a typo must not leave a table silently unguarded."""
    copies = set(copy_tables(objects))
    mixed = guardable_columns(objects, local_tables)
    known = {s.table for s in objects} | {t.name for t in local_tables}
    for name in names:
        if name in mixed:
            continue
        if name in copies:
            why = "it copies Zuora and is read-only as a whole already"
        elif name in known:
            why = "it has no Zuora-owned or derived column, so there is nothing to guard"
        else:
            why = "the catalogue declares no such table"
        raise ValueError(f"{name!r} cannot be listed: {why}; the tables it can guard are "
                         f"{', '.join(sorted(mixed))}")


def for_settings(settings: Any) -> GuardSet:
    """The guards recon installs and checks for these settings."""
    return plan(parse_names(settings.local_guard_tables))


# -- the database ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Trigger:
    """A non-internal trigger as PostgreSQL keeps it."""

    table: str
    name: str
    enabled: str  # pg_trigger.tgenabled: O (origin), D (disabled), R, A
    tgtype: int
    function: str
    function_schema: str
    args: tuple[str, ...]
    has_when: bool
    columns: tuple[str, ...]  # UPDATE OF columns

    @property
    def is_recon(self) -> bool:
        """One of recon's guards (by its trigger's and its function's names)."""
        return self.name.startswith(PREFIX) and self.function.startswith(PREFIX)


_TRIGGERS_SQL = """
SELECT c.relname::text, t.tgname::text, t.tgenabled::text, t.tgtype::int, p.proname::text,
       pn.nspname::text, t.tgargs, t.tgqual IS NOT NULL,
       ARRAY(SELECT a.attname::text FROM unnest(t.tgattr::int2[]) WITH ORDINALITY AS k(n, o)
             JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = k.n ORDER BY k.o)
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_proc p ON p.oid = t.tgfoid
JOIN pg_namespace pn ON pn.oid = p.pronamespace
WHERE NOT t.tgisinternal AND {where}
ORDER BY 1, 2
"""


def _require_pg(db: Any, what: str) -> None:
    if db.dialect is not Dialect.POSTGRES:
        raise LocalDatabaseError(f"{what} needs PostgreSQL: {NOT_ENFORCED_ON_DUCKDB}")


NOT_ENFORCED_ON_DUCKDB = (
    "DuckDB has no triggers, so nothing stops a plain write to the local copy there (recon "
    "marks its own writes all the same; the next reconcile finds any other write as drift)")


def _triggers(db: Any, where: str, params: list | None = None) -> list[Trigger]:
    out = []
    for table, name, enabled, tgtype, fn, fn_schema, args, has_when, cols in db.fetch(
            _TRIGGERS_SQL.format(where=where), params):
        argv = tuple(a.decode() for a in bytes(args).split(b"\x00")[:-1]) if args else ()
        out.append(Trigger(table, name, enabled, tgtype, fn, fn_schema, argv, has_when,
                           tuple(cols or ())))
    return out


def triggers_on(db: Any, tables: Iterable[str]) -> list[Trigger]:
    """The non-internal triggers on ``tables`` (resolved like recon's statements resolve
    them, through ``search_path``); [] on DuckDB. Foreign-key triggers are internal."""
    names = sorted(set(tables))
    if db.dialect is not Dialect.POSTGRES or not names:
        return []
    return _triggers(db, "t.tgrelid IN (SELECT to_regclass(x) FROM unnest(%s::text[]) x "
                     "WHERE to_regclass(x) IS NOT NULL)", [names])


def schema_triggers(db: Any) -> list[Trigger]:
    """The non-internal triggers on the tables of the current schema."""
    return _triggers(db, "c.relnamespace = current_schema()::regnamespace")


def _missing_tables(db: Any, tables: Iterable[str]) -> list[str]:
    names = sorted(set(tables))
    if not names:
        return []
    rows = db.fetch("SELECT x FROM unnest(%s::text[]) x WHERE to_regclass(x) IS NULL", [names])
    return sorted(r[0] for r in rows)


def install(db: Any, guards: GuardSet) -> list[str]:
    """Install ``guards`` in one transaction (idempotent) and take out recon guards that are
    no longer called for (a table dropped from ``local.guard_tables``); returns the tables
    guarded. PostgreSQL only."""
    _require_pg(db, "installing the local copy guards")
    missing = _missing_tables(db, guards.tables)
    if missing:
        raise LocalDatabaseError(
            f"cannot guard {', '.join(missing)}: no such table in the local database (create "
            "the schema first: `recon db init`, or the application's migrations)")
    wanted = {(g.table, g.trigger) for g in guards.guards}
    with db.transaction():
        stale = [t for t in schema_triggers(db) if t.is_recon and (t.table, t.name) not in wanted]
        for t in stale:
            db.execute(f"DROP TRIGGER IF EXISTS {t.name} ON {t.table}")
        for stmt in guards.statements():
            db.execute(stmt)
    return list(guards.tables)


def remove(db: Any) -> list[tuple[str, str]]:
    """Take every recon guard out of the current schema (triggers, then functions), in one
    transaction; returns the (table, trigger) pairs dropped. PostgreSQL only."""
    _require_pg(db, "removing the local copy guards")
    with db.transaction():
        found = [t for t in schema_triggers(db) if t.is_recon]
        for t in found:
            db.execute(f"DROP TRIGGER IF EXISTS {t.name} ON {t.table}")
        for name in FUNCTIONS:
            db.execute(f"DROP FUNCTION IF EXISTS {name}()")
    return [(t.table, t.name) for t in found]


# -- db check --------------------------------------------------------------------------------
OK, MISSING, ALTERED, UNEXPECTED = "ok", "missing", "altered", "unexpected"


@dataclass(frozen=True)
class Finding:
    """One line of ``recon db check``: a guard trigger or function and how it stands."""

    object: str  # "trigger" | "function"
    name: str  # table.trigger or function()
    status: str  # ok | missing | altered | unexpected
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"object": self.object, "name": self.name, "status": self.status,
                "detail": self.detail}


def _compare_trigger(g: TableGuard, t: Trigger, schema: str) -> list[str]:
    diffs = []
    if t.enabled == "D":
        diffs.append("disabled (ALTER TABLE … DISABLE TRIGGER)")
    if t.tgtype != g.tgtype:
        diffs.append(f"fires on other events or at another level (tgtype {t.tgtype}, "
                     f"expected {g.tgtype})")
    if (t.function, t.function_schema) != (g.kind, schema):
        diffs.append(f"calls {t.function_schema}.{t.function}(), expected "
                     f"{schema}.{g.kind}()")
    if t.has_when:
        diffs.append("has a WHEN condition")
    if t.args != g.columns:
        diffs.append(f"arguments {list(t.args)}, expected {list(g.columns)}")
    if tuple(sorted(t.columns)) != tuple(sorted(g.columns)):
        diffs.append(f"UPDATE OF {list(t.columns)}, expected {list(g.columns)}")
    return diffs


_FUNCTIONS_SQL = """
SELECT p.proname::text, p.prosrc, l.lanname::text, p.prorettype::regtype::text, p.pronargs,
       p.prosecdef, p.proconfig
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = current_schema()::regnamespace AND p.proname = ANY(%s)
"""


def check(db: Any, guards: GuardSet) -> list[Finding]:
    """Compare the guards installed in the current schema with ``guards``: each function and
    trigger ``ok``, ``missing`` or ``altered`` (what differs, named), and recon guards not
    called for ``unexpected``. PostgreSQL only."""
    _require_pg(db, "checking the local copy guards")
    schema = db.fetch("SELECT current_schema()::text")[0][0]
    out: list[Finding] = []
    funcs = {r[0]: r for r in db.fetch(_FUNCTIONS_SQL, [list(FUNCTIONS)])}
    for name in FUNCTIONS:
        label = f"{name}()"
        row = funcs.get(name)
        if row is None:
            out.append(Finding("function", label, MISSING, f"not in schema {schema}"))
            continue
        _, src, lang, rettype, nargs, secdef, config = row
        diffs = []
        if src != BODIES[name]:
            diffs.append("its body differs from the generated one")
        if (lang, rettype, nargs) != ("plpgsql", "trigger", 0):
            diffs.append(f"language {lang}, returns {rettype}, {nargs} arguments")
        if secdef or config:
            diffs.append("SECURITY DEFINER or SET options added")
        out.append(Finding("function", label, ALTERED if diffs else OK, "; ".join(diffs)))
    installed = {(t.table, t.name): t for t in schema_triggers(db)}
    missing_tables = set(_missing_tables(db, guards.tables))
    wanted = set()
    for g in guards.guards:
        label = f"{g.table}.{g.trigger}"
        wanted.add((g.table, g.trigger))
        t = installed.get((g.table, g.trigger))
        if t is None:
            why = "the table does not exist" if g.table in missing_tables else \
                f"no trigger {g.trigger} on {g.table}"
            out.append(Finding("trigger", label, MISSING, why))
            continue
        diffs = _compare_trigger(g, t, schema)
        out.append(Finding("trigger", label, ALTERED if diffs else OK, "; ".join(diffs)))
    for (table, name), t in sorted(installed.items()):
        if t.is_recon and (table, name) not in wanted:
            out.append(Finding("trigger", f"{table}.{name}", UNEXPECTED,
                               f"a recon guard this catalogue and {GUARD_TABLES_SETTING} do "
                               "not call for (`recon db guards` takes it out)"))
    return out


def markdown(objects: Sequence[ObjectSpec] = OBJECTS,
             local_tables: Sequence[LocalTable] = LOCAL_TABLES) -> str:
    """docs/local-database.md's table of the rules per table (``tests/core/test_guards.py`` checks it
    holds exactly this)."""
    lines = ["| table | guard | rule |", "|---|---|---|"]
    for t in copy_tables(objects):
        lines.append(f"| `{t}` | `{COPY}`, always | read-only: INSERT, UPDATE, DELETE and "
                     "TRUNCATE only by recon |")
    mixed = guardable_columns(objects, local_tables)
    for t, cols in mixed.items():
        shown = ", ".join(f"`{c}`" for c in cols)
        lines.append(f"| `{t}` | `{COLUMNS}`, when listed in `{GUARD_TABLES_SETTING}` | "
                     f"UPDATE of {shown} only by recon; INSERT, DELETE and the other columns "
                     "stay the application's |")
    for t in [s.table for s in objects] + [lt.name for lt in local_tables]:
        if t not in mixed and t not in copy_tables(objects):
            lines.append(f"| `{t}` | none | the application's own data (recon's repairs of "
                         "it are audited like any other) |")
    return "\n".join(lines)


def hatch_writes(db: Any) -> dict[str, Any]:
    """What the escape-hatch log holds (``recon db check``): how many transactions wrote the
    local copy through the hatch, and the latest one's time and label."""
    got = db.fetch(f"SELECT count(DISTINCT txid), max(written_at) FROM {HATCH_LOG}")
    n, latest = got[0] if got else (0, None)
    who = db.fetch(f"SELECT writer FROM {HATCH_LOG} ORDER BY written_at DESC LIMIT 1")
    return {"transactions": int(n or 0), "latest_at": latest,
            "latest_writer": who[0][0] if who else None}

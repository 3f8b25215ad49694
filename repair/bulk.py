"""Set-based application of an insert-only plan chunk on PostgreSQL (the backfill's path).

The generic executor (:mod:`repair.executor`) decodes, schedules, classifies and audits every
operation in Python; that is what a nightly repair of a few thousand drifted rows needs, and
too slow for a backfill's millions of inserts. A backfill chunk's operations are all inserts
of rows the target lacked when it was planned, and the Bill-To/Sold-To pointers of the
accounts it inserts (``update`` operations on rows the same chunk inserted), so they can be
applied a table at a time, in SQL, from the plan's own rows:

1. the plan's *runs* — its operations of one table and kind — are found in an in-memory
   DuckDB over the plan rows (the plan file's JSON text, the very rows written to its Parquet
   chunk), with the columns they set and the ``$ref`` values they hold (which table, match
   columns, column); :func:`prepare`, which the backfill runs on its planning thread;
2. each insert run's values are taken out of the JSON there (as text: JSON strings
   unescaped, integers and booleans as written) and copied into a temporary table with one
   typed column per column the run sets (a reference's column as JSONB) by one
   ``COPY … (FORMAT csv)`` — PostgreSQL parses each value once, by the input function of its
   column's type, which is what the executor's ``COPY`` and a cast from the JSON text use,
   and parses no JSON but the references'; the update runs' operations go as JSON into one
   temporary table;
3. per run, in the plan's order, ONE statement: every value typed as its column's (see 2;
   an update's cast from its JSON text), each reference resolved by an index lookup on the
   referenced table as it is now — after the earlier runs —, then ``INSERT … SELECT … WHERE NOT EXISTS … ON CONFLICT DO
   NOTHING RETURNING`` the new rows (generated ids included) and, in the same statement,
   their audit rows (``recon_repair_audit``: the plan's seq, the resolved key, NULL before, the
   full row after) built in SQL in the executor's JSON encoding, so ``repair revert`` undoes a
   chunk exactly as it undoes any apply. An ``update`` run (the pointers) touches only rows
   this transaction inserted, and only where the row still has the ``before`` values; its
   audit holds the full before and after images.

Nothing is ever updated outside the chunk's own rows and nothing is deleted. An operation not
applied is counted, never an error: its row exists already (it appeared since the plan was
made, or the plan names it twice), its reference found no row (``referenced row missing``) or
several. The caller owns the transaction (the chunk's one, marked with its writer, with its
checkpoint).

Runs execute one after another: each after every run that writes rows its references may
resolve to (the accounts before their contacts, the customers before the memberships and
orders), otherwise in the order of their first operation; a run sees every earlier run's
rows. A plan whose every reference names a row the plan inserts at an earlier seq or one
that exists (what the planner makes) therefore resolves exactly as the executor resolves it.
:func:`apply_chunk` refuses (:class:`~repair.guards.RepairFailed`, nothing written: the
caller rolls back) what one statement per run could misread: runs of one table whose
operations interleave, references in a cycle or to the run's own table, a table whose
operations of one kind set different columns, a reference in a ``before`` image or an
update's key, or a delete. Plans of ``recon repair plan`` go through
the executor (``recon repair apply``).
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass, field

import duckdb
import polars as pl

from repair.audit import AUDIT, Session
from repair.guards import RepairFailed
from repair.plan import column_types, local_tables, parse_type, primary_key

OPS = "_recon_bulk_ops"  # the chunk's operations (temporary, dropped at commit)
RUN = "_recon_bulk_run"  # an insert run's rows, typed (temporary, dropped at commit)
NEW = "_recon_bulk_new"  # primary keys of the rows this transaction inserted, per table
WORK_MEM = "64MB"  # per sort or hash of one statement, for the chunk's transaction only
_TEXT = ("VARCHAR", "TEXT", "CHAR", "CHARACTER VARYING", "CHARACTER")


@dataclass
class RunResult:
    """One run's outcome: operations planned, applied (rows written, each audited), skipped
    because a reference found no row, and skipped otherwise (the row exists, or changed)."""

    table: str
    op: str
    planned: int
    applied: int = 0
    ref_missing: int = 0
    conflicts: int = 0


@dataclass
class BulkResult:
    """What :func:`apply_chunk` wrote."""

    runs: list[RunResult] = field(default_factory=list)

    @property
    def planned(self) -> int:
        return sum(r.planned for r in self.runs)

    @property
    def applied(self) -> int:
        return sum(r.applied for r in self.runs)

    @property
    def ref_missing(self) -> int:
        return sum(r.ref_missing for r in self.runs)

    @property
    def conflicts(self) -> int:
        return sum(r.conflicts for r in self.runs)

    def inserted(self) -> dict[str, int]:
        """Rows inserted per table."""
        out: dict[str, int] = {}
        for r in self.runs:
            if r.op == "insert" and r.applied:
                out[r.table] = out.get(r.table, 0) + r.applied
        return dict(sorted(out.items()))


@dataclass(frozen=True)
class _Ref:
    """The references of one column of a run: ``column`` of the row of ``table`` whose
    ``match`` columns equal the reference's values."""

    col: str
    table: str
    match: tuple[str, ...]
    column: str


@dataclass
class _Run:
    table: str
    op: str
    first: int
    last: int
    n: int
    key_cols: tuple[str, ...]
    after_cols: tuple[str, ...]
    before_cols: tuple[str, ...]
    refs: dict[str, _Ref] = field(default_factory=dict)
    after_order: tuple[str, ...] = ()  # the after columns in the first operation's order


# -- values: JSON text in, typed values; typed values out, the executor's JSON text ----------
def _cast_type(local_type: str) -> str:
    """The type a plan value is cast to: the column's, without a text length (an over-long
    value then fails the insert's assignment to the column, as the executor's COPY into its
    typed temporary table does, instead of being cut by an explicit cast)."""
    base = parse_type(local_type)[0]
    return "text" if base in _TEXT else local_type


def _value(src: str, col: str, local_type: str) -> str:
    """SQL: the typed value of ``col`` in the JSONB object ``src`` (NULL for JSON null)."""
    return f"CAST({src}->>'{col}' AS {_cast_type(local_type)})"


def _json(expr: str, local_type: str) -> str:
    """SQL text: ``expr`` as the executor writes it into the audit (:func:`repair.plan.to_json`
    then ``json.dumps``): decimals and dates as strings, timestamps ISO 8601 with ``T`` (the
    microseconds only when not zero), booleans and integers as JSON scalars, ``null``. The
    text is ``json.dumps``' but for characters outside ASCII, kept as UTF-8 where Python
    writes ``\\uXXXX`` escapes: the same JSON value either way."""
    base = parse_type(local_type)[0]
    if base in ("DECIMAL", "NUMERIC"):
        inner = f"to_json(CAST({expr} AS text))::text"
    elif base in ("TIMESTAMP", "DATETIME"):
        # PostgreSQL's own JSON of a timestamp is Python's without microseconds (and cheaper
        # than to_char); with them, Python keeps six digits where PostgreSQL trims zeros
        inner = (f"CASE WHEN date_trunc('second', {expr}) = {expr} THEN to_json({expr})::text "
                 f"ELSE to_json(to_char({expr}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'))::text END")
    elif base == "DATE":
        inner = f"to_json(to_char({expr}, 'YYYY-MM-DD'))::text"
    elif base == "BOOLEAN":
        inner = f"CASE WHEN {expr} THEN 'true' WHEN NOT {expr} THEN 'false' END"
    elif base in ("SMALLINT", "INTEGER", "INT", "BIGINT"):
        inner = f"CAST({expr} AS text)"
    else:
        inner = f"to_json(CAST({expr} AS text))::text"
    return f"coalesce({inner}, 'null')"


def _object(alias: str, cols: list[str] | tuple[str, ...], types: dict[str, str],
            sort: bool = False, prefix: str = "") -> str:
    """SQL text: a JSON object of ``cols`` (read from ``alias.<prefix><col>``) in
    ``json.dumps``' layout (``{"a": 1, "b": "x"}``), keys sorted with ``sort`` (the audit's
    key) or in the given (table) order (its images)."""
    names = sorted(cols) if sort else list(cols)
    parts = [f"'{'{' if i == 0 else ', '}\"{c}\": ' || "
             f"{_json(f'{alias}.{prefix}{c}', types[c])}" for i, c in enumerate(names)]
    return "(" + " || ".join(parts) + " || '}')" if parts else "'{}'"


# -- reading and loading the chunk -------------------------------------------------------------
def _paths(cols: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(f"'$.\"{c}\"'" for c in cols) + "]"


def _keys(part: str) -> str:
    """DuckDB SQL: the sorted keys of the JSON object ``part`` ([] for NULL)."""
    return f"list_sort(coalesce(json_keys({part}), []))"


def _runs(frame: pl.DataFrame) -> tuple[list[_Run], duckdb.DuckDBPyConnection]:
    """The chunk's runs in execution order, with their columns and references, read from the
    plan rows in an in-memory DuckDB (returned, the rows registered as ``ops``); refuses what
    one statement per run could misread (module doc)."""
    con = duckdb.connect()
    con.register("ops", frame.select("seq", "table", "op", "key", "before", "after").to_arrow())
    runs = [_Run(t, o, int(a), int(b), int(n), (), (), ()) for t, o, a, b, n in con.sql(
        'SELECT "table", op, min(seq), max(seq), count(*) FROM ops GROUP BY ALL '
        "ORDER BY min(seq)").fetchall()]
    # the operations holding a reference (a few: the chunk's links), where references are read
    con.execute("CREATE TEMP TABLE ref_ops AS SELECT * FROM ops WHERE " + " OR ".join(
        f"contains(coalesce({p}, ''), '\"$ref\"')" for p in ("key", "before", "after")))
    with_refs = {(t, o) for t, o in con.sql('SELECT DISTINCT "table", op FROM ref_ops')
                 .fetchall()}
    firsts = ", ".join(str(r.first) for r in runs)
    shapes = {int(s): (tuple(k), tuple(a), tuple(b), tuple(o or ())) for s, k, a, b, o in con.sql(
        f"SELECT seq, {_keys('key')}, {_keys('after')}, {_keys('before')}, json_keys(after) "
        "FROM ops "
        f"WHERE seq IN ({firsts})").fetchall()}
    for r in runs:
        if r.op not in ("insert", "update"):
            raise RepairFailed(f"the bulk path applies inserts and updates of the rows it "
                               f"inserts, not a {r.op} ({r.table}); apply this plan with "
                               "`recon repair apply`")
        r.key_cols, r.after_cols, r.before_cols, r.after_order = shapes[r.first]
        types = column_types(r.table)
        if r.op == "update" and not set(r.after_cols) <= set(r.before_cols):
            raise RepairFailed(f"updates of {r.table} without the expected current value of "
                               f"every column they set (seq {r.first})")
        unknown = [c for c in (*r.key_cols, *r.after_cols, *r.before_cols) if c not in types]
        if unknown:
            raise RepairFailed(f"operations on {r.table} name column(s) {', '.join(unknown)} "
                               f"it does not have")
        parts = [(part, c) for part, cols in (("key", r.key_cols), ("after", r.after_cols),
                                              ("before", r.before_cols)) for c in cols]
        if not parts or (r.table, r.op) not in with_refs:
            continue
        found = con.sql(" UNION ".join(_ref_sql(r, part, c) for part, c in parts)).fetchall()
        for part, col, rtable, match, rcol in sorted(found, key=repr):
            if part == "before" or (part == "key" and r.op != "insert"):
                raise RepairFailed(f"a reference in the {part} of an {r.op} of {r.table} "
                                   f"({col}): the bulk path resolves references of the values "
                                   "it writes only")
            if part == "key":
                continue  # an insert's key is its after values (the executor's rule)
            ref = _Ref(col, rtable, tuple(match), rcol)
            if r.refs.get(col, ref) != ref:
                raise RepairFailed(f"{r.table}.{col} references two different things in one "
                                   f"chunk ({r.refs[col]} and {ref})")
            if rtable not in local_tables() or not {rcol, *match} <= set(column_types(rtable)):
                raise RepairFailed(f"{r.table}.{col} references {rtable}.{rcol} by "
                                   f"{', '.join(match)}, which is not a local table's columns")
            r.refs[col] = ref
    return _order(runs), con


def _ref_sql(run: _Run, part: str, col: str) -> str:
    """DuckDB SQL: the (part, column, table, match columns, column) of the ``$ref`` values of
    ``col`` in ``part`` of the run's operations."""
    ref = f"json_extract({part}, '$.\"{col}\".\"$ref\"')"
    match = _keys(f"json_extract({ref}, '$.match')")
    return (f"SELECT '{part}', '{col}', json_extract_string({ref}, '$.table'), {match}, "
            f"json_extract_string({ref}, '$.column') FROM ref_ops "
            f"WHERE \"table\" = '{run.table}' AND op = '{run.op}' "
            f"AND json_type({part}, '$.\"{col}\"') = 'OBJECT'")


def _copy(sess: Session, table: str, cols: list[str], rows: bytes) -> None:
    """CSV ``rows`` (columns ``cols``) into ``table`` with one ``COPY … (FORMAT csv)``."""
    with sess.raw.cursor() as cur, cur.copy(
            f"COPY {table} ({', '.join(cols)}) FROM STDIN (FORMAT csv)") as cp:
        view = memoryview(rows)
        for i in range(0, len(view), 1 << 20):
            cp.write(view[i:i + (1 << 20)])


def _insert_rows(con: duckdb.DuckDBPyConnection, run: _Run) -> bytes:
    """An insert run's rows as CSV for :func:`_load_insert`: ``seq``, ``shape_ok`` (the
    operation sets exactly the run's columns, as its first does) and the text of each value
    it sets (a reference's: its JSON), taken out of the plan's JSON in DuckDB."""
    plain = [c for c in run.after_cols if c not in run.refs]
    refs = [c for c in run.after_cols if c in run.refs]
    # the keys in the first operation's order (the planner's, every time), else sorted
    shape = (f"list_sort(json_keys(key)) = {list(run.key_cols)!r} AND CASE WHEN "
             f"json_keys(after) = {list(run.after_order)!r} THEN true ELSE {_keys('after')} = "
             f"{list(run.after_cols)!r} END AND (before IS NULL OR len(json_keys(before)) = 0)")
    items = [f"v[{i + 1}] AS {c}" for i, c in enumerate(plain)]
    items += [f"CAST(json_extract(after, '$.\"{c}\"') AS VARCHAR) AS {c}" for c in refs]
    rows = con.sql(
        f"SELECT CAST(seq AS VARCHAR) AS seq, CAST(coalesce({shape}, false) AS VARCHAR) AS "
        f"shape_ok, {', '.join(items)} FROM (SELECT *, json_extract_string(after, "
        f"{_paths(plain)}) AS v FROM ops WHERE \"table\" = '{run.table}' AND op = 'insert')"
    ).pl()
    buf = io.BytesIO()
    rows.write_csv(buf, include_header=False, null_value="", quote_style="non_numeric")
    return buf.getvalue()


def _load_insert(sess: Session, run: _Run, name: str, rows: bytes) -> None:
    """An insert run's rows (:func:`_insert_rows`) into the temporary table ``name``, one
    typed column per column it sets (a reference's JSONB): PostgreSQL parses each value once,
    by its column type's input function (what the executor's COPY and a cast from the JSON
    text use), and no JSON but the references'."""
    types = column_types(run.table)
    plain = [c for c in run.after_cols if c not in run.refs]
    refs = [c for c in run.after_cols if c in run.refs]
    decl = [f"{c} {_cast_type(types[c])}" for c in plain] + [f"{c} JSONB" for c in refs]
    sess.run(f"CREATE TEMP TABLE {name} (seq BIGINT, shape_ok BOOLEAN, "
             f"{', '.join(decl)}) ON COMMIT DROP")
    _copy(sess, name, ["seq", "shape_ok", *plain, *refs], rows)


def _load_ops(sess: Session, frame: pl.DataFrame) -> None:
    """Operations other than inserts (the pointers' updates) into :data:`OPS` as JSON."""
    sess.run(f"CREATE TEMP TABLE {OPS} (seq BIGINT, tbl TEXT, op TEXT, "
             "key JSONB, before JSONB, after JSONB) ON COMMIT DROP")
    buf = io.BytesIO()
    frame.select("seq", pl.col("table").alias("tbl"), "op", "key", "before", "after").write_csv(
        buf, include_header=False, null_value="", quote_style="non_numeric")
    _copy(sess, OPS, ["seq", "tbl", "op", "key", "before", "after"], buf.getvalue())
    sess.run(f"ANALYZE {OPS} (seq, tbl, op)")


def _affects(w: _Run, ref: _Ref) -> bool:
    """Whether run ``w`` can change what ``ref`` resolves to: it inserts rows of its table, or
    updates a column the reference matches on or reads."""
    return w.table == ref.table and (w.op == "insert"
                                     or bool({ref.column, *ref.match} & set(w.after_cols)))


def _order(runs: list[_Run]) -> list[_Run]:
    """The runs in execution order: a run after every run that can change what its references
    resolve to (so each sees all the rows the chunk writes there), runs of one table in seq
    order, otherwise by first operation. Refuses a cycle, runs of one table whose operations
    interleave, and a reference to the run's own table."""
    for i, r in enumerate(runs):
        for w in runs[i + 1:]:
            if w.table == r.table and w.first < r.last:
                raise RepairFailed(f"the {r.op}s and {w.op}s of {r.table} interleave (seq "
                                   f"{r.first}–{r.last} and {w.first}–{w.last}): apply this "
                                   "plan with `recon repair apply`")
        if any(ref.table == r.table for ref in r.refs.values()):
            raise RepairFailed(f"{r.table} references its own rows: apply this plan with "
                               "`recon repair apply`")

    def after(r: _Run) -> list[_Run]:
        return [w for w in runs if w is not r and (
            any(_affects(w, ref) for ref in r.refs.values())
            or (w.table == r.table and w.first < r.first))]

    done: list[_Run] = []
    todo = sorted(runs, key=lambda r: r.first)
    while todo:
        ready = next((r for r in todo if all(w in done for w in after(r))), None)
        if ready is None:
            raise RepairFailed("the chunk's tables reference each other in a cycle ("
                               + ", ".join(r.table for r in todo) + "): apply this plan with "
                               "`recon repair apply`")
        done.append(ready)
        todo.remove(ready)
    return done


# -- one run -----------------------------------------------------------------------------------
def _source(run: _Run, part: str, cols: tuple[str, ...], typed: bool = False
            ) -> tuple[list[str], list[str], list[str]]:
    """Select-list items ``<prefix>_<col>`` of ``cols`` of ``o.<part>`` (references resolved
    by lateral index lookups), the laterals, and the missing/ambiguous flags. ``typed``: ``o``
    is an insert run's table (:func:`_load_insert`): a typed column per column, a reference's
    column JSONB."""
    types = column_types(run.table)
    prefix = part[0]
    items, joins, miss, amb = [], [], [], []
    for c in cols:
        ref = run.refs.get(c) if part == "after" else None
        if typed and ref is None:
            items.append(f"o.{c} AS {prefix}_{c}")
            continue
        json = f"o.{c}" if typed else f"o.{part}->'{c}'"
        plain = (f"CAST({json} #>> '{{}}' AS {_cast_type(types[c])})" if typed
                 else _value(f"o.{part}", c, types[c]))
        if ref is None:
            items.append(f"{plain} AS {prefix}_{c}")
            continue
        alias = f"r_{c}"
        is_ref = f"jsonb_typeof({json}) = 'object'"
        rtypes = column_types(ref.table)
        where = f"{json}->'$ref'->'match'"
        match = " AND ".join(f"u.{m} = {_value(where, m, rtypes[m])}" for m in ref.match)
        joins.append(f"LEFT JOIN LATERAL (SELECT min(u.{ref.column}) AS v, count(*) AS n "
                     f"FROM {ref.table} u WHERE {is_ref} AND {match}) {alias} ON true")
        items.append(f"CASE WHEN {is_ref} THEN CAST({alias}.v AS {_cast_type(types[c])}) "
                     f"ELSE {plain} END AS {prefix}_{c}")
        miss.append(f"({is_ref} AND {alias}.n = 0)")
        amb.append(f"({is_ref} AND {alias}.n > 1)")
    return items, joins, [" OR ".join(miss) or "false", " OR ".join(amb) or "false"]


def _shape_ok(run: _Run) -> str:
    """SQL over ``o``: the operation sets exactly the run's columns (as its first does)."""
    def same(part: str, cols: tuple[str, ...]) -> str:
        if not cols:
            return f"(o.{part} IS NULL OR o.{part} = '{{}}'::jsonb)"
        arr = "ARRAY[" + ", ".join(f"'{c}'" for c in cols) + "]"
        return f"(o.{part} ?& {arr} AND (o.{part} - {arr}) = '{{}}'::jsonb)"

    return " AND ".join(same(p, c) for p, c in (("key", run.key_cols),
                                                ("after", run.after_cols),
                                                ("before", run.before_cols)))


def _insert_sql(run: _Run, track: bool, source: str) -> str:
    """One insert run from its typed table ``source`` (:func:`_load_insert`)."""
    table, types = run.table, column_types(run.table)
    cols = list(types)
    items, joins, (miss, amb) = _source(run, "after", run.after_cols, typed=True)
    keys = [f"a_{k}" for k in run.key_cols]
    on_src = " AND ".join(f"cur.{k} = p.a_{k}" for k in run.key_cols)
    on_ins = " AND ".join(f"i.{k} = p.a_{k}" for k in run.key_cols)
    ins_cols = ", ".join(run.after_cols)
    pk = primary_key(table)
    track_sql = (f", new AS (INSERT INTO {NEW} (tbl, pk) SELECT '{table}', CAST(i.{pk} AS text) "
                 "FROM ins i)") if track else ""
    return f"""
    WITH src AS MATERIALIZED (
        SELECT o.seq, {', '.join(items)}, ({miss}) AS miss, ({amb}) AS amb, o.shape_ok
        FROM {source} o {' '.join(joins)}),
    pick AS MATERIALIZED (
        SELECT DISTINCT ON ({', '.join(keys)}) * FROM src WHERE NOT miss AND NOT amb
        ORDER BY {', '.join(keys)}, seq),
    ins AS (
        INSERT INTO {table} ({ins_cols})
        SELECT {', '.join(f'p.a_{c}' for c in run.after_cols)} FROM pick p
        WHERE NOT EXISTS (SELECT 1 FROM {table} cur WHERE {on_src})
        ORDER BY p.seq
        ON CONFLICT DO NOTHING RETURNING {', '.join(cols)}),
    aud AS (
        INSERT INTO {AUDIT} (apply_id, seq, batch, table_name, op, key, before, after,
                             applied_at)
        SELECT %(apply_id)s, p.seq, %(batch)s, '{table}', 'insert',
               {_object('i', run.key_cols, types, sort=True)}, NULL,
               {_object('i', cols, types)}, %(now)s
        FROM ins i JOIN pick p ON {on_ins}
        RETURNING 1){track_sql}
    SELECT (SELECT count(*) FROM src), (SELECT count(*) FROM src WHERE miss),
           (SELECT count(*) FROM aud), (SELECT count(*) FROM src WHERE NOT shape_ok)"""


def _before_image(cols: list[str], changed: tuple[str, ...], types: dict[str, str]) -> str:
    """SQL text over the updated row ``u``: the row before the update — the columns it
    changed as the plan's ``before`` said (``u.o_<col>``; the update applied only where the
    row held exactly those), the others as they are."""
    names = [f"o_{c}" if c in changed else c for c in cols]
    parts = [f"'{'{' if i == 0 else ', '}\"{c}\": ' || {_json(f'u.{n}', types[c])}"
             for i, (c, n) in enumerate(zip(cols, names, strict=True))]
    return "(" + " || ".join(parts) + " || '}')"


def _update_sql(run: _Run) -> str:
    table, types = run.table, column_types(run.table)
    cols = list(types)
    pk = primary_key(table)
    kitems, _, _ = _source(run, "key", run.key_cols)
    aitems, joins, (miss, amb) = _source(run, "after", run.after_cols)
    bitems = [f"{_value('o.before', c, types[c])} AS b_{c}, (o.before ? '{c}') AS bx_{c}"
              for c in run.before_cols]
    keys = [f"k_{k}" for k in run.key_cols]
    on = " AND ".join(f"cur.{k} = p.k_{k}" for k in run.key_cols)
    before_ok = "".join(f" AND (NOT p.bx_{c} OR cur.{c} IS NOT DISTINCT FROM p.b_{c})"
                        for c in run.before_cols)
    own = (f"cur.{pk} IN (SELECT CAST(n.pk AS {_cast_type(types[pk])}) FROM {NEW} n "
           f"WHERE n.tbl = '{table}')")
    return f"""
    WITH src AS MATERIALIZED (
        SELECT o.seq, {', '.join(kitems + aitems + bitems)}, ({miss}) AS miss, ({amb}) AS amb,
               {_shape_ok(run)} AS shape_ok
        FROM {OPS} o {' '.join(joins)}
        WHERE o.tbl = '{table}' AND o.op = 'update'),
    pick AS MATERIALIZED (
        SELECT DISTINCT ON ({', '.join(keys)}) * FROM src WHERE NOT miss AND NOT amb
        ORDER BY {', '.join(keys)}, seq),
    upd AS (
        UPDATE {table} cur SET {', '.join(f'{c} = p.a_{c}' for c in run.after_cols)}
        FROM pick p WHERE {on} AND {own}{before_ok}
        RETURNING p.seq, {', '.join(f'p.k_{k}' for k in run.key_cols)},
                  {', '.join(f'p.b_{c} AS o_{c}' for c in run.after_cols)},
                  {', '.join(f'cur.{c}' for c in cols)}),
    aud AS (
        INSERT INTO {AUDIT} (apply_id, seq, batch, table_name, op, key, before, after,
                             applied_at)
        SELECT %(apply_id)s, u.seq, %(batch)s, '{table}', 'update',
               {_object('u', run.key_cols, types, sort=True, prefix='k_')},
               {_before_image(cols, run.after_cols, types)}, {_object('u', cols, types)},
               %(now)s
        FROM upd u
        RETURNING 1)
    SELECT (SELECT count(*) FROM src), (SELECT count(*) FROM src WHERE miss),
           (SELECT count(*) FROM aud), (SELECT count(*) FROM src WHERE NOT shape_ok)"""


@dataclass
class Prepared:
    """A chunk made ready for :func:`apply_chunk` without the database (by whoever planned
    it, e.g. on the backfill's planning thread while the chunk before applies): its runs in
    execution order and each insert run's rows as CSV."""

    runs: list[_Run]
    rows: dict[int, bytes]  # index in runs → CSV (insert runs)


def prepare(frame: pl.DataFrame) -> Prepared:
    """The runs of the chunk ``frame`` and its insert runs' typed rows; raises
    :class:`~repair.guards.RepairFailed` for a plan one statement per run could misread."""
    runs, con = _runs(frame)
    try:
        return Prepared(runs, {i: _insert_rows(con, r) for i, r in enumerate(runs)
                               if r.op == "insert"})
    finally:
        con.close()


def apply_chunk(sess: Session, frame: pl.DataFrame, *, apply_id: str, now: dt.datetime,
                batch: int = 1, prepared: Prepared | None = None) -> BulkResult:
    """Apply a plan chunk's operations (rows of :data:`repair.plan.OPS_SCHEMA`) in the
    caller's PostgreSQL transaction, audited under ``apply_id`` as ``batch``; see the module
    doc. ``prepared``: :func:`prepare` of ``frame``, done already. Raises
    :class:`~repair.guards.RepairFailed` for a plan it cannot apply as it means (the caller
    rolls back: nothing is written)."""
    if not sess.pg:
        raise RepairFailed("the bulk path needs PostgreSQL; on DuckDB the executor applies")
    out = BulkResult()
    if frame.height == 0:
        return out
    ready = prepared or prepare(frame)
    # a chunk's sorts and hashes (tens of thousands of rows) in memory, not in temp files
    sess.run(f"SET LOCAL work_mem = '{WORK_MEM}'")
    runs = ready.runs
    updated = {r.table for r in runs if r.op == "update"}
    if updated:
        sess.run(f"CREATE TEMP TABLE {NEW} (tbl TEXT, pk TEXT) ON COMMIT DROP")
        _load_ops(sess, frame.filter(pl.col("op") != "insert"))
    params = {"apply_id": apply_id, "batch": batch, "now": now}
    for i, run in enumerate(runs):
        if run.op == "update":  # its rows' count, else the planner loops over them per row
            sess.run(f"ANALYZE {NEW}")
            sql = _update_sql(run)
        else:
            source = f"{RUN}{i}"
            _load_insert(sess, run, source, ready.rows[i])
            sql = _insert_sql(run, run.table in updated, source)
        n, miss, applied, bad = sess.rows(sql, params)[0]
        if bad:
            raise RepairFailed(f"{bad} {run.op}(s) of {run.table} set other columns than "
                               f"the first one (seq {run.first}) does: apply this plan "
                               "with `recon repair apply`")
        out.runs.append(RunResult(run.table, run.op, int(n), int(applied), int(miss),
                                  int(n) - int(miss) - int(applied)))
    return out

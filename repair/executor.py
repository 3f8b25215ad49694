"""The set-based batch executor shared by apply and revert.

Operations are cut into batches of whole groups (a group never spans two transactions); each
batch is one transaction. Inside a batch the operations are arranged into *runs*: operations
of one kind on one table (same op, same key columns; inserts also the same columns) that can
execute as one statement without changing the outcome of the plan's order. Per run:

1. references (``$ref``) are resolved against the database as it is now — after earlier runs
   and batches — with one join per (table, match columns, column);
2. the run is loaded into a temporary table (COPY on PostgreSQL, Arrow on DuckDB);
3. one join reads the current rows (``FOR UPDATE`` on PostgreSQL) and every operation is
   classified: apply, already applied, conflict, or referenced row missing — a row that is
   not as the plan expected but that recon itself wrote (the audit: an earlier apply of this
   plan, or a newer apply or sync) is "already applied" or "superseded", never a conflict;
4. one ``UPDATE … FROM`` / ``DELETE … USING`` / ``INSERT … SELECT … WHERE NOT EXISTS`` applies
   the operations to apply, re-checking every expected ``before`` value in SQL (optimistic
   concurrency), ``RETURNING`` the rows it wrote;
5. the audit rows (full before and after images) are inserted in the same transaction.

No SQL statement is issued per operation. A dry run does 1–3 in a transaction that is always
rolled back and writes nothing; references to rows the plan itself would insert earlier are
followed through an in-memory overlay.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.errors import ReconError
from core.localdb.writer import mark
from repair.audit import Session, utc_now, write_audit
from repair.guards import RepairFailed
from repair.plan import (
    Op,
    Ref,
    column_types,
    generated_pk,
    pack_groups,
    primary_key,
    to_json,
    to_text,
)

APPLIED = "applied"  # in a dry run: would be applied
ALREADY = "already_applied"
CONFLICT = "conflict"
REF_MISSING = "referenced_row_missing"
# a targeted sync (issue 15) wrote the row after the plan's snapshot was taken: the plan's
# value is older than what is there now, so it is not written — and it is no conflict
SUPERSEDED = "superseded"
STATUSES = (APPLIED, ALREADY, CONFLICT, REF_MISSING, SUPERSEDED)

# PostgreSQL: a batch waits at most this long for a row lock held by the application, then
# fails (rolled back; re-run the plan later) instead of hanging.
LOCK_TIMEOUT = "30s"


@dataclass(frozen=True)
class BatchHooks:
    """Calls at the two points where a crash or a concurrent apply matters: ``written(b)``
    after batch ``b``'s rows and audit are written, before its COMMIT; ``committed(b)`` after
    it committed. Plain applies pass none; the backfill's ``written`` writes its chunk's
    checkpoint in the chunk's own transaction; the kill -9 and lock tests pass functions that
    hold a batch open or slow the apply down, explicitly (no environment knob in production).
    Neither is called in a dry run."""

    written: Callable[[int], None] | None = None
    committed: Callable[[int], None] | None = None


NO_HOOKS = BatchHooks()


@dataclass(frozen=True)
class Pending:
    """Dry run: the generated id of a row the plan would insert earlier (seq)."""

    seq: int

    def __repr__(self) -> str:
        return f"<id of the row inserted by seq {self.seq}>"


@dataclass(frozen=True)
class _Missing:
    ref: Ref


@dataclass(frozen=True)
class _Ambiguous:
    ref: Ref
    n: int


@dataclass
class Outcome:
    """What happened to one operation (JSON-ready values)."""

    seq: int
    batch: int
    table: str
    op: str
    group: str
    key: dict[str, Any]
    status: str
    detail: str = ""
    expected: dict[str, Any] | None = None  # the plan's before (update/delete) / after (insert)
    current: dict[str, Any] | None = None  # the row found (None: absent)
    changes: list[tuple[str, Any, Any]] = field(default_factory=list)  # (column, from, to)


def _signature(op: Op) -> dict[str, set[str | None]]:
    """What is known of the row an operation touches: column → possible values (as text).
    Update: key and before values (and after values, the row may already have them); delete:
    key and before; insert: the new row (its natural key is part of it). References are
    unknown until resolved, so they are left out."""
    sig: dict[str, set[str | None]] = {}

    def put(d: dict[str, Any] | None) -> None:
        for c, v in (d or {}).items():
            if not isinstance(v, Ref):
                sig.setdefault(c, set()).add(to_text(v))

    if op.op == "insert":
        put(op.after)
    else:
        put(op.key)
        put(op.before)
        if op.op == "update":
            put(op.after)
    return sig


@dataclass
class _Run:
    table: str
    op: str
    key_cols: tuple[str, ...]
    ins_cols: tuple[str, ...] | None
    ops: list[Op] = field(default_factory=list)
    reads: set[str] = field(default_factory=set)
    known: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    vals: dict[str, set] = field(default_factory=lambda: defaultdict(set))
    # references of the run's operations: (table, match columns) → match values; table →
    # every column a reference reads or matches on
    ref_matches: dict[tuple, set] = field(default_factory=lambda: defaultdict(set))
    ref_cols: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    keys: set[tuple] = field(default_factory=set)  # literal keys of the run's operations

    @property
    def kind(self) -> tuple:
        return (self.table, self.op, self.key_cols, self.ins_cols)

    def add(self, op: Op, sig: dict[str, set], refs: list[Ref]) -> None:
        self.ops.append(op)
        lit = _literal_key(op)
        if lit is not None:
            self.keys.add(lit)
        for c, v in sig.items():
            self.known[c] += 1
            self.vals[c] |= v
        for r in refs:
            self.reads.add(r.table)
            cols = tuple(c for c, _ in r.match)
            self.ref_matches[(r.table, cols)].add(
                tuple(v if isinstance(v, Ref) else to_text(v) for _, v in r.match))
            self.ref_cols[r.table].update(cols + (r.column,))

    def distinct_rows(self, sig: dict[str, set]) -> bool:
        """True when no operation of this run can touch the row ``sig`` describes: some
        column is known for all of them and none of their values is ``sig``'s."""
        n = len(self.ops)
        return any(self.known.get(c, 0) == n and v.isdisjoint(self.vals[c])
                   for c, v in sig.items())

    def unaffected_refs(self, op: Op) -> bool:
        """True when writing ``op`` first cannot change what this run's references resolve to
        (the row it inserts or deletes matches none of them; an update changes no column
        they match on or read)."""
        table = op.table
        for (t, cols), matches in self.ref_matches.items():
            if t != table:
                continue
            if op.op == "update":
                if set(op.after or {}) & self.ref_cols[t]:
                    return False
                continue
            row = op.after if op.op == "insert" else op.before
            values = []
            for c in cols:
                v = (row or {}).get(c, Ref)  # an omitted column (default, generated id): unknown
                if v is Ref or isinstance(v, Ref):
                    return False
                values.append(to_text(v))
            if None in values:
                continue  # a NULL never matches
            if tuple(values) in matches:
                return False
        return True


def _literal_key(op: Op) -> tuple | None:
    """The operation's key as text when it holds no reference (else None)."""
    if any(isinstance(v, Ref) for v in op.key.values()):
        return None
    return tuple(sorted((c, to_text(v)) for c, v in op.key.items()))


def _kind(op: Op) -> tuple:
    ins = tuple(sorted(op.after or {})) if op.op == "insert" else None
    return (op.table, op.op, tuple(sorted(op.key)), ins)


def make_batches(ops: list[Op], batch_size: int) -> list[list[Op]]:
    """Whole groups, in order of their first operation, up to ``batch_size`` operations per
    batch (a larger group is a batch of its own); each batch in ascending seq."""
    return pack_groups(ops, batch_size)


def schedule(ops: list[Op]) -> list[_Run]:
    """Arrange a batch's operations (ascending seq) into runs. An operation joins the last run
    of its kind unless an operation between must stay before it:

    * an operation on the same row (same key), or another kind of operation on the same
      table that may touch the same row (the order of a delete and an insert of one key
      matters; rows with different keys commute);
    * a run writing a table the operation references (so the reference sees that write);
    * a run referencing the table the operation writes, unless the write cannot change what
      those references resolve to.

    A plan ordered by step and then by group (the planner's order) therefore becomes a few
    runs per batch — one per (table, kind) — not one statement per group."""
    runs: list[_Run] = []
    for op in ops:
        table, kind = op.table, _kind(op)
        refs = op.refs()
        reads = {r.table for r in refs}
        sig = _signature(op)
        lit = _literal_key(op)
        lb = 0
        for i in range(len(runs) - 1, -1, -1):
            r = runs[i]
            if ((r.table == table and r.kind != kind and not r.distinct_rows(sig))
                    or (r.table == table and lit is not None and lit in r.keys)
                    or r.table in reads or (table in r.reads and not r.unaffected_refs(op))):
                lb = i + 1
                break
        target = None
        for i in range(len(runs) - 1, lb - 1, -1):
            if runs[i].kind == kind:
                target = runs[i]
                break
        if target is None:
            target = _Run(table=table, op=op.op, key_cols=kind[2], ins_cols=kind[3])
            runs.append(target)
        target.add(op, sig, refs)
    return runs


class _Overlay:
    """Dry run: rows the plan would have inserted or deleted so far (for references and for
    the absence check of inserts)."""

    def __init__(self) -> None:
        self.inserted: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        self.deleted: dict[str, set[str]] = defaultdict(set)
        self.updated: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # pk → values
        self._index: dict[tuple, tuple[int, dict]] = {}

    def add_insert(self, table: str, seq: int, row: dict[str, Any]) -> None:
        self.inserted[table].append((seq, dict(row)))

    def find(self, table: str, match: tuple[tuple[str, Any], ...]) -> list[tuple[int, dict]]:
        """Inserted rows of ``table`` whose columns equal ``match`` ((column, value) pairs)."""
        cols = tuple(c for c, _ in match)
        rows = self.inserted.get(table, [])
        idx_key = (table, cols)
        n, index = self._index.get(idx_key, (0, {}))
        if n != len(rows):
            index = defaultdict(list)
            for seq, row in rows:
                index[tuple(to_text(row.get(c)) for c in cols)].append((seq, row))
            self._index[idx_key] = (len(rows), index)
        return index.get(tuple(to_text(v) for _, v in match), [])

    def lookup(self, ref: Ref) -> list[Any]:
        hits = self.find(ref.table, ref.match)
        gen = generated_pk(ref.table)
        return [row[ref.column] if ref.column in row else
                (Pending(seq) if ref.column == gen else None) for seq, row in hits]


def _same(current: Any, planned: Any) -> bool | None:
    """Exact comparison of a database value and a plan value; None when unknowable (dry run
    placeholders)."""
    if isinstance(planned, Pending):
        return None
    return current == planned and (current is None) == (planned is None)


def _jd(d: dict[str, Any] | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {c: (repr(v) if isinstance(v, Pending) else to_json(v)) for c, v in d.items()}


def _jv(v: Any) -> Any:
    return repr(v) if isinstance(v, Pending) else to_json(v)


def _key_text(values: dict[str, Any], cols: tuple[str, ...]) -> tuple:
    return tuple(to_text(values[c]) for c in cols)


class Executor:
    """Apply (or dry-run) batches of operations on one :class:`Session`."""

    def __init__(self, sess: Session, *, dry_run: bool, apply_id: str | None,
                 progress: Callable[[str], None] | None = None,
                 later: dict[int, dict[str, Any]] | None = None,
                 hooks: BatchHooks = NO_HOOKS,
                 superseded_after: dt.datetime | None = None,
                 writer: tuple[str, str] | None = None,
                 plan_id: str | None = None,
                 as_of: Callable[[str], dt.datetime | None] | None = None) -> None:
        self.sess, self.dry_run, self.apply_id = sess, dry_run, apply_id
        # the plan being applied: an operation a recorded apply of it already wrote is
        # "already applied", not a conflict (re-applying a plan, or an older one)
        self.plan_id = plan_id
        # run id → the Zuora as-of time of that run's snapshot (None: unknown): an apply of
        # another plan overwrote a row with newer values when its snapshot is newer
        self.as_of = as_of
        # (kind, ident) each batch's transaction names as its writer (core.localdb.writer),
        # e.g. ("backfill", chunk id); None: not marked here
        self.writer = writer
        # the plan's snapshot time: rows a targeted sync wrote later are skipped (SUPERSEDED)
        self.superseded_after = superseded_after
        self.progress = progress
        self.hooks = hooks
        self.later = later or {}
        self.overlay = _Overlay()
        self.outcomes: list[Outcome] = []
        self.batches_committed = 0
        self.batches_run = 0

    # -- batches ---------------------------------------------------------------------------
    def run(self, batches: list[list[Op]]) -> list[Outcome]:
        """Run ``batches`` in order; called again (a streamed plan's next chunk), the batch
        numbers go on from the last call's."""
        base = self.batches_run
        total = base + len(batches)
        self.batches_run = total
        for b, ops in enumerate(batches, base + 1):
            now = utc_now()
            out: list[Outcome] = []
            audit: list[tuple] = []
            try:
                with self.sess.transaction(rollback=self.dry_run):
                    timeout = self.sess.dialect.lock_timeout_sql(LOCK_TIMEOUT)
                    if timeout:
                        self.sess.run(timeout)
                    if self.writer is not None and not self.dry_run:
                        mark(self.sess.db, *self.writer)
                    for run in schedule(ops):
                        o, a = self._run(run, b, now)
                        out += o
                        audit += a
                    if not self.dry_run:
                        write_audit(self.sess, audit)
                        if self.hooks.written:
                            self.hooks.written(b)
            except ReconError:
                raise
            except Exception as e:
                seqs = [o.seq for o in ops]
                raise RepairFailed(
                    f"batch {b} of {total} (operations seq {min(seqs)}–{max(seqs)}) failed and "
                    f"was rolled back: {type(e).__name__}: {' '.join(str(e).split())}. "
                    f"{self.batches_committed} earlier batch(es) stay committed; fix the cause "
                    "and re-run the same plan (applied operations are recognised as already "
                    "applied).") from e
            if not self.dry_run:
                self.batches_committed = b
            self.outcomes += sorted(out, key=lambda o: o.seq)
            if self.progress:
                n = defaultdict(int)
                for o in out:
                    n[o.status] += 1
                verb = "would apply" if self.dry_run else "applied"
                self.progress(f"batch {b}/{total}: {n[APPLIED]} {verb}, {n[ALREADY]} already "
                              f"applied, {n[SUPERSEDED]} superseded, {n[CONFLICT]} conflicts, "
                              f"{n[REF_MISSING]} missing references"
                              + ("" if self.dry_run else ", committed"))
            if self.hooks.committed and not self.dry_run:
                self.hooks.committed(b)
        return self.outcomes

    # -- one run ---------------------------------------------------------------------------
    def _run(self, run: _Run, batch: int, now: Any) -> tuple[list[Outcome], list[tuple]]:
        sess, table, kind = self.sess, run.table, run.op
        types = column_types(table)
        cols = list(types)
        pk = primary_key(table)
        out: list[Outcome] = []

        def outcome(op: Op, status: str, detail: str = "", current: dict | None = None,
                    changes: list | None = None) -> Outcome:
            o = Outcome(seq=op.seq, batch=batch, table=table, op=kind, group=op.group,
                        key=_jd(op.key) or {}, status=status, detail=detail,
                        expected=_jd(op.after if kind == "insert" else op.before),
                        current=_jd(current), changes=changes or [])
            out.append(o)
            return o

        # 1. references
        resolved = self._resolve([r for op in run.ops for r in op.refs()])
        ready: list[Op] = []
        for op in run.ops:
            bad = [resolved[r] for r in op.refs() if isinstance(resolved[r], _Missing | _Ambiguous)]
            if bad:
                b0 = bad[0]
                if isinstance(b0, _Missing):
                    outcome(op, REF_MISSING, f"referenced row missing: no {b0.ref.describe()}")
                else:
                    outcome(op, CONFLICT, f"reference is ambiguous: {b0.n} rows match "
                                          f"{b0.ref.describe()}")
                continue
            ready.append(_substitute(op, resolved) if op.refs() else op)

        # dry run: an operation keyed by a row the plan would insert earlier
        sql_ops: list[Op] = []
        for op in ready:
            pend = [v for v in op.key.values() if isinstance(v, Pending)]
            if pend:
                outcome(op, APPLIED, f"on the row inserted earlier by seq {pend[0].seq}",
                        changes=self._changes(op, None))
                if kind == "insert":
                    self.overlay.add_insert(table, op.seq, op.after or {})
            else:
                sql_ops.append(op)

        # 2. two operations of the run on the same row: the later one is a conflict
        first: dict[tuple, int] = {}
        uniq: list[Op] = []
        for op in sql_ops:
            k = _key_text(op.key, run.key_cols)
            if k in first:
                outcome(op, CONFLICT, f"operation seq {first[k]} of this plan targets the same "
                                      "row (after resolving references)")
                continue
            first[k] = op.seq
            uniq.append(op)
        if not uniq:
            return out, []

        # 2b. rows a targeted sync wrote after this plan's snapshot: its value is newer
        if self.superseded_after is not None:
            synced = self._synced(table)
            keep = []
            for op in uniq:
                hit = synced.get(json.dumps(_jd(op.key), sort_keys=True))
                if hit is None:
                    keep.append(op)
                    continue
                outcome(op, SUPERSEDED, f"superseded by sync {hit[0]}: it wrote this row at "
                        f"{hit[1]:%Y-%m-%d %H:%M:%S}Z, after this plan's snapshot was taken")
            uniq = keep
            if not uniq:
                return out, []

        # 3. temp table + classification
        tmp = sess.temp_name("op")
        bcols = [c for c in cols if any(c in (op.before or {}) for op in uniq)]
        acols = [c for c in cols if any(c in (op.after or {}) for op in uniq)]
        tcols: list[tuple[str, str]] = [("seq", "BIGINT")]
        tcols += [(f"k_{c}", types[c]) for c in run.key_cols]
        if kind in ("update", "delete"):
            for c in bcols:
                tcols += [(f"b_{c}", types[c]), (f"bx_{c}", "BOOLEAN")]
        if kind == "update":
            for c in acols:
                tcols += [(f"a_{c}", types[c]), (f"ax_{c}", "BOOLEAN")]
        if kind == "insert":
            tcols += [(f"a_{c}", types[c]) for c in acols]
        tcols.append(("go", "BOOLEAN"))
        rows = []
        for op in uniq:
            r: list[str | None] = [str(op.seq)] + [to_text(op.key[c]) for c in run.key_cols]
            # b_/a_: the value; bx_/ax_: whether this operation checks/sets the column
            # (a dry run's placeholder for a not-yet-inserted id is neither)
            for part, pcols in (((op.before or {}), bcols if kind != "insert" else []),
                                ((op.after or {}), acols if kind == "update" else [])):
                for c in pcols:
                    has = c in part and not isinstance(part[c], Pending)
                    r += [to_text(part[c]) if has else None, "true" if has else "false"]
            if kind == "insert":
                r += [None if isinstance(v := (op.after or {}).get(c), Pending) else to_text(v)
                      for c in acols]
            r.append("false")
            rows.append(tuple(r))
        sess.load_temp(tmp, tcols, rows)
        try:
            return out, self._classify_and_write(run, uniq, tmp, cols, types, pk, bcols, acols,
                                                 batch, now, outcome)
        finally:
            sess.drop_temp(tmp)

    def _classify_and_write(self, run: _Run, ops: list[Op], tmp: str, cols: list[str],
                            types: dict[str, str], pk: str, bcols: list[str],
                            acols: list[str], batch: int, now: Any,
                            outcome: Callable[..., Outcome]) -> list[tuple]:
        sess, table, kind = self.sess, run.table, run.op
        sel = ", ".join(f"cur.{c}" for c in cols)
        on = " AND ".join(f"cur.{c} = x.k_{c}" for c in run.key_cols)
        lock = sess.dialect.row_lock_clause("cur") if not self.dry_run and kind != "insert" \
            else ""
        found: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for r in sess.rows(f"SELECT x.seq, {sel} FROM {tmp} x JOIN {table} cur ON {on}{lock}"):
            found[r[0]].append(dict(zip(cols, r[1:], strict=True)))

        go: list[tuple[Op, dict[str, Any] | None]] = []
        conflicts: list[tuple[Op, str, dict[str, Any] | None]] = []
        deleted = self.overlay.deleted.get(table, set()) if self.dry_run else set()
        for op in ops:
            matches = found.get(op.seq, [])
            if deleted:
                matches = [m for m in matches if to_text(m[pk]) not in deleted]
            if self.dry_run and self.overlay.updated.get(table):
                upd = self.overlay.updated[table]
                matches = [{**m, **upd.get(to_text(m[pk]), {})} for m in matches]
            if self.dry_run and not matches and kind != "insert":
                hits = self.overlay.find(table, tuple(sorted(op.key.items())))
                if hits:  # a row this plan inserts earlier
                    seq, row = hits[0]
                    outcome(op, APPLIED, f"on the row inserted earlier by seq {seq}",
                            changes=self._changes(op, row))
                    if kind == "update":
                        row.update(op.after or {})
                    continue
            status, detail, current = _classify(op, matches, self.later.get(op.seq))
            if status == APPLIED:
                go.append((op, current))
            elif status == CONFLICT:
                conflicts.append((op, detail, current))
            else:
                outcome(op, status, detail, current=current)
        # a row recon itself wrote (this plan's earlier apply, a newer apply or a sync) is
        # no conflict: "already applied" or "superseded by apply|sync X"
        for (op, _, current), (status, why) in zip(
                conflicts, self._explain_conflicts(table, conflicts), strict=True):
            outcome(op, status, why, current=current)
        if not go:
            return []

        if self.dry_run:
            for op, current in go:
                outcome(op, APPLIED, changes=self._changes(op, current))
                if kind == "insert":
                    self.overlay.add_insert(table, op.seq, op.after or {})
                elif kind == "delete" and current is not None:
                    self.overlay.deleted[table].add(to_text(current[pk]))
                elif kind == "update" and current is not None:
                    self.overlay.updated[table].setdefault(to_text(current[pk]), {}).update(
                        op.after or {})
            return []

        sess.run(f"UPDATE {tmp} SET go = true WHERE seq IN "
                 f"({', '.join(str(op.seq) for op, _ in go)})")
        ret = ", ".join(cols)
        if kind == "update":
            sets = ", ".join(f"{c} = CASE WHEN x.ax_{c} THEN x.a_{c} ELSE cur.{c} END"
                             for c in acols)
            sql = (f"UPDATE {table} AS cur SET {sets} FROM {tmp} x WHERE x.go AND {on}"
                   f"{_before_preds(bcols)} RETURNING {sel}")
        elif kind == "delete":
            sql = (f"DELETE FROM {table} AS cur USING {tmp} x WHERE x.go AND {on}"
                   f"{_before_preds(bcols)} RETURNING {sel}")
        else:
            gen = generated_pk(table)
            ins, exprs, src = list(acols), [f"x.a_{c}" for c in acols], f"{tmp} x"
            if gen and gen not in acols and sess.dialect.identity_clause is None:
                # no identity (DuckDB): the ids are max(id)+n
                ins.append(gen)
                exprs.append("m.base + row_number() OVER (ORDER BY x.seq)")
                src += f" CROSS JOIN (SELECT COALESCE(max({gen}), 0) AS base FROM {table}) m"
            sql = (f"INSERT INTO {table} ({', '.join(ins)}) SELECT {', '.join(exprs)} "
                   f"FROM {src} WHERE x.go AND NOT EXISTS (SELECT 1 FROM {table} cur "
                   f"WHERE {on}) ON CONFLICT DO NOTHING RETURNING {ret}")
        written = {}
        for r in sess.rows(sql):
            row = dict(zip(cols, r, strict=True))
            written[_key_text(row, run.key_cols)] = row

        audit: list[tuple] = []
        for op, current in go:
            row = written.get(_key_text(op.key, run.key_cols))
            if row is None:
                outcome(op, CONFLICT, "not inserted: an existing row has the same value in a "
                        "unique column (or a session inserted it meanwhile)" if kind == "insert"
                        else "the row changed in another session while this batch was being "
                        "applied", current=current)
                continue
            before_img = None if kind == "insert" else current
            after_img = None if kind == "delete" else row
            outcome(op, APPLIED, changes=self._changes(op, current, row))
            audit.append((self.apply_id, op.seq, batch, table, kind,
                          json.dumps(_jd(op.key), sort_keys=True),
                          None if before_img is None else json.dumps(_jd(before_img)),
                          None if after_img is None else json.dumps(_jd(after_img)), now))
        return audit

    def _writes(self, table: str, keys: list[str]) -> dict[str, list[tuple]]:
        """Audit key → recon's recorded writes of that row of ``table``, oldest first:
        (apply id, applied at, kind, plan id, run id). Committed applies only (a dry run's
        own writes are never recorded; this apply's are excluded by id)."""
        from repair.audit import APPLIES, AUDIT

        p = self.sess.ph
        out: dict[str, list[tuple]] = defaultdict(list)
        for i in range(0, len(keys), 500):
            part = keys[i:i + 500]
            for k, *rest in self.sess.rows(
                    f"SELECT a.key, a.apply_id, a.applied_at, ap.kind, ap.plan_id, ap.run_id "
                    f"FROM {AUDIT} a JOIN {APPLIES} ap ON ap.apply_id = a.apply_id "
                    f"WHERE a.table_name = {p} AND a.key IN ({', '.join([p] * len(part))}) "
                    "ORDER BY a.applied_at, a.apply_id", [table, *part]):
                if rest[0] != self.apply_id:
                    out[str(k)].append(tuple(rest))
        return out

    def _explain_conflicts(self, table: str, conflicts: list[tuple[Op, str, Any]]
                           ) -> list[tuple[str, str]]:
        """(status, detail) of operations whose row is not as the plan expected, from the
        audit of recon's own writes of those rows:

        * a later apply (of another plan) or a sync overwrote the row after this plan's own
          apply wrote it, or — never applied — after this plan's snapshot, with values at
          least as new (its snapshot, or the sync's read, is newer): ``superseded`` by it;
        * a recorded apply of this plan wrote the row (changed since outside recon):
          ``already applied``;
        * otherwise (no write of recon's explains it, or a revert undid it) a conflict."""
        if not conflicts or self.plan_id is None:
            return [(CONFLICT, d) for _, d, _ in conflicts]
        # the audit names a row by the key its operation used: the plan's (natural) key, or
        # the primary key (a revert's operations, a delete's)
        pk = primary_key(table)
        keys = [{json.dumps(_jd(op.key), sort_keys=True)}
                | ({json.dumps(_jd({pk: cur[pk]}), sort_keys=True)}
                   if cur is not None and cur.get(pk) is not None else set())
                for op, _, cur in conflicts]
        writes = self._writes(table, sorted(set().union(*keys)))
        out: list[tuple[str, str]] = []
        for (_op, detail, _), ks in zip(conflicts, keys, strict=True):
            hist = sorted((w for k in ks for w in writes.get(k, [])),
                          key=lambda w: (w[1], w[0]))
            # this plan's writes of the row (a revert of its apply carries its plan id): they
            # count only while the latest of them is an apply, not undone by a revert
            ours = [w for w in hist if w[3] == self.plan_id]
            mine = ours if ours and ours[-1][2] == "apply" else []
            last = hist[-1] if hist else None
            if last is not None and last[2] == "apply" and last[3] != self.plan_id and (
                    mine or self._newer(last)):
                sync = str(last[4] or "").startswith("sync-")
                who = f"sync {last[4]}" if sync else f"apply {last[0]} (plan {last[3]})"
                out.append((SUPERSEDED, f"superseded by {who}: it wrote this row at "
                            f"{last[1]:%Y-%m-%d %H:%M:%S}Z"
                            + (", after this plan's own apply" if mine else
                               ", from newer data than this plan's snapshot")))
            elif mine and last is mine[-1]:
                out.append((ALREADY, f"already applied by {last[0]} of this plan at "
                            f"{last[1]:%Y-%m-%d %H:%M:%S}Z (the row changed since, "
                            "outside recon)"))
            elif ours and not mine:
                out.append((CONFLICT, f"{detail} (this plan's apply was reverted by "
                            f"{ours[-1][0]})"))
            else:
                out.append((CONFLICT, detail))
        return out

    def _newer(self, write: tuple) -> bool:
        """Whether another plan's apply (or a sync) wrote values newer than this plan's: the
        sync read Zuora after this plan's snapshot, or the apply's snapshot is newer."""
        if self.superseded_after is None:
            return False
        run_id = str(write[4] or "")
        if run_id.startswith("sync-"):
            return write[1] > self.superseded_after
        t = self.as_of(run_id) if self.as_of and run_id else None
        return t is not None and t > self.superseded_after

    def _synced(self, table: str) -> dict[str, tuple[str, dt.datetime]]:
        """Audit key → (sync id, when) of the rows of ``table`` that a targeted sync's apply
        wrote after :attr:`superseded_after`: read in the batch's own transaction, so a sync
        that committed before it is seen (and one cannot commit during it: the repair
        lock)."""
        from repair.audit import APPLIES, AUDIT

        p = self.sess.ph
        rows = self.sess.rows(
            f"SELECT a.key, ap.run_id, a.applied_at FROM {AUDIT} a JOIN {APPLIES} ap ON "
            f"ap.apply_id = a.apply_id WHERE a.table_name = {p} AND a.applied_at > {p} AND "
            f"ap.kind = 'apply' AND ap.run_id LIKE {p} ORDER BY a.applied_at",
            [table, self.superseded_after, "sync-%"])
        return {str(k): (str(r), t) for k, r, t in rows}

    @staticmethod
    def _changes(op: Op, current: dict[str, Any] | None,
                 written: dict[str, Any] | None = None) -> list[tuple[str, Any, Any]]:
        if op.op == "insert":
            row = written or op.after or {}
            return [(c, None, _jv(v)) for c, v in row.items() if c in (op.after or {}) or
                    (written is not None and v is not None)]
        if op.op == "delete":
            row = current or op.before or {}
            return [(c, _jv(v), None) for c, v in row.items()]
        cur = current or {}
        return [(c, _jv(cur.get(c, (op.before or {}).get(c))), _jv(v))
                for c, v in (op.after or {}).items()
                if not _same(cur.get(c, (op.before or {}).get(c)), v)]

    # -- references ------------------------------------------------------------------------
    def _resolve(self, refs: list[Ref]) -> dict[Ref, Any]:
        out: dict[Ref, Any] = {}
        groups: dict[tuple, set[tuple]] = defaultdict(set)
        for r in refs:
            groups[(r.table, tuple(c for c, _ in r.match), r.column)].add(
                tuple(v for _, v in r.match))
        for (table, mcols, column), tuples in groups.items():
            types = column_types(table)
            items = list(tuples)
            name = self.sess.temp_name("ref")
            self.sess.load_temp(
                name, [("i", "BIGINT")] + [(f"m_{c}", types[c]) for c in mcols],
                [(str(i), *(to_text(v) for v in t)) for i, t in enumerate(items)])
            try:
                on = " AND ".join(f"cur.{c} = x.m_{c}" for c in mcols)
                hits: dict[int, list[Any]] = defaultdict(list)
                for i, v in self.sess.rows(
                        f"SELECT x.i, cur.{column} FROM {name} x JOIN {table} cur ON {on}"):
                    hits[i].append(v)
            finally:
                self.sess.drop_temp(name)
            for i, t in enumerate(items):
                ref = Ref(table=table, match=tuple(zip(mcols, t, strict=True)), column=column)
                vals = hits.get(i, [])
                if not vals and self.dry_run:
                    vals = self.overlay.lookup(ref)
                if len(vals) == 1:
                    out[ref] = vals[0]
                elif vals:
                    out[ref] = _Ambiguous(ref, len(vals))
                else:
                    out[ref] = _Missing(ref)
        return out


def _before_preds(bcols: list[str]) -> str:
    return "".join(f" AND (NOT x.bx_{c} OR cur.{c} IS NOT DISTINCT FROM x.b_{c})" for c in bcols)


def _substitute(op: Op, values: dict[Ref, Any]) -> Op:
    def sub(d: dict[str, Any] | None) -> dict[str, Any] | None:
        if d is None:
            return None
        return {c: values[v] if isinstance(v, Ref) else v for c, v in d.items()}

    return dataclasses.replace(op, key=sub(op.key), before=sub(op.before), after=sub(op.after))


def _diff(row: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    return [f"{c}: expected {_jv(v)!r}, found {_jv(row.get(c))!r}"
            for c, v in expected.items() if _same(row.get(c), v) is False]


def _matches_final(row: dict[str, Any], op: Op, later: dict[str, Any] | None) -> bool:
    """The row is what this operation and the plan's later operations on the same row leave
    (their reference values cannot be known yet and are not compared)."""
    if not later:
        return False
    final = {**(op.after or {}), **later}
    return all(_same(row.get(c), v) is not False for c, v in final.items()
               if not isinstance(v, Ref))


def _classify(op: Op, matches: list[dict[str, Any]], later: dict[str, Any] | None = None
              ) -> tuple[str, str, dict[str, Any] | None]:
    """(status, detail, current row) of one operation against the rows its key matches.

    ``later``: the values later operations of the plan set on the same row (same table and
    key); a re-run finds the row as those left it, which is "already applied", not a
    conflict."""
    after_later = "already applied (and changed by a later operation of this plan)"
    if op.op == "insert":
        after = op.after or {}
        if not matches:
            return APPLIED, "", None
        for m in matches:
            if all(_same(m.get(c), v) is not False for c, v in after.items()):
                return ALREADY, "an identical row exists", m
        for m in matches:
            if _matches_final(m, op, later):
                return ALREADY, after_later, m
        m = matches[0]
        return CONFLICT, ("a different row with this key exists: "
                          + "; ".join(_diff(m, after)[:5])), m
    if len(matches) > 1:
        return CONFLICT, f"the key matches {len(matches)} rows; refusing to guess", None
    if not matches:
        if op.op == "delete":
            return ALREADY, "the row is already absent", None
        return CONFLICT, "the row does not exist (deleted since the plan was made?)", None
    m = matches[0]
    before = op.before or {}
    if op.op == "update":
        after = op.after or {}
        if all(_same(m.get(c), v) is True for c, v in after.items()):
            return ALREADY, "the row already has the after values", m
    bad = _diff(m, before)
    if not bad:
        return APPLIED, "", m
    if _matches_final(m, op, later):  # e.g. deleted, then re-inserted by a later operation
        return ALREADY, after_later, m
    return CONFLICT, "the row changed since the plan was made: " + "; ".join(bad[:5]), m


def later_values(ops: list[Op]) -> dict[int, dict[str, Any]]:
    """For each operation, the column values that later operations of the plan (inserts and
    updates with the same table and literal key) set on its row, the latest winning."""
    chains: dict[tuple, list[Op]] = defaultdict(list)
    for op in sorted(ops, key=lambda o: o.seq):
        lit = _literal_key(op)
        if lit is not None:
            chains[(op.table, lit)].append(op)
    out: dict[int, dict[str, Any]] = {}
    for chain in chains.values():
        if len(chain) < 2:
            continue
        acc: dict[str, Any] = {}
        for op in reversed(chain):
            if acc:
                out[op.seq] = dict(acc)
            if op.op != "delete":
                acc = {**(op.after or {}), **acc}
    return out

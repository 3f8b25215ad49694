"""The repair plan: the typed model the planner (:mod:`repair.planner`) builds and apply,
dry run and the report read, its one writer (:func:`write_plan`) and its one reader
(:func:`read_plan`), and the codec for its values.

A later format changes only that pair: the writer writes the current ``SCHEMA_VERSION``; the
reader reads every version recon ever wrote (older documents are upgraded step by step,
:data:`_UPGRADES`) and refuses any other by name (:class:`UnknownPlanVersion`). Reading is not
applying: :func:`load_plan` (apply, dry run) also refuses a version 1 plan, which names no
target database.

A plan is validated completely before anything touches a database: every problem raises
:class:`PlanFormatError`, which names the operation (``seq``) and what is wrong with it, so the
planner's author can find the bug from the message alone. Validation also casts every value
to the Python type of its column (``core.localdb.schema.table_columns``), so the executor
compares exactly what the database holds: a ``DECIMAL(18,2)`` ``"10.50"`` equals ``10.5``.

Version 3 (what :func:`write_plan` writes) is *chunked and columnar*: the JSON file is the
summary — every top-level field below but ``operations`` — plus ``chunks``, and the
operations are Parquet files beside it, ``<plan stem>.ops/chunk-NNNNN.parquet``, one row per
operation (columns :data:`OPS_SCHEMA`; ``key``/``before``/``after`` as the JSON text of the
same objects), each chunk whole groups (a group never spans two chunks)::

    "chunks": [{"file": "chunk-00001.parquet", "operations": int, "sha256": str,
                "label": str}, ...]

so a plan's size on disk and the memory of whoever writes or applies it grow with a chunk,
not with the tenant: :func:`open_plan` reads only the summary and :func:`iter_chunks` yields
one chunk's operations at a time (``repair apply`` streams them); :func:`read_plan` still
reads a whole plan into memory (the report, tests). A chunk file whose sha256 is not the
summary's is refused by name.

Layout of versions 2 and 1 (one JSON document; version 1 was the same without
``local_identity``); version 3's summary has the same fields::

    {"schema_version": 2, "plan_id": str, "run_id": str, "created_at": "2026-11-23T01:00:00Z",
     "snapshot_complete": bool, "validation": "passed"|"failed"|"not_run",
     "local_database": str (informational),
     "local_identity": {"uuid", "dialect", "database", "system_identifier" | "path"} | null
         (the target database, copied from the snapshot; null: its database was unstamped),
     "only": str | null (informational),
     "operations": [Op, ...],
     "needs_a_person": [...], "not_planned": [...] (informational),
     "summary": {...} (informational: derived from the operations, ignored when read)}

    Op = {"seq": int, "step": str, "group": str, "table": str, "op": "insert"|"update"|"delete",
          "key": {col: value}, "before": {col: value}|null, "after": {col: value}|null,
          "reason": str, "findings": [str, ...]}

Values are JSON null, bool, int or str (dates ``YYYY-MM-DD``, timestamps
``YYYY-MM-DDTHH:MM:SS[.ffffff]`` naive UTC, decimals as strings), or a reference resolved at
apply time: ``{"$ref": {"table": t, "match": {col: value}, "column": c}}``.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, get_args

import polars as pl

from core.catalog import BY_TABLE, LOCAL_BY_NAME
from core.errors import ReconError
from core.localdb import schema
from core.localdb.identity import DatabaseIdentity

# the format write_plan writes (3: operations as Parquet chunks beside a JSON summary; 2: the
# target's identity, copied from the snapshot, in "local_identity"); read_plan also reads
# every older one (READABLE_VERSIONS)
SCHEMA_VERSION = 3
# the oldest version apply accepts: version 1 names no target database
APPLICABLE_FROM = 2
# operations per chunk file write_plan cuts (whole groups; a larger group is a chunk of its own)
CHUNK_OPERATIONS = 50_000
# one Parquet row per operation (a chunk file's columns, in this order)
OPS_SCHEMA: dict[str, Any] = {
    "seq": pl.Int64, "step": pl.String, "group": pl.String, "table": pl.String,
    "op": pl.String, "key": pl.String, "before": pl.String, "after": pl.String,
    "reason": pl.String, "findings": pl.List(pl.String)}
# the plan's steps, in the order the planner emits and the executor applies them
Step = Literal["catalog", "accounts", "contacts", "subscriptions", "references", "orders"]
OpKind = Literal["insert", "update", "delete"]
Validation = Literal["passed", "failed", "not_run"]
STEPS: tuple[str, ...] = get_args(Step)
OP_KINDS: tuple[str, ...] = get_args(OpKind)
VALIDATIONS: tuple[str, ...] = get_args(Validation)
_OP_FIELDS = {"seq", "step", "group", "table", "op", "key", "before", "after", "reason",
              "findings"}
_INT_RANGE = {"SMALLINT": 2**15, "INTEGER": 2**31, "INT": 2**31, "BIGINT": 2**63}
_TYPE = re.compile(r"^\s*([A-Za-z ]+?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")


class PlanFormatError(ReconError):
    """The plan file is not a valid repair plan. ``seq`` names the operation (None: the file
    itself or a top-level field) and ``problem`` says what is wrong."""

    def __init__(self, problem: str, seq: int | None = None, path: str | Path | None = None,
                 where: str = "") -> None:
        self.problem, self.seq, self.path = problem, seq, path
        head = f"repair plan {path}" if path else "repair plan"
        if seq is not None:
            head += f", operation seq {seq}{f' ({where})' if where else ''}"
        super().__init__(f"{head}: {problem}")


class UnknownPlanVersion(PlanFormatError):
    """The plan's ``schema_version`` is none this recon ever wrote (a newer recon's plan, or
    not a plan at all); ``version`` is what the file says."""

    def __init__(self, version: Any, path: Path | None = None) -> None:
        self.version = version
        known = ", ".join(str(v) for v in READABLE_VERSIONS)
        super().__init__(f"schema_version is {version!r}, a plan format this recon does not "
                         f"know (it reads versions {known}); re-create the plan with this "
                         "recon", path=path)


# -- values ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ref:
    """``{"$ref": ...}``: ``column`` of the unique row of ``table`` matching ``match``."""

    table: str
    match: tuple[tuple[str, Any], ...]  # (column, typed value), sorted by column
    column: str

    def describe(self) -> str:
        cond = ", ".join(f"{c}={to_json(v)!r}" for c, v in self.match)
        return f"{self.table}.{self.column} where {cond}"

    def to_json(self) -> dict[str, Any]:
        return {"$ref": {"table": self.table, "match": {c: to_json(v) for c, v in self.match},
                         "column": self.column}}


@functools.lru_cache(maxsize=256)
def parse_type(local_type: str) -> tuple[str, int | None, int | None]:
    """``DECIMAL(18,2)`` → ``("DECIMAL", 18, 2)``; ``VARCHAR(64)`` → ``("VARCHAR", 64, None)``."""
    m = _TYPE.match(local_type)
    if not m:
        return local_type.upper(), None, None
    base = " ".join(m.group(1).upper().split())
    return (base, int(m.group(2)) if m.group(2) else None,
            int(m.group(3)) if m.group(3) else None)


def decode(value: Any, local_type: str) -> Any:
    """A JSON value → the Python value the database returns for ``local_type``.

    Raises ``ValueError`` with a short description of the problem."""
    if value is None:
        return None
    base, n, scale = parse_type(local_type)
    if isinstance(value, float):
        raise ValueError(f"{value!r} is a JSON float; write decimals as strings (\"10.50\")")
    if base in ("VARCHAR", "TEXT", "CHAR", "CHARACTER VARYING"):
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string ({local_type})")
        if n is not None and len(value) > n:
            raise ValueError(f"{len(value)} characters do not fit {local_type}")
        return value
    if base == "BOOLEAN":
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not true/false ({local_type})")
        return value
    if base in _INT_RANGE:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{value!r} is not an integer ({local_type})")
        lim = _INT_RANGE[base]
        if not -lim <= value < lim:
            raise ValueError(f"{value} is out of range for {local_type}")
        return value
    if base in ("DECIMAL", "NUMERIC"):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(f"{value!r} is not a decimal string ({local_type})")
        try:
            d = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number ({local_type})") from None
        if not d.is_finite():
            raise ValueError(f"{value!r} is not a finite number ({local_type})")
        if scale is not None:
            q = d.quantize(Decimal(1).scaleb(-scale))
            if q != d:
                raise ValueError(f"{value!r} has more than {scale} decimal places ({local_type})")
            d = q
        if n is not None and len(d.as_tuple().digits) > n:
            raise ValueError(f"{value!r} does not fit {local_type}")
        return d
    if base == "DATE":
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(f"{value!r} is not a date YYYY-MM-DD")
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a valid date") from None
    if base in ("TIMESTAMP", "DATETIME"):
        if not isinstance(value, str) or not re.match(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", value):
            raise ValueError(f"{value!r} is not a timestamp YYYY-MM-DDTHH:MM:SS[.ffffff]")
        try:
            t = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a valid timestamp") from None
        if t.tzinfo is not None:  # stored naive UTC
            t = t.astimezone(dt.UTC).replace(tzinfo=None)
        return t
    if not isinstance(value, (str, int, bool)):
        raise ValueError(f"{value!r} is not a JSON scalar")
    return value


def to_json(value: Any) -> Any:
    """A database/Python value → the plan's JSON encoding (inverse of :func:`decode`)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat() if value.tzinfo is None else \
            value.astimezone(dt.UTC).replace(tzinfo=None).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Ref):
        return value.to_json()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def to_text(value: Any) -> str | None:
    """A typed value → the text both PostgreSQL (COPY) and DuckDB (CAST) parse back exactly."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


@functools.lru_cache(maxsize=64)
def columns_of(table: str) -> dict[str, Any]:
    """``{column: catalogue Column}`` of a local table, in DDL order (cached; do not mutate)."""
    return {c.name: c for c in schema.table_columns(table)}


@functools.lru_cache(maxsize=64)
def column_types(table: str) -> dict[str, str]:
    """``{column: local_type}`` of a local table, in DDL order (cached; do not mutate)."""
    return {c.name: c.local_type for c in schema.table_columns(table)}


@functools.lru_cache(maxsize=1)
def local_tables() -> tuple[str, ...]:
    return tuple(schema.all_tables())


@functools.lru_cache(maxsize=64)
def primary_key(table: str) -> str:
    if table in BY_TABLE:
        return BY_TABLE[table].local_pk
    return LOCAL_BY_NAME[table].pk


@functools.lru_cache(maxsize=64)
def generated_pk(table: str) -> str | None:
    """The surrogate ``id`` an insert may omit (BIGINT primary key), else None."""
    pk = primary_key(table)
    return pk if column_types(table).get(pk) == "BIGINT" else None


# -- the plan --------------------------------------------------------------------------------
@dataclass
class Op:
    """One operation on one row of the local database."""

    seq: int
    step: Step
    group: str
    table: str
    op: OpKind
    key: dict[str, Any]  # typed values or Ref
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str = ""
    findings: list[str] = field(default_factory=list)
    _refs: list[Ref] | None = field(default=None, init=False, repr=False, compare=False)

    def refs(self) -> list[Ref]:
        """The references in key, before and after (computed once; values are not mutated)."""
        if self._refs is None:
            out = []
            for part in (self.key, self.before or {}, self.after or {}):
                out += [v for v in part.values() if isinstance(v, Ref)]
            self._refs = out
        return self._refs

    def describe(self) -> str:
        return f"{self.op} {self.table}"


@dataclass(frozen=True)
class PersonFinding:
    """A ``human`` finding: listed for a person, never an operation (informational)."""

    object: str | None
    key: str | None
    kind: str | None
    rule: str | None
    field: str | None
    severity: str | None
    explanation: str | None
    subscription_name: str | None
    account_id: str | None
    fingerprint: str | None


@dataclass(frozen=True)
class UnplannedFinding:
    """An ``auto`` finding no operation covers (informational)."""

    object: str | None
    key: str | None
    kind: str | None
    rule: str | None
    field: str | None
    explanation: str | None


@dataclass(frozen=True)
class Sample:
    """One operation as the summary shows it: its values in the plan's JSON encoding."""

    key: dict[str, Any]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str


@dataclass(frozen=True)
class Summary:
    """What a reviewer reads first; derived from the operations, never stored apart from them
    (the file's ``summary`` is written from this and ignored when read)."""

    operations: int
    groups: int
    by_step_table: dict[str, dict[str, int]]  # "step/table" -> {op: count}, in plan order
    samples: dict[str, list[Sample]]  # "table.op" -> up to 3
    needs_a_person: dict[str, int]  # rule (or kind) -> findings
    not_planned: int


@dataclass(frozen=True)
class PlanChunk:
    """One Parquet file of a version 3 plan's operations (``file`` relative to the plan's
    ``<stem>.ops`` directory)."""

    file: str
    operations: int
    sha256: str
    label: str = ""  # what the chunk holds, e.g. "accounts A0001…A0100" (informational)


@dataclass
class Plan:
    """A repair plan: what the planner (:mod:`repair.planner`) built and apply, dry run and
    the report read back. ``schema_version`` is the format it was read from (a new plan: the
    current one); every plan is written in the current format."""

    schema_version: int
    plan_id: str
    run_id: str
    created_at: dt.datetime  # aware UTC, whole seconds (the file's resolution)
    snapshot_complete: bool
    validation: Validation
    local_database: str | None  # informational (redacted URL)
    local_identity: DatabaseIdentity | None  # the only database it may be applied to
    operations: list[Op]  # ascending seq
    only: str | None = None  # `recon repair plan --only`
    needs_a_person: list[PersonFinding] = field(default_factory=list)
    not_planned: list[UnplannedFinding] = field(default_factory=list)
    path: Path | None = field(default=None, compare=False)  # the file it was read from
    # version 3 as read by open_plan: its chunk files (operations not loaded: iter_chunks);
    # None: every operation is in ``operations``
    chunks: list[PlanChunk] | None = field(default=None, compare=False)

    @property
    def summary(self) -> Summary:
        return summarize(self)

    @property
    def streamed(self) -> bool:
        """Whether the operations are in chunk files not loaded yet (:func:`iter_chunks`)."""
        return self.chunks is not None and not self.operations


def encode(value: Any) -> Any:
    """A typed plan value → its JSON in a plan file. Like :func:`to_json`, but a timestamp
    always carries its microseconds (``YYYY-MM-DDTHH:MM:SS.ffffff``), the form the planner's
    SQL writes (``repair.sql.jv``), so a plan built, written and read back is the same file."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    return to_json(value)


def _enc(values: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if values is None else {c: encode(v) for c, v in values.items()}


def op_to_json(op: Op) -> dict[str, Any]:
    """An operation as its plan JSON (the writer's; also for tests that write plans)."""
    return {"seq": op.seq, "step": op.step, "group": op.group, "table": op.table, "op": op.op,
            "key": _enc(op.key), "before": _enc(op.before), "after": _enc(op.after),
            "reason": op.reason, "findings": list(op.findings)}


def summarize(plan: Plan) -> Summary:
    """Counts per step/table and op, up to three samples per table and op, the needs-a-person
    counts by rule."""
    counts: dict[str, dict[str, int]] = {}
    samples: dict[str, list[Sample]] = {}
    for op in plan.operations:
        t = f"{op.step}/{op.table}"
        counts.setdefault(t, {}).setdefault(op.op, 0)
        counts[t][op.op] += 1
        s = samples.setdefault(f"{op.table}.{op.op}", [])
        if len(s) < 3:
            s.append(Sample(key=_enc(op.key) or {}, before=_enc(op.before),
                            after=_enc(op.after), reason=op.reason))
    people: dict[str, int] = {}
    for f in plan.needs_a_person:
        k = f.rule or f.kind or ""
        people[k] = people.get(k, 0) + 1
    return Summary(operations=len(plan.operations),
                   groups=len({op.group for op in plan.operations}), by_step_table=counts,
                   samples=samples, needs_a_person=people, not_planned=len(plan.not_planned))


def _created_text(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan_document(plan: Plan) -> dict[str, Any]:
    """The whole plan as one JSON document, its operations inline (what versions 1–2 wrote),
    e.g. for the report's JSON; :func:`write_plan` writes the same summary with the
    operations in chunk files instead."""
    s = plan.summary
    return {
        "schema_version": SCHEMA_VERSION,
        "plan_id": plan.plan_id,
        "run_id": plan.run_id,
        "created_at": _created_text(plan.created_at),
        "snapshot_complete": plan.snapshot_complete,
        "validation": plan.validation,
        "local_database": plan.local_database,
        "local_identity": plan.local_identity.as_dict() if plan.local_identity else None,
        "only": plan.only,
        "operations": [op_to_json(op) for op in plan.operations],
        "needs_a_person": [asdict(f) for f in plan.needs_a_person],
        "not_planned": [asdict(f) for f in plan.not_planned],
        "summary": {"operations": s.operations, "groups": s.groups,
                    "by_step_table": s.by_step_table,
                    "samples": {k: [asdict(x) for x in v] for k, v in s.samples.items()},
                    "needs_a_person": s.needs_a_person, "not_planned": s.not_planned},
    }


# -- operations as columns (version 3's chunk files) ----------------------------------------
def ops_to_frame(ops: list[Op]) -> pl.DataFrame:
    """Operations → chunk rows (:data:`OPS_SCHEMA`), values in the plan's JSON encoding."""
    def js(d: dict[str, Any] | None) -> str | None:
        return None if d is None else json.dumps(_enc(d), separators=(",", ":"))

    return pl.DataFrame(
        [(op.seq, op.step, op.group, op.table, op.op, js(op.key), js(op.before), js(op.after),
          op.reason, list(op.findings)) for op in ops], schema=OPS_SCHEMA, orient="row")


def ops_from_frame(frame: pl.DataFrame, path: Path | None = None) -> list[Op]:
    """Chunk rows → validated, typed operations (:func:`parse_op` on each; the first problem
    raises :class:`PlanFormatError` naming the operation)."""
    missing = [c for c in OPS_SCHEMA if c not in frame.columns]
    if missing:
        raise PlanFormatError(f"operations lack the column(s) {', '.join(missing)}", path=path)
    out = []
    for i, r in enumerate(frame.iter_rows(named=True)):
        doc = {"seq": r["seq"], "step": r["step"], "group": r["group"], "table": r["table"],
               "op": r["op"], "reason": r["reason"] or "", "findings": list(r["findings"] or [])}
        for part in ("key", "before", "after"):
            try:
                doc[part] = json.loads(r[part]) if r[part] is not None else None
            except json.JSONDecodeError as e:
                raise PlanFormatError(f"operations[{i}].{part} is not valid JSON: {e}",
                                      seq=r["seq"], path=path) from None
        out.append(_parse_op(doc, i, path))
    return out


def pack_groups(ops: list[Op], size: int) -> list[list[Op]]:
    """Whole groups, in order of their first operation, up to ``size`` operations per pack (a
    larger group is a pack of its own); each pack in ascending seq. The executor's batches
    and version 3's chunk files are cut alike, so a streamed apply runs the groups in the
    order a whole-plan apply does."""
    groups: dict[str, list[Op]] = {}
    for op in sorted(ops, key=lambda o: o.seq):
        groups.setdefault(op.group, []).append(op)
    packs: list[list[Op]] = []
    cur: list[Op] = []
    for g in groups.values():
        if cur and len(cur) + len(g) > size:
            packs.append(cur)
            cur = []
        cur.extend(g)
    if cur:
        packs.append(cur)
    return [sorted(b, key=lambda o: o.seq) for b in packs]


def ops_dir(path: Path) -> Path:
    """Where a version 3 plan ``path`` keeps its chunk files: ``<stem>.ops`` beside it."""
    return path.with_name(path.stem + ".ops")


def write_chunk(frame: pl.DataFrame, path: Path, label: str = "") -> PlanChunk:
    """Write one chunk of operations (rows of :data:`OPS_SCHEMA`) as Parquet, aside then
    renamed; its :class:`PlanChunk` (the file's name, rows, sha256)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.select(list(OPS_SCHEMA)).cast(OPS_SCHEMA).write_parquet(
        tmp, compression="zstd", statistics=False)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    tmp.replace(path)
    return PlanChunk(file=path.name, operations=frame.height, sha256=digest, label=label)


def read_chunk(plan_path: Path, chunk: PlanChunk) -> list[Op]:
    """One chunk's operations, after checking its sha256 against the summary's."""
    path = ops_dir(plan_path) / chunk.file
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PlanFormatError(f"chunk file {path} cannot be read ({e.strerror})",
                              path=plan_path) from e
    if hashlib.sha256(data).hexdigest() != chunk.sha256:
        raise PlanFormatError(f"chunk file {path} does not have the sha256 the plan records "
                              "(changed or truncated since the plan was written); re-create "
                              "the plan", path=plan_path)
    import io

    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except Exception as e:  # noqa: BLE001 — any decoding error: not a chunk file
        raise PlanFormatError(f"chunk file {path} is not Parquet: {e}", path=plan_path) from e
    if frame.height != chunk.operations:
        raise PlanFormatError(f"chunk file {path} holds {frame.height} operations, the plan "
                              f"says {chunk.operations}", path=plan_path)
    return ops_from_frame(frame, plan_path)


def summary_document(plan: Plan, chunks: list[PlanChunk]) -> dict[str, Any]:
    """Version 3's JSON file: :func:`plan_document` without the operations, with ``chunks``."""
    doc = plan_document(plan)
    del doc["operations"]
    doc["chunks"] = [asdict(c) for c in chunks]
    return doc


def write_summary(path: Path, doc: dict[str, Any]) -> Path:
    """Write a plan's JSON document aside, then rename it (a reader never sees half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=False, default=str) + "\n")
    tmp.replace(path)
    return path


# -- the one writer and the one reader -------------------------------------------------------
def write_plan(plan: Plan, path: str | Path, chunk_operations: int = CHUNK_OPERATIONS) -> Path:
    """Write ``plan`` to ``path`` in the current format: the operations in chunk files of
    whole groups (up to ``chunk_operations`` each) under ``<stem>.ops/``, then the JSON
    summary naming them (renamed into place last: a reader never sees half a plan). Chunk
    files of an earlier plan at the same path are replaced."""
    path = Path(path)
    directory = ops_dir(path)
    if directory.is_dir():
        for old in directory.glob("chunk-*.parquet"):
            old.unlink()
    chunks = [write_chunk(ops_to_frame(ops), directory / f"chunk-{i:05d}.parquet")
              for i, ops in enumerate(pack_groups(plan.operations, chunk_operations), 1)]
    return write_summary(path, summary_document(plan, chunks))


def _read_doc(p: Path) -> Any:
    try:
        text = p.read_text()
    except OSError as e:
        raise PlanFormatError(f"cannot be read ({e.strerror})", path=p) from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise PlanFormatError(f"is not valid JSON: {e}", path=p) from e


def open_plan(path: str | Path) -> Plan:
    """A plan file of any readable version, without loading a version 3 plan's operations
    (``chunks`` names them; :func:`iter_chunks` yields them chunk by chunk). Versions 1–2
    hold their operations inline and are read whole."""
    p = Path(path)
    plan = parse_plan(_read_doc(p), path=p)
    plan.path = p
    return plan


def iter_chunks(plan: Plan) -> Iterator[list[Op]]:
    """A plan's operations one chunk at a time (version 3: each chunk file, checked; a plan
    whose operations are in memory: all of them at once)."""
    if not plan.streamed:
        yield plan.operations
        return
    assert plan.path is not None and plan.chunks is not None
    for chunk in plan.chunks:
        yield read_chunk(plan.path, chunk)


def verify_chunks(plan: Plan) -> None:
    """Check every chunk file of a streamed plan against the summary's sha256 (read in
    blocks: memory stays flat), so apply refuses a changed plan before writing anything."""
    if not plan.streamed:
        return
    assert plan.path is not None and plan.chunks is not None
    for chunk in plan.chunks:
        path = ops_dir(plan.path) / chunk.file
        digest = hashlib.sha256()
        try:
            with path.open("rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
        except OSError as e:
            raise PlanFormatError(f"chunk file {path} cannot be read ({e.strerror})",
                                  path=plan.path) from e
        if digest.hexdigest() != chunk.sha256:
            raise PlanFormatError(f"chunk file {path} does not have the sha256 the plan "
                                  "records (changed or truncated since the plan was written); "
                                  "re-create the plan", path=plan.path)


def chunk_columns(plan: Plan, columns: list[str]) -> Iterator[pl.DataFrame]:
    """Some columns of every operation, a chunk at a time, without decoding the values (e.g.
    ``table`` and ``op`` for the change-fraction guard)."""
    if not plan.streamed:
        yield pl.DataFrame([{c: getattr(op, c) for c in columns} for op in plan.operations],
                           schema={c: OPS_SCHEMA[c] for c in columns})
        return
    assert plan.path is not None and plan.chunks is not None
    for chunk in plan.chunks:
        yield pl.read_parquet(ops_dir(plan.path) / chunk.file, columns=columns)


def read_plan(path: str | Path) -> Plan:
    """Read and validate a plan file of any version this recon ever wrote (1, 2, 3), every
    operation in memory; an unknown version is refused by name (:class:`UnknownPlanVersion`).
    Reading is not applying: see :func:`load_plan` for what apply accepts."""
    plan = open_plan(path)
    if plan.streamed:
        ops = [op for chunk in iter_chunks(plan) for op in chunk]
        _unique_seqs(ops, plan.path)
        plan.operations = sorted(ops, key=lambda o: o.seq)
    return plan


def require_applicable(plan: Plan) -> Plan:
    """Refuse a plan apply must not take: version 1 names no target database, so it could be
    applied to the wrong one."""
    if plan.schema_version < APPLICABLE_FROM:
        raise PlanFormatError(
            f"plan {plan.plan_id!r} has schema_version {plan.schema_version}, an older format "
            f"without the identity of its target database; this recon applies only plans of "
            f"versions {', '.join(str(v) for v in READABLE_VERSIONS if v >= APPLICABLE_FROM)}, "
            "which cannot be applied to the wrong database. Re-create the plan with "
            "`recon repair plan`", path=plan.path)
    return plan


def load_plan(path: str | Path) -> Plan:
    """A plan file as apply takes it, every operation read: :func:`read_plan`, then
    :func:`require_applicable`. ``repair apply`` itself streams (:func:`open_plan`)."""
    return require_applicable(read_plan(path))


def _unique_seqs(ops: list[Op], path: Path | None) -> None:
    seen: set[int] = set()
    for op in ops:
        if op.seq in seen:
            raise PlanFormatError("seq is used by another operation; every seq must be unique",
                                  seq=op.seq, path=path)
        seen.add(op.seq)


def _v1_to_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 1 had no ``local_identity``: the target is unknown (null)."""
    return {**doc, "local_identity": None}


def _v2_to_v3(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 2 held its operations inline; read as a version 3 document with them in
    memory (no chunk files)."""
    return {**doc, "chunks": None}


# version -> the step that brings a document of that version to the next one; a new format
# adds its step here and changes only write_plan/parse_plan
_UPGRADES: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2,
                                                                     2: _v2_to_v3}
READABLE_VERSIONS = (*sorted(_UPGRADES), SCHEMA_VERSION)


def _created_at(value: Any, path: Path | None) -> dt.datetime:
    if not isinstance(value, str):
        raise PlanFormatError("created_at must be an ISO-8601 UTC string, e.g. "
                              "2026-11-23T01:00:00Z", path=path)
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise PlanFormatError(f"created_at {value!r} is not an ISO-8601 timestamp",
                              path=path) from None
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def _findings(doc: dict[str, Any], name: str, cls: type, path: Path | None) -> list[Any]:
    raw = doc.get(name, [])
    if not isinstance(raw, list):
        raise PlanFormatError(f"{name} must be a list", path=path)
    names = [f.name for f in fields(cls)]
    out = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise PlanFormatError(f"{name}[{i}] must be an object", path=path)
        for k in names:
            if item.get(k) is not None and not isinstance(item[k], str):
                raise PlanFormatError(f"{name}[{i}].{k} must be a string or null", path=path)
        out.append(cls(**{k: item.get(k) for k in names}))
    return out


def parse_plan(doc: Any, path: str | Path | None = None) -> Plan:
    """Validate a decoded plan document of any readable version; raises
    :class:`PlanFormatError` on the first problem."""
    path = Path(path) if path is not None else None
    if not isinstance(doc, dict):
        raise PlanFormatError("must be a JSON object", path=path)
    version = doc.get("schema_version")
    name = f"plan {doc.get('plan_id')!r}" if isinstance(doc.get("plan_id"), str) else "plan"
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise UnknownPlanVersion(version, path)
    if version >= 2 and "local_identity" not in doc:
        raise PlanFormatError(f"{name} has no local_identity (the identity of its target "
                              "database); re-create the plan with `recon repair plan`",
                              path=path)
    if version == 3 and ("operations" in doc or not isinstance(doc.get("chunks"), list)):
        raise PlanFormatError(f"{name} is a version 3 plan: its operations are chunk files "
                              "listed in chunks, never inline operations", path=path)
    read_as = version
    while read_as in _UPGRADES:
        doc = _UPGRADES[read_as](doc)
        read_as += 1
    try:
        identity = (None if doc["local_identity"] is None
                    else DatabaseIdentity.from_dict(doc["local_identity"]))
    except ValueError as e:
        raise PlanFormatError(f"local_identity: {e}", path=path) from None
    for key in ("plan_id", "run_id"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise PlanFormatError(f"{key} must be a non-empty string", path=path)
    if not isinstance(doc.get("snapshot_complete"), bool):
        raise PlanFormatError("snapshot_complete must be true or false", path=path)
    if doc.get("validation") not in VALIDATIONS:
        raise PlanFormatError(f"validation must be one of {', '.join(VALIDATIONS)}, got "
                              f"{doc.get('validation')!r}", path=path)
    chunks = None if doc.get("chunks") is None else _chunks(doc["chunks"], path)
    ops_doc = doc.get("operations") if chunks is None else []
    if not isinstance(ops_doc, list):
        raise PlanFormatError("operations must be a list", path=path)
    needs = _findings(doc, "needs_a_person", PersonFinding, path)
    unplanned = _findings(doc, "not_planned", UnplannedFinding, path)
    if not isinstance(doc.get("summary", {}), dict):
        raise PlanFormatError("summary must be an object", path=path)
    local_db = doc.get("local_database")
    if local_db is not None and not isinstance(local_db, str):
        raise PlanFormatError("local_database must be a string", path=path)
    only = doc.get("only")
    if only is not None and not isinstance(only, str):
        raise PlanFormatError("only must be a string or null", path=path)

    ops = [_parse_op(od, i, path) for i, od in enumerate(ops_doc)]
    _unique_seqs(ops, path)
    ops.sort(key=lambda o: o.seq)
    return Plan(schema_version=version, plan_id=doc["plan_id"], run_id=doc["run_id"],
                created_at=_created_at(doc.get("created_at"), path),
                snapshot_complete=doc["snapshot_complete"], validation=doc["validation"],
                local_database=local_db, local_identity=identity, operations=ops, only=only,
                needs_a_person=needs, not_planned=unplanned, path=path, chunks=chunks)


def _chunks(raw: Any, path: Path | None) -> list[PlanChunk]:
    out = []
    for i, c in enumerate(raw):
        if (not isinstance(c, dict) or not isinstance(c.get("file"), str)
                or not re.fullmatch(r"[A-Za-z0-9_.\-]+\.parquet", c["file"])
                or type(c.get("operations")) is not int or not isinstance(c.get("sha256"), str)):
            raise PlanFormatError(f"chunks[{i}] must be {{\"file\": \"<name>.parquet\", "
                                  "\"operations\": int, \"sha256\": str}", path=path)
        out.append(PlanChunk(file=c["file"], operations=c["operations"], sha256=c["sha256"],
                             label=str(c.get("label") or "")))
    return out


def parse_op(od: Any, index: int = 0, path: Path | None = None) -> Op:
    """One operation from its plan JSON, validated and typed (the planner builds its
    operations through this, so a plan that could not be read back is never written)."""
    return _parse_op(od, index, path)


def _parse_op(od: Any, index: int, path: Path | None) -> Op:
    if not isinstance(od, dict):
        raise PlanFormatError(f"operations[{index}] must be an object", path=path)
    seq = od.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise PlanFormatError(f"operations[{index}] has no integer seq (got {seq!r})", path=path)

    def fail(problem: str) -> PlanFormatError:
        where = f"{od.get('op')} {od.get('table')}" if isinstance(od.get("table"), str) else ""
        return PlanFormatError(problem, seq=seq, path=path, where=where)

    unknown = sorted(set(od) - _OP_FIELDS)
    if unknown:
        raise fail(f"unknown field(s) {', '.join(unknown)}")
    if od.get("step") not in STEPS:
        raise fail(f"step must be one of {', '.join(STEPS)}, got {od.get('step')!r}")
    if not isinstance(od.get("group"), str) or not od["group"]:
        raise fail("group must be a non-empty string")
    table = od.get("table")
    if table not in local_tables():
        raise fail(f"table {table!r} is not a local table (known: "
                   f"{', '.join(local_tables())})")
    kind = od.get("op")
    if kind not in OP_KINDS:
        raise fail(f"op must be insert, update or delete, got {kind!r}")
    reason = od.get("reason", "")
    if not isinstance(reason, str):
        raise fail("reason must be a string")
    findings = od.get("findings", [])
    if not isinstance(findings, list) or not all(isinstance(f, str) for f in findings):
        raise fail("findings must be a list of fingerprint strings")
    types = column_types(table)

    def values(name: str, allow_null_values: bool = True) -> dict[str, Any] | None:
        raw = od.get(name)
        if raw is None:
            return None
        if not isinstance(raw, dict) or not raw:
            raise fail(f"{name} must be a non-empty object of column: value, or null")
        out: dict[str, Any] = {}
        for col, v in raw.items():
            if col not in types:
                raise fail(f"{name} names column {col!r}, which {table} does not have")
            if isinstance(v, dict):
                out[col] = _parse_ref(v, types[col], f"{name}.{col}", fail)
                continue
            if v is None and not allow_null_values:
                raise fail(f"{name}.{col} is null; a key value must not be null")
            try:
                out[col] = decode(v, types[col])
            except ValueError as e:
                raise fail(f"{name}.{col}: {e}") from None
        return out

    key = values("key", allow_null_values=False)
    before, after = values("before"), values("after")
    if key is None:
        raise fail("key must be a non-empty object identifying the row")
    cols = columns_of(table)
    if kind == "insert":
        if before is not None:
            raise fail("an insert has before: null (the row must be absent)")
        if after is None:
            raise fail("an insert needs after: the new row's columns")
        for col, v in key.items():
            if col not in after or after[col] != v:
                raise fail(f"key column {col!r} must also be in after with the same value")
        gen = generated_pk(table)
        for c in cols.values():
            required = not c.nullable and c.default is None and c.name != gen
            if required and after.get(c.name) is None:
                raise fail(f"after is missing {c.name!r}, which is NOT NULL in {table}")
    elif kind == "update":
        if before is None or after is None:
            raise fail("an update needs both before (expected current values) and after")
        missing = [c for c in after if c not in before]
        if missing:
            raise fail(f"before must give the expected current value of every column in "
                       f"after; missing {', '.join(missing)}")
        for col in after:
            if col in key and after[col] != key[col]:
                raise fail(f"after changes key column {col!r}; plan a delete and an insert")
    else:
        if after is not None:
            raise fail("a delete has after: null")
        if before is None:
            raise fail("a delete needs before: the full expected row")
    for part in (after,):
        for col, v in (part or {}).items():
            if v is None and not cols[col].nullable:
                raise fail(f"after.{col} is null, but {col} is NOT NULL in {table}")
    return Op(seq=seq, step=od["step"], group=od["group"], table=table, op=kind, key=key,
              before=before, after=after, reason=reason, findings=list(findings))


def _parse_ref(v: dict[str, Any], target_type: str, where: str, fail: Any) -> Ref:
    if set(v) != {"$ref"} or not isinstance(v["$ref"], dict):
        raise fail(f"{where}: an object value must be a reference {{\"$ref\": {{...}}}}")
    r = v["$ref"]
    unknown = sorted(set(r) - {"table", "match", "column"})
    if unknown:
        raise fail(f"{where}: $ref has unknown field(s) {', '.join(unknown)}")
    table = r.get("table")
    if table not in local_tables():
        raise fail(f"{where}: $ref table {table!r} is not a local table")
    types = column_types(table)
    column = r.get("column")
    if column not in types:
        raise fail(f"{where}: $ref column {column!r} is not a column of {table}")
    if parse_type(types[column])[0] != parse_type(target_type)[0]:
        raise fail(f"{where}: $ref column {table}.{column} is {types[column]}, the target "
                   f"column is {target_type}")
    match = r.get("match")
    if not isinstance(match, dict) or not match:
        raise fail(f"{where}: $ref match must be a non-empty object of column: value")
    out = []
    for col, mv in sorted(match.items()):
        if col not in types:
            raise fail(f"{where}: $ref match column {col!r} is not a column of {table}")
        if mv is None or isinstance(mv, (dict, list)):
            raise fail(f"{where}: $ref match.{col} must be a non-null literal")
        try:
            out.append((col, decode(mv, types[col])))
        except ValueError as e:
            raise fail(f"{where}: $ref match.{col}: {e}") from None
    return Ref(table=table, match=tuple(out), column=column)

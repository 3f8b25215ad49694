"""The tenant's records, typed, in memory: one polars frame per object plus a ``_deleted_at``
column for soft deletes. Frames are immutable values; a mutation builds a new frame, so a
reader (an AQuA job's snapshot, a ZOQL cursor) keeps a consistent view of the moment it read.

Mutations are queued and applied in one set-based step on the next read, so a burst of
``update`` calls on a million-row object costs one pass, not one per call.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl

from core import dataset
from core.catalog import BY_NAME, ObjectSpec, ZType
from core.values import dtype_of, empty_frame, escape_bytes, parse_expr, parse_frame
from sandbox.server.wire import SandboxError, new_id

DELETED_AT = "_deleted_at"  # UTC naive; null for live records
DEFAULT_TZ = "America/Los_Angeles"
RETENTION = dt.timedelta(days=30)  # deleted records are exported for 30 days [D-AQ]


def tenant_zone(root: Path, tenant_tz: str | None) -> str:
    if tenant_tz:
        return tenant_tz
    try:
        return dataset.read_tenant(root).get("tenant_tz") or DEFAULT_TZ
    except Exception:
        return DEFAULT_TZ


def utcnow() -> dt.datetime:
    """Now, UTC naive, at Zuora's one-second precision."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def spec_of(obj: str) -> ObjectSpec:
    spec = BY_NAME.get(obj)
    if spec is None:
        raise SandboxError(f"unknown object {obj!r}; objects: {', '.join(BY_NAME)}")
    return spec


@dataclass(frozen=True)
class Mutation:
    """One applied change, as :attr:`Store.listeners` hear it (the callout sender turns it into
    Zuora's events). ``fields`` are the typed values written (an insert: the whole record)."""

    op: str  # insert | update | delete
    object: str
    id: str
    fields: dict[str, Any] = field(default_factory=dict)


class Store:
    def __init__(self, root: str | Path, tenant_tz: str) -> None:
        self.root = Path(root)
        self.tz = tenant_tz
        # Called after every applied mutation, outside the object's lock, whichever path made it
        # (the HTTP mutation API or a test's Python call): how the sandbox sends callouts.
        self.listeners: list[Callable[[Mutation], None]] = []
        self._frames: dict[str, pl.DataFrame] = {}
        self._deleted: dict[str, int] = {}  # object -> rows with _deleted_at set
        self._updates: dict[str, dict[str, dict[str, Any]]] = {}  # obj -> id -> fields
        self._inserts: dict[str, list[dict[str, Any]]] = {}
        # obj -> typed Id -> field -> the exact bytes the AQuA file route sends (dataset $raw)
        self._raw: dict[str, dict[str, dict[str, bytes]]] = {}
        self.objects = [s.name for s in dataset.present_objects(self.root)]
        if not self.objects:
            raise SandboxError(f"{self.root} holds no Zuora objects (expected {self.root}/zuora/"
                               "<Object>.jsonl); generate one with `recon sandbox generate`")
        # One lock per object: loading a large object does not block the others.
        self._locks = {name: threading.RLock() for name in self.objects}

    # -- loading -------------------------------------------------------------------------------
    def _load(self, spec: ObjectSpec) -> pl.DataFrame:
        """Typed frame of one object, read in blocks so the raw strings of a multi-GB file
        are never all in memory; low-cardinality text columns are kept as Categorical."""
        parts = [self._typed(spec, raw) for raw in dataset.iter_object(self.root, spec)]
        df = pl.concat(parts, how="vertical", rechunk=False) if parts else empty_frame(spec)
        self._deleted[spec.name] = 0
        return _compact(spec, df).with_columns(
            pl.lit(None, pl.Datetime("us")).alias(DELETED_AT))

    def _typed(self, spec: ObjectSpec, raw: pl.DataFrame) -> pl.DataFrame:
        """Type one block; a field given as raw bytes (``$raw``) is typed from its text when
        it parses (NULL otherwise: it exists to be served byte for byte, good or bad) and
        its bytes are kept for the AQuA file route."""
        held: set[tuple[str, str]] = set()
        if dataset.RAW in raw.columns:
            raw, held = self._hold_raw(spec, raw)
        parsed = parse_frame(spec, raw, self.tz)
        rejects = parsed.rejects
        if held and rejects.height:
            rejects = rejects.filter(~pl.struct("key", "field").map_elements(
                lambda r: (r["key"], r["field"]) in held, return_dtype=pl.Boolean))
        if rejects.height:
            r = rejects.row(0, named=True)
            raise SandboxError(
                f"{self.root}: {rejects.height} {spec.name} value(s) do not parse, "
                f"e.g. {r['key']}.{r['field']}={r['value']!r} ({r['rule']})")
        return parsed.frame

    def _hold_raw(self, spec: ObjectSpec, raw: pl.DataFrame
                  ) -> tuple[pl.DataFrame, set[tuple[str, str]]]:
        """Keep the ``$raw`` bytes of a block per (Id, field); a key that is not UTF-8 gets
        its escaped text as the sandbox's own Id (it is served as the raw bytes)."""
        mine = self._raw.setdefault(spec.name, {})
        held: set[tuple[str, str]] = set()
        rows = raw.with_row_index("_i").filter(pl.col(dataset.RAW).is_not_null())
        ids = raw["Id"].to_list()
        for i, rec in zip(rows["_i"].to_list(), rows[dataset.RAW].to_list(), strict=True):
            fields = {k: base64.b64decode(v) for k, v in rec.items() if v is not None}
            if "Id" in fields:
                ids[i] = escape_bytes(fields["Id"])
            mine[ids[i]] = fields
            held.update((ids[i], k) for k in fields)
        return raw.drop(dataset.RAW).with_columns(pl.Series("Id", ids, dtype=pl.String)), held

    def raw_bytes(self, obj: str) -> dict[str, dict[str, bytes]]:
        """Id -> field -> the exact bytes the AQuA file route sends for that value."""
        self.frame(obj)
        return self._raw.get(obj, {})

    def _lock(self, obj: str) -> threading.RLock:
        spec_of(obj)
        lock = self._locks.get(obj)
        if lock is None:
            raise SandboxError(f"the dataset {self.root} has no {obj} file "
                               f"(it has: {', '.join(self.objects)})")
        return lock

    # -- reading -------------------------------------------------------------------------------
    def frame(self, obj: str) -> pl.DataFrame:
        """Every record of ``obj``, deleted ones included (``_deleted_at`` set). Text columns
        may be Categorical; use ``typed()`` for the catalogue's dtypes."""
        with self._lock(obj):
            df = self._frames.get(obj)
            if df is None:
                df = self._frames[obj] = self._load(spec_of(obj))
            if self._updates.get(obj) or self._inserts.get(obj):
                df = self._frames[obj] = self._flush(spec_of(obj), df)
            return df

    def live(self, obj: str) -> pl.DataFrame:
        """Records not deleted: what queries see."""
        df = self.frame(obj)
        if not self._deleted.get(obj):
            return df
        return df.filter(pl.col(DELETED_AT).is_null())

    def typed(self, obj: str) -> pl.DataFrame:
        """The live records with exactly the catalogue's dtypes (as ``parse_frame`` gives):
        what a correct extract of ``obj`` must equal."""
        spec = spec_of(obj)
        return self.live(obj).select(
            [pl.col(f.name).cast(dtype_of(f)) for f in spec.fields])

    def has_deleted(self, obj: str) -> bool:
        self.frame(obj)
        return bool(self._deleted.get(obj))

    def preload(self) -> None:
        """Load every object now (``SandboxServer.start`` does this in the background)."""
        for obj in self.objects:
            self.frame(obj)

    # -- mutating ------------------------------------------------------------------------------
    def _coerce(self, spec: ObjectSpec, name: str, value: Any) -> Any:
        if name == DELETED_AT:
            return value
        f = spec.field(name) if name in spec.field_names else None
        if f is None:
            raise SandboxError(f"{spec.name} has no field {name!r}")
        if value is None:
            return None
        try:
            match f.ztype:
                case ZType.DATETIME:
                    if isinstance(value, dt.datetime):
                        if value.tzinfo is not None:
                            value = value.astimezone(dt.UTC).replace(tzinfo=None)
                        return value
                    if isinstance(value, str):
                        out = pl.DataFrame({name: [value]}).select(parse_expr(f, self.tz)).item()
                        if out is None:
                            raise ValueError(value)
                        return out
                case ZType.DATE:
                    if isinstance(value, dt.datetime):
                        return value.date()
                    if isinstance(value, dt.date):
                        return value
                    return dt.date.fromisoformat(str(value)[:10])
                case ZType.DECIMAL:
                    return Decimal(str(value))
                case ZType.INT:
                    return int(Decimal(str(value)))
                case ZType.BOOL:
                    if isinstance(value, str):
                        if value.lower() not in ("true", "false", "1", "0"):
                            raise ValueError(value)
                        return value.lower() in ("true", "1")
                    return bool(value)
                case _:
                    return str(value)
        except (ValueError, ArithmeticError):
            pass
        raise SandboxError(f"{spec.name}.{name}: {value!r} is not a valid {f.ztype.value} value")

    def _base(self, obj: str) -> pl.DataFrame:
        """The loaded frame without flushing queued mutations (caller holds the lock)."""
        df = self._frames.get(obj)
        if df is None:
            df = self._frames[obj] = self._load(spec_of(obj))
        return df

    def _exists(self, obj: str, id_: str) -> bool:
        """Whether ``id_`` exists, deleted or not (caller holds the lock)."""
        if any(r.get("Id") == id_ for r in self._inserts.get(obj, ())):
            return True
        return bool((self._base(obj)["Id"] == id_).any())

    def _live_id(self, obj: str, id_: str) -> bool:
        """Whether ``id_`` exists and is not deleted (caller holds the lock)."""
        pending = self._updates.get(obj, {}).get(id_, {})
        if pending.get(DELETED_AT) is not None:
            return False
        if any(r.get("Id") == id_ for r in self._inserts.get(obj, ())):
            return True
        df = self._base(obj)
        idx = (df["Id"] == id_).arg_true()
        return idx.len() > 0 and df[DELETED_AT][int(idx[0])] is None

    def update(self, obj: str, id: str, **fields: Any) -> None:  # noqa: A002 - the contract
        """Set ``fields`` (Zuora names) and bump ``UpdatedDate`` to now (unless given)."""
        spec = spec_of(obj)
        self._lock(obj)
        if "Id" in fields:
            raise SandboxError(f"{obj}.Id cannot be updated")
        values = {k: self._coerce(spec, k, v) for k, v in fields.items()}
        values.setdefault("UpdatedDate", utcnow())
        with self._lock(obj):
            if not self._live_id(obj, id):
                raise SandboxError(f"{obj} {id!r} does not exist (or was deleted)")
            self._updates.setdefault(obj, {}).setdefault(id, {}).update(values)
            held = self._raw.get(obj, {}).get(id)
            for name in values if held else ():  # a new value replaces the raw bytes
                held.pop(name, None)
        self._notify(Mutation("update", obj, id, values))

    def set_raw(self, obj: str, id: str, field: str, value: bytes,  # noqa: A002
                **fields: Any) -> None:
        """Make Zuora send ``value`` — exact bytes, valid or not — for ``field`` on the AQuA
        file route (the typed value becomes NULL); ``fields`` as in :meth:`update` (which
        bumps ``UpdatedDate`` unless given)."""
        self.update(obj, id, **{field: None, **fields})
        with self._lock(obj):
            self._raw.setdefault(obj, {}).setdefault(id, {})[field] = value

    def delete(self, obj: str, id: str) -> None:  # noqa: A002 - the contract
        """Soft delete: gone from queries, exported as deleted by AQuA for 30 days."""
        now = utcnow()
        with self._lock(obj):
            if not self._live_id(obj, id):
                raise SandboxError(f"{obj} {id!r} does not exist (or was already deleted)")
            self._updates.setdefault(obj, {}).setdefault(id, {}).update(
                {DELETED_AT: now, "UpdatedDate": now})
        self._notify(Mutation("delete", obj, id, {DELETED_AT: now}))

    def insert(self, obj: str, row: dict[str, Any]) -> str:
        """A new record (Zuora names). ``Id`` defaults to a fresh one; Created/UpdatedDate to
        now. Returns the Id."""
        spec = spec_of(obj)
        values = {k: self._coerce(spec, k, v) for k, v in row.items()}
        now = utcnow()
        values.setdefault("Id", new_id())
        values.setdefault("CreatedDate", now)
        values.setdefault("UpdatedDate", now)
        with self._lock(obj):
            if self._exists(obj, values["Id"]):
                raise SandboxError(f"{obj} {values['Id']!r} already exists")
            self._inserts.setdefault(obj, []).append(values)
        self._notify(Mutation("insert", obj, values["Id"], values))
        return values["Id"]

    def _notify(self, m: Mutation) -> None:
        for listener in self.listeners:
            listener(m)

    def peek(self, obj: str, id: str) -> dict[str, Any] | None:  # noqa: A002 - the contract
        """One record as it stands now, deleted or not, queued mutations included — without
        flushing them (a lookup per mutation must not cost a pass over the object)."""
        with self._lock(obj):
            row: dict[str, Any] | None = None
            for r in reversed(self._inserts.get(obj, ())):
                if r.get("Id") == id:
                    row = dict(r)
                    break
            if row is None:
                hit = self._base(obj).filter(pl.col("Id") == id)
                if hit.height == 0:
                    return None
                row = hit.row(0, named=True)
            row.update(self._updates.get(obj, {}).get(id, {}))
            return row

    def _flush(self, spec: ObjectSpec, df: pl.DataFrame) -> pl.DataFrame:
        schema = dict(df.schema)
        inserts = self._inserts.pop(spec.name, [])
        if inserts:
            new = pl.DataFrame(
                [{c: r.get(c) for c in schema} for r in inserts], schema=schema, orient="row")
            df = pl.concat([df, new], how="vertical")
        updates = self._updates.pop(spec.name, {})
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for id_, vals in updates.items():
            groups.setdefault(tuple(sorted(vals)), []).append({"Id": id_, **vals})
        for cols, rows in groups.items():
            sub = {c: schema[c] for c in ("Id", *cols)}
            upd = pl.DataFrame([{c: r[c] for c in sub} for r in rows], schema=sub, orient="row")
            df = df.update(upd, on="Id", include_nulls=True)
        self._deleted[spec.name] = int(df[DELETED_AT].is_not_null().sum())
        return df


def _compact(spec: ObjectSpec, df: pl.DataFrame) -> pl.DataFrame:
    """Low-cardinality text columns (statuses, enums, catalogue ids, user ids) as Categorical:
    a large tenant's frames shrink by a third and every API renders them unchanged."""
    sample = df.head(200_000)
    casts = []
    for f in spec.fields:
        if f.name == "Id" or df.schema[f.name] != pl.String:
            continue
        if sample[f.name].n_unique() <= max(64, sample.height // 100):
            casts.append(pl.col(f.name).cast(pl.Categorical))
    return df.with_columns(casts) if casts else df

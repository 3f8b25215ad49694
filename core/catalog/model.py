"""The vocabulary of the object catalogue: field types, normalisation rules, ownership.

Kept separate from the declarations (``objects.py``) so that a reader of the declarations
sees only *what* is reconciled, and a reader of this file sees only *how it is described*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from core.errors import CatalogError


class ZType(StrEnum):
    """Zuora field types, as in the SOAP object reference (docs/zuora-api.md §4)."""

    ID = "id"  # 32 lowercase hex characters
    STR = "str"
    DATETIME = "dt"  # rendered with the tenant-zone offset by Zuora
    DATE = "d"  # a calendar day; never shifted by time zones
    DECIMAL = "dec"
    BOOL = "bool"
    INT = "int"


class Norm(StrEnum):
    """How a value is normalised before the two sides are compared.

    Each rule exists because Zuora and a correct local copy can legitimately disagree in
    representation (domain.md D26); comparing without it produces false drift.
    """

    EXACT = "exact"  # ids, numbers, plain text: equal as values; NULL equals NULL
    CUSTOM = "custom"  # custom fields: trimmed, "" equals NULL
    EMAIL = "email"  # trimmed and case-insensitive
    ENUM = "enum"  # spelling variants equal: "Flat Fee"/"FlatFee", "Canceled"/"Cancelled"
    MULTISELECT = "multiselect"  # ";"-separated set: order and blanks do not matter
    DATETIME_UTC = "datetime_utc"  # tenant-zone dateTime vs naive UTC: compared as UTC instants
    DATE = "date"  # calendar dates compared as dates
    DECIMAL = "decimal"  # Zuora decimal vs local column scale: rounded half-up to that scale
    INTEGER = "integer"  # Zuora decimal stored in a local integer column: half-up to integer
    BOOL = "bool"
    REF = "ref"  # local column holds a local surrogate id; compared through the referenced row


class Owner(StrEnum):
    """Which side is right for a value. Zuora is the source of truth for everything it owns;
    local-only metadata (sync timestamps, notification markers) belongs to the local side and
    is never overwritten or reported as drift."""

    ZUORA = "zuora"
    LOCAL = "local"
    DERIVED = "derived"  # local column computed from Zuora data (e.g. orders.subscription_id)


_VARCHAR = re.compile(r"VARCHAR\((\d+)\)")
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")


_INTEGER_TYPES = ("SMALLINT", "INTEGER", "BIGINT")


def misfit_sql(local_type: str, expr: str, *, text: bool) -> str | None:
    """SQL: why ``expr`` — a value valid in Zuora — cannot be stored in a local column of
    ``local_type``, or NULL when it can. None when no value of that type can misfit.

    One rule, declared once, read by the diff's annotation and the repair planner (issue
    13): recon never cuts, rounds away integer digits or drops a byte to make a value fit.
    The reasons, in the words findings use:

    * ``NUL byte``: a string holding 0x00 (PostgreSQL's text types cannot store it);
    * ``longer than VARCHAR(n)``: more characters than the column holds;
    * ``more digits than DECIMAL(p,s)``: more integer digits than the column holds after
      rounding half-up to its scale (extra decimal places alone are rounding, never a
      misfit: domain.md §1.9);
    * ``outside the range of INTEGER`` (``SMALLINT``, ``BIGINT``): after rounding half-up.

    DuckDB's ``TRY_CAST`` to a smaller decimal or an integer rounds half away from zero
    (Zuora's half-up) and yields NULL exactly when the rounded value does not fit."""
    t = local_type.upper().replace(" ", "")
    if text:
        m = _VARCHAR.fullmatch(t)
        arms = [f"WHEN contains({expr}, chr(0)) THEN 'NUL byte'"]
        if m:
            arms.append(f"WHEN length({expr}) > {m.group(1)} THEN 'longer than {t}'")
        return f"CASE {' '.join(arms)} END"
    m = _DECIMAL.fullmatch(t)
    if m or t in _INTEGER_TYPES:
        what = f"more digits than {t}" if m else f"outside the range of {t}"
        return (f"CASE WHEN {expr} IS NOT NULL AND TRY_CAST({expr} AS {t}) IS NULL "
                f"THEN '{what}' END")
    return None


@dataclass(frozen=True)
class Ref:
    """A local column that stores a local surrogate id instead of the Zuora id: the value is
    compared by following ``table.column`` and reading ``key_column`` (the Zuora id)."""

    table: str
    column: str
    key_column: str


@dataclass(frozen=True)
class Field:
    """One Zuora field and, when the local side stores it, its local column."""

    name: str  # Zuora name (PascalCase, as in ZOQL/AQuA)
    ztype: ZType
    column: str | None = None  # local column; None = extracted but not stored locally
    local_type: str | None = None  # portable SQL type of the local column
    nullable: bool = True  # local null rule (seed 003 "null:false")
    norm: Norm = Norm.EXACT
    enum: tuple[str, ...] = ()  # Zuora's allowed values (read spelling)
    # (read spelling, Object Query spelling) for each value Object Query spells differently,
    # e.g. ListPriceBase ("Per Billing Period", "PerBillingPeriod"), docs/zuora-api.md §2.7.
    # No field recon copies has one today (the documented differences are in fields it does
    # not copy); declared here so both the reader and the sandbox translate from one place.
    object_query_values: tuple[tuple[str, str], ...] = ()
    compare: bool = True  # False: stored but not compared (e.g. volatile values)
    owner: Owner = Owner.ZUORA
    ref: Ref | None = None
    zuora_required: bool = False  # Zuora always populates it
    # Why this local column departs from the seed's schema (e.g. an input of the order
    # derivation seed 003 does not store). Such a column is additive and nullable: ``recon db
    # init`` creates it with the table and adds it to an existing database (``ADD COLUMN IF
    # NOT EXISTS``); docs/local-database.md "The local schema" lists every one.
    deviation: str = ""

    @property
    def max_length(self) -> int | None:
        m = _VARCHAR.fullmatch(self.local_type or "")
        return int(m.group(1)) if m else None

    @property
    def scale(self) -> int | None:
        """Decimal places the local column keeps (None when it is not a decimal/integer)."""
        if self.local_type in _INTEGER_TYPES:
            return 0
        m = _DECIMAL.fullmatch(self.local_type or "")
        return int(m.group(2)) if m else None

    @property
    def stored(self) -> bool:
        return self.column is not None

    def misfit_sql(self, expr: str) -> str | None:
        """SQL: why Zuora's value ``expr`` (typed as the snapshot types it) cannot be stored
        in this field's local column, or NULL when it can; None when no value can misfit
        (not stored, a reference, a date, a boolean). See :func:`misfit_sql`."""
        if not self.stored or self.ref is not None or self.local_type is None:
            return None
        return misfit_sql(self.local_type, expr,
                          text=self.ztype in (ZType.STR, ZType.ID))

    @property
    def compared(self) -> bool:
        return self.stored and self.compare and self.owner is Owner.ZUORA

    @property
    def object_query_name(self) -> str:
        """The field as Object Query spells it (lower camel: ``TermStartDate`` →
        ``termStartDate``, ``MRR`` → ``mRR``, docs/zuora-api.md §2.7); ZOQL and AQuA use
        :attr:`name`. Declared here once so a reader never guesses either spelling."""
        return self.name[:1].lower() + self.name[1:]

    @property
    def to_object_query(self) -> dict[str, str]:
        """Read spelling → Object Query spelling, for the values that differ."""
        return dict(self.object_query_values)

    @property
    def from_object_query(self) -> dict[str, str]:
        """Object Query spelling → the read spelling every other path uses."""
        return {oq: read for read, oq in self.object_query_values}


@dataclass(frozen=True)
class Column:
    """A local column with no Zuora counterpart (surrogate ids, sync timestamps, metadata)."""

    name: str
    local_type: str
    nullable: bool = True
    owner: Owner = Owner.LOCAL
    default: str | None = None
    doc: str = ""


@dataclass(frozen=True)
class ObjectSpec:
    """One reconciled Zuora object and the local table that copies it."""

    name: str  # Zuora object name, also the dataset file name (``<name>.jsonl``)
    table: str  # local table
    group: str  # "catalog" | "accounts" | "subscriptions": repair and extract order
    fields: tuple[Field, ...]
    local_pk: str  # the local primary key column
    extra_columns: tuple[Column, ...] = ()
    parent: tuple[str, str] | None = None  # (field, parent object): the subtree edge
    zuora_scope: str | None = None  # SQL predicate: which Zuora rows the local copy holds
    unique_local: tuple[str, ...] = ()  # extra UNIQUE columns on the local table
    # Who creates and deletes the table's rows. ``Owner.ZUORA``: the table is a copy of Zuora
    # that only recon writes (the local-copy guards reject any other write, issue 16).
    # ``Owner.LOCAL``: the application creates and deletes rows itself (a CustomersDot
    # BillingAccount is created when a customer creates a Zuora account); only its
    # Zuora-owned columns are recon's (guarded when the table is in ``local.guard_tables``).
    row_owner: Owner = Owner.ZUORA
    doc: str = ""
    _by_name: dict[str, Field] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for f in self.fields:
            if f.name in seen:
                raise CatalogError(f"{self.name}: field {f.name} declared twice")
            seen.add(f.name)
            self._by_name[f.name] = f
        if "Id" not in self._by_name:
            raise CatalogError(f"{self.name}: every object needs its Id field")

    @property
    def key(self) -> Field:
        return self._by_name["Id"]

    @property
    def key_column(self) -> str:
        """Local column holding the Zuora Id."""
        col = self.key.column
        assert col is not None
        return col

    def field(self, name: str) -> Field:
        try:
            return self._by_name[name]
        except KeyError:
            raise CatalogError(f"{self.name} has no field {name!r} in the catalogue") from None

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def object_query_path(self) -> str:
        """The object's Object Query collection (``RatePlanCharge`` →
        ``rate-plan-charges``: kebab case, plural; docs/zuora-api.md §2.7)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "-", self.name).lower() + "s"

    @property
    def stored_fields(self) -> list[Field]:
        return [f for f in self.fields if f.stored]

    @property
    def compared_fields(self) -> list[Field]:
        """Fields the diff compares: stored locally, Zuora-owned, not the key."""
        return [f for f in self.fields if f.compared and f.name != "Id"]


@dataclass(frozen=True)
class LocalTable:
    """A local-only table (customers, memberships, orders): no Zuora object behind it, but
    some of its columns may be derived from Zuora (``Owner.DERIVED``)."""

    name: str
    columns: tuple[Column, ...]
    pk: str = "id"
    unique: tuple[tuple[str, ...], ...] = ()
    doc: str = ""

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise CatalogError(f"local table {self.name} has no column {name!r}")

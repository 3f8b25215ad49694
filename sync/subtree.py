"""What one sync reads: its keys' Zuora records and the local rows the nightly's rules need.

A sync is the nightly's reconciliation on a keyed dataset. That dataset must hold, on each
side, the key's whole subtree AND everything a cross-key rule reads about it — otherwise a
rule would see "nothing" where the local database has "something" and plan a row the nightly
would then flag (a second customer for an existing e-mail, D19; an order whose namespace
another order uses, D12/D13). So besides the subtree it holds the *context*: the accounts of
a subscription and their Bill-To/Sold-To contacts (D13 picks the customer of the Sold-To
e-mail), the catalog rows its rate plans use (the order derivation, D14), the customers of
the e-mails, the orders of the names and of the namespaces. Findings about the context are
not the sync's business: :func:`subject` says which findings belong to the keys.

Zuora is read with ZOQL by key (:mod:`extract.bykey`); the local rows are read in ONE
transaction (REPEATABLE READ on PostgreSQL), filtered by key, with exactly the columns and
Arrow types the local export writes (:func:`extract.local_export.table_schema`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

from core.catalog import BY_NAME, OBJECTS, get
from core.localdb.connect import LocalDB
from core.localdb.dialect import Dialect
from core.localdb.schema import all_tables, table_columns
from core.snapshot import Snapshot, parse_utc
from core.values import REJECTS, empty_frame
from extract.aqua import DELETED_FLAG, AquaExporter, AquaOptions, ExportQuery, Window
from extract.bykey import ByKey, read_all, read_by_key
from extract.client import ZuoraClient
from extract.local_export import table_schema

CATALOG = tuple(o.name for o in OBJECTS if o.group == "catalog")


@dataclass
class ZuoraSide:
    """The Zuora records read for one sync, per object (every catalogue object present)."""

    frames: dict[str, pl.DataFrame] = field(
        default_factory=lambda: {o.name: empty_frame(o) for o in OBJECTS})
    rejects: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=REJECTS))
    requests: int = 0
    # ids() per (object, column), dropped when the object's frame changes: the local read
    # asks for the same ones many times
    _ids: dict[tuple[str, str], list[str]] = field(default_factory=dict, repr=False)

    def add(self, obj: str, frame: pl.DataFrame) -> None:
        if frame.height:
            self.frames[obj] = pl.concat([self.frames[obj], frame]).unique(
                subset=["Id"], keep="last", maintain_order=True)
            for k in [k for k in self._ids if k[0] == obj]:
                del self._ids[k]

    def ids(self, obj: str, col: str = "Id") -> list[str]:
        got = self._ids.get((obj, col))
        if got is None:
            got = self._ids[(obj, col)] = [
                v for v in self.frames[obj][col].unique().to_list() if v is not None]
        return list(got)

    @property
    def rows(self) -> int:
        return sum(f.height for f in self.frames.values())


# what a storm exports per sync object: the key's object and its subtree (the context —
# other accounts, catalog rows — is still read by key: a few requests)
STORM_OBJECTS = {
    "subscription": ("Subscription", "RatePlan", "RatePlanCharge", "RatePlanChargeTier"),
    "account": ("Account", "Contact"),
    "contact": ("Contact", "Account"),
}


class Reader:
    """Reads by key into a :class:`ZuoraSide` (one client, the tenant's zone). After
    :meth:`export_current` the objects it exported are filtered from that export instead of
    being asked for key by key (a storm of keys: one AQuA job, not hundreds of queries)."""

    def __init__(self, client: ZuoraClient, tenant_tz: str, api: str = "zoql") -> None:
        self.client, self.tz, self.api = client, tenant_tz, api
        self.current: dict[str, pl.LazyFrame] = {}
        self.current_rejects: pl.DataFrame = pl.DataFrame(schema=REJECTS)

    def read(self, side: ZuoraSide, obj: str, fld: str, values: Iterable[str]) -> pl.DataFrame:
        return self.read_many(side, [(obj, fld, values)])[0]

    def read_many(self, side: ZuoraSide, reads: list[tuple[str, str, Iterable[str]]]
                  ) -> list[pl.DataFrame]:
        """Several reads that do not depend on each other (object, field, values each): the
        Zuora requests run concurrently — a sync's latency is mostly waiting on them, and
        the client is thread-safe — and their records are added to ``side`` in the order
        given, as one read after the other would."""
        reads = [(obj, fld, list(values)) for obj, fld, values in reads]
        asked = [r for r in reads if r[0] not in self.current]
        if len(asked) > 1:
            with ThreadPoolExecutor(max_workers=len(asked)) as pool:
                futures = {id(r): pool.submit(self._by_key, *r) for r in asked}
                got = {k: f.result() for k, f in futures.items()}
        else:
            got = {id(r): self._by_key(*r) for r in asked}
        out = []
        for r in reads:
            obj, fld, values = r
            if obj in self.current:
                out.append(self._from_current(side, obj, fld, values))
                continue
            one = got[id(r)]
            side.requests += one.requests
            if one.rejects.height:
                side.rejects = pl.concat([side.rejects, one.rejects])
            side.add(obj, one.frame)
            out.append(one.frame)
        return out

    def _by_key(self, obj: str, fld: str, values: list[str]) -> ByKey:
        return read_by_key(self.client, get(obj), fld, values, tenant_tz=self.tz, api=self.api)

    def _from_current(self, side: ZuoraSide, obj: str, fld: str, values: list[str]
                      ) -> pl.DataFrame:
        vals = list(dict.fromkeys(v for v in values if v is not None))
        frame = self.current[obj].filter(pl.col(fld).is_in(vals)).collect()
        side.add(obj, frame)
        bad = self.current_rejects.filter(
            (pl.col("object") == obj) & pl.col("key").is_in(frame["Id"].to_list()))
        if bad.height:
            side.rejects = pl.concat([side.rejects, bad])
        return frame

    def export_current(self, objects: Iterable[str], base: Snapshot, work: Path,
                       job_name: str, progress: Callable[[str], None]) -> int:
        """Zuora's current rows of ``objects``: ONE incremental AQuA export (the extractor's
        path: ``UpdatedDate`` from ``base``'s high-water mark to now, deleted rows included)
        merged onto ``base``'s rows, lazily. Returns the rows exported."""
        # the window ends after now, rounded up: ZOQL literals are whole seconds and a record
        # changed in this very second must be in (the extractor's lag does not fit a sync)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=2)
        queries = []
        for obj in objects:
            mark = parse_utc(base.manifest.hwms.get(obj))
            queries.append(ExportQuery(get(obj), Window(mark, now), deleted=True))
        exporter = AquaExporter(self.client, self.tz,
                                AquaOptions(poll_interval=0.5, poll_max=5.0), progress)
        (work / "delta").mkdir(parents=True, exist_ok=True)
        (work / "rejects").mkdir(parents=True, exist_ok=True)
        res = exporter.export(queries, work / "delta", work / "rejects", job_name=job_name)
        rows = 0
        for q in queries:
            ox = res.objects[q.name]
            rows += ox.rows
            delta = pl.scan_parquet(ox.path).unique(subset=["Id"], keep="last",
                                                    maintain_order=True)
            kept = pl.scan_parquet(base.zuora_path(q.name)).join(delta.select("Id"), on="Id",
                                                                 how="anti")
            live = delta.filter(~pl.col(DELETED_FLAG)).drop(DELETED_FLAG)
            self.current[q.name] = pl.concat([kept, live], how="vertical")
            if ox.rejects_path is not None and ox.rejects_path.is_file():
                self.current_rejects = pl.concat([self.current_rejects, pl.read_parquet(
                    ox.rejects_path).select(list(REJECTS))], how="vertical_relaxed")
        return rows

    # -- the subtrees ------------------------------------------------------------------------
    def accounts(self, side: ZuoraSide, keys: Iterable[str]) -> dict[str, str | None]:
        """Accounts by id or number, with their Bill-To and Sold-To contacts; returns
        key → account id (None: Zuora returns no such account)."""
        keys = list(keys)
        by_id = self.read(side, "Account", "Id", keys)
        found = {k: k for k in by_id["Id"].to_list()}
        rest = [k for k in keys if k not in found]
        if rest:
            by_no = self.read(side, "Account", "AccountNumber", rest)
            found.update(dict(zip(by_no["AccountNumber"].to_list(), by_no["Id"].to_list(),
                                  strict=True)))
        self.contacts_of(side)
        return {k: found.get(k) for k in keys}

    def contacts_of(self, side: ZuoraSide) -> None:
        self.read_many(side, self._contacts_of(side))

    def _contacts_of(self, side: ZuoraSide) -> list[tuple[str, str, Iterable[str]]]:
        """The read of the accounts' Bill-To and Sold-To contacts not read yet (none: [])."""
        acc = side.frames["Account"]
        ids = [v for v in acc["BillToId"].to_list() + acc["SoldToId"].to_list() if v]
        missing = set(ids) - set(side.ids("Contact"))
        return [("Contact", "Id", sorted(missing))] if missing else []

    def contacts(self, side: ZuoraSide, keys: Iterable[str]) -> dict[str, str | None]:
        """Contacts by id and every account that names one as Bill-To or Sold-To (what
        decides whether the local copy holds it at all: the Contact scope)."""
        keys = list(keys)
        got, _, _ = self.read_many(side, [("Contact", "Id", keys), ("Account", "BillToId", keys),
                                          ("Account", "SoldToId", keys)])
        # the contacts' own accounts (those not read already, i.e. not naming them) and the
        # Bill-To/Sold-To contacts of the accounts read so far, together; then those of the
        # accounts this added
        own = set(got["AccountId"].drop_nulls().to_list()) - set(side.ids("Account"))
        self.read_many(side, ([("Account", "Id", sorted(own))] if own else [])
                       + self._contacts_of(side))
        self.contacts_of(side)
        have = set(got["Id"].to_list())
        return {k: k if k in have else None for k in keys}

    def subscriptions(self, side: ZuoraSide, names: Iterable[str]) -> dict[str, str | None]:
        """Every version of the named subscriptions with rate plans, charges (all segments)
        and tiers; the context: their accounts (and contacts) and the catalog rows their
        rate plans use. Reads that do not depend on each other run together."""
        names = list(names)
        subs = self.read(side, "Subscription", "Name", names)
        ids = subs["Id"].to_list()
        if ids:
            accts = {v for c in ("AccountId", "InvoiceOwnerId") for v in subs[c].to_list() if v}
            rps, charges, _ = self.read_many(side, [
                ("RatePlan", "SubscriptionId", ids), ("RatePlanCharge", "SubscriptionId", ids),
                ("Account", "Id", sorted(accts))])
            _, prps, *_ = self.read_many(side, [
                ("RatePlanChargeTier", "RatePlanChargeId", charges["Id"].to_list()),
                ("ProductRatePlan", "Id",
                 rps["ProductRatePlanId"].drop_nulls().unique().to_list()),
                *self._contacts_of(side)])
            self.read(side, "Product", "Id", prps["ProductId"].drop_nulls().unique().to_list())
        have = set(subs["Name"].to_list())
        return {n: n if n in have else None for n in names}

    def catalog(self, side: ZuoraSide, products: Iterable[str] | None) -> dict[str, str | None]:
        """The whole catalog (``products`` None) or the subtrees of some products."""
        if products is None:
            for obj in CATALOG:
                self._all(side, obj)
            return {}
        keys = list(products)
        prods = self.read(side, "Product", "Id", keys)
        prps = self.read(side, "ProductRatePlan", "ProductId", prods["Id"].to_list())
        prpcs = self.read(side, "ProductRatePlanCharge", "ProductRatePlanId",
                          prps["Id"].to_list())
        self.read(side, "ProductRatePlanChargeTier", "ProductRatePlanChargeId",
                  prpcs["Id"].to_list())
        have = set(prods["Id"].to_list())
        return {k: k if k in have else None for k in keys}

    def _all(self, side: ZuoraSide, obj: str) -> None:
        """Every record of a (small) catalog object: ZOQL without a filter, paged."""
        got = read_all(self.client, get(obj), tenant_tz=self.tz)
        side.requests += got.requests
        if got.rejects.height:
            side.rejects = pl.concat([side.rejects, got.rejects])
        side.add(obj, got.frame)


# -- the local side --------------------------------------------------------------------------
@dataclass
class LocalSide:
    """Local rows per table (Arrow, typed as the local export types them; every table)."""

    tables: dict[str, pa.Table]
    identity: object | None

    def frame(self, table: str) -> pl.DataFrame:
        return pl.from_arrow(self.tables[table])  # type: ignore[return-value]

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.tables.values())


def _fetch(db: LocalDB, table: str, where: str, params: list) -> pa.Table:
    cols = [c.name for c in table_columns(table)]
    rows = db.fetch(f"SELECT {', '.join(cols)} FROM {table} WHERE {where}", params)
    schema = table_schema(table)
    return pa.Table.from_pylist([dict(zip(cols, r, strict=True)) for r in rows], schema=schema)


def _in(db: LocalDB, col: str, values: Iterable[object]) -> tuple[str, list]:
    vals = list(dict.fromkeys(v for v in values if v is not None))
    if not vals:
        return "FALSE", []
    return f"{col} IN ({db.dialect.placeholders(len(vals))})", vals


def _or(*parts: tuple[str, list]) -> tuple[str, list]:
    where = " OR ".join(p[0] for p in parts)
    return f"({where})", [v for p in parts for v in p[1]]


def _col(t: pa.Table, name: str) -> list:
    return [v for v in t.column(name).to_pylist() if v is not None]


def read_local(db: LocalDB, z: ZuoraSide, *, names: Iterable[str] = (),
               accounts: Iterable[str] = (), contacts: Iterable[str] = (),
               catalog: str | Iterable[str] | None = None) -> LocalSide:
    """The local rows of the subtree and its context, read in one transaction. ``names``,
    ``accounts``, ``contacts``: the keys asked for, besides what Zuora returned (a key Zuora
    lost still has its local rows read, so the nightly's rule for it applies); ``catalog``:
    ``"*"`` the whole catalog, else product ids."""
    from core.localdb.identity import read_identity

    out: dict[str, pa.Table] = {}

    def get_rows(table: str, part: tuple[str, list]) -> pa.Table:
        out[table] = _fetch(db, table, part[0], part[1])
        return out[table]

    lower = "lower(trim(email))"
    with db.transaction():
        if db.dialect is Dialect.POSTGRES:
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        identity = read_identity(db)
        names = set(names) | set(z.ids("Subscription", "Name"))
        subs = get_rows("zuora_local_subscriptions", _in(db, "name", names))
        sub_ids = set(_col(subs, "zuora_id")) | set(z.ids("Subscription"))
        rps = get_rows("zuora_local_rate_plans", _in(db, "subscription_id", sub_ids))
        chs = get_rows("zuora_local_rate_plan_charges", _in(db, "subscription_id", sub_ids))
        get_rows("zuora_local_rate_plan_charge_tiers", _in(
            db, "rate_plan_charge_id", set(_col(chs, "zuora_id"))
            | set(z.ids("RatePlanCharge"))))
        acct_ids = (set(accounts) | set(z.ids("Account"))
                    | set(_col(subs, "account_id")) | set(_col(subs, "invoice_owner_id")))
        bas = get_rows("billing_accounts", _in(db, "zuora_account_id", acct_ids))
        ba_ids = set(_col(bas, "id"))
        get_rows("billing_account_contacts", _or(
            _in(db, "zuora_contact_id", set(contacts) | set(z.ids("Contact"))),
            _in(db, "billing_account_id", ba_ids),
            _in(db, "id", set(_col(bas, "bill_to_contact_id"))
                | set(_col(bas, "sold_to_contact_id")))))
        ns = {str(v).strip() for v in _col(subs, "git_lab_namespace_id__c")
              + z.ids("Subscription", "GitLabNamespaceId__c") if str(v).strip()}
        orders = get_rows("orders", _or(_in(db, "subscription_name", names),
                                        _in(db, "billing_account_id", ba_ids)))
        ns |= {str(v).strip() for v in _col(orders, "gl_namespace_id") if str(v).strip()}
        if ns:
            orders = get_rows("orders", _or(_in(db, "subscription_name", names),
                                            _in(db, "billing_account_id", ba_ids),
                                            _in(db, "trim(gl_namespace_id)", ns)))
        emails = {str(v).strip().lower() for v in
                  z.ids("Contact", "WorkEmail")
                  + _col(out["billing_account_contacts"], "work_email") if str(v).strip()}
        members = get_rows("billing_account_memberships", _in(db, "billing_account_id", ba_ids))
        get_rows("customers", _or(_in(db, lower, emails),
                                  _in(db, "id", set(_col(members, "customer_id"))
                                      | set(_col(orders, "customer_id")))))
        # the catalog: the whole of it, some products' subtrees, or what the rate plans use
        if catalog == "*":
            for obj in CATALOG:
                get_rows(BY_NAME[obj].table, ("TRUE", []))
            # D23: only rate plans on plans Zuora no longer has can make a catalog finding
            gone = (set(_col(out["zuora_local_product_rate_plans"], "zuora_id"))
                    - set(z.ids("ProductRatePlan")))
            get_rows("zuora_local_rate_plans", _in(db, "product_rate_plan_id", gone))
        else:
            prod_keys = set(catalog or ())
            prps = get_rows("zuora_local_product_rate_plans", _or(
                _in(db, "zuora_id", set(_col(rps, "product_rate_plan_id"))
                    | set(z.ids("ProductRatePlan")) | set(z.ids("RatePlan", "ProductRatePlanId"))),
                _in(db, "product_id", prod_keys)))
            get_rows("zuora_local_products", _in(
                db, "zuora_id", prod_keys | set(_col(prps, "product_id")) | set(z.ids("Product"))))
            prpcs = get_rows("zuora_local_product_rate_plan_charges", _in(
                db, "product_rate_plan_id", set(_col(prps, "zuora_id"))) if prod_keys
                else ("FALSE", []))
            get_rows("zuora_local_product_rate_plan_charge_tiers", _in(
                db, "product_rate_plan_charge_id", set(_col(prpcs, "zuora_id"))
                | set(z.ids("ProductRatePlanCharge"))))
            if prod_keys:  # D23: the subscriptions' rate plans that use those plans
                get_rows("zuora_local_rate_plans", _or(
                    _in(db, "subscription_id", sub_ids),
                    _in(db, "product_rate_plan_id", set(_col(prps, "zuora_id")))))
        for table in all_tables():
            out.setdefault(table, table_schema(table).empty_table())
    return LocalSide(out, identity)

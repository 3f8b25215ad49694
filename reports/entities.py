"""What broke, in the words of the people who read the report: the entity of each finding.

A reader at 3 a.m. knows subscriptions by name (``A-S00001234``), accounts by number
(``A00000042``) and products by name, not by 32-character Zuora ids. Each finding gets:

* ``account_number`` / ``account_name``: its account's, from the run's snapshot (Zuora's
  ``Account``, else the local ``billing_accounts`` row of an account Zuora no longer has);
* ``product``: for a product-catalog finding, the name of the product it belongs to (up the
  catalogue's parent edges: tier → charge → rate plan → product);
* ``entity_kind`` / ``entity``: the group it is shown in: its subscription, else its account,
  else its product, else its own object and key. One subscription with four fields off by a
  day is one group with four rows;
* ``note``: the explanation without what the row already shows (its own object and id, its
  subscription, "X is a in Zuora but b locally" when the values are in their own column), and
  with the account's number for its id.

All of it set-wise with polars (joins and string expressions): no loop per finding. Names
are read from the snapshot's Parquet files, only the columns and ids needed; a file that is
not there (a catalog-only run, a failed extract) leaves the names empty and the ids in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from core.catalog import BY_NAME, OBJECTS, ObjectSpec, get
from core.snapshot import Snapshot

SUBSCRIPTION, ACCOUNT, PRODUCT, OTHER = "subscription", "account", "product", "other"
KIND_TITLES = {SUBSCRIPTION: "Subscription", ACCOUNT: "Account", PRODUCT: "Product"}
_ACCOUNT = BY_NAME["Account"]
_PRODUCT = BY_NAME["Product"]
ACCOUNT_NAMES = {"account_id": pl.String(), "account_number": pl.String(),
                 "account_name": pl.String()}
PRODUCT_NAMES = {"object": pl.String(), "key": pl.String(), "product": pl.String()}


@dataclass(frozen=True)
class EntityNames:
    """Names for the ids of one run's findings (empty frames when none could be read)."""

    accounts: pl.DataFrame  # ACCOUNT_NAMES
    products: pl.DataFrame  # PRODUCT_NAMES

    @classmethod
    def empty(cls) -> EntityNames:
        return cls(pl.DataFrame(schema=ACCOUNT_NAMES), pl.DataFrame(schema=PRODUCT_NAMES))


def _scan(path: Path, cols: dict[str, str], ids: list[str], id_col: str) -> pl.DataFrame | None:
    """``cols`` (file column -> output name) of the rows of ``path`` whose ``id_col`` is in
    ``ids``; None when the file is not there or lacks a column."""
    if not path.is_file() or not ids:
        return None
    lf = pl.scan_parquet(path)
    have = lf.collect_schema().names()
    if not all(c in have for c in cols):
        return None
    return (lf.select([pl.col(c).cast(pl.String).alias(n) for c, n in cols.items()])
            .filter(pl.col(cols[id_col]).is_in(ids)).unique(cols[id_col], keep="first")
            .collect())


def _both_sides(snap: Snapshot, spec: ObjectSpec, fields: dict[str, str],
                ids: list[str]) -> pl.DataFrame | None:
    """``fields`` (Zuora field -> output name, ``Id`` among them) for ``ids``: Zuora's rows,
    then the local copy's for the ids Zuora does not have (orphans)."""
    z = _scan(snap.zuora_path(spec.name), fields, ids, "Id")
    local_cols = {spec.field(f).column or "": n for f, n in fields.items()}
    found = set(z[fields["Id"]].to_list()) if z is not None else set()
    rest = [i for i in ids if i not in found]
    lo = _scan(snap.local_path(spec.table), local_cols, rest, spec.key_column) if rest else None
    parts = [x for x in (z, lo) if x is not None and x.height]
    return pl.concat(parts) if parts else None


def _accounts(snap: Snapshot, ids: list[str]) -> pl.DataFrame:
    got = _both_sides(snap, _ACCOUNT, {"Id": "account_id", "AccountNumber": "account_number",
                                       "Name": "account_name"}, ids)
    return got if got is not None else pl.DataFrame(schema=ACCOUNT_NAMES)


def _products(snap: Snapshot, drift: pl.DataFrame) -> pl.DataFrame:
    """The product name of each catalog finding, walking the catalogue's parent edges."""
    out = []
    for spec in OBJECTS:
        if spec.group != "catalog":
            continue
        keys = drift.filter(pl.col("object") == spec.name)["key"].unique().drop_nulls()
        if not keys.len():
            continue
        frame = pl.DataFrame({"key": keys, "_id": keys})
        cur = spec
        while cur.name != _PRODUCT.name and cur.parent is not None:
            fld, parent = cur.parent
            up = _both_sides(snap, cur, {"Id": "_id", fld: "_up"}, frame["_id"].to_list())
            if up is None:
                frame = frame.with_columns(_id=pl.lit(None, pl.String))
                break
            frame = frame.join(up, on="_id", how="left").drop("_id").rename({"_up": "_id"})
            cur = get(parent)
        names = _both_sides(snap, _PRODUCT, {"Id": "_id", "Name": "product"},
                            frame["_id"].drop_nulls().to_list())
        if names is None:
            continue
        out.append(frame.join(names, on="_id", how="inner")
                   .select(pl.lit(spec.name).alias("object"), "key", "product"))
    return pl.concat(out) if out else pl.DataFrame(schema=PRODUCT_NAMES)


def read_names(snap: Snapshot | None, drift: pl.DataFrame) -> EntityNames:
    """The names ``drift``'s findings need, read from the run's snapshot."""
    if snap is None or drift.height == 0:
        return EntityNames.empty()
    ids = (pl.concat([drift["account_id"],
                      drift.filter(pl.col("object") == "Account")["key"]])
           .drop_nulls().unique().to_list())
    return EntityNames(accounts=_accounts(snap, ids), products=_products(snap, drift))


def _replace(expr: pl.Expr, old: pl.Expr, new: pl.Expr) -> pl.Expr:
    """Every occurrence of ``old`` (a column: text varying per row) replaced by ``new``; rows
    where ``old`` is null or short (< 8 characters: a value inside words) are left alone."""
    usable = old.is_not_null() & (old.str.len_chars() >= 8) & new.is_not_null()
    return pl.when(usable).then(expr.str.split(old).list.join(new)).otherwise(expr)


def with_note(f: pl.DataFrame) -> pl.DataFrame:
    """``f`` with ``note``: the explanation without what its row and group already show (see
    the module doc). Needs the drift columns plus ``account_number`` and ``_acct`` (the account
    id, an Account finding's own key included). Each step is its own column, so the text is
    computed once per step (a nested expression would repeat the steps below it)."""
    obj, key, sub, n = pl.col("object"), pl.col("key"), pl.col("subscription_name"), pl.col("_n")
    own = obj + pl.lit(" ") + key
    ctx = pl.when(sub.is_not_null()).then(pl.lit(" of subscription ") + sub).otherwise(pl.lit(""))
    # a field difference: the values have their own column
    said = (pl.col("field") + pl.lit(" is ") + pl.col("zuora_value") + pl.lit(" in Zuora but ")
            + pl.col("local_value") + pl.lit(" locally"))
    steps = [
        pl.col("explanation").str.strip_prefix("resolved in this run: "),
        n.str.strip_prefix(own + ctx + pl.lit(": ")),
        pl.when((pl.col("kind") == "field_mismatch") & said.is_not_null())
        .then(n.str.strip_prefix(said)).otherwise(n),
        n.str.replace(r"^\s*\((.*)\):\s*(.+)$", "${1}; ${2}").str.replace(r"^[\s:]+", ""),
        # the row's own id elsewhere in the text ("held back …: Contact <id> is …")
        _replace(n, own + ctx, pl.lit("this ") + obj),
        _replace(n, own, pl.lit("this ") + obj),
        # the account by its number; the group's subscription by "this subscription"
        _replace(n, pl.col("_acct"), pl.col("account_number")),
        _replace(n, sub, pl.lit("this subscription")),
        n.str.slice(0, 1).str.to_uppercase() + n.str.slice(1),
    ]
    for step in steps:
        f = f.with_columns(step.alias("_n"))
    return f.rename({"_n": "note"})


def with_entities(f: pl.DataFrame, names: EntityNames) -> pl.DataFrame:
    """``f`` (drift columns) plus ``account_number``, ``account_name``, ``product``,
    ``entity_kind``, ``entity`` and ``note``."""
    acct = pl.coalesce(pl.col("account_id"),
                       pl.when(pl.col("object") == "Account").then(pl.col("key")))
    out = (f.with_columns(_acct=acct)
           .join(names.accounts.rename({"account_id": "_acct"}), on="_acct", how="left")
           .join(names.products, on=["object", "key"], how="left"))
    kind = (pl.when(pl.col("subscription_name").is_not_null()).then(pl.lit(SUBSCRIPTION))
            .when(pl.col("_acct").is_not_null()).then(pl.lit(ACCOUNT))
            .when(pl.col("product").is_not_null()).then(pl.lit(PRODUCT))
            .otherwise(pl.lit(OTHER)))
    entity = (pl.when(kind == SUBSCRIPTION).then(pl.col("subscription_name"))
              .when(kind == ACCOUNT).then(pl.coalesce("account_number", "_acct"))
              .when(kind == PRODUCT).then(pl.col("product"))
              .otherwise(pl.col("object") + pl.lit(" ") + pl.col("key")))
    return with_note(out.with_columns(entity_kind=kind, entity=entity)).drop("_acct")

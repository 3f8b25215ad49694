"""The operations of a repair plan, one SQL query per kind of repair, in dependency order.

Every query returns rows ``(step, grp, tbl, op, key, before, after, reason, findings, ord)``
over the snapshot connection (``reconcile.load``) with two extra relations: ``auto`` (the
run's open ``auto`` findings) and the rules' helper relations (``z_latest``, ``derived``,
``single_orders``…). Values come from the run's Zuora snapshot, projected exactly as a correct
sync writes them; "before" images come from the run's local snapshot.

Steps (domain.md §3): catalog → accounts → contacts → subscriptions (whole version subtrees,
one transaction per version) → references (pointers re-pointed, then orphans deleted) →
orders and memberships (:data:`repair.plan.STEPS`, declared once by the plan model).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import duckdb

from core.catalog import LOCAL_BY_NAME, OBJECTS, ORDER_METADATA, ObjectSpec, get
from core.localdb.schema import table_columns
from reconcile.rules.base import ns
from reconcile.rules.orders import link_conflict_sql
from repair.sql import insert_json, jv, local_row_json, projected_json, ref

OP_COLUMNS = "step, grp, tbl, op, key, before, after, reason, findings, ord"
_ORDERS = {c.name: c.local_type for c in LOCAL_BY_NAME["orders"].columns}


def _types(table: str) -> dict[str, str]:
    return {c.name: c.local_type for c in table_columns(table)}


def _stamps(table: str, now: str) -> dict[str, str]:
    cols = _types(table)
    return {c: f"to_json('{now}')" for c in ("created_at", "updated_at") if c in cols}


def _group(spec: ObjectSpec, side: str, alias: str) -> str:
    """SQL: the transaction group of a row: its subscription version for subtree rows, its
    account for accounts and contacts, one group for the whole catalog (an atomic refresh)."""
    if spec.group == "catalog":
        return "'catalog'"
    if spec.name == "Account":
        return f"'account:' || {alias}.key"
    if spec.name == "Contact":
        acct = 'z."AccountId"' if side == "zuora" else f"l.{spec.field('AccountId').column}"
        return f"'account:' || coalesce({acct}, {alias}.key)"
    if spec.name == "Subscription":
        return f"'version:' || {alias}.key"
    if "SubscriptionId" in spec.field_names:
        sid = 'z."SubscriptionId"' if side == "zuora" else \
            f"l.{spec.field('SubscriptionId').column}"
        return f"'version:' || {sid}"
    # tiers: through their charge
    charge = get("RatePlanCharge")
    if side == "zuora":
        return ("'version:' || (SELECT c.\"SubscriptionId\" FROM zuora.\"RatePlanCharge\" c "
                "WHERE c.\"Id\" = z.\"RatePlanChargeId\")")
    return (f"'version:' || coalesce((SELECT c.{charge.field('SubscriptionId').column} FROM "
            f"local.{charge.table} c WHERE c.{charge.key_column} = "
            f"l.{spec.field('RatePlanChargeId').column}), 'unknown')")


def _step(spec: ObjectSpec) -> str:
    return {"catalog": "catalog", "subscriptions": "subscriptions"}.get(
        spec.group, "accounts" if spec.name == "Account" else "contacts")


def inserts_sql(spec: ObjectSpec, now: str) -> str:
    """Rows Zuora has and the local copy lacks: insert the projected row."""
    extra = _stamps(spec.table, now)
    skip_refs = spec.name == "Account"  # bill-to/sold-to set once the contacts exist
    if spec.name == "Contact":
        extra["billing_account_id"] = ref("billing_accounts", "zuora_account_id",
                                          'z."AccountId"')
    return f"""
    SELECT '{_step(spec)}' AS step, {_group(spec, 'zuora', 'a')} AS grp, '{spec.table}' AS tbl,
           'insert' AS op, json_object('{spec.key_column}', a.key) AS key, NULL::JSON AS before,
           {insert_json(spec, 'z', skip_refs=skip_refs, extra=extra)} AS after,
           a.explanation AS reason, [a.fingerprint] AS findings, 1 AS ord
    FROM auto a JOIN zuora."{spec.name}" z ON z."Id" = a.key
    WHERE a.object = '{spec.name}' AND a.kind = 'missing_in_local'{_insertable(spec)}"""


def _insertable(spec: ObjectSpec) -> str:
    """SQL conjuncts: Zuora row ``z`` fits every NOT NULL local column (a nullable column
    that cannot hold its value is written NULL by the projection; a NOT NULL one stops the
    insert: annotate made that finding a person's, this guards an older drift file)."""
    return "".join(f" AND ({why}) IS NULL" for f in spec.stored_fields
                   if not f.nullable and (why := f.misfit_sql(f'z."{f.name}"')) is not None)


def updates_sql(spec: ObjectSpec, only: Collection[str] | None = None) -> str | None:
    """Rows on both sides with differing fields: set those columns to Zuora's projected value
    (one operation per row; REF columns are re-pointed in the references step). A column
    whose Zuora value the local column cannot hold is left alone (``Field.misfit_sql``; its
    finding is a person's) while the row's other columns are updated.

    ``only``: the fields the ``auto`` mismatches of ``spec`` name (None: every field). Each
    arm reads only the findings of its own field, so the others cannot add to an operation;
    leaving them out spares DuckDB binding one arm per field of a wide object (a targeted
    sync's one changed field of a subscription)."""
    fields = [f for f in spec.compared_fields if f.ref is None
              and (only is None or f.name in only)]
    if not fields:
        return None
    types = _types(spec.table)
    arms = " UNION ALL ".join(
        f"SELECT a.key, '{f.column}' AS col, {projected_json(f, 'z')} AS zv, "
        f"{jv(f'l.{f.column}', types[f.column])} AS lv, a.fingerprint, a.explanation, "
        f"{_group(spec, 'zuora', 'a')} AS grp "
        f'FROM auto a JOIN zuora."{spec.name}" z ON z."Id" = a.key '
        f"JOIN local.{spec.table} l ON CAST(l.{spec.key_column} AS VARCHAR) = a.key "
        f"WHERE a.object = '{spec.name}' AND a.kind = 'field_mismatch' AND a.field = '{f.name}'"
        + (f" AND ({why}) IS NULL" if (why := f.misfit_sql(f'z."{f.name}"')) else "")
        for f in fields)
    return f"""
    SELECT '{_step(spec)}' AS step, any_value(grp) AS grp, '{spec.table}' AS tbl,
           'update' AS op, json_object('{spec.key_column}', key) AS key,
           json_group_object(col, lv) AS before, json_group_object(col, zv) AS after,
           string_agg(explanation, ' | ' ORDER BY col) AS reason,
           list(fingerprint ORDER BY col) AS findings, 2 AS ord
    FROM ({arms}) GROUP BY key"""


def deletes_sql(spec: ObjectSpec) -> str:
    """Auto orphans: delete the local row (human orphans — a vanished subscription, a
    referenced billing account or catalog row — never get here). Orphan contacts and billing
    accounts go in the references step, after pointers moved off them."""
    step = "references" if spec.group == "accounts" else _step(spec)
    return f"""
    SELECT '{step}' AS step, {_group(spec, 'local', 'a')} AS grp, '{spec.table}' AS tbl,
           'delete' AS op, json_object('{spec.key_column}', a.key) AS key,
           {local_row_json(spec.table, 'l')} AS before, NULL::JSON AS after,
           a.explanation AS reason, [a.fingerprint] AS findings,
           {3 if spec.name != 'Account' else 4} AS ord
    FROM auto a JOIN local.{spec.table} l ON CAST(l.{spec.key_column} AS VARCHAR) = a.key
    WHERE a.object = '{spec.name}' AND a.kind = 'orphaned_in_local'"""


def account_refs_sql() -> str:
    """Bill-To/Sold-To pointers: drifted ones (D18) and those of accounts inserted by this plan
    (their contacts exist once the contacts step ran)."""
    acc = get("Account")
    arms = []
    for f in (acc.field("BillToId"), acc.field("SoldToId")):
        arms.append(f"""
        SELECT a.key, '{f.column}' AS col, {projected_json(f, 'z')} AS zv,
               {jv(f'l.{f.column}', 'BIGINT')} AS lv, a.fingerprint, a.explanation
        FROM auto a JOIN zuora."Account" z ON z."Id" = a.key
        LEFT JOIN local.billing_accounts l ON l.zuora_account_id = a.key
        WHERE a.object = 'Account' AND (a.kind = 'missing_in_local'
              OR (a.kind = 'field_mismatch' AND a.field = '{f.name}'))""")
    return f"""
    SELECT 'references' AS step, 'account:' || key AS grp, 'billing_accounts' AS tbl,
           'update' AS op, json_object('zuora_account_id', key) AS key,
           json_group_object(col, lv) AS before, json_group_object(col, zv) AS after,
           any_value(explanation) AS reason, list(DISTINCT fingerprint) AS findings, 1 AS ord
    FROM ({' UNION ALL '.join(arms)}) GROUP BY key"""


def _order_value(col: str) -> str:
    """SQL over ``single_orders`` (alias s): Zuora's value for a derived order column."""
    if col == "billing_account_id":
        return ref("billing_accounts", "zuora_account_id", "s.z_account")
    if col == "zuora_account_id":
        return jv("s.z_account", _ORDERS[col])
    if col == "gl_namespace_name":
        return jv("s.z_ns_name", _ORDERS[col])
    if col == "gl_namespace_id":
        return jv("s.z_ns", _ORDERS[col])
    return jv(f"s.z_{col}", _ORDERS[col])


def order_columns_sql(step: str, columns: tuple[str, ...]) -> str:
    """Single-order column findings (D02, D10, D24, D14, D25 names): set the column to what
    Zuora's latest version says. ``references`` takes the pointers, ``orders`` the rest."""
    # a namespace linked back (D13) brings its name along: one operation, no D25 next run
    # (the companion column carries no fingerprint nor reason of its own)
    pairs = [(c, c, "a.fingerprint", "a.explanation") for c in columns] + [
        ("gl_namespace_id", "gl_namespace_name", "NULL", "NULL")
        for c in columns if c == "gl_namespace_id"]
    arms = " UNION ALL ".join(
        f"SELECT s.id, s.subscription_name, '{c}' AS col, {_order_value(c)} AS zv, "
        f"{jv(f's.{c}', _ORDERS[c])} AS lv, {fp} AS fingerprint, {why} AS explanation "
        f"FROM auto a JOIN single_orders s ON s.subscription_name = a.key "
        f"WHERE a.object = 'orders' AND a.kind = 'rule_violation' AND a.field = '{f}'"
        for f, c, fp, why in pairs)
    return f"""
    SELECT '{step}' AS step, 'order:' || any_value(subscription_name) AS grp, 'orders' AS tbl,
           'update' AS op, json_object('id', id) AS key, json_group_object(col, lv) AS before,
           json_group_object(col, zv) AS after, string_agg(explanation, ' | ' ORDER BY col)
           AS reason, list(fingerprint ORDER BY col) FILTER (WHERE fingerprint IS NOT NULL)
           AS findings, 2 AS ord
    FROM ({arms}) GROUP BY id"""


_DERIVED = ("subscription_id", "zuora_account_id", "billing_account_id", "product_rate_plan_id",
            "start_date", "end_date", "quantity", "amendment_type")
_META = [c for c in ORDER_METADATA if c in _ORDERS]


def _meta_set(c: str, alias: str) -> str:
    """SQL: a metadata value counts as set (a false boolean is the column default)."""
    if _ORDERS[c] == "BOOLEAN":
        return f"coalesce({alias}.{c}, false)"
    if c.endswith("namespace_id"):
        return f"{ns(f'{alias}.{c}')} IS NOT NULL"
    return f"{alias}.{c} IS NOT NULL"


def dedupe_sql() -> str:
    """D11 (auto): the keeper gets the GitLab metadata it lacks from the losers and its
    Zuora-derived columns from the latest version; then the losers are deleted."""
    keeper = "(CAST(json_extract(a.evidence, '$.keeper') AS BIGINT))"
    losers = "(CAST(json_extract(a.evidence, '$.losers') AS BIGINT[]))"
    meta_arms = [
        f"""SELECT a.key AS name, k.id, '{c}' AS col,
                   {jv(f'(SELECT x.{c} FROM local.orders x WHERE list_contains({losers}, x.id) '
                       f'AND {_meta_set(c, "x")} ORDER BY x.id LIMIT 1)', _ORDERS[c])} AS zv,
                   {jv(f'k.{c}', _ORDERS[c])} AS lv, a.fingerprint, a.explanation
            FROM auto a JOIN local.orders k ON k.id = {keeper}
            WHERE a.rule = 'D11' AND a.kind = 'duplicate_local' AND NOT {_meta_set(c, 'k')}
              AND EXISTS (SELECT 1 FROM local.orders x WHERE list_contains({losers}, x.id)
                          AND {_meta_set(c, 'x')})""" for c in _META]
    derived_arms = [
        f"""SELECT a.key, k.id, '{c}', {
            ref('billing_accounts', 'zuora_account_id', 'd.zuora_account_id')
            if c == 'billing_account_id' else jv(f'd.{c}', _ORDERS[c])},
                   {jv(f'k.{c}', _ORDERS[c])}, a.fingerprint, a.explanation
            FROM auto a JOIN local.orders k ON k.id = {keeper}
            JOIN derived d ON d.subscription_name = a.key
            WHERE a.rule = 'D11' AND a.kind = 'duplicate_local'
              AND (k.{c} IS DISTINCT FROM d.{c}{' OR d.billing_account_id IS NULL'
                                             if c == 'billing_account_id' else ''})"""
        for c in _DERIVED]
    return f"""
    SELECT 'orders' AS step, 'order:' || any_value(name) AS grp, 'orders' AS tbl,
           'update' AS op, json_object('id', id) AS key, json_group_object(col, lv) AS before,
           json_group_object(col, zv) AS after, any_value(explanation) AS reason,
           list(DISTINCT fingerprint) AS findings, 1 AS ord
    FROM ({' UNION ALL '.join(meta_arms + derived_arms)}) GROUP BY id
    UNION ALL
    SELECT 'orders', 'order:' || a.key, 'orders', 'delete', json_object('id', x.id),
           {local_row_json('orders', 'x')}, NULL::JSON, a.explanation, [a.fingerprint], 2
    FROM auto a JOIN local.orders x ON list_contains({losers}, x.id)
    WHERE a.rule = 'D11' AND a.kind = 'duplicate_local'"""


def create_orders_sql(now: str, customer_id: str | None = None) -> str:
    """D13: an order for a paid subscription without one, from its latest version, with the
    namespace that version names — a namespace carries any number of orders (a base plan,
    add-ons, renewals booked as new subscriptions once the old one ended); the link is left to
    a person only when two active base subscriptions would share it (D12,
    :func:`reconcile.rules.orders.link_conflict_sql`). ``customer_id``: SQL over the
    derivation ``d`` giving the JSON of the order's customer (the backfill's: a reference to
    the customer it creates in the same chunk); default: the local customer of the Sold-To
    e-mail, when one exists."""
    z_ns = ns("d.namespace_id")
    conflict = link_conflict_sql("d.subscription_name", z_ns, "d.latest_status",
                                 "d.product_rate_plan_id")
    values = {
        "subscription_name": jv("d.subscription_name", "VARCHAR"),
        "subscription_id": jv("d.subscription_id", "VARCHAR"),
        "zuora_account_id": jv("d.zuora_account_id", "VARCHAR"),
        "billing_account_id": ref("billing_accounts", "zuora_account_id", "d.zuora_account_id"),
        "product_rate_plan_id": jv("d.product_rate_plan_id", "VARCHAR"),
        "start_date": jv("d.start_date", "DATE"), "end_date": jv("d.end_date", "DATE"),
        "quantity": jv("d.quantity", "INTEGER"),
        "amendment_type": jv("d.amendment_type", "VARCHAR"),
        "customer_id": customer_id or jv(
            "(SELECT c.id FROM local.customers c JOIN zuora.Account za ON "
            "za.Id = d.zuora_account_id JOIN zuora.Contact sc ON sc.Id = "
            "za.SoldToId WHERE lower(trim(c.email)) = lower(trim(sc.WorkEmail)) "
            "LIMIT 1)", "BIGINT"),
        "gl_namespace_id": jv(f"CASE WHEN NOT {conflict} THEN {z_ns} END", "VARCHAR"),
        "gl_namespace_name": jv(f"CASE WHEN NOT {conflict} AND {z_ns} IS NOT NULL THEN "
                                "d.namespace_name END", "VARCHAR"),
        "trial": "to_json(false)", "reconciliation_accepted": "to_json(false)",
        "source": "to_json('recon-repair')",
        "created_at": f"to_json('{now}')", "updated_at": f"to_json('{now}')",
    }
    after = "json_object(" + ", ".join(f"'{k}', {v}" for k, v in values.items()) + ")"
    return f"""
    SELECT 'orders' AS step, 'order:' || a.key AS grp, 'orders' AS tbl, 'insert' AS op,
           json_object('subscription_name', d.subscription_name, 'zuora_account_id',
                       d.zuora_account_id) AS key, NULL::JSON AS before, {after} AS after,
           a.explanation AS reason, [a.fingerprint] AS findings, 1 AS ord
    FROM auto a JOIN derived d ON d.subscription_name = a.key
    WHERE a.rule = 'D13' AND a.field IS NULL"""


def people_sql(now: str) -> str:
    """D19: the customer for a Sold-To e-mail (created when missing) and its membership to
    every billing account whose Zuora Sold-To has that e-mail."""
    sold = ("SELECT lower(trim(sc.WorkEmail)) AS email, trim(sc.WorkEmail) AS raw, "
            "sc.FirstName, sc.LastName, a.Id AS zid FROM zuora.Account a "
            "JOIN zuora.Contact sc ON sc.Id = a.SoldToId")
    cust = "(SELECT id, lower(trim(email)) AS email FROM local.customers)"
    customer = {
        "email": "to_json(s.email)", "first_name": jv("any_value(s.FirstName)", "VARCHAR"),
        "last_name": jv("any_value(s.LastName)", "VARCHAR"),
        "zuora_account_id": jv("min(s.zid)", "VARCHAR"),
        "created_at": f"to_json('{now}')", "updated_at": f"to_json('{now}')",
    }
    cust_after = "json_object(" + ", ".join(f"'{k}', {v}" for k, v in customer.items()) + ")"
    member_customer = ("CASE WHEN c.id IS NOT NULL THEN to_json(c.id) ELSE "
                       + ref("customers", "email", "s.email") + " END")
    return f"""
    SELECT 'orders' AS step, 'people:' || a.key AS grp, 'customers' AS tbl, 'insert' AS op,
           json_object('email', s.email) AS key, NULL::JSON AS before, {cust_after} AS after,
           any_value(a.explanation) AS reason, [any_value(a.fingerprint)] AS findings, 1 AS ord
    FROM auto a JOIN ({sold}) s ON s.email = a.key
    WHERE a.object = 'customers' AND a.rule = 'D19'
    GROUP BY a.key, s.email
    UNION ALL
    SELECT 'orders', 'people:' || a.key, 'billing_account_memberships', 'insert',
           json_object('customer_id', {member_customer}, 'billing_account_id',
                       {ref('billing_accounts', 'zuora_account_id', 's.zid')}),
           NULL::JSON,
           json_object('customer_id', {member_customer}, 'billing_account_id',
                       {ref('billing_accounts', 'zuora_account_id', 's.zid')},
                       'created_at', to_json('{now}'), 'updated_at', to_json('{now}')),
           a.explanation, [a.fingerprint], 2
    FROM auto a JOIN ({sold}) s ON s.email = a.key
    LEFT JOIN {cust} c ON c.email = s.email
    LEFT JOIN local.billing_accounts ba ON ba.zuora_account_id = s.zid
    WHERE a.rule = 'D19' AND a.object IN ('customers', 'billing_account_memberships')
      AND NOT EXISTS (SELECT 1 FROM local.billing_account_memberships m
                      WHERE m.customer_id = c.id AND m.billing_account_id = ba.id)"""


@dataclass(frozen=True)
class Present:
    """What a plan's ``auto`` findings are: their distinct (object, kind, rule, field).
    Every step query reads only findings of its own object and kind — and the order and
    people steps only their rules' and fields' — so a step none of them can feed makes no
    operation and is left out of the plan's query: DuckDB spends most of a targeted sync's
    planning binding a union of steps it does not need."""

    shapes: frozenset[tuple[str, str, str | None, str | None]]

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection) -> Present:
        return cls(frozenset(con.execute(
            "SELECT DISTINCT object, kind, rule, field FROM auto").fetchall()))

    def has(self, obj: str, kind: str | None = None, rule: str | None = None) -> bool:
        return any(o == obj and kind in (None, k) and rule in (None, r)
                   for o, k, r, _f in self.shapes)

    def fields(self, obj: str, kind: str) -> set[str]:
        return {f for o, k, _r, f in self.shapes if o == obj and k == kind and f is not None}


def all_steps_sql(now: str, scope: str = "all", present: Present | None = None) -> list[str]:
    """Every operation query, in step order (a catalog-only snapshot: the catalog step).

    ``present``: what the ``auto`` findings are (None: anything, every step); the steps no
    finding can feed are left out (see :class:`Present`; ``tests/sync/test_keyed.py``
    shows the operations are the same either way)."""
    def has(obj: str, kind: str | None = None, rule: str | None = None) -> bool:
        return present is None or present.has(obj, kind, rule)

    def fields(obj: str, kind: str) -> set[str] | None:
        return None if present is None else present.fields(obj, kind)

    out: list[str] = []
    for group in ("catalog",) if scope == "catalog" else ("catalog", "accounts",
                                                           "subscriptions"):
        for spec in (o for o in OBJECTS if o.group == group):
            if has(spec.name, "missing_in_local"):
                out.append(inserts_sql(spec, now))
            if has(spec.name, "field_mismatch") and (
                    u := updates_sql(spec, fields(spec.name, "field_mismatch"))) is not None:
                out.append(u)
            if has(spec.name, "orphaned_in_local"):
                out.append(deletes_sql(spec))
    if scope == "catalog":
        return out
    refs = fields("Account", "field_mismatch")
    if has("Account", "missing_in_local") or refs is None or refs & {"BillToId", "SoldToId"}:
        out.append(account_refs_sql())
    violated = fields("orders", "rule_violation")
    for step, columns in (("references", ("subscription_id", "zuora_account_id",
                                          "billing_account_id")),
                          ("orders", ("product_rate_plan_id", "start_date", "end_date",
                                      "quantity", "amendment_type", "gl_namespace_id",
                                      "gl_namespace_name"))):
        cols = tuple(c for c in columns if violated is None or c in violated)
        if cols:
            out.append(order_columns_sql(step, cols))
    if has("orders", "duplicate_local", "D11"):
        out.append(dedupe_sql())
    if has("orders", rule="D13"):
        out.append(create_orders_sql(now))
    if has("customers", rule="D19") or has("billing_account_memberships", rule="D19"):
        out.append(people_sql(now))
    return out

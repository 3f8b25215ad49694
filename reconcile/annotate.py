"""What the diff alone does not know about a row difference, filled in set-wise.

* context for drill-down: the subscription name and Zuora account a row belongs to, found by
  walking the catalogue's parent edges (tier → charge → rate plan → subscription) on the side
  that has the row;
* the Zuora ``UpdatedDate`` that decides the grace window;
* the action (domain.md §5): orphans of a subscription that vanished from Zuora (D15), orphan
  billing accounts still referenced (D17) and catalog rows still referenced (D23) need a
  person; every other row difference is repaired from Zuora (auto);
* a severity, the drift it most likely is (``drift_id``), and an explanation;
* values valid in Zuora that the local column cannot hold (``Field.misfit_sql``: longer than
  its VARCHAR, a NUL byte, more integer digits than its DECIMAL, outside its integer type):
  the column's finding needs a person (never auto: a repair would have to cut the value), and
  a missing row whose NOT NULL column cannot hold its value is not inserted (a person widens
  the column first); a nullable one is inserted with NULL there;
* date attribution: D05 (time zone) only for a difference of exactly ±1 day; any other date
  difference is D07 when the subscription's status or cancellation differs too (a missed
  cancellation moves its end dates by months), otherwise it has no drift id and says by how
  many days it differs.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from core.catalog import OBJECTS, Field, Norm, ObjectSpec, get
from reconcile.diff import AUDIT_FIELDS, HIGH_FIELDS
from reconcile.findings import sql_text

DIFF_KINDS = "('missing_in_local', 'orphaned_in_local', 'field_mismatch')"


def _chain(spec: ObjectSpec) -> list[tuple[str, ObjectSpec]]:
    out, cur = [], spec
    while cur.parent is not None:
        fld, parent = cur.parent
        nxt = get(parent)
        out.append((fld, nxt))
        cur = nxt
    return out


def _context_sql(spec: ObjectSpec, side: str) -> str:
    """``key, subscription_name, account_id, updated`` for this object's finding keys on one
    side (``zuora`` or ``local``)."""
    z = side == "zuora"
    key = '"Id"' if z else spec.key_column
    rel = f'zuora."{spec.name}"' if z else f"local.{spec.table}"
    joins, alias, cur = [], "t0", spec
    sub_alias = "t0" if spec.name == "Subscription" else None
    chain = _chain(spec)
    # A shortcut where the row carries its subscription (charges, rate plans): one join
    # instead of a walk through millions of parent rows.
    for i, (_fld, parent) in enumerate(chain):
        if "SubscriptionId" in parent.field_names and parent.name != "Subscription" \
                and i + 1 < len(chain):
            chain = [*chain[:i + 1], ("SubscriptionId", get("Subscription"))]
            break
    if "SubscriptionId" in spec.field_names:
        chain = [("SubscriptionId", get("Subscription"))]
    for i, (fld, parent) in enumerate(chain, start=1):
        child_col = f'"{fld}"' if z else cur.field(fld).column
        pkey = '"Id"' if z else parent.key_column
        # parents through the unfiltered views: a quarantined parent still names the
        # subscription its children belong to (reconcile.quarantine holds them back)
        prel = f'zuora_all."{parent.name}"' if z else f"local_all.{parent.table}"
        joins.append(f"LEFT JOIN {prel} t{i} ON t{i}.{pkey} = {alias}.{child_col}")
        alias, cur = f"t{i}", parent
        if parent.name == "Subscription":
            sub_alias = alias
    sub = get("Subscription")
    if sub_alias:
        name = f'{sub_alias}."Name"' if z else f"{sub_alias}.{sub.field('Name').column}"
        acct = f'{sub_alias}."AccountId"' if z else f"{sub_alias}.{sub.field('AccountId').column}"
    elif spec.name == "Account":
        name, acct = "NULL", f"t0.{key}"
    elif spec.name == "Contact":
        name = "NULL"
        acct = 't0."AccountId"' if z else f"t0.{spec.field('AccountId').column}"
    else:
        name, acct = "NULL", "NULL"
    updated = 't0."UpdatedDate"' if z and "UpdatedDate" in spec.field_names else "NULL"
    if not z:  # a local-only row: when Zuora deleted it, if an incremental export saw that
        joins.append(f'LEFT JOIN deleted."{spec.name}" gone '
                     f'ON gone."Id" = CAST(t0.{key} AS VARCHAR)')
        updated = "gone.deleted_at"
    return (f"SELECT CAST(t0.{key} AS VARCHAR) AS key, {name} AS subscription_name, "
            f"{acct} AS account_id, CAST({updated} AS TIMESTAMP) AS updated "
            f"FROM {rel} t0 {' '.join(joins)} "
            f"WHERE CAST(t0.{key} AS VARCHAR) IN (SELECT key FROM findings WHERE object = "
            f"{sql_text(spec.name)} AND kind IN {DIFF_KINDS})")


def _set_context(con: duckdb.DuckDBPyConnection, spec: ObjectSpec,
                 has: Callable[[str], bool] = lambda _kind: True) -> None:
    """Subscription, account and update time of the object's findings, from the side that
    holds the row; ``has``: whether any finding of the object is of that kind (a side none
    is read from is skipped)."""
    obj = sql_text(spec.name)
    for side, kinds in (("zuora", ("missing_in_local", "field_mismatch")),
                        ("local", ("orphaned_in_local",))):
        if not any(has(k) for k in kinds):
            continue
        kinds_sql = "(" + ", ".join(f"'{k}'" for k in kinds) + ")"
        con.execute(f"""
            UPDATE findings f SET subscription_name = c.subscription_name,
                                  account_id = c.account_id, zuora_updated = c.updated
            FROM ({_context_sql(spec, side)}) c
            WHERE f.object = {obj} AND f.kind IN {kinds_sql} AND f.key = c.key""")


def _referenced_sql(spec: ObjectSpec) -> str | None:
    """SQL predicate on ``f.key`` (an orphan's Zuora id): is the local row still used?"""
    if spec.name == "Account":
        return ("EXISTS (SELECT 1 FROM local.billing_accounts ba WHERE ba.zuora_account_id = "
                "f.key AND (ba.id IN (SELECT billing_account_id FROM local.orders) OR ba.id IN "
                "(SELECT billing_account_id FROM local.billing_account_memberships)))")
    if spec.name == "Contact":
        return ("EXISTS (SELECT 1 FROM local.billing_account_contacts c JOIN "
                "local.billing_accounts ba ON ba.id = c.billing_account_id WHERE "
                "c.zuora_contact_id = f.key AND ba.zuora_account_id NOT IN (SELECT Id FROM "
                "zuora.Account) AND (ba.id IN (SELECT billing_account_id FROM local.orders) OR "
                "ba.id IN (SELECT billing_account_id FROM local.billing_account_memberships)))")
    plans = "(SELECT id FROM referenced_plans)"
    if spec.name == "ProductRatePlan":
        return f"f.key IN {plans}"
    if spec.name == "ProductRatePlanCharge":
        return (f"EXISTS (SELECT 1 FROM local.{spec.table} x WHERE x.{spec.key_column} = f.key "
                f"AND x.{spec.field('ProductRatePlanId').column} IN {plans})")
    if spec.name == "ProductRatePlanChargeTier":
        ch = get("ProductRatePlanCharge")
        return (f"EXISTS (SELECT 1 FROM local.{spec.table} x JOIN local.{ch.table} c ON "
                f"c.{ch.key_column} = x.{spec.field('ProductRatePlanChargeId').column} WHERE "
                f"x.{spec.key_column} = f.key AND c.{ch.field('ProductRatePlanId').column} "
                f"IN {plans})")
    if spec.name == "Product":
        prp = get("ProductRatePlan")
        return (f"EXISTS (SELECT 1 FROM local.{prp.table} x WHERE "
                f"x.{prp.field('ProductId').column} = f.key AND x.{prp.key_column} IN {plans})")
    return None


def _field_case(spec: ObjectSpec, what: str, only: set[str] | None = None) -> str:
    """CASE over ``f.field`` giving severity (``what='severity'``) or drift id (``only``:
    arms for those fields only)."""
    arms = []
    for fld in spec.compared_fields:
        if only is not None and fld.name not in only:
            continue
        if what == "severity":
            val = ("low" if fld.name in AUDIT_FIELDS else
                   "high" if fld.name in HIGH_FIELDS else "medium")
        else:
            val = _field_drift(spec, fld.name, fld.norm)
        arms.append(f"WHEN '{fld.name}' THEN '{val}'")
    default = "'medium'" if what == "severity" else "NULL"
    return f"CASE f.field {' '.join(arms)} ELSE {default} END" if arms else default


def _field_drift(spec: ObjectSpec, name: str, norm: Norm) -> str:
    if spec.group == "catalog":
        return "D22"
    if spec.name == "Account":
        return "D18" if name in ("BillToId", "SoldToId") else "D21"
    if spec.name == "Contact":
        return "D19"
    if name == "Version":
        return "D09"
    if name == "IsLastSegment":
        return "D08"
    if name in ("Status", "CancelledDate"):
        return "D07"
    if norm is Norm.DATE:
        return "D05"  # until _attribute_dates looks at the size of the difference
    if norm in (Norm.DECIMAL, Norm.INTEGER):
        return "D06"
    return "D04"


def annotate(con: duckdb.DuckDBPyConnection, objects: list[ObjectSpec] | None = None, *,
             narrow: bool = False) -> None:
    """Fill context, action, severity, drift id and explanation of the diff's findings.

    ``narrow``: the per-field parts of the statements (a CASE arm, a UNION arm per field)
    only for the fields the findings name — each only ever matches findings of its own
    field, so the result is the same, and DuckDB does not bind an arm for every field of a
    wide object (a targeted sync's keyed reconcile: a field or two)."""
    z_names = "(SELECT name FROM z_names)"
    present: dict[str, set[str]] | None = None
    kinds: dict[str, set[str]] | None = None
    if narrow:
        present, kinds = {}, {}
        for obj_name, kind, fld in con.execute(
                "SELECT DISTINCT object, kind, field FROM findings").fetchall():
            kinds.setdefault(obj_name, set()).add(kind)
            if fld is not None:
                present.setdefault(obj_name, set()).add(fld)
    for spec in objects if objects is not None else OBJECTS:
        only = None if present is None else present.get(spec.name, set())
        # narrow: the CASE arm of a kind no finding of the object has never matches a row;
        # its SQL (subqueries over the local copy) is left out rather than bound
        has = (lambda _k: True) if kinds is None else kinds.get(spec.name, set()).__contains__
        obj = sql_text(spec.name)
        _set_context(con, spec, has)
        ref = _referenced_sql(spec)
        subtree = spec.group == "subscriptions"
        human_orphan = (f"f.subscription_name IS NULL OR f.subscription_name NOT IN {z_names}"
                        if subtree else ref if ref is not None else "false")
        if not has("orphaned_in_local"):
            human_orphan = "false"
        orphan_drift = {
            "subscriptions": f"CASE WHEN {human_orphan} THEN 'D15' ELSE 'D03' END",
            "catalog": f"CASE WHEN {human_orphan} THEN 'D23' ELSE 'D22' END",
        }.get(spec.group, "'D17'" if spec.name == "Account" else
              "CASE WHEN f.key IN (SELECT zuora_contact_id FROM local.billing_account_contacts "
              "c JOIN local.billing_accounts ba ON ba.id = c.billing_account_id WHERE "
              "ba.zuora_account_id NOT IN (SELECT Id FROM zuora.Account)) THEN 'D17' "
              "ELSE 'D18' END")
        missing_drift = {"subscriptions": "'D01'", "catalog": "'D22'"}.get(
            spec.group, "'D16'" if spec.name == "Account" else
            "CASE WHEN f.account_id IN (SELECT zuora_account_id FROM local.billing_accounts) "
            "THEN 'D18' ELSE 'D16' END")
        if not has("orphaned_in_local"):
            orphan_drift = "NULL"
        if not has("missing_in_local"):
            missing_drift = "NULL"
        orphan_sev = ("'high'" if spec.name in ("Subscription", "Account") else
                      "'low'" if spec.group == "catalog" else "'medium'")
        con.execute(f"""
            UPDATE findings f SET
              action = CASE WHEN f.kind = 'orphaned_in_local' AND ({human_orphan})
                            THEN 'human' ELSE 'auto' END,
              drift_id = CASE f.kind WHEN 'orphaned_in_local' THEN {orphan_drift}
                                     WHEN 'missing_in_local' THEN {missing_drift}
                                     ELSE {_field_case(spec, 'drift', only)} END,
              severity = CASE f.kind
                  WHEN 'field_mismatch' THEN {_field_case(spec, 'severity', only)}
                  WHEN 'orphaned_in_local' THEN
                       CASE WHEN ({human_orphan}) THEN 'high' ELSE {orphan_sev} END
                  ELSE {orphan_sev} END
            WHERE f.object = {obj} AND f.kind IN {DIFF_KINDS}""")
    _attribute_dates(con)
    for spec in objects if objects is not None else OBJECTS:
        obj, what = sql_text(spec.name), sql_text(spec.name)
        ctx = ("CASE WHEN f.subscription_name IS NOT NULL THEN ' of subscription ' || "
               "f.subscription_name ELSE '' END")
        con.execute(f"""
            UPDATE findings f SET explanation = CASE f.kind
              WHEN 'missing_in_local' THEN
                   format('{{}} {{}}{{}} exists in Zuora but not in the local copy: insert it '
                          'from Zuora', {what}, f.key, {ctx})
              WHEN 'orphaned_in_local' THEN CASE
                   WHEN f.action = 'auto' THEN
                        format('{{}} {{}}{{}} is in the local copy but not in Zuora''s export '
                               '(deleted or rolled back in Zuora): delete the local row',
                               {what}, f.key, {ctx})
                   WHEN f.drift_id = 'D15' THEN
                        format('{{}} {{}}{{}}: no version of this subscription exists in Zuora '
                               'any more; report, do not delete or revoke (a person decides)',
                               {what}, f.key, {ctx})
                   WHEN f.drift_id = 'D23' THEN
                        format('{{}} {{}} was deleted from the Zuora catalog while local '
                               'subscriptions reference its plan: keep it, report', {what},
                               f.key)
                   ELSE format('{{}} {{}} does not exist in Zuora but local orders or '
                               'memberships still use it: a person decides', {what}, f.key)
                   END
              ELSE format('{{}} {{}}{{}}: {{}} is {{}} in Zuora but {{}} locally{{}}: update '
                          'from Zuora', {what}, f.key, {ctx}, f.field,
                          coalesce(f.zuora_value, 'empty'), coalesce(f.local_value, 'empty'),
                          CASE WHEN f.drift_id = 'D05' THEN ' (one day off: a time-zone '
                               || 'conversion bug if many rows share the offset)'
                               WHEN {_DAYS} IS NOT NULL THEN
                                    format(' (date differs by {{}} days{{}})', abs({_DAYS}),
                                           CASE WHEN f.drift_id = 'D07' THEN ': the '
                                                || 'subscription''s status or cancellation '
                                                || 'differs too' ELSE '' END)
                               ELSE '' END)
              END
            WHERE f.object = {obj} AND f.kind IN {DIFF_KINDS}""")
        _misfits(con, spec, only)


# The day difference the diff recorded for a date field (local − Zuora), or NULL.
_DAYS = "TRY_CAST(json_extract_string(f.evidence, '$.day_shift') AS BIGINT)"
# Fields whose difference shows the subscription's status or cancellation differs (D07).
_STATUS_FIELDS = "('Status', 'CancelledDate')"


def _attribute_dates(con: duckdb.DuckDBPyConnection) -> None:
    """D05 only for a date exactly ±1 day off (domain.md §5 D05: |Δ| = 1). Any other date
    difference takes the drift of a cause visible on the same row or subscription — its
    status or cancellation date differs: D07 (a missed cancellation moves end dates by
    months) — and otherwise no drift id (the explanation gives the number of days)."""
    con.execute(f"""
        UPDATE findings f SET drift_id = CASE
            WHEN abs({_DAYS}) = 1 THEN 'D05'
            WHEN EXISTS (SELECT 1 FROM findings s
                         WHERE s.object = 'Subscription' AND s.kind = 'field_mismatch'
                           AND s.field IN {_STATUS_FIELDS}
                           AND (s.key = f.key AND f.object = 'Subscription'
                                OR s.subscription_name = f.subscription_name))
                 THEN 'D07'
            END
        WHERE f.kind = 'field_mismatch' AND f.drift_id = 'D05'""")


def misfit_fields(spec: ObjectSpec) -> list[tuple[Field, str]]:
    """The stored fields of ``spec`` whose Zuora value may not fit the local column, with the
    SQL (over ``z``, the Zuora row) saying why one does not (``Field.misfit_sql``)."""
    out = []
    for f in spec.stored_fields:
        why = f.misfit_sql(f'z."{f.name}"')
        if why is not None and f.name != "Id":
            out.append((f, why))
    return out


def _misfits(con: duckdb.DuckDBPyConnection, spec: ObjectSpec,
             only: set[str] | None = None) -> None:
    """Findings on values valid in Zuora that the local column cannot hold (issue 13):

    * a differing column: ``human``, no drift id, says why and how to widen the column; the
      planner leaves that column alone and updates the row's other columns;
    * a missing row: a NOT NULL column that cannot hold Zuora's value makes the insert a
      person's (``human``, never planned); a nullable one is inserted with NULL there (the
      explanation says so; the next run reports the column)."""
    fields = misfit_fields(spec)
    obj = sql_text(spec.name)
    kinds = {k for (k,) in con.execute(
        f"SELECT DISTINCT kind FROM findings WHERE object = {obj} AND kind IN "
        "('field_mismatch', 'missing_in_local')").fetchall()}
    if not fields or not kinds:
        return
    rel = f'zuora."{spec.name}"'
    mismatched = [(f, why) for f, why in fields if only is None or f.name in only]
    if "field_mismatch" in kinds and mismatched:
        arms = " UNION ALL ".join(
            f"SELECT z.\"Id\" AS key, '{f.name}' AS field, '{f.column}' AS col, "
            f"'{f.local_type}' AS local_type, {why} AS why FROM {rel} z "
            f"WHERE z.\"Id\" IN (SELECT key FROM findings WHERE object = {obj} "
            f"AND kind = 'field_mismatch' AND field = '{f.name}')" for f, why in mismatched)
        con.execute(f"""
            UPDATE findings f SET action = 'human', drift_id = NULL,
              explanation = format('{{}} {{}}{{}}: {{}} in Zuora does not fit the local column '
                                   '{{}}.{{}} ({{}}); the snapshot keeps Zuora''s value, the '
                                   'repair leaves this column alone: {{}}', f.object,
                                   f.key, CASE WHEN f.subscription_name IS NOT NULL THEN
                                   ' of subscription ' || f.subscription_name ELSE '' END,
                                   f.field, '{spec.table}', m.col, m.why,
                                   CASE WHEN m.why = 'NUL byte'
                                        THEN 'PostgreSQL cannot store it; correct the value '
                                             || 'in Zuora'
                                        ELSE 'widen the column (README "Values that do not '
                                             || 'fit locally") and re-run' END),
              evidence = json_object('misfit', m.why, 'table', '{spec.table}',
                                     'column', m.col, 'local_type', m.local_type)
            FROM ({arms}) m
            WHERE f.object = {obj} AND f.kind = 'field_mismatch' AND f.field = m.field
              AND f.key = m.key AND m.why IS NOT NULL""")
    if "missing_in_local" not in kinds:
        return
    items = ", ".join(
        f"CASE WHEN ({why}) IS NOT NULL THEN {{'column': '{f.column}', 'why': {why}, "
        f"'nullable': {'true' if f.nullable else 'false'}}} END" for f, why in fields)
    con.execute(f"""
        UPDATE findings f SET
          action = CASE WHEN m.blocked THEN 'human' ELSE f.action END,
          explanation = f.explanation || CASE WHEN m.blocked
              THEN format(' — not inserted: Zuora''s value does not fit NOT NULL {{}}; widen '
                          'the column (docs/catalogue.md "Values that do not fit locally") and re-run',
                          m.which)
              ELSE format(' — inserted with NULL in {{}}: Zuora''s value does not fit '
                          '(a person widens the column)', m.which) END,
          evidence = json_object('misfit', m.which, 'table', '{spec.table}')
        FROM (SELECT key, bool_or(NOT x.nullable) AS blocked,
                     string_agg('{spec.table}.' || x.column || ' (' || x.why || ')', ', '
                                ORDER BY x.column) AS which
              FROM (SELECT z."Id" AS key,
                           unnest(list_filter([{items}], lambda x: x IS NOT NULL)) AS x
                    FROM {rel} z
                    WHERE z."Id" IN (SELECT key FROM findings WHERE object = {obj}
                                     AND kind = 'missing_in_local'))
              GROUP BY key) m
        WHERE f.object = {obj} AND f.kind = 'missing_in_local' AND f.key = m.key""")


def add_quarantined(con: duckdb.DuckDBPyConnection) -> None:
    """One finding per quarantined row: it was left out of the comparison, so it is reported
    as quarantined (with the failed check), never as missing or orphaned."""
    con.execute("""
        INSERT INTO findings BY NAME (
        SELECT object, key, 'quarantined' AS kind, min("column") AS field,
               'human' AS action, 'medium' AS severity,
               format('{} row {} ({} side) failed its contract ({}): left out of the comparison '
                      'until the data is fixed', object, key, min(side),
                      string_agg(DISTINCT "check" || ' on ' || "column", ', ')) AS explanation,
               min(value) AS local_value
        FROM main.quarantine GROUP BY object, key)""")

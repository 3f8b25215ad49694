"""Rules on CustomersDot ``orders`` against Zuora's latest versions (L4, L5, L10).

Key: the subscription name (the namespace id for D12). One finding per cause:

* a name Zuora does not know is D15 and nothing else;
* a name with several non-trial orders is D11 and nothing else (the dedupe resolves the
  losers' stale columns);
* for a single order, ``subscription_id`` on an older version of the same name is D02, any
  other stale pointer D14; the account columns on the latest ``InvoiceOwnerId`` are D24, on a
  previous owner D10, otherwise D14; every other stale derived column is D14.

Trial orders (``trial = true``) are local-only and never checked (L10).
"""

from __future__ import annotations

from core.catalog import LOCAL_BY_NAME, ORDER_METADATA
from core.catalog.orders import PAID_STATUSES
from reconcile.rules.base import Rule, ns

_PAID = ", ".join(f"'{s}'" for s in PAID_STATUSES)
_ORDER_COLUMNS = {c.name: c.local_type for c in LOCAL_BY_NAME["orders"].columns}
_METADATA = [c for c in ORDER_METADATA if c in _ORDER_COLUMNS]
# Zuora-derived order columns that only D14 covers (account columns and the pointer have rules)
_D14_COLUMNS = ("product_rate_plan_id", "start_date", "end_date", "quantity", "amendment_type")


def _meta(c: str) -> str:
    """A metadata value as set or unset: a boolean that is false is the column default."""
    if _ORDER_COLUMNS[c] == "BOOLEAN":
        return f"NULLIF({c}, false)"
    if c.endswith("namespace_id"):
        return ns(c)
    return c


def d15_sql() -> str:
    return """
    SELECT 'orders' AS object, o.subscription_name AS key, 'rule_violation' AS kind,
           'D15' AS rule, 'human' AS action, 'high' AS severity, 'D15' AS drift_id,
           format('{} non-trial order(s) ({}) reference subscription {}, which Zuora does not '
                  'know: no version of it exists (deleted in Zuora, a typo, or sandbox data). '
                  'Possible entitlement without payment: a person decides; nothing is revoked.',
                  count(*), string_agg(CAST(o.id AS VARCHAR), ', ' ORDER BY o.id),
                  o.subscription_name) AS explanation,
           o.subscription_name, min(o.zuora_account_id) AS account_id,
           json_object('order_ids', list(o.id ORDER BY o.id)) AS evidence
    FROM nt_orders o JOIN order_names n USING (subscription_name)
    WHERE NOT n.known
    GROUP BY o.subscription_name"""


def keeper_rank_sql(orders: str, latest: str, billing_accounts: str) -> str:
    """D11's choice of the order to keep, declared once: for each row of ``orders`` (the
    non-trial orders of duplicated names), ``rk`` = 1 for the keeper, with the facts the
    choice rests on. Portable SQL over three relations: D11 runs it in DuckDB on a snapshot
    (Zuora's latest versions), ``recon db constrain`` on PostgreSQL over the local copy's
    latest versions (``core.catalog.orders.LOCAL``).

    The keeper (domain.md D11): the row on the latest version's account (``zuora_account_id``
    and its billing account both), then the row whose namespace is the one Zuora names, then
    the row carrying the most GitLab metadata, then the oldest (``created_at``, then ``id``)."""
    meta_n = " + ".join(f"CAST({_meta(c)} IS NOT NULL AS INTEGER)" for c in _METADATA) or "0"
    return f"""
    WITH g AS (
        SELECT o.*, z.AccountId AS z_account, z.UpdatedDate AS z_updated,
               o.zuora_account_id IS NOT DISTINCT FROM z.AccountId
                   AND ba.zuora_account_id IS NOT DISTINCT FROM z.AccountId AS matches,
               {ns('o.gl_namespace_id')} IS NOT NULL
                   AND {ns('o.gl_namespace_id')} = {ns('z.GitLabNamespaceId__c')} AS ns_match,
               {meta_n} AS meta_n
        FROM {orders} o
        LEFT JOIN {latest} z ON z.Name = o.subscription_name
        LEFT JOIN {billing_accounts} ba ON ba.id = o.billing_account_id
    )
    SELECT *, row_number() OVER (PARTITION BY subscription_name
                                 ORDER BY matches DESC NULLS LAST, ns_match DESC NULLS LAST,
                                          meta_n DESC NULLS LAST, created_at ASC NULLS LAST,
                                          id ASC) AS rk
    FROM g"""


def d11_sql() -> str:
    conflict = ", ".join(
        f"CASE WHEN count(DISTINCT {_meta(c)}) > 1 THEN '{c}' END" for c in _METADATA)
    # names Zuora knows only (an unknown one is D15): every such name has a z_latest row
    dup = ("(SELECT o.* FROM nt_orders o JOIN order_names n USING (subscription_name) "
           "WHERE n.n > 1 AND n.known)")
    return f"""
    WITH ranked AS ({keeper_rank_sql(dup, 'z_latest', 'local.billing_accounts')}
    ), groups AS (
        SELECT subscription_name, any_value(z_account) AS z_account,
               any_value(z_updated) AS z_updated, count(*) AS n,
               count(*) FILTER (WHERE matches) AS n_match,
               count(DISTINCT zuora_account_id) AS n_accounts,
               list_filter([{conflict}], lambda x: x IS NOT NULL) AS conflicts,
               any_value(id) FILTER (WHERE rk = 1) AS keeper,
               list(id ORDER BY id) FILTER (WHERE rk > 1) AS losers,
               any_value(matches) FILTER (WHERE rk = 1) AS keeper_matches,
               any_value(ns_match) FILTER (WHERE rk = 1) AS keeper_ns
        FROM ranked GROUP BY subscription_name
    )
    SELECT 'orders' AS object, subscription_name AS key, 'duplicate_local' AS kind,
           'D11' AS rule,
           CASE WHEN n_match = 1 AND len(conflicts) = 0 THEN 'auto' ELSE 'human' END AS action,
           'high' AS severity, 'D11' AS drift_id,
           format('{{}} non-trial orders for {{}}{{}}. {{}}', n, subscription_name,
                  CASE WHEN n_accounts < n THEN ' (several on one account: violates the unique '
                       || '(subscription_name, zuora_account_id) key)' ELSE '' END,
                  CASE WHEN n_match = 1 AND len(conflicts) = 0 THEN
                       format('Keep order {{}}: it matches Zuora''s latest account {{}}; copy '
                              'the GitLab metadata it lacks from order(s) {{}}, then delete '
                              'them.', keeper, z_account, array_to_string(losers, ', '))
                  WHEN len(conflicts) > 0 THEN
                       format('The rows disagree on {{}}: a person decides. Suggested keeper: '
                              'order {{}}{{}}.', array_to_string(conflicts, ', '), keeper,
                              CASE WHEN keeper_ns THEN ' (its namespace matches Zuora)'
                                   WHEN keeper_matches THEN ' (matches Zuora''s account)'
                                   ELSE '' END)
                  ELSE format('{{}} rows match Zuora''s latest account {{}}: a person decides. '
                              'Suggested keeper: order {{}}.', n_match, z_account, keeper)
                  END) AS explanation,
           subscription_name, z_account AS account_id, z_updated AS zuora_updated,
           json_object('keeper', keeper, 'losers', losers, 'conflicts', conflicts,
                       'matching_rows', n_match) AS evidence
    FROM groups"""


def _single() -> str:
    """Names with exactly one non-trial order, joined to what Zuora says it should hold."""
    return f"""
    SELECT o.*, d.subscription_id AS z_subscription_id, d.zuora_account_id AS z_account,
           d.billing_account_id AS z_billing_account_id,
           d.product_rate_plan_id AS z_product_rate_plan_id, d.start_date AS z_start_date,
           d.end_date AS z_end_date, d.quantity AS z_quantity,
           d.amendment_type AS z_amendment_type, d.latest_status AS z_status,
           z.Version AS z_version, z.InvoiceOwnerId AS z_invoice_owner,
           {ns('z.GitLabNamespaceId__c')} AS z_ns,
           NULLIF(TRIM(z.GitLabNamespaceName__c), '') AS z_ns_name,
           z.UpdatedDate AS z_updated,
           CASE WHEN o.zuora_account_id IS NOT DISTINCT FROM d.zuora_account_id THEN NULL
                WHEN o.zuora_account_id = z.InvoiceOwnerId THEN 'D24'
                WHEN prev.account_id IS NOT NULL THEN 'D10'
                ELSE 'D14' END AS account_rule
    FROM nt_orders o
    JOIN order_names n USING (subscription_name)
    JOIN derived d USING (subscription_name)
    JOIN z_latest z ON z.Name = o.subscription_name
    LEFT JOIN (SELECT DISTINCT name, account_id FROM z_versions) prev
           ON prev.name = o.subscription_name AND prev.account_id = o.zuora_account_id
    WHERE n.n = 1"""


def _finding(rule: str, field: str, action: str, severity: str, zv: str, lv: str,
             explanation: str, where: str, source: str = "single_orders") -> str:
    return f"""
    SELECT 'orders' AS object, subscription_name AS key, 'rule_violation' AS kind,
           {rule} AS rule, '{field}' AS field, CAST({zv} AS VARCHAR) AS zuora_value,
           CAST({lv} AS VARCHAR) AS local_value, '{action}' AS action,
           '{severity}' AS severity, {rule} AS drift_id, {explanation} AS explanation,
           subscription_name, z_account AS account_id, z_updated AS zuora_updated,
           json_object('order_id', id) AS evidence
    FROM {source} WHERE {where}"""


def pointer_sql() -> str:
    """D02 / D14 on ``subscription_id``."""
    body = _finding(
        "CASE WHEN pointed_version IS NOT NULL THEN 'D02' ELSE 'D14' END", "subscription_id",
        "auto", "medium", "z_subscription_id", "subscription_id",
        "CASE WHEN pointed_version IS NOT NULL THEN format('order {} points at version {} "
        "({}) of {}{}; Zuora''s latest is version {} ({}): re-point it', id, pointed_version, "
        "subscription_id, subscription_name, CASE WHEN pointed_gone THEN ', a version deleted "
        "in Zuora' ELSE '' END, z_version, z_subscription_id) ELSE format('order {} has "
        "subscription_id {}, not a version of {}; Zuora''s latest is version {} ({}): set it', "
        "id, coalesce(subscription_id, 'NULL'), subscription_name, z_version, "
        "z_subscription_id) END",
        "subscription_id IS DISTINCT FROM z_subscription_id", "s")
    return f"""
    WITH v AS (SELECT name, id, max(version) AS version FROM
                 (SELECT name, id, version FROM z_versions UNION ALL
                  SELECT name, id, version FROM l_versions) GROUP BY name, id),
    s AS (SELECT s.*, v.version AS pointed_version,
                 v.id IS NOT NULL AND v.id NOT IN (SELECT id FROM z_versions) AS pointed_gone
          FROM single_orders s
          LEFT JOIN v ON v.name = s.subscription_name AND v.id = s.subscription_id)
    {body}"""


def accounts_sql() -> str:
    """D10 / D24 / D14 on ``zuora_account_id`` and ``billing_account_id``."""
    why = ("CASE account_rule WHEN 'D24' THEN format('order {} carries invoice owner {} instead "
           "of the subscription owner {} (Zuora AccountId): re-point {}', id, zuora_account_id, "
           "z_account, '{col}') WHEN 'D10' THEN format('order {} is still on previous owner {} "
           "of {}; Zuora''s latest owner is {} (moved): re-point {}', id, zuora_account_id, "
           "subscription_name, z_account, '{col}') ELSE format('order {} has {} = {}; Zuora''s "
           "latest version says {}{}', id, '{col}', coalesce(CAST({col} AS VARCHAR), 'NULL'), "
           "coalesce(CAST({zcol} AS VARCHAR), 'a billing account that does not exist locally'), "
           "CASE WHEN {zcol} IS NULL THEN ': set it once the billing account of ' || z_account || "
           "' is created' ELSE ': set it' END) END")
    return (_finding("account_rule", "zuora_account_id", "auto", "high", "z_account",
                     "zuora_account_id",
                     why.replace("{col}", "zuora_account_id").replace("{zcol}", "z_account"),
                     "account_rule IS NOT NULL")
            + " UNION ALL " +
            _finding("coalesce(account_rule, 'D14')", "billing_account_id", "auto", "high",
                     "z_billing_account_id", "billing_account_id",
                     why.replace("{col}", "billing_account_id")
                        .replace("{zcol}", "z_billing_account_id"),
                     "z_billing_account_id IS NULL "
                     "OR billing_account_id IS DISTINCT FROM z_billing_account_id"))


def d14_sql() -> str:
    parts = [
        _finding("'D14'", c, "auto", "medium", f"z_{c}", c,
                 f"format('order {{}}: {c} is {{}}, Zuora''s latest version {{}} says {{}}: "
                 f"recompute it from the latest version', id, coalesce(CAST({c} AS VARCHAR), "
                 f"'NULL'), z_version, coalesce(CAST(z_{c} AS VARCHAR), 'NULL'))",
                 f"{c} IS DISTINCT FROM z_{c}")
        for c in _D14_COLUMNS]
    return " UNION ALL ".join(parts)


def namespace_sql() -> str:
    """D04 (namespace conflict with Zuora, human) and D25 (namespace metadata). An order with
    a namespace on a subscription without one is D25 when its plan is self-managed only
    (the plan's ``DeploymentType__c``, joined once: ``deployment``), else D04."""
    sm = ("coalesce(list_contains(deployment, 'self_managed') AND NOT "
          "list_contains(deployment, 'gitlab_dot_com'), false)")
    no_ns = f"""(SELECT s.*, string_split(p.DeploymentType__c, ';') AS deployment
        FROM single_orders s
        LEFT JOIN derive.ProductRatePlan prp
               ON prp.Id = coalesce(s.z_product_rate_plan_id, s.product_rate_plan_id)
        LEFT JOIN derive.Product p ON p.Id = prp.ProductId
        WHERE s.z_ns IS NULL AND {ns('s.gl_namespace_id')} IS NOT NULL)"""
    return " UNION ALL ".join([
        _finding("'D04'", "gl_namespace_id", "human", "high", "z_ns", "gl_namespace_id",
                 "format('order {} is linked to namespace {} but GitLabNamespaceId__c on the "
                 "latest version of {} is {}: moving a namespace changes which group gets the "
                 "paid plan, a person decides', id, gl_namespace_id, subscription_name, z_ns)",
                 f"z_ns IS NOT NULL AND {ns('gl_namespace_id')} IS NOT NULL "
                 f"AND z_ns <> {ns('gl_namespace_id')}"),
        _finding("'D25'", "gl_namespace_name", "auto", "low", "z_ns_name", "gl_namespace_name",
                 "format('order {} names namespace {} ''{}''; its current name is ''{}'': "
                 "update the name', id, z_ns, coalesce(gl_namespace_name, ''), z_ns_name)",
                 f"z_ns IS NOT NULL AND z_ns = {ns('gl_namespace_id')} AND z_ns_name IS NOT "
                 "NULL AND NULLIF(TRIM(gl_namespace_name), '') IS DISTINCT FROM z_ns_name"),
        _finding(f"CASE WHEN {sm} THEN 'D25' ELSE 'D04' END",
                 "gl_namespace_id", "human", "high", "z_ns", "gl_namespace_id",
                 "format('order {} carries namespace {} but {} has no GitLabNamespaceId__c in "
                 "Zuora{}: investigate, a person decides', id, gl_namespace_id, "
                 "subscription_name, CASE WHEN list_contains(deployment, 'self_managed') "
                 "THEN ' (a self-managed subscription)' ELSE '' END)",
                 "true", source=no_ns),
    ])


# An Active latest version with a plan of a Base Products product (``derived`` finds the base
# plan through the product's Category, Zuora's catalog or the local cache): the only kind of
# subscription of which a namespace may carry one. Add-ons (no base plan) and subscriptions no
# longer Active never conflict (domain.md D12).
_ACTIVE_BASE = "z.Status = 'Active' AND d.product_rate_plan_id IS NOT NULL"


def base_claims_sql() -> str:
    """(ns, name): every namespace an active base subscription holds — the namespace of its
    order, and the one Zuora's latest version names. A namespace carries any number of
    orders (a base plan, add-ons bought as their own subscriptions, expired and cancelled
    ones); only two names here for one namespace truly conflict (D12). Declared once: D12
    groups it, D13 and the namespace link ask it, and the repair's order creation too."""
    return f"""
        SELECT {ns('o.gl_namespace_id')} AS ns, o.subscription_name AS name
        FROM nt_orders o JOIN z_latest z ON z.Name = o.subscription_name
        JOIN derived d ON d.subscription_name = o.subscription_name
        WHERE {_ACTIVE_BASE} AND {ns('o.gl_namespace_id')} IS NOT NULL
        UNION
        SELECT {ns('z.GitLabNamespaceId__c')}, z.Name
        FROM z_latest z JOIN derived d ON d.subscription_name = z.Name
        WHERE {_ACTIVE_BASE} AND {ns('z.GitLabNamespaceId__c')} IS NOT NULL"""


def link_conflict_sql(name: str, namespace: str, status: str, base_plan: str) -> str:
    """SQL: linking subscription ``name`` (latest ``status``, base plan ``base_plan``) to
    ``namespace`` would make two active base subscriptions share it — the one case where the
    link is a person's decision (domain.md D12/D13). Every other link is made."""
    return (f"(coalesce({status} = 'Active' AND {base_plan} IS NOT NULL, false) AND EXISTS ("
            f"SELECT 1 FROM ({base_claims_sql()}) c WHERE c.ns = {namespace} "
            f"AND c.name <> {name}))")


def d13_sql() -> str:
    """D13: a paid subscription without an order (created from the latest version, with the
    namespace its latest version names); and an order that lost that namespace (linked back).
    Either link waits for a person only when it would put two active base subscriptions on one
    namespace (that pair is D12 as well)."""
    z_ns = ns("d.namespace_id")
    conflict = link_conflict_sql("d.subscription_name", z_ns, "d.latest_status",
                                 "d.product_rate_plan_id")
    lost_conflict = link_conflict_sql("subscription_name", "z_ns", "z_status",
                                      "z_product_rate_plan_id")
    lost = _finding(
        "'D13'", "gl_namespace_id", "auto", "high", "z_ns", "gl_namespace_id",
        "format('order {} of {} has no namespace; the latest version names namespace {} "
        "({}): link it', id, subscription_name, z_ns, coalesce(z_ns_name, 'unnamed'))",
        f"z_ns IS NOT NULL AND {ns('gl_namespace_id')} IS NULL AND NOT {lost_conflict}")
    lost_human = _finding(
        "'D13'", "gl_namespace_id", "human", "high", "z_ns", "gl_namespace_id",
        "format('order {} of {} has no namespace; the latest version names namespace {}, "
        "which another active base subscription holds (D12): a person links it', id, "
        "subscription_name, z_ns)",
        f"z_ns IS NOT NULL AND {ns('gl_namespace_id')} IS NULL AND {lost_conflict}")
    return f"""
    SELECT 'orders' AS object, d.subscription_name AS key, 'rule_violation' AS kind,
           'D13' AS rule, NULL AS field, NULL AS zuora_value, NULL AS local_value,
           'auto' AS action, 'high' AS severity, 'D13' AS drift_id,
           format('{{}} is {{}} in Zuora (latest version {{}}, {{}}, account {{}}) but has no '
                  'local order: create it from the latest version{{}}', d.subscription_name,
                  d.latest_status, z.Version, d.subscription_id, d.zuora_account_id,
                  CASE WHEN {z_ns} IS NULL THEN ''
                       WHEN {conflict} THEN '; namespace ' || {z_ns}
                            || ' is held by another active base subscription (D12): a '
                            || 'person links it'
                       ELSE '; link namespace ' || {z_ns} END) AS explanation,
           d.subscription_name, d.zuora_account_id AS account_id,
           z.UpdatedDate AS zuora_updated,
           json_object('subscription_id', d.subscription_id) AS evidence
    FROM derived d
    JOIN z_latest z ON z.Name = d.subscription_name
    WHERE d.latest_status IN ({_PAID})
      AND d.subscription_name NOT IN (SELECT subscription_name FROM order_names)
    UNION ALL {lost}
    UNION ALL {lost_human}"""


def d12_sql() -> str:
    return f"""
    WITH pairs AS ({base_claims_sql()}
    )
    SELECT 'orders' AS object, p.ns AS key, 'rule_violation' AS kind, 'D12' AS rule,
           'human' AS action, 'high' AS severity, 'D12' AS drift_id,
           format('namespace {{}} has {{}} active base subscriptions ({{}}): which one '
                  'provides the plan is a business decision', p.ns, count(DISTINCT p.name),
                  string_agg(DISTINCT p.name, ', ' ORDER BY p.name)) AS explanation,
           min(p.name) AS subscription_name, min(z.AccountId) AS account_id,
           max(z.UpdatedDate) AS zuora_updated,
           json_object('subscriptions', list(DISTINCT p.name ORDER BY p.name)) AS evidence
    FROM pairs p JOIN z_latest z ON z.Name = p.name
    GROUP BY p.ns HAVING count(DISTINCT p.name) > 1"""


RULES = [
    Rule("D15", "order references a subscription unknown to Zuora", d15_sql, about=("orders",)),
    Rule("D11", "duplicate non-trial orders for one subscription name", d11_sql,
         about=("orders",)),
    Rule("D02", "order points at an older version (D14 when not a version at all)", pointer_sql,
         about=("orders",)),
    Rule("D10", "order on the wrong account: moved (D10), invoice owner (D24), other (D14)",
         accounts_sql, about=("orders",)),
    Rule("D14", "order with nil or stale Zuora-derived columns", d14_sql, about=("orders",)),
    Rule("D04", "order namespace conflicts with Zuora (D04) or stale metadata (D25)",
         namespace_sql, about=("orders",)),
    Rule("D13", "paid Zuora subscription without a local order", d13_sql, about=("orders",)),
    Rule("D12", "several active base subscriptions on one namespace", d12_sql, about=("orders",)),
]

PREPARE = f"CREATE OR REPLACE TEMP TABLE single_orders AS {_single()}"

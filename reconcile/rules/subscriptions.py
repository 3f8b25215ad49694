"""Rules on the local subscription copy itself (L2, L3): latest versions and segments.

Keys are Zuora ids of local rows (a charge segment for D08) or the subscription name (D09).
"""

from __future__ import annotations

from reconcile.rules.base import Rule, col


def d09_sql() -> str:
    """Several local versions of a name share the highest version number: the local latest
    is ambiguous (L2). A local orphan version above Zuora's latest (D03) is a single max and is
    reported as the orphan it is, not here."""
    return """
    WITH c AS (
        SELECT name, version, count(*) AS n, list(id ORDER BY id) AS ids
        FROM l_versions GROUP BY name, version
        QUALIFY version = max(version) OVER (PARTITION BY name))
    SELECT 'Subscription' AS object, c.name AS key, 'rule_violation' AS kind, 'D09' AS rule,
           'auto' AS action, 'medium' AS severity, 'D09' AS drift_id,
           format('{} local versions of {} carry the highest version number {} ({}); Zuora''s '
                  'latest is version {} ({}): recompute the latest from Zuora', c.n, c.name,
                  c.version, array_to_string(c.ids, ', '), coalesce(CAST(z.Version AS VARCHAR),
                  '?'), coalesce(z.Id, 'unknown')) AS explanation,
           c.name AS subscription_name, z.AccountId AS account_id,
           z.UpdatedDate AS zuora_updated, json_object('version_ids', c.ids) AS evidence
    FROM c LEFT JOIN z_latest z ON z.Name = c.name
    WHERE c.n > 1"""


def d08_sql() -> str:
    """Local segment and tier integrity (Z8/Z12 on the local copy, L3): within one version and
    one charge number exactly one last segment and it is the highest; segments contiguous;
    every charge has a tier; every tier belongs to a local charge.

    Only subscriptions with a row difference in their subtree are checked: rows equal to
    Zuora's have Zuora's structure (Z8/Z12 hold there, the Zuora contracts check it), so
    corruption always shows as a differing, missing or extra row first. This runs after the
    diff's findings are annotated with their subscription."""
    ch = "local.zuora_local_rate_plan_charges"
    tiers = "local.zuora_local_rate_plan_charge_tiers"
    c = {f: col("RatePlanCharge", f) for f in (
        "Id", "SubscriptionId", "ChargeNumber", "Segment", "IsLastSegment",
        "EffectiveStartDate", "EffectiveEndDate")}
    t_charge = col("RatePlanChargeTier", "RatePlanChargeId")
    t_id = col("RatePlanChargeTier", "Id")
    suspect = (f"{c['SubscriptionId']} IN (SELECT id FROM l_versions WHERE name IN "
               "(SELECT subscription_name FROM findings WHERE object IN ('RatePlan', "
               "'RatePlanCharge', 'RatePlanChargeTier', 'Subscription')))")
    return f"""
    WITH ch AS (SELECT * FROM {ch} WHERE {suspect}),
    g AS (
        SELECT {c['Id']} AS id, {c['SubscriptionId']} AS sid, {c['Segment']} AS seg,
               {c['IsLastSegment']} AS last, {c['EffectiveEndDate']} AS e,
               max({c['Segment']}) OVER w AS max_seg,
               count(*) FILTER (WHERE {c['IsLastSegment']}) OVER w AS n_last,
               lead({c['EffectiveStartDate']}) OVER (PARTITION BY {c['SubscriptionId']},
                    {c['ChargeNumber']} ORDER BY {c['Segment']}) AS next_start,
               {c['ChargeNumber']} AS cn
        FROM ch WINDOW w AS (PARTITION BY {c['SubscriptionId']}, {c['ChargeNumber']})),
    problems AS (
        SELECT 'RatePlanCharge' AS object, id AS key, sid,
               format('charge {{}} segment {{}} is flagged last but segment {{}} is the highest '
                      '({{}} last segments)', cn, seg, max_seg, n_last) AS why
        FROM g WHERE last AND seg < max_seg
        UNION ALL
        SELECT 'RatePlanCharge', id, sid,
               format('charge {{}} has no last segment (highest is {{}})', cn, seg)
        FROM g WHERE n_last = 0 AND seg = max_seg
        UNION ALL
        SELECT 'RatePlanCharge', id, sid,
               format('charge {{}} segment {{}} ends {{}} but the next segment starts {{}} (gap '
                      'or overlap)', cn, seg, coalesce(CAST(e AS VARCHAR), 'never'), next_start)
        FROM g WHERE next_start IS NOT NULL AND e IS DISTINCT FROM next_start
        UNION ALL
        SELECT 'RatePlanCharge', ch.{c['Id']}, ch.{c['SubscriptionId']},
               format('charge {{}} segment {{}} has no tier row', ch.{c['ChargeNumber']},
                      ch.{c['Segment']})
        FROM ch WHERE NOT EXISTS (SELECT 1 FROM {tiers} t WHERE t.{t_charge} = ch.{c['Id']})
        UNION ALL
        SELECT 'RatePlanChargeTier', t.{t_id}, NULL,
               format('tier belongs to charge {{}}, which the local copy does not hold',
                      t.{t_charge})
        FROM {tiers} t WHERE t.{t_charge} IN (SELECT key FROM findings WHERE object =
                                               'RatePlanCharge' AND kind = 'missing_in_local'))
    SELECT p.object, p.key, 'rule_violation' AS kind, 'D08' AS rule, 'auto' AS action,
           'medium' AS severity, 'D08' AS drift_id,
           string_agg(p.why, '; ') || ': replace the version subtree from Zuora' AS explanation,
           any_value(v.name) AS subscription_name, any_value(z.AccountId) AS account_id,
           max(z.UpdatedDate) AS zuora_updated
    FROM problems p
    LEFT JOIN l_versions v ON v.id = p.sid
    LEFT JOIN zuora.Subscription z ON z.Id = p.sid
    GROUP BY p.object, p.key"""


RULES = [
    Rule("D09", "zero or several local latest versions", d09_sql, about=("Subscription",)),
    Rule("D08", "local segment / tier corruption", d08_sql,
         about=("RatePlanCharge", "RatePlanChargeTier"),
         reads=("RatePlan", "RatePlanCharge", "RatePlanChargeTier", "Subscription")),
]

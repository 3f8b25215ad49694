"""Rules on the product catalog cache (seed 004, L9): classification and dangling references.
"""

from __future__ import annotations

from core.catalog.scopes import ZUORA, current_sql, problems_sql
from reconcile.rules.base import Rule, col


def d22_sql() -> str:
    """Current plans CustomersDot cannot classify: the product's Category, Tier__c or
    DeploymentType__c missing (Base Products and Add On Services need both), the plan's
    WebDirect__c missing, a value outside the seed-004 enums, or a base product with several
    tiers or deployments. Deciding what a new plan is needs a config/code change (human).
    The reasons are the catalog scopes' own (``core.catalog.scopes.PROBLEMS``), read here
    over Zuora's export, so the scopes the views and ``recon catalog plans`` resolve and
    this rule never disagree on what a plan is."""
    return f"""
    WITH c AS (
        SELECT prp.Id, prp.Name, p.Name AS product, prp.UpdatedDate,
               {problems_sql(ZUORA)} AS reasons
        FROM {ZUORA.source()}
        WHERE {current_sql(ZUORA, "(SELECT as_of_date FROM run_ctx)")})
    SELECT 'ProductRatePlan' AS object, Id AS key, 'rule_violation' AS kind, 'D22' AS rule,
           'human' AS action, 'medium' AS severity, 'D22' AS drift_id,
           format('plan ''{{}}'' of product ''{{}}'' cannot be classified ({{}}): CustomersDot '
                  'cannot tell what it sells; classify it in Zuora or in configuration',
                  Name, coalesce(product, '?'), reasons) AS explanation,
           UpdatedDate AS zuora_updated
    FROM c WHERE reasons IS NOT NULL"""


def d23_sql() -> str:
    """Local subscription rate plans referencing a product rate plan absent from Zuora's
    catalog export. A retired plan (past EffectiveEndDate) still exported is normal: old
    subscriptions keep what they bought."""
    rp_prp = col("RatePlan", "ProductRatePlanId")
    rp_sub = col("RatePlan", "SubscriptionId")
    return f"""
    SELECT 'ProductRatePlan' AS object, rp.{rp_prp} AS key, 'rule_violation' AS kind,
           'D23' AS rule, 'human' AS action, 'medium' AS severity, 'D23' AS drift_id,
           format('{{}} local subscription rate plan(s) on {{}} version(s) reference plan {{}}{{}}, '
                  'which is absent from the Zuora catalog export: keep the cached rows, never '
                  'delete subscription data; report', count(*), count(DISTINCT rp.{rp_sub}),
                  rp.{rp_prp}, coalesce(' (''' || any_value(cache.name) || ''' in the local '
                  || 'cache)', ' (not in the local cache either)')) AS explanation,
           json_object('rate_plans', count(*)) AS evidence
    FROM local.zuora_local_rate_plans rp
    LEFT JOIN local.zuora_local_product_rate_plans cache
           ON cache.{col('ProductRatePlan', 'Id')} = rp.{rp_prp}
    WHERE rp.{rp_prp} NOT IN (SELECT Id FROM zuora.ProductRatePlan)
    GROUP BY rp.{rp_prp}"""


RULES = [
    Rule("D22", "current plan without a complete, consistent classification", d22_sql,
         about=("ProductRatePlan",)),
    Rule("D23", "subscription rate plans reference a plan absent from the catalog", d23_sql,
         about=("ProductRatePlan",)),
]

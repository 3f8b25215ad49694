"""A quarantined record holds back what depends on it.

``reconcile.load`` hides a quarantined record from both sides of its own object, so it is
never reported missing or orphaned. But other findings are computed *from* it: the rate
plans and charges of a quarantined subscription version, the order derived from its latest
version (D02/D14/D13/D11), the customers and memberships derived from a quarantined
contact's e-mail (D17/D19/D20), an order pointing at a quarantined catalog plan (D22/D23).
Any of those, planned, would act on a guess. So after the rules and the annotation every
finding that depends on a quarantined record becomes ``quarantined`` too (action ``human``,
never planned), its explanation saying which record holds it back:

=====================  ===================================================================
quarantined record     holds back findings
=====================  ===================================================================
Subscription, RatePlan, every finding on that subscription name (all versions, the order, its
RatePlanCharge, Tier   children, the rules keyed by the name) and the records under it
Account, Contact       every finding of that Zuora account (its contacts' people included)
catalog records        findings whose key, values or evidence name the record
orders (local)         every finding on that order's subscription name
=====================  ===================================================================

A record quarantined without a readable key (its Id is not UTF-8) cannot be matched to a
local row; while one exists for an object, that object's orphans are not deleted
automatically (the local row may be that very record): they need a person.
"""

from __future__ import annotations

import duckdb

from core.catalog import OBJECTS

CATALOG = tuple(o.name for o in OBJECTS if o.group == "catalog")


def _in(obj: str) -> str:
    return f"(SELECT key FROM main.quarantine WHERE object = '{obj}' AND key IS NOT NULL)"


CATALOG_SCOPE_SQL = f"""
CREATE OR REPLACE TEMP TABLE quarantine_subscriptions (id VARCHAR, name VARCHAR, why VARCHAR);
CREATE OR REPLACE TEMP TABLE quarantine_accounts (account_id VARCHAR, why VARCHAR);
CREATE OR REPLACE TEMP TABLE quarantine_catalog AS
SELECT DISTINCT key, object || ' ' || key AS why FROM main.quarantine
 WHERE object IN {CATALOG!r} AND key IS NOT NULL;
"""

SCOPE_SQL = f"""
CREATE OR REPLACE TEMP TABLE quarantine_subscriptions AS
WITH ids AS (
    SELECT key AS id, 'Subscription ' || key AS why FROM main.quarantine
     WHERE object = 'Subscription' AND key IS NOT NULL
    UNION SELECT "SubscriptionId", 'RatePlan ' || "Id" || ' of subscription version '
                 || "SubscriptionId" FROM zuora_all."RatePlan"
     WHERE "Id" IN {_in('RatePlan')}
    UNION SELECT "SubscriptionId", 'RatePlanCharge ' || "Id" || ' of subscription version '
                 || "SubscriptionId" FROM zuora_all."RatePlanCharge"
     WHERE "Id" IN {_in('RatePlanCharge')}
    UNION SELECT c."SubscriptionId", 'RatePlanChargeTier ' || t."Id"
                 || ' of subscription version ' || c."SubscriptionId"
      FROM zuora_all."RatePlanChargeTier" t
      JOIN zuora_all."RatePlanCharge" c ON c."Id" = t."RatePlanChargeId"
     WHERE t."Id" IN {_in('RatePlanChargeTier')})
SELECT DISTINCT ids.id, n.name, ids.why FROM ids
JOIN (SELECT "Id" AS id, "Name" AS name FROM zuora_all."Subscription"
      UNION SELECT zuora_id, name FROM local_all.zuora_local_subscriptions) n
  ON n.id = ids.id
UNION
SELECT NULL, o.subscription_name, 'order ' || CAST(o.id AS VARCHAR)
  FROM local_all.orders o
 WHERE CAST(o.id AS VARCHAR) IN {_in('orders')} AND o.subscription_name IS NOT NULL;

CREATE OR REPLACE TEMP TABLE quarantine_accounts AS
SELECT DISTINCT key AS account_id, 'Account ' || key AS why FROM main.quarantine
 WHERE object = 'Account' AND key IS NOT NULL
UNION SELECT "AccountId", 'Contact ' || "Id" FROM zuora_all."Contact"
 WHERE "Id" IN {_in('Contact')} AND "AccountId" IS NOT NULL
UNION SELECT ba.zuora_account_id, 'Contact ' || c.zuora_contact_id
  FROM local_all.billing_account_contacts c
  JOIN local_all.billing_accounts ba ON ba.id = c.billing_account_id
 WHERE c.zuora_contact_id IN {_in('Contact')} AND ba.zuora_account_id IS NOT NULL;

CREATE OR REPLACE TEMP TABLE quarantine_catalog AS
SELECT DISTINCT key, object || ' ' || key AS why FROM main.quarantine
 WHERE object IN {CATALOG!r} AND key IS NOT NULL;
"""

HOLD_SQL = """
UPDATE findings f SET kind = 'quarantined', action = 'human', severity = 'medium',
       explanation = format('held back while {} is quarantined (nothing is planned from a '
                            'record recon could not read): {}', h.why,
                            coalesce(f.explanation, ''))
FROM (
    SELECT f2.object, f2.key, f2.kind, f2.rule, f2.field, min(q.why) AS why
      FROM findings f2
      JOIN quarantine_subscriptions q
        ON f2.subscription_name = q.name
            OR (f2.object = 'orders' AND f2.key = q.name)
     WHERE f2.kind <> 'quarantined'
     GROUP BY ALL
    UNION ALL
    SELECT f2.object, f2.key, f2.kind, f2.rule, f2.field, min(q.why)
      FROM findings f2 JOIN quarantine_accounts q
        ON f2.account_id = q.account_id OR (f2.object = 'Account' AND f2.key = q.account_id)
     WHERE f2.kind <> 'quarantined'
     GROUP BY ALL
    UNION ALL
    SELECT f2.object, f2.key, f2.kind, f2.rule, f2.field, min(q.why)
      FROM findings f2 JOIN quarantine_catalog q
        ON f2.key = q.key OR f2.zuora_value = q.key OR f2.local_value = q.key
           OR strpos(coalesce(CAST(f2.evidence AS VARCHAR), ''), q.key) > 0
     WHERE f2.kind <> 'quarantined'
     GROUP BY ALL
) h
WHERE f.object = h.object AND f.key IS NOT DISTINCT FROM h.key AND f.kind = h.kind
  AND f.rule IS NOT DISTINCT FROM h.rule AND f.field IS NOT DISTINCT FROM h.field
"""

UNKEYED_SQL = """
UPDATE findings f SET action = 'human', severity = 'high',
       explanation = coalesce(f.explanation, '') || format(
           ' — not deleted automatically: {} {} record(s) were quarantined with an unreadable '
           'Id, and this local row may be one of them (see the quarantine)', u.n, f.object)
FROM (SELECT object, count(*) AS n FROM main.quarantine
       WHERE side = 'zuora' AND key IS NULL AND "column" = 'Id' GROUP BY object) u
WHERE f.object = u.object AND f.kind = 'orphaned_in_local'
"""


def hold_back(con: duckdb.DuckDBPyConnection, scope: str = "all") -> None:
    """Turn every finding that depends on a quarantined record into a ``quarantined`` one
    (see the module docstring). Run after the rules and the annotation, before
    ``annotate.add_quarantined`` adds the quarantined records themselves. A catalog-scope
    snapshot has only the catalog to hold back."""
    row = con.execute("SELECT count(*) FROM main.quarantine").fetchone()
    if not row or not row[0]:
        return
    con.execute(SCOPE_SQL if scope == "all" else CATALOG_SCOPE_SQL)
    con.execute(HOLD_SQL)
    con.execute(UNKEYED_SQL)

"""Rules on the people side of accounts (L7, L8): customers and memberships.

Keys are e-mails (customers are CustomersDot users, unique by e-mail), compared trimmed and
case-insensitively. Who may reach a billing account is decided from Zuora's Bill-To and
Sold-To contacts of its account (the source of truth), never from the local contact cache.
"""

from __future__ import annotations

from reconcile.rules.base import Rule, email

_ACCT = f"""
    SELECT a.Id AS zid, {email('sc.WorkEmail')} AS sold_email, {email('bc.WorkEmail')}
           AS bill_email, ba.id AS ba_id,
           greatest(a.UpdatedDate, sc.UpdatedDate, bc.UpdatedDate) AS updated
    FROM zuora.Account a
    LEFT JOIN zuora.Contact sc ON sc.Id = a.SoldToId
    LEFT JOIN zuora.Contact bc ON bc.Id = a.BillToId
    LEFT JOIN local.billing_accounts ba ON ba.zuora_account_id = a.Id"""
_CUST = f"SELECT id, {email('email')} AS e FROM local.customers"


def d19_sql() -> str:
    """The Sold-To e-mail of every Zuora account has a customer (else ``customers``) with a
    membership to the account's billing account (else ``billing_account_memberships``)."""
    return f"""
    WITH acct AS ({_ACCT}), cust AS ({_CUST})
    SELECT 'customers' AS object, a.sold_email AS key, 'rule_violation' AS kind,
           'D19' AS rule, 'auto' AS action, 'medium' AS severity, 'D19' AS drift_id,
           format('no customer has {{}}, the Sold-To e-mail of account {{}}: create the '
                  'customer with a membership to its billing account', a.sold_email,
                  string_agg(a.zid, ', ' ORDER BY a.zid)) AS explanation,
           min(a.zid) AS account_id, max(a.updated) AS zuora_updated
    FROM acct a
    WHERE a.sold_email IS NOT NULL
      AND a.sold_email NOT IN (SELECT e FROM cust WHERE e IS NOT NULL)
    GROUP BY a.sold_email
    UNION ALL
    SELECT 'billing_account_memberships', a.sold_email, 'rule_violation', 'D19', 'auto',
           'medium', 'D19',
           format('customer {{}} (Sold-To of account {{}}) has no membership to {{}}: add it',
                  a.sold_email, string_agg(a.zid, ', ' ORDER BY a.zid),
                  CASE WHEN bool_or(a.ba_id IS NULL) THEN 'its billing account (missing '
                       || 'locally: create it first)' ELSE 'its billing account' END),
           min(a.zid), max(a.updated)
    FROM acct a JOIN cust c ON c.e = a.sold_email
    WHERE NOT EXISTS (SELECT 1 FROM local.billing_account_memberships m
                      WHERE m.customer_id = c.id AND m.billing_account_id = a.ba_id)
    GROUP BY a.sold_email"""


def d20_sql() -> str:
    """A membership whose customer's e-mail is neither the Bill-To nor the Sold-To e-mail of
    the billing account's Zuora account: access decided by a stale or wrong e-mail match."""
    return f"""
    WITH acct AS ({_ACCT}), cust AS ({_CUST})
    SELECT 'billing_account_memberships' AS object, c.e AS key, 'rule_violation' AS kind,
           'D20' AS rule, 'human' AS action, 'high' AS severity, 'D20' AS drift_id,
           format('customer {{}} is a member of the billing account of {{}}, whose Bill-To ({{}}) '
                  'and Sold-To ({{}}) e-mails are different: removing or keeping the access is '
                  'a person''s decision', c.e, a.zid, coalesce(a.bill_email, 'none'),
                  coalesce(a.sold_email, 'none')) AS explanation,
           a.zid AS account_id, a.updated AS zuora_updated,
           json_object('membership_id', m.id, 'billing_account_id', m.billing_account_id)
               AS evidence
    FROM local.billing_account_memberships m
    JOIN cust c ON c.id = m.customer_id
    JOIN acct a ON a.ba_id = m.billing_account_id
    WHERE c.e IS NOT NULL AND c.e IS DISTINCT FROM a.bill_email
      AND c.e IS DISTINCT FROM a.sold_email"""


def d17_sql() -> str:
    """A membership to a billing account whose Zuora account does not exist: the orphan
    billing account cannot simply be deleted."""
    return f"""
    WITH cust AS ({_CUST})
    SELECT 'billing_account_memberships' AS object, coalesce(c.e, 'customer ' || m.customer_id)
           AS key, 'rule_violation' AS kind, 'D17' AS rule, 'human' AS action,
           'high' AS severity, 'D17' AS drift_id,
           format('customer {{}} has a membership to billing account {{}} of Zuora account {{}}, '
                  'which does not exist in Zuora: a person decides what happens to the access',
                  coalesce(c.e, CAST(m.customer_id AS VARCHAR)), ba.id, ba.zuora_account_id)
               AS explanation,
           ba.zuora_account_id AS account_id,
           json_object('membership_id', m.id, 'billing_account_id', ba.id) AS evidence
    FROM local.billing_account_memberships m
    JOIN local.billing_accounts ba ON ba.id = m.billing_account_id
    LEFT JOIN cust c ON c.id = m.customer_id
    WHERE ba.zuora_account_id NOT IN (SELECT Id FROM zuora.Account)"""


RULES = [
    Rule("D19", "Sold-To e-mail without a customer or membership", d19_sql,
         about=("customers", "billing_account_memberships")),
    Rule("D20", "membership whose customer matches none of the account's contacts", d20_sql,
         about=("billing_account_memberships",)),
    Rule("D17", "membership to a billing account unknown to Zuora", d17_sql,
         about=("billing_account_memberships",)),
]

"""What a drift scenario works on, and how it records ground truth.

A scenario is a small named function ``fn(world, n)`` that changes ``n`` randomly chosen
instances of one kind of drift (domain.md §5) in a clean :class:`World` and records, for each
finding the reconciler must produce, one label row. Scenarios claim the subscriptions and
accounts they touch so that two scenarios never overlap and each label stays exact.

Label columns (docs/sandbox.md "Labels file"):

========  ===================================================================================
scenario  D01…D26
object    Zuora object name (Subscription, Contact, …) or a local-only table (orders, …)
key       Zuora Id for Zuora objects; the natural key for local-only rules (subscription
          name for orders, namespace id for D12, e-mail for customers/memberships)
field     Zuora field name for field_mismatch; local column for column-level rule findings
kind      missing_in_local | orphaned_in_local | field_mismatch | duplicate_local |
          rule_violation | none (D26: must NOT be reported)
rule      the D-id of the cross-object rule expected to fire (rule findings), else null
action    auto | human | none
detail    a sentence for people reading the labels
========  ===================================================================================
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from sandbox.generate.ids import IdFactory
from sandbox.generate.local import LocalCounters

LABEL_SCHEMA = {
    "scenario": pl.String, "object": pl.String, "key": pl.String, "field": pl.String,
    "kind": pl.String, "rule": pl.String, "action": pl.String, "detail": pl.String,
}
KINDS = ("missing_in_local", "orphaned_in_local", "field_mismatch", "duplicate_local",
         "rule_violation", "none")
SUBTREE = ("Subscription", "RatePlan", "RatePlanCharge", "RatePlanChargeTier")


@dataclass
class World:
    """One chunk of a tenant: typed Zuora frames and local tables, mutable by scenarios."""

    zuora: dict[str, pl.DataFrame]
    local: dict[str, pl.DataFrame]
    rng: np.random.Generator
    ids: IdFactory
    counters: LocalCounters
    tz: str
    as_of: dt.date
    has_catalog: bool = True  # catalog scenarios run only where the catalog lives
    # The generator's own facts per subscription version (tenant.ORDER_FACT_SCHEMA): what the
    # order of a name would be with that version as its latest. Scenarios read it instead of
    # deriving orders from Zuora (the reconciler's derivation is what the labels check).
    order_facts: pl.DataFrame | None = None
    claimed_names: set[str] = field(default_factory=set)
    claimed_accounts: set[str] = field(default_factory=set)
    labels: list[pl.DataFrame] = field(default_factory=list)

    # -- choosing targets ----------------------------------------------------------------
    def claim_names(self, eligible: Iterable[str], n: int) -> list[str]:
        """Up to ``n`` subscription names from ``eligible`` that no scenario has touched; their
        owner accounts are claimed too (account scenarios must not disturb them)."""
        if n <= 0:
            return []
        pool = sorted(set(eligible) - self.claimed_names)
        if not pool:
            return []
        pick = [pool[i] for i in self.rng.choice(len(pool), size=min(n, len(pool)),
                                                 replace=False)]
        self.claimed_names.update(pick)
        subs = self.zuora["Subscription"].filter(pl.col("Name").is_in(pick))
        self.claimed_accounts.update(subs["AccountId"].to_list())
        self.claimed_accounts.update(subs["InvoiceOwnerId"].to_list())
        return pick

    def claim_accounts(self, eligible: Iterable[str], n: int) -> list[str]:
        """Up to ``n`` Zuora account ids, unclaimed, whose subscriptions are unclaimed too."""
        if n <= 0:
            return []
        subs = self.zuora["Subscription"]
        busy = set(subs.filter(pl.col("Name").is_in(sorted(self.claimed_names)))["AccountId"])
        pool = sorted(set(eligible) - self.claimed_accounts - busy)
        if not pool or n <= 0:
            return []
        pick = [pool[i] for i in self.rng.choice(len(pool), size=min(n, len(pool)),
                                                 replace=False)]
        self.claimed_accounts.update(pick)
        self.claimed_names.update(
            subs.filter(pl.col("AccountId").is_in(pick) | pl.col("InvoiceOwnerId").is_in(pick))
            ["Name"].to_list())
        return pick

    # -- helpers -------------------------------------------------------------------------
    def new_ids(self, k: int) -> list[str]:
        """``k`` fresh Zuora-style ids from this world's scenario stream."""
        return self.ids.new(k).to_list()

    def latest(self) -> pl.DataFrame:
        s = self.zuora["Subscription"]
        return s.filter(pl.col("Version") == pl.col("Version").max().over("Name"))

    def subtree_ids(self, version_ids: Iterable[str], side: str = "zuora") -> dict[str, list[str]]:
        """Ids of each object in the subtrees of these subscription versions."""
        vids = list(version_ids)
        if side == "zuora":
            rp = self.zuora["RatePlan"].filter(pl.col("SubscriptionId").is_in(vids))["Id"]
            ch = self.zuora["RatePlanCharge"].filter(pl.col("RatePlanId").is_in(rp.implode()))["Id"]
            tr = self.zuora["RatePlanChargeTier"].filter(
                pl.col("RatePlanChargeId").is_in(ch.implode()))["Id"]
        else:
            loc = self.local
            rp = loc["zuora_local_rate_plans"].filter(
                pl.col("subscription_id").is_in(vids))["zuora_id"]
            ch = loc["zuora_local_rate_plan_charges"].filter(
                pl.col("rate_plan_id").is_in(rp.implode()))["zuora_id"]
            tr = loc["zuora_local_rate_plan_charge_tiers"].filter(
                pl.col("rate_plan_charge_id").is_in(ch.implode()))["zuora_id"]
        return {"Subscription": vids, "RatePlan": rp.to_list(), "RatePlanCharge": ch.to_list(),
                "RatePlanChargeTier": tr.to_list()}

    def update_local(self, table: str, key_col: str, keys: Iterable, **values: pl.Expr) -> None:
        """Set columns on the local rows whose ``key_col`` is in ``keys``."""
        hit = pl.col(key_col).is_in(list(keys))
        self.local[table] = self.local[table].with_columns(
            [pl.when(hit).then(expr).otherwise(pl.col(col)).alias(col)
             for col, expr in values.items()])

    def drop_local(self, table: str, key_col: str, keys: Iterable) -> None:
        self.local[table] = self.local[table].filter(~pl.col(key_col).is_in(list(keys)))

    def drop_zuora(self, obj: str, ids: Iterable[str]) -> None:
        self.zuora[obj] = self.zuora[obj].filter(~pl.col("Id").is_in(list(ids)))

    # -- ground truth --------------------------------------------------------------------
    def label(self, scenario: str, obj: str, keys: Iterable[str], kind: str, action: str,
              field: str | None = None, rule: str | None = None, detail: str = "") -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown label kind {kind!r}")
        keys = [str(k) for k in keys]
        if not keys:
            return
        self.labels.append(pl.DataFrame({
            "scenario": scenario, "object": obj, "key": keys, "field": field, "kind": kind,
            "rule": rule, "action": action, "detail": detail,
        }, schema=LABEL_SCHEMA))

    def label_subtree(self, scenario: str, version_ids: Iterable[str], kind: str, action: str,
                      side: str, detail: str = "") -> None:
        for obj, keys in self.subtree_ids(version_ids, side).items():
            self.label(scenario, obj, keys, kind, action, detail=detail)

    def label_frame(self) -> pl.DataFrame:
        if not self.labels:
            return pl.DataFrame(schema=LABEL_SCHEMA)
        return pl.concat(self.labels)


Scenario = Callable[[World, int], None]


def split(n: int, parts: int) -> list[int]:
    """``n`` instances spread over ``parts`` variants (earlier variants take the remainder)."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def patch_rows(frame: pl.DataFrame, key: str, rows: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the columns of ``rows`` set (NULLs included) on every row whose ``key``
    appears in ``rows`` (``rows`` has unique keys; ``frame`` may repeat them, e.g. all versions
    of a Name). Column order and dtypes of ``frame`` are kept."""
    cols = [c for c in rows.columns if c != key]
    if not cols or rows.height == 0:
        return frame
    tagged = rows.select(
        pl.col(key).cast(frame.schema[key]),
        *[pl.col(c).cast(frame.schema[c]).alias(f"__new_{c}") for c in cols],
        __hit=pl.lit(True),
    )
    out = frame.join(tagged, on=key, how="left", maintain_order="left")
    return out.with_columns(
        [pl.when(pl.col("__hit")).then(pl.col(f"__new_{c}")).otherwise(pl.col(c)).alias(c)
         for c in cols]
    ).select(frame.columns)

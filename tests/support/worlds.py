"""Small generated worlds for tests, built once per process and copied per test."""

from __future__ import annotations

import copy
import functools

import duckdb
import polars as pl

from core.catalog.orders import DERIVED_ORDERS_SQL
from sandbox.generate.drift.base import World
from sandbox.generate.ids import IdFactory
from sandbox.generate.local import LocalCounters
from sandbox.generate.run import Options, build_catalog_frames, build_world
from sandbox.generate.tenant import Counters

ACCOUNTS = 600
SEED = 11


@functools.lru_cache(maxsize=4)
def _clean(accounts: int, seed: int) -> World:
    opts = Options(accounts=accounts, seed=seed)
    return build_world(opts, 0, accounts, build_catalog_frames(seed), Counters(),
                       LocalCounters(billing_account=1, contact=1, customer=1, membership=1,
                                     order=1))


def fresh_world(accounts: int = ACCOUNTS, seed: int = SEED) -> World:
    """A clean world nobody else mutates (frames are immutable; containers are copied)."""
    base = _clean(accounts, seed)
    w = copy.copy(base)
    w.zuora, w.local = dict(base.zuora), dict(base.local)
    w.claimed_names, w.claimed_accounts, w.labels = set(), set(), []
    w.counters = copy.copy(base.counters)
    w.rng = copy.deepcopy(base.rng)
    w.ids = IdFactory(w.rng)  # ids drawn by scenarios come from this world's own stream
    return w


def derive_orders(zuora: dict[str, pl.DataFrame], billing_accounts: pl.DataFrame) -> pl.DataFrame:
    """The reconciler's order derivation (``core.catalog.orders``) run over a world's Zuora
    side: one row per paid subscription name (L5). The generator does not use it (it writes
    orders from its own facts), so a test comparing the two checks each against the other."""
    con = duckdb.connect()
    try:
        for name in ("Subscription", "RatePlan", "RatePlanCharge", "Product", "ProductRatePlan"):
            con.register(name, zuora[name].to_arrow())
        con.register("billing_accounts", billing_accounts.select("id", "zuora_account_id").to_arrow())
        return con.sql(DERIVED_ORDERS_SQL + " ORDER BY subscription_name").pl()
    finally:
        con.close()

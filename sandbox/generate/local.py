"""The local (CustomersDot) side of a generated tenant, as a correct sync would have left it.

Zuora-copy tables come from the catalogue's projection (``core.catalog.project``), so the
clean local copy equals Zuora after normalisation by construction; orders are written from the
generator's own facts about each subscription (``tenant._order_facts``: the version it made
latest, the owner, term, cancellation, base plan and seats it booked), deliberately NOT from
the reconciler's derivation (``core.catalog.orders``), so that the tests comparing the two
can catch a bug in either; customers, memberships, local metadata and trial orders (local
only, L10) are generated here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from core.catalog import get
from core.catalog.project import to_local

# The orders columns the catalogue declares Owner.DERIVED (objects.ORDERS), in label order.
DERIVED_ORDER_COLUMNS = (
    "subscription_id", "zuora_account_id", "billing_account_id", "product_rate_plan_id",
    "start_date", "end_date", "quantity", "amendment_type",
)
CATALOG_OBJECTS = ("Product", "ProductRatePlan", "ProductRatePlanCharge",
                   "ProductRatePlanChargeTier")
COPY_OBJECTS = ("Subscription", "RatePlan", "RatePlanCharge", "RatePlanChargeTier")


@dataclass
class LocalCounters:
    """Local surrogate ids continue across chunks."""

    billing_account: int = 1
    contact: int = 1
    customer: int = 1
    membership: int = 1
    order: int = 1

    def take(self, name: str, n: int) -> np.ndarray:
        start = getattr(self, name)
        setattr(self, name, start + n)
        return np.arange(start, start + n, dtype=np.int64)


def _stamped(df: pl.DataFrame, source: pl.Series, rng: np.random.Generator) -> pl.DataFrame:
    """created_at/updated_at: when the sync wrote the row, seconds after Zuora's UpdatedDate."""
    lag = pl.Series(rng.integers(1, 300, df.height)).cast(pl.Int64)
    at = source + pl.duration(seconds=lag)
    return df.with_columns(created_at=at, updated_at=at)


def project_copy(zuora: dict[str, pl.DataFrame], names: tuple[str, ...],
                 rng: np.random.Generator) -> dict[str, pl.DataFrame]:
    out = {}
    for name in names:
        spec = get(name)
        typed = zuora[name]
        out[spec.table] = _stamped(to_local(spec, typed), typed["UpdatedDate"], rng)
    return out


def build_accounts_local(accounts: pl.DataFrame, contacts: pl.DataFrame,
                         counters: LocalCounters, rng: np.random.Generator,
                         ) -> dict[str, pl.DataFrame]:
    acc_spec, con_spec = get("Account"), get("Contact")
    ba_ids = pl.Series("id", counters.take("billing_account", accounts.height))
    in_scope = pl.concat([accounts["BillToId"], accounts["SoldToId"]]).unique()
    scoped = contacts.filter(pl.col("Id").is_in(in_scope.implode()))
    con_local = to_local(con_spec, scoped).with_columns(
        id=pl.Series(counters.take("contact", scoped.height)))
    acct_key = pl.DataFrame({"zuora_account_id": accounts["Id"], "billing_account_id": ba_ids})
    con_local = con_local.join(acct_key, on="zuora_account_id", how="left")
    con_local = _stamped(con_local, scoped["UpdatedDate"], rng)
    ba = to_local(acc_spec, accounts, refs={"billing_account_contacts": con_local})
    ba = _stamped(ba.with_columns(id=ba_ids), accounts["UpdatedDate"], rng)
    return {"billing_accounts": ba, "billing_account_contacts": con_local}


def build_people(accounts: pl.DataFrame, contacts: pl.DataFrame, billing_accounts: pl.DataFrame,
                 counters: LocalCounters, rng: np.random.Generator) -> dict[str, pl.DataFrame]:
    """One customer per distinct Sold-To e-mail, with a membership to each billing account
    whose Sold-To it is (L8)."""
    sold = (accounts.select(zuora_account_id="Id", SoldToId="SoldToId")
            .join(contacts.select("Id", "WorkEmail", "FirstName", "LastName", "Country", "City",
                                  "State", "PostalCode", "CreatedDate"),
                  left_on="SoldToId", right_on="Id")
            .with_columns(email=pl.col("WorkEmail").str.strip_chars().str.to_lowercase())
            .join(billing_accounts.select("zuora_account_id", billing_account_id="id"),
                  on="zuora_account_id"))
    people = sold.sort("CreatedDate").unique("email", keep="first", maintain_order=True)
    n = people.height
    customers = people.select(
        id=pl.Series(counters.take("customer", n)), first_name="FirstName", last_name="LastName",
        email="email",
        provider=pl.when(pl.Series(rng.random(n) < 0.6)).then(pl.lit("gitlab")).otherwise(None),
        uid=pl.when(pl.Series(rng.random(n) < 0.6)).then(
            pl.Series(rng.integers(10_000, 9_999_999, n)).cast(pl.String)).otherwise(None),
        zuora_account_id=pl.when(pl.Series(rng.random(n) < 0.3)).then(
            pl.col("zuora_account_id")).otherwise(None),
        country="Country", state="State", city="City", zip_code="PostalCode",
        billable=pl.lit(True),
        confirmed_at=pl.col("CreatedDate") + pl.duration(minutes=5),
        created_at=pl.col("CreatedDate"), updated_at=pl.col("CreatedDate"),
    )
    mem = sold.join(customers.select("email", customer_id="id"), on="email").select(
        "customer_id", "billing_account_id", created_at="CreatedDate", updated_at="CreatedDate")
    mem = mem.with_columns(id=pl.Series(counters.take("membership", mem.height)))
    return {"customers": customers, "billing_account_memberships": mem}


def order_columns(facts: pl.DataFrame, billing_accounts: pl.DataFrame) -> pl.DataFrame:
    """The Zuora-derived columns of an order (L5) for each version row of ``facts`` taken as
    its subscription's latest: the generator's facts as order columns, the owner's local
    billing account looked up in the billing accounts this generator wrote."""
    ba = billing_accounts.select("zuora_account_id", billing_account_id="id")
    return facts.join(ba, left_on="AccountId", right_on="zuora_account_id",
                      how="left", maintain_order="left").select(
        subscription_name="Name", subscription_id="Id", zuora_account_id="AccountId",
        billing_account_id=pl.col("billing_account_id").cast(pl.Int64),
        product_rate_plan_id="product_rate_plan_id", start_date="TermStartDate",
        end_date="end_date", quantity=pl.col("seats").cast(pl.Int32),
        amendment_type="amendment_type", latest_status="Status", namespace_id="namespace_id",
        namespace_name="namespace_name")


def build_orders(facts: pl.DataFrame, local: dict[str, pl.DataFrame],
                 counters: LocalCounters, rng: np.random.Generator,
                 as_of: dt.date) -> pl.DataFrame:
    """One order per paid subscription name (L4) from its latest version's facts, plus trials."""
    latest = facts.filter(pl.col("is_latest") & pl.col("paid")).sort("Name")
    derived = order_columns(latest, local["billing_accounts"])
    n = derived.height
    sold_customer = (local["billing_accounts"].select("id", "sold_to_contact_id")
                     .join(local["billing_account_contacts"].select(
                         sold_to_contact_id="id", email=pl.col("work_email").str.strip_chars()
                         .str.to_lowercase()), on="sold_to_contact_id")
                     .join(local["customers"].select("email", customer_id="id"), on="email")
                     .select(billing_account_id="id", customer_id="customer_id"))
    r = lambda: pl.Series(rng.random(n))  # noqa: E731
    ts = lambda: pl.lit(dt.datetime.combine(as_of, dt.time())) - pl.duration(  # noqa: E731
        minutes=pl.Series(rng.integers(60, 400 * 24 * 60, n)))
    saas = pl.col("namespace_id").is_not_null() & (pl.col("namespace_id") != "")
    orders = derived.join(sold_customer, on="billing_account_id", how="left").with_columns(
        gl_namespace_id=pl.when(saas).then(pl.col("namespace_id")).otherwise(None),
        gl_namespace_name=pl.when(saas).then(pl.col("namespace_name")).otherwise(None),
        trial=pl.lit(False),
        last_extra_ci_minutes_sync_at=pl.when(saas & (r() < 0.7)).then(ts()).otherwise(None),
        increased_billing_rate_notified_at=pl.when(r() < 0.05).then(ts()).otherwise(None),
        reconciliation_accepted=r() < 0.3,
        seat_overage_notified_at=pl.when(r() < 0.08).then(ts()).otherwise(None),
        auto_renew_error_notified_at=pl.when(r() < 0.02).then(ts()).otherwise(None),
        monthly_seat_digest_notified_on=pl.when(r() < 0.2).then(
            pl.lit(as_of.replace(day=1))).otherwise(None),
        source=pl.when(r() < 0.6).then(pl.lit("CustomersPortal")).otherwise(pl.lit("SalesAssisted")),
        created_at=pl.col("start_date").cast(pl.Datetime("us")) + pl.duration(hours=9),
    ).with_columns(updated_at=pl.col("created_at"))
    orders = orders.with_columns(id=pl.Series(counters.take("order", n))).drop(
        "latest_status", "namespace_id", "namespace_name")
    # Trials live only locally (L10): no subscription name, never orphans.
    cust = local["customers"]
    nt = int(cust.height * 0.08)
    pick = rng.choice(cust.height, size=nt, replace=False) if nt else np.array([], dtype=int)
    start = pl.Series(rng.integers(0, 700, nt)).cast(pl.Int64)
    trials = pl.DataFrame({"customer_id": cust["id"].gather(pick)}).with_columns(
        id=pl.Series(counters.take("order", nt)), trial=pl.lit(True),
        trial_type=pl.lit("ultimate"),
        gl_namespace_id=pl.Series(rng.integers(50_000_000, 59_999_999, nt)).cast(pl.String),
        start_date=pl.lit(as_of) - pl.duration(days=start),
        reconciliation_accepted=pl.lit(False), source=pl.lit("GitLab.com"),
    ).with_columns(end_date=pl.col("start_date") + pl.duration(days=30),
                   gl_namespace_name="trial-" + pl.col("gl_namespace_id"),
                   created_at=pl.col("start_date").cast(pl.Datetime("us")),
                   updated_at=pl.col("start_date").cast(pl.Datetime("us")))
    return pl.concat([orders, trials], how="diagonal_relaxed")

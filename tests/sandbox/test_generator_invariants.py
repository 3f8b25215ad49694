"""The clean Zuora side satisfies Zuora's invariants Z1–Z16 (domain.md §2.1).

Each test states one invariant as a query over the generated frames; each would fail if the
generator broke it (gapped versions, a second last segment, a tier in the wrong currency…).
"""

from __future__ import annotations

import polars as pl
import pytest

from sandbox.generate.catalog import CURRENCIES
from tests.support.worlds import fresh_world


@pytest.fixture(scope="module", params=[11, 23])
def z(request) -> dict[str, pl.DataFrame]:
    """Two seeds: invariants must hold for any seed, not one lucky stream."""
    return fresh_world(seed=request.param).zuora


def _latest(z):
    s = z["Subscription"]
    return s.filter(pl.col("Version") == pl.col("Version").max().over("Name"))


def test_tenant_is_not_trivial(z) -> None:
    s = z["Subscription"]
    per_name = s.group_by("Name").len()
    assert per_name["len"].max() >= 4, "no long version chains generated"
    assert set(s["Status"]) >= {"Active", "Cancelled", "Expired", "Draft"}
    events = z["RatePlan"]["AmendmentType"].drop_nulls().unique().to_list()
    assert {"NewProduct", "UpdateProduct"} <= set(events)
    assert (s["AccountId"].n_unique() < s.select("Name", "AccountId").unique().height), \
        "no owner transfers"
    assert z["RatePlanCharge"]["Segment"].max() >= 3


def test_z1_versions_are_1_to_n_with_one_latest(z) -> None:
    s = z["Subscription"]
    g = s.group_by("Name").agg(n=pl.len(), mx=pl.col("Version").max(),
                               mn=pl.col("Version").min(), distinct=pl.col("Version").n_unique(),
                               latest=pl.col("IsLatestVersion").sum(),
                               latest_is_max=(pl.col("IsLatestVersion")
                                              == (pl.col("Version") == pl.col("Version").max())
                                              ).all())
    assert (g["mn"] == 1).all() and (g["mx"] == g["n"]).all() and (g["distinct"] == g["n"]).all()
    assert (g["latest"] == 1).all() and g["latest_is_max"].all()


def test_z2_version_chain_links(z) -> None:
    s = z["Subscription"].sort("Name", "Version")
    assert s["Id"].n_unique() == s.height
    first = s.filter(pl.col("Version") == 1)
    assert first["PreviousSubscriptionId"].null_count() == first.height
    assert (first["OriginalId"] == first["Id"]).all()
    prev = s.with_columns(expect_prev=pl.col("Id").shift(1).over("Name"),
                          expect_orig=pl.col("Id").first().over("Name"))
    later = prev.filter(pl.col("Version") > 1)
    assert (later["PreviousSubscriptionId"] == later["expect_prev"]).all()
    assert (prev["OriginalId"] == prev["expect_orig"]).all()


def test_z3_only_old_versions_are_expired(z) -> None:
    s = z["Subscription"]
    assert (s.filter(~pl.col("IsLatestVersion"))["Status"] == "Expired").all()
    assert (s.filter(pl.col("IsLatestVersion"))["Status"] != "Expired").all()


def test_z4_revision_not_below_version(z) -> None:
    s = z["Subscription"]
    rev = s["Revision"].cast(pl.Float64)
    assert (rev >= s["Version"]).all()


def test_z5_terms(z) -> None:
    s = z["Subscription"]
    assert (s.group_by("Name").agg(pl.col("SubscriptionStartDate").n_unique())[
        "SubscriptionStartDate"] == 1).all()
    assert (s["TermStartDate"] >= s["SubscriptionStartDate"]).all()
    termed = s.filter(pl.col("TermType") == "TERMED")
    assert (termed["CurrentTerm"] > 0).all()
    assert (termed["TermEndDate"] > termed["TermStartDate"]).all()
    ever = s.filter((pl.col("TermType") == "EVERGREEN") & (pl.col("Status") != "Cancelled"))
    assert ever.height and ever["TermEndDate"].null_count() == ever.height


def test_z6_trigger_dates_and_draft_statuses(z) -> None:
    s = z["Subscription"]
    both = s.drop_nulls(["ContractEffectiveDate", "ServiceActivationDate",
                         "ContractAcceptanceDate"])
    assert (both["ContractEffectiveDate"] <= both["ServiceActivationDate"]).all()
    assert (both["ServiceActivationDate"] <= both["ContractAcceptanceDate"]).all()
    missing = (pl.col("ContractEffectiveDate").is_null() | pl.col("ServiceActivationDate").is_null()
               | pl.col("ContractAcceptanceDate").is_null())
    draftish = pl.col("Status").is_in(["Draft", "Pending Activation", "Pending Acceptance"])
    assert s.filter(missing != draftish).height == 0


def test_z7_cancelled_has_dates(z) -> None:
    c = z["Subscription"].filter(pl.col("Status") == "Cancelled")
    assert c.height and c["CancelledDate"].null_count() == 0
    assert (c["SubscriptionEndDate"] == c["CancelledDate"]).all()


def test_z8_segments_contiguous_one_last(z) -> None:
    ch = z["RatePlanCharge"].sort("SubscriptionId", "ChargeNumber", "Segment")
    g = ch.group_by("SubscriptionId", "ChargeNumber").agg(
        n=pl.len(), mx=pl.col("Segment").max(), mn=pl.col("Segment").min(),
        last=pl.col("IsLastSegment").sum(),
        last_is_max=(pl.col("IsLastSegment") == (pl.col("Segment") == pl.col("Segment").max())).all())
    assert (g["mn"] == 1).all() and (g["mx"] == g["n"]).all()
    assert (g["last"] == 1).all() and g["last_is_max"].all()
    nxt = ch.with_columns(next_start=pl.col("EffectiveStartDate").shift(-1).over(
        "SubscriptionId", "ChargeNumber")).drop_nulls("next_start")
    assert (nxt["EffectiveEndDate"] == nxt["next_start"]).all()
    closed = ch.drop_nulls("EffectiveEndDate")
    assert (closed["EffectiveEndDate"] > closed["EffectiveStartDate"]).all()


def test_z9_charge_number_stable_and_original_id(z) -> None:
    ch = z["RatePlanCharge"]
    s = z["Subscription"].select(SubscriptionId="Id", Name="Name")
    per_number = ch.join(s, on="SubscriptionId").group_by("ChargeNumber").agg(
        names=pl.col("Name").n_unique(), origs=pl.col("OriginalId").n_unique(),
        prpc=pl.col("ProductRatePlanChargeId").n_unique())
    assert (per_number["names"] == 1).all() and (per_number["origs"] == 1).all()
    assert (per_number["prpc"] == 1).all()
    assert ch.filter(pl.col("OriginalId").is_in(ch["Id"].implode())).height == ch.height


def test_z10_every_version_has_its_own_subtree(z) -> None:
    rp, ch, tr = z["RatePlan"], z["RatePlanCharge"], z["RatePlanChargeTier"]
    sids = z["Subscription"]["Id"]
    assert rp["SubscriptionId"].is_in(sids.implode()).all()
    assert sids.is_in(rp["SubscriptionId"].implode()).all()
    for df in (rp, ch, tr):
        assert df["Id"].n_unique() == df.height
    joined = ch.join(rp.select(RatePlanId="Id", rp_sub="SubscriptionId"), on="RatePlanId")
    assert joined.height == ch.height and (joined["rp_sub"] == joined["SubscriptionId"]).all()
    assert tr["RatePlanChargeId"].is_in(ch["Id"].implode()).all()
    assert ch["Id"].is_in(tr["RatePlanChargeId"].implode()).all()


def test_z11_catalog_trace(z) -> None:
    rp, ch = z["RatePlan"], z["RatePlanCharge"]
    prpc = z["ProductRatePlanCharge"].select(ProductRatePlanChargeId="Id", cat_prp="ProductRatePlanId",
                                             cat_type="ChargeType", cat_model="ChargeModel")
    j = (ch.join(prpc, on="ProductRatePlanChargeId")
         .join(rp.select(RatePlanId="Id", ProductRatePlanId="ProductRatePlanId"), on="RatePlanId"))
    assert j.height == ch.height
    assert (j["cat_prp"] == j["ProductRatePlanId"]).all()
    assert (j["cat_type"] == j["ChargeType"]).all() and (j["cat_model"] == j["ChargeModel"]).all()


def test_z12_tiers(z) -> None:
    tr = z["RatePlanChargeTier"]
    ch = z["RatePlanCharge"].select(RatePlanChargeId="Id", model="ChargeModel",
                                    SubscriptionId="SubscriptionId")
    s = z["Subscription"].select(SubscriptionId="Id", sub_cur="Currency")
    j = tr.join(ch, on="RatePlanChargeId").join(s, on="SubscriptionId")
    assert (j["Currency"] == j["sub_cur"]).all()
    simple = j.filter(pl.col("model").is_in(["Per Unit Pricing", "Flat Fee Pricing"]))
    assert (simple["Tier"] == 1).all()
    assert simple.group_by("RatePlanChargeId").len()["len"].max() == 1
    tiered = j.filter(pl.col("model") == "Tiered Pricing").sort("RatePlanChargeId", "Tier")
    if tiered.height:
        gaps = tiered.with_columns(prev_end=pl.col("EndingUnit").shift(1).over("RatePlanChargeId")
                                   ).drop_nulls("prev_end")
        assert (gaps["StartingUnit"].cast(pl.Float64)
                == gaps["prev_end"].cast(pl.Float64) + 1).all()


def test_z13_active_accounts_have_own_bill_and_sold_to(z) -> None:
    a, c = z["Account"], z["Contact"]
    active = a.filter(pl.col("Status") == "Active")
    assert active["BillToId"].null_count() == 0 and active["SoldToId"].null_count() == 0
    owner = c.select("Id", "AccountId")
    for col in ("BillToId", "SoldToId"):
        j = a.join(owner, left_on=col, right_on="Id")
        assert j.height == a.height and (j["AccountId"] == j["Id"]).all()


def test_z14_canceled_accounts_own_no_active_subscription(z) -> None:
    latest = _latest(z)
    canceled = z["Account"].filter(pl.col("Status") == "Canceled")["Id"]
    assert canceled.len() > 0
    assert latest.filter(pl.col("AccountId").is_in(canceled.implode())
                         & (pl.col("Status") == "Active")).height == 0


def test_z15_owners_exist_and_currency_matches(z) -> None:
    s, a = z["Subscription"], z["Account"].select("Id", "Currency")
    assert s["AccountId"].is_in(a["Id"].implode()).all()
    assert s["InvoiceOwnerId"].is_in(a["Id"].implode()).all()
    j = s.join(a, left_on="AccountId", right_on="Id", suffix="_acct")
    assert (j["Currency"] == j["Currency_acct"]).all()


def test_z16_catalog(z) -> None:
    prp = z["ProductRatePlan"]
    assert prp.group_by("ProductId", "Name").len()["len"].max() == 1
    tiers = z["ProductRatePlanChargeTier"]
    per = tiers.group_by("ProductRatePlanChargeId").agg(pl.col("Currency").unique())
    assert per.height == z["ProductRatePlanCharge"].height
    assert all(set(c) == set(CURRENCIES) for c in per["Currency"].to_list())
    for name in ("Product", "ProductRatePlan"):
        df = z[name]
        assert (df["EffectiveStartDate"] < df["EffectiveEndDate"]).all()


def test_datetimes_cross_dst_changes(z) -> None:
    """Tenant-zone datetimes must include both PST and PDT instants."""
    from core.catalog import get
    from core.values import render_frame

    rendered = render_frame(get("Subscription"), z["Subscription"], "America/Los_Angeles")
    offsets = set(rendered["CreatedDate"].str.slice(-6).unique().to_list())
    assert {"-08:00", "-07:00"} <= offsets

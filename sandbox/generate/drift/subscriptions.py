"""Drift on the subscription local copy: versions, fields, dates, decimals, status,
segments, latest pointers (D01–D09)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

import polars as pl

from core.catalog import get
from sandbox.generate.drift.base import Scenario, World, patch_rows
from sandbox.generate.local import DERIVED_ORDER_COLUMNS, order_columns
from sandbox.generate.tenant import USERS

SUBS = "zuora_local_subscriptions"
CHARGES = "zuora_local_rate_plan_charges"
TIERS = "zuora_local_rate_plan_charge_tiers"
BILLING_OPS, SALES_OPS = USERS[1], USERS[2]


# -- helpers private to this module ----------------------------------------------------------
def _now(world: World) -> dt.datetime:
    """The extract instant of the tenant (the generator's upper bound for UpdatedDate)."""
    return dt.datetime.combine(world.as_of, dt.time(7, 0))


def _row(world: World, frame: pl.DataFrame) -> dict:
    """One row of ``frame`` chosen with the world's generator."""
    return frame.row(int(world.rng.integers(frame.height)), named=True)


def _one_each(world: World, frame: pl.DataFrame, names: list[str], by: str) -> list[dict]:
    """One row of ``frame`` per value of ``by`` in ``names`` (in that order), chosen with the
    world's generator; ``frame`` is narrowed to the names once, not scanned per name, and each
    group is ordered by its Zuora id so the choice does not depend on join order."""
    if not names:
        return []
    key = "zuora_id" if "zuora_id" in frame.columns else "Id"
    groups = frame.filter(pl.col(by).is_in(names)).partition_by(by, as_dict=True)
    return [_row(world, groups[(name,)].sort(key)) for name in names]


def _later(world: World, since: dt.datetime, now: dt.datetime,
           max_days: int = 120) -> dt.datetime:
    """A whole-second instant at least an hour after ``since`` and not after ``now``."""
    span = int(min((now - since).total_seconds(), max_days * 86_400))
    return since.replace(microsecond=0) + dt.timedelta(seconds=int(world.rng.integers(3_600,
                                                                                      span + 1)))


def _claim_alternating(world: World, first: Iterable[str], second: Iterable[str],
                       n: int) -> tuple[list[str], list[str]]:
    """Names for two variants alternating over ``n`` instances (the first variant takes the
    odd one out); a variant with too few candidates leaves its share to the other."""
    second_pick = world.claim_names(second, n // 2)
    first_pick = world.claim_names(first, n - len(second_pick))
    if len(first_pick) + len(second_pick) < n:
        second_pick += world.claim_names(second, n - len(first_pick) - len(second_pick))
    return first_pick, second_pick


def _label_changes(world: World, sid: str, obj: str, before: pl.DataFrame,
                   after: pl.DataFrame, side: str, action: str, detail: str) -> None:
    """A field_mismatch label for every compared field of ``obj`` whose value differs between
    ``before`` and ``after`` (the same rows of one side, before and after the change)."""
    spec = get(obj)
    key = "Id" if side == "zuora" else spec.key_column
    col = (lambda f: f.name) if side == "zuora" else (lambda f: f.column)
    fields = [f for f in spec.compared_fields if col(f) in before.columns]
    if before.height == 0:
        return
    both = before.select(key, *[col(f) for f in fields]).join(
        after.select(key, *[col(f) for f in fields]), on=key, suffix="__after")
    for f in fields:
        keys = both.filter(pl.col(col(f)).ne_missing(pl.col(f"{col(f)}__after")))[key].sort()
        world.label(sid, obj, keys.to_list(), "field_mismatch", action, field=f.name,
                    detail=detail)


def _order_names(world: World) -> pl.Series:
    orders = world.local["orders"]
    return orders.filter(~pl.col("trial").fill_null(False))["subscription_name"]


def _flip_yes_no(value: str | None) -> str:
    return "No" if value == "Yes" else "Yes"


# -- scenarios ---------------------------------------------------------------------------------
def d01_missing_local_version(world: World, n: int) -> None:
    """A version the local copy never received (a missed Order Processed callout, an
    amendment-only notification under Orders Harmonization): an older, non-latest version, so
    the order and the latest pointer stay right. All picked subtrees are dropped in one pass."""
    mids = world.zuora["Subscription"].filter((pl.col("Version") > 1) & ~pl.col("IsLatestVersion"))
    names = world.claim_names(mids["Name"].unique(), n)
    vids = [row["Id"] for row in _one_each(world, mids, names, "Name")]
    if not vids:
        return
    tree = world.subtree_ids(vids, "local")
    world.label_subtree("D01", vids, "missing_in_local", "auto", "zuora",
                        detail="subscription version missing locally (missed callout)")
    world.drop_local("zuora_local_rate_plan_charge_tiers", "zuora_id", tree["RatePlanChargeTier"])
    world.drop_local("zuora_local_rate_plan_charges", "zuora_id", tree["RatePlanCharge"])
    world.drop_local("zuora_local_rate_plans", "zuora_id", tree["RatePlan"])
    world.drop_local("zuora_local_subscriptions", "zuora_id", vids)


def d03_local_orphan_version(world: World, n: int) -> None:
    """An Order deleted in Zuora: the latest version it created is gone with its whole subtree
    and the subscription is rolled back to the previous version, which becomes the latest
    again (Expired → the live status; deleting a cancellation order makes it Active again).
    The local copy missed the deletion (no callout for it), so it still holds the deleted
    version's subtree, the previous version as Expired, and an order pointing at the deleted
    version. Variants alternate: a cancellation order deleted, another order (renewal, seat
    change, add-on, T&C, owner transfer) deleted."""
    sid = "D03"
    now = _now(world)
    subs = world.zuora["Subscription"]
    canceled = world.zuora["Account"].filter(pl.col("Status") == "Canceled")["Id"].implode()
    prev = subs.select("Name", pl.col("Version") + 1, prev_id="Id", prev_account="AccountId",
                       prev_cancelled="CancelledDate")
    assert world.order_facts is not None, "D03 needs the generator's order facts"
    paid = world.order_facts.filter("paid")["Name"].unique().implode()
    cand = (world.latest()
            .filter((pl.col("Version") >= 2) & pl.col("Name").is_in(paid)
                    & (pl.col("UpdatedDate") < now - dt.timedelta(hours=2))
                    & pl.col("Name").is_in(_order_names(world).implode()))
            .join(prev, on=["Name", "Version"])
            .filter(~pl.col("prev_account").is_in(canceled)))
    is_cancel = (pl.col("Status") == "Cancelled") & pl.col("prev_cancelled").is_null()
    others, cancels = _claim_alternating(world, cand.filter(~is_cancel)["Name"],
                                         cand.filter(is_cancel)["Name"], n)
    picked = cand.filter(pl.col("Name").is_in(others + cancels)).sort("Name")
    if picked.height == 0:
        return
    deleted = picked["Id"].to_list()
    rows = []
    for r in picked.iter_rows(named=True):
        status = "Active" if r["Status"] == "Cancelled" and r["prev_cancelled"] is None \
            else r["Status"]
        rows.append({"Id": r["prev_id"], "Status": status, "IsLatestVersion": True,
                     "UpdatedDate": _later(world, r["UpdatedDate"], now, max_days=30),
                     "UpdatedById": BILLING_OPS})
    update = pl.DataFrame(rows)
    prev_ids = update["Id"].to_list()
    before = subs.filter(pl.col("Id").is_in(prev_ids))
    world.label_subtree(sid, deleted, "orphaned_in_local", "auto", "zuora",
                        detail="version deleted in Zuora (order deleted, subscription rolled "
                        "back); the local copy still holds it")
    tree = world.subtree_ids(deleted, "zuora")
    world.zuora["Subscription"] = patch_rows(subs, "Id", update)
    _label_changes(world, sid, "Subscription", before,
                   world.zuora["Subscription"].filter(pl.col("Id").is_in(prev_ids)), "zuora",
                   "auto", "previous version became the latest again after the rollback")
    world.drop_zuora("RatePlanChargeTier", tree["RatePlanChargeTier"])
    world.drop_zuora("RatePlanCharge", tree["RatePlanCharge"])
    world.drop_zuora("RatePlan", tree["RatePlan"])
    world.drop_zuora("Subscription", deleted)
    # The order still says what the deleted version booked; it is stale in every column where
    # the version that is latest again (with the status the rollback gave it) books another
    # order: the generator's facts about that version, not a derivation from Zuora.
    names = picked["Name"].to_list()
    rolled_back = (world.order_facts.join(update.select("Id", new_status="Status"), on="Id")
                   .with_columns(Status=pl.col("new_status"),
                                 end_date=pl.when(pl.col("new_status") == "Cancelled")
                                 .then(pl.col("CancelledDate")).otherwise(pl.col("TermEndDate"))))
    expected = order_columns(rolled_back, world.local["billing_accounts"])
    orders = world.local["orders"].filter(~pl.col("trial").fill_null(False)
                                          & pl.col("subscription_name").is_in(names))
    expected = expected.select("subscription_name", *[pl.col(c).cast(orders.schema[c])
                                                      for c in DERIVED_ORDER_COLUMNS])
    both = orders.select("subscription_name", *DERIVED_ORDER_COLUMNS).join(
        expected, on="subscription_name", suffix="__zuora")
    for col in DERIVED_ORDER_COLUMNS:
        keys = both.filter(pl.col(col).ne_missing(pl.col(f"{col}__zuora")))[
            "subscription_name"].sort()
        rule = "D02" if col == "subscription_id" else "D14"
        world.label(sid, "orders", keys.to_list(), "rule_violation", "auto", field=col,
                    rule=rule, detail=f"order {col} derived from a version deleted in Zuora")


D04_FIELDS = ("TurnOnSeatReconciliation__c", "ContractAutoRenew__c", "TurnOnAutoRenew__c",
              "Notes", "AutoRenew")
D04_NOTES = ("PO 4500012345 required on invoices (Billing Ops)",
             "Customer asked to keep renewal terms; see SFDC case 0321")


def d04_field_drift(world: World, n: int) -> None:
    """A subscription custom field (or Notes/AutoRenew) edited in the Zuora UI, by the
    custom-fields API on a chosen version, or by the Salesforce/CPQ sync: no Order, hence no
    Order Processed callout, so the local copy keeps the old value. Variants alternate: a flag,
    Notes or AutoRenew changed on any version; GitLabNamespaceId__c changed on the latest
    version of a SaaS subscription, which also conflicts with the order's namespace (human)."""
    sid = "D04"
    now = _now(world)
    subs = world.zuora["Subscription"]
    fresh = subs.filter(pl.col("UpdatedDate") < now - dt.timedelta(hours=2))
    orders = world.local["orders"].filter(~pl.col("trial").fill_null(False))
    saas = (world.latest().filter(pl.col("UpdatedDate") < now - dt.timedelta(hours=2))
            .join(orders.select(Name="subscription_name", ns="gl_namespace_id"), on="Name")
            .filter((pl.col("ns") == pl.col("GitLabNamespaceId__c"))
                    & (pl.col("GitLabNamespaceId__c").str.strip_chars() != "")))
    plain, moved = _claim_alternating(world, fresh["Name"].unique(), saas["Name"], n)
    rows, fields = [], {}
    for r in _one_each(world, fresh, plain, "Name"):
        f = D04_FIELDS[int(world.rng.integers(len(D04_FIELDS)))]
        if f == "AutoRenew":
            value = not r[f]
        elif f == "Notes":
            value = next(t for t in D04_NOTES if t != r[f])
        else:
            value = _flip_yes_no(r[f])
        fields.setdefault(f, []).append({"Id": r["Id"], f: value})
        rows.append({"Id": r["Id"], "UpdatedDate": _later(world, r["UpdatedDate"], now),
                     "UpdatedById": BILLING_OPS})
    taken = pl.concat([subs["GitLabNamespaceId__c"].drop_nulls(),
                       world.local["orders"]["gl_namespace_id"].drop_nulls()]).implode()
    free: list[str] = []
    while len(free) < len(moved):  # namespace ids nobody uses (a collision would be D12)
        draws = pl.Series(world.rng.integers(60_000_000, 70_000_000, 2 * len(moved))).cast(
            pl.String)
        free = pl.Series(free + draws.filter(~draws.is_in(taken)).to_list(),
                         dtype=pl.String).unique(maintain_order=True).to_list()
    for r, ns in zip(_one_each(world, saas, sorted(moved), "Name"), free[:len(moved)],
                     strict=True):
        fields.setdefault("GitLabNamespaceId__c", []).append(
            {"Id": r["Id"], "GitLabNamespaceId__c": ns})
        rows.append({"Id": r["Id"], "UpdatedDate": _later(world, r["UpdatedDate"], now),
                     "UpdatedById": SALES_OPS})
    if not rows:
        return
    ids = [r["Id"] for r in rows]
    before = subs.filter(pl.col("Id").is_in(ids))
    out = patch_rows(subs, "Id", pl.DataFrame(rows))
    for vals in fields.values():
        out = patch_rows(out, "Id", pl.DataFrame(vals))
    world.zuora["Subscription"] = out
    _label_changes(world, sid, "Subscription", before, out.filter(pl.col("Id").is_in(ids)),
                   "zuora", "auto", "field changed in Zuora outside an Order (no callout)")
    world.label(sid, "orders", sorted(moved), "rule_violation", "human", field="gl_namespace_id",
                rule="D04", detail="GitLabNamespaceId__c on the latest version differs from the "
                "order's namespace (namespace association conflict)")


DATE_COLUMNS = ("term_start_date", "term_end_date", "subscription_start_date",
                "subscription_end_date", "cancelled_date")
SEGMENT_DATES = ("effective_start_date", "effective_end_date")


def d05_date_off_by_one(world: World, n: int) -> None:
    """Local dates one day off Zuora's: the sync treated Zuora calendar dates as UTC instants
    (or converted a Pacific dateTime to UTC before truncating), or stored an exclusive end
    date as inclusive. It is a code bug, so every instance of one run has the SAME offset.
    Variants alternate: every date of a subscription version row; the effective dates of all
    segments of one charge in a version (shifted together, so segments stay contiguous)."""
    sid = "D05"
    offset = (-1, 1)[int(world.rng.integers(2))]
    subs, charges = world.local[SUBS], world.local[CHARGES]
    with_charges = subs.filter(pl.col("zuora_id").is_in(charges["subscription_id"].implode()))
    versions, segments = _claim_alternating(world, subs["name"].unique(),
                                            with_charges["name"].unique(), n)
    vids = [r["zuora_id"] for r in _one_each(world, subs, versions, "name")]
    chosen = [r["zuora_id"] for r in _one_each(world, with_charges, segments, "name")]
    own = charges.filter(pl.col("subscription_id").is_in(chosen))
    numbers = [(r["subscription_id"], r["charge_number"])
               for r in _one_each(world, own, chosen, "subscription_id")]
    pairs = pl.DataFrame(numbers, schema={"subscription_id": pl.String,
                                          "charge_number": pl.String}, orient="row")
    seg_ids = own.join(pairs, on=["subscription_id", "charge_number"])["zuora_id"].to_list()
    shift = lambda c: pl.col(c) + pl.duration(days=offset)  # noqa: E731
    detail = f"local date {offset:+d} day off Zuora (systematic: same offset on every row)"
    for table, obj, keys, cols in ((SUBS, "Subscription", vids, DATE_COLUMNS),
                                   (CHARGES, "RatePlanCharge", seg_ids, SEGMENT_DATES)):
        before = world.local[table].filter(pl.col("zuora_id").is_in(keys))
        world.update_local(table, "zuora_id", keys, **{c: shift(c) for c in cols})
        _label_changes(world, sid, obj, before,
                       world.local[table].filter(pl.col("zuora_id").is_in(keys)), "local",
                       "auto", detail)


def d06_decimal_drift(world: World, n: int) -> None:
    """Local amounts off Zuora's by more than rounding: a tier price that went through a
    float (IronBank CSV converters, JSON parsing) and was truncated instead of rounded
    half-up (19.99 → 19.989999… → 19.98), or an integer mrr/tcv/quantity column written from a
    float that was truncated a unit too low. Variants alternate: tier price; charge integer."""
    sid = "D06"
    tiers, charges = world.local[TIERS], world.local[CHARGES]
    priced = (tiers.filter(pl.col("price") >= 1)
              .join(charges.select(rate_plan_charge_id="zuora_id", sub="subscription_id"),
                    on="rate_plan_charge_id")
              .join(world.local[SUBS].select(sub="zuora_id", sub_name="name"), on="sub"))
    ints = ("quantity", "mrr", "tcv")
    counted = (charges.filter(pl.any_horizontal(pl.col(c) > 1 for c in ints))
               .join(world.local[SUBS].select(subscription_id="zuora_id", sub_name="name"),
                     on="subscription_id"))
    price_names, int_names = _claim_alternating(world, priced["sub_name"].unique(),
                                                counted["sub_name"].unique(), n)
    tier_ids = [r["zuora_id"] for r in _one_each(world, priced, price_names, "sub_name")]
    by_col: dict[str, list[str]] = {}
    for r in _one_each(world, counted, int_names, "sub_name"):
        cols = [c for c in ints if r[c] is not None and r[c] > 1]
        by_col.setdefault(cols[int(world.rng.integers(len(cols)))], []).append(r["zuora_id"])
    before = tiers.filter(pl.col("zuora_id").is_in(tier_ids))
    cent = pl.lit(Decimal("0.01"), pl.Decimal(18, 2))
    world.update_local(TIERS, "zuora_id", tier_ids,
                       price=(pl.col("price") - cent).cast(pl.Decimal(18, 2)))
    _label_changes(world, sid, "RatePlanChargeTier", before,
                   world.local[TIERS].filter(pl.col("zuora_id").is_in(tier_ids)), "local",
                   "auto", "local price 0.01 below Zuora's (float truncated, not rounded)")
    keys = [k for ks in by_col.values() for k in ks]
    before = charges.filter(pl.col("zuora_id").is_in(keys))
    for col, ks in sorted(by_col.items()):
        world.update_local(CHARGES, "zuora_id", ks,
                           **{col: (pl.col(col) - 1).cast(charges.schema[col])})
    _label_changes(world, sid, "RatePlanCharge", before,
                   world.local[CHARGES].filter(pl.col("zuora_id").is_in(keys)), "local", "auto",
                   "local integer column 1 below Zuora's rounded value (float truncated)")


def d07_status_drift(world: World, n: int) -> None:
    """The local copy did not take a cancellation: the callout for the Cancel order was
    missed so the latest version is still Active locally with no cancellation date, or a
    cancellation with a future date (Zuora shows Cancelled as soon as it is booked) was
    mis-modelled locally as still Active. Variants alternate: missed cancellation (status,
    cancelled_date, subscription_end_date); future-dated cancellation (status only)."""
    sid = "D07"
    latest = world.latest().filter(pl.col("Status") == "Cancelled")
    future = latest.filter(pl.col("CancelledDate") > world.as_of)
    missed, misread = _claim_alternating(world, latest["Name"], future["Name"], n)
    ids_missed = latest.filter(pl.col("Name").is_in(missed))["Id"].to_list()
    ids_misread = latest.filter(pl.col("Name").is_in(misread))["Id"].to_list()
    before = world.local[SUBS].filter(pl.col("zuora_id").is_in(ids_missed + ids_misread))
    world.update_local(SUBS, "zuora_id", ids_missed + ids_misread, status=pl.lit("Active"))
    world.update_local(SUBS, "zuora_id", ids_missed, cancelled_date=pl.lit(None, pl.Date),
                       subscription_end_date=pl.col("term_end_date"))
    for keys, detail in ((ids_missed, "cancellation missed locally (local still Active, no "
                          "cancellation date)"),
                         (ids_misread, "future-dated cancellation kept as Active locally "
                          "(Zuora shows Cancelled once booked)")):
        _label_changes(world, sid, "Subscription", before.filter(pl.col("zuora_id").is_in(keys)),
                       world.local[SUBS].filter(pl.col("zuora_id").is_in(keys)), "local", "auto",
                       detail)


def d08_segment_tier_corruption(world: World, n: int) -> None:
    """The local charge rows of a version are inconsistent: a partial write or two concurrent
    callouts left a second last segment (an older segment still flagged is_last_segment), or a
    crash mid-callout lost a charge's tier row. Variants alternate: two last segments in one
    charge of a version; a charge left without its tier."""
    sid = "D08"
    charges, tiers = world.local[CHARGES], world.local[TIERS]
    names = world.local[SUBS].select(subscription_id="zuora_id", sub_name="name")
    nonlast = (charges.filter(pl.len().over("subscription_id", "charge_number") >= 2)
               .filter(~pl.col("is_last_segment")).join(names, on="subscription_id"))
    single = (tiers.filter(pl.len().over("rate_plan_charge_id") == 1)
              .join(charges.select(rate_plan_charge_id="zuora_id", subscription_id="subscription_id"),
                    on="rate_plan_charge_id").join(names, on="subscription_id"))
    flag_names, tier_names = _claim_alternating(world, nonlast["sub_name"].unique(),
                                                single["sub_name"].unique(), n)
    flagged = [r["zuora_id"] for r in _one_each(world, nonlast, flag_names, "sub_name")]
    lost = _one_each(world, single, tier_names, "sub_name")
    before = charges.filter(pl.col("zuora_id").is_in(flagged))
    world.update_local(CHARGES, "zuora_id", flagged, is_last_segment=pl.lit(True))
    _label_changes(world, sid, "RatePlanCharge", before,
                   world.local[CHARGES].filter(pl.col("zuora_id").is_in(flagged)), "local",
                   "auto", "older segment still flagged as last locally")
    world.label(sid, "RatePlanCharge", flagged, "rule_violation", "auto", rule="D08",
                detail="two last segments for one charge of a version (Z8/L3)")
    world.label(sid, "RatePlanChargeTier", [r["zuora_id"] for r in lost], "missing_in_local",
                "auto", detail="tier row lost locally (partial write)")
    world.label(sid, "RatePlanCharge", [r["rate_plan_charge_id"] for r in lost],
                "rule_violation", "auto", rule="D08",
                detail="local charge without any tier (Z12/L3)")
    world.drop_local(TIERS, "zuora_id", [r["zuora_id"] for r in lost])


def d09_several_latest_versions(world: World, n: int) -> None:
    """Two local versions of a name share the highest version number, so the local latest is
    ambiguous: out-of-order callouts or a manual fix wrote an older version with the number
    of the newest one."""
    sid = "D09"
    subs = world.local[SUBS]
    older = subs.with_columns(top=pl.col("version").max().over("name")).filter(
        pl.col("version") < pl.col("top"))
    picks = world.claim_names(older["name"].unique(), n)
    rows = _one_each(world, older, sorted(picks), "name")
    update = pl.DataFrame({"zuora_id": [r["zuora_id"] for r in rows],
                           "version": [r["top"] for r in rows]})
    keys = update["zuora_id"].to_list()
    before = subs.filter(pl.col("zuora_id").is_in(keys))
    world.local[SUBS] = patch_rows(subs, "zuora_id", update)
    _label_changes(world, sid, "Subscription", before,
                   world.local[SUBS].filter(pl.col("zuora_id").is_in(keys)), "local", "auto",
                   "older version carries the newest version number locally")
    world.label(sid, "Subscription", sorted(picks), "rule_violation", "auto", rule="D09",
                detail="several local versions are the latest for this name")


SCENARIOS: dict[str, Scenario] = {
    "D01": d01_missing_local_version,
    "D03": d03_local_orphan_version,
    "D04": d04_field_drift,
    "D05": d05_date_off_by_one,
    "D06": d06_decimal_drift,
    "D07": d07_status_drift,
    "D08": d08_segment_tier_corruption,
    "D09": d09_several_latest_versions,
}

"""Drift on the CustomersDot ``orders`` table and its link to Zuora (D02, D10–D15, D24, D25).

Every scenario here changes local ``orders`` rows (only D12 and D15 also touch the Zuora side or
the subscription copy) and labels each finding a correct reconciler must report about them:
``object='orders'``, ``key`` = the subscription name (the namespace id for D12), ``kind``
``rule_violation`` (``duplicate_local`` for D11), ``rule`` = the D-id and ``field`` = the order
column when the finding is about one column. Actions follow domain.md §5.

Conventions that keep the labels exact (a reconciler must follow them too):

* One finding per cause. A duplicate pair (D11) is reported as D11 only: the loser's stale
  account, namespace or name is what the dedupe resolves, not a separate D10/D24/D25 finding.
  An order whose name Zuora does not know (D15) is reported as D15 only.
* D02 is ``subscription_id`` pointing at an *older version of the same name*; any other stale
  Zuora-derived column (or a NULL ``subscription_id``) is D14.
* The account columns: ``zuora_account_id``/``billing_account_id`` equal to a previous owner of
  the subscription are D10, equal to the latest version's ``InvoiceOwnerId`` are D24 (two
  column-level labels each); D14 never covers them.
* Trial orders (``trial = true``, no subscription name) are local-only and never touched.
* New namespace ids are made from order ids (``70000000 + id``, ``80000000 + id``), which are
  unique across chunks, so no scenario creates an accidental shared namespace (D12).
"""

from __future__ import annotations

import datetime as dt
import math

import polars as pl

from core.catalog.objects import ORDER_METADATA
from sandbox.generate.drift.base import Scenario, World, patch_rows, split

# GitLab metadata a freshly created (callout) order row does not have yet.
_FRESH_METADATA = {c: None for c in ORDER_METADATA if c not in (
    "gl_namespace_id", "gl_namespace_name")} | {"reconciliation_accepted": False}


# -- private helpers ---------------------------------------------------------------------------
def _patch_orders(world: World, patch: pl.DataFrame) -> None:
    world.local["orders"] = patch_rows(world.local["orders"], "id", patch)


def _append_orders(world: World, rows: pl.DataFrame) -> None:
    orders = world.local["orders"]
    rows = rows.select([pl.col(c).cast(t) for c, t in orders.schema.items()])
    world.local["orders"] = pl.concat([orders, rows], how="vertical")


def _repoint_accounts(world: World, sid: str, hit: pl.DataFrame, account: str, ba: str,
                      what: str) -> None:
    """Point the orders in ``hit`` at account column ``account`` / billing account ``ba`` and
    label both order columns (D10 and D24 differ only in which wrong account they use)."""
    _patch_orders(world, hit.select("id", zuora_account_id=account, billing_account_id=ba))
    for r in hit.iter_rows(named=True):
        text = what.format(id=r["id"], account=r[account], ba=r[ba], z_account=r["z_account"])
        for col in ("zuora_account_id", "billing_account_id"):
            world.label(sid, "orders", [r["subscription_name"]], "rule_violation", "auto",
                        field=col, rule=sid, detail=f"{text}: re-point {col}")


def _single_orders(world: World) -> pl.DataFrame:
    """Non-trial orders of names that have exactly one order (the clean shape), with the
    latest Zuora version's facts (``z_*``) joined on."""
    o = world.local["orders"].filter(~pl.col("trial") & pl.col("subscription_name").is_not_null())
    o = o.filter(pl.len().over("subscription_name") == 1)
    lat = world.latest().select(
        subscription_name="Name", z_id="Id", z_version="Version", z_status="Status",
        z_account="AccountId", z_invoice_owner="InvoiceOwnerId", z_start="SubscriptionStartDate",
        z_ns_id=pl.col("GitLabNamespaceId__c").str.strip_chars(),
        z_ns_name=pl.col("GitLabNamespaceName__c"))
    return o.join(lat, on="subscription_name", how="inner").with_columns(
        z_ns_id=pl.when(pl.col("z_ns_id") == "").then(None).otherwise(pl.col("z_ns_id")))


def _entitled(world: World) -> pl.Expr:
    """Latest version Active and the order's term not over (an order that grants access)."""
    return (pl.col("z_status") == "Active") & (
        pl.col("end_date").is_null() | (pl.col("end_date") >= pl.lit(world.as_of)))


def _billing_account_ids(world: World) -> pl.DataFrame:
    return world.local["billing_accounts"].select("zuora_account_id", ba_id="id")


def _previous_owner(world: World) -> pl.DataFrame:
    """Per transferred name: the owner before its last owner transfer (``old_account`` with its
    local billing account), excluding the latest invoice owner so D10 never looks like D24."""
    subs = world.zuora["Subscription"]
    lat = world.latest().select("Name", latest_account="AccountId", latest_inv="InvoiceOwnerId")
    prev = (subs.select("Name", "Version", "AccountId", "CreatedDate").join(lat, on="Name")
            .filter((pl.col("AccountId") != pl.col("latest_account"))
                    & (pl.col("AccountId") != pl.col("latest_inv")))
            .sort("Name", "Version")
            .group_by("Name", maintain_order=True)
            .agg(old_account=pl.col("AccountId").last(), old_version=pl.col("Version").last()))
    # When the transfer happened: the version right after the last pre-transfer one.
    moved = subs.select("Name", old_version=pl.col("Version") - 1, transfer_at="CreatedDate")
    return (prev.join(moved, on=["Name", "old_version"], how="left")
            .join(_billing_account_ids(world), left_on="old_account",
                  right_on="zuora_account_id", how="inner")
            .rename({"ba_id": "old_ba_id"}))


# -- scenarios ---------------------------------------------------------------------------------
def d02_stale_latest_pointer(world: World, n: int) -> None:
    """``orders.subscription_id`` left on an older version of the same subscription: callouts
    processed out of order (v3 then v2 overwrote the pointer) or a missed ``Order Processed``
    callout for the newest version. Only the pointer is stale; re-point it (auto)."""
    orders = _single_orders(world)
    eligible = orders.filter(pl.col("z_version") >= 2)
    picks = world.claim_names(eligible["subscription_name"], n)
    if not picks:
        return
    older = (world.zuora["Subscription"]
             .filter(pl.col("Name").is_in(picks)
                     & (pl.col("Version") < pl.col("Version").max().over("Name")))
             .sort("Name", "Version"))
    orders = orders.filter(pl.col("subscription_name").is_in(picks))
    rows = []
    for name in picks:
        cand = older.filter(pl.col("Name") == name)
        i = int(world.rng.integers(cand.height))
        order = orders.row(by_predicate=pl.col("subscription_name") == name, named=True)
        rows.append({"id": order["id"], "subscription_id": cand["Id"][i]})
        world.label("D02", "orders", [name], "rule_violation", "auto", field="subscription_id",
                    rule="D02",
                    detail=f"order {order['id']} points at version {cand['Version'][i]} "
                    f"({cand['Id'][i]}); Zuora latest is version {order['z_version']} "
                    f"({order['z_id']})")
    _patch_orders(world, pl.DataFrame(rows))


def d10_moved_account(world: World, n: int) -> None:
    """The subscription moved to another billing account (Owner Transfer order action,
    billing-entity change by Billing Ops, renewal booked on a new account) and the order still
    carries the pre-transfer account. Re-pointing both account columns is auto (removing the
    old account's memberships would be human, but nothing here asks for it)."""
    orders = _single_orders(world).join(_previous_owner(world), left_on="subscription_name",
                                        right_on="Name")
    picks = world.claim_names(orders["subscription_name"], n)
    if not picks:
        return
    hit = orders.filter(pl.col("subscription_name").is_in(picks)).sort("subscription_name")
    _repoint_accounts(world, "D10", hit, "old_account", "old_ba_id",
                      "order {id} still on pre-transfer account {account} (billing account "
                      "{ba}); Zuora latest AccountId {z_account}")


def d11_duplicate_orders(world: World, n: int) -> None:
    """Two non-trial orders for one subscription name (reported as one D11 finding; the pair's
    stale account or namespace is not reported separately as D10/D24/D25).

    * Owner transfer (the documented mechanism, customers-gitlab-com#6971): the existing
      order stays on the old account; the ``Order Processed`` callout looked for an order with
      the *new* billing account, found none and created a second one (newer id and created_at,
      without GitLab metadata). Keeper = the new row (it matches Zuora's latest AccountId;
      its NULL metadata is filled from the loser) → auto.
    * Retried / concurrent create under another account (e.g. the callout's account taken for
      the subscription's): the new row carries a different account. Keeper = the original
      → auto.
    * Metadata conflict: a second row for the same account linked to a different namespace
      (non-null ``gl_namespace_id`` disagreeing) → human; the suggested keeper is the row whose
      namespace matches Zuora's ``GitLabNamespaceId__c`` (the oldest).
    """
    k_conflict = n // 2
    k_transfer = math.ceil((n - k_conflict) / 2)
    orders = _single_orders(world)
    moved = orders.join(_previous_owner(world), left_on="subscription_name", right_on="Name")
    transfer = world.claim_names(moved["subscription_name"], k_transfer)
    saas = orders.filter(pl.col("gl_namespace_id").is_not_null()
                         & (pl.col("gl_namespace_id") == pl.col("z_ns_id")))
    conflict = world.claim_names(saas["subscription_name"], k_conflict)
    other = world.claim_names(orders["subscription_name"], n - len(transfer) - len(conflict))
    moved = moved.filter(pl.col("subscription_name").is_in(transfer))
    saas = saas.filter(pl.col("subscription_name").is_in(conflict))
    orders = orders.filter(pl.col("subscription_name").is_in(other))
    new_ids = world.counters.take("order", len(transfer) + len(conflict) + len(other)).tolist()
    ba = _billing_account_ids(world)
    as_of = dt.datetime.combine(world.as_of, dt.time())
    rows, patches = [], []

    def _later(at: dt.datetime, max_minutes: int) -> dt.datetime:
        """A moment after ``at`` (at most ``max_minutes``), not after the as-of date."""
        t = at + dt.timedelta(minutes=int(world.rng.integers(1, max_minutes + 1)))
        return max(min(t, as_of), at + dt.timedelta(seconds=1))

    for name, new_id in zip(sorted(transfer), new_ids[:len(transfer)], strict=True):
        r = moved.row(by_predicate=pl.col("subscription_name") == name, named=True)
        # the callout processing the transfer, minutes after the new version was created
        at = _later(max(r["created_at"], r["transfer_at"] or r["created_at"]), 10)
        rows.append({**_order_fields(r), **_FRESH_METADATA, "id": new_id, "created_at": at,
                     "updated_at": at})
        patches.append({"id": r["id"], "zuora_account_id": r["old_account"],
                        "billing_account_id": r["old_ba_id"]})
        world.label("D11", "orders", [name], "duplicate_local", "auto", rule="D11",
                    detail=f"keep order {new_id}: matches Zuora account {r['z_account']}; "
                    f"delete order {r['id']} (pre-transfer account {r['old_account']}) after "
                    "copying its GitLab metadata")
    rest = new_ids[len(transfer):]
    for name, new_id in zip(sorted(conflict), rest[:len(conflict)], strict=True):
        r = saas.row(by_predicate=pl.col("subscription_name") == name, named=True)
        ns = str(70_000_000 + new_id)
        at = _later(r["created_at"], 30 * 24 * 60)
        rows.append({**_order_fields(r), **_FRESH_METADATA, "id": new_id, "created_at": at,
                     "updated_at": at, "gl_namespace_id": ns, "gl_namespace_name": f"group-{ns}"})
        world.label("D11", "orders", [name], "duplicate_local", "human", rule="D11",
                    detail=f"keep order {r['id']} (suggested: namespace {r['gl_namespace_id']} "
                    f"matches Zuora); order {new_id} carries namespace {ns}: conflicting "
                    "gl_namespace_id, a person decides")
    if other:
        accounts = world.claim_accounts(ba["zuora_account_id"], len(other))
        for name, new_id, acct in zip(sorted(other), rest[len(conflict):], accounts, strict=False):
            r = orders.row(by_predicate=pl.col("subscription_name") == name, named=True)
            ba_id = ba.row(by_predicate=pl.col("zuora_account_id") == acct, named=True)["ba_id"]
            at = _later(r["created_at"], 30 * 24 * 60)
            rows.append({**_order_fields(r), **_FRESH_METADATA, "id": new_id, "created_at": at,
                         "updated_at": at, "zuora_account_id": acct, "billing_account_id": ba_id,
                         "gl_namespace_id": None, "gl_namespace_name": None})
            world.label("D11", "orders", [name], "duplicate_local", "auto", rule="D11",
                        detail=f"keep order {r['id']}: matches Zuora account {r['z_account']}; "
                        f"delete order {new_id} (account {acct})")
    if patches:
        _patch_orders(world, pl.DataFrame(patches))
    if rows:
        _append_orders(world, pl.DataFrame(rows, schema=world.local["orders"].schema,
                                           strict=False))


def _order_fields(row: dict) -> dict:
    """An order row's own columns (drops the joined helper columns)."""
    return {k: v for k, v in row.items() if not k.startswith(("z_", "old_", "transfer_"))
            and k != "Name"}


def d12_shared_namespace(world: World, n: int) -> None:
    """Two active SaaS subscriptions on one namespace: a new purchase without cancelling the
    old subscription, a renewal booked as a new subscription, or the namespace-overwrite logic
    (#6972). The later subscription carries the earlier one's namespace consistently in Zuora
    (every version), in the local copy and on its order, so only the rule fires. Which
    subscription provides the plan is a business decision → human, one finding per namespace."""
    orders = _single_orders(world)
    eligible = orders.filter(_entitled(world) & pl.col("z_ns_id").is_not_null()
                             & (pl.col("gl_namespace_id") == pl.col("z_ns_id")))
    picks = world.claim_names(eligible["subscription_name"], 2 * n)
    pairs = eligible.filter(pl.col("subscription_name").is_in(picks))
    order = {name: i for i, name in enumerate(picks)}
    pairs = pairs.with_columns(pos=pl.col("subscription_name").replace_strict(order)).sort("pos")
    moves = []
    for i in range(0, pairs.height - 1, 2):
        a, b = pairs.row(i, named=True), pairs.row(i + 1, named=True)
        if (b["z_start"], b["subscription_name"]) < (a["z_start"], a["subscription_name"]):
            a, b = b, a  # the later purchase joins the earlier one's namespace
        moves.append({"name": b["subscription_name"], "order_id": b["id"], "ns": a["z_ns_id"],
                      "ns_name": a["z_ns_name"]})
        world.label("D12", "orders", [a["z_ns_id"]], "rule_violation", "human", rule="D12",
                    detail=f"namespace {a['z_ns_id']} has active orders {a['id']} "
                    f"({a['subscription_name']}) and {b['id']} ({b['subscription_name']})")
    if not moves:
        return
    mv = pl.DataFrame(moves)
    world.zuora["Subscription"] = patch_rows(world.zuora["Subscription"], "Name", mv.select(
        Name="name", GitLabNamespaceId__c="ns", GitLabNamespaceName__c="ns_name"))
    world.local["zuora_local_subscriptions"] = patch_rows(
        world.local["zuora_local_subscriptions"], "name",
        mv.select("name", git_lab_namespace_id__c="ns", git_lab_namespace_name__c="ns_name"))
    _patch_orders(world, mv.select(id="order_id", gl_namespace_id="ns",
                                   gl_namespace_name="ns_name"))


def d13_missing_order(world: World, n: int) -> None:
    """A paid, active Zuora subscription with no local order ("Paid Subscription Missing
    Order"): missed creation callout, a sales-assisted purchase through Salesforce/Zuora Quotes
    whose callout failed, or a billing-entity change needing "Create an order from Zuora".
    Creating it from the latest version is auto (its namespace, if any, is free)."""
    orders = _single_orders(world).filter(_entitled(world))
    picks = world.claim_names(orders["subscription_name"], n)
    if not picks:
        return
    gone = orders.filter(pl.col("subscription_name").is_in(picks)).sort("subscription_name")
    world.drop_local("orders", "id", gone["id"].to_list())
    for r in gone.iter_rows(named=True):
        ns = f"; link namespace {r['z_ns_id']}" if r["z_ns_id"] else ""
        world.label("D13", "orders", [r["subscription_name"]], "rule_violation", "auto",
                    rule="D13", detail=f"Active in Zuora ({r['z_id']}), no local order: create "
                    f"it from the latest version{ns}")


_D14_VARIANTS = ("product_rate_plan_id", "quantity", "end_date", "amendment_type")


def d14_stale_derived_columns(world: World, n: int) -> None:
    """Zuora-derived order columns left NULL or stale: support's "Copy Zuora values to
    subscription in cdot" after a billing-entity change (order has the subscription number but
    a nil plan), expired orders not downgraded, renewals/seat changes whose callout updated the
    copy but not the order. Per order one or two of: ``product_rate_plan_id`` NULL,
    ``quantity`` stale, ``end_date`` one term behind (never ±1 day, that is D05),
    ``amendment_type`` NULL. One auto finding per changed column."""
    orders = _single_orders(world)
    picks = world.claim_names(orders["subscription_name"], n)
    if not picks:
        return
    hit = orders.filter(pl.col("subscription_name").is_in(picks)).sort("subscription_name")
    changes: dict[str, list[dict]] = {c: [] for c in _D14_VARIANTS}
    for r in hit.iter_rows(named=True):
        options = [c for c in _D14_VARIANTS if r[c] is not None]
        k = 2 if len(options) > 1 and world.rng.random() < 0.3 else 1
        cols = [options[i] for i in sorted(world.rng.choice(len(options), size=k, replace=False))]
        for col in cols:
            if col == "quantity":
                q = int(r["quantity"])
                step = int(world.rng.integers(1, max(2, q // 4 + 1)))
                value = q - step if q > step else q + step
                what = f"quantity {value}, Zuora seats {q}"
            elif col == "end_date":
                value = r["end_date"].replace(year=r["end_date"].year - 1) \
                    if not (r["end_date"].month == 2 and r["end_date"].day == 29) \
                    else r["end_date"] - dt.timedelta(days=366)
                what = f"end_date {value}, Zuora {r['end_date']} (previous term)"
            else:
                value = None
                what = f"{col} NULL, Zuora {r[col]}"
            changes[col].append({"id": r["id"], col: value})
            world.label("D14", "orders", [r["subscription_name"]], "rule_violation", "auto",
                        field=col, rule="D14", detail=f"order {r['id']}: {what}")
    for col, rows in changes.items():
        if rows:
            _patch_orders(world, pl.DataFrame(rows, schema={
                "id": pl.Int64, col: world.local["orders"].schema[col]}))


def d15_unknown_subscription(world: World, n: int) -> None:
    """A non-trial order whose subscription name Zuora does not know (human, possible
    entitlement without payment or a data-entry error).

    * Typo / manual admin edit / sandbox data: an extra order with a name Zuora never had
      (``A-S9`` + the order id, unique across chunks) on an existing account.
    * Subscription deleted in Zuora (test or mistake) while entitled: every version and its
      subtree vanish from Zuora but stay in the local copy → each local row is an orphan, human
      because the whole subscription vanished (D03), plus the order finding.

    Trial orders (``trial = true``, not stored in Zuora) are never touched.
    """
    k_typo = n // 2
    orders = _single_orders(world)
    deleted = world.claim_names(orders.filter(_entitled(world))["subscription_name"],
                                n - k_typo)
    if deleted:
        vids = world.zuora["Subscription"].filter(pl.col("Name").is_in(deleted)).sort(
            "Name", "Version")
        world.label_subtree("D15", vids["Id"].to_list(), "orphaned_in_local", "human", "local",
                            detail="whole subscription deleted in Zuora while entitled (D03): "
                            "report, do not revoke")
        for name, count in vids.group_by("Name").len().sort("Name").iter_rows():
            world.label("D15", "orders", [name], "rule_violation", "human", rule="D15",
                        detail=f"order for {name}: subscription deleted in Zuora (all "
                        f"{count} versions); entitlement without a subscription")
        tree = world.subtree_ids(vids["Id"].to_list(), "zuora")
        for obj in reversed(("Subscription", "RatePlan", "RatePlanCharge", "RatePlanChargeTier")):
            world.drop_zuora(obj, tree[obj])
    if k_typo <= 0:
        return
    ba = _billing_account_ids(world)
    accounts = world.claim_accounts(ba["zuora_account_id"], k_typo)
    if not accounts:
        return
    new_ids = world.counters.take("order", len(accounts)).tolist()
    sub_ids = world.new_ids(len(accounts))
    members = world.local["billing_account_memberships"]
    templates = orders.sort("id")
    rows = []
    for acct, oid, sid in zip(accounts, new_ids, sub_ids, strict=True):
        name = f"A-S9{oid:07d}"
        world.claimed_names.add(name)
        t = templates.row(int(world.rng.integers(templates.height)), named=True)
        ba_id = ba.row(by_predicate=pl.col("zuora_account_id") == acct, named=True)["ba_id"]
        cust = members.filter(pl.col("billing_account_id") == ba_id).sort("id")["customer_id"]
        at = dt.datetime.combine(world.as_of, dt.time()) - dt.timedelta(
            minutes=int(world.rng.integers(60, 200 * 24 * 60)))
        rows.append({**_order_fields(t), **_FRESH_METADATA, "id": oid, "subscription_name": name,
                     "subscription_id": sid, "zuora_account_id": acct, "billing_account_id": ba_id,
                     "customer_id": cust[0] if cust.len() else None, "gl_namespace_id": None,
                     "gl_namespace_name": None, "source": "SalesAssisted", "created_at": at,
                     "updated_at": at})
        world.label("D15", "orders", [name], "rule_violation", "human", rule="D15",
                    detail=f"order {oid} references {name}, unknown to Zuora")
    _append_orders(world, pl.DataFrame(rows, schema=world.local["orders"].schema, strict=False))


def d24_invoice_owner_as_owner(world: World, n: int) -> None:
    """The order carries the subscription's invoice owner (reseller/parent that pays) instead
    of its owner: under Orders Harmonization the notification goes to the invoice owner and the
    code took the callout's account as the subscription's. Re-point to ``AccountId`` (auto)."""
    moved = _previous_owner(world)["Name"]
    orders = (_single_orders(world)
              .filter((pl.col("z_invoice_owner") != pl.col("z_account"))
                      & ~pl.col("subscription_name").is_in(moved.implode()))
              .join(_billing_account_ids(world), left_on="z_invoice_owner",
                    right_on="zuora_account_id"))
    picks = world.claim_names(orders["subscription_name"], n)
    if not picks:
        return
    hit = orders.filter(pl.col("subscription_name").is_in(picks)).sort("subscription_name")
    _repoint_accounts(world, "D24", hit, "z_invoice_owner", "ba_id",
                      "order {id} on invoice owner {account} (billing account {ba}); "
                      "subscription owner is {z_account}")


_STALE_PREFIX = ("legacy", "old", "team", "acme-eng", "platform")


def d25_namespace_metadata(world: World, n: int) -> None:
    """Namespace metadata on the order drifted from GitLab.com.

    * ``gl_namespace_name`` stale: the group was renamed on GitLab.com and the rename endpoint
      did not reach this order (Zuora's ``GitLabNamespaceName__c`` has the new name) → auto.
    * A self-managed order still carrying a ``gl_namespace_id`` after a SaaS → self-managed
      switch (Zuora has no namespace) → human.
    """
    k_name, k_sm = split(n, 2)
    orders = _single_orders(world)
    named = orders.filter(pl.col("z_ns_id").is_not_null()
                          & (pl.col("gl_namespace_id") == pl.col("z_ns_id"))
                          & (pl.col("gl_namespace_name") == pl.col("z_ns_name")))
    stale = world.claim_names(named["subscription_name"], k_name)
    prp = world.zuora["ProductRatePlan"].select(product_rate_plan_id="Id", ProductId="ProductId")
    sm_prp = prp.join(world.zuora["Product"].select(ProductId="Id", dep="DeploymentType__c"),
                      on="ProductId").filter(pl.col("dep").str.contains("self_managed"))
    sm = orders.filter(pl.col("z_ns_id").is_null() & pl.col("gl_namespace_id").is_null()
                       & pl.col("product_rate_plan_id").is_in(
                           sm_prp["product_rate_plan_id"].implode()))
    switched = world.claim_names(sm["subscription_name"], n - len(stale))
    rows = []
    for r in named.filter(pl.col("subscription_name").is_in(stale)).sort(
            "subscription_name").iter_rows(named=True):
        prefix = _STALE_PREFIX[int(world.rng.integers(len(_STALE_PREFIX)))]
        old = f"{prefix}-{r['z_ns_id']}"
        rows.append({"id": r["id"], "gl_namespace_name": old})
        world.label("D25", "orders", [r["subscription_name"]], "rule_violation", "auto",
                    field="gl_namespace_name", rule="D25",
                    detail=f"order {r['id']} namespace {r['z_ns_id']} named {old!r}; GitLab.com "
                    f"name is {r['z_ns_name']!r}")
    if rows:
        _patch_orders(world, pl.DataFrame(rows))
    rows = []
    for r in sm.filter(pl.col("subscription_name").is_in(switched)).sort(
            "subscription_name").iter_rows(named=True):
        ns = str(80_000_000 + r["id"])
        rows.append({"id": r["id"], "gl_namespace_id": ns})
        world.label("D25", "orders", [r["subscription_name"]], "rule_violation", "human",
                    field="gl_namespace_id", rule="D25",
                    detail=f"self-managed order {r['id']} carries namespace {ns}")
    if rows:
        _patch_orders(world, pl.DataFrame(rows))


SCENARIOS: dict[str, Scenario] = {
    "D02": d02_stale_latest_pointer,
    "D10": d10_moved_account,
    "D11": d11_duplicate_orders,
    "D12": d12_shared_namespace,
    "D13": d13_missing_order,
    "D14": d14_stale_derived_columns,
    "D15": d15_unknown_subscription,
    "D24": d24_invoice_owner_as_owner,
    "D25": d25_namespace_metadata,
}

"""Drift on accounts, their Bill-To/Sold-To contacts and the people linked to them (D16–D21).

The account side of the local copy is ``billing_accounts`` (one row per Zuora Account, whose
``bill_to_contact_id``/``sold_to_contact_id`` hold *local* ``billing_account_contacts.id``
values, seed 001) and ``billing_account_contacts`` (only the Bill-To and Sold-To contacts of
an account, L7). CustomersDot users (``customers``, one per e-mail) reach billing accounts
through ``billing_account_memberships``; the Sold-To e-mail must have a customer and a
membership (L8).

Scenarios that touch customers or memberships work only on *solitary* accounts (see
:func:`people`): accounts whose contact e-mails appear on no other contact and whose Sold-To
customer has exactly one membership, to this account. Customers are keyed by e-mail, so this
is what keeps each label exact when e-mails are shared across accounts.

Rule labels on people follow one principle: after the change, the Sold-To e-mail of the
account must have a customer (else ``customers``/D19) with a membership to the account (else
``billing_account_memberships``/D19), both auto; a membership whose customer's e-mail matches
none of the account's Bill-To/Sold-To contacts is flagged by the e-mail-match rule (D20,
human: removing access is a person's decision, domain.md D19/D20).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from sandbox.generate.drift.base import Scenario, World, split
from sandbox.generate.tenant import COUNTRY, ENTITY, FIRST, LAST, SUFFIX, WORD_A, WORD_B

CITIES = {
    "United States": ("Seattle", "Austin", "New York", "Denver", "Chicago"),
    "Germany": ("München", "Hamburg", "Köln", "Frankfurt am Main"),
    "United Kingdom": ("Manchester", "Leeds", "Bristol", "Edinburgh"),
}
STREETS = ("Market Street", "Harbour Road", "Lindenstraße", "High Street", "Oak Avenue")
FIRST_NAMES, LAST_NAMES = tuple(map(str, FIRST)), tuple(map(str, LAST))
COMPANY_A, COMPANY_B = tuple(map(str, WORD_A)), tuple(map(str, WORD_B))
# Drift is dated at least this many days before the as-of date: a correct reconciler ignores
# objects changed inside the callout retry window (default 3 × 30 min, at most 5 × 24 h).
GRACE_DAYS = 6


# -- small shared helpers (also used by drift/catalog.py) ----------------------------------------
def past(world: World, lo_days: int, hi_days: int) -> dt.datetime:
    """A naive-UTC instant between ``lo_days`` and ``hi_days`` days before the as-of date.
    Scenarios date their Zuora edits at least a few days back, outside the callout grace
    window a correct reconciler honours (domain.md §3)."""
    days = int(world.rng.integers(lo_days, hi_days + 1))
    secs = int(world.rng.integers(0, 86_400))
    return dt.datetime.combine(world.as_of, dt.time()) - dt.timedelta(days=days, seconds=secs)


def settled_before(world: World) -> dt.datetime:
    """Zuora edits a scenario makes (or relies on) happen before this instant."""
    return dt.datetime.combine(world.as_of, dt.time()) - dt.timedelta(days=GRACE_DAYS)


def later(world: World, old: dt.datetime) -> dt.datetime:
    """A new UpdatedDate for an edit: after ``old``, before :func:`settled_before`."""
    limit = settled_before(world)
    if old >= limit:
        return limit
    return old + (limit - old) * float(world.rng.uniform(0.2, 1.0))


def patch(frame: pl.DataFrame, key: str, col: str, values: dict) -> pl.DataFrame:
    """``frame`` with ``col`` set to ``values[k]`` on the rows whose ``key`` is ``k``."""
    if not values:
        return frame
    dtype = frame.schema[col]
    return frame.with_columns(pl.col(key).replace_strict(
        list(values), pl.Series(list(values.values()), dtype=dtype), default=pl.col(col),
        return_dtype=dtype).alias(col))


def append(frame: pl.DataFrame, rows: list[dict]) -> pl.DataFrame:
    """``frame`` plus ``rows`` (dicts by column; missing columns are NULL), same schema."""
    if not rows:
        return frame
    return pl.concat([frame, pl.DataFrame(rows, schema=frame.schema)])


def _email(col: str) -> pl.Expr:
    return pl.col(col).str.strip_chars().str.to_lowercase()


def _pick(world: World, values: tuple | list, exclude: object = None):
    pool = [v for v in values if v != exclude]
    return pool[int(world.rng.integers(0, len(pool)))]


# -- who is safe to touch ------------------------------------------------------------------------
def people(world: World) -> pl.DataFrame:
    """Solitary accounts, one row each: ``zid`` (Zuora account id), ``bill``/``sold`` (Zuora
    contact ids), ``other`` (an out-of-scope contact of the account, or null), ``ba_id``
    (local billing account), ``email`` (Sold-To e-mail, normalised), ``customer_id``.

    Solitary: the account and its contacts were last edited in Zuora before the grace window,
    every contact e-mail of the account appears on exactly one Zuora contact, the
    local billing account and its Sold-To contact agree with Zuora, and the Sold-To customer
    has exactly one membership, to this billing account, which has no other membership."""
    z, loc = world.zuora, world.local
    acc = z["Account"].select(zid="Id", bill="BillToId", sold="SoldToId",
                              settled=pl.col("UpdatedDate") < settled_before(world))
    con = z["Contact"].select("Id", "AccountId", e=_email("WorkEmail"))
    busy = z["Contact"].filter(pl.col("UpdatedDate") >= settled_before(world))["AccountId"]
    shared = (con.join(con.group_by("e").len(), on="e", how="left")
              .filter(pl.col("e").is_null() | (pl.col("len") > 1))["AccountId"].unique())
    in_scope = pl.concat([acc["bill"], acc["sold"]]).unique()
    others = (con.filter(~pl.col("Id").is_in(in_scope.implode()))
              .group_by("AccountId").agg(other=pl.col("Id").sort().first()))
    lcon = loc["billing_account_contacts"].select(
        lid="id", lzid="zuora_contact_id", le=_email("work_email"))
    ba = (loc["billing_accounts"]
          .select(zid="zuora_account_id", ba_id="id", lbill="bill_to_contact_id",
                  lsold="sold_to_contact_id")
          .join(lcon.select(lbill="lid", lbill_zid="lzid"), on="lbill")
          .join(lcon.select(lsold="lid", lsold_zid="lzid", le="le"), on="lsold"))
    mem = loc["billing_account_memberships"]
    per_customer = mem.group_by("customer_id").agg(
        nc=pl.len(), ba_id=pl.col("billing_account_id").first())
    per_ba = mem.group_by("billing_account_id").agg(nb=pl.len()).rename(
        {"billing_account_id": "ba_id"})
    cust = loc["customers"].select(customer_id="id", le=_email("email"))
    return (acc.filter(pl.col("settled") & ~pl.col("zid").is_in(shared.implode())
                       & ~pl.col("zid").is_in(busy.implode()))
            .join(con.select(sold="Id", email="e"), on="sold")
            .join(ba, on="zid")
            .filter((pl.col("lbill_zid") == pl.col("bill")) & (pl.col("lsold_zid") == pl.col("sold"))
                    & (pl.col("le") == pl.col("email")))
            .join(cust, on="le")
            .join(per_customer.filter(pl.col("nc") == 1), on=["customer_id", "ba_id"])
            .join(per_ba.filter(pl.col("nb") == 1), on="ba_id")
            .join(others, left_on="zid", right_on="AccountId", how="left")
            .select("zid", "bill", "sold", "other", "ba_id", "email", "customer_id")
            .sort("zid"))


def _taken_emails(world: World) -> set[str]:
    z, loc = world.zuora, world.local
    return (set(z["Contact"].select(_email("WorkEmail"))["WorkEmail"].drop_nulls())
            | set(loc["customers"].select(_email("email"))["email"].drop_nulls())
            | set(loc["billing_account_contacts"].select(_email("work_email"))["work_email"]
                  .drop_nulls()))


def _fresh_email(world: World, first: str, last: str, domain: str, taken: set[str]) -> str:
    base = ".".join(part for part in (
        "".join(ch for ch in first.lower() if "a" <= ch <= "z"),
        "".join(ch for ch in last.lower() if "a" <= ch <= "z")) if part) or "user"
    while True:
        email = f"{base}{int(world.rng.integers(100_000, 999_999))}@{domain}"
        if email not in taken and len(email) <= 80:
            taken.add(email)
            return email


def _sold_to_people(world: World, sid: str, changes: list[tuple[str, int, str]]) -> None:
    """Rule labels on customers/memberships after the Sold-To of some accounts changed in
    Zuora. ``changes``: (Zuora account id, local billing account id, previous Sold-To e-mail)."""
    if not changes:
        return
    z, loc = world.zuora, world.local
    zids = [c[0] for c in changes]
    acc = z["Account"].filter(pl.col("Id").is_in(zids))
    con = z["Contact"].filter(pl.col("Id").is_in(
        pl.concat([acc["BillToId"], acc["SoldToId"]]).implode())).select("Id", e=_email(
            "WorkEmail"))
    email_of = dict(con.iter_rows())
    contacts_of = {r["Id"]: {email_of.get(r["BillToId"]), email_of.get(r["SoldToId"])}
                   for r in acc.iter_rows(named=True)}
    sold_of = {r["Id"]: email_of.get(r["SoldToId"]) for r in acc.iter_rows(named=True)}
    cust = dict(loc["customers"].select(_email("email"), "id").iter_rows())
    ba_ids = [c[1] for c in changes]
    pairs = set(loc["billing_account_memberships"].filter(
        pl.col("billing_account_id").is_in(ba_ids)).select(
        "customer_id", "billing_account_id").iter_rows())
    for zid, ba_id, old in changes:
        new = sold_of[zid]
        if new == old:
            continue
        if new not in cust:
            world.label(sid, "customers", [new], "rule_violation", "auto", rule="D19",
                        detail=f"no customer for the new Sold-To e-mail of account {zid}: "
                        "create it with a membership to the billing account")
        elif (cust[new], ba_id) not in pairs:
            world.label(sid, "billing_account_memberships", [new], "rule_violation", "auto",
                        rule="D19", detail=f"customer of the new Sold-To e-mail of account {zid} "
                        "has no membership to its billing account")
        if old not in contacts_of[zid] and (cust.get(old), ba_id) in pairs:
            world.label(sid, "billing_account_memberships", [old], "rule_violation", "human",
                        rule="D20", detail=f"previous Sold-To customer of account {zid} keeps a "
                        "membership although its e-mail is on none of the account's contacts; "
                        "removing it is a person's decision")


# -- D16 -----------------------------------------------------------------------------------------
def d16_billing_account_missing(world: World, n: int) -> None:
    """A Zuora account owning an Active subscription has no local billing account, no cached
    Bill-To/Sold-To contacts and no membership; its orders carry a NULL billing_account_id.

    Arises: the account was created sales-assisted (Salesforce/Zuora Quotes) without a
    CustomersDot purchase, or its Account callout was missed and the rows never written, so the
    orders that later arrived could not be linked (domain.md D16)."""
    loc = world.local
    active = world.latest().filter(pl.col("Status") == "Active")["AccountId"].unique()
    pool = people(world).filter(pl.col("zid").is_in(active.implode()))
    picked = world.claim_accounts(pool["zid"], n)
    if not picked:
        return
    rows = pool.filter(pl.col("zid").is_in(picked))
    ba_ids = rows["ba_id"].to_list()
    acc = world.zuora["Account"].filter(pl.col("Id").is_in(picked))
    in_scope = set(acc["BillToId"]) | set(acc["SoldToId"])
    contacts = loc["billing_account_contacts"].filter(pl.col("zuora_account_id").is_in(picked))
    orders = loc["orders"].filter(pl.col("billing_account_id").is_in(ba_ids)
                                  & ~pl.col("trial").fill_null(False))
    mems = loc["billing_account_memberships"].filter(pl.col("billing_account_id").is_in(ba_ids))
    emails = (mems.join(loc["customers"].select(customer_id="id", email=_email("email")),
                        on="customer_id")["email"].to_list())

    world.label("D16", "Account", picked, "missing_in_local", "auto",
                detail="Zuora account with an Active subscription has no billing_accounts row")
    world.label("D16", "Contact",
                sorted(c for c in contacts["zuora_contact_id"] if c in in_scope),
                "missing_in_local", "auto",
                detail="Bill-To/Sold-To contact of an account missing locally")
    world.label("D16", "orders", sorted(orders["subscription_name"]), "rule_violation", "auto",
                field="billing_account_id", rule="D14",
                detail="order of a missing billing account has a NULL billing_account_id; set it "
                "once the billing account is created")
    world.label("D16", "billing_account_memberships", sorted(emails), "rule_violation", "auto",
                rule="D19", detail="Sold-To customer has no membership to the (missing) billing "
                "account; add it once the billing account is created")

    world.drop_local("billing_account_memberships", "id", mems["id"].to_list())
    world.drop_local("billing_account_contacts", "id", contacts["id"].to_list())
    world.drop_local("billing_accounts", "id", ba_ids)
    world.update_local("orders", "id", orders["id"].to_list(),
                       billing_account_id=pl.lit(None, pl.Int64))


# -- D17 -----------------------------------------------------------------------------------------
def _orphan_rows(world: World, zid: str, cid: str, ba_id: int, contact_id: int, *,
                 name: str, number: str, currency: str, first: str, last: str, email: str,
                 crm: str | None, created: dt.datetime) -> tuple[dict, dict]:
    country, state, city, postal = COUNTRY[currency]
    ba = {"zuora_account_id": zid, "zuora_account_name": name, "zuora_account_number": number,
          "zuora_account_status": "Active", "currency": currency, "salesforce_account_id": crm,
          "zuora_account_vat_id": None, "zuora_account_entity": ENTITY[currency],
          "bill_to_contact_id": contact_id, "sold_to_contact_id": contact_id, "id": ba_id,
          "created_at": created, "updated_at": created}
    contact = {"zuora_contact_id": cid, "zuora_account_id": zid, "first_name": first,
               "last_name": last, "work_email": email, "work_phone": None,
               "address1": f"{int(world.rng.integers(1, 999))} {_pick(world, STREETS)}",
               "address2": None, "city": city, "state": state, "postal_code": postal,
               "country": country, "id": contact_id, "billing_account_id": ba_id,
               "created_at": created, "updated_at": created}
    return ba, contact


def d17_local_orphan_billing_account(world: World, n: int) -> None:
    """A local billing account (with its cached contact) whose Zuora account does not exist.

    Arises: rows written while CustomersDot pointed at a sandbox tenant (sandbox ids), or the
    account was deleted in Zuora (e.g. a duplicate Billing Ops removed) after CustomersDot had
    cached it. Unreferenced orphans may be deleted (auto); an orphan that a customer's
    membership still uses needs a person (domain.md D17)."""
    k_free, k_ref = split(n, 2)
    loc = world.local
    taken = _taken_emails(world)
    bas, cons, mems = [], [], []
    # Variant A: unreferenced sandbox account.
    for _ in range(k_free):
        zid, cid = world.new_ids(2)
        ba_id = int(world.counters.take("billing_account", 1)[0])
        contact_id = int(world.counters.take("contact", 1)[0])
        cur = _pick(world, ("USD", "USD", "EUR", "GBP"))
        first, last = _pick(world, FIRST_NAMES), _pick(world, LAST_NAMES)
        ba, con = _orphan_rows(
            world, zid, cid, ba_id, contact_id,
            name=f"{_pick(world, COMPANY_A)} {_pick(world, COMPANY_B)} (Sandbox)",
            number=f"A9{int(world.rng.integers(0, 10_000_000)):07d}", currency=cur,
            first=first, last=last,
            email=_fresh_email(world, first, last, "sandbox-test.example.com", taken),
            crm=None, created=past(world, 60, 900))
        bas.append(ba)
        cons.append(con)
        world.label("D17", "Account", [zid], "orphaned_in_local", "auto",
                    detail="unreferenced local billing account of a sandbox Zuora account")
        world.label("D17", "Contact", [cid], "orphaned_in_local", "auto",
                    detail="contact cached for an orphan billing account")
    # Variant B: a deleted duplicate account of an existing customer, still a membership.
    pool = people(world)
    picked = world.claim_accounts(pool["zid"], k_ref)
    rows = pool.filter(pl.col("zid").is_in(picked))
    acc = world.zuora["Account"].filter(pl.col("Id").is_in(picked))
    con_z = world.zuora["Contact"]
    for r in rows.iter_rows(named=True):
        a = acc.filter(pl.col("Id") == r["zid"]).row(0, named=True)
        c = con_z.filter(pl.col("Id") == r["sold"]).row(0, named=True)
        zid, cid = world.new_ids(2)
        ba_id = int(world.counters.take("billing_account", 1)[0])
        contact_id = int(world.counters.take("contact", 1)[0])
        created = past(world, 30, 600)
        ba, con = _orphan_rows(
            world, zid, cid, ba_id, contact_id, name=a["Name"],
            number=f"A9{int(world.rng.integers(0, 10_000_000)):07d}", currency=a["Currency"],
            first=c["FirstName"], last=c["LastName"], email=c["WorkEmail"], crm=a["CrmId"],
            created=created)
        bas.append(ba)
        cons.append(con)
        mems.append({"customer_id": r["customer_id"], "billing_account_id": ba_id,
                     "created_at": created, "updated_at": created,
                     "id": int(world.counters.take("membership", 1)[0])})
        world.label("D17", "Account", [zid], "orphaned_in_local", "human",
                    detail=f"billing account of a Zuora account deleted as a duplicate of "
                    f"{r['zid']}; a customer's membership still uses it")
        world.label("D17", "Contact", [cid], "orphaned_in_local", "human",
                    detail="contact of an orphan billing account that is still referenced")
        world.label("D17", "billing_account_memberships", [r["email"]], "rule_violation",
                    "human", rule="D17",
                    detail="membership to a billing account whose Zuora account does not exist")
    loc["billing_accounts"] = append(loc["billing_accounts"], bas)
    loc["billing_account_contacts"] = append(loc["billing_account_contacts"], cons)
    loc["billing_account_memberships"] = append(loc["billing_account_memberships"], mems)


# -- D18 -----------------------------------------------------------------------------------------
def d18_contact_reference_drift(world: World, n: int) -> None:
    """Zuora moved an account's Bill-To or Sold-To to another of its contacts; the local billing
    account still references the old contact.

    Arises: contacts swapped in the Zuora UI or from Salesforce while the Account Update event
    did not yet trigger on BillToId/SoldToId (added later as triggers, issue 6285). Variants:
    Bill-To moved to the (distinct) Sold-To contact, so the old Bill-To leaves the cached scope;
    Sold-To or Bill-To moved to a third contact of the account that was never cached. A new
    Sold-To e-mail without a customer needs one (D19)."""
    pool = people(world)
    variants = (
        ("BillToId", "sold", pool.filter(pl.col("bill") != pl.col("sold"))),
        ("SoldToId", "other", pool.filter((pl.col("bill") == pl.col("sold"))
                                          & pl.col("other").is_not_null())),
        ("BillToId", "other", pool.filter(pl.col("other").is_not_null())),
    )
    picks = []
    for (fld, target, vpool), k in zip(variants, split(n, 3), strict=True):
        chosen = world.claim_accounts(vpool["zid"], k)
        for r in vpool.filter(pl.col("zid").is_in(chosen)).iter_rows(named=True):
            old = r["bill"] if fld == "BillToId" else r["sold"]
            picks.append((r, fld, old, r[target]))
    if not picks:
        return
    z = world.zuora
    for fld in ("BillToId", "SoldToId"):
        z["Account"] = patch(z["Account"], "Id", fld,
                             {r["zid"]: new for r, f, _, new in picks if f == fld})
    old = dict(z["Account"].filter(pl.col("Id").is_in([r["zid"] for r, *_ in picks]))
               .select("Id", "UpdatedDate").iter_rows())
    z["Account"] = patch(z["Account"], "Id", "UpdatedDate",
                         {r["zid"]: later(world, old[r["zid"]]) for r, *_ in picks})
    touched = [c for _, _, old, new in picks for c in (old, new)]
    acc = z["Account"]
    in_scope = set(acc.filter(pl.col("BillToId").is_in(touched))["BillToId"]) | set(
        acc.filter(pl.col("SoldToId").is_in(touched))["SoldToId"])
    cached = set(world.local["billing_account_contacts"].filter(
        pl.col("zuora_contact_id").is_in(touched))["zuora_contact_id"])
    changes = []
    for r, fld, old, new in picks:
        role = "Bill-To" if fld == "BillToId" else "Sold-To"
        world.label("D18", "Account", [r["zid"]], "field_mismatch", "auto", field=fld,
                    detail=f"{role} moved to another contact in Zuora; local reference is stale")
        if new not in cached:
            world.label("D18", "Contact", [new], "missing_in_local", "auto",
                        detail=f"new {role} contact was never cached locally")
        if old not in in_scope and old in cached:
            world.label("D18", "Contact", [old], "orphaned_in_local", "auto",
                        detail=f"previous {role} contact is no longer Bill-To/Sold-To in Zuora")
        if fld == "SoldToId":
            changes.append((r["zid"], r["ba_id"], r["email"]))
    _sold_to_people(world, "D18", changes)


# -- D19 -----------------------------------------------------------------------------------------
def _changed_value(world: World, fld: str, c: dict, taken: set[str]) -> str:
    cur = c[fld]
    match fld:
        case "FirstName":
            return _pick(world, FIRST_NAMES, cur)
        case "LastName":
            return _pick(world, LAST_NAMES, cur)
        case "City":
            return _pick(world, CITIES.get(c["Country"], ("Springfield", "Riverside")), cur)
        case "Address1":
            while True:
                v = f"{int(world.rng.integers(1, 999))} {_pick(world, STREETS)}"
                if v != cur:
                    return v
        case "WorkPhone":
            while True:
                v = f"+1-555-{int(world.rng.integers(0, 10_000)):04d}"
                if v != (cur or "").strip():
                    return v
        case "WorkEmail":
            domain = (cur or "x@example.com").split("@")[-1]
            return _fresh_email(world, c["FirstName"], c["LastName"], domain, taken)
    raise ValueError(fld)


def d19_contact_detail_drift(world: World, n: int) -> None:
    """A Bill-To/Sold-To contact changed in Zuora (names, address, phone, e-mail) and the local
    cache was not updated; when the Sold-To e-mail changed, the person behind it may have no
    customer or no membership yet.

    Arises: contact edited in Zuora or Salesforce with no Contact custom event/callout (issue
    6285); a new Sold-To person on a sales-assisted amendment/renewal (issue 3626). Variants:
    detail fields; Sold-To e-mail changed to an address CustomersDot does not know (create the
    customer, auto); Sold-To e-mail changed to an existing customer's address (add the
    membership, auto). The previous Sold-To customer keeps a membership to an account none of
    whose contacts has its e-mail any more (human)."""
    pool = people(world)
    k_detail, k_new, k_known = split(n, 3)
    taken = _taken_emails(world)
    contacts = world.zuora["Contact"]
    updates: dict[str, dict[str, str]] = {}
    changes = []

    for zid in world.claim_accounts(pool["zid"], k_detail):
        r = pool.filter(pl.col("zid") == zid).row(0, named=True)
        cid = r["bill"] if r["bill"] == r["sold"] or world.rng.random() < 0.5 else r["sold"]
        c = contacts.filter(pl.col("Id") == cid).row(0, named=True)
        fields = ["FirstName", "LastName", "City", "Address1", "WorkPhone"]
        if cid != r["sold"]:
            fields.append("WorkEmail")  # a Bill-To-only e-mail: no customer depends on it
        m = int(world.rng.integers(1, 4))
        for fld in [fields[i] for i in sorted(world.rng.choice(len(fields), m, replace=False))]:
            updates.setdefault(fld, {})[cid] = _changed_value(world, fld, c, taken)
            world.label("D19", "Contact", [cid], "field_mismatch", "auto", field=fld,
                        detail=f"contact {fld} edited in Zuora without a callout")

    for zid in world.claim_accounts(pool["zid"], k_new):
        r = pool.filter(pl.col("zid") == zid).row(0, named=True)
        c = contacts.filter(pl.col("Id") == r["sold"]).row(0, named=True)
        updates.setdefault("WorkEmail", {})[r["sold"]] = _changed_value(world, "WorkEmail", c,
                                                                        taken)
        world.label("D19", "Contact", [r["sold"]], "field_mismatch", "auto", field="WorkEmail",
                    detail="Sold-To e-mail changed in Zuora to an address with no customer")
        changes.append((zid, r["ba_id"], r["email"]))

    targets = world.claim_accounts(pool["zid"], k_known)
    donors = world.claim_accounts(pool["zid"], len(targets))
    for zid, donor in zip(targets, donors, strict=False):
        r = pool.filter(pl.col("zid") == zid).row(0, named=True)
        d = pool.filter(pl.col("zid") == donor).row(0, named=True)
        donor_email = contacts.filter(pl.col("Id") == d["sold"])["WorkEmail"].item()
        updates.setdefault("WorkEmail", {})[r["sold"]] = donor_email
        world.label("D19", "Contact", [r["sold"]], "field_mismatch", "auto", field="WorkEmail",
                    detail=f"Sold-To e-mail changed in Zuora to that of an existing customer "
                    f"(Sold-To of account {donor})")
        changes.append((zid, r["ba_id"], r["email"]))

    if not updates:
        return
    z = world.zuora
    for fld, values in updates.items():
        z["Contact"] = patch(z["Contact"], "Id", fld, values)
    edited = sorted({cid for values in updates.values() for cid in values})
    old = dict(z["Contact"].filter(pl.col("Id").is_in(edited)).select("Id", "UpdatedDate")
               .iter_rows())
    z["Contact"] = patch(z["Contact"], "Id", "UpdatedDate",
                         {cid: later(world, old[cid]) for cid in edited})
    _sold_to_people(world, "D19", changes)


# -- D20 -----------------------------------------------------------------------------------------
def d20_customer_on_wrong_account(world: World, n: int) -> None:
    """A customer has a membership to another company's billing account: the customer's e-mail
    is on none of that account's contacts (it is the Sold-To of a different account).

    Arises: the customer changed their profile e-mail in CustomersDot and the e-mail-based
    lookup attached them to the wrong Zuora billing account (epic 9831). Access/security
    decision: report only (domain.md D20)."""
    pool = people(world)
    picked = world.claim_accounts(pool["zid"], 2 * n)
    rows = {r["zid"]: r for r in pool.filter(pl.col("zid").is_in(picked)).iter_rows(named=True)}
    mems = []
    for target, source in zip(picked[0::2], picked[1::2], strict=False):
        t, s = rows[target], rows[source]
        created = past(world, 6, 400)
        mems.append({"customer_id": s["customer_id"], "billing_account_id": t["ba_id"],
                     "created_at": created, "updated_at": created,
                     "id": int(world.counters.take("membership", 1)[0])})
        world.label("D20", "billing_account_memberships", [s["email"]], "rule_violation",
                    "human", rule="D20",
                    detail=f"customer (Sold-To of account {source}) is a member of billing "
                    f"account of {target}, whose contacts do not have this e-mail")
    world.local["billing_account_memberships"] = append(
        world.local["billing_account_memberships"], mems)


# -- D21 -----------------------------------------------------------------------------------------
D21_FIELDS = (  # Zuora field, local column, weight
    ("Name", "zuora_account_name", 0.30), ("CrmId", "salesforce_account_id", 0.20),
    ("Status", "zuora_account_status", 0.20), ("Entity__c", "zuora_account_entity", 0.15),
    ("VATId", "zuora_account_vat_id", 0.10), ("Currency", "currency", 0.05),
)


def _older_value(world: World, fld: str, a: dict) -> str | None:
    cur = a[fld]
    match fld:
        case "Name":
            suffix = _pick(world, tuple(map(str, SUFFIX.get(a["Currency"], SUFFIX["USD"]))))
            while True:
                v = f"{_pick(world, COMPANY_A)} {_pick(world, COMPANY_B)} {suffix}"
                if v != cur:
                    return v
        case "CrmId":
            return "001" + world.new_ids(1)[0][:10].upper()
        case "Status":
            return "Active" if cur == "Canceled" else "Canceled"
        case "Entity__c":
            return _pick(world, tuple(sorted(set(ENTITY.values()))), cur)
        case "VATId":
            if cur is not None and cur.strip():
                return None
            return f"{_pick(world, ('DE', 'GB', 'NL', 'FR'))}{int(world.rng.integers(1e8, 1e9))}"
        case "Currency":
            return _pick(world, tuple(ENTITY), cur)
    raise ValueError(fld)


def d21_account_field_drift(world: World, n: int) -> None:
    """Local billing account still holds older account values: name, Salesforce account
    (CrmId), status (e.g. Canceled in Zuora, Active locally), billing entity, VAT id or
    currency.

    Arises: an Account Update callout was missed or failed (rename, Salesforce re-link,
    cancellation or reactivation, billing-entity change), so the row kept its previous values
    (domain.md D21)."""
    acc = world.zuora["Account"]
    local_ids = world.local["billing_accounts"]["zuora_account_id"]
    pool = acc.filter(pl.col("Id").is_in(local_ids.implode())
                      & (pl.col("UpdatedDate") < settled_before(world)))
    picked = world.claim_accounts(pool["Id"], n)
    if not picked:
        return
    weights = np.array([w for *_, w in D21_FIELDS])
    values: dict[str, dict[str, str | None]] = {}
    for a in acc.filter(pl.col("Id").is_in(picked)).sort("Id").iter_rows(named=True):
        m = 2 if world.rng.random() < 0.3 else 1
        for i in sorted(world.rng.choice(len(D21_FIELDS), m, replace=False,
                                         p=weights / weights.sum())):
            fld, col, _ = D21_FIELDS[i]
            values.setdefault(col, {})[a["Id"]] = _older_value(world, fld, a)
            world.label("D21", "Account", [a["Id"]], "field_mismatch", "auto", field=fld,
                        detail=f"local billing account kept an older {fld} (missed Account "
                        "Update callout)")
    for col, v in values.items():
        world.local["billing_accounts"] = patch(world.local["billing_accounts"],
                                                "zuora_account_id", col, v)


SCENARIOS: dict[str, Scenario] = {
    "D16": d16_billing_account_missing,
    "D17": d17_local_orphan_billing_account,
    "D18": d18_contact_reference_drift,
    "D19": d19_contact_detail_drift,
    "D20": d20_customer_on_wrong_account,
    "D21": d21_account_field_drift,
}

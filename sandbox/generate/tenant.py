"""The Zuora side of a generated tenant: accounts, contacts and subscription version chains
with rate plans, segmented charges and tiers, built set-wise in polars (no per-row Python).

The shape follows domain.md §6 and the invariants Z1–Z16: a subscription is a chain of
versions (create, seat changes, add-ons, T&C changes, owner transfers, renewals, cancellation),
each version with new Ids for itself and its whole subtree; charges are segmented (a new
segment per seat change and per renewal; contiguous; one last segment); ChargeNumber is stable
across versions; prices are copied from the catalog at booking time. Distribution choices are
assumptions (domain.md says so) and are documented in docs/sandbox.md "The tenant generator".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from core.catalog import get
from core.values import dtype_of
from sandbox.generate.catalog import ADDON_KEYS, PRICE_CHANGE_DATE
from sandbox.generate.ids import IdFactory, numbered

EPOCH = dt.date(2019, 1, 1)
USERS = (
    "2c92a0fb4a7c2b0f014a8b6b11e10e2b",  # API user (CustomersDot integration)
    "2c92a0fd55822b4d015583ba46ef0a39",  # Billing Ops
    "2c92a0ff5a840412015aa3cde86f2ba6",  # Sales Ops
    "8a129e8f8abcd26f018acc9501e37fbc",  # auto-renew job
)
FIRST = np.array(["Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances",
                  "Guido", "Radia", "José", "Zoë", "Priya", "Wei", "Olu", "Sven", "Aiko", "Omar",
                  "Chen", "Fatima", "Lars", "Ines", "Mateo", "Noa", "Ravi", "Sofia", "Tariq"])
LAST = np.array(["Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie",
                 "Allen", "van Rossum", "Perlman", "García", "O'Neil", "Sharma", "Zhang",
                 "Adeyemi", "Larsson", "Tanaka", "Haddad", "Müller", "Kowalski", "Nguyen"])
WORD_A = np.array(["Acme", "Blue", "Northwind", "Globex", "Initech", "Umbrella", "Stark",
                   "Wayne", "Hooli", "Vandelay", "Cyberdyne", "Soylent", "Tyrell", "Wonka",
                   "Aperture", "Black Mesa", "Gringotts", "Oscorp", "Pied Piper", "Dunder"])
WORD_B = np.array(["Systems", "Labs", "Analytics", "Cloud", "Software", "Networks", "Health",
                   "Logistics", "Robotics", "Media", "Energy", "Foods", "Bank", "Games"])
SUFFIX = {"USD": np.array(["Inc", "LLC", "Corp"]), "EUR": np.array(["GmbH", "SA", "BV"]),
          "GBP": np.array(["Ltd", "PLC", "LLP"])}
ODD_NAMES = np.array(["O'Brien & Sons <Holdings>", "<script>alert('x')</script> Ltd",
                      "Zoë's Café & Bar \"GmbH\"", "Ümlaut & Co. — 株式会社"])
COUNTRY = {"USD": ("United States", "CA", "San Francisco", "94105"),
           "EUR": ("Germany", "BE", "Berlin", "10115"),
           "GBP": ("United Kingdom", "LND", "London", "EC1A 1BB")}
ENTITY = {"USD": "GitLab Inc", "EUR": "GitLab GmbH", "GBP": "GitLab Ltd"}
CURRENCY_P = (("USD", 0.85), ("EUR", 0.10), ("GBP", 0.05))
BASE_P = (("saas_premium", 0.28), ("saas_ultimate", 0.17), ("sm_premium", 0.22),
          ("sm_ultimate", 0.15), ("saas_bronze", 0.05), ("sm_starter", 0.05),
          ("dedicated", 0.03), ("edu", 0.05))


@dataclass
class Counters:
    """Natural-key sequences that continue across chunks (A00000001, A-S…, C-…)."""

    account: int = 1
    contact: int = 1
    subscription: int = 1
    charge: int = 1
    namespace: int = 9_000_000


def _pick(rng: np.random.Generator, choices: tuple[tuple[str, float], ...], n: int) -> np.ndarray:
    names = np.array([c for c, _ in choices])
    p = np.array([w for _, w in choices])
    return names[rng.choice(len(names), size=n, p=p / p.sum())]


def _typed(name: str, df: pl.DataFrame) -> pl.DataFrame:
    """Columns in catalogue order and types; fields the frame lacks are NULL."""
    spec = get(name)
    return df.select([
        (pl.col(f.name).cast(dtype_of(f)) if f.name in df.columns
         else pl.lit(None, dtype_of(f)).alias(f.name)) for f in spec.fields
    ])


def _instant(day: pl.Expr, seconds: pl.Expr, tz: str) -> pl.Expr:
    """A UTC instant ``seconds`` after local midnight of ``day`` in the tenant zone (DST-aware:
    midnight always exists in the zones Zuora tenants use)."""
    midnight = day.cast(pl.Datetime("us")).dt.replace_time_zone(tz).dt.convert_time_zone("UTC")
    return (midnight + pl.duration(seconds=seconds)).dt.replace_time_zone(None)


def _decimal_from_cents(cents: pl.Expr) -> pl.Expr:
    a = cents.abs()
    text = (pl.when(cents < 0).then(pl.lit("-")).otherwise(pl.lit(""))
            + (a // 100).cast(pl.String) + "." + (a % 100).cast(pl.String).str.zfill(2))
    return text.cast(pl.Decimal(38, 9))


def build_accounts(n: int, ids: IdFactory, rng: np.random.Generator, counters: Counters,
                   as_of: dt.date, tz: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Accounts and contacts (typed), plus an ``acct`` helper frame (idx, facts)."""
    cur = _pick(rng, CURRENCY_P, n)
    suffix = np.where(cur == "USD", SUFFIX["USD"][rng.integers(0, 3, n)],
                      np.where(cur == "EUR", SUFFIX["EUR"][rng.integers(0, 3, n)],
                               SUFFIX["GBP"][rng.integers(0, 3, n)]))
    company = np.char.add(np.char.add(np.char.add(WORD_A[rng.integers(0, len(WORD_A), n)], " "),
                                      np.char.add(WORD_B[rng.integers(0, len(WORD_B), n)], " ")),
                          suffix.astype(str))
    odd = rng.random(n) < 0.002
    company = np.where(odd, ODD_NAMES[rng.integers(0, len(ODD_NAMES), n)], company)
    reseller = rng.random(n) < 0.02
    company = np.where(reseller, np.char.add(company.astype(str), " (Reseller)"), company)
    days_span = (as_of - dt.date(2018, 6, 1)).days - 60
    created_day = np.array(dt.date(2018, 6, 1), dtype="datetime64[D]") + rng.integers(
        0, days_span, n).astype("timedelta64[D]")
    acct = pl.DataFrame({
        "acct_idx": np.arange(n), "Id": ids.new(n), "Currency": cur, "Name": company,
        "reseller": reseller, "created_day": created_day.astype("datetime64[D]"),
        "secs": rng.integers(0, 82_800, n), "upd_days": rng.integers(0, 400, n),
        "AccountNumber": numbered("A", counters.account, n),
        "two_contacts": rng.random(n) < 0.30, "extra_contact": rng.random(n) < 0.05,
        "share_email": rng.random(n) < 0.03, "has_crm": rng.random(n) < 0.9,
        "has_vat": (cur != "USD") & (rng.random(n) < 0.7), "bcd": rng.integers(1, 29, n),
        "autopay": rng.random(n) < 0.6, "net30": rng.random(n) < 0.4,
        "crm": pl.Series(ids.new(n)).str.slice(0, 10).str.to_uppercase(),
    }).with_columns(pl.col("created_day").cast(pl.Date))
    counters.account += n
    acct = acct.with_columns(
        CreatedDate=_instant(pl.col("created_day"), pl.col("secs"), tz),
    ).with_columns(
        UpdatedDate=pl.min_horizontal(
            pl.col("CreatedDate") + pl.duration(days=pl.col("upd_days")),
            pl.lit(dt.datetime.combine(as_of, dt.time(7))),
        ),
    )
    # Contacts: bill-to always; a distinct sold-to for 30%; an extra (non bill/sold) for 5%.
    roles = pl.concat([
        acct.select("acct_idx", role=pl.lit("billto")),
        acct.filter("two_contacts").select("acct_idx", role=pl.lit("soldto")),
        acct.filter("extra_contact").select("acct_idx", role=pl.lit("other")),
    ]).sort("acct_idx", "role")
    m = roles.height
    first = FIRST[rng.integers(0, len(FIRST), m)]
    last = LAST[rng.integers(0, len(LAST), m)]
    seq = np.arange(counters.contact, counters.contact + m)
    counters.contact += m
    contacts = roles.with_columns(
        Id=ids.new(m), FirstName=pl.Series(first), LastName=pl.Series(last), seq=pl.Series(seq),
    ).join(acct.select("acct_idx", "Id", "Currency", "Name", "CreatedDate", "UpdatedDate"),
           on="acct_idx", suffix="_acct")
    domain = (pl.col("Name").str.to_lowercase().str.replace_all(r"[^a-z0-9]+", "-")
              .str.strip_chars("-").str.slice(0, 30))
    local_part = (pl.col("FirstName").str.to_lowercase().str.replace_all(r"[^a-z]", "") + "."
                  + pl.col("LastName").str.to_lowercase().str.replace_all(r"[^a-z]", "")
                  + pl.col("seq").cast(pl.String))
    ctry = pl.col("Currency").replace_strict({k: v[0] for k, v in COUNTRY.items()})
    contacts = contacts.with_columns(
        WorkEmail=local_part + "@" + pl.when(domain == "").then(pl.lit("example")).otherwise(
            domain) + ".example.com",
        AccountId=pl.col("Id_acct"), Country=ctry,
        State=pl.col("Currency").replace_strict({k: v[1] for k, v in COUNTRY.items()}),
        City=pl.col("Currency").replace_strict({k: v[2] for k, v in COUNTRY.items()}),
        PostalCode=pl.col("Currency").replace_strict({k: v[3] for k, v in COUNTRY.items()}),
        Address1=(pl.col("seq") % 999 + 1).cast(pl.String) + " Main Street",
        Address2=pl.when(pl.col("seq") % 7 == 0).then(pl.lit("Suite 100")).otherwise(None),
        WorkPhone=pl.when(pl.col("seq") % 3 == 0).then(pl.lit("")).otherwise(
            "+1-555-" + (pl.col("seq") % 10000).cast(pl.String).str.zfill(4)),
        CreatedById=pl.lit(USERS[0]), UpdatedById=pl.lit(USERS[1]),
    )
    # Some people are the contact of several accounts (GitLab: >1,800 such users): copy the
    # bill-to e-mail of another account into this account's bill-to contact.
    billto = contacts.filter(pl.col("role") == "billto")
    donors = billto.select("acct_idx", "WorkEmail", "FirstName", "LastName")
    sharers = acct.filter("share_email").select("acct_idx")
    if sharers.height and donors.height > 1:
        donor_idx = rng.integers(0, donors.height, sharers.height)
        share = sharers.with_columns(
            donor_email=donors["WorkEmail"].gather(donor_idx),
            donor_first=donors["FirstName"].gather(donor_idx),
            donor_last=donors["LastName"].gather(donor_idx),
        )
        contacts = contacts.join(share, on="acct_idx", how="left").with_columns(
            [pl.when((pl.col("role") == "billto") & pl.col("donor_email").is_not_null())
             .then(pl.col(d)).otherwise(pl.col(c)).alias(c)
             for c, d in (("WorkEmail", "donor_email"), ("FirstName", "donor_first"),
                          ("LastName", "donor_last"))]
        ).drop("donor_email", "donor_first", "donor_last")
    cid = contacts.select("acct_idx", "role", "Id")
    bill = cid.filter(role="billto").select("acct_idx", BillToId="Id")
    sold = cid.filter(role="soldto").select("acct_idx", SoldToId="Id")
    acct = acct.join(bill, on="acct_idx").join(sold, on="acct_idx", how="left").with_columns(
        SoldToId=pl.coalesce("SoldToId", "BillToId"))
    accounts = acct.with_columns(
        Status=pl.lit("Active"),
        CrmId=pl.when("has_crm").then("001" + pl.col("crm")).otherwise(None),
        VATId=pl.when("has_vat").then(pl.col("Currency").str.slice(0, 2) + pl.col("crm").str.slice(
            0, 9)).otherwise(pl.when(pl.col("acct_idx") % 5 == 0).then(pl.lit("")).otherwise(None)),
        **{"Entity__c": pl.col("Currency").replace_strict(ENTITY)},
        BillCycleDay=pl.col("bcd"), AutoPay=pl.col("autopay"), Batch=pl.lit("Batch1"),
        PaymentTerm=pl.when("net30").then(pl.lit("Net 30")).otherwise(pl.lit("Due Upon Receipt")),
        CreatedById=pl.lit(USERS[2]), UpdatedById=pl.lit(USERS[1]),
    )
    contacts = contacts.with_columns(
        CreatedDate=pl.col("CreatedDate"), UpdatedDate=pl.col("UpdatedDate"))
    return _typed("Account", accounts), _typed("Contact", contacts), acct


def build_subscriptions(acct: pl.DataFrame, plans: pl.DataFrame, ids: IdFactory,
                        rng: np.random.Generator, counters: Counters, as_of: dt.date,
                        tz: str) -> dict[str, pl.DataFrame]:
    """Subscription versions and their rate plans, charge segments and tiers (typed)."""
    n_acct = acct.height
    k = rng.choice(5, size=n_acct, p=[0.30, 0.25, 0.20, 0.15, 0.10]) + 1
    owner = np.repeat(np.arange(n_acct), k)
    n = owner.size
    currency = acct["Currency"].to_numpy()[owner]
    acct_day = acct["created_day"].to_numpy()[owner]
    horizon_days = (as_of - EPOCH).days
    start = np.maximum(np.datetime64(EPOCH) + rng.integers(0, horizon_days - 2, n).astype(
        "timedelta64[D]"), acct_day.astype("datetime64[D]"))
    start = np.minimum(start, np.datetime64(as_of) - np.timedelta64(2, "D"))
    product = _pick(rng, BASE_P, n)
    legacy = np.isin(product, ["saas_bronze", "sm_starter"])
    late = start >= np.datetime64("2021-01-26")
    product = np.where(legacy & late, np.where(product == "saas_bronze", "saas_premium",
                                               "sm_premium"), product)
    edu = product == "edu"
    product = np.where(edu, np.where(rng.random(n) < 0.5, "saas_ultimate", "sm_ultimate"), product)
    term = rng.choice([12, 24, 36, 1], size=n, p=[0.85, 0.06, 0.04, 0.05])
    term = np.where((term == 1) & (start > np.datetime64("2024-06-01")), 12, term)
    term = np.where(product == "dedicated", 12, np.where(edu, 12, term))
    special = rng.random(n)
    kind = np.where(special < 0.01, "draft", np.where(special < 0.015, "pending", "live"))
    evergreen = (rng.random(n) < 0.03) & (kind == "live")
    cancel = (rng.random(n) < 0.12) & (kind == "live")
    # reseller invoice owner (D24 ground): another account of the same currency
    resellers = acct.filter("reseller")
    inv_owner = owner.copy()
    use_res = (rng.random(n) < 0.03) & (resellers.height > 0)
    if resellers.height:
        for c in np.unique(currency):
            pool = resellers.filter(pl.col("Currency") == c)["acct_idx"].to_numpy()
            sel = use_res & (currency == c)
            if pool.size and sel.any():
                inv_owner[sel] = pool[rng.integers(0, pool.size, sel.sum())]
    deployment = np.where(np.char.startswith(product.astype(str), "saas"), "gitlab_dot_com",
                          np.where(product == "dedicated", "dedicated", "self_managed"))
    subs = pl.DataFrame({
        "sub": np.arange(n), "owner0": owner, "inv_owner": inv_owner, "currency": currency,
        "S": start.astype("datetime64[D]"), "product_key": product, "term": term,
        "edu": edu, "kind": kind, "evergreen": evergreen, "cancel": cancel,
        "auto_renew": rng.random(n) < 0.85, "deployment": deployment,
        "seats0": np.clip(np.round(np.exp(rng.normal(2.7, 1.2, n))), 1, 5000).astype(np.int64),
        "renew_p_stop": rng.geometric(0.5, n) - 1,
        "Name": numbered("A-S", counters.subscription, n),
        "ns": counters.namespace + np.arange(n) * 7 + rng.integers(0, 7, n),
        "flag_seat": rng.random(n) < 0.5, "flag_auto": rng.random(n) < 0.7,
        "flag_ops": rng.random(n) < 0.4, "cloud": _pick(rng, (("Yes", .8), ("No", .15),
                                                              ("Offline", .05)), n),
        "opp": rng.random(n) < 0.6, "notes_kind": rng.random(n),
        "cancel_u": rng.random(n), "cancel_at_end": rng.random(n) < 0.5,
        "m_mid": np.minimum(rng.poisson(0.9, n), 3), "transfer": rng.random(n) < 0.03,
    }).with_columns(pl.col("S").cast(pl.Date))
    counters.subscription += n
    counters.namespace += n * 7 + 7
    as_of_l = pl.lit(as_of)
    # Cancellation booking date H (the horizon of all other events for a cancelled sub).
    subs = subs.with_columns(
        H=pl.when(pl.col("cancel") & ((as_of_l - pl.col("S")).dt.total_days() > 40)).then(
            pl.col("S") + pl.duration(days=(30 + pl.col("cancel_u") * (
                (as_of_l - pl.col("S")).dt.total_days() - 32)).cast(pl.Int64)))
        .otherwise(None),
    ).with_columns(cancel=pl.col("H").is_not_null(), H=pl.coalesce("H", as_of_l))
    # Renewal boundaries S + k*term (k >= 1), booked the day before, before the horizon.
    kmax = 8
    ren = (subs.filter((pl.col("kind") == "live") & ~pl.col("evergreen"))
           .select("sub", "S", "term", "H", "auto_renew", "renew_p_stop")
           .with_columns(k=pl.int_ranges(1, kmax + 1)).explode("k")
           .with_columns(eff=pl.col("S").dt.offset_by(pl.format("{}mo", pl.col("k") * pl.col("term"))))
           .filter(pl.col("eff") <= pl.col("H") - pl.duration(days=2))
           .filter(pl.col("auto_renew") | (pl.col("k") <= pl.col("renew_p_stop")))
           .filter(pl.col("k") <= 5)
           .select("sub", "eff", booked=pl.col("eff") - pl.duration(days=1), etype=pl.lit("Renewal")))
    nren = ren.group_by("sub").agg(n_ren=pl.len())
    subs = subs.join(nren, on="sub", how="left").with_columns(pl.col("n_ren").fill_null(0))
    subs = subs.with_columns(
        span_end=pl.min_horizontal(
            pl.col("H") - pl.duration(days=1),
            pl.when(pl.col("evergreen")).then(pl.col("H")).otherwise(
                pl.col("S").dt.offset_by(pl.format("{}mo", (pl.col("n_ren") + 1) * pl.col("term")))
                - pl.duration(days=1)),
        ))
    mids = (subs.filter(pl.col("kind") == "live")
            .select("sub", "S", "span_end", "m_mid", "transfer", "deployment")
            .with_columns(j=pl.int_ranges(0, pl.col("m_mid") + pl.col("transfer").cast(pl.Int64)))
            .explode("j").drop_nulls("j"))
    mm = mids.height
    u = rng.random(mm)
    mids = mids.with_columns(
        days=((pl.col("span_end") - pl.col("S")).dt.total_days() - 1).clip(lower_bound=0),
        u=pl.Series(u), t=pl.Series(rng.random(mm)), mult=pl.Series(
            rng.choice([1.25, 1.5, 2.0, 0.8, 1.1], size=mm)),
    ).with_columns(
        eff=pl.col("S") + pl.duration(days=1 + (pl.col("u") * pl.col("days")).cast(pl.Int64)),
        etype=pl.when(pl.col("transfer") & (pl.col("j") == pl.col("m_mid"))).then(
            pl.lit("OwnerTransfer"))
        .when(pl.col("t") < 0.6).then(pl.lit("UpdateProduct"))
        .when(pl.col("t") < 0.85).then(pl.lit("NewProduct"))
        .otherwise(pl.lit("TermsAndConditions")),
    ).filter(pl.col("eff") <= pl.col("span_end"))
    # A change on a renewal's booking day or effective day would make segment order and
    # version order disagree (a zero-length or backwards segment): move it out of the way.
    ren_days = pl.concat([ren.select("sub", "eff"), ren.select("sub", eff="booked")]).unique()
    mids = (mids.join(ren_days.with_columns(hit=pl.lit(True)), on=["sub", "eff"], how="left")
            .filter(pl.col("hit").is_null()).unique(["sub", "eff"], keep="first", maintain_order=True)
            .select("sub", "eff", booked=pl.col("eff"), etype="etype", mult="mult"))
    canc = subs.filter("cancel").select(
        "sub", eff=pl.col("H"), booked=pl.col("H"), etype=pl.lit("Cancellation"))
    events = pl.concat([ren.with_columns(mult=pl.lit(None, pl.Float64)), mids,
                        canc.with_columns(mult=pl.lit(None, pl.Float64))], how="diagonal_relaxed")
    create = subs.select("sub", eff="S", booked="S", etype=pl.lit("Create"),
                         mult=pl.lit(None, pl.Float64))
    prio = {"Create": 0, "Renewal": 1, "UpdateProduct": 2, "NewProduct": 2,
            "TermsAndConditions": 2, "OwnerTransfer": 2, "Cancellation": 3}
    ver = (pl.concat([create, events], how="diagonal_relaxed")
           .with_columns(prio=pl.col("etype").replace_strict(prio))
           .sort("sub", "booked", "prio")
           .with_columns(Version=pl.int_range(1, pl.len() + 1).over("sub")))
    nv = ver.height
    # Owner transfers move the subscription to another account of the same currency.
    tr = ver.filter(etype="OwnerTransfer").join(subs.select("sub", "currency", "owner0"), on="sub")
    new_owner = tr["owner0"].to_numpy().copy()
    if tr.height:
        cur_arr = acct["Currency"].to_numpy()
        for c in np.unique(tr["currency"].to_numpy()):
            pool = np.flatnonzero(cur_arr == c)
            sel = tr["currency"].to_numpy() == c
            new_owner[sel] = pool[rng.integers(0, pool.size, sel.sum())]
    tr = tr.select("sub", "Version", owner_new=pl.Series(new_owner))
    ver = (ver.join(tr, on=["sub", "Version"], how="left")
           .join(subs, on="sub")
           .with_columns(
               owner=pl.coalesce(pl.col("owner_new").forward_fill().over("sub"), "owner0"),
               n_ren_v=(pl.col("etype") == "Renewal").cum_sum().over("sub"),
               n_seat_v=(pl.col("etype") == "UpdateProduct").cum_sum().over("sub"),
               n_tc_v=(pl.col("etype") == "TermsAndConditions").cum_sum().over("sub"),
               is_latest=pl.col("Version") == pl.col("Version").max().over("sub"),
               Id=ids.new(nv),
               secs=pl.Series(rng.integers(0, 82_800, nv)),
               ren_secs=pl.Series(rng.integers(3_600, 21_600, nv)),
               bump=pl.Series(rng.random(nv) < 0.1),
               bump_days=pl.Series(rng.integers(0, 60, nv)),
           ))
    ver = ver.with_columns(
        inv=pl.when(pl.col("inv_owner") != pl.col("owner0")).then("inv_owner").otherwise("owner"),
        CreatedDate=_instant(pl.col("booked"), pl.when(pl.col("etype") == "Renewal").then(
            pl.col("ren_secs")).otherwise(pl.col("secs")), tz),
        TermStartDate=pl.when(pl.col("evergreen")).then(pl.col("S")).otherwise(
            pl.col("S").dt.offset_by(pl.format("{}mo", pl.col("n_ren_v") * pl.col("term")))),
    ).with_columns(
        TermEndDate=pl.when(pl.col("evergreen")).then(None).otherwise(
            pl.col("TermStartDate").dt.offset_by(pl.format("{}mo", pl.col("term")))),
        next_created=pl.col("CreatedDate").shift(-1).over("sub"),
    )
    as_of_ts = dt.datetime.combine(as_of, dt.time(7, 0))
    cancelled = pl.col("is_latest") & pl.col("cancel")
    cancel_date = pl.when(pl.col("cancel_at_end") & ~pl.col("evergreen")).then(
        pl.col("TermEndDate")).otherwise(pl.col("H"))
    acct_ids = acct["Id"]
    flag = lambda b: pl.when(b).then(pl.lit("Yes")).otherwise(pl.lit("No"))  # noqa: E731
    saas = pl.col("deployment") == "gitlab_dot_com"
    sm = pl.col("deployment") == "self_managed"
    seat_flip = (pl.col("n_tc_v") % 2) == 1
    ver = ver.with_columns(
        Status=pl.when(~pl.col("is_latest")).then(pl.lit("Expired"))
        .when(pl.col("kind") == "draft").then(pl.lit("Draft"))
        .when(pl.col("kind") == "pending").then(pl.lit("Pending Activation"))
        .when(pl.col("cancel")).then(pl.lit("Cancelled")).otherwise(pl.lit("Active")),
        CancelledDate=pl.when(cancelled).then(cancel_date).otherwise(None),
        UpdatedDate=pl.when(~pl.col("is_latest")).then(pl.col("next_created"))
        .when(pl.col("bump")).then(pl.min_horizontal(
            pl.col("CreatedDate") + pl.duration(days=pl.col("bump_days")), pl.lit(as_of_ts)))
        .otherwise(pl.col("CreatedDate")),
    ).with_columns(
        SubscriptionEndDate=pl.coalesce("CancelledDate", "TermEndDate"),
        AccountId=acct_ids.gather(ver["owner"]),
        InvoiceOwnerId=acct_ids.gather(ver["inv"]),
        CreatorAccountId=acct_ids.gather(ver["owner"]),
        CreatorInvoiceOwnerId=acct_ids.gather(ver["inv"]),
        OriginalId=pl.col("Id").first().over("sub"),
        PreviousSubscriptionId=pl.col("Id").shift(1).over("sub"),
        OriginalCreatedDate=pl.col("CreatedDate").first().over("sub"),
        Revision=pl.col("Version").cast(pl.String) + ".0",
        IsLatestVersion=pl.col("is_latest"),
        TermType=pl.when(pl.col("evergreen")).then(pl.lit("EVERGREEN")).otherwise(pl.lit("TERMED")),
        InitialTerm=pl.col("term"), CurrentTerm=pl.col("term"), RenewalTerm=pl.col("term"),
        InitialTermPeriodType=pl.lit("Month"), CurrentTermPeriodType=pl.lit("Month"),
        RenewalTermPeriodType=pl.lit("Month"), RenewalSetting=pl.lit("RENEW_WITH_SPECIFIC_TERM"),
        AutoRenew=pl.col("auto_renew"), SubscriptionStartDate=pl.col("S"),
        ContractEffectiveDate=pl.when(pl.col("kind") == "draft").then(None).otherwise(pl.col("S")),
        ServiceActivationDate=pl.when(pl.col("kind") == "live").then(pl.col("S")).otherwise(None),
        ContractAcceptanceDate=pl.when(pl.col("kind") == "live").then(pl.col("S")).otherwise(None),
        Currency=pl.col("currency"),
        CreatedById=pl.when(pl.col("etype") == "Renewal").then(pl.lit(USERS[3])).otherwise(
            pl.lit(USERS[0])),
        UpdatedById=pl.when(pl.col("etype") == "Renewal").then(pl.lit(USERS[3])).otherwise(
            pl.lit(USERS[0])),
        **{
            "GitLabNamespaceId__c": pl.when(saas).then(pl.col("ns").cast(pl.String)).otherwise(
                pl.when(pl.col("sub") % 4 == 0).then(pl.lit("")).otherwise(None)),
            "GitLabNamespaceName__c": pl.when(saas).then(
                "group-" + pl.col("ns").cast(pl.String)).otherwise(None),
            "TurnOnCloudLicensing__c": pl.when(sm).then(pl.col("cloud")).otherwise(None),
            "TurnOnSeatReconciliation__c": flag(pl.col("flag_seat") ^ seat_flip),
            "ContractAutoRenew__c": flag(pl.col("auto_renew")),
            "TurnOnAutoRenew__c": flag(pl.col("flag_auto")),
            "TurnOnOperationalMetrics__c": pl.when(sm).then(flag(pl.col("flag_ops"))).otherwise(None),
            "EOAStarterBronzeOfferAccepted__c": pl.when(
                pl.col("product_key").is_in(["saas_bronze", "sm_starter"])).then(pl.lit("Yes"))
            .otherwise(None),
            "OpportunityId__c": pl.when(pl.col("opp")).then(
                "0064M00000" + pl.col("Name").str.slice(4, 8)).otherwise(None),
            "Renewal_Subscription__c__c": pl.when(pl.col("n_ren_v") > 0).then(
                pl.col("Name")).otherwise(None),
            "Notes": pl.when(pl.col("notes_kind") < 0.01).then(
                pl.lit("Migrated from legacy billing. " * 16))  # 480 characters: fits VARCHAR(500)
            .when(pl.col("notes_kind") < 0.05).then(pl.lit("Sales-assisted; see <SFDC> & PO #42"))
            .otherwise(None),
        },
    )
    subscription = _typed("Subscription", ver)
    # ---- rate plans ------------------------------------------------------------------------
    base_plan = plans.filter(pl.col("tier") == 1).select(
        "product_key", "prp_id", "prp_name", "term_months", "prpc_id", "charge_idx", "charge_name",
        "charge_type", "charge_model", "uom", "currency", "price_cents", "old_price_cents",
        "billing_period")
    subs_plan = subs.select("sub", "product_key", "term", "edu", "deployment").with_columns(
        prp_key=pl.when(pl.col("edu")).then(pl.lit("EDU/OSS")).otherwise(
            pl.col("term").replace_strict({1: "Monthly", 12: "1 Year", 24: "2 Years",
                                           36: "3 Years"}, return_dtype=pl.String)))
    prp_names = plans.select("product_key", "prp_id", "prp_name").unique().with_columns(
        prp_key=pl.col("prp_name").str.extract(r" - (1 Year|2 Years|3 Years|Monthly|EDU/OSS)$"))
    dedicated = prp_names.filter(product_key="dedicated").with_columns(prp_key=pl.lit("1 Year"))
    prp_names = pl.concat([prp_names.filter(pl.col("product_key") != "dedicated"), dedicated])
    base_rp = subs_plan.join(prp_names, on=["product_key", "prp_key"], how="left").select(
        "sub", "prp_id", plan_no=pl.lit(0, pl.Int64), added_v=pl.lit(1, pl.Int64))
    addons_ev = ver.filter(etype="NewProduct").select("sub", "Version", "deployment")
    na = addons_ev.height
    addon_key = np.empty(na, dtype=object)
    dep = addons_ev["deployment"].to_numpy()
    for d_, keys in ADDON_KEYS.items():
        sel = dep == d_
        addon_key[sel] = np.array(keys)[rng.integers(0, len(keys), sel.sum())]
    first_prp = prp_names.group_by("product_key").agg(pl.col("prp_id").first())
    addon_rp = addons_ev.with_columns(product_key=pl.Series(addon_key.astype(str))).join(
        first_prp, on="product_key").select(
        "sub", "prp_id", plan_no=pl.int_range(1, pl.len() + 1).over("sub"),
        added_v=pl.col("Version"))
    lplans = pl.concat([base_rp, addon_rp]).with_columns(
        addon_qty=pl.Series(np.clip(rng.geometric(0.3, base_rp.height + addon_rp.height), 1, 20)))
    vkeys = ver.select("sub", "Version", SubscriptionId="Id", CreatedDate="CreatedDate",
                       UpdatedDate="UpdatedDate", owner="owner", inv="inv", n_seat_v="n_seat_v",
                       CreatedById="CreatedById", UpdatedById="UpdatedById")
    rp = (lplans.join(vkeys, on="sub").filter(pl.col("Version") >= pl.col("added_v"))
          .join(prp_names.select("prp_id", "prp_name"), on="prp_id"))
    nrp = rp.height
    rp = rp.with_columns(Id=ids.new(nrp)).with_columns(
        OriginalRatePlanId=pl.col("Id").first().over(["sub", "plan_no"], order_by="Version"),
        AmendmentType=pl.when(pl.col("plan_no") > 0).then(pl.lit("NewProduct"))
        .when(pl.col("n_seat_v") > 0).then(pl.lit("UpdateProduct")).otherwise(None),
        SubscriptionOwnerId=acct_ids.gather(rp["owner"]),
        InvoiceOwnerId=acct_ids.gather(rp["inv"]),
        ProductRatePlanId=pl.col("prp_id"), Name=pl.col("prp_name"),
    )
    rate_plan = _typed("RatePlan", rp)
    # ---- charges: boundaries per logical charge, then segments per version -----------------
    lch = (lplans.join(subs.select("sub", "currency", "seats0"), on="sub")
           .join(base_plan, left_on=["prp_id", "currency"], right_on=["prp_id", "currency"]))
    nlc = lch.height
    lch = lch.with_columns(
        ChargeNumber=numbered("C-", counters.charge, nlc),
        q0=pl.when((pl.col("plan_no") == 0) & (pl.col("charge_model") == "Per Unit Pricing"))
        .then(pl.col("seats0")).when(pl.col("charge_model") == "Flat Fee Pricing").then(1)
        .otherwise(pl.col("addon_qty")),
    ).join(ver.filter(pl.col("Version") >= 1).select("sub", added_v="Version", add_eff="eff"),
           on=["sub", "added_v"])
    counters.charge += nlc
    lch = lch.with_columns(price=pl.when(pl.col("add_eff") < pl.lit(PRICE_CHANGE_DATE)).then(
        "old_price_cents").otherwise("price_cents"))
    seat_ev = ver.filter(etype="UpdateProduct").select("sub", bversion="Version", beff="eff",
                                                       mult="mult")
    ren_ev = ver.filter(etype="Renewal").select("sub", bversion="Version", beff="eff")
    lkeys = lch.select("ChargeNumber", "sub", "plan_no", "charge_model", "charge_type", "added_v",
                       "add_eff", "q0")
    b_start = lkeys.select("ChargeNumber", bversion="added_v", beff="add_eff",
                           mult=pl.lit(None, pl.Float64))
    b_seat = (lkeys.filter((pl.col("plan_no") == 0) & (pl.col("charge_model") == "Per Unit Pricing"))
              .join(seat_ev, on="sub").filter(pl.col("bversion") > pl.col("added_v"))
              .select("ChargeNumber", "bversion", "beff", "mult"))
    b_ren = (lkeys.filter(pl.col("charge_type") == "Recurring").join(ren_ev, on="sub")
             .filter(pl.col("bversion") > pl.col("added_v"))
             .select("ChargeNumber", "bversion", "beff", mult=pl.lit(None, pl.Float64)))
    bounds = (pl.concat([b_start, b_seat, b_ren]).join(lkeys.select("ChargeNumber", "q0"),
                                                       on="ChargeNumber")
              .sort("ChargeNumber", "bversion")
              .with_columns(qty=(pl.col("q0") * pl.col("mult").fill_null(1.0).cum_prod()
                                 .over("ChargeNumber")).round(0).clip(lower_bound=1).cast(pl.Int64)))
    vend = ver.select("sub", Version="Version", v_term_end="TermEndDate", v_cancel="CancelledDate",
                      v_status="Status")
    seg = (bounds.join(lkeys.select("ChargeNumber", "sub", "added_v", "charge_type"),
                       on="ChargeNumber")
           .join(vend, on="sub").filter(pl.col("bversion") <= pl.col("Version"))
           .sort("ChargeNumber", "Version", "bversion")
           .with_columns(Segment=pl.int_range(1, pl.len() + 1).over(["ChargeNumber", "Version"]),
                         next_start=pl.col("beff").shift(-1).over(["ChargeNumber", "Version"])))
    seg = seg.with_columns(
        IsLastSegment=pl.col("next_start").is_null(),
        EffectiveStartDate=pl.col("beff"),
        EffectiveEndDate=pl.coalesce(
            "next_start",
            pl.when(pl.col("charge_type") == "OneTime").then(pl.col("beff") + pl.duration(days=1))
            .otherwise(pl.coalesce("v_cancel", "v_term_end"))),
    )
    seg = seg.join(lch.select("ChargeNumber", "prp_id", "prpc_id", "charge_name", "charge_type",
                              "charge_model", "uom", "price", "billing_period", "plan_no", "currency",
                              term="term_months"), on="ChargeNumber", suffix="_l")
    months = pl.when(pl.col("EffectiveEndDate").is_null()).then(12).otherwise(
        ((pl.col("EffectiveEndDate") - pl.col("EffectiveStartDate")).dt.total_days() / 30.4375)
        .round(0).cast(pl.Int64))
    mrr = (pl.when(pl.col("charge_type") == "OneTime").then(0)
           .when(pl.col("term") == 1).then(pl.col("price") * pl.col("qty"))
           .otherwise((pl.col("price") * pl.col("qty") / 12).round(0).cast(pl.Int64)))
    seg = seg.with_columns(mrr_c=mrr).with_columns(
        tcv_c=pl.when(pl.col("charge_type") == "OneTime").then(pl.col("price") * pl.col("qty"))
        .otherwise(pl.col("mrr_c") * months))
    seg = seg.with_columns(
        dmrc_c=pl.col("mrr_c") - pl.col("mrr_c").shift(1, fill_value=0).over(
            ["ChargeNumber", "Version"]),
        dtcv_c=pl.col("tcv_c") - pl.col("tcv_c").shift(1, fill_value=0).over(
            ["ChargeNumber", "Version"]),
    )
    rp_keys = rp.select("sub", "plan_no", "Version", RatePlanId="Id",
                        SubscriptionId="SubscriptionId", SubscriptionOwnerId="SubscriptionOwnerId",
                        InvoiceOwnerId="InvoiceOwnerId", CreatedDate="CreatedDate",
                        UpdatedDate="UpdatedDate", CreatedById="CreatedById",
                        UpdatedById="UpdatedById")
    seg = seg.join(rp_keys, on=["sub", "plan_no", "Version"])
    nseg = seg.height
    seg = seg.with_columns(Id=ids.new(nseg)).with_columns(
        OriginalId=pl.col("Id").first().over("ChargeNumber", order_by=["Version", "Segment"]),
        Version=pl.col("Segment").max().over(["ChargeNumber", "Version"]),
        sub_version=pl.col("Version"),
        Quantity=pl.when(pl.col("charge_model") == "Flat Fee Pricing").then(None)
        .otherwise(pl.col("qty")).cast(pl.Decimal(38, 9)),
        MRR=_decimal_from_cents(pl.col("mrr_c")), TCV=_decimal_from_cents(pl.col("tcv_c")),
        DMRC=_decimal_from_cents(pl.col("dmrc_c")), DTCV=_decimal_from_cents(pl.col("dtcv_c")),
        ChargeType=pl.col("charge_type"), ChargeModel=pl.col("charge_model"),
        PriceChangeOption=pl.lit("NoChange"), ProductRatePlanChargeId=pl.col("prpc_id"),
        Name=pl.col("charge_name"), Description=pl.lit(None, pl.String),
        BillingPeriod=pl.col("billing_period"), TriggerEvent=pl.lit("ContractEffective"),
        UOM=pl.col("uom"),
    )
    charge = _typed("RatePlanCharge", seg)
    # ---- tiers -----------------------------------------------------------------------------
    tier_src = plans.select("prpc_id", "currency", "tier", "starting_unit", "ending_unit",
                            "price_cents", "old_price_cents", "charge_model")
    # prices are copied from the catalog when the charge was booked (its first boundary)
    tiers = seg.join(lch.select("ChargeNumber", "add_eff"), on="ChargeNumber").select(
        "Id", "prpc_id", "currency", "add_eff", "CreatedDate", "UpdatedDate", "CreatedById",
        "UpdatedById")
    tiers = tiers.rename({"Id": "RatePlanChargeId"}).join(
        tier_src, on=["prpc_id", "currency"])
    tiers = tiers.with_columns(
        Id=ids.new(tiers.height),
        Tier=pl.col("tier"),
        Price=_decimal_from_cents(pl.when(pl.col("add_eff") < pl.lit(PRICE_CHANGE_DATE))
                                  .then("old_price_cents").otherwise("price_cents")),
        Currency=pl.col("currency"),
        PriceFormat=pl.when(pl.col("charge_model") == "Flat Fee Pricing").then(
            pl.lit("Flat Fee")).otherwise(pl.lit("Per Unit")),
        StartingUnit=pl.col("starting_unit").cast(pl.Decimal(38, 9)),
        EndingUnit=pl.col("ending_unit").cast(pl.Decimal(38, 9)),
        IsOveragePrice=pl.lit(False),
    )
    tier = _typed("RatePlanChargeTier", tiers)
    return {
        "Subscription": subscription, "RatePlan": rate_plan, "RatePlanCharge": charge,
        "RatePlanChargeTier": tier,
        "_subs": subs.select("sub", "Name", "deployment", "product_key", "edu", "kind", "cancel"),
        "_owner_final": ver.filter("is_latest").select("owner", "Status"),
        "_order_facts": _order_facts(ver, rp, lkeys, bounds, acct_ids),
    }


ORDER_FACT_SCHEMA = {
    "Name": pl.String, "Id": pl.String, "Version": pl.Int64, "is_latest": pl.Boolean,
    "paid": pl.Boolean, "Status": pl.String, "AccountId": pl.String,
    "TermStartDate": pl.Date, "TermEndDate": pl.Date, "CancelledDate": pl.Date,
    "end_date": pl.Date, "product_rate_plan_id": pl.String, "seats": pl.Int64,
    "amendment_type": pl.String, "namespace_id": pl.String, "namespace_name": pl.String,
}


def _order_facts(ver: pl.DataFrame, rp: pl.DataFrame, lkeys: pl.DataFrame, bounds: pl.DataFrame,
                 acct_ids: pl.Series) -> pl.DataFrame:
    """What each version this generator booked means for its subscription's order, from the
    generator's own scenario facts (never by deriving them back from the Zuora frames, which
    would share the reconciler's derivation and hide its bugs): the owner it moved the
    subscription to, the term it set, the cancellation it booked (the order ends then, else at
    the term end), the base plan it sold, the amendment it recorded on that plan and the seats
    its last seat event set. One row per version (``ORDER_FACT_SCHEMA``); the latest row of a
    paid (booked live: Active or Cancelled) subscription is its clean order, and a scenario
    that deletes the latest version (D03) reads what the previous one means."""
    base = rp.filter(pl.col("plan_no") == 0).select(
        "sub", "Version", product_rate_plan_id="prp_id", amendment_type="AmendmentType")
    seat_charge = lkeys.filter((pl.col("plan_no") == 0)
                               & (pl.col("charge_model") == "Per Unit Pricing")).select(
        "sub", "ChargeNumber")
    # seats in force at a version: the quantity of the last seat boundary booked up to it
    seats = (bounds.select("ChargeNumber", "bversion", "qty").join(seat_charge, on="ChargeNumber")
             .join(ver.select("sub", "Version"), on="sub")
             .filter(pl.col("bversion") <= pl.col("Version"))
             .sort("sub", "Version", "ChargeNumber", "bversion")
             .group_by("sub", "Version", maintain_order=True)
             .agg(seats=pl.col("qty").filter(pl.col("ChargeNumber") == pl.col("ChargeNumber")
                                             .first()).last()))
    booked_cancel = pl.col("is_latest") & pl.col("cancel")
    return (ver.join(base, on=["sub", "Version"], how="left")
            .join(seats, on=["sub", "Version"], how="left")
            .with_columns(
                paid=pl.col("kind") == "live",
                AccountId=acct_ids.gather(ver["owner"]),
                end_date=pl.when(booked_cancel).then(pl.col("CancelledDate"))
                .otherwise(pl.col("TermEndDate")),
                namespace_id=pl.col("GitLabNamespaceId__c"),
                namespace_name=pl.col("GitLabNamespaceName__c"))
            .select([pl.col(c).cast(t) for c, t in ORDER_FACT_SCHEMA.items()])
            .sort("Name", "Version"))


def finalize_account_status(accounts: pl.DataFrame, subscription: pl.DataFrame,
                            rng: np.random.Generator) -> pl.DataFrame:
    """Half of the accounts whose every owned subscription is Cancelled become ``Canceled``
    (Z14: a Canceled account owns no Active subscription)."""
    latest = subscription.filter("IsLatestVersion")
    owned = latest.group_by("AccountId").agg(
        all_cancelled=(pl.col("Status") == "Cancelled").all())
    invoiced = latest.filter(pl.col("Status") != "Cancelled").select(
        AccountId="InvoiceOwnerId").unique().with_columns(pays=pl.lit(True))
    cand = (accounts.select("Id").join(owned, left_on="Id", right_on="AccountId", how="left")
            .join(invoiced, left_on="Id", right_on="AccountId", how="left")
            .with_columns(flip=pl.col("all_cancelled").fill_null(False)
                          & pl.col("pays").is_null()
                          & pl.Series(rng.random(accounts.height) < 0.5)))
    return accounts.with_columns(Status=pl.when(cand["flip"]).then(pl.lit("Canceled"))
                                 .otherwise(pl.col("Status")))

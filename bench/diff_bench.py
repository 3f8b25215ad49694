"""Diff benchmark: one 1,000,000-row, 40-column table pair (``python bench/diff_bench.py``).

A synthetic ``BenchObject`` with the catalogue's mix of types and normalisations is generated
deterministically (numpy/polars, fixed seed) as Parquet, the way a snapshot holds it: the Zuora
side typed as the extractor writes it, the local side with the local column names and types.
The local copy differs by 1% of rows changed in 1-3 fields each (real differences: a date
±1 day, a decimal +0.01, a string changed, a bool flipped, …), 0.1% rows missing and 0.1%
extra (orphans), and is shuffled.

Three measurements, each in its own process so its peak RSS is its own (``_run_measured``):

* recon: ``reconcile.diff.diff_object`` over Parquet views, as ``reconcile.load`` sets them
  up, until the findings are counted. The findings must be exactly what was injected (missing,
  orphans, and every changed field), so the benchmark also proves the diff correct.
* floor: a bare DuckDB hash compare of the raw columns of the same files (no normalisation).
  It counts nearly every row as different (``floor_differing_rows``): a DECIMAL(18,2) and a
  DECIMAL(38,9) of equal value hash differently, which is why recon normalises.
* datacompy (polars) as a reference: ``PolarsCompare`` + its report + all mismatching rows.
  datacompy pins polars < 1.45 and pandas < 3.1, which conflicts with this project's pins, so
  it runs in its own virtualenv (``.venv/bench-datacompy``, built on first use from
  ``DATACOMPY_PINS``; ``RECON_BENCH_DATACOMPY_PYTHON`` names another interpreter).

All three run interleaved (recon, floor, datacompy per round; recon and the floor 5 times,
datacompy the first 3) and the medians are compared, so a busy moment on the machine hits
every side alike instead of deciding a ratio.

Targets (issue acceptance): recon ≤ 1.5× the floor, and ≥ 10× faster than datacompy.
``bench_diff()`` returns the figures as a dict for ``bench/run.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

# Only the standard library at module level: the datacompy child runs this file under an
# interpreter that has neither recon nor its dependencies.
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _p in (str(BENCH), str(ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

ROWS = 1_000_000
CHANGED_FRACTION = 0.01
MISSING_FRACTION = 0.001
EXTRA_FRACTION = 0.001
SEED = 20_260_501
REPEATS = 5
DATACOMPY_REPEATS = 3  # each takes ~12 s: the median of 3, interleaved with recon's runs
MAX_FLOOR_RATIO = 1.5
MIN_DATACOMPY_SPEEDUP = 10.0
DATACOMPY_TIMEOUT_S = 20 * 60
DATACOMPY_VENV = ROOT / ".venv" / "bench-datacompy"
DATACOMPY_PINS = (
    "datacompy==1.1.0", "polars==1.44.2", "polars-runtime-32==1.44.2", "pandas==3.0.6",
    "numpy==2.4.6", "pyarrow==26.0.1", "ordered-set==4.1.0", "Jinja2==3.1.6",
    "MarkupSafe==3.0.4", "python-dateutil==4.0.0", "tzdata==2026.6",
)
ZUORA_FILE, LOCAL_FILE = "BenchObject.parquet", "bench_object.parquet"
COLUMNS_FILE = "columns.json"  # local column -> Zuora name, for the datacompy child

SUBSCRIPTION_STATUS = ("Draft", "Pending Activation", "Pending Acceptance", "Active",
                       "Cancelled", "Expired", "Suspended")
CHARGE_MODEL = ("Flat Fee Pricing", "Per Unit Pricing", "Overage Pricing", "Volume Pricing",
                "Tiered Pricing", "Tiered with Overage Pricing", "Discount-Fixed Amount",
                "Discount-Percentage")


def bench_spec():
    """The synthetic object: 40 fields (Id + 39 compared) of the catalogue's kinds."""
    from core.catalog import Field, Norm, ObjectSpec, ZType

    def s(name, column, n, norm=Norm.EXACT, ztype=ZType.STR, nullable=True, enum=()):
        return Field(name, ztype, column, f"VARCHAR({n})", nullable=nullable, norm=norm,
                     enum=enum)

    def d(name, column, nullable=True):
        return Field(name, ZType.DATE, column, "DATE", nullable=nullable, norm=Norm.DATE)

    def ts(name, column, nullable=True):
        return Field(name, ZType.DATETIME, column, "TIMESTAMP", nullable=nullable,
                     norm=Norm.DATETIME_UTC)

    def dec(name, column, local_type):
        return Field(name, ZType.DECIMAL, column, local_type, norm=Norm.DECIMAL)

    def i(name, column):
        return Field(name, ZType.INT, column, "BIGINT")

    def b(name, column):
        return Field(name, ZType.BOOL, column, "BOOLEAN", norm=Norm.BOOL)

    return ObjectSpec(
        name="BenchObject", table="bench_object", group="subscriptions", local_pk="zuora_id",
        fields=(
            Field("Id", ZType.ID, "zuora_id", "VARCHAR(64)", nullable=False,
                  zuora_required=True),
            # 15 strings: ids, plain text, custom fields
            s("AccountId", "account_id", 64, ztype=ZType.ID, nullable=False),
            s("InvoiceOwnerId", "invoice_owner_id", 64, ztype=ZType.ID, nullable=False),
            s("ProductRatePlanId", "product_rate_plan_id", 64, ztype=ZType.ID),
            s("CreatedById", "created_by_id", 64, ztype=ZType.ID, nullable=False),
            s("UpdatedById", "updated_by_id", 64, ztype=ZType.ID, nullable=False),
            s("Name", "name", 100, nullable=False),
            s("SubscriptionNumber", "subscription_number", 100, nullable=False),
            s("Currency", "currency", 3),
            s("Notes", "notes", 500),
            s("ExternalRef", "external_ref", 255),
            s("PaymentTerm", "payment_term", 100),
            s("Opportunity__c", "opportunity__c", 100, Norm.CUSTOM),
            s("RenewalChannel__c", "renewal_channel__c", 50, Norm.CUSTOM),
            s("Comment__c", "comment__c", 255, Norm.CUSTOM),
            s("CpqQuoteId__c", "cpq_quote_id__c", 64, Norm.CUSTOM),
            # 2 enums
            s("Status", "status", 64, Norm.ENUM, nullable=False, enum=SUBSCRIPTION_STATUS),
            s("ChargeModel", "charge_model", 64, Norm.ENUM, enum=CHARGE_MODEL),
            # 6 dates
            d("ContractEffectiveDate", "contract_effective_date", nullable=False),
            d("ServiceActivationDate", "service_activation_date"),
            d("SubscriptionStartDate", "subscription_start_date", nullable=False),
            d("SubscriptionEndDate", "subscription_end_date"),
            d("TermStartDate", "term_start_date", nullable=False),
            d("TermEndDate", "term_end_date"),
            # 4 datetimes
            ts("CreatedDate", "created_date", nullable=False),
            ts("UpdatedDate", "updated_date", nullable=False),
            ts("CancelledDate", "cancelled_date"),
            ts("LastBookingDate", "last_booking_date"),
            # 6 decimals
            dec("Price", "price", "DECIMAL(18,2)"),
            dec("ListPrice", "list_price", "DECIMAL(18,2)"),
            dec("MRR", "mrr", "DECIMAL(18,2)"),
            dec("TCV", "tcv", "DECIMAL(18,2)"),
            dec("Quantity", "quantity", "DECIMAL(38,9)"),
            dec("DiscountPercentage", "discount_percentage", "DECIMAL(38,9)"),
            # 3 integers, 3 booleans
            i("InitialTerm", "initial_term"),
            i("RenewalTerm", "renewal_term"),
            i("Version", "version"),
            b("AutoRenew", "auto_renew"),
            b("IsInvoiceSeparate", "is_invoice_separate"),
            b("IsLatestVersion", "is_latest_version"),
        ),
    )


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------
def _hex_ids(rng, n: int):
    """n random 32-character lowercase hex ids (Zuora's shape), vectorised."""
    import numpy as np
    import polars as pl

    raw = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    out = np.empty((n, 32), dtype=np.uint8)
    out[:, 0::2], out[:, 1::2] = digits[raw >> 4], digits[raw & 15]
    return pl.Series(out.view("S32").ravel()).cast(pl.String)


def _pick(rng, values, n: int, p=None):
    import polars as pl

    return pl.Series(list(values), dtype=pl.String).gather(
        rng.choice(len(values), n, p=p))


def _nulls(rng, s, fraction: float):
    import polars as pl

    mask = pl.Series(rng.random(len(s)) < fraction)
    return pl.select(pl.when(mask).then(None).otherwise(s)).to_series().alias(s.name)


def _zuora_frame(rng, n: int):
    """n Zuora rows typed as the extractor writes them."""
    import numpy as np
    import polars as pl

    def num(prefix: str, width: int, values):
        return pl.select(pl.concat_str(pl.lit(prefix), pl.lit(pl.Series(values).cast(
            pl.String)).str.zfill(width))).to_series()

    def days(values):
        return pl.Series(values.astype(np.int32)).cast(pl.Date)

    def stamp(seconds):
        return pl.Series(seconds.astype(np.int64) * 1_000_000).cast(pl.Datetime("us"))

    def decimal(units, scale: int):
        return pl.Series(units.astype(np.int64)).cast(pl.Decimal(38, 9)) / 10**scale

    accounts, users, plans = _hex_ids(rng, max(n // 10, 1)), _hex_ids(rng, 50), _hex_ids(rng, 500)
    account = accounts.gather(rng.integers(0, len(accounts), n))
    owner = pl.select(pl.when(pl.Series(rng.random(n) < 0.9)).then(account).otherwise(
        accounts.gather(rng.integers(0, len(accounts), n)))).to_series()
    start = rng.integers(16_000, 20_000, n)  # days since 1970: 2013 … 2024
    term = rng.choice([12, 24, 36], n, p=[0.7, 0.2, 0.1])
    created = start.astype(np.int64) * 86_400 + rng.integers(0, 86_400, n)
    cents = rng.integers(100, 5_000_000, n)
    qty = rng.integers(1, 2_000, n) * 10_000 + rng.choice([0, 0, 0, 2_500, 5_000], n)
    cols = {
        "Id": _hex_ids(rng, n),
        "AccountId": account,
        "InvoiceOwnerId": owner,
        "ProductRatePlanId": _nulls(rng, plans.gather(rng.integers(0, 500, n)), 0.05),
        "CreatedById": users.gather(rng.integers(0, 50, n)),
        "UpdatedById": users.gather(rng.integers(0, 50, n)),
        "Name": num("Subscription ", 9, rng.integers(0, 10**9, n)),
        "SubscriptionNumber": num("A-S", 8, np.arange(n)),
        "Currency": _pick(rng, ("USD", "EUR", "GBP", "JPY", "AUD"), n,
                          [0.6, 0.2, 0.1, 0.05, 0.05]),
        "Notes": _nulls(rng, num("renewed by the account team, ticket #", 7,
                                 rng.integers(0, 10**7, n)), 0.7),
        "ExternalRef": _nulls(rng, num("SF-", 10, rng.integers(0, 10**10, n)), 0.3),
        "PaymentTerm": _pick(rng, ("Net 30", "Net 60", "Due Upon Receipt"), n),
        "Opportunity__c": _nulls(rng, num("0061x0000", 9, rng.integers(0, 10**9, n)), 0.4),
        "RenewalChannel__c": _nulls(rng, _pick(rng, ("Auto", "Manual", "Partner"), n), 0.3),
        "Comment__c": _nulls(rng, num("case ", 6, rng.integers(0, 10**6, n)), 0.8),
        "CpqQuoteId__c": _nulls(rng, num("a0Q", 12, rng.integers(0, 10**12, n)), 0.5),
        "Status": _pick(rng, SUBSCRIPTION_STATUS, n, [.02, .01, .01, .7, .14, .1, .02]),
        "ChargeModel": _nulls(rng, _pick(rng, CHARGE_MODEL, n), 0.05),
        "ContractEffectiveDate": days(start),
        "ServiceActivationDate": _nulls(rng, days(start + rng.integers(0, 10, n)), 0.2),
        "SubscriptionStartDate": days(start),
        "SubscriptionEndDate": _nulls(rng, days(start + term * 30), 0.3),
        "TermStartDate": days(start),
        "TermEndDate": _nulls(rng, days(start + term * 30), 0.2),
        "CreatedDate": stamp(created),
        "UpdatedDate": stamp(created + rng.integers(0, 10**8, n)),
        "CancelledDate": _nulls(rng, stamp(created + rng.integers(0, 10**8, n)), 0.85),
        "LastBookingDate": _nulls(rng, stamp(created + rng.integers(0, 10**7, n)), 0.2),
        "Price": _nulls(rng, decimal(cents, 2), 0.05),
        "ListPrice": _nulls(rng, decimal(cents + rng.integers(0, 10_000, n), 2), 0.05),
        "MRR": _nulls(rng, decimal(cents // 12, 2), 0.1),
        "TCV": _nulls(rng, decimal(cents * term // 12, 2), 0.1),
        "Quantity": _nulls(rng, decimal(qty, 4), 0.02),
        "DiscountPercentage": _nulls(rng, decimal(rng.integers(0, 10_000_000, n), 5), 0.6),
        "InitialTerm": pl.Series(term.astype(np.int64)),
        "RenewalTerm": _nulls(rng, pl.Series(np.full(n, 12, dtype=np.int64)), 0.1),
        "Version": pl.Series(rng.integers(1, 20, n).astype(np.int64)),
        "AutoRenew": _nulls(rng, pl.Series(rng.random(n) < 0.8), 0.05),
        "IsInvoiceSeparate": pl.Series(rng.random(n) < 0.1),
        "IsLatestVersion": pl.Series(rng.random(n) < 0.9),
    }
    return pl.DataFrame({k: v.alias(k) for k, v in cols.items()})


def _change(field, s, rng):
    """A real difference (under recon's normalisation) for every value of ``s``."""
    import polars as pl

    from core.catalog import Norm, ZType

    n = len(s)
    if field.norm is Norm.ENUM:
        values = list(field.enum)
        nxt = {v: values[(k + 1) % len(values)] for k, v in enumerate(values)}
        return s.replace_strict(nxt, return_dtype=pl.String).fill_null(values[0])
    if field.ztype in (ZType.STR, ZType.ID):
        return (s + " (changed)").fill_null("changed")
    if field.norm is Norm.DATE:  # ±1 day
        shifted = s.cast(pl.Int32) + pl.Series(rng.choice([-1, 1], n).astype("int32"))
        return shifted.cast(pl.Date).fill_null(dt.date(2020, 1, 1))
    if field.norm is Norm.DATETIME_UTC:
        return (s + dt.timedelta(hours=1)).fill_null(dt.datetime(2020, 1, 1))
    if field.ztype is ZType.DECIMAL:
        return (s + Decimal("0.01")).fill_null(Decimal(1))
    if field.ztype is ZType.INT:
        return (s + 1).fill_null(1)
    if field.ztype is ZType.BOOL:
        return (~s).fill_null(True)
    raise AssertionError(field)


def generate(out: Path, rows: int = ROWS, seed: int = SEED) -> dict:
    """Write the Zuora and local Parquet files into ``out``; return what was injected."""
    import numpy as np
    import polars as pl

    spec = bench_spec()
    compared = spec.compared_fields
    rng = np.random.default_rng(seed)
    missing = round(rows * MISSING_FRACTION)
    extra = round(rows * EXTRA_FRACTION)
    changed = round(rows * CHANGED_FRACTION)
    base = _zuora_frame(rng, rows + extra)
    zuora = base.head(rows)
    picked = rng.permutation(rows)[: missing + changed]
    gone, touched = picked[:missing], picked[missing:]
    # each changed row: 1-3 distinct fields
    k = rng.integers(1, 4, changed)
    order = np.argsort(rng.random((changed, len(compared))), axis=1)[:, :3]
    per_field: dict[str, int] = {}
    local = zuora.clone()
    for j, f in enumerate(compared):
        idx = np.sort(touched[((order == j) & (np.arange(3) < k[:, None])).any(axis=1)])
        if not len(idx):
            continue
        per_field[f.name] = len(idx)
        col = local[f.name]
        local = local.with_columns(col.scatter(idx, _change(f, col.gather(idx), rng)))
    keep = np.ones(rows, dtype=bool)
    keep[gone] = False
    local = pl.concat([local.filter(pl.Series(keep)), base.tail(extra)])
    local = local.gather(rng.permutation(local.height))  # the local export's own order
    casts = {}
    for f in spec.fields:  # local decimal columns keep their own precision and scale
        m = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", f.local_type or "")
        if m:
            casts[f.name] = pl.col(f.name).cast(pl.Decimal(int(m[1]), int(m[2])))
    local = local.with_columns(**casts).rename({f.name: f.column for f in spec.fields})
    out.mkdir(parents=True, exist_ok=True)
    zuora.write_parquet(out / ZUORA_FILE)
    local.write_parquet(out / LOCAL_FILE)
    (out / COLUMNS_FILE).write_text(json.dumps({f.column: f.name for f in spec.fields}))
    return {"rows": rows, "columns": len(spec.fields), "changed_rows": changed,
            "changed_fields": int(k.sum()), "missing": missing, "extra": extra,
            "per_field": dict(sorted(per_field.items()))}


# ------------------------------------------------------------------------------------------
# Measured children (``--child KIND ZUORA LOCAL RESULT``)
# ------------------------------------------------------------------------------------------
def _lit(path: str) -> str:
    return "'" + path.replace("'", "''") + "'"


def _views(con, zpath: str, lpath: str) -> None:
    """The two sides as ``reconcile.load.open_snapshot_db`` sets them up."""
    spec = bench_spec()
    con.execute("SET preserve_insertion_order = false")
    con.execute("CREATE SCHEMA zuora")
    con.execute("CREATE SCHEMA local")
    con.execute(f'CREATE VIEW zuora."{spec.name}" AS SELECT * FROM read_parquet({_lit(zpath)})')
    con.execute(f"CREATE VIEW local.{spec.table} AS SELECT * FROM read_parquet({_lit(lpath)})")
    con.execute("SET search_path = 'zuora,local'")


def _child_recon(zpath: str, lpath: str) -> dict:
    import duckdb

    from reconcile.diff import diff_object
    from reconcile.findings import FINDINGS_DDL

    t0, c0 = time.perf_counter(), time.process_time()
    con = duckdb.connect()
    _views(con, zpath, lpath)
    con.execute(FINDINGS_DDL)
    stats, field_stats = diff_object(con, bench_spec(), zuora_file=Path(zpath))
    findings = con.execute("SELECT count(*) FROM findings").fetchone()[0]
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    kinds = dict(con.execute("SELECT kind, count(*) FROM findings GROUP BY kind").fetchall())
    return {"seconds": seconds, "cpu_s": cpu, "findings": findings, "kinds": kinds,
            "per_field": dict(zip(field_stats["field"], field_stats["unequal"], strict=True)),
            "unequal_rows": stats.unequal}


def floor_sql(spec=None) -> str:
    """Bare hash compare of the raw columns: what any diff of these files must at least do."""
    spec = spec or bench_spec()
    zcols = ", ".join(f'"{f.name}"' for f in spec.fields)
    lcols = ", ".join(f.column for f in spec.fields)
    return (f'SELECT count(*) FROM (SELECT "Id", hash({zcols}) AS h FROM zuora."{spec.name}") z '
            f"FULL JOIN (SELECT {spec.key_column}, hash({lcols}) AS h FROM local.{spec.table}) l "
            f'ON z."Id" = l.{spec.key_column} WHERE z.h IS DISTINCT FROM l.h')


def _child_floor(zpath: str, lpath: str) -> dict:
    import duckdb

    t0, c0 = time.perf_counter(), time.process_time()
    con = duckdb.connect()
    _views(con, zpath, lpath)
    differing = con.execute(floor_sql()).fetchone()[0]
    return {"seconds": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "differing_rows": differing}


def _child_datacompy(zpath: str, lpath: str, result: str, timeout: float) -> dict:
    started = time.perf_counter()

    def give_up() -> None:  # a Timer thread: ends the process even mid-computation
        Path(result).write_text(json.dumps({"timed_out": True,
                                            "seconds": time.perf_counter() - started}))
        os._exit(0)

    watchdog = threading.Timer(timeout, give_up)
    watchdog.daemon = True
    watchdog.start()
    import datacompy
    import polars as pl

    names = json.loads((Path(zpath).parent / COLUMNS_FILE).read_text())  # local -> Zuora
    t0, c0 = time.perf_counter(), time.process_time()
    z = pl.read_parquet(zpath)
    lo = pl.read_parquet(lpath).rename(names)
    t1 = time.perf_counter()
    cmp = datacompy.PolarsCompare(z, lo, join_columns="Id", df1_name="zuora", df2_name="local",
                                  cast_column_names_lower=False)
    t2 = time.perf_counter()
    report = cmp.report()  # per-column statistics and samples: recon's field statistics
    t3 = time.perf_counter()
    mismatch = cmp.all_mismatch(ignore_matching_cols=True)  # every unequal row: the findings
    t4 = time.perf_counter()
    seconds, cpu = t4 - t0, time.process_time() - c0
    phases = {"read": t1 - t0, "compare": t2 - t1, "report": t3 - t2, "all_mismatch": t4 - t3}
    watchdog.cancel()
    unequal = {c["column"]: int(c["unequal_cnt"]) for c in cmp.column_stats
               if c["unequal_cnt"]}
    return {"seconds": seconds, "cpu_s": cpu, "version": datacompy.__version__,
            "polars": pl.__version__,
            "mismatch_rows": mismatch.height, "only_zuora": cmp.df1_unq_rows.height,
            "only_local": cmp.df2_unq_rows.height, "report_chars": len(report), "phases": phases,
            "unequal_by_column": unequal}


def _child(kind: str, zpath: str, lpath: str, result: str, timeout: float) -> int:
    if kind == "recon":
        out = _child_recon(zpath, lpath)
    elif kind == "floor":
        out = _child_floor(zpath, lpath)
    else:
        out = _child_datacompy(zpath, lpath, result, timeout)
    Path(result).write_text(json.dumps(out))
    return 0


# ------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------
def datacompy_python() -> str:
    """An interpreter with datacompy (polars): ours if it has it, else a side virtualenv."""
    if os.environ.get("RECON_BENCH_DATACOMPY_PYTHON"):
        return os.environ["RECON_BENCH_DATACOMPY_PYTHON"]
    try:
        from datacompy import PolarsCompare  # noqa: F401

        return sys.executable
    except ImportError:
        pass
    python = DATACOMPY_VENV / "bin" / "python"
    marker = DATACOMPY_VENV / ".pins"
    if not (python.exists() and marker.exists() and marker.read_text() == "\n".join(DATACOMPY_PINS)):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(DATACOMPY_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        *DATACOMPY_PINS], check=True)
        marker.write_text("\n".join(DATACOMPY_PINS))
    return str(python)


def _measure(kind: str, python: str, data: Path, env: dict,
             timeout: float = DATACOMPY_TIMEOUT_S) -> dict:
    from extract_bench import _run_measured

    with tempfile.NamedTemporaryFile("r", suffix=".json") as res:
        wall, rss = _run_measured(
            [python, str(Path(__file__).resolve()), "--child", kind, str(data / ZUORA_FILE),
             str(data / LOCAL_FILE), res.name, "--timeout", str(timeout)], env)
        out = json.loads(Path(res.name).read_text())
    return {**out, "process_s": wall, "peak_rss_mib": rss}


def _check_recon(run: dict, expected: dict) -> None:
    """The diff must report exactly what was injected."""
    kinds = run["kinds"]
    got = (kinds.get("missing_in_local", 0), kinds.get("orphaned_in_local", 0),
           kinds.get("field_mismatch", 0))
    want = (expected["missing"], expected["extra"], expected["changed_fields"])
    if got != want or run["per_field"] != expected["per_field"]:
        raise AssertionError(f"recon findings (missing, orphan, field) {got} != injected {want}"
                             f"; per field {run['per_field']} vs {expected['per_field']}")


def bench_diff(rows: int = ROWS, repeats: int = REPEATS, work: Path | None = None,
               datacompy: bool = True, datacompy_timeout: float = DATACOMPY_TIMEOUT_S) -> dict:
    """Generate the table pair, measure recon / floor / datacompy; return the figures."""
    with tempfile.TemporaryDirectory(prefix="recon-diff-bench-") as tmp:
        data = Path(work) if work else Path(tmp)
        t0 = time.perf_counter()
        expected = generate(data, rows)
        generate_s = time.perf_counter() - t0
        env = dict(os.environ)
        load = os.getloadavg()[0]
        recon, floor, dcs = [], [], []
        python = datacompy_python() if datacompy else ""
        for i in range(repeats):  # interleaved, so other load on the machine hits all alike
            recon.append(_measure("recon", sys.executable, data, env))
            _check_recon(recon[-1], expected)
            floor.append(_measure("floor", sys.executable, data, env))
            if datacompy and i < DATACOMPY_REPEATS and not any(
                    d.get("timed_out") for d in dcs):
                dcs.append(_measure("datacompy", python, data, env, datacompy_timeout))
        dc = sorted(dcs, key=lambda d: d["seconds"])[len(dcs) // 2] if dcs else None
    recon_s = statistics.median(r["seconds"] for r in recon)
    floor_s = statistics.median(r["seconds"] for r in floor)
    recon_cpu = statistics.median(r["cpu_s"] for r in recon)
    floor_cpu = statistics.median(r["cpu_s"] for r in floor)
    out = {
        "bench": "recon diff", "rows": rows, "columns": expected["columns"],
        "changed_rows": expected["changed_rows"], "changed_fields": expected["changed_fields"],
        "missing_rows": expected["missing"], "extra_rows": expected["extra"],
        "generate_s": round(generate_s, 1), "load_avg_1m_at_start": round(load, 2),
        "recon_s": round(recon_s, 2),
        "recon_runs_s": " ".join(f"{r['seconds']:.2f}" for r in recon),
        "recon_peak_rss_mib": max(r["peak_rss_mib"] for r in recon),
        "recon_cpu_s": round(recon_cpu, 2),
        "recon_findings": (f"{recon[0]['findings']:,} = {expected['missing']:,} missing + "
                           f"{expected['extra']:,} orphaned + {expected['changed_fields']:,} "
                           "field mismatches (as injected)"),
        "floor_s": round(floor_s, 2),
        "floor_runs_s": " ".join(f"{r['seconds']:.2f}" for r in floor),
        "floor_peak_rss_mib": max(r["peak_rss_mib"] for r in floor),
        "floor_cpu_s": round(floor_cpu, 2),
        "floor_differing_rows": floor[0]["differing_rows"],
        "recon_over_floor": round(recon_s / floor_s, 2),
        "recon_over_floor_cpu": round(recon_cpu / floor_cpu, 2),
    }
    floor_ok = recon_s <= MAX_FLOOR_RATIO * floor_s
    out["floor_target"] = f"{'PASS' if floor_ok else 'FAIL'} (≤ {MAX_FLOOR_RATIO}× floor)"
    if dc is not None:
        timed_out = dc.get("timed_out", False)
        dc_s = dc["seconds"]
        out.update({
            "datacompy_version": dc.get("version", "?"),
            "datacompy_polars": dc.get("polars", "?"),
            "datacompy_s": f"> {datacompy_timeout:g}" if timed_out else round(dc_s, 1),
            "datacompy_runs_s": " ".join(f"{d['seconds']:.1f}" for d in dcs),
            "datacompy_peak_rss_mib": dc["peak_rss_mib"],
            "datacompy_cpu_s": round(dc["cpu_s"], 1) if "cpu_s" in dc else "?",
            "datacompy_phases_s": " ".join(f"{k} {v:.1f}" for k, v in dc.get("phases", {}).items()),
            "datacompy_found": (f"{dc['mismatch_rows']:,} unequal rows, {dc['only_zuora']:,} "
                                f"only in Zuora, {dc['only_local']:,} only local"
                                if not timed_out else "?"),
            "datacompy_over_recon": (f"> {datacompy_timeout / recon_s:.1f}" if timed_out
                                     else round(dc_s / recon_s, 1)),
            "datacompy_over_recon_cpu": (round(dc["cpu_s"] / recon_cpu, 1) if "cpu_s" in dc
                                         else "?"),
        })
        dc_ok = dc_s >= MIN_DATACOMPY_SPEEDUP * recon_s
        out["datacompy_target"] = (f"{'PASS' if dc_ok else 'FAIL'} "
                                   f"(≥ {MIN_DATACOMPY_SPEEDUP:g}× faster than datacompy)")
    return out


def _machine() -> str:
    try:
        from run import machine

        return machine()
    except ImportError:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        return f"{os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {sys.version.split()[0]}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=ROWS)
    p.add_argument("--repeats", type=int, default=REPEATS)
    p.add_argument("--keep", help="directory to write (and keep) the Parquet files in")
    p.add_argument("--skip-datacompy", action="store_true")
    p.add_argument("--timeout", type=float, default=DATACOMPY_TIMEOUT_S,
                   help="datacompy time limit, seconds")
    p.add_argument("--child", nargs=4, metavar=("KIND", "ZUORA", "LOCAL", "RESULT"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(*args.child, timeout=args.timeout)
    print(f"machine: {_machine()}")
    result = bench_diff(args.rows, args.repeats, Path(args.keep) if args.keep else None,
                        not args.skip_datacompy, args.timeout)
    for k, v in result.items():
        print(f"  {k:>26}: {v:,}" if isinstance(v, int) else f"  {k:>26}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Report benchmark: a run with 100,000 findings, its report's size and generation time, and
the page's first render in headless Chromium.

The run is synthesised (drift.parquet, stats, summary.json and recon's state, with 13 earlier
runs for the trends) rather than reconciled from a tenant, so the figure is the report's own
cost; findings look like real ones (32-hex ids, dates off by a day, decimals, names, rule
findings with sentences). No repair plan is saved (the report shows saved plans only and
never plans): planning a 100k-finding run is the repair benchmark's figure. Chromium:
navigation start → first contentful paint and → the page's script having rendered its tables
(``__reportReadyMs``), then one filter and one sort over all 100,000 rows.

``bench_report()`` returns the figures as a dict; ``python bench/report_bench.py`` prints it.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.config import Settings  # noqa: E402
from core.snapshot import Manifest, SnapshotWriter  # noqa: E402
from core.state import StateDB  # noqa: E402
from reconcile import history  # noqa: E402
from reconcile.findings import DRIFT_SCHEMA  # noqa: E402

FINDINGS = 100_000
RUN = "20261123T070000000000Z-beef"
OBJECTS = ("Account", "Contact", "Subscription", "RatePlan", "RatePlanCharge",
           "RatePlanChargeTier", "orders", "Product")
FIELDS = {"Account": ["Name", "CrmId", "Status"], "Contact": ["WorkEmail", "LastName"],
          "Subscription": ["TermEndDate", "Notes", "Status"], "RatePlan": ["Name"],
          "RatePlanCharge": ["EffectiveStartDate", "MRR", "Quantity"],
          "RatePlanChargeTier": ["Price"], "orders": ["subscription_id"], "Product": ["Name"]}


def _hex(rng: np.random.Generator, n: int) -> pl.Series:
    """``n`` random 32-hex ids (Zuora's id shape)."""
    raw = rng.bytes(16 * n)
    return pl.Series("h", [raw[i:i + 16] for i in range(0, 16 * n, 16)],
                     dtype=pl.Binary).bin.encode("hex")


def synthesise(data: Path, n: int = FINDINGS, seed: int = 7) -> None:
    """Write a reconciled run ``RUN`` with ``n`` findings (and 13 earlier runs in state)."""
    rng = np.random.default_rng(seed)
    obj = rng.choice(OBJECTS, n, p=[.08, .07, .25, .12, .2, .18, .07, .03])
    kind = rng.choice(["field_mismatch", "missing_in_local", "orphaned_in_local",
                       "rule_violation"], n, p=[.6, .1, .15, .15])
    field = np.array([FIELDS[o][i % len(FIELDS[o])] for i, o in
                      enumerate(obj)], dtype=object)
    day = rng.integers(0, 2000, n)
    base = np.datetime64("2021-01-01") + day
    date_b = base.astype(str)
    date_a = (base + 1).astype(str)
    cents = rng.integers(100, 1_000_000, n)
    frame = pl.DataFrame({
        "object": obj, "kind": kind, "field": field, "d_b": date_b, "d_a": date_a,
        "c": cents, "sub": rng.integers(1, 40_000, n),
        "sev": rng.choice(["high", "medium", "low"], n, p=[.4, .45, .15]),
        "act": rng.choice(["auto", "human"], n, p=[.85, .15]),
        "st": rng.choice(["new", "persisting", "pending", "resolved"], n, p=[.2, .65, .05, .1]),
    }).with_columns(key=_hex(rng, n), account_id=_hex(rng, n))
    is_date = pl.col("field").str.contains("Date")
    is_num = pl.col("field").is_in(["MRR", "Price", "Quantity"])
    fm = pl.col("kind") == "field_mismatch"
    local = (pl.when(~fm).then(None).when(is_date).then(pl.col("d_b"))
             .when(is_num).then((pl.col("c") / 100).round(2).cast(pl.String))
             .otherwise(pl.lit("Initech Cloud ") + pl.col("c").cast(pl.String)))
    zuora = (pl.when(~fm).then(None).when(is_date).then(pl.col("d_a"))
             .when(is_num).then(((pl.col("c") + 1) / 100).round(2).cast(pl.String))
             .otherwise(pl.lit("Initech Cloud Inc ") + pl.col("c").cast(pl.String)))
    sub = pl.lit("A-S") + pl.col("sub").cast(pl.String).str.pad_start(8, "0")
    drift = frame.select(
        run_id=pl.lit(RUN), object="object", key="key", kind="kind",
        rule=pl.when(pl.col("kind") == "rule_violation").then(
            pl.lit("D") + (pl.col("c") % 20 + 2).cast(pl.String).str.pad_start(2, "0")),
        field=pl.when(fm).then(pl.col("field")), zuora_value=zuora, local_value=local,
        severity="sev", action="act", status="st",
        first_seen_run=pl.when(pl.col("st") == "new").then(pl.lit(RUN)).otherwise(
            pl.lit("20261101T070000000000Z-beef")),
        explanation=pl.format("{} {}: {} is {} in Zuora but {} locally; repair from Zuora",
                              "object", "key", "field", zuora, local),
        drift_id=pl.when(is_date & fm).then(pl.lit("D05")).when(is_num & fm)
        .then(pl.lit("D06")).otherwise(pl.lit("D04")),
        subscription_name=pl.when(pl.col("object") != "Account").then(sub),
        account_id="account_id",
        zuora_updated=pl.lit(dt.datetime(2026, 11, 1, 12)),
        evidence=pl.when(is_date & fm).then(pl.lit('{"day_shift":1}')),
        fingerprint=pl.concat_str("object", "key", "kind", "field").hash().cast(pl.String),
    ).cast(DRIFT_SCHEMA)  # type: ignore[arg-type]
    out = data / "runs" / RUN
    out.mkdir(parents=True)
    drift.write_parquet(out / "drift.parquet")
    stats = pl.DataFrame({"object": list(OBJECTS[:6]), "table": [f"t_{o}" for o in OBJECTS[:6]],
                          "zuora_rows": [100_000, 130_000, 1_000_000, 1_200_000, 2_800_000,
                                         2_900_000]}).with_columns(
        local_rows=pl.col("zuora_rows") + 900, matched=pl.col("zuora_rows") - 1_500,
        only_zuora=pl.lit(1_500), only_local=pl.lit(2_400), unequal=pl.lit(9_000),
        columns_unequal=pl.lit(3), seconds=pl.lit(1.5))
    stats.write_parquet(out / "object_stats.parquet")
    fs = drift.filter(pl.col("kind") == "field_mismatch").group_by("object", "field").agg(
        unequal=pl.len().cast(pl.Int64), null_vs_value=pl.lit(0, pl.Int64),
        max_abs_diff=pl.lit("1.0"))
    fs.write_parquet(out / "field_stats.parquet")
    now = dt.datetime(2026, 11, 23, 7, 5)
    summary = {"run_id": RUN, "as_of": "2026-11-23T07:00:00Z", "snapshot_mode": "full",
               "started_at": "2026-11-23T07:03:00Z", "finished_at": "2026-11-23T07:05:00Z",
               "duration_s": 28.0, "grace_hours": 2.0, "previous_run": None,
               "quarantined_rows": 0}
    (out / "summary.json").write_text(json.dumps(summary))
    w = SnapshotWriter(data, RUN)
    w.complete(Manifest(run_id=RUN, mode="full", started_at="2026-11-23T07:00:00Z",
                        finished_at="2026-11-23T07:03:00Z", duration_s=180.0,
                        zuora={o: {"rows": 1_000_000} for o in OBJECTS[:6]},
                        local={"orders": {"rows": 400_000}}))
    with StateDB(data) as state:
        for i in range(13, 0, -1):
            rid = f"202611{23 - i:02d}T070000000000Z-beef"
            counts = {"drift": n - i * 900, "by_status": {"new": 2000, "persisting": n - 3000},
                      "by_object": {o: n // 8 - i * 50 for o in OBJECTS}}
            state.con.execute(
                "INSERT INTO reconcile_runs (run_id, as_of, snapshot_mode, started_at, finished_at, "
                "duration_s, grace_hours, previous_run, findings, summary) "
                "VALUES (?, ?, 'full', ?, ?, ?, 2.0, NULL, ?, ?)",
                [rid, now - dt.timedelta(days=i), now - dt.timedelta(days=i),
                 now - dt.timedelta(days=i), 25.0 + i, counts["drift"], json.dumps(counts)])
        run = {"run_id": RUN, "as_of": now, "snapshot_mode": "full", "started_at": now,
               "finished_at": now, "duration_s": 28.0, "grace_hours": 2.0,
               "previous_run": None, "findings": n,
               "summary": {"drift": n, "by_object": {o: n // 8 for o in OBJECTS}}}
        history.store(state, RUN, drift, run, stats)


def bench_report(n: int = FINDINGS, keep: Path | None = None, browser: bool = True) -> dict:
    """Figures for a report of ``n`` findings (see the module docstring)."""
    from reports import build_report

    work = Path(tempfile.mkdtemp(prefix="recon-report-bench-"))
    try:
        t = time.perf_counter()
        synthesise(work, n)
        synth_s = time.perf_counter() - t
        settings = Settings(data_dir=work)
        build_report(work, RUN, settings=settings)  # warm imports
        t = time.perf_counter()
        paths = build_report(work, RUN, settings=settings)
        gen_s = time.perf_counter() - t
        html = paths.html.read_bytes()
        out: dict = {
            "bench": "recon report (100k findings)", "findings": paths.findings,
            "synthesise_s": round(synth_s, 2), "generate_s": round(gen_s, 2),
            "collect_s": round(paths.timings["collect"], 2),
            "model_s": round(paths.timings["model"], 2),
            "json_s": round(paths.timings["json"], 2), "html_s": round(paths.timings["html"], 2),
            "html_mb": round(len(html) / 1e6, 1),
            "html_gzip_mb": round(len(gzip.compress(html, 6)) / 1e6, 1),
            "json_mb": round(paths.json.stat().st_size / 1e6, 1),
        }
        if browser:
            out.update(_browser(paths.html))
        if keep:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.copy2(paths.html, keep / "report-100k.html")
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _browser(page: Path) -> dict:
    from tests.support.chromium import Chromium, find_binary

    if find_binary() is None:
        return {"chromium": "not installed"}
    with Chromium(width=1400, height=1000, timeout=120) as c:
        c.open_file(page)  # warm: fonts, caches
        load = c.open_file(page)
        c.wait_for("document.documentElement.dataset.ready === '1'", timeout=60)
        timings = c.paint_timings()
        c.evaluate("location.hash = '#findings?status=open&severity=high&object=Subscription'")
        c.wait_for("window.__reportLastRenderMs !== undefined && "
                   "location.hash.includes('severity=high')")
        time.sleep(0.3)
        filter_ms = c.evaluate("window.__reportLastRenderMs")
        c.evaluate("document.querySelector('#f-table th[data-sort=entity]').click()")
        sort_ms = c.evaluate("window.__reportLastRenderMs")
        errors = c.recorded.errors
    return {
        "chromium_load_s": round(load, 2),
        "first_contentful_paint_ms": round(timings["first_contentful_paint"] or 0),
        "script_ready_ms": round(timings["script_ready"] or 0),
        "load_event_ms": round(timings["load"] or 0),
        "filter_ms": round(filter_ms or 0), "sort_100k_ms": round(sort_ms or 0),
        "console_errors": len(errors),
    }


if __name__ == "__main__":
    print(json.dumps(bench_report(keep=Path(sys.argv[1]) if len(sys.argv) > 1 else None),
                     indent=2))

"""Quarantine: the rows a run goes on without, and why.

A row that breaks a row-level contract rule (a NULL where the column is NOT NULL, a string
longer than its local column, a value outside its enum, a duplicated local key) or that the
extractor could not type (a reject) cannot be compared honestly. Dropping it silently would
turn it into a "missing" finding; keeping it would compare garbage. So it is written here,
one row per (record, column, check), and the reconciler reports these keys as *quarantined*,
never as missing::

    DATA/runs/<run_id>/quarantine/<object>.parquet

========  =====================================================================================
side      ``zuora`` or ``local``
object    Zuora object name for catalogue objects on *both* sides; the table name for
          local-only tables (``customers``, ``billing_account_memberships``, ``orders``)
table     local table name; null on the Zuora side
key       Zuora ``Id`` for Zuora rows; the Zuora-id column for local copies of catalogue
          objects; the primary key as text for local-only tables (null when the key itself is
          what is missing)
column    Zuora field name (Zuora side) or local column name (local side)
check     the rule: ``not_null``, ``max_length``, ``enum``, ``unique``, ``parse:<type>``
value     the offending value as text (the raw string for rejects)
severity  ``error`` (the row is excluded) or ``warning``
========  =====================================================================================

One file per object holds both sides, so "what is wrong with Subscription" is one read.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from core.layout import DataLayout
from expectations.results import CheckResult, pct

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "side": pl.String(),
    "object": pl.String(),
    "table": pl.String(),
    "key": pl.String(),
    "column": pl.String(),
    "check": pl.String(),
    "value": pl.String(),
    "severity": pl.String(),
}


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


def quarantine_dir(data_dir: Path | str, run_id: str) -> Path:
    return DataLayout(data_dir).quarantine_dir(run_id)


def write_quarantine(data_dir: Path | str, run_id: str, frame: pl.DataFrame) -> dict[str, int]:
    """Write ``frame`` (QUARANTINE_SCHEMA) as one Parquet file per object, replacing what an
    earlier validation of the same run wrote; returns rows per object."""
    out = quarantine_dir(data_dir, run_id)
    if out.is_dir():
        for old in out.glob("*.parquet"):
            old.unlink()
    counts: dict[str, int] = {}
    if frame.height == 0:
        return counts
    out.mkdir(parents=True, exist_ok=True)
    frame = frame.select(list(QUARANTINE_SCHEMA)).cast(QUARANTINE_SCHEMA)  # type: ignore[arg-type]
    for (obj,), part in frame.partition_by("object", as_dict=True, maintain_order=True).items():
        name = str(obj)
        tmp = out / f".{name}.parquet.tmp"
        part.write_parquet(tmp)
        tmp.replace(out / f"{name}.parquet")  # readers never see a half-written file
        counts[name] = part.height
    return counts


def read_quarantine(data_dir: Path | str, run_id: str) -> pl.DataFrame:
    """Every quarantined row of ``run_id`` (QUARANTINE_SCHEMA; empty when there is none)."""
    files = sorted(quarantine_dir(data_dir, run_id).glob("*.parquet"))
    if not files:
        return empty_quarantine()
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical").cast(
        QUARANTINE_SCHEMA)  # type: ignore[arg-type]


def quarantined_keys(quarantine: pl.DataFrame, side: str, obj: str) -> pl.Series:
    """The distinct keys of ``obj`` quarantined on ``side`` (what the reconciler leaves out
    and reports as quarantined)."""
    return (quarantine.filter((pl.col("side") == side) & (pl.col("object") == obj))
            ["key"].drop_nulls().unique().sort())


def exclude_quarantined(frame: pl.DataFrame, quarantine: pl.DataFrame, side: str, obj: str,
                        key_column: str) -> pl.DataFrame:
    """``frame`` without its quarantined rows (matched on ``key_column`` as text). Rows with
    a NULL key go too when a NULL key was quarantined for this object (a missing key is
    itself a not_null failure, so those rows are the quarantined ones)."""
    mine = quarantine.filter((pl.col("side") == side) & (pl.col("object") == obj))
    if mine.height == 0:
        return frame
    keys = mine["key"].drop_nulls().unique()
    key = pl.col(key_column).cast(pl.String)
    hit = key.is_in(keys.implode()).fill_null(False)
    if mine["key"].null_count():
        hit = hit | key.is_null()
    return frame.filter(~hit)


SHARE_RULE = "max_quarantine_share"


def quarantined_records(quarantine: pl.DataFrame, side: str, obj: str) -> tuple[int, list[str]]:
    """(records of ``obj`` quarantined on ``side``, a sample of their keys). A record whose
    key could not be read (key NULL; the value names where it sits) counts once per place."""
    mine = quarantine.filter((pl.col("side") == side) & (pl.col("object") == obj))
    keys = mine["key"].drop_nulls().unique().sort()
    unkeyed = unreadable_records(mine)
    return keys.len() + unkeyed, keys.head(5).to_list()


def unreadable_records(quarantine: pl.DataFrame) -> int:
    """Records quarantined without a readable key: one per place (``… (at file F record
    N)``) — a record with several bad values is still one record."""
    unkeyed = quarantine.filter(pl.col("key").is_null())["value"]
    if unkeyed.len() == 0:
        return 0
    return unkeyed.str.extract(r"\(at ([^()]*)\)$", 1).fill_null(unkeyed).n_unique()


def share_results(quarantine: pl.DataFrame, rows: dict[str, int], max_share: float,
                  run_id: str) -> list[CheckResult]:
    """One error-severity result per Zuora object: failed when more than ``max_share`` of
    its records are quarantined (``rows``: the records it has, quarantined ones included).
    Within the share the run goes on without them (each is reported ``quarantined``);
    beyond it, the extract itself is suspect: no plan, and the run stops with an alert."""
    out = []
    for obj, total in rows.items():
        n, sample = quarantined_records(quarantine, "zuora", obj)
        if n == 0:
            out.append(CheckResult(run_id, "quarantine", "quarantine", obj, None, SHARE_RULE,
                                   "error", "passed", 0, 0.0, total))
            continue
        share = n / total if total else 1.0
        failed = share > max_share
        msg = (f"{obj}: {n:,} of {total:,} records quarantined ({100 * share:.2f}%; limit "
               f"{100 * max_share:g}%)" + ("" if failed else "; left out and reported as "
                                           "quarantined, the rest goes on"))
        out.append(CheckResult(run_id, "quarantine", "quarantine", obj, None, SHARE_RULE,
                               "error", "failed" if failed else "passed", n, pct(n, total),
                               total, sample, [], msg))
    return out

"""The findings an alert names: what the jobs' drift alert lists, by identifiers only.

A drift alert is for findings nobody has looked at yet: the run's ``new`` findings that are
not acknowledged, and open findings whose acknowledgement lapsed (their values changed or
their date passed: someone said "it may wait" about something that is no longer what they
saw). Acknowledged findings never alert; resolved ones neither.

The alert says *which* things broke, never *how*: object, rule (or likely drift), field,
subscription name, account number, owner. No values, no explanations, no keys (a local
table's key can be an e-mail address), and any e-mail address that slipped into an
identifier is masked. Read from the run's files and recon's state, read-only, set-wise.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

from core.config import Settings
from core.layout import DRIFT_FILE, DataLayout
from core.owners import Owners
from core.state import StateUnreadable, open_read_only
from reconcile.acks import ACK_SCHEMA, ACKNOWLEDGED, LAPSED, ack_states, read_acks
from reconcile.findings import DRIFT_SCHEMA
from reports.collect import run_snapshot
from reports.entities import read_names, with_entities
from reports.model import OPEN, SEVERITY_ORDER, mask_emails

# what an alert may say about a finding, in this order
ALERT_COLUMNS = ("object", "rule", "field", "subscription_name", "account_number", "owner",
                 "why")


def alert_findings(data_dir: Path | str, run_id: str, settings: Settings,
                   today: dt.date | None = None) -> pl.DataFrame:
    """The run's findings that alert (:data:`ALERT_COLUMNS`), worst first: new and not
    acknowledged, or open with a lapsed acknowledgement. Empty when the run has no
    ``drift.parquet``."""
    path = DataLayout(data_dir).run_dir(run_id) / DRIFT_FILE
    if not path.is_file():
        return pl.DataFrame(schema={c: pl.String for c in ALERT_COLUMNS})
    drift = pl.read_parquet(path).select(list(DRIFT_SCHEMA))
    try:
        with open_read_only(data_dir) as con:
            acks = read_acks(con)
    except StateUnreadable:  # an alert without the acks beats no alert
        acks = pl.DataFrame(schema=ACK_SCHEMA)
    f = with_entities(drift, read_names(run_snapshot(Path(data_dir), run_id), drift))
    f = ack_states(f.with_columns(Owners.of(settings).expr()), acks,
                   today or dt.datetime.now(dt.UTC).date())
    sev = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    hit = f.filter(((pl.col("status") == "new") & (pl.col("ack").ne_missing(ACKNOWLEDGED)))
                   | (pl.col("status").is_in(OPEN) & (pl.col("ack") == LAPSED)))
    return (hit.with_columns(
        rule=pl.coalesce("rule", "drift_id"),
        why=pl.when(pl.col("ack") == LAPSED)
        .then(pl.lit("acknowledgement lapsed: ") + pl.col("ack_lapsed")).otherwise(pl.lit("new")),
        _sev=pl.col("severity").replace_strict(sev, default=9, return_dtype=pl.Int32))
        .sort(["_sev", "object", "subscription_name", "account_number", "field"],
              nulls_last=True)
        .select([mask_emails(pl.col(c).cast(pl.String)).alias(c) for c in ALERT_COLUMNS]))


def compact_lines(found: pl.DataFrame, limit: int) -> tuple[list[dict[str, object]], int]:
    """Findings folded into alert lines: one per (subscription, account, object, rule, owner,
    why) with its fields, worst first; the first ``limit`` lines and how many more there are."""
    keys = ["subscription_name", "account_number", "object", "rule", "owner", "why"]
    lines = (found.with_row_index("_i")
             .group_by(keys, maintain_order=True)
             .agg(fields=pl.col("field").drop_nulls().unique(maintain_order=True),
                  findings=pl.len(), _i=pl.col("_i").min())
             .sort("_i").drop("_i"))
    return lines.head(limit).to_dicts(), max(0, lines.height - limit)

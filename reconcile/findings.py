"""What a finding is: the one table every step of the reconciler writes into.

The diff and every rule ``INSERT … BY NAME`` into the temporary table ``findings``; later steps
fill in what a step does not know (action of an orphan, grace-window status, history). The
published contract (docs/pipeline.md "Drift output") is the column list of :data:`DRIFT_SCHEMA`.
"""

from __future__ import annotations

import polars as pl

KINDS = ("missing_in_local", "orphaned_in_local", "field_mismatch", "duplicate_local",
         "rule_violation", "quarantined")
ACTIONS = ("auto", "human")
SEVERITIES = ("critical", "high", "medium", "low")
STATUSES = ("new", "persisting", "pending", "resolved")

# name -> DuckDB type, in output order
COLUMNS: dict[str, str] = {
    "object": "VARCHAR",  # Zuora object name, or a local-only table (orders, customers, …)
    "key": "VARCHAR",  # Zuora Id, or the natural key of a local-only rule
    "kind": "VARCHAR",
    "rule": "VARCHAR",  # D-id of the cross-object rule (rule findings), else NULL
    "field": "VARCHAR",  # Zuora field (field_mismatch) or local column (column-level rules)
    "zuora_value": "VARCHAR",
    "local_value": "VARCHAR",
    "severity": "VARCHAR",
    "action": "VARCHAR",
    "explanation": "VARCHAR",
    "drift_id": "VARCHAR",  # the domain.md §5 drift this most likely is (D01…D25)
    "subscription_name": "VARCHAR",  # for drill-down: the subscription this concerns
    "account_id": "VARCHAR",  # for drill-down: the Zuora account this concerns
    "zuora_updated": "TIMESTAMP",  # Zuora UpdatedDate that decides the grace window (UTC)
    "evidence": "VARCHAR",  # JSON: facts a repair or a person needs (keeper, ids, …)
}

FINDINGS_DDL = ("CREATE OR REPLACE TEMP TABLE findings ("
                + ", ".join(f'"{c}" {t}' for c, t in COLUMNS.items()) + ")")

# What `drift.parquet` and the state table `drift` hold, per run.
DRIFT_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(), "object": pl.String(), "key": pl.String(), "kind": pl.String(),
    "rule": pl.String(), "field": pl.String(), "zuora_value": pl.String(),
    "local_value": pl.String(), "severity": pl.String(), "action": pl.String(),
    "status": pl.String(), "first_seen_run": pl.String(), "explanation": pl.String(),
    "drift_id": pl.String(), "subscription_name": pl.String(), "account_id": pl.String(),
    "zuora_updated": pl.Datetime("us"), "evidence": pl.String(), "fingerprint": pl.String(),
}


def insert(select_sql: str) -> str:
    """SQL adding the rows of ``select_sql`` (any subset of :data:`COLUMNS`, by name)."""
    return f"INSERT INTO findings BY NAME ({select_sql})"


def sql_text(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"

"""The nightly beside the event path (issue 15 point 5): neither clock undoes the other.

The inbox (``core.inbox``) says, per sync object and key, when its latest callout arrived,
whether it was dead-lettered and when a targeted sync last wrote it. Against one snapshot:

* a key a sync wrote **after the snapshot's Zuora as-of time** is ``pending``: the snapshot
  holds an older Zuora value than the local copy, and repairing would write it back;
* a key with a callout **younger than the grace window** (not dead-lettered) is ``pending``:
  its sync is on its way;
* an open finding that a callout would have covered, whose Zuora ``UpdatedDate`` is older
  than the grace window and with **no callout for its key since**, is a *missed callout*;
  one whose key was dead-lettered is an *event-path failure*. Both are still drift (the nightly
  repairs them); they are counted so that the report and ``recon status`` show how well the
  event path keeps up.

Which findings a sync of one key covers is declared once, in ``core.catalog.events``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import polars as pl

from core.catalog.events import SYNC_SCOPES

# What the inbox reader hands the reconciler: one row per (sync object, key) it knows.
ACTIVITY_SCHEMA: dict[str, pl.DataType] = {
    "object": pl.String(),  # the sync object: account | contact | subscription | catalog
    "key": pl.String(),  # account id, contact id, subscription name, "*" for the catalog
    "last_event_at": pl.Datetime("us"),  # UTC, the latest callout received for the key
    "dead": pl.Boolean(),  # the key's latest callout was dead-lettered
    "synced_at": pl.Datetime("us"),  # UTC, the latest sync that finished for the key
    "sync_id": pl.String(),
}


@dataclass(frozen=True)
class EventPathCounts:
    """How the event path did against this snapshot (``summary.json`` ``event_path``)."""

    held_synced: int  # findings pending because a sync wrote their key after the snapshot
    held_in_flight: int  # findings pending because a callout for their key is in flight
    missed_callouts: int  # open findings no callout came for
    missed_keys: tuple[str, ...]  # "object:key" of those, sorted
    failures: int  # open findings whose key's callout was dead-lettered

    def as_dict(self) -> dict[str, object]:
        return {"held_synced": self.held_synced, "held_in_flight": self.held_in_flight,
                "missed_callouts": self.missed_callouts, "missed_keys": list(self.missed_keys),
                "failures": self.failures}


def _finding_keys(source: str, fingerprint: str, columns: str) -> str:
    """Every finding of ``source`` with every (sync object, key) that would cover it (the
    scopes of core.catalog.events), plus ``columns`` of the finding."""
    return " UNION ALL ".join(
        f"SELECT {fingerprint} AS fingerprint, {columns}, '{obj}' AS sync_object, "
        f"CAST({expr} AS VARCHAR) AS sync_key FROM {source} f WHERE ({expr}) IS NOT NULL"
        for obj, expr in SYNC_SCOPES.items())


# The narrowest sync first: a finding several syncs cover is labelled with the most specific
# key (a Contact finding is covered by its contact's sync and its account's; a missed callout
# for it is the contact's, not the account's).
NARROWEST_FIRST = ("contact", "subscription", "account", "catalog")


def _rank(column: str) -> str:
    """SQL: a one-character rank of the sync object in ``column`` (narrowest '0')."""
    whens = " ".join(f"WHEN '{o}' THEN '{i}'" for i, o in enumerate(NARROWEST_FIRST))
    return f"(CASE {column} {whens} ELSE '9' END)"


def register_activity(con: duckdb.DuckDBPyConnection, activity: pl.DataFrame) -> None:
    """Load the inbox's per-key activity into ``con`` as the table ``activity``."""
    frame = activity.select([pl.col(c).cast(t) if c in activity.columns
                             else pl.lit(None, t).alias(c) for c, t in ACTIVITY_SCHEMA.items()])
    con.register("_activity", frame.to_arrow())
    con.execute("CREATE OR REPLACE TEMP TABLE activity AS SELECT * FROM _activity")
    con.unregister("_activity")


def hold(con: duckdb.DuckDBPyConnection, fingerprint: str, as_of: dt.datetime,
         grace_start: dt.datetime) -> None:
    """Create the temp table ``held (fingerprint, reason)``: findings that are ``pending``
    because of the event path (``reconcile.history`` reads it). Needs ``activity``."""
    # ``synced`` sorts before ``in_flight``: a finding held for both is held by the sync
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE held AS
        SELECT fingerprint, arg_min(reason, why) AS reason, min(why) AS why FROM (
          SELECT k.fingerprint,
                 CASE WHEN a.synced_at > ? THEN 'a_synced' ELSE 'b_in_flight' END AS why,
                 CASE WHEN a.synced_at > ? THEN
                           'synced by ' || a.sync_id || ' after this snapshot'
                      ELSE 'a callout for ' || k.sync_object || ' ' || k.sync_key ||
                           ' is in flight' END AS reason
          FROM ({_finding_keys("findings", fingerprint, "f.zuora_updated")}) k
          JOIN activity a ON a.object = k.sync_object AND a.key = k.sync_key
          WHERE a.synced_at > ? OR (a.last_event_at >= ? AND NOT coalesce(a.dead, false)))
        GROUP BY fingerprint""", [as_of, as_of, as_of, grace_start])


def no_holds(con: duckdb.DuckDBPyConnection) -> None:
    """An empty ``held`` table: no event path (no inbox)."""
    con.execute("CREATE OR REPLACE TEMP TABLE held (fingerprint VARCHAR, reason VARCHAR, "
                "why VARCHAR)")


def count(con: duckdb.DuckDBPyConnection, drift: pl.DataFrame,
          grace_start: dt.datetime) -> EventPathCounts:
    """The event path's figures for this run's ``drift`` rows (statuses set)."""
    con.register("_drift", drift.to_arrow())
    try:
        keys = _finding_keys("_drift", "f.fingerprint", "f.status, f.zuora_updated")
        row = con.execute(f"""
            WITH k AS ({keys}),
            judged AS (
              SELECT k.fingerprint, k.status, k.sync_object, k.sync_key,
                     bool_or(coalesce(a.dead, false)) AS dead,
                     bool_or(a.last_event_at >= k.zuora_updated) AS told,
                     min(k.zuora_updated) AS updated
              FROM k LEFT JOIN activity a ON a.object = k.sync_object AND a.key = k.sync_key
              GROUP BY ALL),
            per_finding AS (
              SELECT fingerprint, any_value(status) AS status, bool_or(dead) AS dead,
                     bool_or(coalesce(told, false)) AS told, min(updated) AS updated,
                     substr(min({_rank('sync_object')} || sync_object || ':' || sync_key),
                            2) AS label
              FROM judged GROUP BY fingerprint)
            SELECT
              (SELECT count(*) FROM held h JOIN _drift d USING (fingerprint)
                 WHERE d.status = 'pending' AND h.why = 'a_synced'),
              (SELECT count(*) FROM held h JOIN _drift d USING (fingerprint)
                 WHERE d.status = 'pending' AND h.why = 'b_in_flight'),
              count(*) FILTER (WHERE status IN ('new', 'persisting') AND NOT dead AND NOT told
                               AND updated < ?),
              list(DISTINCT label ORDER BY label) FILTER (
                  WHERE status IN ('new', 'persisting') AND NOT dead AND NOT told
                  AND updated < ?),
              count(*) FILTER (WHERE status IN ('new', 'persisting') AND dead)
            FROM per_finding""", [grace_start, grace_start]).fetchall()[0]
    finally:
        con.unregister("_drift")
    return EventPathCounts(int(row[0] or 0), int(row[1] or 0), int(row[2] or 0),
                           tuple(row[3] or ()), int(row[4] or 0))

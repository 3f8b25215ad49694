"""Acknowledged findings: a person says "I know, leave it" (``recon findings ack``).

An ack is stored in recon's state (table ``finding_acks``, declared with migration 2 in
:mod:`core.state`) with who (the OS user), when, the note and the values the person saw. It
holds only while nothing it was about changed; it *lapses* when

* the finding resolves (its status in a run is ``resolved``), or resolved and came back (its
  ``first_seen_run`` is no longer the one the ack saw: a new occurrence is new again);
* its values change (Zuora's or the local value differ from what the ack saw);
* its date passes (``--until DATE``: valid through that day, UTC).

:func:`ack_states` evaluates that set-wise against one run's findings (a join, no loop per
finding). An acknowledged finding stays in the report, under "acknowledged", and does not
alert; a lapsed one alerts again. An ack never changes what repair does: the planner reads
``drift.parquet`` and never this table.
"""

from __future__ import annotations

import datetime as dt
import getpass
import socket
from collections.abc import Sequence

import duckdb
import polars as pl

from core.errors import ReconError
from core.state import StateDB, table_names

ACKNOWLEDGED, LAPSED = "acknowledged", "lapsed"
# why an ack no longer holds, in the order they are checked
RESOLVED, CAME_BACK, VALUES_CHANGED, EXPIRED = ("resolved", "resolved and came back",
                                                "values changed", "date passed")
ACK_SCHEMA: dict[str, pl.DataType] = {
    "fingerprint": pl.String(), "object": pl.String(), "key": pl.String(),
    "kind": pl.String(), "rule": pl.String(), "field": pl.String(),
    "zuora_value": pl.String(), "local_value": pl.String(), "first_seen_run": pl.String(),
    "run_id": pl.String(), "note": pl.String(), "acked_by": pl.String(),
    "host": pl.String(), "acked_at": pl.Datetime("us"), "until": pl.Date(),
}
# what :func:`ack_states` adds to a findings frame
STATE_COLUMNS = ("ack", "ack_lapsed", "ack_note", "ack_by", "ack_at", "ack_until")
MIN_PREFIX = 8  # shortest fingerprint prefix accepted on the command line


class AckError(ReconError):
    """An ack or unack could not be done as asked (no such finding, ambiguous prefix, …)."""


def read_acks(con: duckdb.DuckDBPyConnection | None) -> pl.DataFrame:
    """Every stored ack (:data:`ACK_SCHEMA`); empty when there is no state or no table yet
    (a read-only connection to an older file: the report never migrates)."""
    if con is None or "finding_acks" not in table_names(con):
        return pl.DataFrame(schema=ACK_SCHEMA)
    cols = ", ".join(f'"{c}"' for c in ACK_SCHEMA)
    return con.sql(f"SELECT {cols} FROM finding_acks ORDER BY acked_at").pl().cast(
        ACK_SCHEMA)  # type: ignore[arg-type]


def ack_states(findings: pl.DataFrame, acks: pl.DataFrame, today: dt.date) -> pl.DataFrame:
    """``findings`` (drift rows with ``fingerprint``, ``status``, values, ``first_seen_run``)
    with :data:`STATE_COLUMNS`: ``ack`` = ``acknowledged`` | ``lapsed`` | null, why it lapsed,
    and the ack's note, author, time (UTC text) and date."""
    a = acks.select(
        "fingerprint", pl.col("zuora_value").alias("_az"), pl.col("local_value").alias("_al"),
        pl.col("first_seen_run").alias("_afs"), pl.col("note").alias("ack_note"),
        pl.col("acked_by").alias("ack_by"),
        pl.col("acked_at").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("ack_at"),
        pl.col("until").alias("_until"))
    out = findings.join(a, on="fingerprint", how="left", coalesce=True)
    has = pl.col("ack_at").is_not_null()
    lapsed = (pl.when(~has).then(None)
              .when(pl.col("status") == "resolved").then(pl.lit(RESOLVED))
              .when(pl.col("first_seen_run") != pl.col("_afs")).then(pl.lit(CAME_BACK))
              .when(pl.col("zuora_value").ne_missing(pl.col("_az"))
                    | pl.col("local_value").ne_missing(pl.col("_al"))).then(pl.lit(VALUES_CHANGED))
              .when(pl.col("_until").is_not_null() & (pl.col("_until") < today))
              .then(pl.lit(EXPIRED)).otherwise(None))
    return out.with_columns(
        ack_lapsed=lapsed,
        ack_until=pl.col("_until").dt.strftime("%Y-%m-%d"),
    ).with_columns(
        ack=pl.when(~has).then(None).when(pl.col("ack_lapsed").is_null())
        .then(pl.lit(ACKNOWLEDGED)).otherwise(pl.lit(LAPSED)),
    ).drop("_az", "_al", "_afs", "_until")


# -- choosing what to acknowledge --------------------------------------------------------------
def _latest_rows(con: duckdb.DuckDBPyConnection, where: str, params: list[object],
                 run: str | None) -> pl.DataFrame:
    """Each matching finding's row in its latest run (or in ``run``) of the state's history."""
    if "drift" not in table_names(con):
        raise AckError("no reconciled run in recon's state yet: run `recon run nightly` (or "
                       "`recon reconcile`) first")
    run_sql = "AND run_id = ?" if run else ""
    return con.sql(
        f"SELECT * FROM drift WHERE ({where}) {run_sql} "
        "QUALIFY row_number() OVER (PARTITION BY fingerprint ORDER BY run_id DESC) = 1",
        params=[*params, *([run] if run else [])]).pl()


def select_findings(con: duckdb.DuckDBPyConnection, fingerprints: Sequence[str] = (), *,
                    rule: str | None = None, key: str | None = None,
                    run: str | None = None) -> pl.DataFrame:
    """The findings an ack or unack names, each as its row in the latest run that has it (or
    in ``run``): by fingerprint (a unique prefix of at least :data:`MIN_PREFIX` characters), or
    by ``rule`` (rule or likely drift) and ``key`` (the finding's key or its subscription
    name). Raises :class:`AckError` naming what matched nothing or too much."""
    if fingerprints and (rule or key):
        raise AckError("give fingerprints, or --rule and --key, not both")
    if fingerprints:
        frames = []
        for fp in dict.fromkeys(f.strip().lower() for f in fingerprints):
            if len(fp) < MIN_PREFIX:
                raise AckError(f"fingerprint {fp!r} is too short: give at least {MIN_PREFIX} "
                               "characters (the report's detail view and `recon findings` "
                               "show them)")
            rows = _latest_rows(con, "starts_with(fingerprint, ?)", [fp], run)
            if rows.height == 0:
                raise AckError(f"no finding {fp}" + (f" in run {run}" if run else "")
                               + ": check the fingerprint in the report's detail view")
            if rows["fingerprint"].n_unique() > 1:
                raise AckError(f"fingerprint prefix {fp} matches {rows.height} findings: give "
                               "more characters")
            frames.append(rows)
        return pl.concat(frames, how="vertical_relaxed")
    if not (rule and key):
        raise AckError("name the findings: FINGERPRINT…, or --rule R --key K (K: the key or "
                       "the subscription name)")
    rows = _latest_rows(con, "(rule = ? OR (rule IS NULL AND drift_id = ?)) AND "
                        "(key = ? OR subscription_name = ?)", [rule, rule, key, key], run)
    if rows.height == 0:
        raise AckError(f"no finding of rule {rule} for {key}" + (f" in run {run}" if run else "")
                       + ": --rule takes a D-id (the finding's rule or likely drift), --key the "
                       "finding's key or subscription name")
    return rows


def add_acks(st: StateDB, rows: pl.DataFrame, note: str, *, until: dt.date | None = None,
             now: dt.datetime | None = None) -> pl.DataFrame:
    """Acknowledge ``rows`` (from :func:`select_findings`), replacing an earlier ack of the
    same finding; returns the stored acks. A resolved finding cannot be acknowledged."""
    if not note.strip():
        raise AckError("--note is required: say why this finding may wait")
    done = rows.filter(pl.col("status") == "resolved")
    if done.height:
        raise AckError(f"finding {done['fingerprint'][0]} ({done['object'][0]} "
                       f"{done['key'][0]}) is resolved in run {done['run_id'][0]}: nothing to "
                       "acknowledge")
    stamp = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(tzinfo=None)
    today = stamp.date()
    if until is not None and until < today:
        raise AckError(f"--until {until} is in the past (today is {today} UTC)")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        user = None
    acks = rows.select(
        "fingerprint", "object", "key", "kind",
        pl.coalesce("rule", "drift_id").alias("rule"), "field", "zuora_value", "local_value",
        "first_seen_run", "run_id",
    ).with_columns(note=pl.lit(note.strip()), acked_by=pl.lit(user, pl.String),
                   host=pl.lit(socket.gethostname()), acked_at=pl.lit(stamp),
                   until=pl.lit(until, pl.Date)).cast(ACK_SCHEMA)  # type: ignore[arg-type]
    with st.transaction() as con:
        con.register("_acks", acks.to_arrow())
        try:
            con.execute("DELETE FROM finding_acks WHERE fingerprint IN "
                        "(SELECT fingerprint FROM _acks)")
            con.execute("INSERT INTO finding_acks BY NAME SELECT * FROM _acks")
        finally:
            con.unregister("_acks")
    return acks


def remove_acks(st: StateDB, fingerprints: Sequence[str] = (), *, rule: str | None = None,
                key: str | None = None) -> pl.DataFrame:
    """Remove acks, by fingerprint (or unique prefix) or by ``rule`` and ``key``; returns the
    removed rows. An ack that does not exist is an :class:`AckError` naming it."""
    acks = read_acks(st.con)
    if fingerprints:
        chosen = []
        for fp in dict.fromkeys(f.strip().lower() for f in fingerprints):
            hit = acks.filter(pl.col("fingerprint").str.starts_with(fp))
            if len(fp) < MIN_PREFIX or hit.height != 1:
                raise AckError(f"no single ack for fingerprint {fp!r} ({hit.height} match): "
                               "the report's \"acknowledged\" list shows them")
            chosen.append(hit)
        gone = pl.concat(chosen)
    elif rule and key:
        subs = _latest_rows(st.con, "subscription_name = ?", [key], None) \
            if "drift" in table_names(st.con) else pl.DataFrame({"fingerprint": []},
                                                                 schema={"fingerprint": pl.String})
        gone = acks.filter((pl.col("rule") == rule) & (
            (pl.col("key") == key) | pl.col("fingerprint").is_in(subs["fingerprint"].to_list())))
        if gone.height == 0:
            raise AckError(f"no ack of rule {rule} for {key}")
    else:
        raise AckError("name the acks: FINGERPRINT…, or --rule R --key K")
    with st.transaction() as con:
        con.register("_gone", gone.select("fingerprint").to_arrow())
        try:
            con.execute("DELETE FROM finding_acks WHERE fingerprint IN "
                        "(SELECT fingerprint FROM _gone)")
        finally:
            con.unregister("_gone")
    return gone

"""One check-result record for every kind of check (pandera contracts, GX business rules,
volume sanity, extract rejects), stored in recon's state for the report.

Contracts, GX suites and the volume check report in very different shapes (a pandera
``failure_cases`` frame, a GX ``ExpectationSuiteValidationResult``, two row counts). The report
and ``recon validate`` want one table: *which object and column, which rule, how bad, show me
some keys*. Everything is normalised into :class:`CheckResult` here, once.

``outcome`` separates bad data from broken checks: ``failed`` means the data breaks the rule;
``error`` means the check itself could not run (a GX expectation that raised, a view whose SQL
failed), which is exit code 2, never mistaken for drift.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from core.state import StateDB, StateError, register_table, state_path, table_names

SOURCES = ("pandera", "gx", "volume", "extract", "quarantine")
SEVERITIES = ("error", "warning")
OUTCOMES = ("passed", "failed", "error")
SAMPLE_SIZE = 5  # keys and values kept per result: enough to look one up, bounded for the report

RESULT_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "source": pl.String(),  # pandera | gx | volume | extract
    "suite": pl.String(),  # contract model, GX suite file, "volume" or "rejects"
    "object": pl.String(),  # Zuora object name, or local table name for local-side checks
    "column": pl.String(),
    "rule": pl.String(),
    "severity": pl.String(),  # error | warning
    "outcome": pl.String(),  # passed | failed | error
    "failing_count": pl.Int64(),
    "failing_pct": pl.Float64(),
    "total_count": pl.Int64(),
    "sample_keys": pl.List(pl.String()),
    "sample_values": pl.List(pl.String()),
    "message": pl.String(),
    "checked_at": pl.Datetime("us"),
}

register_table("check_results", """
CREATE TABLE IF NOT EXISTS check_results (
  run_id         VARCHAR NOT NULL,   -- the snapshot's run id (or the validate run's)
  source         VARCHAR NOT NULL,   -- pandera | gx | volume | extract
  suite          VARCHAR,            -- contract model / GX suite / volume / rejects
  object         VARCHAR,            -- Zuora object, or local table for local-side checks
  "column"       VARCHAR,
  rule           VARCHAR NOT NULL,
  severity       VARCHAR NOT NULL,   -- error | warning
  outcome        VARCHAR NOT NULL,   -- passed | failed | error
  failing_count  BIGINT,
  failing_pct    DOUBLE,
  total_count    BIGINT,
  sample_keys    VARCHAR[],
  sample_values  VARCHAR[],
  message        VARCHAR,
  checked_at     TIMESTAMP NOT NULL  -- UTC, naive
)""")


def utc_now() -> dt.datetime:
    """Naive UTC (recon's convention for stored timestamps)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass
class CheckResult:
    """One rule checked on one object/column in one run."""

    run_id: str
    source: str
    suite: str | None
    object: str | None
    column: str | None
    rule: str
    severity: str = "error"
    outcome: str = "passed"
    failing_count: int | None = 0
    failing_pct: float | None = 0.0
    total_count: int | None = None
    sample_keys: list[str | None] = field(default_factory=list)
    sample_values: list[str | None] = field(default_factory=list)
    message: str | None = None
    checked_at: dt.datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        # A typo here would silently drop a failure from the exit code; fail loudly instead.
        if self.source not in SOURCES:
            raise ValueError(f"check result source {self.source!r} not in {SOURCES}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"check result severity {self.severity!r} not in {SEVERITIES}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"check result outcome {self.outcome!r} not in {OUTCOMES}")
        # NULL stays NULL (not the text "None"): a missing value is the finding itself.
        self.sample_keys = [None if k is None else str(k) for k in self.sample_keys[:SAMPLE_SIZE]]
        self.sample_values = [None if v is None else str(v)
                              for v in self.sample_values[:SAMPLE_SIZE]]


def pct(failing: int | None, total: int | None) -> float | None:
    if failing is None or not total:
        return None if failing is None else 0.0
    return round(100.0 * failing / total, 6)


def results_frame(results: Iterable[CheckResult]) -> pl.DataFrame:
    rows = [asdict(r) for r in results]
    if not rows:
        return pl.DataFrame(schema=RESULT_SCHEMA)
    return pl.DataFrame(rows, schema=RESULT_SCHEMA)


def store_results(data_dir: Path | str, run_id: str, frame: pl.DataFrame) -> None:
    """Replace the stored results of ``run_id`` with ``frame`` (validating a run again must
    not double its findings), in one transaction."""
    frame = frame.select(list(RESULT_SCHEMA)).cast(RESULT_SCHEMA)  # type: ignore[arg-type]
    with StateDB(data_dir) as st, st.transaction() as con:
        con.execute("DELETE FROM check_results WHERE run_id = ?", [run_id])
        if frame.height:
            con.register("_recon_check_results", frame.to_arrow())
            try:
                con.execute("INSERT INTO check_results SELECT * FROM _recon_check_results")
            finally:
                con.unregister("_recon_check_results")


def read_results(data_dir: Path | str, run_id: str | None = None) -> pl.DataFrame:
    """Stored check results (of one run, or all), in RESULT_SCHEMA."""
    with StateDB(data_dir) as st:
        where = "WHERE run_id = $run_id" if run_id else ""
        rel = st.con.sql(f"SELECT * FROM check_results {where} ORDER BY checked_at",
                         params={"run_id": run_id} if run_id else None)
        out = rel.pl()
    if out.height == 0:
        return pl.DataFrame(schema=RESULT_SCHEMA)
    return out.cast(RESULT_SCHEMA)  # type: ignore[arg-type]


class ResultsUnreadable(StateError):
    """Recon's state exists but its check results cannot be read now (typically another
    recon process holds the file's write lock); ``path`` names the file."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class RunValidation:
    """A run's validation as recon's state records it: the verdict later floors act on.

    Read here, by the package that writes ``check_results``, so the planner (which stamps the
    verdict into a plan) and the repair guards (which refuse to apply a failed run) agree on
    what "failed" means without restating the table's SQL."""

    run_id: str
    checks: int  # stored results of the run, any severity and outcome
    failures: tuple[CheckResult, ...]  # failed/errored error-severity ones, by source/object/rule

    @property
    def verdict(self) -> str:
        """``failed`` (an error-severity check failed or errored), ``passed`` (checks were
        recorded, none failing), or ``not_run`` (nothing recorded for the run)."""
        return "failed" if self.failures else ("passed" if self.checks else "not_run")


def read_validation(data_dir: Path | str, run_id: str) -> RunValidation:
    """The recorded validation of ``run_id``, read-only: a missing state file or table means
    "not run" and is never created (planning and dry runs write nothing). Raises
    :class:`ResultsUnreadable` when the state cannot be opened (another writer holds it)."""
    path = state_path(data_dir)
    if not path.is_file():
        return RunValidation(run_id, 0, ())
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as e:
        raise ResultsUnreadable(f"cannot read recon's state {path}: {e}", path) from e
    try:
        exists = con.execute("SELECT count(*) FROM information_schema.tables "
                             "WHERE table_name = 'check_results'").fetchall()[0][0]
        if not exists:
            return RunValidation(run_id, 0, ())
        total = con.execute("SELECT count(*) FROM check_results WHERE run_id = ?",
                            [run_id]).fetchall()[0][0]
        cols = ", ".join(f'"{c}"' for c in RESULT_SCHEMA)
        cur = con.execute(
            f"SELECT {cols} FROM check_results WHERE run_id = ? AND outcome IN "
            "('failed', 'error') AND severity = 'error' ORDER BY source, object, rule",
            [run_id])
        rows = cur.fetchall()
    finally:
        con.close()
    failures = []
    for r in rows:
        rec = dict(zip(RESULT_SCHEMA, r, strict=True))
        rec["sample_keys"], rec["sample_values"] = (list(rec["sample_keys"] or []),
                                                    list(rec["sample_values"] or []))
        failures.append(CheckResult(**rec))
    return RunValidation(run_id, int(total), tuple(failures))
def results_of(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame | None:
    """The stored check results of ``run_id`` as written (oldest check first), read on a
    read-only state connection (:func:`core.state.open_read_only`); None when the state has
    no results table yet. The report reads the results through this, never with SQL."""
    if "check_results" not in table_names(con):
        return None
    return con.sql("SELECT * FROM check_results WHERE run_id = $r ORDER BY checked_at",
                   params={"r": run_id}).pl()

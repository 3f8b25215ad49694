"""The data directory's layout, declared once.

Every stage writes under ``DATA`` (``Settings.data_dir``), and the stages above read what the
ones below wrote; so the directory and file names are a contract between floors. They used to
be restated where each was needed (``RUNS = "runs"`` three times, ``run_dir`` twice, the lock
and crash directories spelled inline), so renaming one meant finding every copy. They live
here now, and every floor asks :class:`DataLayout` for a path::

    DATA/state.duckdb                       recon's own state (core.state)
    DATA/snapshots/<run_id>/                a complete snapshot (core.snapshot)
    DATA/snapshots/<run_id>.failed/         a failed one, kept for diagnosis
    DATA/snapshots/.tmp-<run_id>/           one being written
    DATA/snapshots/.lock                    the extract lock (one extract per data directory)
    DATA/runs/<run_id>/                     one run's outputs: drift.parquet, object_stats.parquet,
                                            field_stats.parquet, summary.json, quarantine/,
                                            repair-plan.json, repair-plan.ops/ (its chunks),
                                            repair-plan.txt, report.html,
                                            report.json
    DATA/backfills/<backfill_id>/           a backfill's plan: plan.json, plan.ops/chunk-*.parquet
    DATA/locks/<job>.lock                   one run per job at a time (jobs, DuckDB setups)
    DATA/crash/                             crash logs of unexpected errors
    DATA/demo/                              the demo's sandbox tenant

``<run_id>`` is a job attempt's id (``<run>`` for attempt 1, ``<run>.a<N>`` for a retry:
:func:`core.ledger.attempt_id`) or the id of a snapshot extracted by hand; the snapshot and the
run directory of one attempt share it.

The file names inside a run directory are constants here too, so the writer (reconcile,
repair, reports) and every reader agree by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_FILE = "state.duckdb"
SNAPSHOTS = "snapshots"
RUNS = "runs"
BACKFILLS = "backfills"
LOCKS = "locks"
CRASH = "crash"
DEMO = "demo"

# Inside DATA/snapshots/
MANIFEST = "manifest.json"
TMP_PREFIX = ".tmp-"
FAILED_SUFFIX = ".failed"
EXTRACT_LOCK = ".lock"

# Inside DATA/runs/<run_id>/
DRIFT_FILE = "drift.parquet"
OBJECT_STATS_FILE = "object_stats.parquet"
FIELD_STATS_FILE = "field_stats.parquet"
SUMMARY_FILE = "summary.json"
QUARANTINE = "quarantine"
PLAN_FILE = "repair-plan.json"
PLAN_SUMMARY_FILE = "repair-plan.txt"
REPORT_HTML = "report.html"
REPORT_JSON = "report.json"


@dataclass(frozen=True)
class DataLayout:
    """Paths under one data directory. Pure: nothing is created or checked here (the writer
    that needs a directory makes it), so building a layout is free and never fails."""

    root: Path

    def __init__(self, data_dir: Path | str) -> None:
        object.__setattr__(self, "root", Path(data_dir))

    # -- recon's state ---------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.root / STATE_FILE

    # -- snapshots -------------------------------------------------------------------------
    @property
    def snapshots(self) -> Path:
        return self.root / SNAPSHOTS

    def snapshot_dir(self, run_id: str) -> Path:
        """Where the complete snapshot of ``run_id`` lives."""
        return self.snapshots / run_id

    def failed_snapshot_dir(self, run_id: str) -> Path:
        return self.snapshots / f"{run_id}{FAILED_SUFFIX}"

    def tmp_snapshot_dir(self, run_id: str) -> Path:
        """Where ``run_id`` writes its snapshot before it is complete."""
        return self.snapshots / f"{TMP_PREFIX}{run_id}"

    @property
    def extract_lock(self) -> Path:
        return self.snapshots / EXTRACT_LOCK

    # -- runs ------------------------------------------------------------------------------
    @property
    def runs(self) -> Path:
        return self.root / RUNS

    def run_dir(self, run_id: str) -> Path:
        return self.runs / run_id

    def quarantine_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / QUARANTINE

    def plan_file(self, run_id: str) -> Path:
        return self.run_dir(run_id) / PLAN_FILE

    def report_html(self, run_id: str) -> Path:
        return self.run_dir(run_id) / REPORT_HTML

    # -- backfills -------------------------------------------------------------------------
    def backfill_dir(self, backfill_id: str) -> Path:
        """``DATA/backfills/<id>``: a backfill's plan (JSON summary and chunk files) and its
        working copy of the snapshot sorted by chunk."""
        return self.root / BACKFILLS / backfill_id

    # -- locks, crash logs, demo -----------------------------------------------------------
    @property
    def locks(self) -> Path:
        return self.root / LOCKS

    def job_lock(self, job: str) -> Path:
        return self.locks / f"{job}.lock"

    @property
    def crash(self) -> Path:
        return self.root / CRASH

    @property
    def demo(self) -> Path:
        return self.root / DEMO


def run_dir(data_dir: Path | str, run_id: str) -> Path:
    """``DATA/runs/<run_id>``: shorthand for ``DataLayout(data_dir).run_dir(run_id)``."""
    return DataLayout(data_dir).run_dir(run_id)

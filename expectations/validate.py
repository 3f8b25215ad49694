"""Validate one extract before anything compares or repairs it.

Order, and why:

1. **Shape** (pandera, every frame, Parquet footers only for snapshots): a missing or extra
   column or a wrong type stops the run with :class:`ContractError`: nothing downstream can
   read such an extract correctly. All shape failures are collected first, so one run names
   all of them.
2. **Rows** (the same contracts' row rules, compiled): bad rows and the extractor's rejects go
   to ``DATA/runs/<run_id>/quarantine/``; the run goes on without them. A duplicated Zuora
   ``Id`` stops the run (:class:`ContractError`): which copy is Zuora's is unknowable.
3. **Volume** against the previous complete snapshot: a Zuora object that lost more than
   ``validate.max_volume_drop`` of its rows stops the run (:class:`VolumeError`) after every
   result has been recorded (so the report shows what else was wrong). Likewise a Zuora
   object with more than ``validate.max_quarantine_share`` of its records quarantined
   (:class:`QuarantineError`): a few bad records are set aside, many mean a broken extract.
4. **Business rules** (GX suites on derived views), on the whole extract, quarantined rows
   included (a rule is about the data set; a quarantined row's other columns are still data).

Every result is stored in recon's state (``check_results``) before anything is raised.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from core.config import Settings
from core.errors import ReconError
from core.layout import SNAPSHOTS
from core.snapshot import Snapshot, new_run_id, open_snapshot
from expectations import contracts as ct
from expectations import sources
from expectations.errors import ContractError, QuarantineError, VolumeError
from expectations.quarantine import (
    empty_quarantine,
    quarantine_dir,
    share_results,
    unreadable_records,
    write_quarantine,
)
from expectations.results import CheckResult, results_frame, store_results
from expectations.volume import (
    blocking_drops,
    catalog_floors,
    previous_complete,
    volume_results,
)

MAX_LISTED = 20  # failures named in one error message; the rest are in the results


@dataclass
class ValidationResult:
    """What one validation found. ``failed``: some check failed (``recon validate`` exits 1);
    ``errors``: some check could not run (exit 2). Failures do not stop a pipeline run by
    themselves (quarantined rows are left out, rule failures are reported); the ones that
    must stop it are raised as :class:`ContractError` / :class:`VolumeError`."""

    run_id: str
    path: Path
    kind: str  # snapshot | dataset
    data_dir: Path
    results: pl.DataFrame  # expectations.results.RESULT_SCHEMA
    quarantined: int = 0  # quarantine rows written (one per row, column and check)
    quarantine_counts: dict[str, int] = field(default_factory=dict)  # per object
    previous_run_id: str | None = None  # the snapshot the volume check compared with
    timings: dict[str, float] = field(default_factory=dict)
    fatal: str | None = None  # the message of the error that stopped the run, if any

    @property
    def failed(self) -> bool:
        return bool(self.results.height) and (self.results["outcome"] == "failed").any()

    @property
    def errors(self) -> bool:
        return bool(self.results.height) and (self.results["outcome"] == "error").any()

    @property
    def blocking(self) -> bool:
        """An error-severity failure: Zuora-side rule, quarantine, shape, volume."""
        r = self.results
        return bool(r.height) and ((r["outcome"] == "failed") & (r["severity"] == "error")).any()

    @property
    def exit_code(self) -> int:
        return 2 if self.errors else 1 if (self.failed or self.fatal) else 0

    @property
    def quarantine_dir(self) -> Path:
        return quarantine_dir(self.data_dir, self.run_id)


def validate_snapshot(snapshot: Snapshot, data_dir: Path | str, *, settings: Settings,
                      run_id: str | None = None, gx: bool = True,
                      suites_dir: Path | str | None = None) -> ValidationResult:
    """Validate a snapshot (see module docstring). ``run_id`` defaults to the snapshot's;
    quarantine and results are written under ``data_dir``, and the volume check compares
    with the newest complete snapshot in ``data_dir`` older than this one."""
    run_id = run_id or snapshot.run_id
    src = sources.SnapshotSource(snapshot)
    return _validate(src, Path(data_dir), settings, run_id, gx, suites_dir,
                     compare_from=snapshot.run_id)


def validate_path(path: Path | str, settings: Settings, *, run_id: str | None = None,
                  gx: bool = True, data_dir: Path | str | None = None,
                  suites_dir: Path | str | None = None) -> ValidationResult:
    """``recon validate PATH``: a snapshot directory (has ``manifest.json``) or a dataset
    directory (has ``zuora/``). A snapshot's results go to the data directory it lives in
    (``DATA/snapshots/<run_id>``), anything else to ``settings.data_dir``."""
    p = Path(path)
    if not p.is_dir():
        raise ReconError(f"{p} is not a directory: expected a snapshot or a dataset directory")
    if sources.is_snapshot(p):
        snap = open_snapshot(p)
        if data_dir is None:
            data_dir = p.parent.parent if p.parent.name == SNAPSHOTS else settings.data_dir
        return validate_snapshot(snap, data_dir, settings=settings, run_id=run_id, gx=gx,
                                 suites_dir=suites_dir)
    if not (p / "zuora").is_dir():
        raise ReconError(f"{p} is neither a snapshot (no manifest.json) nor a dataset "
                         "(no zuora/ directory)")
    src = sources.DatasetSource(p, settings.tenant_tz)
    return _validate(src, Path(data_dir or settings.data_dir), settings,
                     run_id or new_run_id(), gx, suites_dir, compare_from=None)


def _validate(src: sources.Source, data_dir: Path, settings: Settings, run_id: str, gx: bool,
              suites_dir: Path | str | None, compare_from: str | None) -> ValidationResult:
    t0 = time.perf_counter()
    out = ValidationResult(run_id, Path(src.path), src.kind, data_dir,
                           results_frame([]))
    results: list[CheckResult] = []

    # 1. shape ------------------------------------------------------------------------------
    shape_errors: list[str] = []
    scope = getattr(src, "scope", "all")
    for side, name in sources.names(scope):
        c = ct.contract(side, name)
        failures = ct.shape_failures(c, src.schema(side, name))
        results += ct.shape_results(c, failures, run_id)
        shape_errors += [f.describe(c.label) for f in failures]
    out.timings["shape_s"] = time.perf_counter() - t0
    if shape_errors:
        out.fatal = _listing("the extract does not match its contract", shape_errors)
        _finish(out, results, data_dir, t0)
        raise ContractError(out.fatal, out)

    # 2. rows -------------------------------------------------------------------------------
    t = time.perf_counter()
    quarantine: list[pl.DataFrame] = []
    fatal: list[str] = []
    load = 0.0
    for side, name in sources.names(scope):
        row, load_s = contract_rows(src, side, name, run_id)
        load += load_s
        results += row.results
        fatal += row.fatal
        if row.quarantine.height:
            quarantine.append(row.quarantine)
    q = pl.concat(quarantine, how="vertical") if quarantine else empty_quarantine()
    out.quarantine_counts = write_quarantine(data_dir, run_id, q)
    out.quarantined = q.height
    out.timings["contracts_s"] = time.perf_counter() - t
    out.timings["contracts_load_s"] = load
    if fatal:
        out.fatal = _listing("duplicated Zuora keys (the run stops)", fatal)
        _finish(out, results, data_dir, t0)
        raise ContractError(out.fatal, out)
    shares = share_results(q, _zuora_records(src, scope, q),
                           settings.validate_max_quarantine_share, run_id)
    results += shares
    too_many = [r for r in shares if r.outcome == "failed"]

    # 3. volume -----------------------------------------------------------------------------
    t = time.perf_counter()
    drops: list[CheckResult] = []
    if compare_from is not None:
        prev = previous_complete(data_dir, compare_from, scope)
        if prev is not None:
            out.previous_run_id = prev.run_id
            vol = volume_results(src.row_counts(), sources.snapshot_row_counts(prev),
                                 prev.run_id, settings.validate_max_volume_drop, run_id,
                                 catalog_floors(settings.sync_catalog_min_rows))
            results += vol
            drops = blocking_drops(vol)
    out.timings["volume_s"] = time.perf_counter() - t

    # 4. business rules ---------------------------------------------------------------------
    if gx and scope == "all":  # the suites span accounts, orders and subscriptions
        t = time.perf_counter()
        from expectations import rules

        suites = rules.load_suites(suites_dir or rules.SUITES_DIR, run_id)
        con = duckdb.connect()
        try:
            src.register(con)
            results += rules.run_suites(con, run_id, suites)
        finally:
            con.close()
        out.timings["gx_s"] = time.perf_counter() - t

    fatal_parts = []
    if drops:
        fatal_parts.append(_listing(
            f"volume sanity failed (more than {settings.validate_max_volume_drop:.0%} of the "
            f"rows gone since snapshot {out.previous_run_id}); nothing may be repaired from "
            "this snapshot", [r.message or "" for r in drops]))
    if too_many:
        fatal_parts.append(_listing(
            f"too many records quarantined (more than "
            f"{settings.validate_max_quarantine_share:.2%} of an object): nothing may be "
            f"repaired from this snapshot. Look at {quarantine_dir(data_dir, run_id)} (a "
            "broken export, a changed Zuora field type?); raise validate.max_quarantine_share"
            " (RECON_VALIDATE_MAX_QUARANTINE_SHARE) only if Zuora really holds these bad "
            "records", [r.message or "" for r in too_many]))
    out.fatal = "\n".join(fatal_parts) or None
    _finish(out, results, data_dir, t0)
    if drops:
        raise VolumeError(out.fatal or "", out)
    if too_many:
        raise QuarantineError(out.fatal or "", out)
    return out


def _zuora_records(src: sources.Source, scope: str, quarantine: pl.DataFrame
                   ) -> dict[str, int]:
    """Records per Zuora object for the quarantine share: the rows extracted plus the
    records whose key could not be read (they are in the quarantine, not in the rows)."""
    out = {}
    for side, name in sources.names(scope):
        if side != ct.ZUORA:
            continue
        unkeyed = unreadable_records(quarantine.filter(
            (pl.col("side") == side) & (pl.col("object") == name)))
        out[name] = src.rows(side, name) + unkeyed
    return out


def contract_rows(src: sources.Source, side: str, name: str, run_id: str
                  ) -> tuple[ct.RowOutcome, float]:
    """The row checks of one frame; returns the outcome and the seconds spent loading.

    Only what no cheaper proof settles is read: NOT NULL rules the Parquet statistics
    prove, and length, enum and key rules the extractor's column profile proves
    (:func:`expectations.contracts.settled_by_profile`), pass without a row being loaded;
    the remaining rules' columns are read, and the key column too once a rule fails (it
    names the quarantined rows)."""
    c = ct.contract(side, name)
    t = time.perf_counter()
    proven = src.null_free(side, name, c.not_null_columns())
    settled = ct.settled_by_profile(c, src.profile(side, name))
    rejects = src.rejects(name) if side == ct.ZUORA else None
    columns = c.needed_columns(proven, settled)
    if rejects is not None and rejects.height:
        # rejects exempt their keys from NOT NULL on the columns they name, which are then
        # not proven by the statistics (their NULLs are the rejects' doing): read them
        named = set(rejects["field"].unique()) & set(src.schema(side, name).names())
        columns = [*dict.fromkeys([c.key, *columns, *(n for n in sorted(named)
                                                      if n in c.not_null_columns())])]
    frame = src.frame(side, name, columns) if columns else pl.DataFrame()
    load = time.perf_counter() - t
    rows = src.rows(side, name)
    try:
        return ct.check_rows(c, frame, run_id, rejects, proven, settled, rows=rows), load
    except ct.KeyNeeded:  # rows failed: read again with the key, which names them
        t = time.perf_counter()
        frame = src.frame(side, name, [c.key, *(x for x in columns if x != c.key)])
        load += time.perf_counter() - t
        return ct.check_rows(c, frame, run_id, rejects, proven, settled, rows=rows), load


def _finish(out: ValidationResult, results: list[CheckResult], data_dir: Path,
            t0: float) -> None:
    out.results = results_frame(results)
    store_results(data_dir, out.run_id, out.results)
    out.timings["total_s"] = time.perf_counter() - t0


def _listing(head: str, items: list[str]) -> str:
    shown = items[:MAX_LISTED]
    more = f"\n  … and {len(items) - MAX_LISTED} more (see the check results)" \
        if len(items) > MAX_LISTED else ""
    return f"{head}:\n  " + "\n  ".join(shown) + more

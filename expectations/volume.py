"""Volume sanity: did an object lose a suspicious share of its rows since the last good run?

A truncated AQuA file, a wrong filter or a half-loaded table looks exactly like "Zuora deleted
a third of the subscriptions", and a reconciler that trusts it would delete good local rows.
So every object's row count is compared with the previous *complete* snapshot; a drop of more
than ``validate.max_volume_drop`` (default 20%) on a Zuora object fails the run before any
repair (:class:`~expectations.errors.VolumeError`). On the local side a drop is drift the
reconciler exists to repair, so it is recorded as a warning and the run goes on.
"""

from __future__ import annotations

from pathlib import Path

from expectations.contracts import ZUORA
from expectations.results import CheckResult, pct
from extract.snapshot import Snapshot, list_snapshots


def previous_complete(data_dir: Path | str, run_id: str) -> Snapshot | None:
    """The newest complete snapshot older than ``run_id`` (run ids sort by start time)."""
    older = [s for s in list_snapshots(data_dir) if s.complete and s.run_id < run_id]
    return max(older, key=lambda s: s.run_id) if older else None


def volume_results(current: dict[tuple[str, str], int], previous: dict[tuple[str, str], int],
                   previous_run_id: str, max_drop: float, run_id: str) -> list[CheckResult]:
    """One result per object present in both runs. ``max_drop`` is a fraction: a drop of
    *more* than it fails (exactly 20% of 100 rows passes at the default)."""
    out = []
    for (side, name), before in previous.items():
        if (side, name) not in current:
            continue
        now = current[(side, name)]
        lost = max(before - now, 0)
        drop = lost / before if before else 0.0
        failed = drop > max_drop
        severity = "error" if side == ZUORA else "warning"
        msg = (f"{name}: {before:,} -> {now:,} rows ({-100 * drop:+.1f}%; limit -"
               f"{100 * max_drop:.0f}%) against snapshot {previous_run_id}")
        if failed and side == ZUORA:
            msg += ("; the run stops before any repair. If the drop is real, raise "
                    "validate.max_volume_drop (RECON_VALIDATE_MAX_VOLUME_DROP) for one run")
        out.append(CheckResult(
            run_id, "volume", "volume", name, None, "volume_drop", severity,
            "failed" if failed else "passed", lost, pct(lost, before), before, [],
            [str(now)] if failed else [], msg))
    return out


def blocking_drops(results: list[CheckResult]) -> list[CheckResult]:
    return [r for r in results if r.source == "volume" and r.outcome == "failed"
            and r.severity == "error"]

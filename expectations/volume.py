"""Volume sanity: did an object lose a suspicious share of its rows since the last good run?

A truncated AQuA file, a wrong filter or a half-loaded table looks exactly like "Zuora deleted
a third of the subscriptions", and a reconciler that trusts it would delete good local rows.
So every object's row count is compared with the *baseline*: the newest older snapshot whose
validation verdict is passed (or accepted by an operator) — never a snapshot that failed, or
the nightly after a broken export would compare with the broken one and pass; a drop of more
than ``validate.max_volume_drop`` (default 20%) on a Zuora object fails the run before any
repair (:class:`~expectations.errors.VolumeError`). On the local side a drop is drift the
reconciler exists to repair, so it is recorded as a warning and the run goes on.
"""

from __future__ import annotations

from pathlib import Path

from core.snapshot import Snapshot, last_passed
from expectations.contracts import ZUORA
from expectations.results import CheckResult, pct


def baseline(data_dir: Path | str, run_id: str, scope: str = "all") -> Snapshot | None:
    """The snapshot a ``scope`` snapshot ``run_id`` is compared with: the newest older one
    (run ids sort by start time) whose verdict is passed or accepted, of a scope holding the
    same objects. None when there is none (the first run: nothing to compare)."""
    return last_passed(data_dir, scope, before=run_id)


def previous_complete(data_dir: Path | str, run_id: str, scope: str = "all") -> Snapshot | None:
    """Kept for callers of the old name: the volume baseline (:func:`baseline`)."""
    return baseline(data_dir, run_id, scope)


def catalog_floors(min_rows: int) -> dict[str, int]:
    """``sync.catalog_min_rows`` per catalog object: a catalog table is small (a handful of
    products), so one deleted plan is a large share of it; losing up to this many rows never
    fails the volume check on its own (an empty export still does: the extractor refuses
    zero rows where the baseline had some)."""
    from core.catalog import OBJECTS

    return {o.name: min_rows for o in OBJECTS if o.group == "catalog"}


def volume_results(current: dict[tuple[str, str], int], previous: dict[tuple[str, str], int],
                   previous_run_id: str, max_drop: float, run_id: str,
                   floors: dict[str, int] | None = None) -> list[CheckResult]:
    """One result per object present in both runs. ``max_drop`` is a fraction: a drop of
    *more* than it fails (exactly 20% of 100 rows passes at the default), unless the rows
    lost are at most the object's absolute floor (``floors``: :func:`catalog_floors`)."""
    out = []
    floors = floors or {}
    for (side, name), before in previous.items():
        if (side, name) not in current:
            continue
        now = current[(side, name)]
        lost = max(before - now, 0)
        drop = lost / before if before else 0.0
        failed = drop > max_drop and lost > floors.get(name, 0)
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

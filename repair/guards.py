"""The guards checked before a repair writes anything, each with a refusal a person can act on.

* the target is the database the plan was made for: the identity copied into the plan from
  its snapshot equals the target's own (:mod:`core.localdb.identity`); checked first, for
  dry runs and reverts too, and never overridden by ``--force`` (nothing, not even a refusal
  row, is written to a database that is not the plan's);
* the plan's snapshot is complete and its validation did not fail (the plan's own field, and
  the run's validation as ``expectations`` reads it from recon's state now: failed or errored
  ``error``-severity checks, :func:`expectations.results.read_validation`);
* the plan is not older than ``repair.max_plan_age_hours`` (applies only, not reverts);
* no table would have more than ``repair.max_change_fraction`` of its rows updated or deleted,
  unless ``--force``;
* no table the plan writes carries a trigger that is neither recon's own guard nor listed in
  ``repair.allowed_triggers`` (PostgreSQL; foreign-key triggers are internal and fine): such
  a trigger would run on recon's writes and could change rows behind the audit's back;
* no other apply holds the repair lock (:mod:`repair.lock`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from core.config import Settings
from core.errors import ReconError
from core.localdb.guards import Trigger, parse_names
from core.localdb.identity import STAMP_HINT, DatabaseIdentity
from expectations.results import ResultsUnreadable, read_validation
from repair.plan import Plan


class RepairRefused(ReconError):
    """A guard refused the apply or revert; nothing was changed. ``guard`` names the guard
    (a dry run lists the guards ``--yes`` would trip, :class:`GuardTrip`); ``override``: the
    flag that lets it through, if any."""

    guard = "refused"
    override: str | None = None


@dataclass(frozen=True)
class GuardTrip:
    """A guard a dry run found that ``--yes`` would trip: its name, the refusal ``--yes``
    would print (which says what to do), and the flag that overrides it (None: nothing
    does; fix the cause)."""

    guard: str
    message: str
    override: str | None = None

    @classmethod
    def of(cls, e: RepairRefused) -> GuardTrip:
        return cls(e.guard, str(e), e.override)


class TargetNotStamped(RepairRefused):
    """The target database (or the plan's snapshot's database) has no recon identity."""

    guard = "target identity"


class TargetMismatch(RepairRefused):
    """The target database is not the one the plan (or the apply) was made for."""

    guard = "target identity"

    def __init__(self, message: str, expected: DatabaseIdentity,
                 actual: DatabaseIdentity) -> None:
        super().__init__(message)
        self.expected, self.actual = expected, actual


class SnapshotIncomplete(RepairRefused):
    """The plan was made from a snapshot that is not complete."""

    guard = "snapshot complete"


class ValidationFailed(RepairRefused):
    """The plan's run failed validation (or its validation could not be read)."""

    guard = "validation passed"


class PlanTooOld(RepairRefused):
    """The plan is older than ``repair.max_plan_age_hours``."""

    guard = "plan age (repair.max_plan_age_hours)"


class ChangeFractionExceeded(RepairRefused):
    """The plan would update or delete too large a fraction of a table."""

    guard = "change fraction (repair.max_change_fraction)"
    override = "--force"

    def __init__(self, message: str, table: str, count: int, rows: int) -> None:
        super().__init__(message)
        self.table, self.count, self.rows = table, count, rows


class ForeignTrigger(RepairRefused):
    """A table the plan writes carries a trigger that is not recon's and not allowed."""

    guard = "foreign triggers (repair.allowed_triggers)"

    def __init__(self, message: str, triggers: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.triggers = triggers  # (table, trigger)


class LockHeld(RepairRefused):
    """Another apply or revert holds the repair lock."""

    guard = "repair lock"

    def __init__(self, message: str, holder: dict | None = None) -> None:
        super().__init__(message)
        self.holder = holder or {}


class ApplyNotFound(ReconError):
    """``recon repair revert`` was given an apply id the audit does not know."""


class RepairFailed(ReconError):
    """A batch could not be applied (it was rolled back; earlier batches stay committed)."""


def check_target(expected: DatabaseIdentity | None, actual: DatabaseIdentity | None,
                 what: str, where: str) -> None:
    """Refuse unless ``actual`` (the target's identity; None: unstamped) is ``expected`` (the
    plan's; None: its snapshot's database was unstamped). ``where`` names the target (URL,
    redacted, and where it came from). No flag overrides this; the refusal names the flag or
    variable that points at the right database (:func:`repair.target.pointer`)."""
    from repair.target import pointer

    if actual is None:
        other = (f"; if it is not the database the plan was made for ({expected.describe()}), "
                 f"{pointer(expected)}" if expected is not None else "")
        raise TargetNotStamped(
            f"refusing {what}: the target local database {where} has no recon identity, so "
            f"recon cannot tell whether it is the database the plan was made for; "
            f"{STAMP_HINT} on it (it creates only recon's own objects), then extract and plan "
            f"again{other}")
    if expected is None:
        raise TargetNotStamped(
            f"refusing {what}: its snapshot was taken from a local database without a recon "
            f"identity, so the plan names no target; {STAMP_HINT} on the local database, then "
            "extract and plan again")
    if expected != actual:
        raise TargetMismatch(
            f"refusing {what}: it was made for {expected.describe()}, but the target "
            f"{where} is {actual.describe()}. A plan applies only to the database its "
            f"snapshot was taken from (--force does not change this): {pointer(expected)}, "
            "or extract and plan again from this one.",
            expected, actual)


def check_plan(plan: Plan, settings: Settings, now: dt.datetime | None = None) -> None:
    """Snapshot, validation and age guards (no database needed)."""
    what = f"plan {plan.plan_id} (snapshot {plan.run_id})"
    if not plan.snapshot_complete:
        raise SnapshotIncomplete(
            f"refusing to apply {what}: its snapshot is not complete, so missing rows could "
            "look like drift. Run `recon extract` until a snapshot completes, then plan again "
            "from it (`recon repair plan`).")
    if plan.validation == "failed":
        raise ValidationFailed(
            f"refusing to apply {what}: the snapshot failed validation. Look at "
            "`recon validate` for the failing checks, fix the data or the extract, and plan "
            "again from a snapshot that passes.")
    failed = failed_checks(settings.data_dir, plan.run_id)
    if failed:
        shown = "; ".join(failed[:3]) + (f"; and {len(failed) - 3} more" if len(failed) > 3
                                         else "")
        raise ValidationFailed(
            f"refusing to apply {what}: recon's state records {len(failed)} failed "
            f"error-severity check(s) for run {plan.run_id}: {shown}. See `recon validate`; "
            "plan again from a snapshot that passes.")
    now = now or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    age_h = (now - plan.created_at).total_seconds() / 3600
    limit = settings.repair_max_plan_age_hours
    if age_h > limit:
        raise PlanTooOld(
            f"refusing to apply {what}: it was created {plan.created_at:%Y-%m-%d %H:%M}Z, "
            f"{age_h:.1f} hours ago, more than repair.max_plan_age_hours ({limit:g}); the local "
            "database may have moved on since. Extract and plan again (or raise "
            "RECON_REPAIR_MAX_PLAN_AGE_HOURS if you really mean to apply it).")


def failed_checks(data_dir: Path | str, run_id: str) -> list[str]:
    """Failed/errored error-severity checks of ``run_id`` in recon's state, one line each;
    [] when the state or its results do not exist."""
    try:
        validation = read_validation(data_dir, run_id)
    except ResultsUnreadable as e:
        raise ValidationFailed(
            f"cannot read recon's state {e.path} to check that run {run_id} passed validation "
            f"({e.__cause__ or e}); wait for the other recon process to finish and retry"
        ) from e
    out = []
    for c in validation.failures:
        text = f"{c.source} {c.object or '-'} {c.rule}: {c.outcome}"
        if c.message:
            text += f" ({c.message[:120]})"
        out.append(text)
    return out


def check_fraction(changes: dict[str, int], rows: dict[str, int], max_fraction: float,
                   force: bool, what: str = "the plan") -> list[str]:
    """Refuse when updates+deletes of a table exceed ``max_fraction`` of its rows, unless
    ``force``; returns the notes of tables over the limit that ``force`` let through."""
    notes = []
    for table in sorted(changes):
        n = changes[table]
        if n == 0:
            continue
        total = rows.get(table, 0)
        frac = n / total if total else float("inf")
        if frac <= max_fraction:
            continue
        pct = "all" if not total else f"{frac:.1%}"
        msg = (f"{what} would update or delete {n:,} of the {total:,} rows of {table} "
               f"({pct}), more than repair.max_change_fraction ({max_fraction:.0%})")
        if not force:
            raise ChangeFractionExceeded(
                f"refusing: {msg}. Check the plan; if it is right, re-run with --force.",
                table, n, total)
        notes.append(f"--force: {msg}")
    return notes


def check_triggers(found: list[Trigger], allowed: str, what: str) -> None:
    """Refuse when a trigger in ``found`` (the non-internal triggers on the tables a plan
    writes) is neither one of recon's guards nor listed in ``allowed``
    (``repair.allowed_triggers``: ``trigger`` or ``table.trigger``)."""
    ok = set(parse_names(allowed))
    foreign = [t for t in found if not t.is_recon and t.name not in ok
               and f"{t.table}.{t.name}" not in ok]
    if not foreign:
        return
    listed = ", ".join(f"{t.name} on {t.table} (calls {t.function}())" for t in foreign)
    raise ForeignTrigger(
        f"refusing {what}: the local database has trigger(s) that are not recon's on the "
        f"tables it would write: {listed}. A trigger runs on recon's writes too and could "
        "change rows behind the audit's back (and a revert could not undo that). If it only "
        "observes, list it in repair.allowed_triggers (RECON_REPAIR_ALLOWED_TRIGGERS; "
        f"e.g. {foreign[0].table}.{foreign[0].name}); otherwise drop or disable it before "
        "applying.", [(t.table, t.name) for t in foreign])

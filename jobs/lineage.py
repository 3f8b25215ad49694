"""Snapshot lineage: the extract step shared by ``recon extract``, ``recon run`` and the
scheduler, and the verdicts that decide which snapshot may be built on.

Why it lives here, above ``expectations``: choosing a base needs validation verdicts, and
validating a never-validated base needs the contracts and the volume check; the ``extract``
package must not import ``expectations``, so it receives the chosen :class:`extract.extractor.Base`
(a snapshot and its verdict), the baseline and a volume hook, and chooses nothing itself.

Rules
-----
- A snapshot's verdict (``core.state.Verdict``) is *passed* when its volume check and its
  contracts passed, *failed* when either failed, *accepted* when only the volume check failed
  and an operator accepted the drop (``recon snapshots accept RUN --reason TEXT``), else
  *unvalidated*.
- The volume check runs inside the extract, on the finished files, *before* the snapshot is
  renamed complete; its outcome is in recon's state before the snapshot exists.
- The base of an incremental extract is the newest complete snapshot of the whole tenant whose
  verdict is passed or accepted; a never-validated candidate is validated (volume and
  contracts) first; failed ones are skipped, never built on. The volume baseline is chosen the
  same way (``expectations.volume.baseline``).
- A snapshot's high-water marks become the current ones (``extract_hwm``) only once its verdict
  is passed or accepted (:func:`promote_marks`).
- Without an explicit mode, the run is a full export when no snapshot passed, when the base is
  older than Zuora's deleted-record window, or when no passed full export is younger than
  ``extract.full_every_days``. The reason is written into the manifest (``mode_reason``).
"""

from __future__ import annotations

import datetime as dt
import getpass
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import ReconError
from core.snapshot import Manifest, Snapshot, last_passed, list_snapshots, parse_utc
from core.state import FAILED, PASSED, UNVALIDATED, StateDB, Verdict
from expectations.errors import ContractError, QuarantineError, ValidationError, VolumeError
from expectations.sources import snapshot_row_counts
from expectations.volume import baseline as volume_baseline
from expectations.volume import blocking_drops, catalog_floors, volume_results
from extract.extractor import DELETED_RETENTION, Base, ExtractOptions, run_extract

Progress = Callable[[str], None]


class LineageError(ReconError):
    """A snapshot cannot be accepted, or is not there."""


@dataclass(frozen=True)
class Choice:
    """What the next extract does and why."""

    mode: str  # full | incremental
    reason: str
    base: Base | None  # the passed snapshot an incremental run merges onto
    baseline: Snapshot | None  # the passed snapshot the zero-row and volume checks compare with


def _quiet(_msg: str) -> None:
    return None


# -- verdicts ---------------------------------------------------------------------------------
def record_validation(data_dir: Path | str, snapshot: Snapshot, *, result: Any = None,
                      error: ValidationError | None = None) -> Verdict:
    """Record what ``expectations.validate.validate_snapshot`` said about ``snapshot`` (its
    result, or the ContractError / VolumeError it raised) as the snapshot's volume and
    contracts checks; promote its marks when the verdict is now passed or accepted."""
    run_id = snapshot.run_id
    checked = error.result if error is not None else result
    base = getattr(checked, "previous_run_id", None)
    with StateDB(data_dir) as st:
        if isinstance(error, ContractError):  # lineage trusts the Zuora side or not: a
            # broken local table stops this run but says nothing about the Zuora files
            zuora = zuora_contract_failures(snapshot)
            st.record_check(run_id, "contracts", FAILED if zuora else PASSED, None,
                            ("; ".join(zuora) if zuora else f"Zuora side passed; {error}")[:2000])
        elif isinstance(error, QuarantineError):  # "the extract (or Zuora) is broken":
            # never planned from, so never built on either
            st.record_check(run_id, "contracts", FAILED, None, str(error)[:2000])
        elif isinstance(error, VolumeError):
            st.record_check(run_id, "contracts", PASSED)
            st.record_check(run_id, "volume", FAILED, base, str(error)[:2000])
        elif error is None:
            st.record_check(run_id, "contracts", PASSED)
            st.record_check(run_id, "volume", PASSED, base,
                            f"compared with {base}" if base else "no passed snapshot to compare "
                            "with")
        verdict = st.verdict(run_id)
    if verdict.usable:
        promote_marks(data_dir, snapshot)
    return verdict


def validate_recorded(snapshot: Snapshot, data_dir: Path | str, *, settings: Settings,
                      gx: bool = True) -> Any:
    """``expectations.validate.validate_snapshot`` with its verdict recorded (the job and the
    demo): raises what it raises, after recording the failure."""
    from expectations.validate import validate_snapshot

    try:
        result = validate_snapshot(snapshot, data_dir, settings=settings, gx=gx)
    except ValidationError as e:  # the verdict is failed: never a base, marks do not move
        record_validation(data_dir, snapshot, error=e)
        raise
    record_validation(data_dir, snapshot, result=result)  # passed: marks become current
    return result


def promote_marks(data_dir: Path | str, snapshot: Snapshot) -> bool:
    """Make ``snapshot``'s marks the current ones, unless marks of a newer snapshot already
    are (an old snapshot accepted late must not move them back). Only whole-tenant snapshots
    carry marks. Returns whether they moved."""
    m = snapshot.manifest
    if m.scope != "all" or not m.hwms:
        return False
    marks = {o: t for o, text in m.hwms.items() if (t := parse_utc(text)) is not None}
    with StateDB(data_dir) as st:
        current = {mk.run_id for mk in st.hwms().values()}
        if current and max(current) > snapshot.run_id:
            return False
        st.set_hwms(snapshot.run_id, m.mode, marks)
    return True


def zuora_contract_failures(snapshot: Snapshot) -> list[str]:
    """The contract failures that make a snapshot unfit to build on: a Zuora object whose file
    is missing or whose shape is not its contract's, or a duplicated Zuora key. (Bad rows are
    quarantined by the full validation and are no reason to distrust the rest; the local side
    is exported afresh by every run, so its contracts say nothing about a base.)"""
    from expectations import contracts as ct
    from expectations import sources
    from expectations.validate import contract_rows

    src = sources.SnapshotSource(snapshot)
    problems: list[str] = []
    for side, name in sources.names(snapshot.manifest.scope):
        if side != ct.ZUORA:
            continue
        c = ct.contract(side, name)
        try:
            failures = ct.shape_failures(c, src.schema(side, name))
        except ReconError as e:
            problems.append(str(e))
            continue
        if failures:
            problems += [f.describe(c.label) for f in failures]
            continue
        problems += contract_rows(src, side, name, snapshot.run_id)[0].fatal
    return problems


def validate_base(settings: Settings, snapshot: Snapshot,
                  progress: Progress = _quiet) -> Verdict:
    """Check a snapshot that has no verdict yet before building on it — its volume against
    the last passed snapshot and its Zuora contracts (shape, unique keys) — and record the
    verdict (marks promoted when it passed). Writes no check results or quarantine: those
    belong to the snapshot's own validation run (``recon validate``, the job)."""
    progress(f"snapshot {snapshot.run_id} was never validated: checking its volume and "
             "contracts before building on it")
    volume_gate(settings)(snapshot)
    problems = zuora_contract_failures(snapshot)
    with StateDB(settings.data_dir) as st:
        st.record_check(snapshot.run_id, "contracts", FAILED if problems else PASSED, None,
                        "; ".join(problems)[:2000] or None)
        verdict = st.verdict(snapshot.run_id)
    if verdict.usable:
        promote_marks(settings.data_dir, snapshot)
    return verdict


def verdict_of(data_dir: Path | str, run_id: str) -> Verdict:
    with StateDB(data_dir) as st:
        return st.verdict(run_id)


def choose_base(settings: Settings, progress: Progress = _quiet) -> tuple[Base | None, str]:
    """The newest complete whole-tenant snapshot whose verdict is passed or accepted
    (validating never-validated candidates on the way), and a sentence on what was skipped."""
    data = Path(settings.data_dir)
    with StateDB(data) as st:
        verdicts = st.verdicts()
    skipped: list[str] = []
    candidates = sorted((s for s in list_snapshots(data)
                         if s.complete and s.manifest.scope == "all"),
                        key=lambda s: s.run_id, reverse=True)
    for snap in candidates:
        v = verdicts.get(snap.run_id)
        if v is None or v.verdict == UNVALIDATED:
            v = validate_base(settings, snap, progress)
        if v.usable:
            note = f" (skipped {'; '.join(skipped)})" if skipped else ""
            return Base(snap, v.verdict), f"base {snap.run_id} ({v.verdict}){note}"
        skipped.append(f"{snap.run_id}: {v.verdict}")
    why = "no complete snapshot passed validation"
    return None, why + (f" ({'; '.join(skipped)})" if skipped else "")


def _age_ref(s: Snapshot) -> dt.datetime:
    return (parse_utc(s.manifest.finished_at) or parse_utc(s.manifest.started_at)
            or dt.datetime.min.replace(tzinfo=dt.UTC))


def choose(settings: Settings, requested: str | None, *, scope: str = "all",
           now: dt.datetime | None = None, retention: dt.timedelta = DELETED_RETENTION,
           progress: Progress = _quiet) -> Choice:
    """The mode, base and baseline of the next extract of ``scope`` (see module docstring).
    ``requested``: a person's ``--mode`` (or the job's fixed mode), else None (policy)."""
    now = now or dt.datetime.now(dt.UTC)
    data = Path(settings.data_dir)
    if scope != "all":
        return Choice("full", f"a {scope} extract is always full", None,
                      last_passed(data, scope))
    base, why = choose_base(settings, progress)
    baseline = base.snapshot if base else None
    if requested == "full":
        return Choice("full", "full export requested", None, baseline)
    if requested is None and settings.extract_mode == "full":
        return Choice("full", "extract.mode is full", None, baseline)
    if base is None:
        return Choice("full", f"{why}: full export", None, None)
    age = now - _age_ref(base.snapshot)
    if age > retention:
        return Choice("full", f"the last passed base {base.run_id} is {age.days} days old, "
                      "older than Zuora keeps deleted records: full export", None, baseline)
    if requested is None:
        every = dt.timedelta(days=settings.extract_full_every_days)
        fulls = [s for s in list_snapshots(data) if s.complete and s.manifest.scope == "all"
                 and s.manifest.mode == "full" and s.run_id <= base.run_id]
        with StateDB(data) as st:
            ok = {r for r, v in st.verdicts().items() if v.usable}
        fulls = [s for s in fulls if s.run_id in ok]
        last_full = max(fulls, key=lambda s: s.run_id) if fulls else None
        if last_full is None or now - _age_ref(last_full) >= every:
            since = (f"the last passed full export {last_full.run_id} is older than "
                     if last_full else "no passed full export within ")
            return Choice("full", f"{since}extract.full_every_days "
                          f"({settings.extract_full_every_days}): full export", None, baseline)
    return Choice("incremental", f"incremental onto {why}", base, baseline)


# -- the extract step -------------------------------------------------------------------------
def volume_gate(settings: Settings) -> Callable[[Snapshot], dict[str, Any]]:
    """The ``before_complete`` hook: the volume check against the last passed snapshot,
    recorded in recon's state before the snapshot is renamed complete."""
    def gate(snap: Snapshot) -> dict[str, Any]:
        data = Path(settings.data_dir)
        base = volume_baseline(data, snap.run_id, snap.manifest.scope)
        failures: list[str] = []
        if base is None:
            message = "no passed snapshot to compare with"
        else:
            results = volume_results(snapshot_row_counts(snap), snapshot_row_counts(base),
                                     base.run_id, settings.validate_max_volume_drop,
                                     snap.run_id, catalog_floors(settings.sync_catalog_min_rows))
            failures = [r.message or r.object or "" for r in blocking_drops(results)]
            message = "; ".join(failures) if failures else f"compared with {base.run_id}"
        outcome = FAILED if failures else PASSED
        with StateDB(data) as st:
            st.record_check(snap.run_id, "volume", outcome,
                            base.run_id if base else None, message[:2000])
        return {"outcome": outcome, "baseline_run_id": base.run_id if base else None,
                "failures": failures}
    return gate


def extract_step(settings: Settings, requested: str | None = None, *, scope: str = "all",
                 options: ExtractOptions | None = None, lag: dt.timedelta | None = None,
                 allow_empty: Iterable[str] = (), progress: Progress | None = None) -> Manifest:
    """One extract with its lineage: choose mode, base and baseline; export; run the volume
    check before the snapshot is complete. ``lag`` defaults to ``extract.lag_hours``. Returns
    the complete snapshot's manifest (``manifest.volume["outcome"]`` says whether the volume
    check passed; a failed one is complete but never a base)."""
    say = progress or _quiet
    opt = options or ExtractOptions()
    lag = lag if lag is not None else dt.timedelta(hours=settings.extract_lag_hours)
    choice = choose(settings, requested, scope=scope, now=opt.clock(),
                    retention=opt.deleted_retention, progress=say)
    say(f"extract: {choice.mode} ({choice.reason})")
    return run_extract(settings, choice.mode, progress=progress, allow_empty=allow_empty,
                       lag=lag, options=opt,
                       base=choice.base if choice.mode == "incremental" else None,
                       baseline=choice.baseline, before_complete=volume_gate(settings),
                       mode_reason=choice.reason, requested_mode=requested or choice.mode)


# -- operator acceptance and the listing ------------------------------------------------------
def accept(settings: Settings, run_id: str, reason: str) -> Verdict:
    """``recon snapshots accept RUN --reason TEXT``: a real drop (Zuora really lost those
    records) stops failing every night. Only a complete whole-tenant snapshot whose only
    failure is its volume check can be accepted."""
    reason = reason.strip()
    if not reason:
        raise LineageError("--reason must say why the drop is real (it is recorded and shown)")
    data = Path(settings.data_dir)
    snap = next((s for s in list_snapshots(data) if s.run_id == run_id), None)
    if snap is None:
        raise LineageError(f"no snapshot {run_id!r} under {data / 'snapshots'} "
                           "(see `recon snapshots`)")
    if not snap.complete:
        raise LineageError(f"snapshot {run_id} is not complete ({snap.manifest.status}: "
                           f"{snap.manifest.error}); only a complete snapshot can be accepted")
    v = verdict_of(data, run_id)
    if v.contracts == FAILED:
        raise LineageError(f"snapshot {run_id} failed its contracts ({v.message}); a "
                           "snapshot with a broken shape or duplicated keys cannot be accepted")
    if v.volume != FAILED:
        raise LineageError(f"snapshot {run_id} has no failed volume check to accept (verdict "
                           f"{v.verdict}); accept is for a real drop in row counts")
    if v.contracts is None:  # the volume check ran before completion; contracts never did
        problems = zuora_contract_failures(snap)
        with StateDB(data) as st:
            st.record_check(run_id, "contracts", FAILED if problems else PASSED, None,
                            "; ".join(problems)[:2000] or None)
        if problems:
            raise LineageError(f"snapshot {run_id} failed its contracts and cannot be "
                               f"accepted: {'; '.join(problems[:5])}")
    try:
        by = getpass.getuser()
    except (KeyError, OSError):
        by = None
    with StateDB(data) as st:
        st.accept(run_id, reason, by, socket.gethostname())
        v = st.verdict(run_id)
    promote_marks(data, snap)
    return v


def snapshot_rows(data_dir: Path | str) -> list[dict[str, Any]]:
    """Every snapshot (complete and failed), newest first, with status, verdict, the base it
    built on and why — for ``recon snapshots``."""
    with StateDB(data_dir) as st:
        verdicts = st.verdicts()
        marks = {m.run_id for m in st.hwms().values()}
    out = []
    for s in sorted(list_snapshots(data_dir), key=lambda s: s.run_id, reverse=True):
        m = s.manifest
        v = verdicts.get(s.run_id) or Verdict(s.run_id, UNVALIDATED)
        status = "complete" if s.complete else m.status
        out.append({
            "run_id": s.run_id, "status": status, "scope": m.scope, "mode": m.mode,
            "requested_mode": m.requested_mode or None,
            "verdict": v.verdict if s.complete else "not usable",
            "volume": v.volume, "contracts": v.contracts,
            "volume_baseline": v.baseline_run_id, "base_run_id": m.base_run_id,
            "base_verdict": m.base_verdict, "why": m.mode_reason or m.note,
            "message": v.message if s.complete else m.error,
            "accepted_reason": v.accept_reason,
            "accepted_at": v.accepted_at.isoformat() if v.accepted_at else None,
            "accepted_by": v.accepted_by, "current_marks": s.run_id in marks,
            "started_at": m.started_at, "finished_at": m.finished_at,
            "zuora_rows": sum(int(x.get("rows", 0)) for x in m.zuora.values()),
        })
    return out

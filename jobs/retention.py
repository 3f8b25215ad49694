"""Snapshot retention: ``recon snapshots prune --keep-days N`` and ``snapshots.keep_days``.

Every extract leaves a complete snapshot (or a ``.failed`` one) under ``DATA/snapshots/``;
without pruning the data directory grows by one tenant copy a night. A prune removes the
snapshot directories older than ``keep_days`` (age: the manifest's finish time, else its start,
else the directory's mtime) — except those something still needs, each kept with the reason:

* the newest complete whole-tenant snapshot whose verdict is passed or accepted: the next
  incremental extract's base and the volume check's baseline (``jobs.lineage``);
* the newest passed or accepted catalog snapshot (the catalog job's baseline);
* complete whole-tenant snapshots newer than that base that were never validated: the next
  extract validates them and may build on one (``jobs.lineage.choose_base``);
* the snapshot whose high-water marks are the current ones;
* the snapshot of a saved repair plan under ``DATA/runs/`` that no apply recorded in the local
  database has applied (``complete`` or ``partial``) and that is still young enough to apply
  (``repair.max_plan_age_hours``: an older one is refused by the age guard anyway);
* the snapshot a backfill under ``DATA/backfills/`` was made from (it reads it to resume).

``.tmp-`` directories (an extract writing) are never touched; run directories
(``DATA/runs/<run>``: reports, findings, plans) are history and are not pruned here.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.config import Settings
from core.layout import BACKFILLS, DataLayout
from core.snapshot import MANIFEST, Snapshot, list_snapshots, parse_utc
from core.state import UNVALIDATED, StateDB


@dataclass(frozen=True)
class PruneItem:
    """One snapshot directory a prune removed (or would), or kept though old, and why."""

    run_id: str
    status: str  # complete | failed | …
    path: str
    bytes: int
    age_days: float | None
    reason: str


@dataclass(frozen=True)
class PruneResult:
    data_dir: str
    keep_days: float
    dry_run: bool
    removed: list[PruneItem]
    kept: list[PruneItem]

    @property
    def bytes_freed(self) -> int:
        return sum(i.bytes for i in self.removed)

    def as_dict(self) -> dict[str, Any]:
        return {"data_dir": self.data_dir, "keep_days": self.keep_days,
                "dry_run": self.dry_run, "removed": [asdict(i) for i in self.removed],
                "kept": [asdict(i) for i in self.kept], "bytes_freed": self.bytes_freed}


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _age_days(s: Snapshot, now: dt.datetime) -> float:
    m = s.manifest
    t = parse_utc(m.finished_at) or parse_utc(m.started_at)
    if t is None:
        t = dt.datetime.fromtimestamp((s.path / MANIFEST).stat().st_mtime, dt.UTC)
    return (now - t).total_seconds() / 86400


def _plans(settings: Settings, now: dt.datetime) -> dict[str, str]:
    """Run id → why its snapshot is needed, for saved plans under ``DATA/runs/`` that no
    recorded apply has applied and that are young enough to apply."""
    from repair.plan import PlanFormatError, open_plan

    runs = DataLayout(settings.data_dir).runs
    found: list[Any] = []
    for p in sorted(runs.glob("*/repair-plan*.json")) if runs.is_dir() else []:
        try:
            found.append((p, open_plan(p)))
        except (PlanFormatError, OSError, ValueError):
            continue
    max_age = dt.timedelta(hours=settings.repair_max_plan_age_hours)
    found = [(p, plan) for p, plan in found if now - plan.created_at <= max_age]
    if not found:
        return {}
    applied, note = _applied_plans(settings)
    return {plan.run_id: f"saved plan {p} is not applied yet{note}"
            for p, plan in found if plan.plan_id not in applied}


def _applied_plans(settings: Settings) -> tuple[set[str], str]:
    """Plan ids with a complete or partial apply in the local database; when it cannot be
    read, none (every young plan counts as unapplied) and a note saying so."""
    from repair.apply import list_applies

    try:
        df = list_applies(settings)
    except Exception as e:  # noqa: BLE001 — unreadable: keep every young plan's snapshot
        return set(), f" (the local database's audit could not be read: {type(e).__name__})"
    done = df.filter(df["kind"] == "apply").filter(df["status"].is_in(["complete", "partial"]))
    return set(done["plan_id"].drop_nulls().to_list()), ""


def _backfills(data_dir: Path) -> dict[str, str]:
    """Run id → the backfill made from it (``bf-<run>-c<N>``)."""
    root = Path(data_dir) / BACKFILLS
    out: dict[str, str] = {}
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.is_dir() and d.name.startswith("bf-") and "-c" in d.name:
            out[d.name[3:d.name.rindex("-c")]] = f"backfill {d.name} reads it to resume"
    return out


def protected(settings: Settings, snaps: list[Snapshot], now: dt.datetime) -> dict[str, str]:
    """Run id → why a prune must keep that snapshot (see the module docstring)."""
    with StateDB(settings.data_dir) as st:
        verdicts = st.verdicts()
        marks = {m.run_id for m in st.hwms().values()}
    keep: dict[str, str] = {}

    def newest(scope: str, why: str) -> str | None:
        done = [s for s in snaps if s.complete and s.manifest.scope == scope
                and (v := verdicts.get(s.run_id)) is not None and v.usable]
        if not done:
            return None
        run = max(done, key=lambda s: s.run_id).run_id
        keep.setdefault(run, why)
        return run

    base = newest("all", "the last passed snapshot: the next incremental's base and the "
                         "volume baseline")
    newest("catalog", "the last passed catalog snapshot: the catalog job's baseline")
    for s in snaps:
        v = verdicts.get(s.run_id)
        if (s.complete and s.manifest.scope == "all" and (base is None or s.run_id > base)
                and (v is None or v.verdict == UNVALIDATED)):
            keep.setdefault(s.run_id, "never validated and newer than the base: the next "
                                      "extract may build on it")
        if s.run_id in marks:
            keep.setdefault(s.run_id, "holds the current high-water marks")
    for run, why in {**_backfills(settings.data_dir), **_plans(settings, now)}.items():
        keep.setdefault(run, why)
    return keep


def prune_snapshots(settings: Settings, keep_days: float | None = None, *,
                    dry_run: bool = False, now: dt.datetime | None = None) -> PruneResult:
    """Remove the snapshot directories older than ``keep_days`` (default
    ``snapshots.keep_days``) that nothing needs; ``dry_run``: only say which."""
    now = now or dt.datetime.now(dt.UTC)
    days = settings.snapshots_keep_days if keep_days is None else keep_days
    snaps = list_snapshots(settings.data_dir)
    old = [(s, age) for s in snaps if (age := _age_days(s, now)) > days]
    keep = protected(settings, snaps, now) if old else {}
    removed: list[PruneItem] = []
    kept: list[PruneItem] = []
    for s, age in old:
        status = "complete" if s.complete else s.manifest.status
        item = PruneItem(s.run_id, status, str(s.path.resolve()), dir_bytes(s.path),
                         round(age, 2), keep.get(s.run_id, f"older than {days:g} days"))
        if s.run_id in keep:
            kept.append(item)
            continue
        if not dry_run:
            shutil.rmtree(s.path)
        removed.append(item)
    return PruneResult(str(Path(settings.data_dir).resolve()), days, dry_run, removed, kept)

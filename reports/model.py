"""The report as data: a typed :class:`ReportModel` (``report.json`` without its findings rows)
and the findings frame, computed from :class:`reports.collect.Collected` with polars.

Renderers (``reports.html``, ``reports.json_out``) only format what is here, so the HTML page
and its JSON twin cannot disagree. Every count is computed from ``drift.parquet`` itself, not
copied from ``summary.json``, so a test can hold the report to the file it came from.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from core.catalog import OBJECTS
from core.config import Settings
from core.layout import (
    DRIFT_FILE,
    FIELD_STATS_FILE,
    MANIFEST,
    OBJECT_STATS_FILE,
    PLAN_FILE,
    QUARANTINE,
    SUMMARY_FILE,
    DataLayout,
)
from core.owners import Owners
from reconcile.acks import ACKNOWLEDGED, LAPSED, ack_states
from reports import commands
from reports.collect import Collected
from reports.entities import EntityNames, with_entities
from reports.words import DRIFT_TITLES, SOURCE_WORDS, check_words

SCHEMA_VERSION = 1
SEVERITY_ORDER = ("critical", "high", "medium", "low")
STATUS_ORDER = ("new", "persisting", "pending", "resolved")
OPEN = ("new", "persisting")  # drift now (pending is in the grace window, resolved is gone)
ERROR_JOB_STATUSES = ("failed", "error", "crashed", "timeout", "timed_out")
BANNERS = ("CLEAN", "DRIFT", "ERROR", "PARTIAL")
PARTIAL_LABEL = "PARTIAL — NOT RECONCILED"
UNKNOWN_UNLESS_RECONCILED = (
    "drift", "new", "persisting", "pending", "resolved", "missing_locally", "orphaned_locally",
    "field_drift", "rule_violations", "auto", "human", "quarantined_findings", "needs_a_person",
    "acknowledged", "groups")
TOP_DRILL = 25  # subscriptions / accounts listed for drill-down
FIELD_SAMPLES = 3  # before → after samples per field in the per-field table
RULE_EXAMPLES = 3


# -- the model's types -------------------------------------------------------------------------
# Frozen dataclasses, so a renamed or missing field fails where the model is built (TypeError)
# or rendered (the templates run under StrictUndefined), never silently in the browser. Their
# field order is the key order of report.json; ``to_json`` turns the model into plain JSON data.
@dataclass(frozen=True)
class Stamp:
    """A time in UTC (``…Z``) and in the tenant's zone."""

    utc: str | None
    local: str | None


@dataclass(frozen=True)
class Generator:
    recon_version: str
    git_sha: str | None
    host: str
    config_hash: str


@dataclass(frozen=True)
class ReportSettings:
    """The settings a reader of the report needs (never a secret or a connection string)."""

    tenant_tz: str
    grace_hours: float | int | None
    trend_runs: int
    zuora_url_template: str
    local_database: str  # "PostgreSQL" | "DuckDB file"
    mask_pii: bool
    owners: bool = False  # [owners] names someone: the Owner column has something to say
    repair_auto: bool = False  # the nightly applies auto repairs after its report


@dataclass(frozen=True)
class SnapshotInfo:
    status: str | None
    mode: str | None
    requested_mode: str | None
    error: str | None
    error_type: str | None
    path: str | None
    dir: str | None
    extract_s: float | None
    track_id: str | None
    base_run_id: str | None


@dataclass(frozen=True)
class ZuoraAsOf:
    utc: str | None
    local: str | None
    aqua_job_ids: tuple[str, ...]
    window_upper_bound: Stamp | None
    mode: str | None


@dataclass(frozen=True)
class LocalAsOf:
    utc: str | None
    local: str | None
    export_s: float | None


@dataclass(frozen=True)
class DataAsOf:
    zuora: ZuoraAsOf
    local: LocalAsOf
    reconciled_as_of: Stamp


@dataclass(frozen=True)
class RunHeader:
    run_id: str
    job: str | None
    trigger: str
    job_status: str | None
    attempt: int | None
    scheduled_for: Stamp
    error_class: str | None
    error_message: str | None
    job_counts: dict[str, Any] | None
    started: Stamp
    finished: Stamp
    duration_s: float | None
    tenant_tz: str
    snapshot: SnapshotInfo
    data_as_of: DataAsOf
    validated: Stamp
    reconciled: Stamp
    reconcile_s: float | None
    grace_hours: float | int | None
    previous_run: str | None
    previous_report: str | None
    last_clean_run: str | None
    run_dir: str | None


@dataclass(frozen=True)
class Status:
    """The banner: exactly one of CLEAN, DRIFT (n), ERROR, PARTIAL — NOT RECONCILED."""

    banner: str  # one of BANNERS
    label: str
    icon: str
    reasons: tuple[str, ...]
    exit_code: int  # 0 CLEAN, 1 DRIFT, 2 ERROR or PARTIAL
    text: str


@dataclass(frozen=True)
class Summary:
    """The tiles' numbers; None means unknown (the run was not reconciled), never zero."""

    findings_rows: int
    drift: int | None
    new: int | None
    persisting: int | None
    pending: int | None
    resolved: int | None
    by_status: dict[str, int]
    by_kind: dict[str, int]
    by_severity: dict[str, int]
    by_action: dict[str, int]
    by_object: dict[str, int]
    objects_compared: int | None
    rows_zuora: int | None
    rows_local: int | None
    matched: int | None
    missing_locally: int | None
    orphaned_locally: int | None
    field_drift: int | None
    rows_with_field_drift: int | None
    rule_violations: int | None
    auto: int | None
    human: int | None
    quarantined_rows: int
    quarantined_findings: int | None
    checks: int
    validation_failures: int
    validation_failures_error: int
    validation_errors: int
    repair_operations: int | None
    repair_groups: int | None
    needs_a_person: int | None
    acknowledged: int | None = None  # open findings a person acknowledged (still counted above)
    ack_lapsed: int = 0  # findings whose acknowledgement lapsed (they alert again)
    groups: int | None = None  # entities with open findings (subscriptions, accounts, products)
    owners: dict[str, int] = field(default_factory=dict)  # open findings by owner


@dataclass(frozen=True)
class ObjectRow:
    object: str
    table: str | None
    key: str | None
    zuora_rows: int | None
    local_rows: int | None
    matched: int | None
    only_zuora: int | None
    only_local: int | None
    unequal: int | None
    equal: int | None
    columns_compared: int | None
    columns_unequal: int | None
    duplicates: int
    seconds: float | None
    findings: int
    new: int
    pending: int
    resolved: int
    auto: int
    human: int
    zuora_object: bool
    trend: tuple[int, ...]


@dataclass(frozen=True)
class FieldSample:
    key: str | None
    before: str | None
    after: str | None
    drift_id: str | None


@dataclass(frozen=True)
class FieldRow:
    object: str
    field: str
    column: str | None
    zuora_type: str | None
    local_type: str | None
    tolerance: str | None
    owner: str | None
    unequal: int
    pct_unequal: float | None
    null_vs_value: int | None
    max_abs_diff: Any
    samples: tuple[FieldSample, ...]


@dataclass(frozen=True)
class RuleRow:
    code: str
    is_rule: bool
    title: str
    drift_title: str
    open: int
    new: int
    persisting: int
    pending: int
    resolved: int
    auto: int
    human: int
    severity: str | None
    objects: tuple[str, ...]
    kinds: tuple[str, ...]
    examples: tuple[str, ...]
    filter: str  # the findings table's hash filter
    command: str | None  # the suggested `recon repair plan … --only …`
    owners: tuple[str, ...] = ()  # who owns its findings ([owners])


@dataclass(frozen=True)
class DrillItem:
    id: str
    findings: int
    objects: tuple[str, ...]
    human: int
    other: tuple[str, ...]  # account numbers of a subscription, subscriptions of an account
    severity: str | None
    label: str | None = None  # an account's number (the id is what the drill-down matches)


@dataclass(frozen=True)
class Drill:
    subscriptions: tuple[DrillItem, ...]
    accounts: tuple[DrillItem, ...]
    subscription_count: int
    account_count: int


@dataclass(frozen=True)
class CheckRow:
    source: str
    source_words: str
    suite: str | None
    object: str | None
    column: str | None
    rule: str | None
    severity: str | None
    outcome: str
    failing_count: int | None
    failing_pct: float | None
    total_count: int | None
    sample_keys: tuple[Any, ...]
    sample_values: tuple[Any, ...]
    message: str | None
    words: str


@dataclass(frozen=True)
class SuiteRow:
    source: str
    suite: str | None
    total: int
    passed: int
    failed: int
    errors: int


@dataclass(frozen=True)
class QuarantineGroup:
    side: str | None
    object: str | None
    table: str | None
    column: str | None
    check: str | None
    severity: str | None
    rows: int
    keys: int
    sample_keys: tuple[Any, ...]
    sample_values: tuple[Any, ...]
    why: str


@dataclass(frozen=True)
class Quarantine:
    rows: int
    groups: tuple[QuarantineGroup, ...]


@dataclass(frozen=True)
class Validation:
    status: str  # not_run | error | failed | warnings | passed
    checks: int
    passed: int
    failed_count: int
    error_count: int
    failed: tuple[CheckRow, ...]
    errors: tuple[CheckRow, ...]
    suites: tuple[SuiteRow, ...]
    quarantine: Quarantine


@dataclass(frozen=True)
class RepairStep:
    step: str
    table: str
    insert: int
    update: int
    delete: int


@dataclass(frozen=True)
class Change:
    column: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class PlanSample:
    table: str
    op: str
    key: str | None
    reason: str | None
    changes: tuple[Change, ...]
    more: int  # changed columns beyond those listed


@dataclass(frozen=True)
class RepairPlan:
    """The saved plan of the run, as the report shows it."""

    plan_id: str
    created_at: str
    validation: str
    snapshot_complete: bool
    only: str | None
    operations: int
    groups: int | None
    steps: tuple[RepairStep, ...]
    samples: tuple[PlanSample, ...]
    needs_a_person_by: dict[str, int]
    not_planned: tuple[dict[str, Any], ...]
    not_planned_count: int
    commands: tuple[str, ...]


@dataclass(frozen=True)
class AutoApply:
    """What the nightly's auto-apply (``repair.auto``) did with this run's plan."""

    outcome: str  # pending | applied | partial | refused | failed | nothing to apply
    apply_id: str | None
    applied: int | None  # operations written
    message: str | None  # the refusal or failure, in recon's words
    undo: str | None  # the command that reverts it


@dataclass(frozen=True)
class AckRow:
    """An acknowledged finding (or one whose acknowledgement lapsed), as the report lists it."""

    fingerprint: str
    entity: str | None
    object: str
    field: str | None
    code: str | None  # rule or likely drift
    status: str
    note: str | None
    by: str | None
    at: str | None
    until: str | None
    lapsed: str | None  # why it no longer holds (None: it holds)
    owner: str | None


@dataclass(frozen=True)
class Acks:
    acknowledged: tuple[AckRow, ...]
    lapsed: tuple[AckRow, ...]
    unack: str | None  # the command that takes the listed acks back (example)


@dataclass(frozen=True)
class Repair:
    source: str  # "file" (a saved plan) | "" (none)
    error: str | None  # why there is no plan, and how to make one
    applies: tuple[dict[str, Any], ...]  # repair_applies rows of this run (--with-applies)
    applies_error: str | None
    needs_a_person: int | None
    available: bool
    auto_apply: AutoApply | None = None  # with repair.auto: what the nightly did (or will)
    # its fields sit beside the ones above in report.json (absent when there is no plan)
    plan: RepairPlan | None = field(default=None, metadata={"inline": True})


@dataclass(frozen=True)
class TrendRun:
    run_id: str
    banner: str
    reconciled: bool
    snapshot_status: str | None
    mode: str | None
    error: str | None
    started: str | None
    zuora_rows: int | None
    local_rows: int | None
    volumes: dict[str, int]
    extract_s: float | None
    reconcile_s: float | None
    job_s: float | None
    trigger: str | None
    job_status: str | None
    drift: int | None
    by_status: dict[str, int]
    by_object: dict[str, int]
    by_rule: dict[str, int]
    report: str | None
    current: bool


@dataclass(frozen=True)
class Trends:
    runs: tuple[TrendRun, ...]
    objects: tuple[str, ...]
    rules: tuple[str, ...]


@dataclass(frozen=True)
class CatalogueEntry:
    table: str
    key_column: str
    zuora: bool


@dataclass(frozen=True)
class EventPath:
    """The nightly beside the event path: what this run held pending for it and what it
    missed (``summary.json`` ``event_path``, reconcile.events), and the inbox's health at
    report time (core.inbox). Absent from the report when callouts were never received."""

    held_synced: int | None  # findings pending: a sync wrote their key after the snapshot
    held_in_flight: int | None  # findings pending: a callout for their key is in flight
    missed_callouts: int | None  # open findings no callout came for
    missed_keys: tuple[str, ...]  # "object:key", all of them
    failures: int | None  # open findings whose key's callout was dead-lettered
    queue_depth: int | None  # the rest: the inbox now (None when it could not be read)
    running: int | None
    oldest_pending_s: float | None
    dead_letters: int | None
    syncs_24h: int | None
    failed_24h: int | None
    events_24h: int | None
    rejected_24h: int | None


@dataclass(frozen=True)
class ReportModel:
    """The whole report but its findings rows: what both renderers consume."""

    schema_version: int
    generated_at: str | None
    generator: Generator
    settings: ReportSettings
    run: RunHeader
    status: Status
    summary: Summary
    objects: tuple[ObjectRow, ...]
    fields: tuple[FieldRow, ...]
    rules: tuple[RuleRow, ...]
    drill: Drill
    validation: Validation
    repair: Repair
    trends: Trends
    artifacts: dict[str, str]
    catalogue: dict[str, CatalogueEntry]
    drift_titles: dict[str, str]
    notes: tuple[str, ...]
    event_path: EventPath | None = None
    acks: Acks | None = None
    # what the page's commands start with: the environment that reaches this run's data
    # directory and database, then ``recon`` (reports.commands)
    command_prefix: str = "recon"


def to_json(value: Any) -> Any:
    """The model (or any part of it) as plain JSON data: dataclasses become objects in field
    order (an ``inline`` field's object is merged into its parent), tuples become lists."""
    if is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in fields(value):
            v = getattr(value, f.name)
            if f.metadata.get("inline"):
                if v is not None:
                    out.update(to_json(v))
            else:
                out[f.name] = to_json(v)
        return out
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


# -- small helpers ---------------------------------------------------------------------------
def utc_iso(value: Any) -> str | None:
    """Any timestamp recon stores (naive UTC, aware, or ISO text) as ``…Z`` text."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value.isoformat()
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def local_time(iso: str | None, tz: str) -> str | None:
    """``iso`` (UTC) in the tenant's zone, with the zone's abbreviation (PST/PDT)."""
    if not iso or "T" not in iso:
        return None
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(ZoneInfo(tz))
    return t.strftime("%Y-%m-%d %H:%M:%S %Z")


def _counts(frame: pl.DataFrame, col: str, order: tuple[str, ...] = ()) -> dict[str, int]:
    got = {str(k): int(v) for k, v in frame.group_by(col).len().iter_rows() if k is not None}
    keys = [k for k in order if k in got] + sorted(k for k in got if k not in order)
    return {k: got[k] for k in keys}


def _git_sha() -> str | None:
    """The checkout's commit, read from ``.git`` (no subprocess; None when installed)."""
    git = Path(__file__).resolve().parents[1] / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head[:12]
        ref = head[5:]
        if (git / ref).is_file():
            return (git / ref).read_text().strip()[:12]
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0][:12]
    except OSError:
        return None
    return None


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("recon")
    except Exception:  # not installed (a bare checkout on sys.path)
        return "unknown"


def _db_kind(url: str) -> str:
    """What the local database is, never where: no host, user or password in a report."""
    return "PostgreSQL" if url.startswith(("postgresql:", "postgres:")) else "DuckDB file"


# -- findings --------------------------------------------------------------------------------
def prepare_findings(drift: pl.DataFrame, *, mask_pii: bool = False,
                     names: EntityNames | None = None, owners: Owners | None = None,
                     acks: pl.DataFrame | None = None,
                     today: dt.date | None = None) -> pl.DataFrame:
    """The run's findings grouped by the entity that broke (:mod:`reports.entities`), groups
    in reading order (the group of the first finding that is new before persisting before
    pending before resolved, then by severity), and inside a group the same order; with the
    entity columns, the compact ``note``, the ``owner`` and the acknowledgement's state
    (:func:`reconcile.acks.ack_states`). Timestamps as UTC text."""
    from reconcile.acks import ACK_SCHEMA

    sev = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    st = {s: i for i, s in enumerate(STATUS_ORDER)}
    out = with_entities(drift, names or EntityNames.empty())
    out = out.with_columns((owners or Owners()).expr())
    out = ack_states(out, acks if acks is not None else pl.DataFrame(schema=ACK_SCHEMA),
                     today or dt.datetime.now(dt.UTC).date())
    # one sort: a group's place is its best finding's (status, then severity), ties by name;
    # inside it the same reading order
    out = out.with_columns(
        pl.col("zuora_updated").dt.strftime("%Y-%m-%dT%H:%M:%SZ").alias("zuora_updated"),
        pl.col("status").replace_strict(st, default=9, return_dtype=pl.Int32).alias("_st"),
        pl.col("severity").replace_strict(sev, default=9, return_dtype=pl.Int32).alias("_sev"),
    ).with_columns(_g=(pl.col("_st") * 10 + pl.col("_sev")).min().over("entity_kind", "entity"))
    out = out.sort(["_g", "entity_kind", "entity", "_st", "_sev", "object", "kind", "key",
                    "field"], nulls_last=True, maintain_order=True).drop("_g", "_st", "_sev")
    if mask_pii:
        out = out.with_columns([mask_emails(pl.col(c)).alias(c) for c in
                                ("key", "zuora_value", "local_value", "explanation", "evidence",
                                 "note", "entity", "account_name")])
    return out


def mask_emails(expr: pl.Expr) -> pl.Expr:
    """``jane.doe@example.com`` → ``j***@example.com`` (datacompy's hide_sensitive_columns,
    for reports that leave the team)."""
    return expr.str.replace_all(r"([A-Za-z0-9])[A-Za-z0-9._%+\-]*@", "${1}***@")


def summary_numbers(c: Collected, f: pl.DataFrame) -> Summary:
    """The tiles' numbers, all from the findings and stats of this run."""
    open_ = f.filter(pl.col("status").is_in(OPEN))
    stats = c.object_stats
    by_kind = _counts(open_, "kind")
    checks = c.checks
    failed = checks.filter(pl.col("outcome") == "failed")
    plan = c.plan

    def tot(col: str) -> int | None:
        return int(stats[col].sum()) if c.reconciled and col in stats.columns else None

    out = {
        "findings_rows": f.height,  # every row of drift.parquet, resolved ones included
        "drift": open_.height,  # open findings: new + persisting
        "new": int((f["status"] == "new").sum()),
        "persisting": int((f["status"] == "persisting").sum()),
        "pending": int((f["status"] == "pending").sum()),
        "resolved": int((f["status"] == "resolved").sum()),
        "by_status": _counts(f, "status", STATUS_ORDER),
        "by_kind": by_kind,
        "by_severity": _counts(open_, "severity", SEVERITY_ORDER),
        "by_action": _counts(open_, "action", ("auto", "human")),
        "by_object": _counts(open_, "object"),
        "objects_compared": stats.height if c.reconciled else None,
        "rows_zuora": tot("zuora_rows"),
        "rows_local": tot("local_rows"),
        "matched": tot("matched"),
        "missing_locally": by_kind.get("missing_in_local", 0),
        "orphaned_locally": by_kind.get("orphaned_in_local", 0),
        "field_drift": by_kind.get("field_mismatch", 0),
        "rows_with_field_drift": tot("unequal"),
        "rule_violations": by_kind.get("rule_violation", 0) + by_kind.get("duplicate_local", 0),
        "auto": int((open_["action"] == "auto").sum()),
        "human": int((open_["action"] == "human").sum()),
        "quarantined_rows": int(c.quarantine.height),
        "quarantined_findings": by_kind.get("quarantined", 0),
        "checks": checks.height,
        "validation_failures": failed.height,
        "validation_failures_error": int((failed["severity"] == "error").sum()),
        "validation_errors": int((checks["outcome"] == "error").sum()),
        "repair_operations": plan.operations if plan else None,
        "repair_groups": plan.summary.get("groups") if plan else None,
        "needs_a_person": int((open_["action"] == "human").sum()),
        "acknowledged": int((open_["ack"] == ACKNOWLEDGED).sum()),
        "ack_lapsed": int((f["ack"] == LAPSED).sum()),
        "groups": open_.select("entity_kind", "entity").n_unique() if open_.height else 0,
        "owners": _counts(open_, "owner"),
    }
    if not c.reconciled:  # nothing was compared: unknown, never "0 differences"
        out.update({k: None for k in UNKNOWN_UNLESS_RECONCILED})
    return Summary(**out)


# -- header and status -------------------------------------------------------------------------
def _job_duration(job: dict[str, Any] | None) -> float | None:
    if not job or not job.get("started_at") or not job.get("finished_at"):
        return None
    try:
        a, b = (dt.datetime.fromisoformat(str(job[k]).replace("Z", "+00:00"))
                for k in ("started_at", "finished_at"))
        a, b = (t.replace(tzinfo=t.tzinfo or dt.UTC) for t in (a, b))
        return round((b - a).total_seconds(), 1)
    except ValueError:
        return None


def run_header(c: Collected, settings: Settings, rel: Any) -> RunHeader:
    m = c.snapshot.manifest if c.snapshot else None
    s = c.summary
    job = c.job or {}
    tz = settings.tenant_tz
    aqua = (m.aqua if m else {}) or {}
    zuora_asof = utc_iso(aqua.get("submitted_at") or (m.started_at if m else None))
    hwm = min(m.hwms.values()) if m and m.hwms else None
    earlier = [r["run_id"] for r in c.recon_runs if r["run_id"] < c.run_id]
    prev = s.get("previous_run") or (earlier[-1] if earlier else None)
    started = utc_iso(job.get("started_at")) or utc_iso(m.started_at if m else None) or \
        utc_iso(s.get("started_at"))
    finished = utc_iso(job.get("finished_at")) or utc_iso(s.get("finished_at")) or \
        utc_iso(m.finished_at if m else None)
    duration = _job_duration(c.job)
    if duration is None and started and finished:
        duration = round((dt.datetime.fromisoformat(finished.replace("Z", "+00:00"))
                          - dt.datetime.fromisoformat(started.replace("Z", "+00:00"))
                          ).total_seconds(), 1)
    validated = c.checks["checked_at"].max() if c.checks.height else None

    def t(iso: str | None) -> Stamp:
        return Stamp(utc=iso, local=local_time(iso, tz))

    zuora = t(zuora_asof)
    local = t(utc_iso(m.started_at if m else None))
    return RunHeader(
        run_id=c.run_id,
        job=job.get("job") or ("nightly" if c.job else None),
        trigger=job.get("trigger") or "manual",
        job_status=job.get("status"),
        attempt=job.get("attempt"),
        scheduled_for=t(utc_iso(job.get("scheduled_for"))),
        error_class=job.get("error_class"),
        error_message=job.get("error_message"),
        job_counts=_json_obj(job.get("counts")),
        started=t(started), finished=t(finished), duration_s=duration,
        tenant_tz=tz,
        snapshot=SnapshotInfo(
            status=m.status if m else None,
            mode=m.mode if m else s.get("snapshot_mode"),
            requested_mode=m.requested_mode if m else None,
            error=m.error if m else None, error_type=m.error_type if m else None,
            path=rel(c.snapshot.path) if c.snapshot else None,
            dir=c.snapshot.path.as_posix() if c.snapshot else None,
            extract_s=m.duration_s if m else None,
            track_id=m.track_id if m else None,
            base_run_id=m.base_run_id if m else None,
        ),
        data_as_of=DataAsOf(
            zuora=ZuoraAsOf(utc=zuora.utc, local=zuora.local,
                            aqua_job_ids=tuple(aqua.get("job_ids") or ()),
                            window_upper_bound=t(utc_iso(hwm)) if hwm else None,
                            mode=m.mode if m else None),
            local=LocalAsOf(utc=local.utc, local=local.local,
                            export_s=aqua.get("local_export_s")),
            reconciled_as_of=t(utc_iso(s.get("as_of"))),
        ),
        validated=t(utc_iso(validated)),
        reconciled=t(utc_iso(s.get("finished_at"))),
        reconcile_s=s.get("duration_s"),
        grace_hours=s.get("grace_hours"),
        previous_run=prev,
        previous_report=rel(DataLayout(c.data_dir).report_html(prev)) if prev and (
            DataLayout(c.data_dir).report_html(prev)).is_file() else None,
        last_clean_run=c.last_clean_run,
        run_dir=DataLayout(c.data_dir).run_dir(c.run_id).as_posix() if c.reconciled else None,
    )


def _json_obj(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    try:
        out = json.loads(value)
        return out if isinstance(out, dict) else {"value": out}
    except (TypeError, ValueError):
        return {"value": str(value)}


def status_banner(c: Collected, numbers: Summary) -> Status:
    """Exactly one of CLEAN, DRIFT (n), ERROR, PARTIAL — NOT RECONCILED, with why. A run whose
    extract failed, or that stopped before the reconciler, never reads as "0 differences"."""
    m = c.snapshot.manifest if c.snapshot else None
    job = c.job or {}
    reasons: list[str] = []
    if not c.reconciled or (c.snapshot is not None and not c.snapshot.complete):
        if m is not None and not c.snapshot.complete:  # type: ignore[union-attr]
            reasons.append(f"the extract failed ({m.error_type or 'error'}): "
                           f"{m.error or 'no error recorded'}")
        elif m is None:
            reasons.append("no snapshot of this run exists (the extract never finished "
                           "writing one, or it was removed)")
        else:
            stop = c.checks.filter((pl.col("outcome").is_in(["failed", "error"]))
                                   & (pl.col("severity") == "error"))
            if stop.height:
                reasons.append(f"validation stopped the run: {stop.height} error-severity "
                               "check(s) failed")
                reasons += [str(x) for x in stop["message"].head(5).to_list() if x]
            else:
                reasons.append("the snapshot is complete but was not reconciled")
        if job.get("error_message"):
            reasons.append(f"job {job.get('status') or ''}: {job.get('error_class') or ''} "
                           f"{job['error_message']}".strip())
        return Status(banner="PARTIAL", label=PARTIAL_LABEL, icon="◐", reasons=tuple(reasons),
                      exit_code=2,
                      text="Not reconciled: these numbers are not a comparison. Nothing here "
                           "means zero differences.")
    errs = c.checks.filter(pl.col("outcome") == "error")
    if str(job.get("status") or "").lower() in ERROR_JOB_STATUSES:
        reasons.append(f"the job failed after reconciling: {job.get('error_class') or ''} "
                       f"{job.get('error_message') or ''}".strip())
    if errs.height:
        reasons.append(f"{errs.height} check(s) could not run (an error, not bad data)")
        reasons += [str(x) for x in errs["message"].head(5).to_list() if x]
    n = numbers.drift or 0
    if reasons:
        return Status(banner="ERROR", label="ERROR", icon="✖", reasons=tuple(reasons),
                      exit_code=2, text=f"Reconciled with {n:,} open findings, but part of "
                                        "the run failed.")
    pending = numbers.pending or 0
    if n:
        return Status(banner="DRIFT", label=f"DRIFT ({n:,})", icon="▲", reasons=(),
                      exit_code=1,
                      text=f"{n:,} open findings ({numbers.new or 0:,} new, "
                           f"{numbers.persisting or 0:,} persisting); {numbers.auto or 0:,} the "
                           f"repair may fix, {numbers.human or 0:,} need a person"
                           + (f"; {pending:,} pending in the grace window" if pending else "")
                           + ".")
    return Status(banner="CLEAN", label="CLEAN", icon="✔", reasons=(), exit_code=0,
                  text="Every compared row and rule agrees with Zuora"
                       + (f"; {pending:,} change(s) pending in the grace window" if pending
                          else "") + ".")


# -- per object, per field, per rule -------------------------------------------------------------
def objects_table(c: Collected, f: pl.DataFrame,
                  trend: dict[str, list[int]]) -> tuple[ObjectRow, ...]:
    specs = {o.name: o for o in OBJECTS}
    open_ = f.filter(pl.col("status").is_in(OPEN))
    per = f.group_by("object").agg(
        open=pl.col("status").is_in(OPEN).sum(),
        new=(pl.col("status") == "new").sum(),
        pending=(pl.col("status") == "pending").sum(),
        resolved=(pl.col("status") == "resolved").sum(),
        auto=((pl.col("action") == "auto") & pl.col("status").is_in(OPEN)).sum(),
        human=((pl.col("action") == "human") & pl.col("status").is_in(OPEN)).sum(),
    )
    counts = {r["object"]: r for r in per.to_dicts()}
    dup = c.quarantine.filter(pl.col("check").is_in(["unique", "field_uniqueness"])) \
        .group_by("object").agg(pl.col("key").n_unique().alias("n"))
    dups = dict(dup.iter_rows())
    m = c.snapshot.manifest if c.snapshot else None
    rows: list[ObjectRow] = []
    stats = c.object_stats.to_dicts() if c.reconciled else []
    seen = set()
    for s in stats:
        spec = specs.get(s["object"])
        seen.add(s["object"])
        k = counts.get(s["object"], {})
        rows.append(ObjectRow(
            object=s["object"], table=s.get("table"),
            key=f"Id → {spec.key_column}" if spec else None,
            zuora_rows=s["zuora_rows"], local_rows=s["local_rows"],
            matched=s["matched"], only_zuora=s["only_zuora"],
            only_local=s["only_local"], unequal=s["unequal"],
            equal=s["matched"] - s["unequal"],
            columns_compared=len(spec.compared_fields) if spec else None,
            columns_unequal=s["columns_unequal"],
            duplicates=dups.get(s["object"], 0),
            seconds=s.get("seconds"),
            findings=int(k.get("open", 0)), new=int(k.get("new", 0)),
            pending=int(k.get("pending", 0)), resolved=int(k.get("resolved", 0)),
            auto=int(k.get("auto", 0)), human=int(k.get("human", 0)),
            zuora_object=spec is not None,
            trend=tuple(trend.get(s["object"], ())),
        ))
    for obj in sorted(set(open_["object"].to_list()) | set(counts) - seen):
        if obj in seen:
            continue
        k = counts.get(obj, {})
        local = (m.local.get(obj) or {}).get("rows") if m else None
        rows.append(ObjectRow(
            object=obj, table=obj, key="natural key (local-only table)",
            zuora_rows=None, local_rows=local, matched=None, only_zuora=None,
            only_local=None, unequal=None, equal=None, columns_compared=None,
            columns_unequal=None, duplicates=dups.get(obj, 0), seconds=None,
            findings=int(k.get("open", 0)), new=int(k.get("new", 0)),
            pending=int(k.get("pending", 0)), resolved=int(k.get("resolved", 0)),
            auto=int(k.get("auto", 0)), human=int(k.get("human", 0)),
            zuora_object=False, trend=tuple(trend.get(obj, ())),
        ))
    return tuple(rows)


def fields_table(c: Collected, f: pl.DataFrame) -> tuple[FieldRow, ...]:
    if not c.reconciled or c.field_stats.height == 0:
        return ()
    specs = {o.name: o for o in OBJECTS}
    matched = dict(c.object_stats.select("object", "matched").iter_rows())
    samples = (f.filter((pl.col("kind") == "field_mismatch") & (pl.col("status") != "resolved"))
               .group_by("object", "field", maintain_order=True)
               .head(FIELD_SAMPLES)
               .select("object", "field", "key", "local_value", "zuora_value", "drift_id"))
    by_field: dict[tuple[str, str], list[FieldSample]] = {}
    for r in samples.to_dicts():
        by_field.setdefault((r["object"], r["field"]), []).append(
            FieldSample(key=r["key"], before=r["local_value"], after=r["zuora_value"],
                        drift_id=r["drift_id"]))
    out = []
    for r in c.field_stats.sort(["object", "unequal"], descending=[False, True]).to_dicts():
        spec = specs.get(r["object"])
        fld = None
        if spec is not None:
            try:
                fld = spec.field(r["field"])
            except Exception:
                fld = None
        m = matched.get(r["object"]) or 0
        out.append(FieldRow(
            object=r["object"], field=r["field"],
            column=fld.column if fld else None,
            zuora_type=str(fld.ztype) if fld else None,
            local_type=fld.local_type if fld else None,
            tolerance=str(fld.norm) if fld else None,
            owner=str(fld.owner) if fld else None,
            unequal=r["unequal"], pct_unequal=round(100 * r["unequal"] / m, 4) if m else None,
            null_vs_value=r["null_vs_value"],
            max_abs_diff=r.get("max_abs_diff"),
            samples=tuple(by_field.get((r["object"], r["field"]), ())),
        ))
    return tuple(out)


def rules_table(c: Collected, f: pl.DataFrame, settings: Settings) -> tuple[RuleRow, ...]:
    """The drift catalogue view: one row per cross-object rule or likely drift id."""
    if f.height == 0:
        return ()
    from reconcile.rules import RULES

    titles = {r.id: r.title for r in RULES}
    g = f.with_columns(
        code=pl.coalesce("rule", "drift_id", pl.lit("—")),
        is_rule=pl.col("rule").is_not_null(),
    )
    sev = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    agg = g.group_by("code", "is_rule").agg(
        open=pl.col("status").is_in(OPEN).sum(),
        new=(pl.col("status") == "new").sum(),
        persisting=(pl.col("status") == "persisting").sum(),
        pending=(pl.col("status") == "pending").sum(),
        resolved=(pl.col("status") == "resolved").sum(),
        auto=((pl.col("action") == "auto") & pl.col("status").is_in(OPEN)).sum(),
        human=((pl.col("action") == "human") & pl.col("status").is_in(OPEN)).sum(),
        severity=pl.col("severity").replace_strict(sev, default=9, return_dtype=pl.Int32).min(),
        objects=pl.col("object").unique().sort(),
        kinds=pl.col("kind").unique().sort(),
        examples=pl.col("entity").filter(pl.col("status") != "resolved").unique(
            maintain_order=True).head(RULE_EXAMPLES),
        owners=pl.col("owner").filter(pl.col("status").is_in(OPEN)).drop_nulls().unique().sort(),
    ).sort(["open", "code", "is_rule"], descending=[True, False, False])  # a total order
    out = []
    for r in agg.to_dicts():
        code = r["code"]
        out.append(RuleRow(
            code=code, is_rule=r["is_rule"],
            title=(titles.get(code) if r["is_rule"] else None) or DRIFT_TITLES.get(code, ""),
            drift_title=DRIFT_TITLES.get(code, ""),
            open=r["open"], new=r["new"], persisting=r["persisting"],
            pending=r["pending"], resolved=r["resolved"], auto=r["auto"],
            human=r["human"],
            severity=SEVERITY_ORDER[r["severity"]] if r["severity"] < len(SEVERITY_ORDER)
            else None,
            objects=tuple(r["objects"]), kinds=tuple(r["kinds"]),
            examples=tuple(r["examples"]),
            filter=(f"rule={code}" if r["is_rule"] else f"rule=-&drift={code}"),
            command=(commands.recon(settings, "repair", "plan", "--run", c.run_id, "--only",
                                    code) if r["auto"] else None),
            owners=tuple(r["owners"]),
        ))
    return tuple(out)


def drill_lists(f: pl.DataFrame) -> Drill:
    """The subscriptions and accounts with the most open findings (drill-down entry points)."""
    sev = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    live = f.filter(pl.col("status") != "resolved").with_columns(
        _sev=pl.col("severity").replace_strict(sev, default=9, return_dtype=pl.Int32))

    def top(col: str) -> tuple[DrillItem, ...]:
        g = (live.filter(pl.col(col).is_not_null()).group_by(col)
             .agg(findings=pl.len(), objects=pl.col("object").unique().sort(),
                  human=(pl.col("action") == "human").sum(), sev=pl.col("_sev").min(),
                  label=pl.col("account_number").drop_nulls().first(),
                  other=pl.coalesce("account_number", "account_id") if col == "subscription_name"
                  else pl.col("subscription_name"))
             .with_columns(pl.col("other").list.drop_nulls().list.unique().list.sort()
                           .list.head(3))
             .sort(["findings", col], descending=[True, False]).head(TOP_DRILL))
        return tuple(DrillItem(id=r[col], findings=r["findings"], objects=tuple(r["objects"]),
                               human=r["human"], other=tuple(r["other"]),
                               severity=SEVERITY_ORDER[r["sev"]] if r["sev"] < 4 else None,
                               label=r["label"] if col == "account_id" else None)
                     for r in g.to_dicts())

    return Drill(subscriptions=top("subscription_name"), accounts=top("account_id"),
                 subscription_count=live["subscription_name"].drop_nulls().n_unique(),
                 account_count=live["account_id"].drop_nulls().n_unique())


# -- validation, repair ---------------------------------------------------------------------------
def validation_section(c: Collected, mask_pii: bool) -> Validation:
    ch = c.checks
    if mask_pii and ch.height:
        ch = ch.with_columns(
            pl.col("sample_values").list.eval(mask_emails(pl.element())),
            pl.col("sample_keys").list.eval(mask_emails(pl.element())),
            mask_emails(pl.col("message")).alias("message"))

    def rows(frame: pl.DataFrame) -> tuple[CheckRow, ...]:
        out = []
        for r in frame.to_dicts():
            where = f"{r['object'] or ''}{'.' + r['column'] if r['column'] else ''}"
            total, n = r["total_count"], r["failing_count"]
            words = (f"{n:,} of {total:,} rows ({r['failing_pct'] or 0:.3g}%) of {where} break "
                     f"“{r['rule']}”" if total else
                     f"{where}: “{r['rule']}” fails" + (f" for {n:,} rows" if n else ""))
            out.append(CheckRow(
                source=r["source"], source_words=SOURCE_WORDS.get(r["source"], r["source"]),
                suite=r["suite"], object=r["object"], column=r["column"],
                rule=r["rule"], severity=r["severity"], outcome=r["outcome"],
                failing_count=n, failing_pct=r["failing_pct"], total_count=total,
                sample_keys=tuple(r["sample_keys"] or ()),
                sample_values=tuple(r["sample_values"] or ()),
                message=r["message"], words=words if r["outcome"] == "failed" else
                (r["message"] or "the check could not run"),
            ))
        return tuple(out)

    failed = ch.filter(pl.col("outcome") == "failed").sort(
        ["severity", "failing_count"], descending=[False, True])
    errors = ch.filter(pl.col("outcome") == "error")
    suites = tuple(SuiteRow(**r) for r in (
        ch.group_by("source", "suite")
        .agg(total=pl.len(), passed=(pl.col("outcome") == "passed").sum(),
             failed=(pl.col("outcome") == "failed").sum(),
             errors=(pl.col("outcome") == "error").sum())
        .sort("source", "suite").to_dicts())) if ch.height else ()
    q = c.quarantine
    if mask_pii and q.height:
        q = q.with_columns(mask_emails(pl.col("key")), mask_emails(pl.col("value")))
    groups = []
    if q.height:
        agg = (q.group_by("side", "object", "table", "column", "check", "severity")
               .agg(rows=pl.len(), keys=pl.col("key").n_unique(),
                    sample_keys=pl.col("key").head(3), sample_values=pl.col("value").head(3))
               .sort("rows", descending=True))
        for r in agg.to_dicts():
            groups.append(QuarantineGroup(
                side=r["side"], object=r["object"], table=r["table"], column=r["column"],
                check=r["check"], severity=r["severity"], rows=r["rows"], keys=r["keys"],
                sample_keys=tuple(r["sample_keys"]), sample_values=tuple(r["sample_values"]),
                why=check_words(r["check"])))
    status = ("not_run" if ch.height == 0 else "error" if errors.height else
              "failed" if failed.filter(pl.col("severity") == "error").height else
              "warnings" if failed.height else "passed")
    return Validation(status=status, checks=ch.height,
                      passed=int((ch["outcome"] == "passed").sum()),
                      failed_count=failed.height, error_count=errors.height,
                      failed=rows(failed), errors=rows(errors), suites=suites,
                      quarantine=Quarantine(rows=q.height, groups=tuple(groups)))


def auto_apply_section(c: Collected, settings: Settings,
                       given: dict[str, Any] | None) -> AutoApply | None:
    """What ``repair.auto`` did with this run's plan: ``given`` by the nightly's apply step
    (which renders the report again once it applied or was refused), else the outcome its
    job recorded (``job_runs.counts``), else "pending" (this report was written before the
    apply step). None when ``repair.auto`` is off and nothing was recorded."""
    counts = given if given is not None else (_json_obj((c.job or {}).get("counts")) or {})
    outcome = counts.get("repair")
    if outcome is None and not settings.repair_auto:
        return None
    if outcome is None:
        if c.plan is not None and c.plan.operations == 0:
            outcome = "nothing to apply"
        elif c.plan is None:
            return AutoApply("nothing to apply", None, None, c.plan_error, None)
        else:
            outcome = "pending"
    apply_id = counts.get("repair_apply_id")
    undo = (commands.recon(settings, "repair", "revert", str(apply_id), "--yes")
            if apply_id and counts.get("repair_applied") else None)
    message = counts.get("repair_refusal") or counts.get("repair_error")
    if outcome == "pending":
        message = "the nightly applies the plan after writing this report; this page is " \
                  "written again with the outcome"
    return AutoApply(outcome=str(outcome), apply_id=apply_id,
                     applied=counts.get("repair_applied"), message=message, undo=undo)


def repair_section(c: Collected, numbers: Summary, settings: Settings,
                   auto_apply: dict[str, Any] | None = None) -> Repair:
    """The run's saved plan as the report shows it (the report never plans: without a saved
    plan, ``error`` says so and how to make one), and its applies when they were read. Its
    commands are complete for this run (:mod:`reports.commands`: real paths, the data
    directory and database they must reach)."""
    plan = c.plan
    applies = []
    if c.applies is not None and c.applies.height:
        for r in c.applies.to_dicts():
            applies.append({k: (utc_iso(v) if isinstance(v, dt.datetime) else v)
                            for k, v in r.items() if k not in ("plan_path", "host", "pid",
                                                               "os_user")})
    base = Repair(source="file" if plan else "", error=c.plan_error, applies=tuple(applies),
                  applies_error=c.applies_error, needs_a_person=numbers.needs_a_person,
                  available=plan is not None,
                  auto_apply=auto_apply_section(c, settings, auto_apply))
    if plan is None:
        return base
    s = plan.summary
    plan_path = DataLayout(c.data_dir).run_dir(c.run_id) / PLAN_FILE
    steps = []
    for key, ops in (s.get("by_step_table") or {}).items():
        step, _, table = key.partition("/")
        steps.append(RepairStep(step=step, table=table, insert=ops.get("insert", 0),
                                update=ops.get("update", 0), delete=ops.get("delete", 0)))
    samples = []
    for key, items in (s.get("samples") or {}).items():
        table, _, op = key.rpartition(".")
        for it in items:
            before, after = it.get("before") or {}, it.get("after") or {}
            cols = sorted(set(before) | set(after))
            changed = [Change(column=col, before=_txt(before.get(col)),
                              after=_txt(after.get(col)))
                       for col in cols if before.get(col) != after.get(col) or op != "update"]
            samples.append(PlanSample(table=table, op=op, key=_txt(it.get("key")),
                                      reason=it.get("reason"), changes=tuple(changed[:12]),
                                      more=max(0, len(changed) - 12)))
    return replace(base, plan=RepairPlan(
        plan_id=plan.plan_id, created_at=plan.created_at, validation=plan.validation,
        snapshot_complete=plan.snapshot_complete, only=plan.only,
        operations=s.get("operations", plan.operations), groups=s.get("groups"),
        steps=tuple(steps), samples=tuple(samples),
        needs_a_person_by=s.get("needs_a_person") or {},
        not_planned=plan.not_planned[:200], not_planned_count=len(plan.not_planned),
        commands=(commands.recon(settings, "repair", "plan", "--run", c.run_id),
                  commands.recon(settings, "repair", "apply", plan_path)
                  + "  # dry run: writes nothing",
                  commands.recon(settings, "repair", "apply", plan_path, "--yes"))))


def _txt(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, dict | list):
        return json.dumps(v, sort_keys=True, default=str)
    return str(v)


# -- trends ---------------------------------------------------------------------------------------
def trends(c: Collected, settings: Settings, rel: Any) -> Trends:
    """The last ``report_trend_runs`` runs (reconciled or not): findings by status and object,
    extract volumes, durations, and the run index."""
    recon = {r["run_id"]: r for r in c.recon_runs}
    snaps = {s.run_id: s for s in c.snapshots}
    ids = sorted(set(recon) | set(snaps) | {c.run_id})[-settings.report_trend_runs:]
    runs = []
    objects: set[str] = set()
    rules: set[str] = set()
    for rid in ids:
        r = recon.get(rid)
        s = snaps.get(rid)
        m = s.manifest if s else None
        summ = (r or {}).get("summary") or {}
        job = c.jobs.get(rid) or {}
        by_obj = {k: int(v) for k, v in (summ.get("by_object") or {}).items()}
        by_rule = {k: int(v) for k, v in (summ.get("by_rule") or {}).items()}
        objects.update(by_obj)
        rules.update(by_rule)
        reconciled = r is not None
        drift = int(summ.get("drift", 0)) if reconciled else None
        if not reconciled:
            banner = "PARTIAL"
        elif str(job.get("status") or "").lower() in ERROR_JOB_STATUSES:
            banner = "ERROR"
        else:
            banner = "DRIFT" if drift else "CLEAN"
        report = DataLayout(c.data_dir).report_html(rid)
        runs.append(TrendRun(
            run_id=rid, banner=banner, reconciled=reconciled,
            snapshot_status=m.status if m else None, mode=m.mode if m else None,
            error=m.error if m and s is not None and not s.complete else None,
            started=utc_iso(m.started_at if m else (r or {}).get("started_at")),
            zuora_rows=sum(int(v.get("rows", 0)) for v in m.zuora.values()) if m else None,
            local_rows=sum(int(v.get("rows", 0)) for v in m.local.values()) if m else None,
            volumes={k: int(v.get("rows", 0)) for k, v in m.zuora.items()} if m else {},
            extract_s=m.duration_s if m else None,
            reconcile_s=(r or {}).get("duration_s"),
            job_s=_job_duration(job or None), trigger=job.get("trigger"),
            job_status=job.get("status"),
            drift=drift, by_status=summ.get("by_status") or {}, by_object=by_obj,
            by_rule=by_rule,
            report=rel(report) if (report.is_file() or rid == c.run_id) else None,
            current=rid == c.run_id,
        ))
    return Trends(runs=tuple(runs), objects=tuple(sorted(objects)), rules=tuple(sorted(rules)))


def object_trend(tr: Trends) -> dict[str, list[int]]:
    """Open findings per object over the reconciled runs of the window (sparklines)."""
    rec = [r for r in tr.runs if r.reconciled]
    return {o: [r.by_object.get(o, 0) for r in rec] for o in tr.objects}


# -- acknowledgements -----------------------------------------------------------------------------
ACK_ROWS = 200  # acknowledged (and lapsed) findings listed; the rest are in report.json


def acks_section(f: pl.DataFrame, settings: Settings) -> Acks | None:
    """The acknowledged findings and those whose acknowledgement lapsed (None: no ack touches
    this run)."""
    touched = f.filter(pl.col("ack").is_not_null())
    if touched.height == 0:
        return None

    def rows(frame: pl.DataFrame) -> tuple[AckRow, ...]:
        return tuple(AckRow(
            fingerprint=r["fingerprint"], entity=r["entity"], object=r["object"],
            field=r["field"], code=r["rule"] or r["drift_id"], status=r["status"],
            note=r["ack_note"], by=r["ack_by"], at=r["ack_at"], until=r["ack_until"],
            lapsed=r["ack_lapsed"], owner=r["owner"]) for r in frame.head(ACK_ROWS).to_dicts())

    held = touched.filter(pl.col("ack") == ACKNOWLEDGED)
    first = touched["fingerprint"][0]
    return Acks(acknowledged=rows(held), lapsed=rows(touched.filter(pl.col("ack") == LAPSED)),
                unack=commands.recon(settings, "findings", "unack", first[:12]))


# -- the whole model --------------------------------------------------------------------------------
def event_path_section(c: Collected) -> EventPath | None:
    """The event path's figures, when this run reconciled beside an inbox or one exists now."""
    counts = c.summary.get("summary", {}).get("event_path") if isinstance(
        c.summary.get("summary"), dict) else None
    h = c.inbox_health
    if counts is None and h is None:
        return None
    counts = counts or {}

    def n(key: str) -> int | None:
        v = counts.get(key)
        return int(v) if v is not None else None

    return EventPath(
        held_synced=n("held_synced"), held_in_flight=n("held_in_flight"),
        missed_callouts=n("missed_callouts"),
        missed_keys=tuple(str(k) for k in counts.get("missed_keys") or ()),
        failures=n("failures"),
        queue_depth=h.queue_depth if h else None, running=h.running if h else None,
        oldest_pending_s=h.oldest_pending_s if h else None,
        dead_letters=h.dead_letters if h else None, syncs_24h=h.syncs_24h if h else None,
        failed_24h=h.failed_24h if h else None, events_24h=h.events_24h if h else None,
        rejected_24h=h.rejected_24h if h else None)


def build_model(c: Collected, settings: Settings, *, out_dir: Path, mask_pii: bool = False,
                generated_at: dt.datetime | None = None,
                auto_apply: dict[str, Any] | None = None) -> tuple[ReportModel, pl.DataFrame]:
    """(model, findings): everything the renderers need. ``auto_apply``: the nightly apply
    step's outcome (``repair``, ``repair_apply_id``, ``repair_applied``, ``repair_refusal``),
    when it renders the report again after applying."""
    now = generated_at or dt.datetime.now(dt.UTC)
    owners = Owners.of(settings)

    def rel(p: Path | str) -> str:
        return Path(os.path.relpath(Path(p).resolve(), out_dir.resolve())).as_posix()

    f = prepare_findings(c.drift, mask_pii=mask_pii, names=c.names, owners=owners,
                         acks=c.acks, today=now.astimezone(dt.UTC).date())
    numbers = summary_numbers(c, f)
    tr = trends(c, settings, rel)
    rdir = DataLayout(c.data_dir).run_dir(c.run_id)
    artifacts = {name: rel(rdir / name) for name in (
        DRIFT_FILE, OBJECT_STATS_FILE, FIELD_STATS_FILE, SUMMARY_FILE, PLAN_FILE)
        if (rdir / name).is_file()}
    if (rdir / QUARANTINE).is_dir():
        artifacts[f"{QUARANTINE}/"] = rel(rdir / QUARANTINE)
    if c.snapshot:
        artifacts["snapshot"] = rel(c.snapshot.path)
        artifacts[MANIFEST] = rel(c.snapshot.path / MANIFEST)
    described = settings.describe()
    model = ReportModel(
        schema_version=SCHEMA_VERSION,
        generated_at=utc_iso(now),
        generator=Generator(recon_version=_version(), git_sha=_git_sha(),
                            host=socket.gethostname(),
                            config_hash=hashlib.sha256(json.dumps(
                                described, sort_keys=True).encode()).hexdigest()[:12]),
        settings=ReportSettings(tenant_tz=settings.tenant_tz,
                                grace_hours=c.summary.get("grace_hours",
                                                          settings.reconcile_grace_hours),
                                trend_runs=settings.report_trend_runs,
                                zuora_url_template=settings.report_zuora_url_template,
                                local_database=_db_kind(settings.local_database_url),
                                mask_pii=mask_pii, owners=owners.configured,
                                repair_auto=settings.repair_auto),
        run=run_header(c, settings, rel),
        status=status_banner(c, numbers),
        summary=numbers,
        objects=objects_table(c, f, object_trend(tr)),
        fields=fields_table(c, f),
        rules=rules_table(c, f, settings),
        drill=drill_lists(f),
        validation=validation_section(c, mask_pii),
        repair=repair_section(c, numbers, settings, auto_apply),
        trends=tr,
        artifacts=artifacts,
        catalogue={o.name: CatalogueEntry(table=o.table, key_column=o.key_column, zuora=True)
                   for o in OBJECTS},
        drift_titles=DRIFT_TITLES,
        notes=tuple(c.notes),
        event_path=event_path_section(c),
        acks=acks_section(f, settings),
        command_prefix=commands.prefix(settings),
    )
    return model, f

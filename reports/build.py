"""``build_report``: collect → model → ``report.json`` + ``report.html``, for one run.

Called by ``recon report`` and by the nightly pipeline as a plain function: quiet (prints
nothing), read-only on everything but its two output files, and it raises only typed
:class:`reports.errors.ReportError` (or another :class:`ReconError`) on bad input.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.config import Settings
from core.layout import REPORT_HTML as HTML_FILE
from core.layout import REPORT_JSON as JSON_FILE
from core.layout import run_dir
from reports import html, json_out
from reports.atomic import write_text_atomic
from reports.collect import collect
from reports.errors import ReportError
from reports.model import build_model, to_json


@dataclass(frozen=True)
class ReportPaths:
    """Where a report was written, and what it says."""

    run_id: str
    html: Path
    json: Path
    banner: str  # CLEAN | DRIFT | ERROR | PARTIAL
    label: str  # "DRIFT (12)", "PARTIAL — NOT RECONCILED", …
    exit_code: int  # 0 CLEAN, 1 DRIFT, 2 ERROR or PARTIAL (what --fail-on-drift returns)
    findings: int  # rows of drift.parquet (resolved included)
    open_findings: int  # new + persisting
    html_bytes: int
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)  # the tiles' numbers (report.json)
    timings: dict[str, float] = field(default_factory=dict)
    # a reconciled run without a saved repair plan: says so and how to make one (else None)
    plan_note: str | None = None


def build_report(data_dir: Path | str, run_id: str | None = None, *, settings: Settings,
                 out_dir: Path | str | None = None, mask_pii: bool = False,
                 read_applies: bool = False, read_inbox: bool = False,
                 job_run_id: str | None = None, now: dt.datetime | None = None,
                 auto_apply: dict[str, Any] | None = None) -> ReportPaths:
    """Write ``report.html`` and ``report.json`` for ``run_id`` (default: the newest run,
    failed extracts included) into ``out_dir`` (default ``DATA/runs/<run_id>/``).

    The repair section shows the run's saved ``repair-plan.json`` only (the report never
    plans: without one, ``plan_note`` says so and how to make one). ``read_applies``: also
    read this run's repair applies from the local database's audit (off by default: the
    report then needs nothing but recon's own files). ``read_inbox``: also read the callout
    inbox's health when it lives in the local database (PostgreSQL; the embedded SQLite inbox
    is recon's own file and always read). ``mask_pii``: mask e-mail addresses (reports that leave the team).
    ``job_run_id``: the ``job_runs`` attempt this report belongs to (the nightly pipeline
    passes its own, so the header shows its trigger while the attempt is still running).
    ``auto_apply``: what the nightly's apply step did (``repair.auto``), when it writes the
    report again after applying: ``repair`` (applied, partial, refused, failed),
    ``repair_apply_id``, ``repair_applied``, ``repair_refusal``.
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    data_dir = Path(data_dir)
    collected = collect(data_dir, run_id, settings=settings, read_applies=read_applies,
                        read_inbox=read_inbox, job_run_id=job_run_id)
    timings["collect"] = time.perf_counter() - t0
    out = Path(out_dir) if out_dir is not None else run_dir(data_dir, collected.run_id)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"cannot create report directory {out}: {e.strerror}") from e
    t = time.perf_counter()
    model, findings = build_model(collected, settings, out_dir=out, mask_pii=mask_pii,
                                  generated_at=now, auto_apply=auto_apply)
    timings["model"] = time.perf_counter() - t
    # both pages are rendered before either file is replaced, so a failure leaves the
    # previous report.json and report.html together (each written aside, then renamed)
    t = time.perf_counter()
    json_text = json_out.report_json_text(model, findings)
    timings["json"] = time.perf_counter() - t
    t = time.perf_counter()
    page = html.render(model, findings, json_out.island(model, findings))
    json_path, html_path = out / JSON_FILE, out / HTML_FILE
    write_text_atomic(json_path, json_text)
    write_text_atomic(html_path, page)
    timings["html"] = time.perf_counter() - t
    st = model.status
    return ReportPaths(
        run_id=collected.run_id, html=html_path, json=json_path, banner=st.banner,
        label=st.label, exit_code=st.exit_code, findings=findings.height,
        open_findings=model.summary.drift or 0, html_bytes=html_path.stat().st_size,
        summary=to_json(model.summary),
        plan_note=None if model.repair.available or not collected.reconciled
        else model.repair.error,
        seconds=round(time.perf_counter() - t0, 3), timings=timings)

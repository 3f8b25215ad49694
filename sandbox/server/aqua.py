"""AQuA stateless jobs [S-AQ; D-AQ-*]: ``POST /v1/batch-query/``, ``GET``/``DELETE
/v1/batch-query/jobs/{id}`` and the result files.

A job runs its queries at submit time against one consistent snapshot of the store (so all
objects of a job are from the same moment, as Zuora promises) and keeps the filtered typed
frames; files are rendered chunk by chunk when downloaded. The status a poller sees moves
``submitted → executing → completed`` with ``job_step_delay`` seconds per step (plus a
``slow_job`` fault's extra seconds), or ends ``error``/``aborted`` when a fault says so.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from sandbox.server import render, zoql
from sandbox.server.faults import FaultBook
from sandbox.server.store import DELETED_AT, RETENTION, Store, utcnow
from sandbox.server.wire import Response, aqua_error, json_response, new_id, v1_error

MAX_QUERIES = 50
MAX_CONCURRENT_JOBS = 50  # stateless jobs per tenant [D-AQ limits]
RETAINED_JOBS = 50  # older jobs are forgotten (their files 404 as if purged)
TERMINAL = ("completed", "error", "aborted", "cancelled")


@dataclass
class Batch:
    batch_id: str
    name: str
    query: str
    api_version: str
    parsed: zoql.Query | None = None
    frame: pl.DataFrame | None = None  # selected fields (+ _deleted), filtered
    deleted: tuple[str, str] | None = None  # (column, format)
    file_id: str | None = None


@dataclass
class Job:
    id: str
    request: dict[str, Any]
    batches: list[Batch]
    created: float  # monotonic
    start_time: str
    step: float
    slow: float = 0.0
    fail: tuple[str, str, str] | None = None  # (status, errorCode, message)
    cancelled: bool = False
    utc: bool = False
    labels: bool = True
    null: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def status(self, now: float) -> str:
        if self.cancelled:
            return "cancelled"
        age = now - self.created
        if age < self.step:
            return "submitted"
        if age < 2 * self.step + self.slow:
            return "executing"
        return self.fail[0] if self.fail else "completed"


def _truthy(v: Any) -> bool:
    return v is True or (isinstance(v, str) and v.strip().lower() == "true")


class Aqua:
    def __init__(self, store: Store, faults: FaultBook, step: float) -> None:
        self.store = store
        self.faults = faults
        self.step = step
        self.jobs: dict[str, Job] = {}
        self.files: dict[str, tuple[Job, Batch]] = {}
        self._lock = threading.Lock()

    # -- submit --------------------------------------------------------------------------------
    def submit(self, req: Any) -> Response:
        if not isinstance(req, dict):
            return aqua_error("90005", "the AQuA request body must be a JSON object")
        fault = self.faults.take(("aqua_submit", "aqua_job"), ("aqua_90028",))
        if fault is not None or self._active() >= MAX_CONCURRENT_JOBS:
            return aqua_error("90028", "Concurrent job limit exceeded: at most "
                              f"{MAX_CONCURRENT_JOBS} stateless jobs may be submitted or "
                              "executing per tenant; retry later")
        fmt = str(req.get("format", "csv")).lower()
        if fmt != "csv":
            return aqua_error("90005", f"format {req.get('format')!r} is not supported by "
                              "the sandbox; use csv")
        version = str(req.get("version", "1.0"))
        if version not in ("1.0", "1.1", "1.2"):
            return aqua_error("90005", f"unknown AQuA version {version!r}")
        if req.get("partner") and req.get("project") and version != "1.0":
            return aqua_error("90005", "stateful AQuA (partner + project) is not supported by "
                              "the sandbox; send a stateless job (no partner/project)")
        queries = req.get("queries")
        if not isinstance(queries, list) or not queries:
            return aqua_error("90016", "No queries in the AQuA input")
        if len(queries) > MAX_QUERIES:
            return aqua_error("90004", f"Too many queries: {len(queries)} (at most "
                              f"{MAX_QUERIES} per job)")
        batches: list[Batch] = []
        objects = set(self.store.objects)
        for i, q in enumerate(queries):
            if not isinstance(q, dict) or not isinstance(q.get("query"), str):
                return aqua_error("90005", f"query #{i + 1} has no query text")
            name = str(q.get("name") or f"query{i + 1}")
            qtype = str(q.get("type", "zoqlexport")).lower()
            if qtype not in ("zoql", "zoqlexport"):
                return aqua_error("90005", f"query {name}: type {q.get('type')!r} is not "
                                  "zoql or zoqlexport")
            try:
                parsed = zoql.parse(q["query"], objects)
            except zoql.ZoqlError as e:
                return aqua_error("90005", "There is a syntax error in one of the queries in "
                                  f"the AQuA input: query {name}: {e.message}")
            deleted = None
            d = q.get("deleted")
            if d:
                if not isinstance(d, dict) or not d.get("column"):
                    return aqua_error("90005", f"query {name}: deleted needs a column")
                d_fmt = str(d.get("format", "Boolean"))
                if d_fmt.lower() not in ("boolean", "numeric"):
                    return aqua_error("90005", f"query {name}: deleted format {d_fmt!r} is "
                                      "not Boolean or Numeric")
                if not (_truthy(d.get("forceExport")) or _truthy(q.get("forceExport"))):
                    return aqua_error("90012", "Stateless AQuA does not support deleted "
                                      f"columns (query {name}); set deleted.forceExport "
                                      "to true")
                deleted = (str(d["column"]), d_fmt)
            batches.append(Batch(new_id(), name, q["query"], str(q.get("apiVersion") or
                                 "91.0"), parsed, deleted=deleted))
        job_fault = self.faults.take(("aqua_submit", "aqua_job"),
                                     ("slow_job", "job_error", "job_aborted"))
        job = Job(
            id=new_id(), request=req, batches=batches, created=time.monotonic(),
            start_time=dt.datetime.now(ZoneInfo(self.store.tz)).strftime("%Y-%m-%d %H:%M:%S"),
            step=self.step, utc=_truthy(req.get("dateTimeUtc")),
            labels=_truthy(req.get("useQueryLabels", False)),
            null=str(req.get("nullReplacement") or ""),
        )
        if job_fault is not None:
            p = job_fault.params
            if job_fault.kind == "slow_job":
                job.slow = float(p.get("seconds") or 5.0)
            elif job_fault.kind == "job_error":
                job.fail = ("error", str(p.get("code") or "90010"),
                            str(p.get("message") or "Internal error: the job failed "
                                "(injected by the sandbox)"))
            else:
                job.fail = ("aborted", str(p.get("code") or "90007"),
                            str(p.get("message") or "The job was aborted (injected by "
                                "the sandbox)"))
        try:
            self._execute(job)
        except zoql.ZoqlError as e:
            return aqua_error("90005", "There is a syntax error in one of the queries in the "
                              f"AQuA input: {e.message}")
        job.created = time.monotonic()  # the status clock starts once the snapshot is taken
        with self._lock:
            self.jobs[job.id] = job
            for b in job.batches:
                b.file_id = new_id()
                self.files[b.file_id] = (job, b)
            while len(self.jobs) > RETAINED_JOBS:  # dicts keep insertion order: oldest first
                old = self.jobs.pop(next(iter(self.jobs)))
                for ob in old.batches:
                    self.files.pop(ob.file_id or "", None)
        return json_response(self._view(job, "submitted"))

    def _active(self) -> int:
        now = time.monotonic()
        with self._lock:
            return sum(1 for j in self.jobs.values() if j.status(now) in
                       ("submitted", "executing"))

    def _execute(self, job: Job) -> None:
        now = utcnow()
        for b in job.batches:
            q = b.parsed
            assert q is not None
            if b.deleted is not None:
                full = self.store.frame(q.spec.name)
                if self.store.has_deleted(q.spec.name):
                    keep = pl.col(DELETED_AT).is_null() | (pl.col(DELETED_AT) >= now - RETENTION)
                    full = full.filter(keep)
                frame = zoql.run(q, full, self.store.tz, extra=[DELETED_AT])
                b.frame = frame.with_columns(
                    pl.col(DELETED_AT).is_not_null().alias("_deleted")).drop(DELETED_AT)
            else:
                b.frame = zoql.run(q, self.store.live(q.spec.name), self.store.tz)

    # -- poll / cancel -------------------------------------------------------------------------
    def _view(self, job: Job, status: str) -> dict[str, Any]:
        req = job.request
        batch_status = {"submitted": "pending", "executing": "executing",
                        "completed": "completed", "cancelled": "aborted",
                        "error": "aborted", "aborted": "aborted"}[status]
        out: dict[str, Any] = {
            "id": job.id, "name": req.get("name"), "status": status,
            "version": str(req.get("version", "1.0")), "format": "CSV",
            "encrypted": str(req.get("encrypted") or "none"), "sourceData": "LIVE",
            "startTime": job.start_time, "useLastCompletedJobQueries": False,
            "dateTimeUtc": job.utc,
        }
        if req.get("partner"):
            out["partner"] = req["partner"]
        if job.fail and status == job.fail[0]:
            out["errorCode"] = job.fail[1]
            out["message"] = job.fail[2]
        out["batches"] = []
        for b in job.batches:
            bv: dict[str, Any] = {
                "batchId": b.batch_id, "name": b.name, "query": b.query,
                "batchType": "zoqlexport", "apiVersion": b.api_version,
                "status": batch_status, "localizedStatus": batch_status, "full": True,
                "recordCount": b.frame.height if status == "completed" and b.frame is not None
                else 0,
                "message": job.fail[2] if job.fail and status == job.fail[0] else "",
            }
            if b.deleted is not None:
                bv["deleted"] = {"column": b.deleted[0], "format": b.deleted[1]}
            if status == "completed":
                bv["fileId"] = b.file_id
            out["batches"].append(bv)
        return out

    def get(self, job_id: str) -> Response:
        with self._lock:
            job = self.jobs.get(job_id)
        if job is None:
            return aqua_error("90002", f"Invalid job id: {job_id}", 404)
        return json_response(self._view(job, job.status(time.monotonic())))

    def cancel(self, job_id: str) -> Response:
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None:
                return aqua_error("90003", f"Invalid job id for cancel: {job_id}", 404)
            status = job.status(time.monotonic())
            if status in TERMINAL:
                return aqua_error("90003", f"Job {job_id} is already {status} and cannot be "
                                  "cancelled", 400)
            job.cancelled = True
            for b in job.batches:
                self.files.pop(b.file_id or "", None)
        return json_response(self._view(job, "cancelled"))

    # -- files ---------------------------------------------------------------------------------
    def file(self, file_id: str) -> Response:
        with self._lock:
            hit = self.files.get(file_id)
        if hit is not None and hit[0].status(time.monotonic()) != "completed":
            hit = None
        fault = self.faults.take("aqua_file", ("file_404", "truncate_csv", "drop_connection"))
        if hit is None or (fault is not None and fault.kind == "file_404"):
            return v1_error(404, 50000040, f"File {file_id} not found (AQuA result files are "
                            "purged after 3 days)")
        job, b = hit
        assert b.parsed is not None and b.frame is not None
        chunks = render.csv_chunks(b.parsed.spec, b.frame, b.parsed.names, self.store.tz,
                                   utc=job.utc, labels=job.labels, deleted=b.deleted,
                                   null=job.null, raw=self.store.raw_bytes(b.parsed.spec.name))
        resp = Response(content_type="text/csv;charset=UTF-8",
                        headers={"Content-Disposition": f'attachment; filename="{file_id}.csv"'})
        if fault is not None and fault.kind == "truncate_csv":
            resp.body = _truncate(b"".join(chunks), float(fault.params.get("fraction") or 0.5))
        elif fault is not None and fault.kind == "drop_connection":
            resp.stream = chunks
            resp.drop_after = fault.params.get("after")
            if resp.drop_after is None:
                resp.drop_after = -1  # half of the first data chunk
        else:
            resp.stream = chunks
        return resp


def _truncate(body: bytes, fraction: float) -> bytes:
    """Cut ``body`` in the middle of a row near ``fraction`` of its length."""
    cut = max(1, min(len(body) - 1, int(len(body) * fraction)))
    start = body.rfind(b"\n", 0, cut) + 1
    end = body.find(b"\n", start)
    end = len(body) if end < 0 else end
    if end - start < 2:  # an empty line: cut inside the previous row instead
        prev = body.rfind(b"\n", 0, max(0, start - 1)) + 1
        start, end = prev, start - 1
    return body[: start + max(1, (end - start) // 2)]

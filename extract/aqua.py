"""AQuA stateless bulk export (docs/zuora-api.md §2.3), streamed into typed Parquet.

One job holds one ZOQL query per catalogue object (``select`` every catalogue field), so all
objects come from one read-only snapshot transaction in Zuora. Full exports have no WHERE
(deletions are found by absence); incremental ones filter ``UpdatedDate >= start and
UpdatedDate < end`` with explicit-offset UTC literals and ask for deleted rows with
``deleted.forceExport`` (stateless mode refuses deleted columns without it: 90012).

What can go wrong, and what happens:

==========================================  ===============================================
submit answers 200 + ``errorCode`` 90028    concurrency limit: wait (backoff) and resubmit,
(or HTTP 429)                               bounded (the 429 is the client's retry)
submit answers another ``errorCode``        :class:`AquaJobError` naming the query/objects
job ends ``error`` / ``aborted``            resubmitted (bounded, ``job_attempts``) unless
                                            the code is permanent; then :class:`AquaJobError`
                                            naming the objects and Zuora's code and message
job ends ``cancelled`` (not by us)          :class:`AquaJobError` (someone cancelled it)
job still running at ``timeout``            cancelled (``DELETE``), :class:`AquaTimeoutError`
file 404 (purged)                           the whole job is resubmitted (the window is
                                            restarted, never advanced past missing data)
truncated / non-rectangular CSV, rows ≠     the file is downloaded again (bounded), then the
``recordCount``, connection dropped         job is resubmitted; finally :class:`AquaFileError`
header ≠ the catalogue's fields             :class:`AquaFileError` at once (schema problem)
a value that is not a valid Zuora value     the record is quarantined (a reject naming key,
(not UTF-8, "1.5" in an integer field, an   field, rule and the raw bytes escaped; the file
unparsable number or date, out of range)    and record number when the key is unreadable);
                                            never retried: downloading again changes nothing
==========================================  ===============================================

Retries are for transport faults only (framing, counts, connections). Files are streamed
(``requests`` ``iter_content`` → pyarrow's streaming CSV reader) in blocks, every column read
as raw bytes (so one undecodable value cannot fail the file), each block decoded and typed by
the catalogue (``core.values.decode_utf8`` and ``parse_frame``) and appended to the
object's Parquet file; values that fail go to the rejects file, never dropped. NUL bytes
inside values are Zuora data and are kept exactly. A record whose key cannot be read is not
written (it has no identity); its reject names the file and the record number instead.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from core.catalog import ObjectSpec
from core.profile import zuora_enums, zuora_keys
from core.snapshot import IterStream, ParquetSink
from core.values import LOCATION, REJECTS, decode_utf8, empty_frame, parse_frame
from extract.client import (
    ZuoraClient,
    ZuoraConnectionError,
    ZuoraError,
    ZuoraRequestError,
    ZuoraServerError,
    iter_body,
    jitter,
    retrying,
)

DELETED_COLUMN = "IsDeleted"  # the deleted column we ask AQuA for (incremental mode)
DELETED_FLAG = "_deleted"  # its name in the delta Parquet files
TERMINAL = ("completed", "error", "aborted", "cancelled")
RUNNING = ("submitted", "executing", "pending", "queued", "processing")
CONCURRENCY_CODES = {"90028"}
# Codes that no resubmission fixes (docs/zuora-api.md §2.3 error codes).
PERMANENT_CODES = {"90004", "90005", "90009", "90012", "90014", "90015", "90016", "90017",
                   "90018", "90019", "90020", "90021"}


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------
class AquaError(ZuoraError):
    """An AQuA export failed; ``objects`` are the catalogue objects it concerns."""

    def __init__(self, message: str, *, objects: tuple[str, ...] = (), code: str | None = None,
                 job_id: str | None = None, retryable: bool = False) -> None:
        super().__init__(message, route="aqua")
        self.objects = objects
        self.code = code
        self.job_id = job_id
        self.retryable = retryable


class AquaJobError(AquaError):
    """Zuora refused the job or the job ended ``error``/``aborted``/``cancelled``."""


class AquaTimeoutError(AquaError):
    """The job did not finish within the overall timeout (it was cancelled)."""


class AquaFileError(AquaError):
    """A result file was missing, truncated, non-rectangular or not what was asked for."""


class _Resubmit(Exception):
    """Internal: this job cannot deliver; submit a new one (bounded)."""

    def __init__(self, error: AquaError) -> None:
        super().__init__(str(error))
        self.error = error


class _Again(Exception):
    """Internal: retry the same step (submit after 90028; download of one file)."""

    def __init__(self, error: AquaError) -> None:
        super().__init__(str(error))
        self.error = error


# ------------------------------------------------------------------------------------------
# Queries
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    """``UpdatedDate >= start and UpdatedDate < end`` (UTC, aware). ``start`` None = from the
    beginning (an object without a high-water mark in an incremental run)."""

    start: dt.datetime | None
    end: dt.datetime


def zoql_datetime(t: dt.datetime) -> str:
    """A ZOQL dateTime literal with an explicit UTC offset (never tenant-zone wall time, which
    is ambiguous in the DST fall-back hour)."""
    if t.tzinfo is None:
        raise ValueError("ZOQL literals need an aware datetime")
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def zoql_string(value: str) -> str:
    """A value inside a quoted ZOQL literal (backslash escapes, as Zuora reads them)."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


@dataclass(frozen=True)
class ExportQuery:
    spec: ObjectSpec
    window: Window | None = None  # None = full export (no WHERE)
    deleted: bool = False  # ask for deleted rows (forceExport); incremental only
    # incremental: records asked for by key whatever their UpdatedDate (the base snapshot's
    # quarantined keys, until they parse or a full export settles them)
    keys: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.spec.name

    def zoql(self) -> str:
        text = f"select {', '.join(self.spec.field_names)} from {self.spec.name}"
        if self.window is not None:
            conds = []
            if self.window.start is not None:
                conds.append(f"UpdatedDate >= '{zoql_datetime(self.window.start)}'")
            conds.append(f"UpdatedDate < '{zoql_datetime(self.window.end)}'")
            # ZOQL: "and" binds tighter than "or"
            text += " where " + " or ".join([" and ".join(conds)] + [
                f"Id = '{zoql_string(k)}'" for k in self.keys])
        return text

    def body(self) -> dict[str, Any]:
        q: dict[str, Any] = {"name": self.name, "type": "zoqlexport", "query": self.zoql()}
        if self.deleted:
            q["deleted"] = {"column": DELETED_COLUMN, "format": "Boolean", "forceExport": True}
        return q

    @property
    def expected_header(self) -> list[str]:
        names = [f"{self.name}.{f}" for f in self.spec.field_names]
        return ([f"{self.name}.{DELETED_COLUMN}"] if self.deleted else []) + names


def job_request(queries: list[ExportQuery], name: str) -> dict[str, Any]:
    """The stateless AQuA job body (version 1.0: never partner/project)."""
    return {
        "format": "csv", "version": "1.0", "name": name[:100], "encrypted": "none",
        "useQueryLabels": True, "dateTimeUtc": True, "nullReplacement": "",
        "sourceData": "LIVE", "queries": [q.body() for q in queries],
    }


# ------------------------------------------------------------------------------------------
# Options and results
# ------------------------------------------------------------------------------------------
@dataclass
class AquaOptions:
    poll_interval: float = 5.0  # first poll delay; grows ×1.5 up to poll_max
    poll_max: float = 60.0
    timeout: float = 3 * 3600.0  # overall, per job (Zuora kills a query at 3 h)
    job_attempts: int = 3  # submissions per export (resubmits on error/aborted/file loss)
    file_attempts: int = 3  # downloads of one file before the job is resubmitted
    submit_attempts: int = 8  # submissions while Zuora says 90028 (concurrency)
    download_workers: int = 4  # files downloaded in parallel (well under 40 concurrent)
    block_size: int = 4 << 20  # CSV bytes per typed block
    file_route: str = "/v1/file/{id}"  # or "/v1/files/{id}"; both are Zuora's
    download_timeout: tuple[float, float] = (10.0, 300.0)
    require_final_newline: bool = True
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


@dataclass
class ObjectExport:
    """What one object's export produced."""

    name: str
    path: Path  # typed Parquet (catalogue schema, + _deleted when deleted rows were asked)
    rows: int = 0
    deleted_rows: int = 0
    rejects: int = 0
    rejects_path: Path | None = None
    record_count: int | None = None  # Zuora's count for the batch
    bytes: int = 0  # CSV bytes received
    csv_sha256: list[str] = field(default_factory=list)
    file_ids: list[str] = field(default_factory=list)
    downloads: int = 0  # file downloads, retries included
    duration_s: float = 0.0
    query: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "deleted_rows": self.deleted_rows, "rejects": self.rejects,
            "record_count": self.record_count, "bytes_downloaded": self.bytes,
            "csv_sha256": self.csv_sha256, "file_ids": self.file_ids,
            "downloads": self.downloads, "duration_s": round(self.duration_s, 3),
            "query": self.query,
        }


@dataclass
class ExportResult:
    objects: dict[str, ObjectExport]
    job_ids: list[str]
    attempts: int
    submitted_at: dt.datetime  # UTC, aware: when the job that delivered was submitted
    duration_s: float
    events: list[str] = field(default_factory=list)  # what went wrong and was recovered

    def as_dict(self) -> dict[str, Any]:
        return {"job_ids": self.job_ids, "attempts": self.attempts,
                "submitted_at": self.submitted_at.isoformat(),
                "duration_s": round(self.duration_s, 3), "events": self.events}


# ------------------------------------------------------------------------------------------
# The exporter
# ------------------------------------------------------------------------------------------
class AquaExporter:
    """Runs one AQuA export: submit, poll, download, type, write."""

    def __init__(self, client: ZuoraClient, tenant_tz: str,
                 options: AquaOptions | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.client = client
        self.tz = tenant_tz
        self.opt = options or AquaOptions()
        self.progress = progress or (lambda _msg: None)
        self.events: list[str] = []
        self.active_job: str | None = None  # submitted and not yet seen terminal

    # -- public ----------------------------------------------------------------------------
    def export(self, queries: list[ExportQuery], out_dir: Path, rejects_dir: Path,
               job_name: str, on_submitted: Callable[[], None] | None = None) -> ExportResult:
        """Export ``queries`` in one job into ``out_dir/<Object>.parquet``. ``on_submitted``
        runs once, right after the first successful submission (the extractor exports the
        local tables then, while Zuora works)."""
        if not queries:
            raise ValueError("nothing to export")
        started = self.opt.clock()
        job_ids: list[str] = []
        attempts = 0
        hook = [on_submitted]

        def one_job() -> tuple[dict[str, ObjectExport], dt.datetime]:
            nonlocal attempts
            attempts += 1
            submitted_at = dt.datetime.now(dt.UTC)
            job_id = self._submit(queries, job_name)
            job_ids.append(job_id)
            self.active_job = job_id
            if hook[0] is not None:
                fn, hook[0] = hook[0], None
                fn()
            job = self._poll(job_id, queries)
            return self._download_all(job, queries, out_dir, rejects_dir), submitted_at

        try:
            results, submitted_at = retrying(
                self.client.policy, self.client.stats, retry_on=_Resubmit,
                attempts=self.opt.job_attempts)(one_job)
        except _Resubmit as e:
            err = e.error
            raise type(err)(
                f"{err} (gave up after {attempts} AQuA job submission(s))",
                objects=err.objects, code=err.code, job_id=err.job_id) from None
        return ExportResult(results, job_ids, attempts, submitted_at,
                            self.opt.clock() - started, list(self.events))

    # -- submit ----------------------------------------------------------------------------
    def _submit(self, queries: list[ExportQuery], job_name: str) -> str:
        body = job_request(queries, job_name)
        names = tuple(q.name for q in queries)

        def attempt() -> str:
            resp = self.client.post_json("/v1/batch-query/", body, route="aqua_submit")
            code = str(resp.get("errorCode") or "") if isinstance(resp, dict) else ""
            if code in CONCURRENCY_CODES:
                self._event(f"submit: {code} concurrent job limit exceeded; waiting")
                raise _Again(AquaJobError(
                    f"AQuA refused the job: concurrent job limit exceeded ({code}: "
                    f"{resp.get('message')})", objects=names, code=code, retryable=True))
            if code or not isinstance(resp, dict) or not resp.get("id"):
                msg = resp.get("message") if isinstance(resp, dict) else resp
                about = _objects_named(str(msg), names) or names
                raise AquaJobError(
                    f"AQuA refused the export job for {', '.join(about)}: errorCode "
                    f"{code or 'none'}: {msg}", objects=about, code=code or None)
            return str(resp["id"])

        try:
            return retrying(self.client.policy, self.client.stats, retry_on=_Again,
                            attempts=self.opt.submit_attempts)(attempt)
        except _Again as e:
            raise AquaJobError(f"{e.error} — still refused after {self.opt.submit_attempts} "
                               "submissions", objects=names, code=e.error.code) from None

    # -- poll ------------------------------------------------------------------------------
    def _poll(self, job_id: str, queries: list[ExportQuery]) -> dict[str, Any]:
        names = tuple(q.name for q in queries)
        deadline = self.opt.clock() + self.opt.timeout
        delay = self.opt.poll_interval
        status = "submitted"
        while True:
            job = self.client.get_json(f"/v1/batch-query/jobs/{job_id}", route="aqua_job")
            status = str(job.get("status") or "").lower()
            if status in TERMINAL:
                self.active_job = None
                break
            if status not in RUNNING:  # e.g. "failed": never poll an unknown state for hours
                self._cancel(job_id)
                self.active_job = None
                raise AquaJobError(
                    f"AQuA job {job_id} reports the unknown status {status!r} (objects: "
                    f"{', '.join(names)}); cancelled it", objects=names, job_id=job_id)
            if self.opt.clock() + delay > deadline:
                self._cancel(job_id)
                self.active_job = None
                raise AquaTimeoutError(
                    f"AQuA job {job_id} was still '{status}' after {self.opt.timeout:.0f} s "
                    f"(objects: {', '.join(names)}); cancelled it",
                    objects=names, job_id=job_id)
            self.opt.sleep(jitter(delay))
            delay = min(self.opt.poll_max, delay * 1.5)
        if status == "completed":
            bad = [b for b in job.get("batches") or []
                   if str(b.get("status", "")).lower() != "completed"]
            if bad:
                status = "error"
            else:
                return job
        return self._failed(job_id, job, status, names)

    def _failed(self, job_id: str, job: dict[str, Any], status: str,
                names: tuple[str, ...]) -> dict[str, Any]:
        code = str(job.get("errorCode") or "") or None
        batches = job.get("batches") or []
        bad = [b for b in batches if str(b.get("status", "")).lower() != "completed"]
        objects = tuple(str(b.get("name")) for b in bad) or names
        details = "; ".join(
            f"{b.get('name')}: {b.get('status')}" + (f" ({b['message']})" if b.get("message")
                                                    else "") for b in bad)
        msg = (f"AQuA job {job_id} ended '{status}'"
               + (f" with errorCode {code}" if code else "")
               + (f": {job.get('message')}" if job.get("message") else "")
               + f" — objects not exported: {', '.join(objects)}"
               + (f" [{details}]" if details else ""))
        retryable = status in ("error", "aborted") and (code or "") not in PERMANENT_CODES
        err = AquaJobError(msg, objects=objects, code=code, job_id=job_id, retryable=retryable)
        if retryable:
            self._event(f"job {job_id} ended {status} ({code}); resubmitting")
            raise _Resubmit(err)
        raise err

    def cancel_active(self) -> None:
        """Cancel the job still running on Zuora, if any (the run is failing)."""
        if self.active_job is not None:
            self._cancel(self.active_job)
            self.active_job = None

    def _cancel(self, job_id: str) -> None:
        try:
            self.client.delete(f"/v1/batch-query/jobs/{job_id}", route="aqua_job")
        except ZuoraError:
            pass  # best effort: the job may have finished meanwhile

    # -- download --------------------------------------------------------------------------
    def _download_all(self, job: dict[str, Any], queries: list[ExportQuery], out_dir: Path,
                      rejects_dir: Path) -> dict[str, ObjectExport]:
        by_name = {str(b.get("name")): b for b in job.get("batches") or []}
        missing = [q.name for q in queries if q.name not in by_name]
        if missing:
            raise AquaJobError(f"AQuA job {job.get('id')} completed without batches for "
                               f"{', '.join(missing)}", objects=tuple(missing),
                               job_id=job.get("id"))
        workers = max(1, min(self.opt.download_workers, len(queries)))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aqua-dl")
        try:
            futures = {
                q.name: pool.submit(self._download_object, str(job.get("id")), q,
                                    by_name[q.name], out_dir, rejects_dir)
                for q in queries
            }
            # Stop scheduling downloads as soon as one fails: the job is resubmitted or
            # the run fails either way, so the remaining files would be wasted calls.
            wait(futures.values(), return_when=FIRST_EXCEPTION)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        results: dict[str, ObjectExport] = {}
        errors: list[BaseException] = []
        for name, fut in futures.items():
            if fut.cancelled():
                continue
            exc = fut.exception()
            if exc is None:
                results[name] = fut.result()
            else:
                errors.append(exc)
        if errors:
            for e in errors:  # a lost file means the job is useless: resubmit first
                if isinstance(e, _Resubmit):
                    raise e
            raise errors[0]
        return results

    def _download_object(self, job_id: str, q: ExportQuery, batch: dict[str, Any],
                         out_dir: Path, rejects_dir: Path) -> ObjectExport:
        started = self.opt.clock()
        file_ids = [str(f) for f in (batch.get("segments") or [])] or (
            [str(batch["fileId"])] if batch.get("fileId") else [])
        if not file_ids:
            raise _Resubmit(AquaFileError(
                f"{q.name}: AQuA job {job_id} completed without a fileId for the batch",
                objects=(q.name,), job_id=job_id, retryable=True))
        expected = _int_or_none(batch.get("recordCount"))
        result = ObjectExport(q.name, out_dir / f"{q.name}.parquet", record_count=expected,
                              file_ids=file_ids, query=q.zoql())

        def attempt() -> None:
            result.downloads += 1
            self._stream_files(q, file_ids, expected, result, rejects_dir, job_id)

        try:
            retrying(self.client.policy, self.client.stats, retry_on=_Again,
                     attempts=self.opt.file_attempts)(attempt)
        except _Again as e:
            self._event(f"{q.name}: {e.error}; resubmitting the job")
            raise _Resubmit(AquaFileError(
                f"{e.error} (after {self.opt.file_attempts} downloads)", objects=(q.name,),
                job_id=job_id, retryable=True)) from None
        result.duration_s = self.opt.clock() - started
        self.progress(f"{q.name}: {result.rows} rows")
        return result

    def _stream_files(self, q: ExportQuery, file_ids: list[str], expected: int | None,
                      result: ObjectExport, rejects_dir: Path, job_id: str) -> None:
        """Download every file of one batch into one Parquet file (all or nothing)."""
        schema = empty_frame(q.spec).to_arrow().schema
        if q.deleted:
            schema = schema.append(pa.field(DELETED_FLAG, pa.bool_()))
        sink = ParquetSink(result.path, schema, unique=zuora_keys(q.name),
                           enums=zuora_enums(q.name))
        rejects: list[pl.DataFrame] = []
        rows = deleted = nbytes = records = 0
        hashes: list[str] = []
        try:
            for file_id in file_ids:
                n, r, d, b, h = self._stream_one(q, file_id, sink, rejects, job_id)
                records, rows, deleted, nbytes = records + n, rows + r, deleted + d, nbytes + b
                hashes.append(h)
            if expected is not None and records != expected:
                raise _Again(AquaFileError(
                    f"{q.name}: the result file has {records} rows but Zuora reported "
                    f"recordCount {expected} (truncated download?)", objects=(q.name,),
                    job_id=job_id, retryable=True))
            sink.close()
        except BaseException:
            sink.abort()
            raise
        rej = pl.concat(rejects, how="vertical") if rejects else pl.DataFrame(
            schema=REJECTS)
        result.rows, result.deleted_rows, result.bytes = rows, deleted, result.bytes + nbytes
        result.csv_sha256 = hashes
        result.rejects = rej.height
        if rej.height:
            result.rejects_path = rejects_dir / f"{q.name}.parquet"
            rej.write_parquet(result.rejects_path)

    def _stream_one(self, q: ExportQuery, file_id: str, sink: ParquetSink,
                    rejects: list[pl.DataFrame], job_id: str
                    ) -> tuple[int, int, int, int, str]:
        """(records read, rows written, deleted rows, bytes, sha256) of one result file."""
        path = self.opt.file_route.format(id=file_id)
        what = f"{q.name}: file {file_id}"
        try:
            resp = self.client.request("GET", path, route="aqua_file", stream=True,
                                       timeout=self.opt.download_timeout,
                                       headers={"Accept": "text/csv, */*"})
        except ZuoraRequestError as e:
            if e.status in (404, 410):
                self._event(f"{what}: HTTP {e.status} (purged?)")
                raise _Resubmit(AquaFileError(
                    f"{what} is gone (HTTP {e.status}): AQuA files are purged after 3 days; "
                    "the window must be exported again", objects=(q.name,), job_id=job_id,
                    retryable=True)) from None
            raise AquaFileError(f"{what}: {e}", objects=(q.name,), job_id=job_id) from e
        except ZuoraServerError as e:
            raise _Again(AquaFileError(f"{what}: {e}", objects=(q.name,), job_id=job_id,
                                       retryable=True)) from None
        stream = IterStream(iter_body(resp, 1 << 16, what))
        rows = deleted = records = 0
        try:
            if stream.empty():
                raise _Again(AquaFileError(f"{what} is empty (not even a header line)",
                                           objects=(q.name,), job_id=job_id, retryable=True))
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=self.opt.block_size,
                                               use_threads=False),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=_all_bytes(q), strings_can_be_null=True,
                    quoted_strings_can_be_null=False, null_values=[""],
                    auto_dict_encode=False),
            )
            header = reader.schema.names
            self._check_header(q, header, what, job_id)
            for batch in reader:
                r, d = self._write_block(q, batch, sink, rejects, f"file {file_id}", records)
                rows, deleted, records = rows + r, deleted + d, records + batch.num_rows
        except ZuoraConnectionError as e:
            self._event(f"{what}: connection lost after {stream.bytes} bytes")
            raise _Again(AquaFileError(
                f"{what}: the connection dropped after {stream.bytes} bytes "
                f"({type(e.__cause__ or e).__name__})",
                objects=(q.name,), job_id=job_id, retryable=True)) from None
        except pa.ArrowInvalid as e:
            self._event(f"{what}: malformed CSV")
            raise _Again(AquaFileError(
                f"{what}: truncated or non-rectangular CSV after {stream.bytes} bytes ({e})",
                objects=(q.name,), job_id=job_id, retryable=True)) from None
        finally:
            resp.close()
            self.client.stats.add(bytes=stream.bytes)
        if self.opt.require_final_newline and not stream.ended_with_newline:
            self._event(f"{what}: last line not terminated")
            raise _Again(AquaFileError(
                f"{what}: truncated CSV (the last line is not terminated by a newline)",
                objects=(q.name,), job_id=job_id, retryable=True))
        return records, rows, deleted, stream.bytes, stream.sha256.hexdigest()

    def _check_header(self, q: ExportQuery, header: list[str], what: str, job_id: str) -> None:
        want = q.expected_header
        if header == want:
            return
        # Accept bare field names (useQueryLabels ignored) in the same order.
        bare = [h.split(".", 1)[1] if h.startswith(f"{q.name}.") else h for h in header]
        want_bare = [h.split(".", 1)[1] for h in want]
        if bare == want_bare:
            return
        missing = [w for w in want_bare if w not in bare]
        extra = [b for b in bare if b not in want_bare]
        raise AquaFileError(
            f"{what}: the CSV header does not match the catalogue's {q.name} fields"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else "")
            + ("" if missing or extra else "; columns out of order"),
            objects=(q.name,), job_id=job_id)

    def _write_block(self, q: ExportQuery, batch: pa.RecordBatch, sink: ParquetSink,
                     rejects: list[pl.DataFrame], source: str, before: int) -> tuple[int, int]:
        """Decode, type and write one block of raw CSV records; ``before`` records of the
        same file came earlier (record numbers in rejects count from 1 after the header)."""
        if batch.num_rows == 0:
            return 0, 0
        raw = pl.from_arrow(batch)
        assert isinstance(raw, pl.DataFrame)
        names = ([DELETED_FLAG] if q.deleted else []) + q.spec.field_names
        raw.columns = names
        where = pl.select(pl.format(f"{source} record {{}}", pl.int_range(
            before + 1, before + raw.height + 1, dtype=pl.Int64))).to_series().alias(LOCATION)
        dec = decode_utf8(q.spec, raw, names, where)
        text = dec.frame.with_columns(where)
        if dec.rejects.height:
            rejects.append(dec.rejects)
        if dec.unreadable_key.any():  # no identity: the reject names file and record
            text = text.filter(~dec.unreadable_key)
        parsed = parse_frame(q.spec, text.select([*q.spec.field_names, LOCATION]), self.tz)
        typed = parsed.frame
        deleted = 0
        if q.deleted:
            flag = text[DELETED_FLAG].str.strip_chars().str.to_lowercase().is_in(["true", "1"])
            typed = typed.with_columns(flag.alias(DELETED_FLAG))
            deleted = int(flag.sum())
        if parsed.rejects.height:
            rejects.append(parsed.rejects)
        sink.write(typed.to_arrow())
        return typed.height, deleted

    def _event(self, msg: str) -> None:
        self.events.append(msg)
        self.progress(msg)


def _all_bytes(q: ExportQuery) -> dict[str, pa.DataType]:
    """Every column read as raw bytes (decoding and typing are the catalogue's job, per
    value, not pyarrow's, which fails a whole file on one undecodable byte)."""
    names = q.expected_header
    return {n: pa.binary() for n in names + [n.split(".", 1)[1] for n in names]}


def _int_or_none(v: Any) -> int | None:
    try:
        return int(str(v))
    except (TypeError, ValueError):
        return None


def _objects_named(message: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """Objects a Zuora message mentions (e.g. 'query Subscription: ...')."""
    import re

    return tuple(n for n in names if re.search(rf"\b{re.escape(n)}\b", message))


def parquet_rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows

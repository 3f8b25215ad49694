"""run_extract against the sandbox under every fault it can inject: the run either recovers
with a complete snapshot equal to the dataset (typed by core.values.parse_frame), or fails
with an error naming the object(s) and the cause, leaving no snapshot marked complete and no
high-water mark moved."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.snapshot import latest_complete, list_snapshots
from core.state import StateDB
from extract.aqua import AquaFileError, AquaJobError, AquaTimeoutError
from extract.client import ZuoraAuthError, ZuoraRateLimitError, ZuoraServerError
from extract.extractor import ExtractError, SuspectExportError, run_extract
from sandbox.server import SandboxServer
from tests.support.extract import (
    SECRET,
    assert_matches_dataset,
    base_dataset,
    fast_options,
    settings,
)

LAG0 = dt.timedelta(0)


@pytest.fixture(scope="module")
def shared() -> Iterator[SandboxServer]:
    """One server for the tests that do not mutate the tenant (faults are per test)."""
    with SandboxServer(base_dataset(), client_secret=SECRET, job_step_delay=0.01) as s:
        yield s


@pytest.fixture
def srv(shared: SandboxServer) -> Iterator[SandboxServer]:
    shared.clear_faults()
    shared.stats.clear()
    yield shared
    shared.clear_faults()


@pytest.fixture
def own_srv() -> Iterator[SandboxServer]:
    """A server of the test's own, for tests that mutate the tenant."""
    with SandboxServer(base_dataset(), client_secret=SECRET, job_step_delay=0.01) as s:
        yield s


@pytest.fixture(scope="module")
def baseline(shared: SandboxServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding one good snapshot, validated, and its (current) marks."""
    from core.snapshot import latest_complete as newest
    from jobs.lineage import validate_base

    data = tmp_path_factory.mktemp("baseline")
    run(shared, data)
    assert validate_base(settings(shared.url, data), newest(data)).verdict == "passed"
    return data


def run(srv: SandboxServer, data: Path, **kw):
    """The extract step every command shares (jobs.lineage)."""
    from jobs.lineage import extract_step

    opts = kw.pop("options", None) or fast_options()
    return extract_step(settings(srv.url, data), kw.pop("mode", "full"), lag=LAG0,
                        options=opts, **kw)


def assert_failed_cleanly(data: Path, before_complete: str | None = None) -> None:
    done = latest_complete(data)
    assert (done.run_id if done else None) == before_complete
    failed = [s for s in list_snapshots(data) if not s.complete]
    assert failed, "the failed run's snapshot must be kept for diagnosis"
    last = failed[-1]
    assert last.path.name.endswith(".failed") and last.manifest.status == "failed"
    assert last.manifest.error
    assert not list((data / "snapshots").glob(".tmp-*"))


# -- recovery -------------------------------------------------------------------------------
RECOVERABLE = [
    ("aqua_submit", "429", 2, {"retry_after": 1}),
    ("aqua_job", "429", 2, {"retry_after": None, "reset": 2}),
    ("aqua_submit", "concurrency_429", 2, {}),  # AQuA 90028 as an HTTP 429
    ("aqua_submit", "aqua_90028", 2, {}),  # AQuA 90028 as 200 + errorCode
    ("oauth", "5xx", 2, {"status": 503}),
    ("aqua_file", "5xx", 2, {"status": 502}),
    ("aqua_job", "expire_tokens", 1, {}),
    ("aqua_file", "expire_tokens", 1, {}),  # 401 on a streamed download
    ("aqua_submit", "job_aborted", 1, {}),
    ("aqua_file", "truncate_csv", 1, {}),
    ("aqua_file", "truncate_csv", 3, {"fraction": 0.9}),  # re-downloads, then resubmits
    ("aqua_file", "file_404", 1, {}),
    ("aqua_file", "drop_connection", 2, {"after": 3000}),
]


@pytest.mark.parametrize(("route", "kind", "times", "params"), RECOVERABLE,
                         ids=[f"{r}-{k}-x{t}" for r, k, t, _ in RECOVERABLE])
def test_recovers_with_a_complete_correct_snapshot(srv: SandboxServer, tmp_path: Path,
                                                   route, kind, times, params) -> None:
    srv.add_fault(route, kind, times=times, **params)
    m = run(srv, tmp_path)
    assert srv.stats[f"fault:{kind}"] == times, "the fault must really have fired"
    assert m.status == "complete"
    if kind in ("429", "concurrency_429", "5xx"):
        assert m.api["retries"] == times
    snap = latest_complete(tmp_path)
    assert snap is not None and snap.run_id == m.run_id
    snap.verify()
    assert_matches_dataset(snap)
    assert set(m.hwms) == set(m.zuora)
    with StateDB(tmp_path) as st:  # current only once the snapshot's verdict is passed
        assert st.hwms() == {}


def test_job_error_recovery_resubmits_and_reports(srv: SandboxServer, tmp_path: Path) -> None:
    srv.add_fault("aqua_submit", "job_error", times=1)
    m = run(srv, tmp_path)
    assert m.aqua["attempts"] == 2 and len(m.aqua["job_ids"]) == 2
    assert any("resubmitting" in e for e in m.aqua["events"])


@pytest.mark.slow
def test_token_expiry_during_a_long_aqua_poll(tmp_path: Path) -> None:
    """One-second tokens, a job that runs 1.5 s: the poll outlives two tokens; one renewal
    is proactive, one follows a revocation (401) in the middle of the poll."""
    with SandboxServer(base_dataset(), client_secret=SECRET, token_ttl=1.0,
                       job_step_delay=0.01) as s:
        s.add_fault("aqua_submit", "slow_job", seconds=1.5)
        s.add_fault("aqua_job", "expire_tokens", times=1)
        m = run(s, tmp_path, options=fast_options(poll_interval=0.1, poll_max=0.2))
        assert m.status == "complete"
        assert m.api["token_requests"] >= 3
        assert m.api["token_renewals_on_401"] >= 1  # the revocation (more if the box is slow)
        assert_matches_dataset(latest_complete(tmp_path))


# -- clean failures -------------------------------------------------------------------------
FATAL = [
    ("aqua_submit", "429", 99, {"retry_after": 1}, ZuoraRateLimitError, "rate-limited"),
    ("aqua_submit", "aqua_90028", 99, {}, AquaJobError, "90028"),
    ("aqua_job", "5xx", 99, {"status": 503}, ZuoraServerError, "HTTP 503"),
    ("aqua_submit", "job_error", 9, {}, AquaJobError, "ended 'error' with errorCode 90010"),
    ("aqua_file", "truncate_csv", 999, {}, AquaFileError, "truncated"),
    ("aqua_file", "file_404", 999, {}, AquaFileError, "HTTP 404"),
    ("aqua_file", "drop_connection", 999, {}, AquaFileError, "connection dropped"),
    ("*", "expire_tokens", 999, {}, ZuoraAuthError, "401"),
]


@pytest.mark.parametrize(("route", "kind", "times", "params", "cause", "words"), FATAL,
                         ids=[f"{r}-{k}" for r, k, *_ in FATAL])
@pytest.mark.slow
def test_fails_clearly_and_publishes_nothing(srv: SandboxServer, baseline: Path, tmp_path: Path,
                                             route, kind, times, params, cause, words) -> None:
    data = tmp_path / "data"
    shutil.copytree(baseline, data)  # a good snapshot and marks exist before the failure
    first = latest_complete(data)
    with StateDB(data) as st:
        marks = st.hwms()
    assert {m.run_id for m in marks.values()} == {first.run_id}
    srv.add_fault(route, kind, times=times, **params)
    with pytest.raises(ExtractError) as e:
        run(srv, data, options=fast_options(job_attempts=2, attempts=3))
    assert isinstance(e.value.__cause__, cause)
    msg = str(e.value)
    assert words in msg
    assert "Product" in msg or "RatePlan" in msg, "the error must name the object(s)"
    assert "marked failed" in msg
    assert_failed_cleanly(data, first.run_id)
    with StateDB(data) as st:
        assert st.hwms() == marks


def test_file_failure_names_the_one_object(srv: SandboxServer, tmp_path: Path) -> None:
    """Downloads stop at the first object whose file keeps failing; the error names it."""
    srv.add_fault("aqua_file", "truncate_csv", times=999)
    with pytest.raises(ExtractError) as e:
        run(srv, tmp_path, options=fast_options(job_attempts=1, file_attempts=2,
                                                download_workers=1))
    assert isinstance(e.value.__cause__, AquaFileError)
    assert e.value.objects == ("Product",)  # the first object downloaded stops the job
    assert "Product: file" in str(e.value)


def test_permanent_job_error_is_not_resubmitted(srv: SandboxServer, tmp_path: Path) -> None:
    srv.add_fault("aqua_submit", "job_error", times=9, code="90017",
                  message="Objects included in the queries do not support deleted records")
    with pytest.raises(ExtractError, match="90017"):
        run(srv, tmp_path)
    assert srv.stats["fault:job_error"] == 1
    assert_failed_cleanly(tmp_path)


def test_timeout_cancels_the_job(srv: SandboxServer, tmp_path: Path) -> None:
    srv.add_fault("aqua_submit", "slow_job", seconds=30)
    with pytest.raises(ExtractError) as e:
        run(srv, tmp_path, options=fast_options(timeout=0.4))
    assert isinstance(e.value.__cause__, AquaTimeoutError)
    assert "still 'executing'" in str(e.value) and "cancelled it" in str(e.value)
    assert list(srv.aqua.jobs.values())[-1].cancelled
    assert_failed_cleanly(tmp_path)


def test_bad_secret_fails_at_once(srv: SandboxServer, tmp_path: Path) -> None:
    s = settings(srv.url, tmp_path)
    s = type(s)(**{**s.__dict__, "zuora_client_secret": type(s.zuora_client_secret)("nope")})
    with pytest.raises(ExtractError, match="refused the OAuth client credentials"):
        run_extract(s, "full", options=fast_options())
    assert srv.stats["oauth"] == 1
    assert_failed_cleanly(tmp_path)


# -- suspect empty exports ------------------------------------------------------------------
@pytest.mark.slow
def test_zero_rows_where_there_were_rows_fails_unless_allowed(own_srv: SandboxServer,
                                                              tmp_path: Path) -> None:
    srv = own_srv
    first = run(srv, tmp_path)
    for pid in first_ids(tmp_path, "Product"):
        srv.store.delete("Product", pid)
    with pytest.raises(SuspectExportError) as e:
        run(srv, tmp_path)
    assert e.value.objects == ("Product",)
    assert "0 rows for Product (had 13 rows)" in str(e.value)
    assert "allow" in str(e.value)
    assert_failed_cleanly(tmp_path, first.run_id)
    m = run(srv, tmp_path, allow_empty=("Product",))
    assert m.status == "complete" and m.zuora["Product"]["rows"] == 0
    assert latest_complete(tmp_path).run_id == m.run_id


@pytest.mark.slow
def test_suspect_check_applies_to_incremental_merges(own_srv: SandboxServer,
                                                     tmp_path: Path) -> None:
    srv = own_srv
    run(srv, tmp_path)
    for pid in first_ids(tmp_path, "Product"):
        srv.store.delete("Product", pid)
    from tests.support.extract import next_second

    next_second()
    with pytest.raises(SuspectExportError, match="Product"):
        run(srv, tmp_path, mode="incremental")


def first_ids(data: Path, obj: str) -> list[str]:
    return latest_complete(data).read_zuora(obj)["Id"].to_list()


def test_a_second_run_cannot_interleave(srv: SandboxServer, tmp_path: Path) -> None:
    from core.snapshot import SnapshotError, run_lock

    with run_lock(tmp_path), pytest.raises(SnapshotError, match="another extract is running"):
        run(srv, tmp_path)


def test_job_cancelled_by_someone_else_fails(srv: SandboxServer, tmp_path: Path) -> None:
    """A job cancelled outside recon (an admin, another tool) is terminal: no resubmission."""
    import threading

    srv.add_fault("aqua_submit", "slow_job", seconds=5)
    known = set(srv.aqua.jobs)

    def cancel_when_submitted() -> None:
        for _ in range(500):
            new = set(srv.aqua.jobs) - known
            if new:
                srv.aqua.cancel(new.pop())
                return
            threading.Event().wait(0.005)

    t = threading.Thread(target=cancel_when_submitted)
    t.start()
    with pytest.raises(ExtractError, match="ended 'cancelled'") as e:
        run(srv, tmp_path)
    t.join()
    assert isinstance(e.value.__cause__, AquaJobError)
    assert srv.stats["aqua_submit"] == 1
    assert_failed_cleanly(tmp_path)


def test_missing_secret_fails_before_anything(tmp_path: Path) -> None:
    s = settings("http://127.0.0.1:9", tmp_path)
    s = type(s)(**{**s.__dict__, "zuora_client_secret": type(s.zuora_client_secret)(None)})
    with pytest.raises(ExtractError, match="no Zuora client secret configured"):
        run_extract(s, "full")
    assert not (tmp_path / "snapshots").exists()

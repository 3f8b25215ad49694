"""Every sandbox fault kind, observed on the wire with ``requests`` (docs/zuora-api.md §3, §7),
and the CLI fault-spec parser."""

from __future__ import annotations

import time

import pytest
import requests

from sandbox.server import FaultSpecError, SandboxServer, parse_spec
from tests.support.extract import base_dataset
from tests.support.sandbox import get_token

ACCOUNT_QUERY = {"name": "Account", "type": "zoqlexport",
                 "query": "select Id, Name, AccountNumber, UpdatedDate from Account"}


@pytest.fixture(scope="module")
def data_dir():
    # the 60-account tenant (seed 3) the extract tests use, generated once per test process
    return base_dataset()


@pytest.fixture
def srv(data_dir):
    with SandboxServer(data_dir, job_step_delay=0.01) as s:
        yield s


def submit(srv, http, **extra) -> requests.Response:
    return http.post(f"{srv.url}/v1/batch-query/", json={
        "format": "csv", "version": "1.0", "name": "faults", "encrypted": "none",
        "useQueryLabels": True, "dateTimeUtc": True, "queries": [ACCOUNT_QUERY], **extra})


def wait(srv, http, job_id, timeout=10.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"{srv.url}/v1/batch-query/jobs/{job_id}").json()
        if job["status"] in ("completed", "error", "aborted", "cancelled"):
            return job
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} did not finish")


def completed_file(srv, http) -> str:
    job = wait(srv, http, submit(srv, http).json()["id"])
    assert job["status"] == "completed"
    return job["batches"][0]["fileId"]


def query(srv, http) -> requests.Response:
    return http.post(f"{srv.url}/v1/action/query",
                     json={"queryString": "select Id from Product"})


# -- rate limits and server errors ---------------------------------------------------------------

def test_429_with_and_without_retry_after(srv, http):
    srv.add_fault("query", "429", retry_after=7)
    srv.add_fault("query", "429", reset=30)
    r1, r2, r3 = query(srv, http), query(srv, http), query(srv, http)
    assert r1.status_code == 429 and r1.headers["Retry-After"] == "7"
    assert r2.status_code == 429 and "Retry-After" not in r2.headers
    for r in (r1, r2):
        assert r.headers["ratelimit-remaining"] == "0"
        assert "ratelimit-limit" in r.headers and "ratelimit-reset" in r.headers
    assert r2.headers["ratelimit-reset"] == "30"
    assert r3.status_code == 200
    assert srv.stats["fault:429"] == 2


def test_429_times_and_oauth_route(srv):
    srv.add_fault("oauth", "429", times=2, retry_after=1)
    codes = [get_token(srv) for _ in range(3)]
    assert [r.status_code for r in codes] == [429, 429, 200]
    assert codes[0].headers["X-RateLimit-Remaining-minute"] == "0"
    assert codes[0].headers["Retry-After"] == "1"


def test_concurrency_429(srv, http):
    srv.add_fault("aqua_submit", "concurrency_429")
    r = submit(srv, http)
    assert r.status_code == 429
    assert r.headers["Concurrency-Limit-Remaining"] == "0"
    assert r.headers["Concurrency-Limit-Limit"] == "40"
    assert "Concurrency-Limit-Type" in r.headers
    assert str(r.json()["reasons"][0]["code"]).endswith("70")
    assert submit(srv, http).status_code == 200


def test_aqua_90028_as_http_200(srv, http):
    srv.add_fault("aqua_submit", "aqua_90028")
    r = submit(srv, http)
    assert r.status_code == 200
    assert r.json()["errorCode"] == "90028" and r.json()["id"] is None
    assert submit(srv, http).json()["status"] == "submitted"


def test_5xx_burst_and_status(srv, http):
    srv.add_fault("object_query", "5xx", times=2)
    srv.add_fault("object_query", "5xx", status=502, retry_after=2)
    url = f"{srv.url}/object-query/accounts"
    got = [http.get(url) for _ in range(4)]
    assert [r.status_code for r in got] == [503, 503, 502, 200]
    assert got[2].headers["Retry-After"] == "2" and "Retry-After" not in got[0].headers


def test_star_route_fires_on_any_route(srv, http):
    srv.add_fault("*", "5xx")
    assert http.get(f"{srv.url}/v1/batch-query/jobs/x").status_code == 503
    assert query(srv, http).status_code == 200


def test_expire_tokens_mid_run(srv, http):
    srv.add_fault("aqua_job", "expire_tokens")
    job_id = submit(srv, http).json()["id"]
    r = http.get(f"{srv.url}/v1/batch-query/jobs/{job_id}")
    assert r.status_code == 401 and r.json() == {"message": "Authentication error"}
    assert query(srv, http).status_code == 401  # every issued token is gone
    http.headers["Authorization"] = f"Bearer {get_token(srv).json()['access_token']}"
    assert wait(srv, http, job_id)["status"] == "completed"


# -- jobs ----------------------------------------------------------------------------------------

def test_slow_job(srv, http):
    srv.add_fault("aqua_submit", "slow_job", seconds=0.5)
    t0 = time.monotonic()
    job_id = submit(srv, http).json()["id"]
    time.sleep(0.15)
    assert http.get(f"{srv.url}/v1/batch-query/jobs/{job_id}").json()["status"] == "executing"
    assert wait(srv, http, job_id)["status"] == "completed"
    assert time.monotonic() - t0 >= 0.5


@pytest.mark.parametrize("kind,status,code", [("job_error", "error", "90010"),
                                              ("job_aborted", "aborted", "90007")])
def test_job_error_and_aborted(srv, http, kind, status, code):
    srv.add_fault("aqua_submit", kind)
    job = wait(srv, http, submit(srv, http).json()["id"])
    assert job["status"] == status and job["errorCode"] == code and job["message"]
    assert all("fileId" not in b and b["status"] == "aborted" for b in job["batches"])
    srv.add_fault("aqua_job", kind, code="90029", message="took too long")
    job = wait(srv, http, submit(srv, http).json()["id"])
    assert job["errorCode"] == "90029" and job["message"] == "took too long"
    assert wait(srv, http, submit(srv, http).json()["id"])["status"] == "completed"


# -- files ---------------------------------------------------------------------------------------

def test_truncated_csv(srv, http):
    file_id = completed_file(srv, http)
    whole = http.get(f"{srv.url}/v1/file/{file_id}").text
    srv.add_fault("aqua_file", "truncate_csv")
    cut = http.get(f"{srv.url}/v1/files/{file_id}")
    assert cut.status_code == 200  # a complete HTTP response with a broken CSV inside
    assert whole.startswith(cut.text) and len(cut.text) < len(whole)
    assert not cut.text.endswith("\n")
    last = cut.text.splitlines()[-1]
    assert last.count(",") < 3  # the last row is cut mid-row: fewer than 4 columns
    assert http.get(f"{srv.url}/v1/file/{file_id}").text == whole


def test_file_404(srv, http):
    file_id = completed_file(srv, http)
    srv.add_fault("aqua_file", "file_404")
    r = http.get(f"{srv.url}/v1/file/{file_id}")
    assert r.status_code == 404 and r.json()["success"] is False
    assert http.get(f"{srv.url}/v1/file/{file_id}").status_code == 200
    assert http.get(f"{srv.url}/v1/file/unknown").status_code == 404


@pytest.mark.parametrize("params", [{}, {"after": 100}])
def test_drop_connection_mid_download(srv, http, params):
    file_id = completed_file(srv, http)
    srv.add_fault("aqua_file", "drop_connection", **params)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        http.get(f"{srv.url}/v1/file/{file_id}")
    with requests.get(f"{srv.url}/v1/file/{file_id}", headers=http.headers) as r:
        assert r.status_code == 200 and r.text.count("\n") == 61
    assert srv.stats["fault:drop_connection"] == 1


def test_clear_faults(srv, http):
    srv.add_fault("query", "429", times=5)
    srv.clear_faults()
    assert query(srv, http).status_code == 200


# -- fault specs ---------------------------------------------------------------------------------

def test_parse_spec():
    faults = parse_spec("aqua_file:truncate_csv:1, oauth:429:2:retry_after=1,"
                        "aqua_submit:slow_job:seconds=2.5,query:429:retry_after=none")
    assert [(f.route, f.kind, f.times) for f in faults] == [
        ("aqua_file", "truncate_csv", 1), ("oauth", "429", 2), ("aqua_submit", "slow_job", 1),
        ("query", "429", 1)]
    assert faults[1].params == {"retry_after": 1}
    assert faults[2].params == {"seconds": 2.5}
    assert faults[3].params == {"retry_after": None}
    assert parse_spec(None) == [] and parse_spec("") == []


@pytest.mark.parametrize("spec,needle", [
    ("nowhere:429", "'nowhere'"),
    ("oauth:teapot", "'teapot'"),
    ("oauth", "expected route:kind"),
    ("oauth:429:x", "times 'x'"),
    ("oauth:429:1:retry_after=soon", "retry_after='soon'"),
    ("oauth:429:1:color=red", "'color'"),
    ("oauth:truncate_csv", "cannot fire on route 'oauth'"),
    ("query:429:0", "times must be >= 1"),
])
def test_parse_spec_errors_name_the_bad_part(spec, needle):
    with pytest.raises(FaultSpecError) as e:
        parse_spec(f"query:429,{spec}")
    assert needle in str(e.value) and repr(spec) in str(e.value)


def test_add_faults_from_spec_and_bad_add_fault(srv, http):
    srv.add_faults("query:5xx:1:status=500")
    assert query(srv, http).status_code == 500
    with pytest.raises(FaultSpecError, match="unknown fault kind"):
        srv.add_fault("query", "nope")

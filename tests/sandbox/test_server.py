"""The Zuora sandbox server over real HTTP: OAuth, AQuA, ZOQL query/queryMore, Object Query and
the mutation API, against a small generated tenant (docs/zuora-api.md §1, §2, §4.1, §7)."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import time
from zoneinfo import ZoneInfo

import polars as pl
import pytest
import requests

from core import dataset
from core.catalog import get
from core.values import parse_frame
from sandbox.generate.run import Options, generate
from sandbox.server import SandboxError, SandboxServer
from tests.support.sandbox import token

TZ = "America/Los_Angeles"
TERMINAL = ("completed", "error", "aborted", "cancelled")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    # 100 accounts: enough RatePlanCharge rows (> 2,000) for a second ZOQL page.
    out = tmp_path_factory.mktemp("sandbox_tenant")
    generate(Options(accounts=100, seed=3), out)
    return out


@pytest.fixture
def srv(data_dir):
    with SandboxServer(data_dir, job_step_delay=0.02) as s:
        yield s


def typed(name: str, data_dir) -> pl.DataFrame:
    spec = get(name)
    return parse_frame(spec, dataset.read_object(data_dir, spec), TZ).frame


def submit(srv, http, queries, **extra) -> dict:
    body = {"format": "csv", "version": "1.0", "name": "recon-test", "encrypted": "none",
            "useQueryLabels": True, "dateTimeUtc": False, "queries": queries, **extra}
    r = http.post(f"{srv.url}/v1/batch-query/", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def wait(srv, http, job_id: str, timeout: float = 10.0) -> dict:
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"{srv.url}/v1/batch-query/jobs/{job_id}").json()
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in TERMINAL:
            job["_seen"] = seen
            return job
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} still {seen[-1]} after {timeout}s")


def export(srv, http, queries, **extra) -> tuple[dict, list[str]]:
    job = submit(srv, http, queries, **extra)
    assert job["status"] == "submitted" and job["id"]
    job = wait(srv, http, job["id"])
    assert job["status"] == "completed", job
    files = []
    for b in job["batches"]:
        r = http.get(f"{srv.url}/v1/file/{b['fileId']}")
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "text/csv;charset=UTF-8"
        files.append(r.text)
    return job, files


def q(name, query, **kw):
    return {"name": name, "query": query, "type": "zoqlexport", **kw}


def read_csv(text: str, obj: str) -> pl.DataFrame:
    raw = pl.read_csv(io.StringIO(text), infer_schema=False)
    return raw.rename({c: c.removeprefix(f"{obj}.") for c in raw.columns})


def blank_as_null(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(pl.col(pl.String).replace("", None))


# -- OAuth ---------------------------------------------------------------------------------------

def test_oauth_token_shape_and_bearer_checks(srv):
    r = requests.post(f"{srv.url}/oauth/token", data={
        "client_id": "recon", "client_secret": "sandbox-secret",
        "grant_type": "client_credentials"})
    body = r.json()
    assert r.status_code == 200
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert {"access_token", "scope", "jti"} <= set(body)
    assert "X-RateLimit-Remaining-minute" in r.headers and "Zuora-Request-Id" in r.headers
    ok = requests.get(f"{srv.url}/object-query/accounts",
                      headers={"Authorization": f"Bearer {body['access_token']}"})
    assert ok.status_code == 200
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        r = requests.get(f"{srv.url}/object-query/accounts", headers=headers)
        assert r.status_code == 401
        assert r.json() == {"message": "Authentication error"}
        assert "WWW-Authenticate" in r.headers


def test_oauth_rejects_bad_credentials_and_grant(srv):
    bad = requests.post(f"{srv.url}/oauth/token", data={
        "client_id": "recon", "client_secret": "wrong", "grant_type": "client_credentials"})
    assert bad.status_code == 401
    grant = requests.post(f"{srv.url}/oauth/token", data={
        "client_id": "recon", "client_secret": "sandbox-secret", "grant_type": "password"})
    assert grant.status_code == 400


def test_oauth_token_expires(data_dir):
    with SandboxServer(data_dir, token_ttl=0.3) as srv:
        tok = token(srv)
        h = {"Authorization": f"Bearer {tok}"}
        assert requests.get(f"{srv.url}/object-query/products", headers=h).status_code == 200
        time.sleep(0.4)
        r = requests.get(f"{srv.url}/object-query/products", headers=h)
        assert r.status_code == 401 and r.json() == {"message": "Authentication error"}
        h = {"Authorization": f"Bearer {token(srv)}"}  # a new token works again
        assert requests.get(f"{srv.url}/object-query/products", headers=h).status_code == 200


# -- AQuA ----------------------------------------------------------------------------------------

def test_aqua_lifecycle_and_round_trip(data_dir):
    with SandboxServer(data_dir, job_step_delay=0.15) as srv, requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {token(srv)}"
        _lifecycle(srv, http, data_dir)


def _lifecycle(srv, http, data_dir):
    spec = get("Subscription")
    fields = ", ".join(spec.field_names)
    job = submit(srv, http, [q("Subscription", f"select {fields} from Subscription")])
    assert job["status"] == "submitted"
    assert job["batches"][0]["status"] == "pending" and "fileId" not in job["batches"][0]
    job = wait(srv, http, job["id"])
    assert job["_seen"][-2:] == ["executing", "completed"]
    b = job["batches"][0]
    assert b["status"] == "completed" and b["fileId"]
    both = []
    for path in ("file", "files"):  # both download paths serve the file
        r = http.get(f"{srv.url}/v1/{path}/{b['fileId']}")
        assert r.status_code == 200
        both.append(r.text)
    assert both[0] == both[1]
    header = both[0].split("\n", 1)[0].split(",")
    assert header == [f"Subscription.{f}" for f in spec.field_names]
    got = parse_frame(spec, read_csv(both[0], "Subscription"), TZ)
    assert got.rejects.height == 0
    want = typed("Subscription", data_dir)
    assert b["recordCount"] == want.height
    assert blank_as_null(got.frame.sort("Id")).equals(blank_as_null(want.sort("Id")))


def test_aqua_datetimes_tenant_offset_midnight_and_utc(srv, http, data_dir):
    acc = typed("Account", data_dir).sort("Id")
    # make one record's UpdatedDate exactly tenant-zone midnight (PDT) and one in winter (PST)
    midnight = dt.datetime(2025, 7, 1, tzinfo=ZoneInfo(TZ))
    winter = dt.datetime(2025, 1, 15, 9, 30, 5, tzinfo=ZoneInfo(TZ))
    a, b = acc["Id"][0], acc["Id"][1]
    srv.store.update("Account", a, UpdatedDate=midnight)
    srv.store.update("Account", b, UpdatedDate=winter)
    query = [q("Account", "select Id, UpdatedDate from Account")]
    _, (local,) = export(srv, http, query)
    _, (utc,) = export(srv, http, query, dateTimeUtc=True)
    rows = {line.split(",")[0]: line.split(",")[1] for line in local.splitlines()[1:]}
    assert rows[a] == "2025-07-01"  # midnight written date-only, as Zuora does
    assert rows[b] == "2025-01-15T09:30:05-08:00"
    urows = {line.split(",")[0]: line.split(",")[1] for line in utc.splitlines()[1:]}
    assert urows[a] == "2025-07-01T07:00:00+0000"
    assert urows[b] == "2025-01-15T17:30:05+0000"
    # both renderings parse back to the same instants
    p1 = parse_frame(get("Account"), read_csv(local, "Account"), TZ).frame.sort("Id")
    p2 = parse_frame(get("Account"), read_csv(utc, "Account"), TZ).frame.sort("Id")
    assert p1.select("Id", "UpdatedDate").equals(p2.select("Id", "UpdatedDate"))


def test_aqua_incremental_window_and_forced_deletes(srv, http, data_dir):
    charges = typed("RatePlanCharge", data_dir).sort("Id")
    upd, gone = charges["Id"][0], charges["Id"][1]
    t0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=1)
    srv.store.update("RatePlanCharge", upd, Quantity="42.5", Description=None)
    srv.store.delete("RatePlanCharge", gone)
    t1 = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    lo, hi = (t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in (t0, t1))
    window = (f"select Id, Quantity, Description, UpdatedDate from RatePlanCharge "
              f"where UpdatedDate >= '{lo}' and UpdatedDate < '{hi}'")
    deleted = {"column": "IsDeleted", "format": "Boolean", "forceExport": True}
    job, (text,) = export(srv, http, [q("RatePlanCharge", window, deleted=deleted)])
    df = read_csv(text, "RatePlanCharge")
    assert df.columns[0] == "IsDeleted"
    assert sorted(df["Id"].to_list()) == sorted([upd, gone])
    row = df.filter(pl.col("Id") == upd).row(0, named=True)
    assert row["IsDeleted"] == "false" and row["Quantity"] == "42.5"
    assert row["Description"] is None
    assert df.filter(pl.col("Id") == gone)["IsDeleted"][0] == "true"
    # Numeric format; a full export carries the deleted row too, a plain one does not
    numeric = {"column": "Gone", "format": "Numeric", "forceExport": "true"}
    _, (full,) = export(srv, http, [q("C", "select Id from RatePlanCharge", deleted=numeric)])
    full_df = read_csv(full, "RatePlanCharge")
    assert full_df.columns[0] == "Gone" and full_df.height == charges.height
    assert full_df.filter(pl.col("Id") == gone)["Gone"][0] == "1"
    _, (plain,) = export(srv, http, [q("C", "select Id from RatePlanCharge")])
    assert read_csv(plain, "RatePlanCharge").height == charges.height - 1
    # queries no longer see the deleted record
    r = http.post(f"{srv.url}/v1/action/query", json={
        "queryString": f"select Id from RatePlanCharge where Id = '{gone}'"}).json()
    assert r == {"records": [], "size": 0, "done": True}


def test_aqua_stateless_deleted_needs_force_export(srv, http):
    job = submit(srv, http, [q("A", "select Id from Account",
                               deleted={"column": "IsDeleted", "format": "Boolean"})])
    assert job["errorCode"] == "90012" and job["id"] is None


def test_aqua_syntax_and_unknown_names(srv, http):
    for query, needle in [("select Id, Foo from Account", "account.foo"),
                          ("select Id from Invoice", "Invoice"),
                          ("SELECT Id FROM Account", "lower case")]:
        job = submit(srv, http, [q("x", query)])
        assert job["errorCode"] == "90005" and needle in job["message"], job
    assert submit(srv, http, [])["errorCode"] == "90016"
    assert submit(srv, http, [q(f"q{i}", "select Id from Account") for i in range(51)]
                  )["errorCode"] == "90004"


def test_aqua_multi_query_job_and_cancel(srv, http, data_dir):
    job, files = export(srv, http, [q("Account", "select Id, Name from Account"),
                                    q("Product", "select Id, Name, SKU from Product")])
    assert [b["name"] for b in job["batches"]] == ["Account", "Product"]
    assert files[1].splitlines()[0] == "Product.Id,Product.Name,Product.SKU"
    assert len(files[0].splitlines()) == typed("Account", data_dir).height + 1
    # cancel a job still running; a completed job cannot be cancelled
    srv.add_fault("aqua_submit", "slow_job", seconds=5)
    running = submit(srv, http, [q("A", "select Id from Account")])
    r = http.delete(f"{srv.url}/v1/batch-query/jobs/{running['id']}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert http.get(f"{srv.url}/v1/batch-query/jobs/{running['id']}").json()["status"] == \
        "cancelled"
    r = http.delete(f"{srv.url}/v1/batch-query/jobs/{job['id']}")
    assert r.json()["errorCode"] == "90003"
    assert http.get(f"{srv.url}/v1/batch-query/jobs/nope").json()["errorCode"] == "90002"


# -- ZOQL ----------------------------------------------------------------------------------------

def test_zoql_paging_nulls_omitted_and_locator(srv, http, data_dir):
    want = typed("RatePlanCharge", data_dir)
    assert want.height > 2000
    first = http.post(f"{srv.url}/v1/action/query", json={
        "queryString": "select Id, Description, MRR, UpdatedDate from RatePlanCharge"}).json()
    assert first["done"] is False and first["size"] == 2000 and len(first["records"]) == 2000
    assert first["queryLocator"].endswith("-2000")
    records = list(first["records"])
    loc = first["queryLocator"]
    while loc:
        page = http.post(f"{srv.url}/v1/action/queryMore", json={"queryLocator": loc}).json()
        records += page["records"]
        loc = page.get("queryLocator")
        assert page["done"] is (loc is None)
    assert len(records) == want.height
    assert len({r["Id"] for r in records}) == want.height
    nulls = want.filter(pl.col("Description").is_null())["Id"].to_list()
    assert nulls
    by_id = {r["Id"]: r for r in records}
    assert "Description" not in by_id[nulls[0]]  # null fields are omitted
    sample = by_id[want["Id"][0]]
    assert sample["UpdatedDate"].endswith(("-07:00", "-08:00"))
    assert sample["UpdatedDate"][19:23] == ".000"
    assert isinstance(sample["MRR"], float | int)
    # unknown locator
    r = http.post(f"{srv.url}/v1/action/queryMore", json={"queryLocator": "nope-2000"})
    assert r.status_code == 400 and r.json()["Success"] is False
    # conf.batchSize
    small = http.post(f"{srv.url}/v1/action/query", json={
        "queryString": "select Id from Product", "conf": {"batchSize": 5}}).json()
    assert small["size"] == 5 and small["queryLocator"].endswith("-5")


def test_zoql_where_tenant_zone_literals(srv, http, data_dir):
    acc = typed("Account", data_dir).sort("Id")
    a = acc["Id"][0]
    # 2025-03-10 00:30 in Los Angeles (PDT, after the DST switch) = 07:30 UTC
    srv.store.update("Account", a, UpdatedDate=dt.datetime(2025, 3, 10, 7, 30))

    def ids(where: str) -> set[str]:
        r = http.post(f"{srv.url}/v1/action/query", json={
            "queryString": f"select Id, UpdatedDate from Account where {where}"})
        assert r.status_code == 200, r.text
        return {x["Id"] for x in r.json()["records"]}

    assert a in ids("UpdatedDate = '2025-03-10T00:30:00'")  # no offset: tenant wall time
    assert a not in ids("UpdatedDate = '2025-03-10T07:30:00'")
    assert a in ids("UpdatedDate = '2025-03-10T07:30:00Z'")  # offset: converted
    assert a in ids("UpdatedDate = '2025-03-10T00:30:00-07:00'")
    assert a in ids("UpdatedDate = '2025-03-10'")  # date-only: the whole tenant day
    assert a not in ids("UpdatedDate = '2025-03-09'")
    assert a in ids("UpdatedDate >= '2025-03-10' and UpdatedDate < '2025-03-10T01:00:00'")
    assert a not in ids("UpdatedDate > '2025-03-10'")
    rec = http.post(f"{srv.url}/v1/action/query", json={
        "queryString": f"select Id, UpdatedDate from Account where Id = '{a}'"}).json()
    assert rec["records"] == [{"Id": a, "UpdatedDate": "2025-03-10T00:30:00.000-07:00"}]


def test_zoql_errors_name_the_problem(srv, http):
    cases = [("select Id, Foo from Account", "INVALID_FIELD", "account.foo"),
             ("select Id from Nope", "INVALID_TYPE", "Nope"),
             ("select Id from Account where", "MALFORMED_QUERY", "expected"),
             ("select Id from Account where BillCycleDay > 'x'", "INVALID_VALUE",
              "BillCycleDay")]
    for query, code, needle in cases:
        r = http.post(f"{srv.url}/v1/action/query", json={"queryString": query})
        assert r.status_code == 400
        err = r.json()
        assert err["Success"] is False and err["Errors"][0]["Code"] == code
        assert needle in err["Errors"][0]["Message"]


# -- Object Query --------------------------------------------------------------------------------

def test_object_query_paging_and_cursor(srv, http, data_dir):
    want = typed("Account", data_dir)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"pageSize": 37}
        if cursor:
            params["cursor"] = cursor
        r = http.get(f"{srv.url}/object-query/accounts", params=params)
        assert r.status_code == 200
        body = r.json()
        seen += body["data"]
        pages += 1
        cursor = body.get("nextPage")
        if cursor is None:
            break
        state = json.loads(base64.b64decode(cursor))
        assert [s["orderBy"]["field"] for s in state] == ["UpdatedDate", "Id"]
    assert pages == -(-want.height // 37)
    assert len({r["id"] for r in seen}) == want.height == len(seen)
    # Newest first by UpdatedDate then Id (both DESC, as the cursor says): compare instants, not
    # strings (offsets differ across DST), and the exact order the tenant's data implies.
    keys = [(dt.datetime.fromisoformat(r["updatedDate"]), r["id"]) for r in seen]
    assert keys == sorted(keys, reverse=True)
    assert [r["id"] for r in seen] == want.sort(["UpdatedDate", "Id"], descending=True)[
        "Id"].to_list()
    rec = seen[0]
    assert "accountNumber" in rec and "AccountNumber" not in rec
    assert rec["updatedDate"][19:] in ("-07:00", "-08:00") and "." not in rec["updatedDate"]
    assert all(v is not None for v in rec.values())  # nulls omitted by default


def test_object_query_page_size_filter_nulls_and_key(srv, http, data_dir):
    for bad in (0, 100, "x"):
        r = http.get(f"{srv.url}/object-query/subscriptions", params={"pageSize": bad})
        assert r.status_code == 400 and r.json()["success"] is False
    assert len(http.get(f"{srv.url}/object-query/subscriptions").json()["data"]) == 10
    subs = typed("Subscription", data_dir)
    latest = subs.filter(pl.col("IsLatestVersion") & (pl.col("Status") == "Active"))
    got, cursor = [], None
    while True:
        params = {"pageSize": 99, "filter[]": ["status.EQ:Active", "isLatestVersion.EQ:true"]}
        if cursor:
            params["cursor"] = cursor
        body = http.get(f"{srv.url}/object-query/subscriptions", params=params).json()
        got += body["data"]
        cursor = body.get("nextPage")
        if not cursor:
            break
    assert sorted(r["id"] for r in got) == sorted(latest["Id"].to_list())
    cut = "2026-01-01T00:00:00Z"
    newer = http.get(f"{srv.url}/object-query/subscriptions", params={
        "pageSize": 99, "filter[]": f"updatedDate.GT:{cut}"}).json()["data"]
    assert newer and all(r["updatedDate"] > "2025-12-31T16" for r in newer)
    r = http.get(f"{srv.url}/object-query/subscriptions", params={"filter[]": "nope.EQ:1"})
    assert r.status_code == 400 and "nope" in r.json()["reasons"][0]["message"]
    # includeNullFields, fields[], /{key} by id and by number
    sub = subs.filter(pl.col("Notes").is_null()).row(0, named=True)
    one = http.get(f"{srv.url}/object-query/subscriptions/{sub['Id']}").json()
    assert one["id"] == sub["Id"] and "notes" not in one
    full = http.get(f"{srv.url}/object-query/subscriptions/{sub['Id']}",
                    params={"includeNullFields": "true"}).json()
    assert "notes" in full and full["notes"] is None
    few = http.get(f"{srv.url}/object-query/subscriptions/{sub['Id']}",
                   params={"fields[]": "name,status"}).json()
    assert set(few) == {"id", "name", "status"}
    by_name = http.get(f"{srv.url}/object-query/subscriptions/{sub['Name']}").json()
    assert by_name["name"] == sub["Name"] and by_name["isLatestVersion"] is True
    assert http.get(f"{srv.url}/object-query/subscriptions/nope").status_code == 404
    assert http.get(f"{srv.url}/object-query/invoices").status_code == 404


# -- mutations -----------------------------------------------------------------------------------

def test_mutation_api_and_python_store(srv, http, data_dir):
    acc = typed("Account", data_dir).sort("Id")
    a, b = acc["Id"][0], acc["Id"][1]
    r = requests.post(f"{srv.url}/sandbox/mutations", json={
        "op": "update", "object": "Account", "id": a, "fields": {"Name": "Renamed"}})
    assert r.status_code == 200 and r.json()["success"] is True
    r = requests.post(f"{srv.url}/sandbox/mutations", json={
        "op": "delete", "object": "Account", "id": b})
    assert r.status_code == 200
    r = requests.post(f"{srv.url}/sandbox/mutations", json={
        "op": "insert", "object": "Account",
        "fields": {"Name": "New Co", "AccountNumber": "A-NEW", "BillCycleDay": 3}})
    new = r.json()["id"]
    assert len(new) == 32
    rows = http.post(f"{srv.url}/v1/action/query", json={
        "queryString": "select Id, Name, UpdatedDate, CreatedDate from Account"}).json()
    by_id = {x["Id"]: x for x in rows["records"]}
    assert by_id[a]["Name"] == "Renamed" and b not in by_id and by_id[new]["Name"] == "New Co"
    now = dt.datetime.now(ZoneInfo(TZ))
    assert by_id[a]["UpdatedDate"][:10] == now.strftime("%Y-%m-%d")
    r = requests.post(f"{srv.url}/sandbox/mutations", json={
        "op": "update", "object": "Account", "id": b, "fields": {"Name": "x"}})
    assert r.status_code == 404
    r = requests.post(f"{srv.url}/sandbox/mutations", json={
        "op": "update", "object": "Account", "id": a, "fields": {"Nope": "x"}})
    assert r.status_code == 400 and "Nope" in r.json()["message"]
    with pytest.raises(SandboxError, match="Invoice"):
        srv.store.update("Invoice", a, Name="x")
    with pytest.raises(SandboxError, match="already exists"):
        srv.store.insert("Account", {"Id": a})
    assert srv.stats["sandbox_mutation"] == 5 and srv.stats["query"] == 1


def test_common_headers(srv, http):
    r = http.post(f"{srv.url}/v1/action/query", json={"queryString": "select Id from Product"},
                  headers={"Zuora-Track-Id": "recon-run-1"})
    assert r.headers["Zuora-Track-Id"] == "recon-run-1"
    assert len(r.headers["Zuora-Request-Id"]) == 36
    for h in ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset",
              "Concurrency-Limit-Type", "Concurrency-Limit-Limit",
              "Concurrency-Limit-Remaining"):
        assert h in r.headers
    big = http.post(f"{srv.url}/v1/action/query",
                    json={"queryString": "select Id, Name from Account"})
    assert big.headers.get("Content-Encoding") == "gzip"  # requests asks for gzip


def test_zoql_locator_expires_when_idle(data_dir):
    with SandboxServer(data_dir, locator_ttl=0.2, preload=False) as srv, \
            requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {token(srv)}"
        first = http.post(f"{srv.url}/v1/action/query", json={
            "queryString": "select Id from Product", "conf": {"batchSize": 2}}).json()
        nxt = http.post(f"{srv.url}/v1/action/queryMore",
                        json={"queryLocator": first["queryLocator"]}).json()
        assert nxt["size"] == 2
        time.sleep(0.3)
        r = http.post(f"{srv.url}/v1/action/queryMore",
                      json={"queryLocator": nxt["queryLocator"]})
        assert r.status_code == 400 and "expired" in r.json()["Errors"][0]["Message"]


def test_object_query_sort_sw_in_filters(srv, http, data_dir):
    charges = typed("RatePlanCharge", data_dir)
    params = {"pageSize": 99, "sort[]": "chargeType.ASC",
              "filter[]": ["chargeNumber.SW:C-0000001", "chargeType.IN:[Recurring,Usage]"]}
    got, cursor = [], None
    while True:
        body = http.get(f"{srv.url}/object-query/rate-plan-charges",
                        params={**params, **({"cursor": cursor} if cursor else {})}).json()
        got += body["data"]
        cursor = body.get("nextPage")
        if not cursor:
            break
    want = charges.filter(pl.col("ChargeNumber").str.starts_with("C-0000001")
                          & pl.col("ChargeType").is_in(["Recurring", "Usage"]))
    assert want.height and sorted(r["id"] for r in got) == sorted(want["Id"].to_list())
    kinds = [r["chargeType"] for r in got]
    assert kinds == sorted(kinds)
    assert all(isinstance(r.get("mRR", 0.0), float | int) for r in got)


def test_store_typed_matches_dataset_and_python_values(srv, data_dir):
    want = typed("RatePlanCharge", data_dir)
    assert srv.store.typed("RatePlanCharge").equals(want)
    cid = want["Id"][0]
    srv.store.update("RatePlanCharge", cid, Quantity=7, IsLastSegment="false",
                     EffectiveEndDate=dt.date(2030, 1, 31),
                     UpdatedDate=dt.datetime(2030, 1, 1, 12, tzinfo=dt.UTC))
    row = srv.store.typed("RatePlanCharge").filter(pl.col("Id") == cid).row(0, named=True)
    assert row["Quantity"] == 7 and row["IsLastSegment"] is False
    assert row["EffectiveEndDate"] == dt.date(2030, 1, 31)
    assert row["UpdatedDate"] == dt.datetime(2030, 1, 1, 12)
    with pytest.raises(SandboxError, match="not a valid"):
        srv.store.update("RatePlanCharge", cid, Quantity="lots")


def test_serve_entry_point_with_fault_spec(data_dir):
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("from sandbox.server import serve; import sys; "
            f"serve(sys.argv[1], port={port}, faults='oauth:429:1:retry_after=3')")
    proc = subprocess.Popen([sys.executable, "-c", code, str(data_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/oauth/token"
        form = {"client_id": "recon", "client_secret": "sandbox-secret",
                "grant_type": "client_credentials"}
        deadline = time.monotonic() + 20
        while True:
            try:
                r = requests.post(url, data=form, timeout=2)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        assert r.status_code == 429 and r.headers["Retry-After"] == "3"
        assert requests.post(url, data=form, timeout=2).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert "faults armed: oauth:429x1" in out and "stopped" in out

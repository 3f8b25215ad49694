"""The Zuora HTTP client over real HTTP against the sandbox: tokens (renewed before expiry and
once on a 401, never looping), bounded retries honouring Retry-After, then ratelimit-reset,
then jittered backoff, and the per-run Zuora-Track-Id."""

from __future__ import annotations

import time

import pytest

from extract.client import (
    ZuoraAuthError,
    ZuoraClient,
    ZuoraRateLimitError,
    ZuoraServerError,
    make_track_id,
)
from sandbox.server import SandboxServer
from tests.support.extract import SECRET, Sleeps, base_dataset, policy

JOB = "/v1/batch-query/jobs/unknown"  # any authenticated route; 404 body is fine for us


def client(srv: SandboxServer, sleeps: Sleeps | None = None, attempts: int = 4,
           **kw) -> ZuoraClient:
    return ZuoraClient(srv.url, "recon", SECRET, track_id="run-1",
                       policy=policy(attempts, sleeps), **kw)


def submit_body() -> dict:
    return {"format": "csv", "version": "1.0", "queries": [
        {"name": "Product", "type": "zoqlexport", "query": "select Id from Product"}]}


def test_token_cached_and_track_id_sent(srv: SandboxServer) -> None:
    c = client(srv)
    for _ in range(3):
        r = c.request("POST", "/v1/batch-query/", route="aqua_submit", json=submit_body())
        assert r.headers["Zuora-Track-Id"] == "recon-run-1"
    assert c.stats.token_requests == 1
    assert srv.stats["oauth"] == 1


def test_track_id_is_valid_for_zuora() -> None:
    tid = make_track_id("20261122T223935Z:a;b\"c'd" + "x" * 100)
    assert len(tid) <= 64 and not set(tid) & set(":;\"'")


def test_retry_after_is_honoured_for_real(srv: SandboxServer) -> None:
    srv.add_fault("aqua_submit", "429", times=1, retry_after=1)
    c = ZuoraClient(srv.url, "recon", SECRET, policy=policy(4, Sleeps(scale=1.0)))
    t = time.monotonic()
    c.post_json("/v1/batch-query/", submit_body(), route="aqua_submit")
    assert time.monotonic() - t >= 1.0
    assert c.stats.waits == [1.0] and c.stats.retries == 1


def test_ratelimit_reset_used_without_retry_after(srv: SandboxServer) -> None:
    srv.add_fault("aqua_submit", "429", times=2, retry_after=None, reset=3)
    sleeps = Sleeps()
    c = client(srv, sleeps)
    body = c.post_json("/v1/batch-query/", submit_body(), route="aqua_submit")
    assert body["id"]
    assert sleeps.calls == [3.0, 3.0]


def test_retry_after_wins_over_ratelimit_reset(srv: SandboxServer) -> None:
    srv.add_fault("aqua_submit", "429", times=1, retry_after=2, reset=7)
    sleeps = Sleeps()
    client(srv, sleeps).post_json("/v1/batch-query/", submit_body(), route="aqua_submit")
    assert sleeps.calls == [2.0]


def test_concurrency_429_uses_jittered_backoff(srv: SandboxServer) -> None:
    """A concurrency 429 has requests left in the rate window: ratelimit-reset (seconds to
    the window's end) would be the wrong wait; exponential backoff with jitter is used."""
    srv.add_fault("aqua_submit", "concurrency_429", times=3)
    sleeps = Sleeps()
    client(srv, sleeps).post_json("/v1/batch-query/", submit_body(), route="aqua_submit")
    assert len(sleeps.calls) == 3
    assert all(0 <= s <= 0.01 for s in sleeps.calls)


def test_429_retries_are_bounded(srv: SandboxServer) -> None:
    srv.add_fault("aqua_submit", "429", times=50, retry_after=1)
    sleeps = Sleeps()
    c = client(srv, sleeps, attempts=4)
    with pytest.raises(ZuoraRateLimitError, match="still rate-limited .* after 4 attempts"):
        c.post_json("/v1/batch-query/", submit_body(), route="aqua_submit")
    assert srv.stats["aqua_submit"] == 4
    assert sleeps.calls == [1.0, 1.0, 1.0]


def test_server_wait_is_capped(srv: SandboxServer) -> None:
    srv.add_fault("aqua_submit", "429", times=1, retry_after=100000)
    sleeps = Sleeps()
    client(srv, sleeps).post_json("/v1/batch-query/", submit_body(), route="aqua_submit")
    assert sleeps.calls == [30.0]  # policy.max_server_wait in the tests


def test_5xx_burst_recovers_and_persistent_5xx_fails(srv: SandboxServer) -> None:
    srv.add_fault("aqua_submit", "5xx", times=2, status=503)
    c = client(srv)
    assert c.post_json("/v1/batch-query/", submit_body(), route="aqua_submit")["id"]
    srv.add_fault("aqua_submit", "5xx", times=50, status=502)
    with pytest.raises(ZuoraServerError, match="HTTP 502"):
        c.post_json("/v1/batch-query/", submit_body(), route="aqua_submit")


def test_oauth_429_is_retried(srv: SandboxServer) -> None:
    srv.add_fault("oauth", "429", times=2, retry_after=1)
    sleeps = Sleeps()
    c = client(srv, sleeps)
    assert c.token()
    assert sleeps.calls == [1.0, 1.0]


def test_expired_token_renewed_once_on_401(srv: SandboxServer) -> None:
    c = client(srv)
    c.token()
    srv.add_fault("aqua_submit", "expire_tokens", times=1)
    assert c.post_json("/v1/batch-query/", submit_body(), route="aqua_submit")["id"]
    assert c.stats.token_requests == 2 and c.stats.token_renewals_on_401 == 1


def test_never_loops_on_401(srv: SandboxServer) -> None:
    """A server that 401s every data call: one renewal, then a clear error."""
    srv.add_fault("aqua_submit", "expire_tokens", times=1000)
    c = client(srv)
    with pytest.raises(ZuoraAuthError, match="401 with a freshly issued OAuth token"):
        c.post_json("/v1/batch-query/", submit_body(), route="aqua_submit")
    assert c.stats.token_requests == 2
    assert srv.stats["oauth"] == 2 and srv.stats["aqua_submit"] == 2


def test_token_renewed_before_expiry() -> None:
    with SandboxServer(base_dataset(), client_secret=SECRET, token_ttl=1.0) as s:
        c = client(s)
        c.post_json("/v1/batch-query/", submit_body(), route="aqua_submit")
        time.sleep(1.0)
        c.post_json("/v1/batch-query/", submit_body(), route="aqua_submit")
        assert c.stats.token_requests == 2
        assert c.stats.token_renewals_on_401 == 0  # renewed proactively, never refused


def test_bad_credentials_fail_without_retrying(srv: SandboxServer) -> None:
    c = ZuoraClient(srv.url, "recon", "wrong", policy=policy())
    with pytest.raises(ZuoraAuthError, match="check zuora.client_id and zuora.client_secret"):
        c.token()
    assert srv.stats["oauth"] == 1
    with pytest.raises(ZuoraAuthError, match="no Zuora client secret"):
        ZuoraClient(srv.url, "recon", None)


def test_secret_never_in_errors(srv: SandboxServer) -> None:
    c = ZuoraClient(srv.url, "recon", "s3cr3t-value", policy=policy())
    with pytest.raises(ZuoraAuthError) as e:
        c.token()
    assert "s3cr3t-value" not in str(e.value) and "s3cr3t-value" not in repr(c.__dict__)


def test_connection_refused_is_bounded() -> None:
    sleeps = Sleeps()
    c = ZuoraClient("http://127.0.0.1:9", "recon", SECRET, policy=policy(3, sleeps),
                    timeout=(0.5, 0.5))
    with pytest.raises(ZuoraServerError, match="failed after 3 attempts"):
        c.token()
    assert len(sleeps.calls) == 2

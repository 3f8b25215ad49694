"""The Zuora HTTP client: one ``requests.Session``, OAuth tokens, retries, per-run tracking.

What it does on every call (docs/zuora-api.md §1, §3):

* **OAuth client credentials** (``POST /oauth/token``, form-encoded). The token is cached and
  renewed *before* it expires (a margin of ``min(300 s, expires_in / 10)``), and renewed
  **once** when a call answers 401: the call is resent once with the fresh token and a second
  401 is an error, never a loop. ``expires_in`` missing means 3600 s (as iron_bank assumes).
* **Retries** (``tenacity``) on 429, 500/502/503/504 and dropped or timed-out connections,
  with a bounded number of attempts. The wait before the next attempt is, in this order:
  ``Retry-After`` (429 and 503), ``ratelimit-reset`` (429 only), else exponential backoff
  with full jitter (``random(0, min(cap, base·2ⁿ))``). Server-requested waits are capped at
  ``RetryPolicy.max_server_wait`` so a bogus header cannot park a nightly run for hours.
* **Tracking**: a ``Zuora-Track-Id`` per run on every request (≤ 64 ASCII characters,
  without ``: ; " '``), so Zuora support can find the run's calls.
* **Accounting**: calls, retries, seconds waited, token requests and bytes received, for the
  snapshot manifest.

The backoff base, cap, attempt count and even the sleep function are injectable
(:class:`RetryPolicy`), so tests run the real retry logic with tiny or recorded sleeps.
Thread-safe: several downloads may share one client (token renewal is serialised).
"""

from __future__ import annotations

import email.utils
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
import tenacity
from tenacity import RetryCallState

from core.config import Secret, Settings
from core.errors import ReconError, TransientError

if TYPE_CHECKING:
    from core.inbox.budget import Budget

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# what requests raises when the network, not Zuora, failed: retried here, wrapped when it is not
CONNECTION_ERRORS = (requests.ConnectionError, requests.Timeout,
                     requests.exceptions.ChunkedEncodingError)
_JSON = {"Accept": "application/json"}
_TRACK_ID_BAD = re.compile(r"[^\x21-\x7e]|[:;\"']")


MISSING_SECRET = ("no Zuora client secret configured: set zuora.client_secret (or "
                  "zuora.client_secret_file) or RECON_ZUORA_CLIENT_SECRET")


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------
class ZuoraError(ReconError):
    """Zuora could not be talked to, or refused a request. ``route`` names the endpoint."""

    def __init__(self, message: str, *, route: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.route = route
        self.status = status


class ZuoraAuthError(ZuoraError):
    """The OAuth token could not be obtained, or a fresh token was refused (401 twice)."""


class ZuoraRateLimitError(ZuoraError, TransientError):
    """Still rate- or concurrency-limited (429) after the bounded number of attempts."""


class ZuoraServerError(ZuoraError, TransientError):
    """Zuora kept failing (5xx, dropped connections) after the bounded number of attempts."""


class ZuoraConnectionError(ZuoraServerError):
    """The connection to Zuora dropped or timed out while a response body was being read
    (after the request itself succeeded). Transient, like every :class:`ZuoraServerError`:
    ``requests``' own exceptions never leave this module, so the floors above need not know
    the HTTP library to tell a passing network failure from a real one."""


class ZuoraRequestError(ZuoraError):
    """Zuora rejected the request itself (a 4xx other than 401/429): not worth retrying."""


# ------------------------------------------------------------------------------------------
# Policy and accounting
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Defaults suit production; tests pass tiny values or a fake sleep."""

    attempts: int = 6  # total tries per request (first try included)
    backoff_base: float = 1.0  # seconds; exponential backoff: random(0, min(cap, base·2ⁿ))
    backoff_cap: float = 60.0
    max_server_wait: float = 900.0  # cap on Retry-After / ratelimit-reset
    sleep: Callable[[float], None] = time.sleep


@dataclass
class ApiStats:
    """Counters for the manifest. Updated under a lock (downloads run in threads)."""

    calls: int = 0
    retries: int = 0
    waited_s: float = 0.0
    token_requests: int = 0
    token_renewals_on_401: int = 0
    bytes: int = 0
    by_route: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    waits: list[float] = field(default_factory=list)  # every retry wait, in order
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: float) -> None:
        with self._lock:
            for k, v in deltas.items():
                setattr(self, k, getattr(self, k) + v)

    def record_call(self, route: str, status: int | str) -> None:
        with self._lock:
            self.calls += 1
            self.by_route[route] += 1
            self.by_status[str(status)] += 1

    def record_wait(self, seconds: float) -> None:
        with self._lock:
            self.retries += 1
            self.waited_s += seconds
            self.waits.append(seconds)

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.calls, "retries": self.retries,
                "waited_s": round(self.waited_s, 3), "token_requests": self.token_requests,
                "token_renewals_on_401": self.token_renewals_on_401, "bytes": self.bytes,
                "by_route": dict(self.by_route), "by_status": dict(self.by_status),
            }


def make_track_id(run_id: str) -> str:
    """A valid ``Zuora-Track-Id`` for a run: ``recon-<run_id>``, cleaned and ≤ 64 chars."""
    return _TRACK_ID_BAD.sub("-", f"recon-{run_id}")[:64]


# ------------------------------------------------------------------------------------------
# Retry plumbing
# ------------------------------------------------------------------------------------------
class _Retryable(Exception):
    """Raised inside an attempt when the outcome is worth another try."""

    def __init__(self, reason: str, response: requests.Response | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.response = response


def _header_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent/garbage."""
    if value is None:
        return None
    value = value.strip()
    m = re.match(r"^\d+(\.\d+)?", value)
    if m:
        return float(m.group(0))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def server_wait(response: requests.Response) -> tuple[float | None, str]:
    """The wait the server asks for, and which header said so.

    ``Retry-After`` on 429 and 503; then, on 429, ``ratelimit-reset`` (seconds until the most
    exhausted window resets) unless ``ratelimit-remaining`` says requests are left (then the
    429 is a concurrency limit, which frees up in about a second: backoff fits better).
    """
    h = response.headers
    if response.status_code in (429, 503):
        ra = _header_seconds(h.get("Retry-After"))
        if ra is not None:
            return ra, "retry-after"
    if response.status_code == 429:
        reset = _header_seconds(h.get("RateLimit-Reset"))
        remaining = _header_seconds(h.get("RateLimit-Remaining"))
        if reset is not None and (remaining is None or remaining <= 0):
            return reset, "ratelimit-reset"
    return None, "backoff"


class _Wait(tenacity.wait.wait_base):
    """tenacity wait: server headers first, else full-jitter exponential backoff."""

    def __init__(self, policy: RetryPolicy, stats: ApiStats) -> None:
        self.policy = policy
        self.stats = stats
        self.backoff = tenacity.wait_random_exponential(
            multiplier=policy.backoff_base, max=policy.backoff_cap
        )

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait: float | None = None
        if isinstance(exc, _Retryable) and exc.response is not None:
            wait, _ = server_wait(exc.response)
        if wait is None:
            wait = self.backoff(retry_state)
        return min(max(0.0, wait), self.policy.max_server_wait)


def retrying(policy: RetryPolicy, stats: ApiStats, retry_on: type[BaseException] = _Retryable,
             attempts: int | None = None) -> tenacity.Retrying:
    """A tenacity ``Retrying`` with recon's wait rule (also used by the AQuA module)."""
    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts or policy.attempts),
        wait=_Wait(policy, stats),
        retry=tenacity.retry_if_exception_type(retry_on),
        sleep=policy.sleep,
        before_sleep=lambda rs: stats.record_wait(rs.upcoming_sleep),
        reraise=True,
    )


def iter_body(response: requests.Response, chunk_size: int, what: str) -> Iterator[bytes]:
    """The streamed body of ``response`` in chunks; a connection that drops or times out
    mid-body raises :class:`ZuoraConnectionError` (transient) instead of ``requests``' own
    exception, so callers handle one typed error."""
    try:
        yield from response.iter_content(chunk_size=chunk_size)
    except CONNECTION_ERRORS as e:
        raise ZuoraConnectionError(f"{what}: the connection dropped while reading the "
                                   f"response ({type(e).__name__}: {e})",
                                   route=what) from e


def _excerpt(response: requests.Response, limit: int = 300) -> str:
    try:
        text = response.text
    except Exception:  # body unreadable (dropped mid-way): the status says enough
        return ""
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")


# ------------------------------------------------------------------------------------------
# The client
# ------------------------------------------------------------------------------------------
class ZuoraClient:
    """Authenticated, retrying access to one Zuora tenant (or the sandbox)."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: Secret | str | None,
        *,
        track_id: str | None = None,
        policy: RetryPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 120.0),
        zuora_version: str | None = None,
        session: requests.Session | None = None,
        stats: ApiStats | None = None,
        token_margin: float = 300.0,
        budget: Budget | None = None,
    ) -> None:
        secret = client_secret if isinstance(client_secret, Secret) else Secret(client_secret)
        if not secret:
            raise ZuoraAuthError(MISSING_SECRET, route="oauth")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._secret = secret
        self.track_id = make_track_id(track_id or uuid.uuid4().hex)
        self.policy = policy or RetryPolicy()
        self.timeout = timeout
        self.stats = stats or ApiStats()
        self.token_margin = token_margin
        # the tenant's request budget shared with every recon process (core.inbox.budget);
        # None (the default): this client alone decides its pace, as before issue 15
        self.budget = budget
        self.session = session or requests.Session()
        self.session.headers.update({
            "Zuora-Track-Id": self.track_id,
            "Accept-Encoding": "gzip",
            "User-Agent": "recon-extract/0.1",
        })
        if zuora_version:
            self.session.headers["Zuora-Version"] = zuora_version
        self._token: str | None = None
        self._token_expires = 0.0  # time.monotonic() deadline (margin already subtracted)
        self._token_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> ZuoraClient:
        return cls(settings.zuora_base_url, settings.zuora_client_id,
                   settings.zuora_client_secret, **kwargs)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> ZuoraClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tokens ----------------------------------------------------------------------------
    def token(self) -> str:
        """A valid bearer token, fetched or renewed when missing or about to expire."""
        with self._token_lock:
            if self._token is None or time.monotonic() >= self._token_expires:
                self._fetch_token()
            assert self._token is not None
            return self._token

    def _renew_after_401(self, rejected: str) -> str:
        with self._token_lock:
            if self._token == rejected:  # another thread may have renewed already
                self._token = None
                self.stats.add(token_renewals_on_401=1)
                self._fetch_token()
            assert self._token is not None
            return self._token

    def _fetch_token(self) -> None:
        form = {"client_id": self.client_id, "client_secret": self._secret.get(),
                "grant_type": "client_credentials"}

        def attempt() -> requests.Response:
            resp = self._send("POST", "/oauth/token", route="oauth", data=form,
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
            if resp.status_code in RETRY_STATUSES:
                raise _Retryable(f"HTTP {resp.status_code}", resp)
            return resp

        self.stats.add(token_requests=1)
        resp = self._run_with_retries(attempt, "oauth", "POST /oauth/token")
        if resp.status_code in (400, 401, 403):
            raise ZuoraAuthError(
                f"Zuora refused the OAuth client credentials (HTTP {resp.status_code} on "
                f"POST /oauth/token: {_excerpt(resp)}); check zuora.client_id and "
                "zuora.client_secret", route="oauth", status=resp.status_code)
        if resp.status_code != 200:
            raise ZuoraAuthError(
                f"POST /oauth/token answered HTTP {resp.status_code}: {_excerpt(resp)}",
                route="oauth", status=resp.status_code)
        try:
            body = resp.json()
            token = body["access_token"]
        except (ValueError, KeyError, TypeError) as e:
            raise ZuoraAuthError(
                f"POST /oauth/token answered 200 without an access_token ({_excerpt(resp)})",
                route="oauth", status=200) from e
        try:
            ttl = float(body.get("expires_in") or 3600)
        except (TypeError, ValueError):
            ttl = 3600.0
        margin = min(self.token_margin, ttl / 10)
        self._token = str(token)
        self._token_expires = time.monotonic() + ttl - margin

    # -- requests --------------------------------------------------------------------------
    def _send(self, method: str, path: str, *, route: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        kwargs.setdefault("timeout", self.timeout)
        slot = self.budget.acquire() if self.budget is not None else None
        try:
            resp = self.session.request(method, url, **kwargs)
        except CONNECTION_ERRORS as e:
            self.stats.record_call(route, "connection")
            raise _Retryable(f"{type(e).__name__}: {e}") from e
        finally:
            if slot is not None and self.budget is not None:
                self.budget.release(slot)
        if resp.status_code == 429 and self.budget is not None:
            wait, _ = server_wait(resp)
            if wait:  # every process sharing the budget waits too, not only this one
                self.budget.defer(min(wait, self.policy.max_server_wait))
        self.stats.record_call(route, resp.status_code)
        if not kwargs.get("stream"):
            self.stats.add(bytes=len(resp.content))
        return resp

    def _run_with_retries(self, attempt: Callable[[], requests.Response], route: str,
                          what: str) -> requests.Response:
        try:
            return retrying(self.policy, self.stats)(attempt)
        except _Retryable as e:
            n = self.policy.attempts
            resp = e.response
            if resp is not None and resp.status_code == 429:
                raise ZuoraRateLimitError(
                    f"{what}: still rate-limited (HTTP 429) after {n} attempts; "
                    f"last answer: {_excerpt(resp)}", route=route, status=429) from None
            status = resp.status_code if resp is not None else None
            detail = f"HTTP {status}: {_excerpt(resp)}" if resp is not None else e.reason
            raise ZuoraServerError(f"{what}: failed after {n} attempts ({detail})",
                                   route=route, status=status) from None

    def request(self, method: str, path: str, *, route: str, json: Any = None,
                params: dict | None = None, stream: bool = False,
                timeout: tuple[float, float] | None = None,
                headers: dict[str, str] | None = None) -> requests.Response:
        """Send an authenticated request; returns the response when its status is 2xx, else
        raises a typed :class:`ZuoraError`. Retries as described in the module docstring; a
        401 renews the token once for the whole call."""
        what = f"{method} {path}"
        renewed = False
        extra = dict(headers or {})

        def attempt() -> requests.Response:
            nonlocal renewed
            token = self.token()
            resp = self._send(method, path, route=route, json=json, params=params,
                              stream=stream, timeout=timeout or self.timeout,
                              headers={**extra, "Authorization": f"Bearer {token}"})
            if resp.status_code == 401:
                resp.close()
                if renewed:
                    raise ZuoraAuthError(
                        f"{what}: HTTP 401 again after renewing the OAuth token once; not "
                        "retrying (check the client's permissions)", route=route, status=401)
                renewed = True
                token = self._renew_after_401(token)
                resp = self._send(method, path, route=route, json=json, params=params,
                                  stream=stream, timeout=timeout or self.timeout,
                                  headers={**extra, "Authorization": f"Bearer {token}"})
                if resp.status_code == 401:
                    resp.close()
                    raise ZuoraAuthError(
                        f"{what}: HTTP 401 with a freshly issued OAuth token; not retrying "
                        "(check the client's permissions)", route=route, status=401)
            if resp.status_code in RETRY_STATUSES:
                raise _Retryable(f"HTTP {resp.status_code}", resp)
            return resp

        resp = self._run_with_retries(attempt, route, what)
        if 200 <= resp.status_code < 300:
            return resp
        raise ZuoraRequestError(f"{what}: HTTP {resp.status_code}: {_excerpt(resp)}",
                                route=route, status=resp.status_code)

    def get_json(self, path: str, *, route: str, params: dict | None = None) -> Any:
        return _json(self.request("GET", path, route=route, params=params, headers=_JSON), path)

    def post_json(self, path: str, body: Any, *, route: str) -> Any:
        return _json(self.request("POST", path, route=route, json=body, headers=_JSON), path)

    def delete(self, path: str, *, route: str) -> requests.Response:
        return self.request("DELETE", path, route=route, headers=_JSON)


def _json(resp: requests.Response, path: str) -> Any:
    try:
        return resp.json()
    except ValueError as e:
        raise ZuoraServerError(f"{path}: answered {resp.status_code} with a body that is not "
                               f"JSON: {_excerpt(resp)}", status=resp.status_code) from e


def jitter(seconds: float, fraction: float = 0.1) -> float:
    """``seconds`` ± ``fraction`` (poll intervals, so many runs do not beat in step)."""
    return max(0.0, seconds * (1 + random.uniform(-fraction, fraction)))

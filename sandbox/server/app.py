"""The HTTP server: routing, auth, rate-limit headers, generic faults, and writing responses
(JSON, gzip when asked, files streamed with chunked transfer encoding)."""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sandbox.server.aqua import Aqua
from sandbox.server.callouts import Callouts, config_of
from sandbox.server.faults import GENERIC, FaultBook, parse_spec
from sandbox.server.oauth import TokenIssuer
from sandbox.server.object_query import ObjectQuery
from sandbox.server.query import Zoql
from sandbox.server.store import Store, tenant_zone
from sandbox.server.wire import (
    Response,
    SandboxError,
    actions_error,
    aqua_error,
    json_response,
    v1_error,
)

RATE_LIMIT = 50_000  # per minute, production tenant [D-RL]
RATE_LIMIT_HEADER = "2250000, 50000;w=60, 2250000;w=3600, 27000000;w=86400"
CONCURRENCY_LIMIT = 40
GZIP_MIN = 1000


class _RateWindow:
    """A one-minute request counter, for realistic ``ratelimit-*`` headers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._minute = 0
        self._count = 0

    def hit(self) -> tuple[int, int]:
        now = time.time()
        with self._lock:
            minute = int(now // 60)
            if minute != self._minute:
                self._minute, self._count = minute, 0
            self._count += 1
            remaining = max(0, RATE_LIMIT - self._count)
        return remaining, max(1, int(60 - now % 60))


class SandboxServer:
    """A Zuora tenant over HTTP, served from a dataset directory (docs/sandbox.md "Dataset format").

    With ``callout_url`` every mutation sends Zuora's callouts to that receiver
    (:mod:`sandbox.server.callouts`; the other ``callout_*`` options are its delivery knobs,
    ``None`` meaning Zuora's default)."""

    def __init__(self, data_dir: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                 tenant_tz: str | None = None, client_id: str = "recon",
                 client_secret: str = "sandbox-secret", token_ttl: float = 3600.0,
                 job_step_delay: float = 0.05, locator_ttl: float = 900.0,
                 preload: bool = True, verbose: bool = False,
                 callout_url: str | None = None, callout_auth: str | tuple[str, str] | None = None,
                 callout_secret: str | None = None, callout_preemptive: bool | None = None,
                 callout_loss: float | None = None, callout_delay: float | None = None,
                 callout_reorder: float | None = None,
                 callout_retry_interval: float | None = None,
                 callout_attempts: int | None = None, callout_seed: int | None = None,
                 callout_log: str | Path | None = None, callout_senders: int | None = None,
                 callout_signature_header: str | None = None,
                 callout_paths: Mapping[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.tenant_tz = tenant_zone(self.data_dir, tenant_tz)
        self.stats: Counter = Counter()
        self.store = Store(self.data_dir, self.tenant_tz)
        self.faults = FaultBook(self.stats)
        self.tokens = TokenIssuer(client_id, client_secret, token_ttl)
        self.aqua = Aqua(self.store, self.faults, job_step_delay)
        self.zoql = Zoql(self.store, locator_ttl)
        self.object_query = ObjectQuery(self.store)
        self.rate = _RateWindow()
        self.verbose = verbose
        self.preload = preload
        self._preloader: threading.Thread | None = None
        self._host, self._port = host, port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._inflight = 0
        self._inflight_lock = threading.Lock()
        self.callouts: Callouts | None = None
        if callout_url:
            self.callouts = Callouts(self.store, config_of(
                callout_url, auth=callout_auth, secret=callout_secret,
                preemptive=callout_preemptive, loss=callout_loss, delay=callout_delay,
                reorder=callout_reorder, retry_interval=callout_retry_interval,
                attempts=callout_attempts, seed=callout_seed, log=callout_log,
                senders=callout_senders, signature_header=callout_signature_header,
                paths=callout_paths))

    # -- lifecycle -----------------------------------------------------------------------------
    def _bind(self) -> ThreadingHTTPServer:
        if self._httpd is None:
            httpd = ThreadingHTTPServer((self._host, self._port), _Handler)
            httpd.daemon_threads = True
            httpd.sandbox = self  # type: ignore[attr-defined]
            self._httpd = httpd
        return self._httpd

    def _warm(self) -> None:
        try:
            self.store.preload()
        except Exception as e:  # surfaced again, with context, by the first request
            print(f"zuora sandbox: loading {self.data_dir} failed: {e}", file=sys.stderr)

    def start(self) -> SandboxServer:
        """Serve in a daemon thread. With ``preload`` the dataset loads in the background
        (a request for an object not loaded yet waits for it)."""
        httpd = self._bind()
        if self.preload and self._preloader is None:
            self._preloader = threading.Thread(target=self._warm, name="zuora-sandbox-load",
                                               daemon=True)
            self._preloader.start()
        if self._thread is None:
            self._thread = threading.Thread(target=httpd.serve_forever,
                                            kwargs={"poll_interval": 0.1},
                                            name="zuora-sandbox", daemon=True)
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._bind().serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        if self._httpd is not None:
            if self._thread is not None:
                self._httpd.shutdown()
                self._thread.join(timeout=5)
            self._httpd.server_close()
        self._httpd, self._thread = None, None
        if self.callouts is not None:
            self.callouts.close()
            self.callouts = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._bind().server_address[:2]
        return f"http://{host}:{port}"

    # -- callouts ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def mutation_batch(self) -> Iterator[None]:
        """Store mutations in this block are one Zuora order: one Order Processed for all the
        subscriptions they touch, sent when the block ends (no callouts: a plain block)."""
        with self.callouts.batch() if self.callouts else contextlib.nullcontext():
            yield

    def drain_callouts(self, timeout: float) -> bool:
        """Wait until no callout is queued, held back or in flight (retries included); whether
        that happened within ``timeout`` seconds (True at once without callouts)."""
        return self.callouts is None or self.callouts.sender.drain(timeout)

    def callout_report(self) -> dict[str, Any]:
        """Every callout by outcome (sent, dropped, failed, pending) with its kind and keys."""
        if self.callouts is None:
            return {"enabled": False, "sent": [], "dropped": [], "failed": [], "pending": [],
                    "counts": {"sent": 0, "dropped": 0, "failed": 0, "pending": 0}}
        return self.callouts.sender.report()

    # -- faults --------------------------------------------------------------------------------
    def add_fault(self, route: str, kind: str, times: int = 1, **params: Any) -> None:
        self.faults.add(route, kind, times, **params)

    def add_faults(self, spec: str | None) -> None:
        """Arm faults from a CLI spec ``route:kind[:times][:key=value...],...``."""
        self.faults.extend(parse_spec(spec))

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- requests ------------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: dict[str, str],
               body: bytes) -> tuple[str, Response]:
        """(route, response) for one request; ``headers`` keys are lower case."""
        parts = urlsplit(target)
        path = unquote(parts.path)
        params = parse_qsl(parts.query, keep_blank_values=True)
        route, call = self._route(method, path, params, headers, body)
        if route is None:
            return "unknown", json_response(
                {"message": f"no route for {method} {path} in the Zuora sandbox"}, 404)
        self.stats[route] += 1
        if route.startswith("sandbox"):
            return route, call()
        fault = self.faults.take(route, GENERIC)
        if fault is not None:
            if fault.kind == "expire_tokens":
                self.tokens.expire_all()
            else:
                return route, self._fault_response(route, fault.kind, fault.params)
        if route != "oauth":
            denied = self.tokens.check(headers.get("authorization"))
            if denied is not None:
                return route, denied
        return route, call()

    def _route(self, method: str, path: str, params: list[tuple[str, str]],
               headers: dict[str, str], body: bytes) -> tuple[str | None, Any]:
        seg = [s for s in path.split("/") if s]

        def js(fn, family: str = "aqua"):
            def call() -> Response:
                try:
                    data = json.loads(body or b"{}")
                except ValueError as e:
                    msg = f"request body is not JSON: {e}"
                    if family == "actions":
                        return actions_error(400, "MALFORMED_QUERY", msg)
                    if family == "sandbox":
                        return json_response({"success": False, "message": msg}, 400)
                    return aqua_error("90005", msg, 400)
                return fn(data)
            return call

        if method == "POST" and path == "/oauth/token":
            return "oauth", lambda: self.tokens.issue(body, headers.get("content-type", ""))
        if method == "POST" and seg == ["v1", "batch-query"]:
            return "aqua_submit", js(self.aqua.submit)
        if len(seg) == 4 and seg[:3] == ["v1", "batch-query", "jobs"]:
            if method == "GET":
                return "aqua_job", lambda: self.aqua.get(seg[3])
            if method == "DELETE":
                return "aqua_job", lambda: self.aqua.cancel(seg[3])
        if method == "GET" and len(seg) == 3 and seg[:2] in (["v1", "file"], ["v1", "files"]):
            return "aqua_file", lambda: self.aqua.file(seg[2])
        if method == "POST" and path.rstrip("/") == "/v1/action/query":
            return "query", js(self.zoql.query, "actions")
        if method == "POST" and path.rstrip("/") == "/v1/action/queryMore":
            return "query_more", js(self.zoql.query_more, "actions")
        if method == "GET" and seg[:1] == ["object-query"] and len(seg) in (2, 3):
            return "object_query", lambda: self.object_query.get(seg[1:], params)
        if method == "POST" and path.rstrip("/") == "/sandbox/mutations":
            return "sandbox_mutation", js(self._mutation, "sandbox")
        if method == "GET" and path.rstrip("/") == "/sandbox/callouts":
            return "sandbox_callouts", lambda: json_response(self.callout_report())
        if method == "GET" and path.rstrip("/") == "/sandbox/stats":
            return "sandbox_stats", lambda: json_response(dict(self.stats))
        return None, None

    def _mutation(self, data: Any) -> Response:
        """One mutation ``{op, object, id, fields}``, or ``{"mutations": [...]}``: a batch
        applied in order as one Zuora order (one Order Processed callout); a failing one stops
        the batch, the ones before it stay applied (the message says how many)."""
        if isinstance(data, dict) and "mutations" in data:
            batch = data["mutations"]
            if not isinstance(batch, list) or not all(isinstance(m, dict) for m in batch):
                return json_response({"success": False, "message": "mutations must be a list "
                                      "of {op, object, id, fields} objects"}, 400)
            results: list[dict[str, Any]] = []
            with self.mutation_batch():
                for i, m in enumerate(batch):
                    try:
                        results.append(self._apply(m))
                    except SandboxError as e:
                        return json_response({"success": False, "applied": results, "message":
                                              f"mutation {i + 1} of {len(batch)}: {e} (the "
                                              f"{len(results)} before it were applied)"},
                                             _status_of(e))
            return json_response({"success": True, "results": results})
        if not isinstance(data, dict):
            return json_response({"success": False, "message": "body must be a JSON object"},
                                 400)
        try:
            return json_response({"success": True, **self._apply(data)})
        except SandboxError as e:
            return json_response({"success": False, "message": str(e)}, _status_of(e))

    def _apply(self, data: dict[str, Any]) -> dict[str, Any]:
        op, obj, id_ = data.get("op"), data.get("object"), data.get("id")
        fields = data.get("fields") or {}
        if not isinstance(fields, dict):
            raise SandboxError("fields must be a JSON object of Zuora field names")
        if op == "update":
            self.store.update(str(obj), str(id_), **fields)
        elif op == "delete":
            self.store.delete(str(obj), str(id_))
        elif op == "insert":
            row = dict(fields)
            if id_:
                row["Id"] = id_
            id_ = self.store.insert(str(obj), row)
        else:
            raise SandboxError(f"unknown op {op!r}; use update, delete or insert")
        return {"op": op, "object": obj, "id": id_}

    def _fault_response(self, route: str, kind: str, p: dict[str, Any]) -> Response:
        if kind == "429":
            resp = v1_error(429, 50000060, "Too many requests: the tenant's API rate limit is "
                            "exceeded (injected by the sandbox)")
            resp.headers.update({"ratelimit-limit": RATE_LIMIT_HEADER,
                                 "ratelimit-remaining": "0",
                                 "ratelimit-reset": str(p.get("reset") or 1)})
            if route == "oauth":
                resp.headers.update({"X-RateLimit-Limit-minute": "100",
                                     "X-RateLimit-Remaining-minute": "0"})
        elif kind == "concurrency_429":
            limit = p.get("limit") or CONCURRENCY_LIMIT
            resp = v1_error(429, 50000070, "Too many concurrent requests: the tenant's "
                            f"concurrency limit of {limit} is reached (injected by the sandbox)")
            resp.headers.update({"Concurrency-Limit-Type": "Default",
                                 "Concurrency-Limit-Limit": str(limit),
                                 "Concurrency-Limit-Remaining": "0"})
        else:  # 5xx
            status = int(p.get("status") or 503)
            resp = v1_error(status, 50000099, f"HTTP {status} from the sandbox (injected)")
        if p.get("retry_after") is not None:
            resp.headers["Retry-After"] = str(p["retry_after"])
        resp.headers["x-sandbox-fault"] = kind
        return resp

    def decorate(self, route: str, path: str, headers: dict[str, str], resp: Response) -> None:
        """Headers Zuora puts on every response [S-ACT; D-RL]."""
        h = resp.headers
        h.setdefault("Zuora-Request-Id", str(uuid.uuid4()))
        track = headers.get("zuora-track-id")
        if track:
            h.setdefault("Zuora-Track-Id", track)
        remaining, reset = self.rate.hit()
        if route == "oauth":
            h.setdefault("X-RateLimit-Limit-minute", "100")
            h.setdefault("X-RateLimit-Remaining-minute", str(min(100, remaining)))
        h.setdefault("ratelimit-limit", RATE_LIMIT_HEADER)
        h.setdefault("ratelimit-remaining", str(remaining))
        h.setdefault("ratelimit-reset", str(reset))
        if path.startswith("/v1/"):
            with self._inflight_lock:
                free = max(0, CONCURRENCY_LIMIT - self._inflight)
            h.setdefault("Concurrency-Limit-Type", "Default")
            h.setdefault("Concurrency-Limit-Limit", str(CONCURRENCY_LIMIT))
            h.setdefault("Concurrency-Limit-Remaining", str(free))


def _status_of(e: SandboxError) -> int:
    return 404 if "does not exist" in str(e) else 400


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ZuoraSandbox/1.0"
    # TCP_NODELAY: the handler writes the headers and the body separately, and with Nagle's
    # algorithm on, the body then waits for the client's delayed ACK of the headers — 40 ms
    # on every answer of a keep-alive connection, which no real server adds
    disable_nagle_algorithm = True

    @property
    def sandbox(self) -> SandboxServer:
        return self.server.sandbox  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.sandbox.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        sb = self.sandbox
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        with sb._inflight_lock:
            sb._inflight += 1
        try:
            try:
                route, resp = sb.handle(method, self.path, headers, body)
            except Exception as e:  # a sandbox bug: answer like Zuora's 500, and say why
                traceback.print_exc(file=sys.stderr)
                route, resp = "error", v1_error(500, 50000099,
                                                f"sandbox internal error: {type(e).__name__}: {e}")
            sb.decorate(route, urlsplit(self.path).path, headers, resp)
            self._write(resp, "gzip" in headers.get("accept-encoding", ""))
        finally:
            with sb._inflight_lock:
                sb._inflight -= 1

    def _write(self, resp: Response, gzip_ok: bool) -> None:
        if resp.stream is None:
            body = resp.body
            if gzip_ok and len(body) > GZIP_MIN:
                body = gzip.compress(body, compresslevel=1)
                resp.headers["Content-Encoding"] = "gzip"
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in resp.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in resp.headers.items():
            self.send_header(k, v)
        self.end_headers()
        sent, limit = 0, resp.drop_after
        try:
            for i, chunk in enumerate(resp.stream):
                if not chunk:
                    continue
                if limit is not None:
                    if limit < 0 and i >= 1:  # default: half-way through the first data chunk
                        limit = sent + max(1, len(chunk) // 2)
                    if limit >= 0 and sent + len(chunk) > limit:
                        if limit > sent:
                            self._chunk(chunk[: limit - sent])
                        self._drop()
                        return
                self._chunk(chunk)
                sent += len(chunk)
            if limit is not None:  # the file ended before the drop point: drop anyway
                self._drop()
                return
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def _drop(self) -> None:
        """Close the socket mid-body: the client sees an incomplete chunked response."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def serve(data_dir: str | Path, port: int = 8808, tenant_tz: str | None = None,
          faults: str | None = None, **kw: Any) -> None:
    """Serve ``data_dir`` on 127.0.0.1:``port`` until Ctrl-C (``recon sandbox serve``)."""
    kw.setdefault("preload", False)
    srv = SandboxServer(data_dir, port=port, tenant_tz=tenant_tz, **kw)
    srv.add_faults(faults)
    t0 = time.monotonic()
    print(f"loading {srv.data_dir} ...", flush=True)
    srv.store.preload()
    print(f"loaded {len(srv.store.objects)} objects in {time.monotonic() - t0:.1f}s",
          flush=True)
    if srv.callouts is not None:
        print(srv.callouts.cfg.describe(), flush=True)
    print(f"Zuora sandbox serving {srv.data_dir} at {srv.url} (tenant zone {srv.tenant_tz}; "
          f"client_id={srv.tokens.client_id!r}); Ctrl-C stops", flush=True)
    armed = srv.faults.pending()
    if armed:
        print("faults armed: " + ", ".join(f"{f.route}:{f.kind}x{f.times}" for f in armed),
              flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        print("\nstopped", flush=True)
    finally:
        srv.stop()

"""Running the callout service: ``recon callouts serve`` (the receiver, with its workers in the
same process) and ``recon callouts work`` (workers apart, PostgreSQL only).

The receiver is uvicorn running the Starlette app of :mod:`callouts.app`. Metrics get a bind of
their own (``callouts.metrics_host``/``metrics_port``, loopback by default) so that the port
Zuora reaches never exposes them. On SIGTERM (or SIGINT) uvicorn stops accepting, finishes the
requests in flight, and the app's shutdown stops the workers after the syncs in flight end:
then the process exits 0 (uvicorn re-raises the signal it caught; the handler installed here
absorbs it, so a supervisor sees a clean stop, not a kill).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from callouts.alerts import Alerts
from callouts.app import InboxPool, Receiver, create_app
from callouts.metrics import Metrics
from callouts.worker import SyncFn, WorkerPool, default_sync
from core.config import Settings
from core.errors import ConfigError, ReconError
from core.inbox import event_kinds, inbox_backend_kind, open_inbox
from sync import prune_syncs

log = logging.getLogger("recon.callouts")

DRAIN_TIMEOUT_S = 600.0  # a SIGTERM waits this long for syncs in flight


class NeedsPostgres(ReconError):
    """Workers apart from the receiver need a store several processes can claim from."""


def check_auth(settings: Settings) -> None:
    """Refuse to listen without authentication: anyone reaching the port could enqueue
    syncs. Basic needs both a user and a password."""
    if bool(settings.callouts_user) != bool(settings.callouts_password):
        raise ConfigError("callouts.user and callouts.password go together (Basic auth, as "
                          "configured in the Zuora callout template): set both")
    if not settings.callouts_user and not settings.callouts_hmac_secret:
        raise ConfigError("the callout receiver needs authentication: set callouts.user and "
                          "callouts.password (RECON_CALLOUTS_PASSWORD) and/or "
                          "callouts.hmac_secret (RECON_CALLOUTS_HMAC_SECRET)")


def _check_port(host: str, port: int, what: str) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            raise ReconError(f"cannot listen on {host}:{port} for {what}: {e.strerror} "
                             "(another process uses it? choose another port)") from e


def _monitor(settings: Settings, pool: InboxPool, alerts: Alerts, stop: threading.Event,
             every_s: float = 30.0) -> None:
    """The slow duties: the stale-queue alert and pruning (hourly)."""
    ticks = 0
    while not stop.wait(every_s):
        try:
            with pool.inbox() as ib:
                h = ib.health()
                alerts.queue_age(h.oldest_pending_s, h.queue_depth)
                if ticks % 120 == 0:
                    pruned = ib.prune()
                    if any(pruned.values()):
                        log.info("inbox pruned: %s", pruned)
                    # manual syncs keep their keyed datasets (DATA/syncs/) to explain how
                    # they decided; they go with the events they answered
                    gone = prune_syncs(settings.data_dir, dt.timedelta(
                        days=settings.callouts_retention_days))
                    if gone:
                        log.info("sync datasets pruned: %d", len(gone))
        except ReconError as e:
            log.warning("callout monitor: %s", e)
        ticks += 1


def serve(settings: Settings, *, host: str | None = None, port: int | None = None,
          metrics_host: str | None = None, metrics_port: int | None = None,
          workers: int | None = None, sync: SyncFn | None = None,
          ssl_certfile: str | Path | None = None, ssl_keyfile: str | Path | None = None) -> int:
    """Run the receiver until SIGTERM/SIGINT; returns the exit code (0 after a clean drain).
    ``workers`` (default ``callouts.workers``) run in this process; with PostgreSQL 0 is
    allowed (``recon callouts work`` runs them elsewhere). ``ssl_certfile``/``ssl_keyfile``
    serve https directly (Zuora calls https only), else a TLS proxy goes in front."""
    import uvicorn

    check_auth(settings)
    kinds = event_kinds(settings)
    host = host or settings.callouts_host
    port = settings.callouts_port if port is None else port
    metrics_host = metrics_host or settings.callouts_metrics_host
    metrics_port = settings.callouts_metrics_port if metrics_port is None else metrics_port
    n = settings.callouts_workers if workers is None else workers
    backend = inbox_backend_kind(settings)
    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise ConfigError("--ssl-certfile and --ssl-keyfile go together")
    if n == 0 and backend == "sqlite":
        log.warning("callouts: no workers: with the SQLite inbox nothing else syncs the "
                    "events this receiver stores")
    _check_port(host, port, "callouts")
    pool = InboxPool(lambda: open_inbox(settings), 1 if backend == "sqlite" else 4)
    alerts = Alerts(settings)

    def health() -> Any:
        with pool.inbox() as ib:
            return ib.health()

    metrics = Metrics(health)
    workers_pool: WorkerPool | None = None
    if n > 0:
        sync_fn = sync or default_sync(settings)

        def observe(status: str, claim: Any, detail: str) -> None:
            metrics.observe(status, claim.object, len(claim.keys))
            if status == "dead":
                alerts.dead_letter(claim.object, claim.keys, detail)

        workers_pool = WorkerPool(settings, sync_fn, n, observer=observe)
    receiver = Receiver(settings, kinds, pool, metrics, alerts,
                        on_stored=workers_pool.notify if workers_pool else None)
    stop_monitor = threading.Event()

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        if workers_pool is not None:
            workers_pool.start()
        monitor = threading.Thread(target=_monitor, args=(settings, pool, alerts,
                                                          stop_monitor),
                                   name="recon-callout-monitor", daemon=True)
        monitor.start()
        log.info("callouts: listening on %s:%s, inbox %s, %d worker(s)", host, port,
                 backend, n)
        try:
            yield
        finally:
            stop_monitor.set()
            if workers_pool is not None:
                from starlette.concurrency import run_in_threadpool

                log.info("callouts: draining the syncs in flight")
                if not await run_in_threadpool(workers_pool.stop, DRAIN_TIMEOUT_S):
                    log.error("callouts: syncs still running after %.0f s; their keys will "
                              "be taken over after restart", DRAIN_TIMEOUT_S)

    metrics_server = None
    if metrics_port:
        from prometheus_client import start_http_server

        _check_port(metrics_host, metrics_port, "metrics")
        metrics_server, _ = start_http_server(metrics_port, metrics_host,
                                              registry=metrics.registry)
    app = create_app(receiver, metrics_route=not metrics_port, lifespan=lifespan)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=30,
                            timeout_keep_alive=30,
                            ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
                            ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None)
    server = uvicorn.Server(config)
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda s, f: caught.append(s))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if metrics_server is not None:
            metrics_server.shutdown()
        pool.close()
    if not server.started:
        raise ReconError(f"the callout receiver could not start on {host}:{port} (see the "
                         "log above)")
    log.info("callouts: stopped (%s)", ", ".join(signal.Signals(s).name for s in caught)
             or "exit")
    return 0


def work(settings: Settings, *, workers: int | None = None, sync: SyncFn | None = None,
         metrics_host: str | None = None, metrics_port: int | None = None) -> int:
    """``recon callouts work``: workers apart from the receiver, until SIGTERM (drains)."""
    if inbox_backend_kind(settings) != "postgresql":
        raise NeedsPostgres(
            "`recon callouts work` needs a PostgreSQL local side (local.database_url = "
            "postgresql://…): with the embedded DuckDB the inbox is a file on this host and "
            "the workers run inside `recon callouts serve`")
    n = settings.callouts_workers if workers is None else workers
    if n < 1:
        raise ConfigError("`recon callouts work` needs at least one worker (--workers N)")
    open_inbox(settings).close()  # fail now, with the store's message, if it cannot open
    metrics = Metrics()
    alerts = Alerts(settings)

    def observe(status: str, claim: Any, detail: str) -> None:
        metrics.observe(status, claim.object, len(claim.keys))
        if status == "dead":
            alerts.dead_letter(claim.object, claim.keys, detail)

    metrics_server = None
    mport = settings.callouts_metrics_port if metrics_port is None else metrics_port
    if mport:
        from prometheus_client import start_http_server

        mhost = metrics_host or settings.callouts_metrics_host
        _check_port(mhost, mport, "metrics")
        metrics_server, _ = start_http_server(mport, mhost, registry=metrics.registry)
    pool = WorkerPool(settings, sync or default_sync(settings), n, observer=observe)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda s, f: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    pool.start()
    log.info("callouts: %d worker(s) on the PostgreSQL inbox", n)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        pool.stop(DRAIN_TIMEOUT_S)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if metrics_server is not None:
            metrics_server.shutdown()
    return 0

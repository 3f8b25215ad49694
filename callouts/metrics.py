"""Prometheus metrics of the callout service (prometheus-client), on their own registry so two
services in one test process never share counters. The queue's gauges are read from the inbox
at scrape time, so they are right even when the workers run in other processes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.errors import ReconError
from core.inbox import InboxHealth

log = logging.getLogger("recon.callouts.metrics")


class _InboxCollector(Collector):
    def __init__(self, health: Callable[[], InboxHealth]) -> None:
        self.health = health

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            h = self.health()
        except ReconError as e:  # the store is down: /healthz says so; no gauges this scrape
            log.warning("metrics: cannot read the inbox: %s", e)
            return
        yield GaugeMetricFamily("recon_callouts_queue_depth",
                                "keys waiting for or running their sync", value=h.queue_depth)
        yield GaugeMetricFamily("recon_callouts_running", "syncs running now", value=h.running)
        yield GaugeMetricFamily("recon_callouts_oldest_pending_age_seconds",
                                "age of the oldest pending key's first event (0: none)",
                                value=h.oldest_pending_s or 0.0)
        yield GaugeMetricFamily("recon_callouts_dead_letters",
                                "dead-lettered keys not requeued", value=h.dead_letters)


class Metrics:
    """The service's counters (received, deduplicated, rejected, syncs run, failed,
    dead-lettered) and the inbox's gauges."""

    def __init__(self, health: Callable[[], InboxHealth] | None = None) -> None:
        r = self.registry = CollectorRegistry()
        self.received = Counter("recon_callouts_received", "callouts stored (new events)",
                                ["kind"], registry=r)
        self.deduplicated = Counter("recon_callouts_deduplicated",
                                    "callouts answered 200 as duplicates of a stored event",
                                    ["kind"], registry=r)
        self.rejected = Counter("recon_callouts_rejected",
                                "callouts refused, by answer (400, 401, 413, 503)",
                                ["kind", "status"], registry=r)
        self.syncs = Counter("recon_callouts_syncs", "syncs run by this process's workers",
                             ["object", "status"], registry=r)
        self.failed = Counter("recon_callouts_sync_failures",
                              "syncs that failed and will be retried", ["object"], registry=r)
        self.dead = Counter("recon_callouts_dead_lettered", "keys dead-lettered", ["object"],
                            registry=r)
        if health is not None:
            r.register(_InboxCollector(health))

    def observe(self, status: str, obj: str, keys: int) -> None:
        """A worker's outcome (``ok``/``left``/``failed``/``dead``) for ``keys`` keys."""
        self.syncs.labels(obj, status).inc()
        if status == "failed":
            self.failed.labels(obj).inc()
        elif status == "dead":
            self.dead.labels(obj).inc(keys)

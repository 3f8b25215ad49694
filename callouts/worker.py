"""The callout workers: claim keys whose debounce has passed from the inbox, run one targeted
sync per claim (``sync.sync_keys``), and record the result there.

The scheduling rules (debounce from a key's first event, coalescing, one more sync for events
that arrive during a sync, never two syncs of one key, storms folded into one batch) live in
the inbox (:mod:`core.inbox.store`), so they hold the same for threads in the receiver and for
``recon callouts work`` processes on other hosts. A worker only turns a claim into a
:class:`~sync.model.SyncRequest` and its outcome into the inbox's verdict:

* exit 0 or 1 → ``finish`` (1: findings left for a person, reported by the sync itself);
* :class:`~sync.model.SyncBadRecord` → dead letter with the reason (retrying cannot help);
* :class:`~sync.model.SyncTransient`, any other failure, exit 2, or an apply that met
  conflicts (a row changed between the sync's read and its write) → retry with exponential
  backoff and fresh reads, dead letter after ``callouts.max_attempts``.

The sync callable and the clock are injected, so the rules are tested with a recording sync and
a clock that jumps minutes at a time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.config import Settings
from core.errors import ReconError
from core.inbox import WHOLE_CATALOG, Claim, Inbox, debounce_of, open_inbox
from sync.model import (
    SYNC_FAILED,
    SYNC_OK,
    SyncBadRecord,
    SyncRequest,
    SyncResult,
    new_sync_id,
)

log = logging.getLogger("recon.callouts.worker")

SyncFn = Callable[[Settings, SyncRequest], SyncResult]
#: told about every claim's outcome: ("ok" | "left" | "failed" | "dead", claim, detail)
Observer = Callable[[str, Claim, str], None]


def default_sync(settings: Settings) -> SyncFn:
    """``sync.sync_keys`` (imported when first needed), with one Zuora client per worker
    thread (its token and keep-alive connection reused from sync to sync) that draws from the
    tenant's shared request budget, so workers and the nightly's extract never exceed Zuora's
    limits together. No keyed snapshot is kept per sync: the audit in the local database is
    the record of what a sync changed."""
    from extract.client import RetryPolicy, ZuoraClient
    from sync import sync_keys, warm_up

    # the sync's stages imported in the background while the worker starts: the first
    # callout's sync then costs what the others cost
    threading.Thread(target=warm_up, name="recon-sync-warm-up", daemon=True).start()
    local = threading.local()

    def run(settings: Settings, request: SyncRequest) -> SyncResult:
        client = getattr(local, "client", None)
        if client is None:
            from core.inbox import shared_budget

            # the same rule as the nightly's extract and `recon sync`: where an inbox exists
            # (always, for a worker) every process draws from the tenant's budget
            client = local.client = ZuoraClient.from_settings(
                settings, track_id=f"callouts-{socket.gethostname()}-{os.getpid()}-"
                f"{threading.get_ident()}", policy=RetryPolicy(attempts=4, backoff_cap=10.0),
                budget=shared_budget(settings))
        return sync_keys(settings, request, client=client, keep=False)

    return run


def request_of(claim: Claim) -> SyncRequest:
    """The sync a claim asks for; the whole catalog's key ``*`` is a sync without keys."""
    keys = () if claim.object == "catalog" and WHOLE_CATALOG in claim.keys else claim.keys
    return SyncRequest(claim.object, tuple(keys), trigger=claim.trigger)


@dataclass(frozen=True)
class Outcome:
    claim: Claim
    status: str  # ok | left | failed | dead
    sync_id: str
    detail: str


class Worker:
    """Runs the syncs of one inbox connection; :meth:`run_once` is one claim-and-sync round
    (the tests drive it with an injected clock), :meth:`run` loops until stopped."""

    def __init__(self, settings: Settings, inbox: Inbox, sync: SyncFn, *,
                 clock: Callable[[], float] = time.time, observer: Observer | None = None,
                 name: str = "") -> None:
        self.settings = settings
        self.inbox = inbox
        self.sync = sync
        self.clock = clock
        self.observer = observer
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.debounce = debounce_of(settings)

    def run_once(self, limit: int = 1) -> list[Outcome]:
        """Claim up to ``limit`` ready keys (or a storm's batch) and sync them, in order."""
        claims = self.inbox.claim(limit=limit,
                                  batch_threshold=self.settings.sync_batch_threshold,
                                  lease_s=self.settings.callouts_claim_lease_s)
        return [self._run(c) for c in claims]

    def _run(self, claim: Claim) -> Outcome:
        s = self.settings
        started = self.clock()
        debounce = self.debounce.get(claim.object, 0.0)
        try:
            result = self.sync(s, request_of(claim))
        except SyncBadRecord as e:
            sync_id = new_sync_id()
            self.inbox.dead_letter(claim, reason=str(e), sync_id=sync_id, started_at=started,
                                   debounce_s=debounce)
            return self._tell(Outcome(claim, "dead", sync_id, str(e)))
        except Exception as e:  # transient or not: retried with backoff, then dead-lettered
            detail = str(e) if isinstance(e, ReconError) else f"{type(e).__name__}: {e}"
            if not isinstance(e, ReconError):
                log.exception("sync of %s %s crashed", claim.object, ",".join(claim.keys))
            return self._failed(claim, detail, started)
        if result.exit_code == SYNC_FAILED:
            return self._failed(claim, "; ".join(lo.explanation for lo in result.leftovers)
                                or "the sync could not sync (exit 2)", started,
                                result.sync_id)
        if result.conflicts:  # the rows moved under the sync: read them again, later
            return self._failed(claim, f"{result.conflicts} operation(s) met a row that "
                                "changed after the sync read it (conflict); synced again "
                                "with fresh reads", started, result.sync_id)
        status = "ok" if result.exit_code == SYNC_OK else "left"
        self.inbox.finish(claim, sync_id=result.sync_id, status=status, started_at=started,
                          debounce_s=debounce)
        return self._tell(Outcome(claim, status, result.sync_id,
                                  f"{len(result.changes)} change(s), "
                                  f"{len(result.leftovers)} left"))

    def _failed(self, claim: Claim, detail: str, started: float,
                sync_id: str | None = None) -> Outcome:
        s = self.settings
        sync_id = sync_id or new_sync_id()
        dead = self.inbox.fail(claim, error=detail, max_attempts=s.callouts_max_attempts,
                               backoff_s=s.callouts_retry_backoff_s, sync_id=sync_id,
                               started_at=started,
                               debounce_s=self.debounce.get(claim.object, 0.0))
        return self._tell(Outcome(claim, "dead" if dead else "failed", sync_id, detail))

    def _tell(self, outcome: Outcome) -> Outcome:
        c = outcome.claim
        log.info("sync %s of %s %s: %s (%s)", outcome.sync_id, c.object, ",".join(c.keys),
                 outcome.status, outcome.detail)
        if self.observer is not None:
            try:
                self.observer(outcome.status, c, outcome.detail)
            except Exception:  # metrics/alerts must never fail a sync's bookkeeping
                log.exception("callout observer failed")
        return outcome

    def run(self, stop: threading.Event, wake: threading.Event | None = None,
            poll_s: float = 0.5) -> None:
        """Claim and sync until ``stop`` is set; a sync in flight always finishes (SIGTERM
        drains). Sleeps until the next debounce deadline, ``poll_s`` at most (other processes
        may add keys), or until ``wake`` (the receiver stored an event)."""
        while not stop.is_set():
            try:
                done = self.run_once()
            except ReconError as e:  # the store is down: say so, try again shortly
                log.warning("callout worker %s: %s", self.name, e)
                done = []
                stop.wait(poll_s * 4)
            if done:
                continue
            try:
                due = self.inbox.next_due()
            except ReconError:
                due = None
            timeout = poll_s if due is None else min(poll_s, max(0.0, due - self.clock()))
            if wake is not None:
                if wake.wait(max(timeout, 0.005)):
                    wake.clear()
            else:
                stop.wait(max(timeout, 0.005))


class WorkerPool:
    """``n`` worker threads, each with its own inbox connection (the receiver's in-process
    workers, or ``recon callouts work``)."""

    def __init__(self, settings: Settings, sync: SyncFn, n: int, *,
                 observer: Observer | None = None, poll_s: float = 0.5) -> None:
        self.settings = settings
        self.sync = sync
        self.n = n
        self.observer = observer
        self.poll_s = poll_s
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._inboxes: list[Inbox] = []

    def start(self) -> None:
        for i in range(self.n):
            inbox = open_inbox(self.settings)
            self._inboxes.append(inbox)
            worker = Worker(self.settings, inbox, self.sync, observer=self.observer,
                            name=f"worker-{i}")
            t = threading.Thread(target=worker.run, name=f"recon-callout-worker-{i}",
                                 args=(self.stop_event, self.wake, self.poll_s), daemon=True)
            t.start()
            self._threads.append(t)
        # keys scheduled by other processes (a receiver on another host, `callouts retry`)
        # wake these workers at once where the store can say so (PostgreSQL NOTIFY, on a
        # connection of its own); polling stays the fallback
        if self._inboxes:
            self._inboxes[0].listen(self.notify, self.stop_event)

    def notify(self) -> None:
        """An event was stored: wake the workers instead of waiting for their next poll."""
        self.wake.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop claiming, let the syncs in flight finish; True when every thread ended."""
        self.stop_event.set()
        self.wake.set()
        for t in self._threads:
            t.join(timeout)
        done = not any(t.is_alive() for t in self._threads)
        for inbox in self._inboxes:
            if done:
                inbox.close()
        return done

    def wait(self) -> None:
        """Block until stopped (``recon callouts work`` in the foreground)."""
        while not self.stop_event.wait(0.5):
            pass

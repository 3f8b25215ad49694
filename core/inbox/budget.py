"""The shared Zuora request budget: one tenant's rate and concurrency limits, kept in the
inbox's store so that every recon process on every host draws from the same budget (the
nightly's extract and every callout worker), and a 429's ``Retry-After`` written there is
honoured by all of them, not only by the process that was told.

A token bucket (``rate_per_s``, a burst of one second's worth) plus a count of requests in
flight (``concurrency``), both checked in one store transaction per request. A slot left by a
process that died expires after ``slot_ttl_s``. The HTTP client calls :meth:`acquire` before a
request and :meth:`release` after it (``ZuoraClient(..., budget=...)``); the hook is off unless
a budget is passed.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Protocol

from core.errors import TransientError
from core.inbox.backend import Backend


class BudgetExhausted(TransientError):
    """No request slot within ``max_wait_s``: Zuora is limiting this tenant hard, or another
    process holds every slot; the caller retries later."""


class Budget(Protocol):
    """What the HTTP client needs from a request budget."""

    def acquire(self) -> str: ...

    def release(self, slot: str) -> None: ...

    def defer(self, seconds: float) -> None: ...


def tenant_of(base_url: str, client_id: str) -> str:
    """One budget per Zuora tenant, as recon addresses it."""
    return f"{base_url.rstrip('/')}#{client_id}"


class RequestBudget:
    """A :class:`Budget` kept in the inbox's store (see the module docstring)."""

    def __init__(self, backend: Backend, tenant: str, *, rate_per_s: float, concurrency: int,
                 slot_ttl_s: float = 300.0, max_wait_s: float = 900.0,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.backend = backend
        self.tenant = tenant
        self.rate = rate_per_s
        self.concurrency = concurrency
        self.capacity = max(1.0, rate_per_s)
        self.slot_ttl_s = slot_ttl_s
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.sleep = sleep
        self.waited_s = 0.0  # for the manifest / tests: time spent waiting for the budget

    def _row(self, now: float) -> tuple[float, float, float]:
        b = self.backend
        b.execute("INSERT INTO recon_inbox_budget (tenant, tokens, updated_at, blocked_until) "
                  "VALUES (?, ?, ?, 0) ON CONFLICT (tenant) DO NOTHING",
                  (self.tenant, self.capacity, now))
        return b.fetch("SELECT tokens, updated_at, blocked_until FROM recon_inbox_budget "
                       "WHERE tenant = ?" + b.for_update, (self.tenant,))[0]

    def _try(self) -> tuple[str | None, float]:
        """One attempt: (slot, 0) when granted, else (None, seconds to wait)."""
        b, now = self.backend, self.clock()
        with b.transaction():
            tokens, updated, blocked = self._row(now)
            if self.rate > 0:
                tokens = min(self.capacity, tokens + max(0.0, now - updated) * self.rate)
            wait = 0.0
            if blocked > now:
                wait = blocked - now
            elif self.concurrency > 0:
                b.execute("DELETE FROM recon_inbox_budget_slots WHERE tenant = ? AND "
                          "expires_at < ?", (self.tenant, now))
                active = b.fetch("SELECT count(*) FROM recon_inbox_budget_slots WHERE "
                                 "tenant = ?", (self.tenant,))[0][0]
                if active >= self.concurrency:
                    wait = 0.05
            if not wait and self.rate > 0 and tokens < 1:
                wait = (1 - tokens) / self.rate
            slot = None
            if not wait:
                tokens -= 1 if self.rate > 0 else 0
                slot = secrets.token_hex(8)
                if self.concurrency > 0:
                    b.execute("INSERT INTO recon_inbox_budget_slots (slot, tenant, expires_at) "
                              "VALUES (?, ?, ?)", (slot, self.tenant, now + self.slot_ttl_s))
            b.execute("UPDATE recon_inbox_budget SET tokens = ?, updated_at = ? WHERE "
                      "tenant = ?", (tokens, now, self.tenant))
        return slot, wait

    def acquire(self) -> str:
        """Block until a request may be sent; returns the slot to :meth:`release`."""
        waited = 0.0
        while True:
            slot, wait = self._try()
            if slot is not None:
                return slot
            if waited >= self.max_wait_s:
                raise BudgetExhausted(
                    f"no Zuora request slot for {waited:.0f} s (budget of {self.tenant}: "
                    f"{self.rate:g}/s, {self.concurrency} at once); Zuora is limiting this "
                    "tenant or other recon processes hold every slot: retry later")
            step = min(wait, 1.0)
            self.sleep(step)
            waited += step
            self.waited_s += step

    def release(self, slot: str) -> None:
        if self.concurrency <= 0:
            return
        with self.backend.transaction():
            self.backend.execute("DELETE FROM recon_inbox_budget_slots WHERE slot = ?", (slot,))

    def defer(self, seconds: float) -> None:
        """Zuora answered 429 with ``Retry-After: seconds``: no process sends before then."""
        b, now = self.backend, self.clock()
        with b.transaction():
            self._row(now)
            b.execute("UPDATE recon_inbox_budget SET blocked_until = ? WHERE tenant = ? AND "
                      "blocked_until < ?", (now + seconds, self.tenant, now + seconds))

    def blocked_until(self) -> float:
        rows = self.backend.fetch("SELECT blocked_until FROM recon_inbox_budget WHERE "
                                  "tenant = ?", (self.tenant,))
        return rows[0][0] if rows else 0.0

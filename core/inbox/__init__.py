"""The callout inbox (issue 15), in the shared base: events received, keys waiting for their
sync, the last sync of every key, dead letters, rejected payloads and the shared Zuora request
budget. The receiver and workers (``callouts``) write it; ``recon sync``, reconcile, the
report and ``recon status`` read it through the same typed rows.

Where it lives follows the local side: with PostgreSQL, tables in recon's schema there (workers
on several hosts drain it with ``FOR UPDATE SKIP LOCKED``); with the embedded DuckDB, an
SQLite file in WAL mode, ``DATA/inbox.sqlite``, that other recon processes read safely while
the receiver writes (DuckDB allows one writing process, which the nightly needs)."""

from __future__ import annotations

import time
from collections.abc import Callable

from core.config import Settings
from core.inbox.backend import (
    Backend,
    InboxError,
    InboxUnavailable,
    PostgresBackend,
    SqliteBackend,
)
from core.inbox.budget import Budget, BudgetExhausted, RequestBudget, tenant_of
from core.inbox.kinds import (
    DEFAULT_KINDS,
    EVENT_OBJECTS,
    WHOLE_CATALOG,
    EventKind,
    PayloadError,
    event_kinds,
    extract_keys,
    parse_event_kinds,
)
from core.inbox.model import (
    Claim,
    DeadLetter,
    Event,
    InboxHealth,
    KeySync,
    NewEvent,
    PendingKey,
    Rejected,
    Stored,
    StoreOutcome,
    SyncLogEntry,
)
from core.inbox.store import Inbox
from core.localdb.dialect import Dialect

INBOX_FILE = "inbox.sqlite"


def inbox_backend_kind(settings: Settings) -> str:
    """``postgresql`` or ``sqlite``: where :func:`open_inbox` keeps the inbox."""
    return ("postgresql" if Dialect.from_url(settings.local_database_url) is Dialect.POSTGRES
            else "sqlite")


def open_backend(settings: Settings) -> Backend:
    if inbox_backend_kind(settings) == "postgresql":
        return PostgresBackend(settings.local_database_url)
    return SqliteBackend(settings.data_dir / INBOX_FILE)


def open_inbox(settings: Settings, *, clock: Callable[[], float] = time.time) -> Inbox:
    """Open (creating its tables when missing) the inbox of ``settings``' local side."""
    return Inbox(open_backend(settings), dedupe_days=settings.callouts_dedupe_days,
                 retention_days=settings.callouts_retention_days, clock=clock)


def open_budget(settings: Settings, **kwargs: object) -> RequestBudget:
    """The shared Zuora request budget of ``settings``' tenant, on its own connection."""
    return RequestBudget(open_backend(settings),
                         tenant_of(settings.zuora_base_url, settings.zuora_client_id),
                         rate_per_s=settings.zuora_budget_rate_per_s,
                         concurrency=settings.zuora_budget_concurrency,
                         **kwargs)  # type: ignore[arg-type]


def debounce_of(settings: Settings) -> dict[str, float]:
    """Seconds from a key's first pending event to its sync, per object."""
    return {"contact": settings.callouts_debounce_contact_s,
            "account": settings.callouts_debounce_account_s,
            "subscription": settings.callouts_debounce_subscription_s,
            "catalog": settings.callouts_debounce_catalog_s}


__all__ = [
    "DEFAULT_KINDS", "EVENT_OBJECTS", "INBOX_FILE", "WHOLE_CATALOG", "Backend", "Budget",
    "BudgetExhausted", "Claim", "DeadLetter", "Event", "EventKind", "Inbox", "InboxError",
    "InboxHealth", "InboxUnavailable", "KeySync", "NewEvent", "PayloadError", "PendingKey",
    "PostgresBackend", "Rejected", "RequestBudget", "SqliteBackend", "StoreOutcome", "Stored",
    "SyncLogEntry", "debounce_of", "event_kinds", "extract_keys", "inbox_backend_kind",
    "open_backend", "open_budget", "open_inbox", "parse_event_kinds", "tenant_of",
]

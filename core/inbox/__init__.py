"""The callout inbox (issue 15), in the shared base: events received, keys waiting for their
sync, the last sync of every key, dead letters, rejected payloads and the shared Zuora request
budget. The receiver and workers (``callouts``) write it; ``recon sync``, reconcile, the
report and ``recon status`` read it through the same typed rows.

Where it lives follows the local side: with PostgreSQL, tables in recon's schema there (workers
on several hosts drain it with ``FOR UPDATE SKIP LOCKED``); with the embedded DuckDB, an
SQLite file in WAL mode, ``DATA/inbox.sqlite``, that other recon processes read safely while
the receiver writes (DuckDB allows one writing process, which the nightly needs)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import polars as pl

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


def inbox_exists(settings: Settings) -> bool:
    """Whether a callout inbox was ever created for ``settings``' local side: readers (the
    nightly, ``recon status``) must not create one as a side effect of looking."""
    if inbox_backend_kind(settings) == "sqlite":
        return (settings.data_dir / INBOX_FILE).is_file()
    import psycopg

    try:
        with psycopg.connect(settings.local_database_url, connect_timeout=10) as conn:
            row = conn.execute("SELECT to_regclass('recon_inbox_events_received')").fetchone()
    except psycopg.Error as e:
        raise InboxUnavailable(f"cannot look for the callout inbox: {type(e).__name__}: "
                               f"{e}") from e
    return bool(row and row[0])


def read_activity(settings: Settings) -> pl.DataFrame | None:
    """Per (sync object, key): the latest callout, whether it was dead-lettered, the latest
    sync that wrote the key — the frame the nightly registers as ``activity``
    (``reconcile.events.ACTIVITY_SCHEMA``); None when there is no inbox. Times are naive
    UTC."""
    if not inbox_exists(settings):
        return None
    with open_inbox(settings) as inbox:
        rows = inbox.last_syncs()

    def naive(t: dt.datetime | None) -> dt.datetime | None:
        return None if t is None else t.astimezone(dt.UTC).replace(tzinfo=None)

    return pl.DataFrame(
        [{"object": k.object, "key": k.key, "last_event_at": naive(k.last_event_at),
          "dead": k.dead, "synced_at": naive(k.synced_at),
          "sync_id": k.sync_id if k.synced_at else None} for k in rows],
        schema={"object": pl.String(), "key": pl.String(), "last_event_at": pl.Datetime("us"),
                "dead": pl.Boolean(), "synced_at": pl.Datetime("us"), "sync_id": pl.String()})


def read_health(settings: Settings) -> InboxHealth | None:
    """The event path's health now (queue depth, oldest pending, dead letters, the last 24
    hours' syncs and events) for the report and ``recon status``; None when there is no
    inbox (callouts were never received here). Never creates one."""
    if not inbox_exists(settings):
        return None
    with open_inbox(settings) as inbox:
        return inbox.health()


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
    "inbox_exists", "read_activity", "read_health",
    "open_backend", "open_budget", "open_inbox", "parse_event_kinds", "tenant_of",
]

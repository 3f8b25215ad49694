"""The inbox's typed rows: what the receiver stores, what the workers claim, what reconcile,
the report and ``recon callouts status`` read. Times are aware UTC datetimes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum


class Stored(StrEnum):
    """What :meth:`Inbox.store_event` did: the event is new, or its notification id was seen
    within the dedupe window (a Zuora retry): both are answered 200."""

    NEW = "new"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class NewEvent:
    """One accepted callout, as the receiver hands it to the inbox."""

    notification_id: str
    request_id: str | None
    kind: str
    keys: tuple[tuple[str, str], ...]  # (object, key)
    payload: str  # the raw body, kept for inspection until pruned
    debounce_s: dict[str, float] = field(default_factory=dict)  # object -> seconds


@dataclass(frozen=True)
class StoreOutcome:
    stored: Stored
    notification_id: str
    keys: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Event:
    notification_id: str
    request_id: str | None
    kind: str
    received_at: dt.datetime
    payload: str | None
    keys: tuple[tuple[str, str], ...]
    status: str  # pending | processed | dead
    deliveries: int  # 1 + the duplicates received
    sync_id: str | None


@dataclass(frozen=True)
class PendingKey:
    """A key waiting for its sync (``waiting``) or being synced (``running``). ``events`` and
    ``notification_ids`` are the events the next sync covers; ``rerun_ids`` arrived while a
    sync ran and make exactly one more sync after it."""

    object: str
    key: str
    state: str  # waiting | running
    first_event_at: dt.datetime
    last_event_at: dt.datetime
    events: int
    not_before: dt.datetime  # the debounce deadline (or the retry time)
    attempts: int
    notification_ids: tuple[str, ...]
    rerun_ids: tuple[str, ...]
    claimed_by: str | None
    last_error: str | None


@dataclass(frozen=True)
class Claim:
    """Keys one worker took for one sync: a single key, or a storm's batch of one object."""

    token: str
    object: str
    keys: tuple[str, ...]
    notification_ids: tuple[str, ...]
    attempts: int  # attempts before this one

    @property
    def trigger(self) -> str:
        """What the sync's audit names: the callouts coalesced into it."""
        return "callout:" + ",".join(self.notification_ids) if self.notification_ids \
            else "callout:retry"


@dataclass(frozen=True)
class KeySync:
    """The last sync of one key, and the last event received for it."""

    object: str
    key: str
    sync_id: str | None
    finished_at: dt.datetime | None
    status: str | None  # ok | left | failed | dead
    last_event_at: dt.datetime | None

    @property
    def dead(self) -> bool:
        """The key's latest callout was dead-lettered (no event for it arrived since)."""
        return self.status == "dead" and (
            self.last_event_at is None or self.finished_at is None
            or self.last_event_at <= self.finished_at)

    @property
    def synced_at(self) -> dt.datetime | None:
        """When a sync last WROTE the key (dead letters and failures wrote nothing)."""
        return self.finished_at if self.status in ("ok", "left") else None


@dataclass(frozen=True)
class DeadLetter:
    id: int
    object: str
    key: str
    reason: str
    attempts: int
    notification_ids: tuple[str, ...]
    first_event_at: dt.datetime
    dead_at: dt.datetime
    requeued_at: dt.datetime | None


@dataclass(frozen=True)
class Rejected:
    """A payload answered 400, kept for inspection (Zuora does not retry a 400)."""

    id: int
    kind: str
    notification_id: str | None
    received_at: dt.datetime
    reason: str
    payload: str


@dataclass(frozen=True)
class InboxHealth:
    """The event path's health, as the report, ``recon status`` and the metrics show it."""

    queue_depth: int  # pending keys (waiting + running)
    running: int
    oldest_pending_s: float | None  # age of the oldest pending key's first event
    dead_letters: int  # not requeued
    syncs_24h: int
    failed_24h: int
    events_24h: int
    rejected_24h: int


@dataclass(frozen=True)
class SyncLogEntry:
    sync_id: str
    object: str
    keys: int
    trigger: str
    started_at: dt.datetime
    finished_at: dt.datetime
    status: str  # ok | left | failed | dead
    message: str | None

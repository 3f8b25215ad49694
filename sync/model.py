"""The targeted sync's typed contract: what is asked (:class:`SyncRequest`), what happened
(:class:`SyncResult`) and how it failed (:class:`SyncError` and subclasses).

Declared once here because three callers share it — ``recon sync`` (engineers), the callout
workers (``callouts``) and the tests — and none of them may guess at a dict's keys."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any

from core.errors import ReconError, TransientError

# The objects a sync is asked for, by the name `recon sync` takes. A key is: an account id or
# number; a contact id; a subscription name; a product id (catalog; no key = the whole catalog).
SYNC_OBJECTS: tuple[str, ...] = ("account", "contact", "subscription", "catalog")

# exit codes of one sync (docs/cli.md "Exit codes"): consistent / something left for a person /
# could not sync
SYNC_OK, SYNC_LEFT, SYNC_FAILED = 0, 1, 2


def new_sync_id(now: dt.datetime | None = None) -> str:
    """``sync-<UTC yyyymmddThhmmssZ>-<hex6>``: sortable by time, unique across hosts, and
    never mistaken for a run id (a sync is not a run in ``recon runs``)."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"sync-{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class SyncRequest:
    """One targeted sync: ``object`` and its ``keys``. ``trigger`` is what the audit names:
    ``manual`` (an engineer) or ``callout:<notification id>[,<id>…]`` (the events coalesced
    into this sync)."""

    object: str
    keys: tuple[str, ...] = ()
    trigger: str = "manual"
    dry_run: bool = False

    def __post_init__(self) -> None:
        if self.object not in SYNC_OBJECTS:
            raise SyncError(f"cannot sync {self.object!r}: recon syncs "
                            f"{', '.join(SYNC_OBJECTS)}")
        if not self.keys and self.object != "catalog":
            raise SyncError(f"`sync {self.object}` needs at least one key")
        if any(not isinstance(k, str) or not k.strip() for k in self.keys):
            raise SyncError(f"`sync {self.object}`: a key is empty")


@dataclass(frozen=True)
class Change:
    """One local row the sync wrote (or, in a dry run, would write)."""

    table: str
    op: str  # insert | update | delete
    key: dict[str, Any]
    columns: tuple[str, ...] = ()  # the columns an update changed
    reason: str = ""


@dataclass(frozen=True)
class Leftover:
    """A finding or an operation the sync did not apply: a ``human`` finding (never applied
    automatically), a ``conflict`` (the row changed between the sync's read and its write:
    the callout worker syncs the key again later) or another ``skipped`` operation, with
    why."""

    kind: str  # "human" | "conflict" | "skipped"
    object: str
    key: str
    rule: str | None
    field: str | None
    explanation: str


@dataclass(frozen=True)
class SyncResult:
    """What one sync did. ``exit_code``: 0 the keys are consistent after it, 1 ``human``
    findings or skipped operations remain (``leftovers``), 2 it could not sync."""

    sync_id: str
    object: str
    keys: tuple[str, ...]
    trigger: str
    dry_run: bool
    started_at: dt.datetime
    finished_at: dt.datetime
    exit_code: int
    changes: tuple[Change, ...] = ()
    leftovers: tuple[Leftover, ...] = ()
    missing: tuple[str, ...] = field(default=())  # keys Zuora no longer returns (read twice)
    # the repair apply that wrote the changes (``recon repair revert APPLY_ID`` undoes the
    # sync); None for a dry run or when nothing needed writing
    apply_id: str | None = None
    # (key asked, Zuora id) where they differ: an account asked for by its number
    resolved: tuple[tuple[str, str], ...] = ()

    @property
    def conflicts(self) -> int:
        return sum(lo.kind == "conflict" for lo in self.leftovers)

    @property
    def synced_keys(self) -> tuple[str, ...]:
        """The keys as the nightly's findings name them (Zuora ids for accounts)."""
        ids = dict(self.resolved)
        return tuple(ids.get(k, k) for k in self.keys)

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    @property
    def applied(self) -> int:
        return 0 if self.dry_run else len(self.changes)


class SyncError(ReconError):
    """The sync could not be done (exit 2): say which key and why."""


class SyncBadRecord(SyncError):
    """A record Zuora returned breaks a contract (quarantine rules): the message names the
    record and the rule. Retrying cannot help, so a callout worker dead-letters the event."""


class SyncTransient(SyncError, TransientError):
    """Zuora or the local database failed for the moment (after the client's own retries): a
    callout worker retries the sync with backoff."""

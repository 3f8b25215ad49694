"""Targeted sync by key (issue 15): re-read one object's records from Zuora and repair its local
copy through the same normalisation, rules and guarded, audited repair path as the nightly.

The floor between repair and reports: it imports the stages below it and is imported only by
the report, the jobs and the callout workers."""

from typing import Any

from sync.model import (
    SYNC_FAILED,
    SYNC_LEFT,
    SYNC_OBJECTS,
    SYNC_OK,
    Change,
    Leftover,
    SyncBadRecord,
    SyncError,
    SyncRequest,
    SyncResult,
    SyncTransient,
    new_sync_id,
)

__all__ = ["SYNC_FAILED", "SYNC_LEFT", "SYNC_OBJECTS", "SYNC_OK", "Change", "Leftover",
           "SyncBadRecord", "SyncError", "SyncRequest", "SyncResult", "SyncTransient",
           "new_sync_id", "prune_syncs", "sync_dir", "sync_keys", "warm_up"]


def __getattr__(name: str) -> Any:
    """``sync_keys``, ``sync_dir``, ``prune_syncs`` and ``warm_up`` on first use: ``recon
    --help`` builds every command's parser and must not pay for the sync's imports (polars,
    the stages)."""
    if name in ("sync_keys", "sync_dir", "prune_syncs", "warm_up"):
        from sync import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'sync' has no attribute {name!r}")

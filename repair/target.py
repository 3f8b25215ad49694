"""Which local database ``repair apply`` / ``revert`` / ``history`` connect to, and how to say
where the right one is when it is not the one reached.

A plan names its target by identity (:mod:`core.localdb.identity`), not by URL. The command
connects to, in order:

1. ``--db URL`` (``db`` here), when given;
2. the plan's recorded target when that carries no secret: a DuckDB identity holds the
   file's absolute path, so the plan itself says where it goes (a PostgreSQL identity holds
   no URL, and a URL with a password is never written into a plan);
3. ``local.database_url`` (``RECON_LOCAL_DATABASE_URL``).

Whichever it reaches must carry the plan's identity (:func:`repair.guards.check_target`);
when it does not, the refusal names the flag or variable that points at the right database
(:func:`pointer`) — never a password. A DuckDB target that does not exist is refused before
anything opens it, so a typo never leaves an empty database file behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.config import ENV_PREFIX, Settings, redact_url
from core.errors import LocalDatabaseError
from core.localdb.connect import duckdb_url
from core.localdb.dialect import Dialect, database_file
from core.localdb.identity import DatabaseIdentity

DB_FLAG = "--db"
DB_ENV = f"{ENV_PREFIX}LOCAL_DATABASE_URL"
DB_SETTING = "local.database_url"

# where the URL came from (Target.source)
FROM_FLAG = "--db"
FROM_PLAN = "the plan's target"
FROM_SETTINGS = "local.database_url"


@dataclass(frozen=True)
class Target:
    """The database a repair command connects to and why that one."""

    url: str
    source: str  # FROM_FLAG | FROM_PLAN | FROM_SETTINGS

    @property
    def shown(self) -> str:
        """The URL as printed (a password masked)."""
        return redact_url(self.url)

    def describe(self) -> str:
        return f"{self.shown} (from {self.source})"


def plan_url(identity: DatabaseIdentity | None) -> str | None:
    """The URL a plan's identity names by itself: a DuckDB file's path; None otherwise."""
    if identity is None or identity.dialect != Dialect.DUCKDB or not identity.path:
        return None
    return duckdb_url(identity.path)


def resolve(settings: Settings, db: str | None = None,
            identity: DatabaseIdentity | None = None) -> Target:
    """The target of a command given ``--db`` (``db``) and the plan's ``identity`` (None for
    revert and history, which have no plan)."""
    if db:
        return Target(db, FROM_FLAG)
    url = plan_url(identity)
    if url is not None:
        return Target(url, FROM_PLAN)
    return Target(settings.local_database_url, FROM_SETTINGS)


def pointer(identity: DatabaseIdentity) -> str:
    """The flag or variable that points a repair command at the database ``identity`` names:
    the exact ``--db`` for a DuckDB file; for PostgreSQL (whose URL recon never stores) the
    flag and variable to set to that database's URL."""
    url = plan_url(identity)
    if url is not None:
        return f"add `{DB_FLAG} {url}`"
    return (f"point `{DB_FLAG} postgresql://…/{identity.database}` or {DB_ENV} "
            f"({DB_SETTING}) at PostgreSQL database {identity.database!r} on cluster "
            f"{identity.system_identifier}")


def require_target(target: Target, identity: DatabaseIdentity | None = None) -> None:
    """Refuse a DuckDB target whose file does not exist (connecting would create an empty
    one), naming what to give instead."""
    path = database_file(target.url)
    if path is None or path.is_file():
        return
    if target.source == FROM_PLAN:
        hint = (f"the plan was made from that file: if it moved, give its new place with "
                f"`{DB_FLAG} duckdb:///NEW/PATH` (a copy is another database: extract and "
                "plan again from it)")
    elif identity is not None:
        hint = pointer(identity)
    else:
        hint = (f"give the database with `{DB_FLAG} URL` or {DB_ENV}; `recon db init` creates "
                "a new one")
    raise LocalDatabaseError(
        f"no local database at {Path(path)} ({target.source}); nothing was created there: "
        f"{hint}")

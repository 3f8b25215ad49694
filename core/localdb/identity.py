"""The identity of a local database, so a repair plan can only be applied where it was made.

A URL is not an identity: the same URL can point at another database tomorrow, and two URLs
can name one database. The identity is what the database says about itself:

* PostgreSQL: the UUID row in ``recon_identity`` (written once by ``recon db stamp``),
  ``current_database()`` and the cluster's ``system_identifier`` (``pg_control_system()``).
  A database copied with ``CREATE DATABASE … TEMPLATE`` or restored on another cluster keeps
  the UUID row but not the other two, so a copy is never taken for the original.
* DuckDB: the UUID row and the file's absolute path (a copied file is another database).

The extractor reads it inside the export transaction (:mod:`extract.local_export`) into the
snapshot manifest; the plan copies it from there; ``repair apply``/``revert`` compare it with
the target's and refuse any difference.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from dataclasses import asdict, dataclass
from typing import Any

from core.errors import LocalDatabaseError
from core.localdb import migrations as mig
from core.localdb import recon_objects
from core.localdb.dialect import Dialect

STAMP_HINT = "run `recon db stamp`"


class NotStamped(LocalDatabaseError):
    """The local database has no identity (never stamped)."""


@dataclass(frozen=True)
class DatabaseIdentity:
    uuid: str
    dialect: str  # postgres | duckdb
    database: str | None = None  # PostgreSQL current_database()
    system_identifier: str | None = None  # PostgreSQL cluster (pg_control_system())
    path: str | None = None  # DuckDB: absolute path of the file

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, doc: Any) -> DatabaseIdentity:
        """From a manifest/plan/audit JSON object; ``ValueError`` names what is wrong."""
        if not isinstance(doc, dict):
            raise ValueError(f"an identity must be an object, got {doc!r}")
        unknown = sorted(set(doc) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown identity field(s) {', '.join(unknown)}")
        for k in ("uuid", "dialect"):
            if not isinstance(doc.get(k), str) or not doc[k]:
                raise ValueError(f"identity.{k} must be a non-empty string")
        if doc["dialect"] not in tuple(Dialect):
            raise ValueError(f"identity.dialect must be postgres or duckdb, got "
                             f"{doc['dialect']!r}")
        for k in Dialect(doc["dialect"]).identity_fields:
            if not isinstance(doc.get(k), str) or not doc[k]:
                raise ValueError(f"identity.{k} must be a non-empty string for "
                                 f"{doc['dialect']}")
        return cls(**doc)

    def describe(self) -> str:
        if self.dialect == Dialect.POSTGRES:
            return (f"PostgreSQL database {self.database!r} on cluster "
                    f"{self.system_identifier} (recon id {self.uuid})")
        return f"DuckDB file {self.path} (recon id {self.uuid})"

    def stamp_summary(self, versions: tuple[int, int]) -> str:
        """What `db init`/`db stamp` did to recon's own objects, and this identity (the one
        plans made from this database will carry)."""
        old, new = versions
        change = f"upgraded from {old}" if old != new else "up to date"
        return f"recon's own objects: schema {new} ({change}); identity: {self.describe()}"


def _fetch(db: Any, sql: str, params: tuple | list | None = None) -> list[tuple]:
    return mig.LocalConn(db).fetch(sql, params)


def _has_identity_table(db: Any) -> bool:
    return bool(_fetch(db, db.dialect.table_exists_sql, [recon_objects.IDENTITY])[0][0])


def _where(db: Any) -> dict[str, str]:
    """The part of the identity the database reports about itself right now."""
    return db.dialect.whereabouts(db.raw)


def read_identity(db: Any) -> DatabaseIdentity | None:
    """The identity of ``db`` (a LocalDB), or None when it was never stamped. Reads in the
    caller's transaction when there is one (the export's consistent snapshot)."""
    if not _has_identity_table(db):
        return None
    rows = _fetch(db, f"SELECT uuid FROM {recon_objects.IDENTITY} ORDER BY uuid")
    if not rows:
        return None
    if len(rows) > 1:
        raise LocalDatabaseError(
            f"{recon_objects.IDENTITY} holds {len(rows)} rows ({', '.join(r[0] for r in rows)});"
            " a database has one identity. Keep the row of this database and delete the others"
            " (a copy must be stamped anew: delete every row, then run `recon db stamp`)")
    return DatabaseIdentity(uuid=rows[0][0], dialect=db.dialect.value, **_where(db))


def require_identity(db: Any) -> DatabaseIdentity:
    ident = read_identity(db)
    if ident is None:
        from core.config import redact_url

        raise NotStamped(f"the local database {redact_url(db.url)} has no recon identity; "
                         f"{STAMP_HINT} (or `recon db init`) on it first")
    return ident


def stamp(db: Any) -> tuple[DatabaseIdentity, tuple[int, int]]:
    """Create or upgrade recon's own objects in ``db`` and give it an identity if it has none
    (idempotent: an existing identity is kept). Touches no application table. Returns the
    identity and the ``(from, to)`` schema versions of recon's objects."""
    versions = recon_objects.upgrade(db)
    with db.transaction():
        lock = db.dialect.xact_lock_sql()
        if lock:  # two concurrent stamps must not write two identities
            db.execute(lock, (mig.MIGRATION_LOCK_KEY,))
        if read_identity(db) is None:
            db.execute(f"INSERT INTO {recon_objects.IDENTITY} (uuid, created_at) "
                       f"VALUES ({db.dialect.placeholders(2)})",
                       [str(uuidlib.uuid4()), dt.datetime.now(dt.UTC).replace(tzinfo=None)])
    ident = read_identity(db)
    assert ident is not None
    return ident, versions

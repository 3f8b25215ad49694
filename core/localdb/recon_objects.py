"""recon's own objects in the local database, and the migrations that create and change them.

The application owns the local schema's business tables (``recon db init`` creates them only
for a database recon manages itself); recon owns only these:

* ``recon_schema_migrations``: the migrations applied (:mod:`core.localdb.migrations`);
* ``recon_identity``: the database's identity (one row; :mod:`core.localdb.identity`);
* ``recon_repair_applies`` and ``recon_repair_audit``: the repair audit (:mod:`repair.audit`
  reads and writes them; their DDL lives here, on the shared floor, so that stamping a
  database needs nothing from the repair floor);
* ``recon_backfill_chunks``: the checkpoint of ``recon backfill`` (:mod:`repair.backfill`),
  one row per committed chunk, written in the chunk's own transaction.

Every change to these objects is a new numbered migration appended to :data:`MIGRATIONS`;
never edit a released one. Version 1 is what recon wrote before versioning (a16424a created
the two audit tables on first apply), so a database from then migrates from 0.
"""

from __future__ import annotations

from core.localdb import migrations as mig

APPLIES = "recon_repair_applies"
AUDIT = "recon_repair_audit"
IDENTITY = "recon_identity"
BACKFILL_CHUNKS = "recon_backfill_chunks"
HATCH_LOG = "recon_hatch_log"

APPLIES_DDL_V1 = f"""CREATE TABLE IF NOT EXISTS {APPLIES} (
  apply_id          VARCHAR(64) NOT NULL,   -- e.g. ap-20261123T010203Z-3f2a1c
  kind              VARCHAR(8) NOT NULL,    -- apply | revert
  reverts_apply_id  VARCHAR(64),            -- revert: the apply it reverts
  plan_id           VARCHAR(255),
  run_id            VARCHAR(255),           -- the snapshot the plan was made from
  plan_path         VARCHAR(1024),
  started_at        TIMESTAMP NOT NULL,     -- UTC, naive
  finished_at       TIMESTAMP,
  status            VARCHAR(16) NOT NULL,   -- running | complete | partial | failed | refused
  ops_planned       BIGINT NOT NULL,
  ops_applied       BIGINT NOT NULL,
  ops_skipped       BIGINT NOT NULL,        -- already applied + conflicts + missing refs
  dry_run           BOOLEAN NOT NULL,
  host              VARCHAR(255),
  pid               INTEGER,
  os_user           VARCHAR(255),           -- 'user' is a reserved word in PostgreSQL
  message           VARCHAR,                -- refusal / failure / skip summary
  PRIMARY KEY (apply_id)
)"""

AUDIT_DDL_V1 = f"""CREATE TABLE IF NOT EXISTS {AUDIT} (
  apply_id    VARCHAR(64) NOT NULL,
  seq         BIGINT NOT NULL,       -- the plan operation (revert: position in the revert)
  batch       INTEGER NOT NULL,      -- the transaction it was applied in (1-based)
  table_name  VARCHAR(128) NOT NULL,
  op          VARCHAR(8) NOT NULL,   -- insert | update | delete (what was executed)
  key         VARCHAR NOT NULL,      -- JSON: the resolved key of the operation
  before      VARCHAR,               -- JSON: full row before (null for an insert)
  after       VARCHAR,               -- JSON: full row after, incl. generated id (null: delete)
  applied_at  TIMESTAMP NOT NULL,    -- UTC, naive
  PRIMARY KEY (apply_id, seq)
)"""

IDENTITY_DDL_V2 = f"""CREATE TABLE IF NOT EXISTS {IDENTITY} (
  uuid        VARCHAR(36) NOT NULL,    -- random, written once by `recon db stamp`/`db init`
  created_at  TIMESTAMP NOT NULL,      -- UTC, naive
  PRIMARY KEY (uuid)
)"""

BACKFILL_CHUNKS_DDL_V3 = f"""CREATE TABLE IF NOT EXISTS {BACKFILL_CHUNKS} (
  backfill_id     VARCHAR(128) NOT NULL,  -- bf-<snapshot run id>-c<accounts per chunk>
  chunk           INTEGER NOT NULL,       -- 0: the catalog; 1..n: accounts in Id order
  run_id          VARCHAR(255) NOT NULL,  -- the snapshot filled from
  chunk_accounts  INTEGER NOT NULL,       -- accounts per chunk
  first_key       VARCHAR(64),            -- the chunk's first and last account Id
  last_key        VARCHAR(64),
  accounts        INTEGER NOT NULL,
  apply_id        VARCHAR(64) NOT NULL,   -- its row in recon_repair_applies (revert it by id)
  plan_file       VARCHAR(1024),          -- the chunk's operations (Parquet)
  plan_sha256     VARCHAR(64),
  ops_planned     BIGINT NOT NULL,
  ops_applied     BIGINT NOT NULL,
  counts          VARCHAR,                -- JSON: rows inserted per table
  committed_at    TIMESTAMP NOT NULL,     -- UTC, naive
  PRIMARY KEY (backfill_id, chunk)
)"""

# Written by the local-copy guards (core.localdb.guards), never by recon's Python: one row per
# (transaction, table, operation) that went through the administrators' escape hatch, so such
# writes stay distinguishable from recon's (which are in the repair audit) after the
# transaction's label is gone. The next reconcile finds what they changed like any drift.
HATCH_LOG_DDL_V4 = f"""CREATE TABLE IF NOT EXISTS {HATCH_LOG} (
  txid        BIGINT NOT NULL,          -- the writing transaction (txid_current())
  table_name  VARCHAR(128) NOT NULL,
  op          VARCHAR(8) NOT NULL,      -- INSERT | UPDATE | DELETE | TRUNCATE
  writer      VARCHAR(255) NOT NULL,    -- the label: hatch:<who>
  db_user     VARCHAR(255) NOT NULL,    -- session_user
  written_at  TIMESTAMP NOT NULL,       -- UTC, naive: the first such statement
  PRIMARY KEY (txid, table_name, op)
)"""

MIGRATIONS: tuple[mig.Migration, ...] = (
    mig.Migration(1, "repair audit: recon_repair_applies, recon_repair_audit",
                  (APPLIES_DDL_V1, AUDIT_DDL_V1)),
    mig.Migration(2, "identity: recon_identity; recon_repair_applies.target_identity",
                  (IDENTITY_DDL_V2,
                   f"ALTER TABLE {APPLIES} ADD COLUMN IF NOT EXISTS target_identity VARCHAR")),
    mig.Migration(3, "backfill checkpoint: recon_backfill_chunks", (BACKFILL_CHUNKS_DDL_V3,)),
    mig.Migration(4, "escape-hatch log: recon_hatch_log", (HATCH_LOG_DDL_V4,)),
)
LATEST = mig.latest(MIGRATIONS)
# every object recon may create in the local database (nothing else is ever created by a stamp)
OBJECTS = (mig.VERSION_TABLE, IDENTITY, APPLIES, AUDIT, BACKFILL_CHUNKS, HATCH_LOG)


def what(db: object) -> str:
    """How messages name recon's objects in a local database."""
    from core.config import redact_url

    return f"recon's objects in the local database {redact_url(getattr(db, 'url', '?'))}"


def version(db: object) -> int:
    """The schema version of recon's objects in ``db`` (a LocalDB); 0: none/unversioned."""
    return mig.current_version(mig.LocalConn(db))


def upgrade(db: object) -> tuple[int, int]:
    """Create or upgrade recon's objects in ``db`` (idempotent); ``(from, to)`` versions.
    Raises :class:`~core.localdb.migrations.SchemaTooNew` for a newer database."""
    conn = mig.LocalConn(db)
    found = mig.check_not_newer(conn, what(db), MIGRATIONS)
    mig.migrate(conn, what(db), MIGRATIONS)
    return found, LATEST


def require_current(db: object) -> None:
    """Refuse to write recon's objects unless they are exactly at :data:`LATEST`."""
    conn = mig.LocalConn(db)
    found = mig.check_not_newer(conn, what(db), MIGRATIONS)
    if found < LATEST:
        raise mig.SchemaOutdated(
            f"{what(db)} are at schema version {found}, this recon needs {LATEST}: run "
            "`recon db stamp` (or `recon db init`) to upgrade them in place")

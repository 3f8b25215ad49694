"""``recon db constrain``: the unique keys on ``orders``, added once the D11 duplicates are gone.

Seed 003 (phase 4) wants the duplicate orders removed and then "a unique db constraint …
for subscription_name + zuora account id". recon detects the duplicates (D11) and dedupes the
unambiguous ones (the repair's ``orders`` step); this module adds the keys afterwards, on
PostgreSQL only:

* the constraint the seed proposes, ``UNIQUE (subscription_name, zuora_account_id)``
  (:data:`CONSTRAINT`): what the application's model validation and ``ON CONFLICT`` name;
* a partial unique index on ``subscription_name`` for non-trial orders (:data:`NAME_INDEX`):
  the seed's key alone still admits the very duplicate D11 is about — the owner-transfer
  callout created a second order for the same name on the *new* account — so only this one
  enforces "one order per paid subscription name"; trial orders are local only (L10) and
  exempt.

Both are built without a long lock: ``CREATE UNIQUE INDEX CONCURRENTLY`` (writes go on while
it builds), then ``ALTER TABLE … ADD CONSTRAINT … UNIQUE USING INDEX``, a catalogue-only change
under a short ``lock_timeout``. It refuses while any D11 duplicate remains, listing each with
the keeper D11 would choose (:func:`reconcile.rules.orders.keeper_rank_sql`, the rule's own
ranking, here over the local copy's latest versions). Idempotent: what exists is left alone;
an index a failed concurrent build left invalid is dropped and rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.catalog.orders import LOCAL, latest_sql
from core.errors import ReconError
from core.localdb.connect import LocalDB
from core.localdb.dialect import Dialect
from reconcile.rules.orders import keeper_rank_sql

CONSTRAINT = "orders_subscription_name_zuora_account_id_key"
NAME_INDEX = "orders_subscription_name_non_trial_key"
LOCK_TIMEOUT = "5s"


class ConstrainError(ReconError):
    """``recon db constrain`` cannot (or must not yet) add the keys; the message says why."""


@dataclass(frozen=True)
class DuplicateGroup:
    """Orders that would violate a key: D11 duplicates (non-trial, one name) with the keeper
    D11 would choose, or rows sharing (name, account) that include a trial order (which D11
    does not dedupe: a person resolves them)."""

    subscription_name: str
    order_ids: tuple[int, ...]
    keeper: int | None
    why: str

    def line(self) -> str:
        ids = ", ".join(str(i) for i in self.order_ids)
        if self.keeper is None:
            return f"  {self.subscription_name}: orders {ids} — {self.why}"
        return (f"  {self.subscription_name}: orders {ids} — D11 keeps order {self.keeper} "
                f"({self.why})")


@dataclass(frozen=True)
class ConstrainResult:
    created: tuple[str, ...]
    present: tuple[str, ...]


def _require_postgres(db: LocalDB) -> None:
    if db.dialect is not Dialect.POSTGRES:
        raise ConstrainError(
            "recon db constrain is PostgreSQL-only: DuckDB cannot add a unique key to a table "
            "without rebuilding it, so on the DuckDB local database duplicate orders stay what "
            "they are today, a D11 finding of every reconcile (repaired by `recon repair "
            "apply` when unambiguous)")


def _why(matches: bool | None, ns_match: bool | None, account: str | None) -> str:
    if matches:
        return f"on the latest version's account {account}"
    if ns_match:
        return "its namespace is the one the latest version names"
    return "none is on the latest version's account: the most GitLab metadata, then the oldest"


def duplicates(db: LocalDB) -> list[DuplicateGroup]:
    """Every group of orders that would violate :data:`CONSTRAINT` or :data:`NAME_INDEX`."""
    _require_postgres(db)
    dup = ("(SELECT o.* FROM orders o WHERE NOT coalesce(o.trial, false) AND o.subscription_name "
           "IN (SELECT subscription_name FROM orders WHERE NOT coalesce(trial, false) AND "
           "subscription_name IS NOT NULL GROUP BY subscription_name HAVING count(*) > 1))")
    ranked = keeper_rank_sql(dup, f"({latest_sql(LOCAL)})", "billing_accounts")
    rows = db.fetch(f"SELECT subscription_name, id, rk, matches, ns_match, z_account "
                    f"FROM ({ranked}) r ORDER BY subscription_name, rk")
    groups: dict[str, list[tuple]] = {}
    for r in rows:
        groups.setdefault(r[0], []).append(r)
    out = [DuplicateGroup(name, tuple(sorted(r[1] for r in rs)), rs[0][1],
                          _why(rs[0][3], rs[0][4], rs[0][5]))
           for name, rs in groups.items()]
    # rows sharing the seed's key that D11 does not cover: a trial among them
    for name, account, ids in db.fetch(
            "SELECT subscription_name, zuora_account_id, array_agg(id ORDER BY id) FROM orders "
            "WHERE subscription_name IS NOT NULL AND zuora_account_id IS NOT NULL "
            "GROUP BY subscription_name, zuora_account_id "
            "HAVING count(*) > 1 AND bool_or(coalesce(trial, false))"):
        out.append(DuplicateGroup(name, tuple(ids), None,
                                  f"share account {account} and include a trial order, which "
                                  "D11 does not dedupe: a person resolves them"))
    return sorted(out, key=lambda g: (g.subscription_name, g.order_ids))


def _index_state(db: LocalDB, name: str) -> bool | None:
    """True: a valid index ``name`` on this schema; False: one a failed concurrent build left
    invalid; None: none."""
    rows = db.fetch("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = "
                    "i.indexrelid WHERE c.relname = %s AND c.relnamespace = "
                    "current_schema()::regnamespace", [name])
    return rows[0][0] if rows else None


def _has_constraint(db: LocalDB) -> bool:
    return bool(db.fetch("SELECT 1 FROM pg_constraint WHERE conname = %s AND conrelid = "
                         "'orders'::regclass", [CONSTRAINT]))


def _build(db: LocalDB, name: str, definition: str) -> bool:
    """``CREATE UNIQUE INDEX CONCURRENTLY`` (outside a transaction); False when a valid one is
    there already. A duplicate written meanwhile fails the build: the invalid index is dropped
    and the error says to dedupe and re-run."""
    state = _index_state(db, name)
    if state:
        return False
    if state is False:
        db.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    try:
        db.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON orders {definition}")
    except Exception as e:  # psycopg's UniqueViolation, without importing the driver here
        if _index_state(db, name) is False:
            db.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        why = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"
        if getattr(e, "sqlstate", None) != "23505":  # not unique_violation: say what it was
            raise ConstrainError(f"building unique index {name} on orders failed ({why}); "
                                 "nothing else was changed") from e
        raise ConstrainError(
            f"building unique index {name} on orders failed ({why}): a duplicate order was "
            "written meanwhile; dedupe it (`recon reconcile`, then `recon repair plan` and "
            "`recon repair apply`) and run `recon db constrain` again") from e
    return True


def constrain(db: LocalDB) -> ConstrainResult:
    """Add :data:`CONSTRAINT` and :data:`NAME_INDEX` (see the module doc); refuses with every
    duplicate group while any remains."""
    _require_postgres(db)
    groups = duplicates(db)
    if groups:
        raise ConstrainError(
            f"orders still hold {len(groups)} group(s) of duplicates, so the unique keys "
            "cannot be added yet:\n" + "\n".join(g.line() for g in groups) + "\n"
            "Dedupe them first: `recon run` (or `recon reconcile`), then `recon repair plan "
            "--only D11` and `recon repair apply PLAN --yes` apply D11's unambiguous dedupes; "
            "a person resolves the rest. Then run `recon db constrain` again.")
    created, present = [], []
    if _has_constraint(db):
        present.append(CONSTRAINT)
    else:
        _build(db, CONSTRAINT, "(subscription_name, zuora_account_id)")
        try:
            with db.transaction():
                db.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                db.execute(f"ALTER TABLE orders ADD CONSTRAINT {CONSTRAINT} "
                           f"UNIQUE USING INDEX {CONSTRAINT}")
        except Exception as e:
            if getattr(e, "sqlstate", None) != "55P03":  # lock_not_available
                raise
            raise ConstrainError(
                f"adding constraint {CONSTRAINT} waited more than {LOCK_TIMEOUT} for a lock on "
                "orders (a long transaction holds it); the index is built, so re-running "
                "`recon db constrain` later only takes the short lock") from e
        created.append(CONSTRAINT)
    if _build(db, NAME_INDEX, "(subscription_name) WHERE NOT trial"):
        created.append(NAME_INDEX)
    else:
        present.append(NAME_INDEX)
    return ConstrainResult(tuple(created), tuple(present))

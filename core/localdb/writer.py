"""Who is writing the local copy: recon's write path names itself on every transaction.

The local copy of Zuora is read-only to everyone but recon (issue 16). On PostgreSQL the
guards (triggers generated from the catalogue's owners) let a write through only when its
transaction carries a *writer label* in the transaction-local setting :data:`SETTING`, which
recon's own write path — repair apply and revert, the targeted sync (through apply), the
backfill, the loaders of a database recon manages — sets right after ``BEGIN``. A
transaction-local setting disappears at commit or rollback, so it never leaks to the next
statement on a pooled connection.

The administrators' escape hatch is the same setting with the kind ``hatch`` (README "Local
copy guards"): its writes pass the guards, are distinguishable (the label says who and why) and
are found by the next reconcile like any other drift. It exists for emergencies and for tests
that plant drift as an outside writer would.

DuckDB has no triggers: marking is a no-op there (README says what is and is not enforced).
"""

from __future__ import annotations

import re
from typing import Any

from core.errors import ConfigError

SETTING = "recon.writer"
# recon's own writers, and the escape hatch (the only kind a person uses by hand)
KINDS = ("apply", "revert", "backfill", "load", "hatch")
_LABEL = re.compile(r"^[a-z]+:[A-Za-z0-9_.:@+\-]{1,200}$")


def label(kind: str, ident: str) -> str:
    """``kind:ident``, e.g. ``apply:ap-20261208T010203Z-3f2a1c`` or ``hatch:alice-INC-42``."""
    if kind not in KINDS:
        raise ConfigError(f"unknown local-copy writer kind {kind!r}: use one of "
                          f"{', '.join(KINDS)}")
    text = f"{kind}:{ident}"
    if not _LABEL.fullmatch(text):
        raise ConfigError(f"writer label {text!r} is not kind:ident (letters, digits and "
                          "_ . : @ + - only, at most 200 characters)")
    return text


def mark(db: Any, kind: str, ident: str) -> None:
    """Name the current transaction's writer (PostgreSQL; a no-op on DuckDB). ``db`` is a
    :class:`~core.localdb.connect.LocalDB` inside ``db.transaction()`` — outside one the
    setting would last a single autocommitted statement."""
    from core.localdb.dialect import Dialect

    text = label(kind, ident)
    if getattr(db, "dialect", None) is Dialect.POSTGRES:
        db.execute("SELECT set_config(%s, %s, true)", [SETTING, text])


def hatch_sql(who: str) -> str:
    """The statement an administrator types first in a transaction to write the local copy
    by hand (docs/local-database.md "Local copy guards": the escape hatch)."""
    return f"SELECT set_config('{SETTING}', '{label('hatch', who)}', true);"

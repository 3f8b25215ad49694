"""Before → after: where two canonical values differ, and by how much.

The same rule runs in the page's script (``assets/report.js``, ``diffParts``/``deltaNote``),
which re-renders what the server rendered first; keep the two in step. The common prefix and
suffix are shown plain and the middle is marked, so a date off by one day shows the one digit
that moved and a decimal shows the digits that differ; a note says "+1 day" or "Δ −0.01".
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2})")
_NUM = re.compile(r"^-?\d+(\.\d+)?$")


def diff_parts(a: str, b: str) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    """(prefix, differing middle, suffix) of ``a`` and of ``b``."""
    n = min(len(a), len(b))
    p = 0
    while p < n and a[p] == b[p]:
        p += 1
    s = 0
    while s < n - p and a[len(a) - 1 - s] == b[len(b) - 1 - s]:
        s += 1
    return ((a[:p], a[p:len(a) - s], a[len(a) - s:]),
            (b[:p], b[p:len(b) - s], b[len(b) - s:]))


def delta_note(before: str | None, after: str | None) -> str | None:
    """"+1 day" for dates, "Δ +0.01" for numbers, None otherwise (after − before)."""
    if before is None or after is None:
        return None
    da, db = _DATE.match(before), _DATE.match(after)
    if da and db:
        try:
            days = (dt.date.fromisoformat(db.group(1)) - dt.date.fromisoformat(da.group(1))).days
        except ValueError:
            return None
        if days:
            return f"{days:+d} day{'s' if abs(days) != 1 else ''}"
        return None
    if _NUM.match(before) and _NUM.match(after):
        try:
            d = Decimal(after) - Decimal(before)
        except InvalidOperation:
            return None
        return f"Δ {d:+}" if d else None
    return None

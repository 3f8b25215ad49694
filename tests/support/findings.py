"""Findings against the generator's labels, as multisets.

A finding matches a label on (object, key, kind, rule, field, action). Each label asks for
exactly one finding, so the comparison counts: a finding emitted twice (or a label written
twice) is a mismatch that names it with both counts, where comparing deduplicated sets would
have let it pass.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import polars as pl

KEYS = ["object", "key", "kind", "rule", "field", "action"]

Row = tuple[object, ...]


def _count(frame: pl.DataFrame) -> Counter[Row]:
    return Counter(frame.select(KEYS).iter_rows())


@dataclass(frozen=True)
class Mismatch:
    """What differs between the findings and the labels (all empty when they agree)."""

    unlabelled: dict[Row, int]  # findings no label asks for (how many times each was found)
    missing: dict[Row, int]  # labelled findings not found
    repeated: dict[Row, tuple[int, int]]  # found and labelled, but not as often: (found, labels)

    def __bool__(self) -> bool:
        return bool(self.unlabelled or self.missing or self.repeated)

    def __str__(self) -> str:
        def lines(title: str, rows: dict) -> list[str]:
            shown = [f"  {dict(zip(KEYS, r, strict=True))}: {n}"
                     for r, n in sorted(rows.items(), key=str)[:20]]
            more = [f"  … and {len(rows) - 20} more"] if len(rows) > 20 else []
            return [f"{title} ({len(rows)}):", *shown, *more] if rows else []

        return "\n".join([
            *lines("findings no label asks for (times found)", self.unlabelled),
            *lines("labelled drift not found (times labelled)", self.missing),
            *lines("found a different number of times than labelled (found, labelled)",
                   self.repeated)])


def compare(found: pl.DataFrame, labels: pl.DataFrame) -> Mismatch:
    """``found`` (drift rows) against ``labels`` (the generator's, ``kind == "none"`` rows —
    differences that must not be reported — left out) as multisets on :data:`KEYS`."""
    got = _count(found)
    want = _count(labels.filter(pl.col("kind") != "none"))
    return Mismatch(
        unlabelled={r: n for r, n in got.items() if r not in want},
        missing={r: n for r, n in want.items() if r not in got},
        repeated={r: (got[r], n) for r, n in want.items() if r in got and got[r] != n})


def labelled(labels: pl.DataFrame) -> int:
    """How many findings the labels ask for."""
    return labels.filter(pl.col("kind") != "none").height

"""The drift catalogue D01–D26 is declared once (core.drift) and read by every floor."""

from __future__ import annotations

import re
from pathlib import Path

from core.drift import BY_ID, CATALOGUE, GROUPS, REPORTED_IDS, TITLES, title
from reports.words import DRIFT_TITLES

REPO = Path(__file__).resolve().parents[2]


def test_the_catalogue_is_d01_to_d26_in_order_and_only_d26_is_not_reported() -> None:
    assert [d.id for d in CATALOGUE] == [f"D{i:02d}" for i in range(1, 27)]
    assert REPORTED_IDS == tuple(f"D{i:02d}" for i in range(1, 26))
    assert not BY_ID["D26"].reported
    assert all(d.title and d.group in GROUPS for d in CATALOGUE)
    assert len(set(TITLES.values())) == len(CATALOGUE)  # no two drifts read the same


def test_the_report_reads_the_catalogue() -> None:
    assert DRIFT_TITLES is TITLES
    assert title("D05") == "Date off by one day (time zone)"
    assert title(None) == "" and title("D99") == ""


def test_every_drift_id_the_reconciler_writes_is_in_the_catalogue() -> None:
    """A drift id spelled in the reconciler's SQL or code that the catalogue lacks would show
    in the report without a title: found here instead."""
    ids = set()
    for p in (REPO / "reconcile").rglob("*.py"):
        ids |= set(re.findall(r"['\"](D\d\d)['\"]", p.read_text()))
    assert ids, "the scan found no drift ids: the pattern is broken"
    assert ids <= set(REPORTED_IDS), sorted(ids - set(REPORTED_IDS))

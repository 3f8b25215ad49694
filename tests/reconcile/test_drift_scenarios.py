"""Each drift scenario changes exactly what its labels say, and nothing else.

For every scenario: apply it to a clean world, compare the two sides with the independent
oracle, and require the row/field differences to be exactly the labels of kinds
missing_in_local / orphaned_in_local / field_mismatch; any change to a local-only table
(orders, customers, memberships) must be covered by a rule or duplicate label on that table.
"""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest

from sandbox.generate.drift import DRIFT_IDS, SCENARIOS
from sandbox.generate.drift.base import KINDS
from tests.support.oracle import diff
from tests.support.worlds import fresh_world

DIFF_KINDS = ("missing_in_local", "orphaned_in_local", "field_mismatch")
LOCAL_ONLY = ("orders", "customers", "billing_account_memberships")
N = 3


def test_every_catalogue_drift_has_a_scenario() -> None:
    assert sorted(SCENARIOS) == list(DRIFT_IDS)


@pytest.mark.slow
@pytest.mark.parametrize("sid", sorted(SCENARIOS))
def test_scenario_changes_exactly_its_labels(sid: str) -> None:
    world = fresh_world()
    before_local = dict(world.local)
    SCENARIOS[sid](world, N)
    labels = world.label_frame()
    assert labels.height > 0, f"{sid} injected nothing"
    assert set(labels["scenario"]) == {sid}
    assert set(labels["kind"]) <= set(KINDS)
    assert set(labels["action"]) <= {"auto", "human"}
    assert labels.filter(pl.col("kind") == "field_mismatch")["field"].null_count() == 0

    # Multisets, not sets: a difference labelled twice, or found twice, is a mismatch.
    expected = Counter(
        (r["object"], r["key"], r["field"] if r["kind"] == "field_mismatch" else None, r["kind"])
        for r in labels.filter(pl.col("kind").is_in(DIFF_KINDS)).iter_rows(named=True))
    actual = Counter((r["object"], r["key"], r["field"], r["kind"])
                     for r in diff(world.zuora, world.local).iter_rows(named=True))
    assert dict(actual - expected) == {}, f"{sid} changed more (or more often) than its labels say"
    assert dict(expected - actual) == {}, f"{sid} labels differences that are not there (as often)"

    for table in LOCAL_ONLY:
        if not before_local[table].equals(world.local[table]):
            covered = labels.filter((pl.col("object") == table)
                                    & pl.col("kind").is_in(["rule_violation", "duplicate_local"]))
            assert covered.height, f"{sid} changed {table} without a rule label on it"


@pytest.mark.parametrize("sid", sorted(SCENARIOS))
def test_scenario_is_deterministic(sid: str) -> None:
    a, b = fresh_world(), fresh_world()
    SCENARIOS[sid](a, N)
    SCENARIOS[sid](b, N)
    assert a.label_frame().equals(b.label_frame())

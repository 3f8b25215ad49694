"""Precision and recall against the generator's labels: 100% for every scenario D01–D25, for
all of them together at a realistic drift rate, and zero findings on a clean tenant with the
normalisation-only variations (D26) turned on.

A finding matches a label on (object, key, kind, rule, field, action): the reconciler must
say what is wrong, where, under which rule, and whether a repair may fix it — once. Findings
and labels are compared as multisets (``tests.support.findings.compare``): a finding emitted twice
fails, naming it.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from reconcile.engine import reconcile_snapshot
from sandbox.generate.drift import SCENARIOS, apply
from sandbox.generate.drift.normalisation import apply_d26
from tests.support.findings import KEYS, compare, labelled
from tests.support.snapshots import write_snapshot
from tests.support.worlds import fresh_world


def _reconcile(world, tmp_path: Path):
    snap = write_snapshot(world, tmp_path, "20261102T070000Z")
    return reconcile_snapshot(snap, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("sid", sorted(SCENARIOS))
def test_scenario_precision_and_recall(sid: str, tmp_path: Path) -> None:
    world = fresh_world()
    SCENARIOS[sid](world, 3)
    result = _reconcile(world, tmp_path)
    labels = world.label_frame()
    assert labelled(labels) > 0
    mismatch = compare(result.drift, labels)
    assert not mismatch, f"{sid}:\n{mismatch}"
    assert set(result.drift["status"]) == {"new"}, "nothing is in the grace window a day later"


@pytest.mark.slow
def test_every_scenario_together_at_a_realistic_rate_with_d26(tmp_path: Path) -> None:
    world = fresh_world(accounts=1500, seed=29)
    apply(world, 0.05, 0.05)
    labels = world.label_frame()
    assert set(labels["scenario"]) == {f"D{i:02d}" for i in range(1, 27)}
    result = _reconcile(world, tmp_path)
    mismatch = compare(result.drift, labels)
    assert not mismatch, str(mismatch)
    assert labelled(labels) > 200, "a realistic run covers hundreds of findings"


@pytest.mark.slow
def test_clean_tenant_with_normalisation_variations_has_no_findings(tmp_path: Path) -> None:
    world = fresh_world()
    apply_d26(world, 0.05)
    assert world.label_frame().height > 50, "D26 variations were applied"
    result = _reconcile(world, tmp_path)
    assert result.drift.height == 0, result.drift.select("object", "key", "field", "explanation")
    assert result.object_stats["unequal"].sum() == 0
    assert (result.object_stats["zuora_rows"] > 0).all()


def test_a_finding_emitted_twice_is_a_mismatch_naming_it() -> None:
    """The comparison itself: equal as sets is not enough."""
    labels = pl.DataFrame({"object": ["Account", "Account", "Contact"],
                           "key": ["A1", "A2", "C1"],
                           "kind": ["field_mismatch", "missing_in_local", "none"],
                           "rule": [None, None, None], "field": ["Name", None, "WorkEmail"],
                           "action": ["auto", "auto", "auto"], "scenario": ["D01", "D02", "D26"]})
    once = labels.filter(pl.col("kind") != "none").select(KEYS)
    assert not compare(once, labels)
    twice = pl.concat([once, once.head(1)])
    mismatch = compare(twice, labels)
    assert mismatch and not mismatch.unlabelled and not mismatch.missing
    assert mismatch.repeated == {("Account", "A1", "field_mismatch", None, "Name", "auto"): (2, 1)}
    assert "'key': 'A1'" in str(mismatch) and "(2, 1)" in str(mismatch)
    missing = compare(once.tail(1), labels)
    assert list(missing.missing) == [("Account", "A1", "field_mismatch", None, "Name", "auto")]
    extra = compare(pl.concat([once, labels.filter(pl.col("kind") == "none").select(KEYS)]),
                    labels)
    assert list(extra.unlabelled) == [("Contact", "C1", "none", None, "WorkEmail", "auto")]

"""Precision and recall against the generator's labels: 100% for every scenario D01–D25, for
all of them together at a realistic drift rate, and zero findings on a clean tenant with the
normalisation-only variations (D26) turned on.

A finding matches a label on (object, key, kind, rule, field, action): the reconciler must
say what is wrong, where, under which rule, and whether a repair may fix it.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from snapshots import write_snapshot
from worlds import fresh_world

from extract.sandbox.generate.drift import SCENARIOS, apply
from extract.sandbox.generate.drift.normalisation import apply_d26
from reconcile.engine import reconcile_snapshot

KEYS = ["object", "key", "kind", "rule", "field", "action"]


def _label_keys(labels: pl.DataFrame) -> pl.DataFrame:
    return labels.filter(pl.col("kind") != "none").select(KEYS).unique()


def _compare(found: pl.DataFrame, labels: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    got = found.select(KEYS).unique()
    exp = _label_keys(labels)
    false_pos = got.join(exp, on=KEYS, how="anti", nulls_equal=True)
    false_neg = exp.join(got, on=KEYS, how="anti", nulls_equal=True)
    return false_pos, false_neg


def _reconcile(world, tmp_path: Path):
    snap = write_snapshot(world, tmp_path, "20261102T070000Z")
    return reconcile_snapshot(snap, tmp_path)


@pytest.mark.parametrize("sid", sorted(SCENARIOS))
def test_scenario_precision_and_recall(sid: str, tmp_path: Path) -> None:
    world = fresh_world()
    SCENARIOS[sid](world, 3)
    result = _reconcile(world, tmp_path)
    labels = world.label_frame()
    assert _label_keys(labels).height > 0
    false_pos, false_neg = _compare(result.drift, labels)
    assert false_pos.height == 0, f"{sid}: findings no label asks for:\n{false_pos}"
    assert false_neg.height == 0, f"{sid}: labelled drift not found:\n{false_neg}"
    assert set(result.drift["status"]) == {"new"}, "nothing is in the grace window a day later"


def test_every_scenario_together_at_a_realistic_rate_with_d26(tmp_path: Path) -> None:
    world = fresh_world(accounts=1500, seed=29)
    apply(world, 0.05, 0.05)
    labels = world.label_frame()
    assert set(labels["scenario"]) == {f"D{i:02d}" for i in range(1, 27)}
    result = _reconcile(world, tmp_path)
    false_pos, false_neg = _compare(result.drift, labels)
    assert false_pos.height == 0, f"findings no label asks for:\n{false_pos}"
    assert false_neg.height == 0, f"labelled drift not found:\n{false_neg}"
    assert _label_keys(labels).height > 200, "a realistic run covers hundreds of findings"


def test_clean_tenant_with_normalisation_variations_has_no_findings(tmp_path: Path) -> None:
    world = fresh_world()
    apply_d26(world, 0.05)
    assert world.label_frame().height > 50, "D26 variations were applied"
    result = _reconcile(world, tmp_path)
    assert result.drift.height == 0, result.drift.select("object", "key", "field", "explanation")
    assert result.object_stats["unequal"].sum() == 0
    assert (result.object_stats["zuora_rows"] > 0).all()

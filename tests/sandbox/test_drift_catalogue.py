"""The sandbox injects exactly the catalogue's reported drifts, each filed under its group."""

from __future__ import annotations

from core.drift import BY_ID, REPORTED_IDS
from sandbox.generate.drift import DRIFT_IDS, SCENARIOS


def test_one_scenario_per_reported_drift_in_its_groups_module() -> None:
    assert DRIFT_IDS == REPORTED_IDS
    assert sorted(SCENARIOS) == list(REPORTED_IDS)
    for sid, fn in SCENARIOS.items():
        assert fn.__module__ == f"sandbox.generate.drift.{BY_ID[sid].group}", sid
        assert fn.__name__.startswith(sid.lower() + "_"), (sid, fn.__name__)

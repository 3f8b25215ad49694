"""Drift scenarios (being written)."""

from __future__ import annotations

from extract.sandbox.generate.drift.base import Scenario

SCENARIOS: dict[str, Scenario] = {}

"""The drift catalogue D01–D26 (domain.md §5) as named scenario functions.

``SCENARIOS`` maps each id to its function; :func:`apply` runs them on a clean world at the
requested rate. D26 (normalisation-only differences, which must NOT be reported) has its own
rate so a "clean" tenant (drift 0) still exercises the comparator.
"""

from __future__ import annotations

import math

from core.drift import REPORTED_IDS
from sandbox.generate.drift import accounts, catalog, normalisation, orders, subscriptions
from sandbox.generate.drift.base import Scenario, World

SCENARIOS: dict[str, Scenario] = {
    **subscriptions.SCENARIOS, **orders.SCENARIOS, **accounts.SCENARIOS, **catalog.SCENARIOS,
}
DRIFT_IDS = REPORTED_IDS  # one named scenario per reported drift of core.drift


def count_for(world: World, rate: float, n_scenarios: int) -> int:
    """Instances per scenario: ``rate`` of the chunk's subscription names, spread evenly."""
    if rate <= 0:
        return 0
    names = world.zuora["Subscription"]["Name"].n_unique()
    return max(1, math.ceil(rate * names / max(n_scenarios, 1)))


def apply(world: World, rate: float, d26_rate: float, only: tuple[str, ...] | None = None) -> None:
    chosen = [s for s in sorted(SCENARIOS) if only is None or s in only]
    n = count_for(world, rate, len(chosen))
    for sid in chosen if n else ():
        SCENARIOS[sid](world, n)
    if d26_rate > 0 and (only is None or "D26" in only):
        normalisation.apply_d26(world, d26_rate)

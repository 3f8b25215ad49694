"""The catalog's absolute floor in the daily catalog job's volume check (issue 15)."""

from __future__ import annotations

from expectations.contracts import ZUORA
from expectations.volume import catalog_floors, volume_results


def outcomes(floor: int) -> dict[str, str]:
    now = {(ZUORA, "Product"): 3, (ZUORA, "Account"): 50}
    before = {(ZUORA, "Product"): 6, (ZUORA, "Account"): 100}
    return {r.object: r.outcome
            for r in volume_results(now, before, "prev", 0.2, "run", catalog_floors(floor))}


def test_a_small_catalog_table_may_lose_up_to_the_floor() -> None:
    assert outcomes(5) == {"Product": "passed", "Account": "failed"}  # only the catalog
    assert outcomes(2) == {"Product": "failed", "Account": "failed"}  # 3 lost > floor 2
    assert set(catalog_floors(1)) == {"Product", "ProductRatePlan", "ProductRatePlanCharge",
                                      "ProductRatePlanChargeTier"}

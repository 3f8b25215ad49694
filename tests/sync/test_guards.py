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


def test_prune_removes_only_old_sync_datasets(tmp_path) -> None:
    import datetime as dt

    from sync import new_sync_id, prune_syncs

    old = new_sync_id(dt.datetime.now(dt.UTC) - dt.timedelta(days=10))
    new = new_sync_id()
    for name in (old, new, "not-a-sync"):
        (tmp_path / "syncs" / name).mkdir(parents=True)
    assert prune_syncs(tmp_path, dt.timedelta(days=7)) == [old]
    assert sorted(p.name for p in (tmp_path / "syncs").iterdir()) == sorted([new, "not-a-sync"])



def test_zuora_unreachable_is_transient(tmp_path) -> None:
    """A worker retries later: the failure is typed SyncTransient, never a traceback."""
    import pytest

    from core.config import Secret, Settings
    from extract.client import RetryPolicy, ZuoraClient
    from sync import SyncRequest, SyncTransient, sync_keys
    from tests.conftest import free_port

    url = f"http://127.0.0.1:{free_port()}"
    settings = Settings(zuora_base_url=url, zuora_client_secret=Secret("x"),
                        data_dir=tmp_path)
    client = ZuoraClient(url, "recon", "x", policy=RetryPolicy(attempts=1))
    with pytest.raises(SyncTransient, match="for the moment"):
        sync_keys(settings, SyncRequest("contact", ("c1",)), client=client)

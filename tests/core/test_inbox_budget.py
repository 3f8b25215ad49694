"""The shared Zuora request budget through the real client (``ZuoraClient(budget=...)``) over
real HTTP to the sandbox: a slot per request, released after it, and a 429's Retry-After
written to the store so that another process sharing the budget waits too."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.config import Settings
from core.inbox import open_budget, tenant_of
from extract.client import ZuoraClient
from sandbox.server import SandboxServer
from tests.support.clock import FakeClock
from tests.support.extract import SECRET, Sleeps, base_dataset, policy

BODY = {"format": "csv", "version": "1.0", "queries": [
    {"name": "Product", "type": "zoqlexport", "query": "select Id from Product"}]}


@pytest.fixture
def srv() -> Iterator[SandboxServer]:
    with SandboxServer(base_dataset(), client_secret=SECRET, job_step_delay=0.01) as s:
        yield s


def _sleeper(clock: FakeClock, slept: list[float]):  # noqa: ANN202 - a test helper
    def sleep(x: float) -> None:
        slept.append(x)
        clock.advance(x)

    return sleep


def test_client_draws_from_the_budget_and_shares_retry_after(srv: SandboxServer,
                                                            tmp_path: Path) -> None:
    s = dataclasses.replace(Settings(), data_dir=tmp_path, zuora_base_url=srv.url,
                            zuora_budget_rate_per_s=1000, zuora_budget_concurrency=2)
    t0 = time.time()
    clock, slept = FakeClock(t0), []
    budget = open_budget(s, clock=clock, sleep=_sleeper(clock, slept))
    assert budget.tenant == tenant_of(srv.url, "recon")
    srv.add_fault("aqua_submit", "429", times=1, retry_after=30)
    c = ZuoraClient(srv.url, "recon", SECRET, policy=policy(3, Sleeps()), budget=budget)
    c.post_json("/v1/batch-query/", BODY, route="aqua_submit")  # 429, then 200
    assert c.stats.by_status.get("429") == 1
    assert budget.blocked_until() == pytest.approx(t0 + 30)  # in the store, for everyone
    assert sum(slept) == pytest.approx(30)  # the retry itself waited through the budget
    assert budget.backend.fetch("SELECT count(*) FROM recon_inbox_budget_slots")[0][0] == 0

    other_clock, other_slept = FakeClock(t0 + 10), []  # another process, same tenant
    other = open_budget(s, clock=other_clock, sleep=_sleeper(other_clock, other_slept))
    other.release(other.acquire())
    assert sum(other_slept) == pytest.approx(20)


def test_without_a_budget_the_client_is_unchanged(srv: SandboxServer) -> None:
    c = ZuoraClient(srv.url, "recon", SECRET, policy=policy(3, Sleeps()))
    assert c.budget is None
    c.post_json("/v1/batch-query/", BODY, route="aqua_submit")

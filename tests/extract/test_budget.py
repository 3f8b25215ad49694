"""The nightly's extract draws from the Zuora request budget the callout workers share
(issue 15 point 3), and only where callouts are received (an inbox exists)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from core.inbox import open_budget, open_inbox
from extract.extractor import run_extract
from sandbox.server import SandboxServer
from tests.support.extract import fast_options, settings


def test_without_an_inbox_the_extract_has_no_budget_and_creates_none(
        srv: SandboxServer, tmp_path: Path) -> None:
    m = run_extract(settings(srv.url, tmp_path), "full", options=fast_options())
    assert m.complete and "budget_wait_s" not in m.api
    assert not (tmp_path / "inbox.sqlite").exists()


def test_with_an_inbox_the_extract_shares_the_workers_budget(srv: SandboxServer,
                                                             tmp_path: Path) -> None:
    # 4 requests a second for the tenant, of which the workers' process used the burst
    s = dataclasses.replace(settings(srv.url, tmp_path), zuora_budget_rate_per_s=4.0,
                            zuora_budget_concurrency=2)
    with open_inbox(s):
        pass  # callouts are received here
    other = open_budget(s)
    try:
        for _ in range(4):
            other.release(other.acquire())
    finally:
        other.backend.close()
    m = run_extract(s, "full", options=fast_options())
    assert m.complete
    calls = m.api["calls"] + m.api["token_requests"]
    assert calls > 4
    # it waited for the tokens the other process had taken, then about 1/4 s per request
    assert m.api["budget_wait_s"] >= 0.2 * (calls - 4), (calls, m.api)

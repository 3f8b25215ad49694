"""Fixtures of the jobs/CLI tests (cross-cutting ones live in tests/conftest.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def no_http_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Zuora HTTP retries keep their attempts and logic but do not sleep between them.

    Why: a CLI test against an unreachable Zuora otherwise spends the production backoff
    (6 attempts, 10-16 s) waiting; the test is about the exit code and the message, and the
    retry rule itself is tested with recorded sleeps in tests/extract/test_client.py. Patched in
    the test process (no environment knob in production code), so the command runs in-process.
    A test using it must reach the client's retries: if the patch point moves, it says so
    instead of silently waiting again.
    """
    from extract import client

    real = client.retrying
    used: list[client.RetryPolicy] = []

    def retrying(policy: client.RetryPolicy, *args: Any, **kwargs: Any) -> Any:
        used.append(policy)
        return real(dataclasses.replace(policy, sleep=lambda _seconds: None), *args, **kwargs)

    monkeypatch.setattr(client, "retrying", retrying)
    yield
    assert used, "extract.client.retrying was never called: no_http_backoff patches nothing"

"""Fixtures of the jobs/CLI tests (cross-cutting ones live in tests/conftest.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest


@pytest.fixture
def no_http_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Zuora HTTP retries keep their attempts and logic but do not sleep between them.

    Why: a CLI test against an unreachable Zuora otherwise spends the production backoff
    (6 attempts, 10-16 s) waiting; the test is about the exit code and the message, and the
    retry rule itself is tested with recorded sleeps in tests/extract/test_client.py. Patched in
    the test process (no environment knob in production code), so the command runs in-process.
    """
    from extract import client

    real = client.retrying

    def retrying(policy: client.RetryPolicy, *args: Any, **kwargs: Any) -> Any:
        return real(dataclasses.replace(policy, sleep=lambda _seconds: None), *args, **kwargs)

    monkeypatch.setattr(client, "retrying", retrying)

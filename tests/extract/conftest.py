"""Fixtures of the extract tests (cross-cutting ones live in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.server import SandboxServer
from tests.support.extract import SECRET, base_dataset


@pytest.fixture
def srv() -> Iterator[SandboxServer]:
    """A fresh sandbox serving the shared 60-account tenant (mutations stay in this server's
    memory), with short AQuA job steps: the extract tests wait on jobs, not on the delay."""
    with SandboxServer(base_dataset(), client_secret=SECRET, job_step_delay=0.01) as s:
        yield s

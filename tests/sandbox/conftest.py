"""Fixtures of the sandbox tests: an authenticated HTTP session on a module's ``srv``.

Each module declares its own ``srv`` (tenant size and AQuA step delay differ by what it tests);
``http`` resolves against it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from sandbox.server import SandboxServer
from tests.support.sandbox import token


@pytest.fixture
def http(srv: SandboxServer) -> Iterator[requests.Session]:
    """A requests session carrying a fresh bearer token for ``srv``."""
    s = requests.Session()
    s.headers["Authorization"] = f"Bearer {token(srv)}"
    yield s
    s.close()

"""Fixtures of the report tests: headless Chromium (cross-cutting ones live in tests/conftest.py).

Chromium is Debian's ``/usr/bin/chromium`` or ``$RECON_CHROMIUM`` (``make test`` installs it where
it can). Under ``CI=true`` a missing Chromium fails the tests that use it; elsewhere they are
skipped with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.chromium import Chromium, find_binary


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    """One headless Chromium per test module (starting it costs more than a page load)."""
    reason = None
    if find_binary() is None:
        reason = ("no Chromium at /usr/bin/chromium or $RECON_CHROMIUM (make test installs it "
                  "as root: apt-get install chromium)")
    else:
        try:
            import websocket  # noqa: F401
        except ImportError:
            reason = "the websocket-client test dependency is missing (make setup)"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"headless Chromium is required in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    with Chromium(width=1400, height=1000) as c:
        yield c

"""Fixtures of the reconciler's tests: a small generated tenant (150 accounts, 5% drift)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.generate.run import Options, generate


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tenant")
    generate(Options(accounts=150, seed=5, drift=0.05, chunk=60), out)
    return out

"""Fixtures of the validation tests: the tests' 600-account world, snapshot-shaped."""

from __future__ import annotations

import pytest

from tests.support.expectations import Frames, world_frames


@pytest.fixture(scope="module")
def world() -> tuple[Frames, Frames]:
    return world_frames(0.0, 0.5)

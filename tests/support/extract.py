"""Shared helpers for the extractor tests (tests/test_extract_*.py): one generated tenant per
process, fast retry/poll options with recorded sleeps, and snapshot comparisons."""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from core import dataset
from core.catalog import OBJECTS, ObjectSpec
from core.config import Secret, Settings
from core.snapshot import Snapshot
from core.values import parse_frame
from extract.aqua import AquaOptions
from extract.client import RetryPolicy
from extract.extractor import ExtractOptions
from sandbox.generate.run import Options, generate

ACCOUNTS = 60
SEED = 3
TZ = "America/Los_Angeles"
SECRET = "sandbox-secret"


@functools.lru_cache(maxsize=1)
def base_dataset() -> Path:
    """A 60-account tenant, generated once per test process (read-only for tests: the
    sandbox keeps mutations in memory)."""
    out = Path(tempfile.mkdtemp(prefix="recon-extract-ds-"))
    atexit.register(shutil.rmtree, out, True)
    generate(Options(accounts=ACCOUNTS, seed=SEED), out)
    return out


@dataclass
class Sleeps:
    """A sleep function that records what it was asked and sleeps only a scaled-down bit."""

    scale: float = 0.0
    calls: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.scale:
            time.sleep(seconds * self.scale)


def policy(attempts: int = 4, sleeps: Sleeps | None = None) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, backoff_base=0.001, backoff_cap=0.01,
                       max_server_wait=30.0, sleep=sleeps if sleeps is not None else Sleeps())


def fast_options(*, attempts: int = 4, sleeps: Sleeps | None = None, local: bool = False,
                 **aqua: object) -> ExtractOptions:
    a = dict(poll_interval=0.02, poll_max=0.05, timeout=20.0, job_attempts=3, file_attempts=2)
    a.update(aqua)
    return ExtractOptions(policy=policy(attempts, sleeps), aqua=AquaOptions(**a),
                          export_local=local)


def settings(url: str, data_dir: Path, local_url: str | None = None) -> Settings:
    return Settings(zuora_base_url=url, zuora_client_id="recon",
                    zuora_client_secret=Secret(SECRET), tenant_tz=TZ,
                    local_database_url=local_url or "duckdb:///:memory:", data_dir=data_dir)


def expected(spec: ObjectSpec, root: Path | None = None) -> pl.DataFrame:
    """The dataset's records of ``spec``, typed exactly as the snapshot must hold them."""
    return _expected(spec.name, root or base_dataset())


@functools.lru_cache(maxsize=32)
def _expected(name: str, root: Path) -> pl.DataFrame:
    spec = next(s for s in OBJECTS if s.name == name)
    return parse_frame(spec, dataset.read_object(root, spec), TZ).frame.sort("Id")


def assert_matches_dataset(snap: Snapshot, root: Path | None = None) -> None:
    assert snap.complete
    for spec in OBJECTS:
        want = expected(spec, root).sort("Id")
        got = snap.read_zuora(spec.name).sort("Id")
        assert got.schema == want.schema, spec.name
        assert got.equals(want), f"{spec.name}: snapshot differs from the dataset"
        assert snap.manifest.zuora[spec.name]["rows"] == want.height


def assert_same_zuora(a: Snapshot, b: Snapshot) -> None:
    for spec in OBJECTS:
        x, y = a.read_zuora(spec.name).sort("Id"), b.read_zuora(spec.name).sort("Id")
        assert x.schema == y.schema, spec.name
        assert x.equals(y), f"{spec.name}: {a.run_id} != {b.run_id}"


def next_second() -> None:
    """Sleep past the current second: Zuora's UpdatedDate has one-second precision, so a
    window ending 'now' excludes changes made within the same second."""
    now = time.time()
    time.sleep(1.02 - (now % 1.0))


def utc(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC)

"""Helpers for tests/test_expectations_*.py: generated worlds shaped like a snapshot, snapshots
written from frames, and the fixture datasets of ``recon validate``."""

from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import polars as pl

from core.catalog import OBJECTS
from core.config import Settings
from core.profile import local_enums, local_keys, zuora_enums, zuora_keys
from core.snapshot import (
    Manifest,
    ParquetSink,
    Snapshot,
    SnapshotWriter,
    new_run_id,
    open_snapshot,
)
from core.values import REJECT_SCHEMA
from extract.local_export import table_schema
from sandbox.generate import drift
from tests.support.worlds import fresh_world

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "validate"
FIXTURE_SETS = ("good", "bad_values", "bad_rules", "bad_shape", "bad_duplicate_key")
TZ = "America/Los_Angeles"
Frames = dict[str, pl.DataFrame]


def settings(data_dir: Path, **kw: object) -> Settings:
    return Settings(data_dir=Path(data_dir), tenant_tz=TZ, **kw)  # type: ignore[arg-type]


def local_schema(table: str) -> pl.Schema:
    return pl.from_arrow(table_schema(table).empty_table()).schema  # type: ignore[union-attr]


def conform_local(table: str, df: pl.DataFrame) -> pl.DataFrame:
    """A generator frame as the local export writes it: every column, in DDL order, typed."""
    return df.select([pl.col(n).cast(t) if n in df.columns else pl.lit(None, t).alias(n)
                      for n, t in local_schema(table).items()])


@functools.lru_cache(maxsize=4)
def world_frames(drift_rate: float = 0.0, d26: float = 0.0) -> tuple[Frames, Frames]:
    """The tests' 600-account world (drift and D26 applied as asked), snapshot-shaped."""
    w = fresh_world()
    if drift_rate or d26:
        drift.apply(w, drift_rate, d26)
    local = {t: conform_local(t, df) for t, df in w.local.items()}
    return dict(w.zuora), local


def run_id_at(minutes: int) -> str:
    """Run ids that sort by the given minute offset (volume compares with older runs)."""
    return new_run_id(dt.datetime(2026, 11, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=minutes))


def write_snapshot(data_dir: Path, zuora: Frames, local: Frames, *, run_id: str | None = None,
                   rejects: dict[str, pl.DataFrame] | None = None,
                   profiles: bool = False) -> Snapshot:
    """A complete snapshot directory holding exactly these frames; ``profiles``: written
    through the extractor's ``ParquetSink``, so the files carry its column profiles."""
    run_id = run_id or new_run_id()
    w = SnapshotWriter(data_dir, run_id)

    def put(df: pl.DataFrame, path: Path, keys: list, enums: list) -> None:
        if not profiles:
            df.write_parquet(path)
            return
        table = df.to_arrow()
        sink = ParquetSink(path, table.schema, unique=keys, enums=enums)
        sink.write(table)
        sink.close()

    for spec in OBJECTS:
        put(zuora[spec.name], w.path("zuora", spec.name), zuora_keys(spec.name),
            zuora_enums(spec.name))
    for table, df in local.items():
        put(df, w.path("local", table), local_keys(table), local_enums(table))
    for obj, rej in (rejects or {}).items():
        rej.cast(REJECT_SCHEMA).write_parquet(w.path("rejects", obj))  # type: ignore[arg-type]
    manifest = Manifest(run_id=run_id, mode="full", tenant_tz=TZ,
                        zuora={s.name: {"rows": zuora[s.name].height} for s in OBJECTS},
                        local={t: {"rows": df.height} for t, df in local.items()})
    return open_snapshot(w.complete(manifest))

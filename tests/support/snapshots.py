"""Write a generated world straight into a complete snapshot, as the extractor would lay it
out, so reconciler tests run in a second instead of going through the sandbox over HTTP (the
end-to-end path has its own test)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pyarrow as pa

from core.catalog import OBJECTS
from core.localdb.schema import all_tables
from core.snapshot import Manifest, Snapshot, SnapshotWriter, open_snapshot
from core.values import dtype_of
from extract.local_export import table_schema
from sandbox.generate.drift.base import World

# The generator's extract instant is as_of 07:00 UTC; reconciling a day later keeps every
# labelled edit outside the grace window.
LATER = dt.timedelta(days=1)


def write_snapshot(world: World, data_dir: Path, run_id: str,
                   started_at: dt.datetime | None = None, *,
                   deleted: dict[str, pl.DataFrame] | None = None) -> Snapshot:
    """``deleted``: per object, Zuora deletions an incremental export saw (``Id``,
    ``deleted_at``), written as the extractor writes them."""
    started = started_at or dt.datetime.combine(world.as_of, dt.time(7)) + LATER
    w = SnapshotWriter(data_dir, run_id)
    m = Manifest(run_id=run_id, mode="full", requested_mode="full",
                 started_at=started.replace(tzinfo=dt.UTC).isoformat(),
                 finished_at=(started + dt.timedelta(minutes=1)).replace(
                     tzinfo=dt.UTC).isoformat(), tenant_tz=world.tz)
    for spec in OBJECTS:
        frame = world.zuora[spec.name].select(
            [pl.col(f.name).cast(dtype_of(f)) for f in spec.fields])
        frame.write_parquet(w.path("zuora", spec.name))
        m.zuora[spec.name] = {"rows": frame.height}
    for table in all_tables():
        schema = table_schema(table)
        frame = world.local[table]
        arrow = pa.table({f.name: frame[f.name].to_arrow() if f.name in frame.columns
                          else pa.nulls(frame.height) for f in schema})
        pl.from_arrow(arrow.cast(pa.schema([f.with_nullable(True) for f in schema]))) \
            .write_parquet(w.path("local", table))
        m.local[table] = {"rows": frame.height}
    for obj, frame in (deleted or {}).items():
        frame.select(pl.col("Id").cast(pl.String), pl.col("deleted_at").cast(
            pl.Datetime("us"))).write_parquet(w.path("deleted", obj))
    return open_snapshot(w.complete(m))

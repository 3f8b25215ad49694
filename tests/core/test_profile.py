"""Column profiles in the footers of the files recon writes (``core.profile``): what
validation proves rules from, so they must be exactly what the rows say (or sound bounds)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from core.profile import (
    MAX_DISTINCT,
    PROFILE_KEY,
    Profiler,
    profile_frame,
    read_profile,
)
from core.snapshot import ROW_GROUP_ROWS, ParquetSink
from extract.aqua import DELETED_FLAG
from extract.extractor import merge_object

FRAME = pl.DataFrame({
    "Id": ["a", "b", "c", "d", "b", None],
    "Name": ["x", "éé", None, "long name", "", "y"],  # é is two bytes
    "Nothing": pl.Series([None] * 6, dtype=pl.String),
    "Status": ["Active", "Active", None, "Cancelled", "Active", "Draft"],
    "n": [1, 2, 3, 4, 5, 6],
    "pair_a": ["p", "p", "q", None, None, "p"],
    "pair_b": [1, 2, 1, None, None, 1],
})
KEYS = [("Id",), ("pair_a", "pair_b")]


def _arrow(frame: pl.DataFrame) -> pa.Table:
    t = frame.to_arrow()
    return t.cast(pa.schema([pa.field(f.name, pa.large_string()) if pa.types.is_string_view(
        f.type) or pa.types.is_string(f.type) else f for f in t.schema]))


def test_profile_is_what_the_rows_say() -> None:
    p = profile_frame(FRAME, KEYS, enums=["Status", "Nothing"])
    assert p["rows"] == 6
    assert p["max_bytes"] == {"Id": 1, "Name": 9, "Nothing": None, "Status": 9, "pair_a": 1}
    assert p["distinct"] == {"Status": ["Active", "Cancelled", "Draft"], "Nothing": []}
    # Id: 5 non-NULL values, 4 distinct; (pair_a, pair_b): 6 rows, (p,1) twice, (NULL,NULL) twice
    assert p["unique"] == {"Id": {"count": 5, "distinct_hashes": 4},
                           "pair_a,pair_b": {"count": 6, "distinct_hashes": 4}}


def test_batches_add_up_to_the_whole() -> None:
    whole = profile_frame(FRAME, KEYS, enums=["Status"])
    table = _arrow(FRAME)
    prof = Profiler(table.schema, KEYS, ["Status"])
    for i in range(0, 6, 2):
        prof.update(table.slice(i, 2))  # sliced arrays: offsets start mid-buffer
    assert prof.result() == whole


def test_too_many_values_are_not_kept() -> None:
    many = pl.DataFrame({"Status": [f"v{i}" for i in range(MAX_DISTINCT + 1)]})
    assert profile_frame(many, enums=["Status"])["distinct"] == {"Status": None}


def test_the_sink_writes_the_profile_and_big_row_groups(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    big = pl.DataFrame({"Id": [f"id{i}" for i in range(2 * ROW_GROUP_ROWS + 10)]})
    sink = ParquetSink(path, _arrow(big).schema, unique=[("Id",)])
    for i in range(0, big.height, 1000):  # the extractor's small batches
        sink.write(_arrow(big).slice(i, 1000))
    assert sink.close() == big.height
    md = pq.read_metadata(path)
    groups = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
    assert len(groups) == 2 and groups[0] >= ROW_GROUP_ROWS and sum(groups) == big.height
    assert read_profile(path) == profile_frame(big, [("Id",)])


def test_a_profile_that_does_not_fit_its_file_is_ignored(tmp_path: Path) -> None:
    plain = tmp_path / "plain.parquet"
    FRAME.write_parquet(plain)
    assert read_profile(plain) is None
    table = _arrow(FRAME)
    good = profile_frame(FRAME, KEYS)
    for bad in ({**good, "rows": 5}, {**good, "version": 99}):
        path = tmp_path / "bad.parquet"
        pq.write_table(table.replace_schema_metadata({PROFILE_KEY: json.dumps(bad)}), path)
        assert read_profile(path) is None
    pq.write_table(table.replace_schema_metadata({PROFILE_KEY: "not json"}), path)
    assert read_profile(path) is None


def test_a_merged_file_gets_bounds_and_measured_keys(tmp_path: Path) -> None:
    """An incremental merge keeps base rows the delta does not touch: its profile's lengths
    and values are the two files' bounds, its key counts are measured on the result."""
    base = pl.DataFrame({"Id": ["a", "b", "c"], "Name": ["a very long name", "b", "c"],
                         "Status": ["Active", "Active", "Expired"]})
    delta = pl.DataFrame({"Id": ["a", "d"], "Name": ["short", "dd"],
                          "Status": ["Cancelled", "Active"], DELETED_FLAG: [False, False]})
    paths = {}
    for name, df in (("base", base), ("delta", delta)):
        paths[name] = tmp_path / name / "Subscription.parquet"
        paths[name].parent.mkdir()
        sink = ParquetSink(paths[name], _arrow(df).schema, unique=[("Id",)], enums=["Status"])
        sink.write(_arrow(df))
        sink.close()
    out = tmp_path / "Subscription.parquet"
    rows, _, _ = merge_object(paths["base"], paths["delta"], out)
    prof = read_profile(out)
    assert rows == 4 and prof is not None and prof["rows"] == 4
    assert prof["unique"] == {"Id": {"count": 4, "distinct_hashes": 4}}
    assert prof["max_bytes"]["Name"] == len("a very long name")  # a bound: "a" was replaced
    assert prof["distinct"]["Status"] == ["Active", "Cancelled", "Expired"]
    merged = pl.read_parquet(out)
    assert merged["Name"].str.len_bytes().max() <= prof["max_bytes"]["Name"]

"""The dataset directory: the Zuora sandbox's input and the generator's output.

Layout (documented in README "Dataset format")::

    DIR/zuora/<Object>.jsonl     one file per catalogue object, JSON Lines, Zuora field names,
                                 values as Zuora sends them (dateTimes with the tenant offset);
                                 <Object>.parquet is accepted instead
    DIR/tenant.json              tenant metadata: time zone, seed, counts
    DIR/labels.parquet           ground truth of injected drift (never read by the pipeline)
    DIR/local.duckdb             the local side, when no --db was given

Readers return *raw* frames (every column a string) so the typing and its rejects happen in
one place (``extract.values``).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from extract.catalog import OBJECTS, ObjectSpec
from extract.errors import DatasetError

ZUORA_DIR = "zuora"
TENANT_FILE = "tenant.json"
LABELS_FILE = "labels.parquet"


def object_path(root: Path, spec: ObjectSpec) -> Path:
    return Path(root) / ZUORA_DIR / f"{spec.name}.jsonl"


BLOCK_BYTES = 64 << 20  # JSON Lines text parsed at a time: a multi-GB file is never whole


def _check_fields(path: Path, spec: ObjectSpec, limit: int = 1000) -> None:
    """Fields of the first ``limit`` lines must be catalogue fields of ``spec``."""
    keys: set[str] = set()
    with path.open() as fh:
        for i, line in enumerate(fh):
            if i >= limit:
                break
            if line.strip():
                try:
                    keys.update(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DatasetError(f"{path}: line {i + 1} is not JSON: {e}") from e
    unknown = keys - set(spec.field_names)
    if unknown:
        raise DatasetError(
            f"{path}: fields {sorted(unknown)} are not {spec.name} fields in the catalogue")


def _jsonl_blocks(path: Path, schema: dict[str, pl.DataType]) -> Iterator[pl.DataFrame]:
    rest = b""
    with path.open("rb") as fh:
        while True:
            block = fh.read(BLOCK_BYTES)
            data = rest + block
            if block:
                cut = data.rfind(b"\n") + 1
                data, rest = data[:cut], data[cut:]
            if data.strip():
                yield pl.read_ndjson(io.BytesIO(data), schema=schema)
            if not block:
                return


def iter_object(root: Path, spec: ObjectSpec) -> Iterator[pl.DataFrame]:
    """The raw rows of one object block by block (all columns strings, catalogue order), so
    a large dataset can be typed without holding its text whole."""
    jsonl = object_path(root, spec)
    parquet = jsonl.with_suffix(".parquet")
    schema = {f.name: pl.String for f in spec.fields}
    if jsonl.is_file():
        _check_fields(jsonl, spec)
        yield from _jsonl_blocks(jsonl, schema)
        return
    if not parquet.is_file():
        raise DatasetError(
            f"dataset {root} has no {spec.name} file: expected {jsonl} or {parquet}")
    for part in [parquet, *sorted(parquet.parent.glob(f"{spec.name}.part*.parquet"))]:
        df = pl.read_parquet(part)
        unknown = set(df.columns) - set(schema)
        if unknown:
            raise DatasetError(
                f"{part}: columns {sorted(unknown)} are not {spec.name} fields in the catalogue")
        yield df.select([pl.col(c).cast(pl.String) if c in df.columns
                         else pl.lit(None, pl.String).alias(c) for c in schema])


def read_object(root: Path, spec: ObjectSpec) -> pl.DataFrame:
    """The raw rows of one object (all columns strings, catalogue order)."""
    parts = list(iter_object(root, spec))
    if not parts:
        return pl.DataFrame(schema={f.name: pl.String for f in spec.fields})
    return pl.concat(parts, how="vertical")


def write_object(root: Path, spec: ObjectSpec, rendered: pl.DataFrame, append: bool = False,
                 fmt: str = "jsonl") -> int:
    """Write (or append) rendered rows. JSON Lines keep null fields as ``null`` (readers treat
    null and absent alike; the sandbox server omits them in API responses, as ZOQL does).
    Parquet (``fmt="parquet"``) is the compact choice for large tenants; appending to it
    writes a numbered part file next to the first."""
    path = object_path(root, spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        target = path.with_suffix(".parquet")
        if append and target.exists():
            part = 1
            while (target.parent / f"{spec.name}.part{part}.parquet").exists():
                part += 1
            target = target.parent / f"{spec.name}.part{part}.parquet"
        rendered.write_parquet(target)
        return rendered.height
    with path.open("ab" if append else "wb") as fh:
        if rendered.height:
            rendered.write_ndjson(fh)
    return rendered.height


def read_tenant(root: Path) -> dict:
    path = Path(root) / TENANT_FILE
    if not path.is_file():
        raise DatasetError(f"dataset {root} has no {TENANT_FILE}; was it made by the generator?")
    return json.loads(path.read_text())


def write_tenant(root: Path, meta: dict) -> None:
    Path(root).mkdir(parents=True, exist_ok=True)
    (Path(root) / TENANT_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def present_objects(root: Path) -> list[ObjectSpec]:
    out = []
    for spec in OBJECTS:
        p = object_path(root, spec)
        if p.is_file() or p.with_suffix(".parquet").is_file():
            out.append(spec)
    return out

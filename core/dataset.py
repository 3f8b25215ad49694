"""The dataset directory: the Zuora sandbox's input and the generator's output.

Layout (documented in docs/sandbox.md "Dataset format")::

    DIR/zuora/<Object>.jsonl     one file per catalogue object, JSON Lines, Zuora field names,
                                 values as Zuora sends them (dateTimes with the tenant offset);
                                 <Object>.parquet is accepted instead
    DIR/tenant.json              tenant metadata: time zone, seed, counts
    DIR/labels.parquet           ground truth of injected drift (never read by the pipeline)
    DIR/local.duckdb             the local side, when no --db was given

Readers return *raw* frames (every column a string) so the typing and its rejects happen in
one place (``core.values``).

JSON Lines are UTF-8 text. A record may carry values JSON cannot spell — bytes that are not
UTF-8, exactly as Zuora might send them on the wire — in a ``"$raw"`` member: an object
mapping field names to the value's bytes in base64 (``{"Id": "…", "$raw": {"Name":
"QWNtZf8="}}``); a field named there takes those bytes instead of its JSON value. The sandbox
serves them byte for byte on the AQuA file route (its JSON APIs send the typed value);
readers here give the text when the bytes are UTF-8 and NULL otherwise, and keep the bytes
in a ``$raw`` column of base64 strings (only when some record has them).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from core.catalog import OBJECTS, ObjectSpec
from core.errors import DatasetError

ZUORA_DIR = "zuora"
TENANT_FILE = "tenant.json"
LABELS_FILE = "labels.parquet"
LOCAL_DB_FILE = "local.duckdb"  # a generated tenant's local database (DuckDB)
RAW = "$raw"  # a record's raw-bytes member (field -> base64 of the exact bytes)


def object_path(root: Path, spec: ObjectSpec) -> Path:
    return Path(root) / ZUORA_DIR / f"{spec.name}.jsonl"


BLOCK_BYTES = 64 << 20  # JSON Lines text parsed at a time: a multi-GB file is never whole


def _line_text(path: Path, number: int, line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(
            f"{path}: line {number} is not UTF-8 text (byte {e.start + 1}: "
            f"{line[e.start:e.start + 1]!r}); JSON Lines are UTF-8 — carry raw bytes in a "
            f'"{RAW}" member (field -> base64), see docs/sandbox.md "Dataset format"') from None


def _check_line(path: Path, number: int, line: bytes, spec: ObjectSpec) -> set[str]:
    """The keys of one JSON line; raises :class:`DatasetError` naming file and line when it
    is not UTF-8, not a JSON object, or carries a ``$raw`` member that is not field -> base64."""
    try:
        rec = json.loads(_line_text(path, number, line))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: line {number} is not JSON: {e}") from e
    if not isinstance(rec, dict):
        raise DatasetError(f"{path}: line {number} is not a JSON object")
    raw = rec.get(RAW)
    if raw is not None:
        if not isinstance(raw, dict):
            raise DatasetError(f'{path}: line {number}: "{RAW}" must map field names to base64')
        for name, value in raw.items():
            if name not in spec.field_names:
                raise DatasetError(f'{path}: line {number}: "{RAW}" names {name!r}, which is '
                                   f"not a {spec.name} field in the catalogue")
            try:
                base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError) as e:
                raise DatasetError(f'{path}: line {number}: "{RAW}".{name} is not base64: '
                                   f"{e}") from None
    return set(rec) - {RAW}


def _check_fields(path: Path, spec: ObjectSpec, limit: int = 1000) -> None:
    """Fields of the first ``limit`` lines must be catalogue fields of ``spec``."""
    keys: set[str] = set()
    with path.open("rb") as fh:
        for i, line in enumerate(fh):
            if i >= limit:
                break
            if line.strip():
                keys.update(_check_line(path, i + 1, line, spec))
    unknown = keys - set(spec.field_names)
    if unknown:
        raise DatasetError(
            f"{path}: fields {sorted(unknown)} are not {spec.name} fields in the catalogue")


def _jsonl_blocks(path: Path, spec: ObjectSpec, schema: dict[str, pl.DataType]
                  ) -> Iterator[pl.DataFrame]:
    rest = b""
    line0 = 0  # lines before this block, for error messages
    with path.open("rb") as fh:
        while True:
            block = fh.read(BLOCK_BYTES)
            data = rest + block
            if block:
                cut = data.rfind(b"\n") + 1
                data, rest = data[:cut], data[cut:]
            if data.strip():
                try:
                    yield pl.read_ndjson(io.BytesIO(data), schema=schema)
                except pl.exceptions.PolarsError as e:
                    _explain_block(path, spec, data, line0)  # raises naming the line
                    last = line0 + data.count(b"\n")
                    raise DatasetError(f"{path}: lines {line0 + 1}–{last} cannot be read: "
                                       f"{e}") from e
                line0 += data.count(b"\n")
            if not block:
                return


def _explain_block(path: Path, spec: ObjectSpec, data: bytes, line0: int) -> None:
    """A block polars refused: find the first bad line (the error path only)."""
    for i, line in enumerate(data.split(b"\n")):
        if line.strip():
            _check_line(path, line0 + i + 1, line, spec)


def _apply_raw(df: pl.DataFrame, spec: ObjectSpec) -> pl.DataFrame:
    """Fields named in ``$raw`` take their bytes as text when UTF-8, else NULL; the ``$raw``
    column stays (base64 per field) for the sandbox, or goes when no record has one."""
    raw = df.get_column(RAW)
    if raw.null_count() == df.height:
        return df.drop(RAW)
    fields = [f.name for f in spec.fields]
    texts = {name: [None if v is None else _utf8_or_none(base64.b64decode(v))
                     for v in raw.struct.field(name).to_list()] for name in fields
             if raw.struct.field(name).null_count() < df.height}
    return df.with_columns([
        pl.when(raw.struct.field(name).is_not_null()).then(pl.Series(vals, dtype=pl.String))
        .otherwise(pl.col(name)).alias(name) for name, vals in texts.items()])


def raw_rejects(spec: ObjectSpec, raw: pl.DataFrame) -> pl.DataFrame:
    """The ``$raw`` values of a frame from :func:`read_object` that are not UTF-8 (their
    text is NULL there), as rejects (``core.values.REJECTS``, rule ``utf8``, the
    bytes escaped): a reader that types a dataset quarantines them as the extractor would."""
    from core.values import REJECTS, UTF8_RULE, escape_bytes

    if RAW not in raw.columns:
        return pl.DataFrame(schema=REJECTS)
    rows = []
    held = raw.select("Id", RAW).filter(pl.col(RAW).is_not_null())
    for key, rec in held.iter_rows():
        for name, value in rec.items():
            data = None if value is None else base64.b64decode(value)
            if data is not None and _utf8_or_none(data) is None:
                rows.append((spec.name, key if name != "Id" else None, name,
                             escape_bytes(data), UTF8_RULE, None))
    return pl.DataFrame(rows, schema=REJECTS, orient="row")


def _utf8_or_none(value: bytes) -> str | None:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def iter_object(root: Path, spec: ObjectSpec) -> Iterator[pl.DataFrame]:
    """The raw rows of one object block by block (all columns strings, catalogue order), so
    a large dataset can be typed without holding its text whole."""
    jsonl = object_path(root, spec)
    parquet = jsonl.with_suffix(".parquet")
    schema = {f.name: pl.String for f in spec.fields}
    if jsonl.is_file():
        _check_fields(jsonl, spec)
        with_raw = {**schema, RAW: pl.Struct(dict(schema))}
        for df in _jsonl_blocks(jsonl, spec, with_raw):  # type: ignore[arg-type]
            yield _apply_raw(df, spec)
        return
    if not parquet.is_file():
        raise DatasetError(
            f"dataset {root} has no {spec.name} file: expected {jsonl} or {parquet}")
    for part in [parquet, *sorted(parquet.parent.glob(f"{spec.name}.part*.parquet"))]:
        try:
            df = pl.read_parquet(part)
        except (pl.exceptions.PolarsError, OSError) as e:  # e.g. text that is not UTF-8
            raise DatasetError(f"{part} cannot be read as a {spec.name} dataset file: {e}"
                               ) from None
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

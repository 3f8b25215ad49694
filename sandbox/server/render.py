"""Typed frames → what each API sends (docs/zuora-api.md §4.1), via ``core.values``.

- ZOQL (``/v1/action/query``): JSON records, dateTimes ``2021-07-15T08:42:54.000-07:00``,
  null fields omitted.
- Object Query: camelCase JSON, dateTimes ``2025-03-25T06:26:14-07:00``, nulls omitted unless
  ``includeNullFields``.
- AQuA CSV: ``Object.Field`` headers; dateTimes in the tenant offset (a tenant-zone midnight
  written date-only, as Zuora does) or, with ``dateTimeUtc``, ``...+0000``; rendered and
  streamed chunk by chunk.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import polars as pl

from core.catalog import ObjectSpec, ZType
from core.values import render_frame

CSV_CHUNK_ROWS = 50_000


def _json_numbers(spec: ObjectSpec, rendered: pl.DataFrame) -> pl.DataFrame:
    """Decimals as JSON numbers (as Zuora's JSON APIs send them), not strings."""
    casts = [pl.col(f.name).cast(pl.Float64) for f in spec.fields
             if f.ztype is ZType.DECIMAL and f.name in rendered.columns]
    return rendered.with_columns(casts) if casts else rendered


def records(spec: ObjectSpec, typed: pl.DataFrame, tz: str, style: str,
            names: dict[str, str] | None = None, include_nulls: bool = False) -> list[dict]:
    """JSON-ready records; ``names`` renames fields (Object Query's camelCase)."""
    rendered = render_frame(spec, typed, tz, style)
    rendered = _json_numbers(spec, rendered).select(
        [c for c in typed.columns if c in rendered.columns])
    if names:
        rendered = rendered.rename({c: names[c] for c in rendered.columns if c in names})
    rows = rendered.to_dicts()
    if include_nulls:
        return rows
    return [{k: v for k, v in r.items() if v is not None} for r in rows]


def csv_field(value: bytes | None, null: str = "") -> bytes:
    """One CSV field as Zuora (and polars) quote it: NULL is the null replacement, an empty
    string ``""``, a value with a comma, quote, CR or LF quoted with quotes doubled; every
    other byte (NULs, bytes that are not UTF-8) as is."""
    if value is None:
        return null.encode()
    if value == b"" or any(c in value for c in (b",", b'"', b"\n", b"\r")):
        return b'"' + value.replace(b'"', b'""') + b'"'
    return value


def _text(value: object) -> bytes | None:
    """A rendered cell as polars' CSV writer spells it (booleans ``true``/``false``)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"true" if value else b"false"
    return str(value).encode()


def _raw_rows(out: pl.DataFrame, names: list[str], ids: list[str],
              raw: dict[str, dict[str, bytes]], null: str) -> bytes:
    """CSV lines of rows holding raw bytes (a few; sandbox equipment): each field is its
    raw bytes when the dataset gave some, else the rendered text."""
    lines = []
    for row, id_ in zip(out.iter_rows(), ids, strict=True):
        held = raw.get(id_, {})
        cells = [held[n] if n in held else _text(v) for n, v in zip(names, row, strict=True)]
        lines.append(b",".join(csv_field(c, null) for c in cells) + b"\n")
    return b"".join(lines)


def csv_chunks(spec: ObjectSpec, typed: pl.DataFrame, names: list[str], tz: str, *,
               utc: bool, labels: bool = True, deleted: tuple[str, str] | None = None,
               null: str = "", chunk_rows: int = CSV_CHUNK_ROWS,
               raw: dict[str, dict[str, bytes]] | None = None) -> Iterator[bytes]:
    """The AQuA CSV of ``typed`` (its ``names`` columns, in that order), chunk by chunk.

    ``deleted`` = (column, "Boolean"|"Numeric"): a first column from the boolean ``_deleted``
    column of ``typed``. ``raw`` (Id -> field -> bytes, the dataset's ``$raw`` values): those
    fields are sent as exactly those bytes, CSV-quoted (rows without any go through polars)."""
    header = [f"{spec.name}.{n}" if labels else f"{spec.name}: {n}" for n in names]
    if deleted is not None:
        header.insert(0, f"{spec.name}.{deleted[0]}" if labels else
                      f"{spec.name}: {deleted[0]}")
    buf = io.StringIO()
    pl.DataFrame(schema={h: pl.String for h in header}).write_csv(buf)
    yield buf.getvalue().encode()
    for start in range(0, typed.height, chunk_rows):
        part = typed.slice(start, chunk_rows)
        out = render_frame(spec, part.select(names), tz, "aqua_utc" if utc else "aqua").select(
            names)
        if deleted is not None:
            flag = part["_deleted"]
            col = (flag.cast(pl.Int8).cast(pl.String) if deleted[1].lower() == "numeric"
                   else flag.cast(pl.String))
            out = out.insert_column(0, col.alias("_deleted"))
        out.columns = header
        held = None
        if raw and "Id" in names:
            held = part["Id"].cast(pl.String).is_in(pl.Series(list(raw), dtype=pl.String)
                                                    .implode())
            special = out.filter(held)
            ids = part.filter(held)["Id"].cast(pl.String).to_list()
            out = out.filter(~held)
        buf = io.BytesIO()
        out.write_csv(buf, include_header=False, null_value=null)
        yield buf.getvalue()
        if held is not None and ids:
            cols = (["_deleted"] if deleted is not None else []) + names
            yield _raw_rows(special, cols, ids, raw or {}, null)

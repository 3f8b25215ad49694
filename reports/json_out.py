"""JSON out of the model: ``report.json`` (the machine-readable twin) and the page's data island.

``report.json`` is the model plus every finding as a record (all drift.parquet columns), for CI
and scripts. The island is what the page's script needs, compact: findings column by column,
low-cardinality columns as one character per finding coding into a dictionary, long texts cut
at :data:`CELL_CAP` characters (the twin and drift.parquet keep them whole), the compact
notes (reports.entities) instead of whole explanations, with markers for the key and values
they still repeat, timestamps as epoch seconds. Both are built by polars
and the C JSON encoder, never a Python loop per finding.

The island sits inside ``<script type="application/json">``: ``<``, ``>`` and ``&`` are written
as ``\\u003c``, ``\\u003e``, ``\\u0026``, so no value (a customer name ``</script><script>…``)
can end the element or start markup; U+2028/2029 are escaped too for older parsers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from reports.atomic import write_text_atomic
from reports.model import SEVERITY_ORDER, STATUS_ORDER, ReportModel, to_json

# columns coded through a dictionary in the island (few distinct values each)
# (entity, account number and name repeat across the rows of one group: a dictionary holds each
# once; with more values than the one-character alphabet they travel as a list of codes)
DICT_COLUMNS = ("object", "kind", "rule", "field", "severity", "action", "status",
                "first_seen_run", "drift_id", "entity_kind", "owner", "ack", "ack_lapsed",
                "ack_by", "ack_until", "entity", "account_number", "account_name", "product")
# The page shows the compact ``note``, not the whole ``explanation`` (its key, subscription and
# values are in their own cells and in the detail; the whole text is in report.json), and the
# fingerprint's first 12 characters (``fp``: what ``recon findings ack`` takes; unique
# prefixes are enough)
TEXT_COLUMNS = ("key", "zuora_value", "local_value", "note", "subscription_name",
                "account_id", "zuora_updated", "evidence", "fp", "ack_note", "ack_at")
FP_CHARS = 12
ISLAND_COLUMNS = DICT_COLUMNS + TEXT_COLUMNS
CELL_CAP = 400  # characters kept per text cell in the page (the twin keeps everything)
_ORDER = {"severity": SEVERITY_ORDER, "status": STATUS_ORDER}
_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026",
            0x2028: "\\u2028", 0x2029: "\\u2029"}


def escape_island(text: str) -> str:
    """JSON text made safe inside an HTML ``<script>`` element (still the same JSON).
    Chained ``str.replace`` (C speed) rather than ``translate`` (a lookup per character)."""
    for char, escaped in _ESCAPES.items():
        if chr(char) in text:
            text = text.replace(chr(char), escaped)
    return text


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


# Dictionary codes travel as one string per column, a character per finding ("!" = null):
# a third of the size of a JSON list of numbers. Characters that JSON or HTML would escape
# are left out of the alphabet; columns with more distinct values fall back to a list.
NULL_CODE = "!"
ALPHABET = "".join(c for c in map(chr, range(35, 127)) if c not in '\\<>&"')
# In the page, an explanation that repeats its finding's key or values carries these markers
# instead (private-use characters; the script puts the values back).
MARK_KEY, MARK_ZUORA, MARK_LOCAL = "\ue000", "\ue001", "\ue002"


def _dictionary(series: pl.Series, name: str) -> tuple[list[str], str | list[int]]:
    values = [v for v in series.unique().to_list() if v is not None]
    first = [v for v in _ORDER.get(name, ()) if v in values]
    values = first + sorted(v for v in values if v not in first)
    if len(values) <= len(ALPHABET):
        chars = series.replace_strict(values, list(ALPHABET[:len(values)]), default=NULL_CODE,
                                      return_dtype=pl.String) if values else \
            pl.Series(name, [NULL_CODE] * series.len(), dtype=pl.String)
        return values, chars.str.join("").item() if series.len() else ""
    codes = series.replace_strict(values, list(range(len(values))), default=-1,
                                  return_dtype=pl.Int32)
    return values, codes.to_list()


def _cut(col: str) -> pl.Expr:
    return (pl.when(pl.col(col).str.len_chars() > CELL_CAP)
            .then(pl.col(col).str.slice(0, CELL_CAP) + "…").otherwise(pl.col(col)))


def _compact_explanation(col: str = "note") -> pl.Expr:
    """The note with its own key and values replaced by markers (values of 4+ characters
    only, so short values inside words are left alone)."""
    expr = _cut(col)
    for col, mark in (("key", MARK_KEY), ("zuora_value", MARK_ZUORA),
                      ("local_value", MARK_LOCAL)):
        usable = pl.col(col).is_not_null() & (pl.col(col).str.len_chars() >= 4) & \
            (pl.col(col).str.len_chars() <= CELL_CAP)
        expr = pl.when(usable).then(
            expr.str.split(pl.col(col)).list.join(mark)
        ).otherwise(expr)
    return expr


def island_findings(findings: pl.DataFrame) -> str:
    """The findings as columnar JSON text (already island-escaped): ``{"n", "cap",
    "alphabet", "dict": {col: [values]}, "cols": {col: codes | texts}}``; ``zuora_updated`` as
    epoch seconds, notes with key/value markers (see :data:`MARK_KEY`)."""
    parts: list[str] = []
    dicts: dict[str, list[str]] = {}
    for name in DICT_COLUMNS:
        values, codes = _dictionary(findings[name], name)
        dicts[name] = values
        parts.append(f'"{name}":' + dumps(codes))
    cut = findings.with_columns(fp=pl.col("fingerprint").str.slice(0, FP_CHARS)).select(
        *[_cut(c).alias(c) for c in TEXT_COLUMNS if c not in ("note", "zuora_updated")],
        _compact_explanation().alias("note"),
        pl.col("zuora_updated").str.to_datetime("%Y-%m-%dT%H:%M:%SZ", strict=False)
        .dt.epoch("s").alias("zuora_updated"))
    for name in TEXT_COLUMNS:
        parts.append(f'"{name}":' + dumps(cut[name].to_list()))
    text = (f'{{"n":{findings.height},"cap":{CELL_CAP},"alphabet":{dumps(ALPHABET)},'
            f'"null":"{NULL_CODE}","dict":{dumps(dicts)},"cols":{{{",".join(parts)}}}}}')
    return escape_island(text)


def island(model: ReportModel, findings: pl.DataFrame) -> str:
    """The whole data island: ``{"model": …, "findings": …}``, escaped."""
    return (f'{{"model":{escape_island(dumps(to_json(model)))},'
            f'"findings":{island_findings(findings)}}}')


def report_json_text(model: ReportModel, findings: pl.DataFrame) -> str:
    """``report.json``'s text: the model and every finding as a record."""
    body = json.dumps(to_json(model), ensure_ascii=False, indent=1, default=str)
    rows = findings.write_json() if findings.height else "[]"
    return body[:body.rstrip().rfind("}")].rstrip() + ',\n "findings": ' + rows + "\n}\n"


def write_report_json(model: ReportModel, findings: pl.DataFrame, path: Path) -> Path:
    """``report.json``: the model and every finding as a record (atomically replaced)."""
    return write_text_atomic(path, report_json_text(model, findings))

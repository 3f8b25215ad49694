"""Validate a command's ``--json`` output against its committed contract (docs/json/)."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator

from jobs.cli.jsonout import schema_path, schema_version


def check(command: str, doc: Any) -> Any:
    """Assert ``doc`` (a parsed document, or the text printed) satisfies the command's
    schema and carries its ``schema_version``; returns the parsed document."""
    if isinstance(doc, str):
        doc = json.loads(doc)
    path = schema_path(command)
    assert path.exists(), f"no JSON Schema committed for `recon {command} --json`: {path}"
    schema = json.loads(path.read_text())
    Draft202012Validator.check_schema(schema)
    errors = sorted(Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, f"`recon {command} --json` breaks {path.name}: " + "; ".join(
        f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors[:5])
    assert doc.get("schema_version") == schema_version(command)
    return doc

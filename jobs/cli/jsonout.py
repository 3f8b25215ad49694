"""``--json`` outputs: one document per command, stamped with its contract's version.

Each command that prints JSON for scripts has a JSON Schema file under ``docs/json/``
(``<command with dashes>.schema.json``) whose ``x-schema-version`` is the document's
``schema_version``: declared once in the schema, read here, so the printed number and the
contract cannot drift apart. Tests validate real outputs against the files.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "docs" / "json"


def schema_path(command: str) -> Path:
    """``repair history`` → ``docs/json/repair-history.schema.json``."""
    return SCHEMA_DIR / f"{command.replace(' ', '-')}.schema.json"


@functools.cache
def schema_version(command: str) -> int:
    """The contract version of ``command``'s JSON output (its schema's ``x-schema-version``;
    1 when the file is not shipped, e.g. in an installed wheel without ``docs/``)."""
    path = schema_path(command)
    if not path.exists():
        return 1
    return int(json.loads(path.read_text()).get("x-schema-version", 1))


def document(command: str, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with ``schema_version`` first."""
    return {"schema_version": schema_version(command), **doc}


def emit(command: str, doc: dict[str, Any]) -> None:
    """Print ``command``'s JSON document (indented, non-JSON values as strings)."""
    print(json.dumps(document(command, doc), indent=2, default=str))

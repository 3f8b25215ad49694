"""What goes on the wire: a response value the handlers build and ``app`` writes, plus the
error-body shapes of each Zuora API family (docs/zuora-api.md §1, §2.1, §2.3, §2.5, §3)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.errors import ReconError


class SandboxError(ReconError):
    """A mistake in a call to the sandbox's Python API (unknown object, id, field...) or an
    unusable dataset directory."""


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"
    # A streamed body (files): written with chunked transfer encoding, chunk by chunk.
    stream: Iterable[bytes] | None = None
    # Fault hooks for streamed bodies: close the socket after this many bytes...
    drop_after: int | None = None


def _default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return float(o)
    raise TypeError(f"cannot encode {type(o).__name__}")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=_default).encode()


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status=status, body=dumps(obj), headers=dict(headers or {}))


def new_id() -> str:
    """A Zuora-looking 32-character lowercase hex id."""
    return uuid.uuid4().hex


# -- error bodies, one per API family ---------------------------------------------------------

def auth_error() -> Response:
    """401 for a missing, unknown or expired bearer token [S-ACT]."""
    return json_response({"message": "Authentication error"}, 401,
                         {"WWW-Authenticate": 'Bearer realm="Zuora", error="invalid_token"'})


def v1_error(status: int, code: int | str, message: str) -> Response:
    """The newer v1 shape: ``{"success":false,"processId":...,"reasons":[{code,message}]}``."""
    return json_response({"success": False, "processId": new_id()[:16].upper(),
                          "reasons": [{"code": code, "message": message}]}, status)


def actions_error(status: int, code: str, message: str) -> Response:
    """The CRUD/Actions shape used by ``/v1/action/query``: ``{"Errors":[...],"Success":false}``."""
    return json_response({"Errors": [{"Code": code, "Message": message}], "Success": False},
                         status)


def aqua_error(code: str, message: str, status: int = 200) -> Response:
    """AQuA reports most errors as HTTP 200 with ``errorCode``/``message`` [S-AQ; TZ]."""
    return json_response({"id": None, "errorCode": code, "message": message}, status)

"""Fault injection: a book of armed faults, each firing on the next ``times`` matching requests.

The CLI spec is ``route:kind[:times][:key=value...]``, comma-separated, e.g.
``aqua_file:truncate_csv:1,oauth:429:2:retry_after=1``.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from core.errors import ReconError

ROUTES = ("oauth", "aqua_submit", "aqua_job", "aqua_file", "query", "query_more",
          "object_query", "*")
# Kinds that answer the request itself, whatever the route.
GENERIC = ("429", "concurrency_429", "5xx", "expire_tokens")
# Kinds consumed when an AQuA job is submitted (they shape that job).
JOB = ("aqua_90028", "slow_job", "job_error", "job_aborted")
# Kinds consumed when a file is downloaded.
FILE = ("truncate_csv", "file_404", "drop_connection")
KINDS = GENERIC + JOB + FILE
# Routes on which a job or file kind may be armed (besides "*").
_KIND_ROUTES = {**{k: ("aqua_submit", "aqua_job") for k in JOB}, **{k: ("aqua_file",) for k in FILE}}
_PARAMS: dict[str, dict[str, type]] = {
    "429": {"retry_after": int, "reset": int},
    "concurrency_429": {"retry_after": int, "limit": int},
    "5xx": {"status": int, "retry_after": int},
    "expire_tokens": {},
    "aqua_90028": {},
    "slow_job": {"seconds": float},
    "job_error": {"code": str, "message": str},
    "job_aborted": {"code": str, "message": str},
    "truncate_csv": {"fraction": float},
    "file_404": {},
    "drop_connection": {"after": int},
}


class FaultSpecError(ReconError, ValueError):
    """A fault spec (CLI string or ``add_fault`` arguments) that cannot be used."""


@dataclass
class Fault:
    route: str
    kind: str
    times: int = 1
    params: dict[str, Any] = field(default_factory=dict)

    def matches(self, route: str | tuple[str, ...]) -> bool:
        routes = (route,) if isinstance(route, str) else route
        return self.times > 0 and (self.route == "*" or self.route in routes)


def check(route: str, kind: str, times: int, params: dict[str, Any]) -> Fault:
    if route not in ROUTES:
        raise FaultSpecError(f"unknown fault route {route!r}; routes: {', '.join(ROUTES)}")
    if kind not in KINDS:
        raise FaultSpecError(f"unknown fault kind {kind!r}; kinds: {', '.join(KINDS)}")
    allowed = _KIND_ROUTES.get(kind)
    if allowed and route != "*" and route not in allowed:
        raise FaultSpecError(
            f"fault kind {kind!r} cannot fire on route {route!r}; use {' or '.join(allowed)} or *")
    if times < 1:
        raise FaultSpecError(f"fault {route}:{kind}: times must be >= 1, got {times}")
    known = _PARAMS[kind]
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k not in known:
            raise FaultSpecError(
                f"fault {route}:{kind}: unknown parameter {k!r}; "
                f"known: {', '.join(known) or 'none'}")
        if v is None or (isinstance(v, str) and v.lower() in ("none", "null", "")):
            out[k] = None
            continue
        try:
            out[k] = known[k](v)
        except (TypeError, ValueError):
            raise FaultSpecError(
                f"fault {route}:{kind}: parameter {k}={v!r} is not a {known[k].__name__}"
            ) from None
    if kind == "5xx" and not 500 <= out.get("status", 503) <= 599:
        raise FaultSpecError(f"fault {route}:5xx: status must be 500..599, got {out['status']}")
    return Fault(route, kind, times, out)


def parse_spec(spec: str | None) -> list[Fault]:
    """``route:kind[:times][:key=value...]`` items, comma-separated."""
    faults: list[Fault] = []
    for item in (spec or "").split(","):
        item = item.strip()
        if not item:
            continue
        parts = item.split(":")
        if len(parts) < 2:
            raise FaultSpecError(
                f"bad fault spec {item!r}: expected route:kind[:times][:key=value...]")
        route, kind, rest = parts[0].strip(), parts[1].strip(), parts[2:]
        times = 1
        params: dict[str, str] = {}
        for i, part in enumerate(rest):
            part = part.strip()
            if "=" in part:
                k, _, v = part.partition("=")
                params[k.strip()] = v.strip()
            elif i == 0:
                try:
                    times = int(part)
                except ValueError:
                    raise FaultSpecError(
                        f"bad fault spec {item!r}: times {part!r} is not an integer") from None
            else:
                raise FaultSpecError(
                    f"bad fault spec {item!r}: {part!r} is not key=value")
        try:
            faults.append(check(route, kind, times, params))
        except FaultSpecError as e:
            raise FaultSpecError(f"bad fault spec {item!r}: {e}") from None
    return faults


class FaultBook:
    """Armed faults, consumed in the order they were added. Thread-safe."""

    def __init__(self, stats: Counter) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._stats = stats

    def add(self, route: str, kind: str, times: int = 1, **params: Any) -> Fault:
        fault = check(route, kind, times, params)
        with self._lock:
            self._faults.append(fault)
        return fault

    def extend(self, faults: list[Fault]) -> None:
        with self._lock:
            self._faults.extend(faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if f.times > 0]

    def take(self, route: str | tuple[str, ...], kinds: tuple[str, ...]) -> Fault | None:
        """Fire the first armed fault of one of ``kinds`` matching ``route``, if any."""
        with self._lock:
            for f in self._faults:
                if f.kind in kinds and f.matches(route):
                    f.times -= 1
                    self._stats[f"fault:{f.kind}"] += 1
                    if f.times == 0:
                        self._faults.remove(f)
                    return Fault(f.route, f.kind, 1, dict(f.params))
        return None

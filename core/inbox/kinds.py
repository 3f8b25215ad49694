"""Callout event kinds as configured: the defaults (``core.catalog.events``, declared with the
catalogue) overlaid with ``[callouts.events.<kind>]``, and reading a payload's keys.

In the shared base because the configuration checks ``[callouts.events.<kind>]`` with it at
load time (a typo in a template's mapping fails at start, not at the first event) and the
receiver (``callouts``) and any reader of the inbox share one reading of a payload.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from core.catalog.events import EVENT_KINDS, WHOLE_CATALOG, EventKind
from core.errors import ConfigError

__all__ = ["DEFAULT_KINDS", "EVENT_OBJECTS", "WHOLE_CATALOG", "EventKind", "PayloadError",
           "event_kinds", "extract_keys", "parse_event_kinds"]

#: the objects an event can name (the targeted sync's objects, ``sync.model.SYNC_OBJECTS``,
#: restated here because the shared base cannot import the sync floor)
EVENT_OBJECTS: tuple[str, ...] = ("account", "contact", "subscription", "catalog")

#: the defaults, declared once with the catalogue (``core.catalog.events``)
DEFAULT_KINDS: dict[str, EventKind] = {k.name: k for k in EVENT_KINDS}


class PayloadError(ValueError):
    """A payload whose keys cannot be read: the message is the reason the 400 answer gives."""


def _kind(name: str, table: Any, base: EventKind | None) -> EventKind:
    where = f"[callouts.events.{name}]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table with path and keys")
    unknown = set(table) - {"path", "keys"}
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                          "(known: path, keys)")
    path = table.get("path", base.path if base else None)
    if not isinstance(path, str) or not path.startswith("/") or path in ("/healthz",
                                                                         "/metrics"):
        raise ConfigError(f"{where}: path must be a URL path starting with / (not /healthz "
                          f"or /metrics), got {path!r}")
    raw_keys = table.get("keys")
    if raw_keys is None:
        if base is None:
            raise ConfigError(f"{where}: a new event kind needs keys = {{object = "
                              "\"PayloadField\"}}")
        return replace(base, path=path)
    if not isinstance(raw_keys, Mapping) or not raw_keys:
        raise ConfigError(f"{where}: keys must map a sync object to a payload field, e.g. "
                          "keys = { account = \"AccountId\" } (catalog = \"\": the whole "
                          "catalog)")
    keys, whole = [], None
    for obj, field in raw_keys.items():
        if obj not in EVENT_OBJECTS:
            raise ConfigError(f"{where}: keys names {obj!r}; the objects are "
                              f"{', '.join(EVENT_OBJECTS)}")
        if obj == "catalog":
            whole = "catalog"  # synced whole: seed 004's one debounced catalog sync
            continue
        if not isinstance(field, str) or not field.strip():
            raise ConfigError(f"{where}: keys.{obj} must be a dotted payload field name")
        keys.append((obj, field.strip()))
    return EventKind(name, path, tuple(keys), whole=whole,
                     description=base.description if base else "")


def parse_event_kinds(text: str) -> dict[str, EventKind]:
    """The defaults overlaid with ``callouts.events`` (JSON of the ``[callouts.events]``
    tables): a kind named there replaces its path and/or keys, a new name adds a kind. Two
    kinds on one path is an error."""
    kinds = dict(DEFAULT_KINDS)
    if text:
        try:
            doc = json.loads(text)
        except ValueError as e:
            raise ConfigError(f"callouts.events is not valid JSON ({e})") from e
        if not isinstance(doc, Mapping):
            raise ConfigError("callouts.events must be a table of [callouts.events.<kind>]")
        for name, table in doc.items():
            kinds[name] = _kind(name, table, DEFAULT_KINDS.get(name))
    paths: dict[str, str] = {}
    for k in kinds.values():
        if k.path in paths:
            raise ConfigError(f"callouts.events: {paths[k.path]} and {k.name} both use path "
                              f"{k.path}")
        paths[k.path] = k.name
    return kinds


def event_kinds(settings: Any) -> dict[str, EventKind]:
    """The event kinds of ``settings`` (a :class:`core.config.Settings`)."""
    return parse_event_kinds(settings.callouts_events)


def _dig(payload: Any, dotted: str) -> Any:
    value = payload
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _split(value: Any, obj: str, field: str) -> list[str]:
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = [v.strip() for v in value]
    else:
        raise PayloadError(f"{field} (the {obj} key) must be a string, a list of strings or "
                           f"a comma-separated string, got {type(value).__name__}")
    return [p for p in parts if p]


def extract_keys(kind: EventKind, payload: Any) -> tuple[tuple[str, str], ...]:
    """The (object, key) pairs a payload names, in order, without repeats. Raises
    :class:`PayloadError` (the 400's reason) when a mapped field is missing or holds no key —
    except that an Order Processed-like kind with several objects needs only one of them."""
    if not isinstance(payload, Mapping):
        raise PayloadError("the body must be a JSON object")
    found: list[tuple[str, str]] = []
    missing: list[str] = []
    if kind.whole:
        found.append((kind.whole, WHOLE_CATALOG))
    for obj, field in kind.keys:
        value = _dig(payload, field)
        keys = [] if value is None else _split(value, obj, field)
        if not keys:
            missing.append(field)
        found.extend((obj, k) for k in keys)
    if not found:
        raise PayloadError(f"no key in the payload: expected {' or '.join(missing)} "
                           f"(callout template of event kind {kind.name})")
    return tuple(dict.fromkeys(found))

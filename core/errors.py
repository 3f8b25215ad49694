"""Typed errors. Every message names the thing that is wrong and what to do about it, so that
an engineer woken at 3 a.m. can act on it without reading the code."""

from __future__ import annotations


class ReconError(Exception):
    """Base class: any error recon raises on purpose. The CLI maps it to exit code 2."""


class ConfigError(ReconError):
    """Configuration is missing or invalid (file, env var, or flag)."""


class CatalogError(ReconError):
    """The object catalogue was asked for something it does not declare."""


class DatasetError(ReconError):
    """A dataset directory (the sandbox's input format) is missing a file or malformed."""


class LocalDatabaseError(ReconError):
    """The local database URL is unsupported or the database refused an operation."""


class TransientError(ReconError):
    """Marker base: the failure is about the moment, not the data (Zuora still rate-limited or
    failing after the client's own retries, a busy state file, another extract holding the
    data directory), so running the whole job again later may succeed.

    A class says it is transient by inheriting this marker where it is declared, so the job
    runner never has to list the lower floors' errors by hand (a new transient error cannot
    be forgotten there). Validation failures, guard refusals and anything about the data
    itself are not transient: retrying them would only repeat the failure and delay the
    alert."""


# The standard library's own transient classes (socket-level), which cannot inherit the marker.
_OS_TRANSIENT = (ConnectionError, TimeoutError)


def is_transient(error: BaseException) -> bool:
    """Worth retrying: the cause chain (``__cause__``, else ``__context__``) holds a
    :class:`TransientError` or an OS-level connection error or timeout. The chain is walked
    because lower floors wrap what they could not do in an error of their own (an
    ``ExtractError`` raised from a ``ZuoraServerError``), and the wrapper must not hide that
    the root cause was passing."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (TransientError, *_OS_TRANSIENT)):
            return True
        e = e.__cause__ or e.__context__
    return False

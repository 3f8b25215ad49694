"""Typed errors of the report floor. The CLI maps any :class:`ReconError` to exit code 2; the
nightly pipeline catches :class:`ReportError` to record why a report could not be written."""

from __future__ import annotations

from core.errors import ReconError


class ReportError(ReconError):
    """A report cannot be built (bad input, unreadable run files)."""


class RunNotFound(ReportError):
    """The requested run left no trace: no snapshot, no run directory, no state row."""

"""Typed validation errors. Each one stops the run *before* reconciliation and names the
object, the column and the rule, so the person on call knows which extract to look at.

Both carry the :class:`~expectations.validate.ValidationResult` recorded so far (``result``),
so ``recon validate`` can still print every check and the report can show them: the results
were stored in recon's state before the error was raised.
"""

from __future__ import annotations

from typing import Any

from core.errors import ReconError


class ValidationError(ReconError):
    """A validation stopped the run. ``result`` is what had been checked (or None)."""

    def __init__(self, message: str, result: Any = None) -> None:
        super().__init__(message)
        self.result = result


class ContractError(ValidationError):
    """The extract's shape is wrong (a missing or extra column, a wrong type) or a Zuora
    object has a duplicated key: nothing downstream can trust this snapshot."""


class VolumeError(ValidationError):
    """An object lost more rows than ``validate.max_volume_drop`` allows since the previous
    complete snapshot: most likely a broken export, and repairing from it would delete good
    local rows."""


class QuarantineError(ValidationError):
    """More than ``validate.max_quarantine_share`` of an object's Zuora records were
    quarantined: a few bad records are set aside and the run goes on, but this many means
    the extract (or Zuora) is broken, and nothing may be planned from it."""

"""The two planted bugs of issue 13, as named mutants that every run includes and that the
hand-valued tests must kill (``planted`` in the report says whether they were).

Each is an exact text replacement in ``core/catalog/orders.py``; if the text is not
found (the derivation was rewritten), the run stops and says so rather than skipping it.
"""

from __future__ import annotations

from mutate.source import Mutant

PATH = "core/catalog/orders.py"

PLANTED = {
    "planted:end-date-ignores-cancellation": (
        "an order's end date ignores CancelledDate: end_date is always TermEndDate",
        "CASE WHEN l.Status = 'Cancelled' THEN l.CancelledDate ELSE l.TermEndDate END AS end_date",
        "l.TermEndDate AS end_date"),
    "planted:seats-from-first-segment": (
        "seats (quantity) are taken from the charge's first segment instead of its last",
        "WHERE IsLastSegment AND ChargeModel = 'Per Unit Pricing'",
        "WHERE Segment = 1 AND ChargeModel = 'Per Unit Pricing'"),
}


class PlantedBugMissing(RuntimeError):
    """The code a planted bug rewrites is no longer there."""


def planted_mutants(source: str) -> list[Mutant]:
    """The planted bugs applied to ``source`` (the text of :data:`PATH`)."""
    out = []
    for mid, (what, old, new) in PLANTED.items():
        if source.count(old) != 1:
            raise PlantedBugMissing(
                f"{mid}: expected exactly one `{old}` in {PATH}; update mutate/planted.py")
        out.append(Mutant(id=mid, kind="planted", path=PATH, func="<module>", op="planted",
                          description=what, source=source.replace(old, new)))
    return out

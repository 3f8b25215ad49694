"""Plain words for codes: drift ids, kinds, checks, statuses. The report is read by people who
did not write the reconciler; every code it shows comes with a sentence from here.

The drift titles are domain.md §5's catalogue (:mod:`core.drift`, which the sandbox's
generator reads too), so a finding's ``drift_id`` can be read without the document at hand.
"""

from __future__ import annotations

from core.drift import TITLES

# the titles are core.drift's (declared once, shared with the sandbox that injects them)
DRIFT_TITLES: dict[str, str] = TITLES

KIND_WORDS: dict[str, str] = {
    "missing_in_local": "missing locally (in Zuora, not in the local copy)",
    "orphaned_in_local": "orphaned locally (in the local copy, not in Zuora)",
    "field_mismatch": "field differs",
    "duplicate_local": "duplicated locally",
    "rule_violation": "breaks a cross-object rule",
    "quarantined": "quarantined (row failed its contract; not compared)",
}

STATUS_WORDS: dict[str, str] = {
    "new": "new in this run",
    "persisting": "open since an earlier run",
    "pending": "in the grace window (a change may still be in flight)",
    "resolved": "gone since the previous run",
}

ACTION_WORDS: dict[str, str] = {
    "auto": "the repair job may fix it from Zuora",
    "human": "needs a person (never repaired automatically)",
}

# quarantine checks and pandera / contract rule names -> why a row was set aside
CHECK_WORDS: dict[str, str] = {
    "not_null": "a required value is empty",
    "not_nullable": "a required value is empty",
    "max_length": "the value is longer than the local column allows",
    "str_length": "the value's length is outside what the column allows",
    "enum": "the value is not one of the allowed values",
    "isin": "the value is not one of the allowed values",
    "unique": "the key appears more than once",
    "field_uniqueness": "the key appears more than once",
    "shape": "columns and types must match the contract",
    "volume": "the row count must not drop sharply between runs",
    "utf8": "the value's bytes are not UTF-8 text (shown escaped)",
    "max_quarantine_share": "at most a small share of an object's records may be quarantined",
}

SOURCE_WORDS: dict[str, str] = {
    "pandera": "contract",
    "gx": "business rule",
    "volume": "volume",
    "extract": "extract rejects",
    "quarantine": "quarantine share",
}


def check_words(check: str | None) -> str:
    """Why a check fails, in words; ``parse:<type>`` is a value the extractor could not type."""
    if not check:
        return ""
    if check.startswith("parse:"):
        return f"the value could not be read as {check.split(':', 1)[1]}"
    return CHECK_WORDS.get(check, check.replace("_", " "))

"""Contracts on what was extracted (pandera) and business-rule suites (Great Expectations)."""

"""Which tests run for a mutant: a declared map from module (and, for the rule modules, from
the function the mutant is in) to pytest node ids.

Why declared and not measured: coverage would need a full traced run of the suite (~10 min
on 2 cores) before every mutation run; the rules are named DuckDB queries whose drift ids
say exactly which label scenarios exercise them. Every entry starts with the hand-valued
ground-truth tests (``tests/reconcile/test_ground_truth_*.py``, by glob, so later files count) and
ends with a clean tenant (no false finding); a rule module's shared code also runs every
scenario together (a realistic tenant, ~20 s), a single rule's function only its scenarios.
Tests run in the order given, ``-x``: the most specific first, so a mutant dies early.
"""

from __future__ import annotations

from pathlib import Path

GROUND_TRUTH = "tests/reconcile/test_ground_truth_*.py"
_L = "tests/reconcile/test_labels.py::"
CLEAN = _L + "test_clean_tenant_with_normalisation_variations_has_no_findings"
TOGETHER = _L + "test_every_scenario_together_at_a_realistic_rate_with_d26"


def scenarios(*ids: str) -> list[str]:
    """The precision/recall label test of each drift scenario in ``ids``."""
    return [f"{_L}test_scenario_precision_and_recall[{i}]" for i in ids]


_ORDER_RULES = ("D02", "D04", "D10", "D11", "D12", "D13", "D14", "D15", "D24", "D25")
_ALL_RULES = (*_ORDER_RULES, "D08", "D09", "D17", "D19", "D20", "D22", "D23")

# module -> tests for any function of it; (module, function) -> tests for that function.
MODULES: dict[str, list[str]] = {
    "reconcile/normalize.py": ["tests/reconcile/test_diff.py", CLEAN,
                               *scenarios("D01", "D05", "D06", "D18")],
    "core/catalog/orders.py": ["tests/reconcile/test_drift_orders.py",
                               "tests/core/test_orders_current.py",
                               *scenarios("D14", "D13", "D02"), CLEAN],
    "reconcile/rules/__init__.py": [TOGETHER],
    "reconcile/rules/base.py": [*scenarios("D02", "D09", "D13", "D14", "D15", "D11", "D22"),
                                CLEAN, TOGETHER],
    "reconcile/rules/orders.py": [*scenarios(*_ORDER_RULES), CLEAN, TOGETHER],
    "reconcile/rules/accounts.py": [*scenarios("D17", "D19", "D20"), CLEAN, TOGETHER],
    "reconcile/rules/subscriptions.py": [*scenarios("D08", "D09", "D03"), CLEAN, TOGETHER],
    "reconcile/rules/catalog.py": [*scenarios("D22", "D23"), CLEAN, TOGETHER],
    # the catalog classification D22 reads (and the scopes, views and `recon catalog plans`)
    "core/catalog/scopes.py": ["tests/core/test_catalog_scopes.py", *scenarios("D22"), CLEAN],
}
FUNCTIONS: dict[tuple[str, str], list[str]] = {
    ("reconcile/rules/orders.py", "d15_sql"): [*scenarios("D15"), CLEAN],
    ("reconcile/rules/orders.py", "d11_sql"): [*scenarios("D11"), CLEAN],
    ("reconcile/rules/orders.py", "_meta"): [*scenarios("D11"), CLEAN],
    ("reconcile/rules/orders.py", "pointer_sql"): [*scenarios("D02", "D14"), CLEAN],
    ("reconcile/rules/orders.py", "accounts_sql"): [*scenarios("D10", "D24", "D14"), CLEAN],
    ("reconcile/rules/orders.py", "d14_sql"): [*scenarios("D14"), CLEAN],
    ("reconcile/rules/orders.py", "namespace_sql"): [*scenarios("D04", "D25"), CLEAN],
    ("reconcile/rules/orders.py", "d13_sql"): [*scenarios("D13"), CLEAN],
    ("reconcile/rules/orders.py", "d12_sql"): [*scenarios("D12"), CLEAN],
    ("reconcile/rules/accounts.py", "d19_sql"): [*scenarios("D19"), CLEAN],
    ("reconcile/rules/accounts.py", "d20_sql"): [*scenarios("D20"), CLEAN],
    ("reconcile/rules/accounts.py", "d17_sql"): [*scenarios("D17"), CLEAN],
    ("reconcile/rules/subscriptions.py", "d09_sql"): [*scenarios("D09", "D03"), CLEAN],
    ("reconcile/rules/subscriptions.py", "d08_sql"): [*scenarios("D08"), CLEAN],
    ("reconcile/rules/catalog.py", "d22_sql"): [*scenarios("D22"), CLEAN],
    ("reconcile/rules/catalog.py", "d23_sql"): [*scenarios("D23"), CLEAN],
}
TARGETS = list(MODULES)


def ground_truth(root: Path) -> list[str]:
    """The hand-valued test files present in ``root`` (none before they are merged)."""
    return sorted(str(p.relative_to(root)) for p in root.glob(GROUND_TRUTH))


def tests_for(root: Path, path: str, func: str) -> list[str]:
    """Node ids to run, in order, for a mutant of ``func`` in module ``path``."""
    return ground_truth(root) + FUNCTIONS.get((path, func), MODULES[path])


def module_tests(root: Path, path: str) -> list[str]:
    """Every node id any mutant of ``path`` may run (the module's baseline), in order."""
    out = ground_truth(root) + list(MODULES[path])
    for (p, _), ids in FUNCTIONS.items():
        if p == path:
            out += [i for i in ids if i not in out]
    return out

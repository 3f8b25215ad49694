"""The ground truth the tests use stays independent of the code it checks (issue 13, point 8).

The generator writes the clean orders and their labels from its own facts, and the tests'
oracle restates the normalisation: if either imported the order derivation or the
normaliser, a bug there would be copied into the expected values and every test comparing
the two would still pass (as a planted end-date bug once did)."""

from __future__ import annotations

import ast
from pathlib import Path

from core.catalog import LOCAL_BY_NAME, Owner
from sandbox.generate.local import DERIVED_ORDER_COLUMNS

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("core.catalog.orders", "reconcile")  # the derivation, the reconciler


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _offending(path: Path) -> set[str]:
    return {m for m in _imports(path)
            if any(m == c or m.startswith(c + ".") for c in CHECKED)}


def test_generator_does_not_use_the_derivation_or_the_reconciler() -> None:
    files = sorted((ROOT / "sandbox" / "generate").rglob("*.py"))
    assert len(files) > 5
    found = {str(p.relative_to(ROOT)): _offending(p) for p in files}
    assert {p: m for p, m in found.items() if m} == {}


def test_oracle_does_not_use_the_reconciler() -> None:
    assert _offending(ROOT / "tests" / "support" / "oracle.py") == set()


def test_the_check_sees_an_import(tmp_path: Path) -> None:
    """Guards the two tests above: imports of the derivation or the normaliser are found."""
    probe = tmp_path / "probe.py"
    probe.write_text("import reconcile.normalize\n"
                     "from core.catalog.orders import derived_orders_sql\n"
                     "from core.catalog import get\n")
    assert _offending(probe) == {"reconcile.normalize", "core.catalog.orders",
                                 "core.catalog.orders.derived_orders_sql"}


def test_generator_labels_every_derived_order_column() -> None:
    """The columns D03 labels are exactly those the catalogue declares derived on orders."""
    declared = {c.name for c in LOCAL_BY_NAME["orders"].columns if c.owner is Owner.DERIVED}
    assert sorted(DERIVED_ORDER_COLUMNS) == sorted(declared)

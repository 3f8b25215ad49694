"""Count tests and assertions per test folder, for a before/after note when tests move.

Why: when the suite is reorganised (files moved, fixtures shared, tests merged), the count of
collected tests and of assertions per folder is the cheap evidence that nothing was lost. Tests
are the node ids pytest collects (parametrised cases count one each); assertions are counted in
the source with the AST: every ``assert`` statement and every ``pytest.raises(...)`` (as a
context manager or a call), in test modules, conftests and the support package alike.

Usage::

    python tools/count_tests.py              # table for ./tests
    python tools/count_tests.py --json       # the same as JSON (for diffing two commits)
    python tools/count_tests.py --no-collect # assertions only (no pytest run)
    python tools/count_tests.py --slow       # and how many of each folder's tests are slow

Exit status 0; 2 when pytest cannot collect (its output is printed).
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path


def folder_of(path: Path, root: Path) -> str:
    """``tests/<folder>`` of a file under ``root`` (``tests`` itself for top-level files)."""
    rel = path.relative_to(root)
    return f"{root.name}/{rel.parts[0]}" if len(rel.parts) > 1 else root.name


def _is_pytest_raises(node: ast.AST) -> bool:
    """``pytest.raises(...)`` or a bare ``raises(...)`` imported from pytest."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr == "raises" and isinstance(func.value, ast.Name) \
            and func.value.id == "pytest"
    return isinstance(func, ast.Name) and func.id == "raises"


def count_asserts(source: str) -> tuple[int, int]:
    """(assert statements, pytest.raises uses) in one module's source."""
    asserts = raises = 0
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assert):
            asserts += 1
        elif _is_pytest_raises(node):
            raises += 1
    return asserts, raises


def assertions_per_folder(root: Path) -> dict[str, Counter[str]]:
    """Per folder: python files, assert statements and pytest.raises uses."""
    out: dict[str, Counter[str]] = {}
    for path in sorted(root.rglob("*.py")):
        if any(part.startswith(".") or part == "__pycache__" for part in path.parts):
            continue
        counts = out.setdefault(folder_of(path, root), Counter())
        asserts, raises = count_asserts(path.read_text(encoding="utf-8"))
        counts["files"] += 1
        counts["asserts"] += asserts
        counts["raises"] += raises
    return out


def collected_per_folder(root: Path, python: str, marker: str | None = None) -> Counter[str]:
    """Collected node ids per folder, from ``pytest --collect-only -q`` (all tests, or those
    matching the ``-m`` expression ``marker``)."""
    proc = subprocess.run(
        [python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-p", "no:xdist", *(["-m", marker] if marker else []), str(root)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(2)
    counts: Counter[str] = Counter()
    base = root.resolve().parent
    for line in proc.stdout.splitlines():
        if "::" not in line:
            continue
        file_part = line.split("::", 1)[0]
        counts[folder_of((base / file_part).resolve(), root.resolve())] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="tests", type=Path,
                        help="the tests directory (default: tests)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--no-collect", action="store_true",
                        help="skip pytest collection (assertion counts only)")
    parser.add_argument("--slow", action="store_true",
                        help="also count the tests marked slow (a second collection)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter that runs pytest (default: this one)")
    args = parser.parse_args(argv)

    root: Path = args.root
    asserts = assertions_per_folder(root)
    tests = Counter() if args.no_collect else collected_per_folder(root, args.python)
    slow = collected_per_folder(root, args.python, "slow") \
        if args.slow and not args.no_collect else None
    folders = sorted(set(asserts) | set(tests))
    rows = {f: {"tests": tests.get(f, 0), "asserts": asserts.get(f, Counter())["asserts"],
                "raises": asserts.get(f, Counter())["raises"]} for f in folders}
    if slow is not None:
        for f in folders:
            rows[f]["slow"] = slow.get(f, 0)
    keys = ["tests", *(["slow"] if slow is not None else []), "asserts", "raises"]
    total = {k: sum(r[k] for r in rows.values()) for k in keys}

    if args.json:
        print(json.dumps({"folders": rows, "total": total}, indent=2, sort_keys=True))
        return 0
    print(f"{'folder':<22}" + "".join(f"{k:>9}" for k in keys))
    for folder, r in {**rows, "total": total}.items():
        print(f"{folder:<22}" + "".join(f"{r[k]:>9}" for k in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

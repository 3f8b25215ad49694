"""What every mutator shares: a mutant, and replacing one AST node's span in a source file.

A mutant is the whole text of one module with exactly one change. Changes are made by
replacing the source span of one node (positions from :mod:`ast`, which counts columns in
UTF-8 bytes), so the rest of the file -- comments, formatting, every other string -- stays
byte-identical and a mutant's diff is exactly its change.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    """One change to one module. ``id`` is stable while the code around it does not move:
    equivalent-mutant declarations and reports name mutants by it."""

    id: str
    kind: str  # "python", "sql" or "planted"
    path: str  # repository-relative module path
    func: str  # enclosing function ("<module>" at top level): selects the tests to run
    op: str  # operator name, e.g. "cmp-flip", "drop-conjunct"
    description: str
    source: str  # the whole mutated module


def span(lines: list[bytes], node: ast.AST) -> tuple[int, int]:
    """Byte offsets [start, end) of ``node`` in the file whose lines (with line ends) are
    ``lines``."""
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    start = starts[node.lineno - 1] + node.col_offset  # type: ignore[attr-defined]
    end = starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[attr-defined]
    return start, end


def replace_node(source: str, node: ast.AST, text: str) -> str:
    """``source`` with ``node``'s span replaced by ``text`` (parenthesised, so operator
    precedence around it never changes)."""
    raw = source.encode()
    start, end = span(raw.splitlines(keepends=True), node)
    return (raw[:start] + b"(" + text.encode() + b")" + raw[end:]).decode()


def docstring_nodes(tree: ast.AST) -> set[int]:
    """ids of the Constant nodes that are docstrings (never mutated: they are not code)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                out.add(id(body[0].value))
    return out


def enclosing_functions(tree: ast.AST) -> dict[int, str]:
    """id(node) -> name of the outermost function that contains it (``<module>`` if none)."""
    out: dict[int, str] = {}

    def visit(node: ast.AST, func: str) -> None:
        out[id(node)] = func
        for child in ast.iter_child_nodes(node):
            inner = child.name if func == "<module>" and isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef) else func
            visit(child, inner)

    visit(tree, "<module>")
    return out


def same_code(a: str, b: str) -> bool:
    """Whether two module texts are the same program (their ASTs are equal)."""
    return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))

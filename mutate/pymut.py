"""Python mutants: a small AST mutator (why not mutmut: see mutate/README.md).

Operators, each applied to one node at a time:

* ``cmp-flip``   ``==``/``!=``, ``<``/``<=``, ``>``/``>=``, ``is``/``is not``, ``in``/``not in``
* ``bool-swap``  ``and`` <-> ``or``
* ``not-drop``   ``not x`` -> ``x``
* ``if-negate``  the test of an ``if`` or a conditional expression negated
* ``int-bump``   an integer literal ``n`` -> ``n + 1``; ``True`` <-> ``False``
* ``arith-swap`` ``+`` <-> ``-`` (only where neither side is text: string building is SQL's)
* ``drop-item``  one element dropped from a tuple or list literal bound by an assignment
  (status lists, column lists, reason lists; not ``__all__``, which only ``import *`` reads)
* ``return-none`` ``return x`` -> ``return None``

String literals are left to the SQL mutator (mutate/sqlmut.py): in these modules they are
SQL, and appending junk to them only produces syntax errors that every test kills.
Docstrings, annotations, asserts and everything inside f-strings (positions there are not
exact before Python 3.12) are never mutated.
"""

from __future__ import annotations

import ast
import copy

from mutate.source import Mutant, docstring_nodes, enclosing_functions, replace_node

_CMP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt,
        ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
        ast.In: ast.NotIn, ast.NotIn: ast.In}
_CMP_TEXT = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">",
             ast.GtE: ">=", ast.Is: "is", ast.IsNot: "is not", ast.In: "in",
             ast.NotIn: "not in"}


def _skipped(tree: ast.Module) -> set[int]:
    """ids of nodes never mutated: annotations, asserts, imports, f-string innards."""
    out: set[int] = set(docstring_nodes(tree))

    def all_of(node: ast.AST | None) -> None:
        if node is not None:
            out.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            all_of(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            all_of(node.returns)
        elif isinstance(node, ast.AnnAssign):
            all_of(node.annotation)
        elif isinstance(node, ast.Assert | ast.Import | ast.ImportFrom | ast.JoinedStr):
            all_of(node)
    return out


def _has_text(node: ast.AST) -> bool:
    return any(isinstance(n, ast.JoinedStr) or (isinstance(n, ast.Constant)
                                                and isinstance(n.value, str))
               for n in ast.walk(node))


def python_mutants(path: str, source: str) -> list[Mutant]:
    """Every Python mutant of ``source`` (the module at repository path ``path``)."""
    tree = ast.parse(source)
    skip = _skipped(tree)
    funcs = enclosing_functions(tree)
    out: list[Mutant] = []
    seen: dict[str, int] = {}

    def add(node: ast.AST, op: str, text: str, what: str) -> None:
        line = node.lineno  # type: ignore[attr-defined]
        col = node.col_offset  # type: ignore[attr-defined]
        base = f"py:{path}:{line}:{col}:{op}"
        seen[base] = seen.get(base, -1) + 1
        out.append(Mutant(
            id=f"{base}:{seen[base]}", kind="python", path=path, func=funcs.get(id(node), "<module>"), op=op,
            description=f"line {line}: {what}", source=replace_node(source, node, text)))

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            for i, cmp in enumerate(node.ops):
                new = copy.deepcopy(node)
                new.ops[i] = _CMP[type(cmp)]()
                add(node, "cmp-flip", ast.unparse(new),
                    f"{_CMP_TEXT[type(cmp)]} -> {_CMP_TEXT[_CMP[type(cmp)]]} in "
                    f"`{ast.unparse(node)[:80]}`")
        elif isinstance(node, ast.BoolOp):
            new = copy.deepcopy(node)
            new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            add(node, "bool-swap", ast.unparse(new), f"and/or swapped in `{ast.unparse(node)[:80]}`")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            add(node, "not-drop", ast.unparse(node.operand), f"`not` dropped in "
                f"`{ast.unparse(node)[:80]}`")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub) \
                and not _has_text(node):
            new = copy.deepcopy(node)
            new.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
            add(node, "arith-swap", ast.unparse(new), f"+/- swapped in `{ast.unparse(node)[:80]}`")
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            add(node, "int-bump", repr(node.value + 1), f"{node.value} -> {node.value + 1}")
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            add(node, "int-bump", repr(not node.value), f"{node.value} -> {not node.value}")
        if isinstance(node, ast.If | ast.IfExp) and id(node.test) not in skip:
            add(node.test, "if-negate", f"not ({ast.unparse(node.test)})",
                f"condition negated: `{ast.unparse(node.test)[:80]}`")
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple | ast.List) \
                and len(node.value.elts) >= 2 and not any(
                    isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            for i, elt in enumerate(node.value.elts):
                new = copy.deepcopy(node.value)
                del new.elts[i]
                text = ast.unparse(new) if new.elts else "()"
                if isinstance(new, ast.Tuple) and len(new.elts) == 1:
                    text = f"({ast.unparse(new.elts[0])},)"
                add(node.value, "drop-item", text,
                    f"item {ast.unparse(elt)[:60]} dropped from "
                    f"{ast.unparse(node.targets[0])}")
        if isinstance(node, ast.Return) and node.value is not None \
                and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            add(node.value, "return-none", "None", f"`return {ast.unparse(node.value)[:60]}` "
                "-> `return None`")
    return out

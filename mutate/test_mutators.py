"""Self-checks of the mutators, run by ``make mutate`` before the mutation run (not part of
``make test``: sqlglot is installed only for ``make mutate``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mutate.equivalent import EQUIVALENT
from mutate.planted import PATH, PLANTED, planted_mutants
from mutate.pymut import python_mutants
from mutate.source import enclosing_functions, same_code
from mutate.sqlmut import sql_mutants
from mutate.testmap import FUNCTIONS, MODULES, TARGETS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", TARGETS)
def test_every_mutant_is_one_real_change_that_compiles(path: str) -> None:
    source = (ROOT / path).read_text()
    sql, skipped = sql_mutants(path, source)
    assert skipped == 0, "every SQL site is written back exactly when unmutated"
    for m in python_mutants(path, source) + sql:
        compile(m.source, path, "exec")
        assert not same_code(m.source, source), f"{m.id} changes nothing"
        # one change: exactly one top-level statement differs, the rest is the original's
        before = [ast.dump(s) for s in ast.parse(source).body]
        after = [ast.dump(s) for s in ast.parse(m.source).body]
        assert len(before) == len(after), m.id
        assert sum(x != y for x, y in zip(before, after, strict=True)) == 1, m.id
    ids = [m.id for m in python_mutants(path, source) + sql]
    assert len(ids) == len(set(ids)), "mutant ids are unique"


def test_sql_operators_of_the_issue_are_generated() -> None:
    source = (ROOT / PATH).read_text()
    found = {m.description.split(" near ")[0].split(": ", 1)[1] for m in
             sql_mutants(PATH, source)[0]}
    for what in ("= -> <>", "= 1 -> = 2", "DESC -> ASC", "ORDER BY rp... -> DESC",
                 "conjunct dropped: IsLastSegment", "CASE results 1 and 2 swapped"):
        assert what in found, what
    swapped = next(m for m in sql_mutants(PATH, source)[0] if m.op == "case-swap").source
    ns: dict[str, object] = {}
    exec(compile(swapped, PATH, "exec"), ns)  # noqa: S102 - our own mutated module
    assert "THEN l.TermEndDate ELSE l.CancelledDate END" in str(ns["DERIVED_ORDERS_SQL"])


def test_fstring_sites_keep_their_expressions() -> None:
    path = "reconcile/rules/accounts.py"
    source = (ROOT / path).read_text()
    m = next(m for m in sql_mutants(path, source)[0] if m.func == "d20_sql"
             and m.op == "null-flip")
    ns: dict[str, object] = {}
    exec(compile(m.source, path, "exec"), ns)  # noqa: S102
    sql = ns["d20_sql"]()  # type: ignore[operator]
    assert "NULLIF(LOWER(TRIM(sc.WorkEmail)), '')" in sql  # from {_ACCT} -> {email(...)}
    assert "c.e IS NOT NULL" not in sql or "IS NOT DISTINCT" in sql


def test_planted_bugs_apply_once() -> None:
    source = (ROOT / PATH).read_text()
    got = planted_mutants(source)
    assert [m.id for m in got] == list(PLANTED)
    for m, (_, old, new) in zip(got, PLANTED.values(), strict=True):
        assert old not in m.source and m.source.count(new) == 1


def test_map_names_real_modules_functions_and_equivalents() -> None:
    assert set(TARGETS) == set(MODULES)
    for (path, func) in FUNCTIONS:
        funcs = set(enclosing_functions(ast.parse((ROOT / path).read_text())).values())
        assert func in funcs, f"{path}: no function {func}"
    every = set()
    for path in TARGETS:
        source = (ROOT / path).read_text()
        every |= {m.id for m in python_mutants(path, source) + sql_mutants(path, source)[0]}
    assert set(EQUIVALENT) <= every, set(EQUIVALENT) - every

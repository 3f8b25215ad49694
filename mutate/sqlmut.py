"""SQL mutants of the SQL held in Python strings (the rules, the order derivation and the
normalisation build their DuckDB SQL from string literals and f-strings).

Each string literal and f-string of a target module is a *site*. Its text is lexed with
sqlglot's DuckDB tokenizer, the f-string's ``{...}`` parts standing in as placeholder
identifiers (``__M0__``, ...); a mutant edits the text at token positions and the site is
written back (a literal as its ``repr``, an f-string rebuilt around the same expressions).

Why token edits and not sqlglot's regenerated SQL: most sites are fragments (a condition, a
CASE, a CTE with ``{...}`` holes) that do not parse alone, and regenerating a statement from
sqlglot's tree rewrites all of it (DuckDB lambdas, FILTER, QUALIFY, format strings), so the
unmutated round trip would already differ. A token edit changes exactly one operator.

Operators:

* ``cmp-flip``       ``=`` <-> ``<>``, ``<`` <-> ``<=``, ``>`` <-> ``>=``
* ``literal-bump``   a number right after a comparison ``+ 1`` (``row_number() = 1`` -> ``= 2``)
* ``null-flip``      ``IS NULL`` <-> ``IS NOT NULL``, ``IS DISTINCT FROM`` <-> ``IS NOT ...``
* ``not-drop``       ``NOT`` dropped (``NOT IN``, ``NOT EXISTS``, ``NOT x``)
* ``order-flip``     ``ASC`` <-> ``DESC``; an ORDER BY item without a direction gets ``DESC``
* ``drop-conjunct``  one conjunct of a WHERE / HAVING / QUALIFY clause (or of a condition
  fragment) dropped; a lone WHERE condition becomes ``TRUE``
* ``func-drop``      a value function (LOWER, TRIM, NULLIF, coalesce, ROUND, replace, ...)
  replaced by its argument: the normalisations are mostly such functions
* ``case-swap``      the results of two neighbouring CASE branches (or a branch and the ELSE,
  an absent ELSE being NULL) swapped
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass

from sqlglot.dialects.duckdb import DuckDB
from sqlglot.tokens import Token, TokenType

from mutate.source import Mutant, docstring_nodes, enclosing_functions, replace_node, same_code

T = TokenType
_FLIP = {T.EQ: "<>", T.NEQ: "=", T.LT: "<=", T.LTE: "<", T.GT: ">=", T.GTE: ">"}
_CLAUSE_END = {T.GROUP_BY, T.ORDER_BY, T.HAVING, T.QUALIFY, T.WINDOW, T.LIMIT, T.UNION,
               T.SEMICOLON, T.EXCEPT, T.INTERSECT, T.SELECT, T.FROM, T.WHERE}
_ORDER_END = _CLAUSE_END | {T.ROWS, T.RANGE, T.R_PAREN}
_PLACEHOLDER = re.compile(r"__M(\d+)__")
_BRACE = re.compile(r"\{(\w*)\}")
_UNBRACE = re.compile(r"__B(\w*?)__")

# functions a normalisation or rule applies to a value: unwrapped to the argument they take
_UNWRAP = {"LOWER": 0, "UPPER": 0, "TRIM": 0, "NULLIF": 0, "COALESCE": 0, "ROUND": 0,
           "LIST_SORT": 0, "DATE_TRUNC": 1, "REPLACE": 0, "LEFT": 0, "GREATEST": 0}
Edit = tuple[int, int, str]  # [start, end) of the template text -> replacement


@dataclass
class Site:
    """One string literal or f-string: its text with placeholders, and how to write it back."""

    node: ast.Constant | ast.JoinedStr
    text: str
    values: list[ast.FormattedValue]

    def render(self, text: str) -> str:
        """Python source for this site holding ``text``."""
        if isinstance(self.node, ast.Constant):
            return repr(text)
        parts: list[ast.expr] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(text):
            if m.start() > pos:
                parts.append(ast.Constant(text[pos:m.start()]))
            parts.append(self.values[int(m[1])])
            pos = m.end()
        if pos < len(text):
            parts.append(ast.Constant(text[pos:]))
        return ast.unparse(ast.fix_missing_locations(ast.JoinedStr(values=parts)))


def _sites(tree: ast.Module) -> list[Site]:
    docs = docstring_nodes(tree)
    inner: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            for sub in ast.walk(node):
                if sub is not node:
                    inner.add(id(sub))
        elif isinstance(node, ast.Assert):
            inner.update(id(n) for n in ast.walk(node))
    out: list[Site] = []
    for node in ast.walk(tree):
        if id(node) in docs or id(node) in inner:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.append(Site(node, node.value, []))
        elif isinstance(node, ast.JoinedStr):
            text, values = "", []
            for part in node.values:
                if isinstance(part, ast.Constant):
                    text += part.value
                else:
                    assert isinstance(part, ast.FormattedValue)
                    text += f"__M{len(values)}__"
                    values.append(part)
            out.append(Site(node, text, values))
    return out


def _tokens(text: str) -> list[Token] | None:
    """sqlglot's DuckDB tokens of ``text``. A keyword not written in capitals is read as a
    plain word: these modules write SQL keywords in capitals, and lower-case ``not``, ``is``,
    ``when`` are prose (rule titles, reasons shown to people), never mutated as SQL."""
    try:
        toks = DuckDB().tokenize(text)
    except Exception:  # not SQL (prose, a regex): no mutants
        return None
    for t in toks:
        if t.token_type not in (T.VAR, T.STRING, T.NUMBER) and any(c.isalpha() for c in t.text) \
                and t.text != t.text.upper():
            t.token_type = T.VAR
    return toks


def _depths(toks: list[Token]) -> list[int]:
    """Nesting depth of each token: parentheses and CASE ... END both nest."""
    out, d = [], 0
    for t in toks:
        if t.token_type in (T.R_PAREN, T.END):
            d -= 1
        out.append(d)
        if t.token_type in (T.L_PAREN, T.CASE):
            d += 1
    return out


def _end(t: Token) -> int:
    return t.end + 1


def _cmp_flips(toks: list[Token], text: str) -> Iterator[tuple[str, list[Edit], str]]:
    if toks and toks[0].token_type == T.SET:
        return  # SET x = 'y' is an assignment, not a comparison
    for i, t in enumerate(toks):
        if t.token_type in _FLIP:
            yield "cmp-flip", [(t.start, _end(t), _FLIP[t.token_type])], \
                f"{t.text} -> {_FLIP[t.token_type]}"
            if i + 1 < len(toks) and toks[i + 1].token_type == T.NUMBER:
                n = toks[i + 1]
                try:
                    bumped = str(int(n.text) + 1)
                except ValueError:
                    continue
                yield "literal-bump", [(n.start, _end(n), bumped)], \
                    f"{t.text} {n.text} -> {t.text} {bumped}"


def _null_flips(toks: list[Token]) -> Iterator[tuple[str, list[Edit], str]]:
    for i, t in enumerate(toks[:-1]):
        nxt = toks[i + 1]
        if t.token_type == T.IS and nxt.token_type in (T.NULL, T.DISTINCT):
            yield "null-flip", [(nxt.start, nxt.start, "NOT ")], f"IS {nxt.text} -> IS NOT"
        elif t.token_type == T.IS and nxt.token_type == T.NOT:
            yield "null-flip", [(nxt.start, toks[i + 2].start, "")], "IS NOT -> IS"
        elif t.token_type == T.NOT and (i == 0 or toks[i - 1].token_type != T.IS):
            yield "not-drop", [(t.start, nxt.start, "")], f"NOT {nxt.text} -> {nxt.text}"


def _order_flips(toks: list[Token], depth: list[int]) -> Iterator[tuple[str, list[Edit], str]]:
    for i, t in enumerate(toks):
        if t.token_type == T.ASC:
            yield "order-flip", [(t.start, _end(t), "DESC")], "ASC -> DESC"
        elif t.token_type == T.DESC:
            yield "order-flip", [(t.start, _end(t), "ASC")], "DESC -> ASC"
        elif t.token_type == T.ORDER_BY:
            item: list[int] = []
            for j in range(i + 1, len(toks) + 1):
                end = j == len(toks) or depth[j] < depth[i] or (
                    depth[j] == depth[i] and toks[j].token_type in _ORDER_END)
                if end or (depth[j] == depth[i] and toks[j].token_type == T.COMMA):
                    kinds = {toks[k].token_type for k in item if depth[k] == depth[i]}
                    if item and not kinds & {T.ASC, T.DESC}:
                        last = max((k for k in item if toks[k].text.upper()
                                    not in ("NULLS", "FIRST", "LAST")), default=item[-1])
                        yield "order-flip", [(_end(toks[last]), _end(toks[last]), " DESC")], \
                            f"ORDER BY {toks[item[0]].text}... -> DESC"
                    item = []
                    if end:
                        break
                else:
                    item.append(j)


def _conjuncts(toks: list[Token], depth: list[int], first: int) -> list[list[int]]:
    """Token indexes of each AND-conjunct of the condition starting at ``first``."""
    parts: list[list[int]] = [[]]
    base = depth[first] if first < len(toks) else 0
    between = False
    for j in range(first, len(toks)):
        t = toks[j]
        if depth[j] < base or (depth[j] == base and t.token_type in _CLAUSE_END):
            break
        if depth[j] == base and t.token_type == T.BETWEEN:
            between = True
        if depth[j] == base and t.token_type == T.AND and not between:
            parts.append([])
            continue
        if depth[j] == base and t.token_type == T.AND:
            between = False
        parts[-1].append(j)
    return [p for p in parts if p]


def _balanced(toks: list[Token]) -> bool:
    opened = sum(t.token_type in (T.L_PAREN, T.CASE) for t in toks)
    return opened == sum(t.token_type in (T.R_PAREN, T.END) for t in toks)


def _drops(toks: list[Token], depth: list[int]) -> Iterator[tuple[str, list[Edit], str]]:
    starts = [i + 1 for i, t in enumerate(toks)
              if t.token_type in (T.WHERE, T.HAVING, T.QUALIFY)]
    fragment = bool(toks) and toks[0].token_type not in (
        T.SELECT, T.WITH, T.FROM, T.CREATE, T.SET, T.WHERE) and not any(
        t.token_type in (T.SELECT, T.WHERE) for t in toks) and any(
        t.token_type in (*_FLIP, T.IS, T.IN) for t in toks)
    if fragment:
        starts.append(0)
    for first in starts:
        parts = _conjuncts(toks, depth, first)
        if parts and not _balanced(toks[first:parts[-1][-1] + 1]):
            continue  # the condition goes on in another string: dropping it cuts SQL in two
        if len(parts) == 1 and first > 0:
            a, b = toks[parts[0][0]].start, _end(toks[parts[0][-1]])
            yield "drop-conjunct", [(a, b, "TRUE")], f"{toks[first - 1].text} condition -> TRUE"
        elif len(parts) > 1:
            for k, p in enumerate(parts):
                if k + 1 < len(parts):
                    a, b = toks[p[0]].start, toks[parts[k + 1][0]].start
                else:
                    a, b = _end(toks[parts[k - 1][-1]]), _end(toks[p[-1]])
                what = " ".join(toks[j].text for j in p)[:60]
                yield "drop-conjunct", [(a, b, "")], f"conjunct dropped: {what}"


def _case_swaps(toks: list[Token], depth: list[int], text: str
                ) -> Iterator[tuple[str, list[Edit], str]]:
    for i, t in enumerate(toks):
        if t.token_type != T.CASE:
            continue
        d = depth[i] + 1
        marks: list[int] = []  # THEN / ELSE / END token indexes of this CASE
        for j in range(i + 1, len(toks)):
            if depth[j] == d and toks[j].token_type in (T.THEN, T.ELSE, T.WHEN):
                marks.append(j)
            if toks[j].token_type == T.END and depth[j] == d - 1:
                marks.append(j)
                break
        else:
            continue
        results: list[tuple[int, int]] = []
        for k, m in enumerate(marks[:-1]):
            if toks[m].token_type in (T.THEN, T.ELSE):
                results.append((_end(toks[m]), toks[marks[k + 1]].start))
        has_else = any(toks[m].token_type == T.ELSE for m in marks)
        if not has_else and results:  # an absent ELSE is NULL
            end_tok = toks[marks[-1]]
            if len(results) == 1:
                a, b = results[0]
                yield "case-swap", [(a, b, " NULL "), (end_tok.start, end_tok.start,
                                                       f"ELSE {text[a:b].strip()} ")], \
                    "CASE branch and implicit ELSE NULL swapped"
        for k in range(len(results) - 1):
            (a1, b1), (a2, b2) = results[k], results[k + 1]
            if text[a1:b1].strip() == text[a2:b2].strip():
                continue
            yield "case-swap", [(a1, b1, text[a2:b2]), (a2, b2, text[a1:b1])], \
                f"CASE results {k + 1} and {k + 2} swapped"


def _func_drops(toks: list[Token], depth: list[int], text: str
                ) -> Iterator[tuple[str, list[Edit], str]]:
    for i, t in enumerate(toks[:-1]):
        keep = _UNWRAP.get(t.text.upper())
        if keep is None or t.token_type != T.VAR or toks[i + 1].token_type != T.L_PAREN:
            continue
        args: list[list[int]] = [[]]
        for j in range(i + 2, len(toks)):
            if depth[j] == depth[i] and toks[j].token_type == T.R_PAREN:
                break
            if depth[j] == depth[i] + 1 and toks[j].token_type == T.COMMA:
                args.append([])
            else:
                args[-1].append(j)
        else:
            continue  # the call closes in another string
        if keep < len(args) and args[keep]:
            arg = text[toks[args[keep][0]].start:_end(toks[args[keep][-1]])]
            yield "func-drop", [(t.start, _end(toks[j]), arg)], \
                f"{t.text}(...) -> its argument {' '.join(arg.split())[:40]}"


def _apply(text: str, edits: list[Edit]) -> str:
    for a, b, new in sorted(edits, reverse=True):
        text = text[:a] + new + text[b:]
    return text


def sql_mutants(path: str, source: str) -> tuple[list[Mutant], int]:
    """Every SQL mutant of ``source``, and the number of sites skipped because they could not
    be written back exactly (reported, so nothing is silently left out)."""
    tree = ast.parse(source)
    funcs = enclosing_functions(tree)
    out: list[Mutant] = []
    skipped = 0
    counts: dict[str, int] = {}
    for site in _sites(tree):
        text = _BRACE.sub(lambda m: f"__B{m[1]}__", site.text)  # .format / .replace holes
        toks = _tokens(text)
        if not toks:
            continue
        depth = _depths(toks)
        found = [*_cmp_flips(toks, text), *_null_flips(toks), *_order_flips(toks, depth),
                 *_drops(toks, depth), *_case_swaps(toks, depth, text),
                 *_func_drops(toks, depth, text)]
        if not found:
            continue
        if not same_code(replace_node(source, site.node, site.render(site.text)), source):
            skipped += 1
            continue
        line = site.node.lineno
        for op, edits, what in found:
            new_text = _UNBRACE.sub(lambda m: "{" + m[1] + "}", _apply(text, edits))
            key = f"{line}:{op}"  # several sites can start on one line: one count per line
            counts[key] = counts.get(key, -1) + 1
            near = text[max(0, min(a for a, _, _ in edits) - 30):
                             max(b for _, b, _ in edits) + 30]
            out.append(Mutant(
                id=f"sql:{path}:{line}:{op}:{counts[key]}", kind="sql", path=path,
                func=funcs.get(id(site.node), "<module>"), op=op,
                description=f"line {line}: {what} near `{' '.join(near.split())}`",
                source=replace_node(source, site.node, site.render(new_text))))
    return out, skipped

"""Mutants declared equivalent: they change no result the program can produce, so no test
can kill them. They are run like any other (a declared one that is killed is reported as a
wrong declaration) and left out of the kill rate. Each entry says why, by the rule it
rests on. Ids are those of mutate/sqlmut.py and mutate/pymut.py; re-check them when the
code they point at moves (an unknown id is reported).
"""

from __future__ import annotations

EQUIVALENT: dict[str, str] = {
    "sql:core/catalog/orders.py:137:func-drop:0":
        "ROUND(x) inside CAST(... AS INTEGER): DuckDB's cast of a DECIMAL to an integer "
        "already rounds half away from zero, exactly what ROUND does; the result is the same "
        "for every quantity.",
    # (core/catalog/orders.py's UpdatedDate tie-break was declared here while the derivation
    # read Zuora only, where versions never tie; the same declaration now derives
    # orders_current from the local copy, where two rows of one version can (D09), and
    # tests/core/test_orders_current.py pins that tie.)
    # (normalize.py lines 63/73, the 64-bit fast path, were declared here until
    # tests/reconcile/test_ground_truth_normalize_edges.py killed them: on a local decimal finer than
    # 9 places, e.g. DECIMAL(38,12), the fast path rounds twice, 12.4999999995 -> 13.)
    **{f"py:reconcile/normalize.py:27:17:drop-item:{i}":
       f"{name} dropped from _INTEGER_TYPES (read only at normalize.py line 77): a {name} "
       "source then reaches HUGEINT through CAST(... AS DECIMAL(38,9)) instead of directly. "
       "Every value of that type has at most 19 digits, held exactly by DECIMAL(38,9) (29 "
       "integer digits), and an integral decimal casts to HUGEINT exactly: same value, NULL "
       "for NULL, same result type (HUGEINT). Speed only."
       for i, name in enumerate(("INTEGER", "BIGINT", "SMALLINT"))},
    "sql:reconcile/rules/base.py:119:func-drop:0":
        "`NOT coalesce(trial, false)` vs `NOT trial` differ only on a NULL trial; the "
        "catalogue declares orders.trial BOOLEAN NOT NULL DEFAULT false (core/catalog, seed "
        "003) and the local contracts (expectations/contracts.py) check it, so the local table "
        "the rules read holds no NULL there.",
    **{f"sql:reconcile/rules/orders.py:242:drop-conjunct:{i}":
       "D04's `z_ns IS NOT NULL AND ns(gl_namespace_id) IS NOT NULL` are both implied by the "
       "last conjunct `z_ns <> ns(gl_namespace_id)`, which is NULL when either side is NULL, "
       "so the WHERE rejects such a row with or without the dropped conjunct."
       for i in (0, 1)},
    "sql:reconcile/rules/orders.py:247:drop-conjunct:0":
        "D25's `z_ns IS NOT NULL` is implied by the next conjunct `z_ns = ns(gl_namespace_id)`: "
        "with z_ns NULL that comparison is NULL and the WHERE rejects the row either way.",
    "sql:reconcile/rules/orders.py:247:func-drop:0":
        "D25 compares NULLIF(TRIM(gl_namespace_name), '') with z_ns_name, which the same WHERE "
        "requires NOT NULL and which is itself NULLIF(TRIM(..), ''), never ''. Without NULLIF a "
        "blank local name is '' instead of NULL; both are DISTINCT FROM every non-empty "
        "z_ns_name, and non-blank names are unchanged; the explanation reads the raw column.",
}

"""Mutants declared equivalent: they change no result the program can produce, so no test
can kill them. They are run like any other (a declared one that is killed is reported as a
wrong declaration) and left out of the kill rate. Each entry says why, by the rule it
rests on. Ids are those of mutate/sqlmut.py and mutate/pymut.py; re-check them when the
code they point at moves (an unknown id is reported).
"""

from __future__ import annotations

EQUIVALENT: dict[str, str] = {
    "sql:extract/catalog/orders.py:40:func-drop:0":
        "ROUND(x) inside CAST(... AS INTEGER): DuckDB's cast of a DECIMAL to an integer "
        "already rounds half away from zero, exactly what ROUND does; the result is the same "
        "for every quantity.",
    "sql:extract/catalog/orders.py:25:order-flip:1":
        "UpdatedDate only breaks ties between live versions of one Name with the same Version "
        "number; Zuora never holds two (domain.md §1.1 items 1 and 10: versions are 1..n, a "
        "number is re-used only after the version holding it was deleted), so the tie never "
        "occurs on the Zuora side this query reads.",
    # (normalize.py lines 63/73, the 64-bit fast path, were declared here until
    # tests/test_ground_truth_normalize_edges.py killed them: on a local decimal finer than
    # 9 places, e.g. DECIMAL(38,12), the fast path rounds twice, 12.4999999995 -> 13.)
    **{f"py:reconcile/normalize.py:27:17:drop-item:{i}":
       f"{name} dropped from _INTEGER_TYPES (read only at normalize.py line 77): a {name} "
       "source then reaches HUGEINT through CAST(... AS DECIMAL(38,9)) instead of directly. "
       "Every value of that type has at most 19 digits, held exactly by DECIMAL(38,9) (29 "
       "integer digits), and an integral decimal casts to HUGEINT exactly: same value, NULL "
       "for NULL, same result type (HUGEINT). Speed only."
       for i, name in enumerate(("INTEGER", "BIGINT", "SMALLINT"))},
}

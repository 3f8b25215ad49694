"""Mutants declared equivalent: they change no result the program can produce, so no test
can kill them. They are run like any other (a declared one that is killed is reported as a
wrong declaration) and left out of the kill rate. Each entry says why, by the rule it
rests on. Ids are those of mutate/sqlmut.py and mutate/pymut.py; re-check them when the
code they point at moves (an unknown id is reported).
"""

from __future__ import annotations

EQUIVALENT: dict[str, str] = {
    "sql:extract/catalog/orders.py:38:func-drop:0":
        "ROUND(x) inside CAST(... AS INTEGER): DuckDB's cast of a DECIMAL to an integer "
        "already rounds half away from zero, exactly what ROUND does; the result is the same "
        "for every quantity.",
    "sql:extract/catalog/orders.py:23:order-flip:1":
        "UpdatedDate only breaks ties between rows of one Name with the same Version; Zuora "
        "never has two versions of a subscription with one version number (domain.md, "
        "subscription versions), and the snapshot keys rows by Id, so the tie never occurs.",
}

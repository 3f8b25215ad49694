"""The one exit-code table of ``recon``: declared here once, printed into README's command-line
section (:func:`markdown`), and checked by ``tests/jobs/test_cli_errors.py`` against the parser
(every sub-command has a row) and against README (the table there is this one).

The meaning is the same for every command, so CI and cron can act on the number alone:

* ``0`` — done, and nothing needs a person;
* ``1`` — done, and findings or skipped operations need a person;
* ``2`` — could not do what was asked (bad input, refusal, lock held, crash).
"""

from __future__ import annotations

OK, NEEDS_A_PERSON, FAILED = 0, 1, 2

MEANING = {
    OK: "done, nothing needs a person",
    NEEDS_A_PERSON: "done, and findings or skipped operations need a person",
    FAILED: "could not do what was asked: bad input, refusal, lock held, crash "
            "(the message names the thing and what to do)",
}

# what "2" always includes, so each row need not repeat it
_ALWAYS_2 = "bad input, crash"

# command (as typed after ``recon``) -> {code: when}; a code absent from a row never happens.
EXIT_CODES: dict[str, dict[int, str]] = {
    "config show": {0: "settings printed", 2: f"{_ALWAYS_2}, unreadable config"},
    "db init": {0: "schema ready (or DDL printed)", 2: f"{_ALWAYS_2}, database unreachable"},
    "db stamp": {0: "recon's own objects and the identity ready",
                 2: f"{_ALWAYS_2}, database unreachable or written by a newer recon"},
    "db constrain": {0: "the unique keys on orders are in place (created or already there)",
                     2: f"{_ALWAYS_2}, duplicate orders remain (each group listed with D11's "
                        "keeper), the local database is DuckDB, a lock wait timed out"},
    "db guards": {0: "guards installed, removed, or their DDL printed",
                  2: f"{_ALWAYS_2}, database unreachable, not PostgreSQL (DuckDB has no "
                     "triggers), a table missing"},
    "db check": {0: "guards as generated (DuckDB: none, said plainly) and recon's schema "
                    "current",
                 1: "a guard missing, altered or unexpected, or recon's schema not current "
                    "(each listed)",
                 2: f"{_ALWAYS_2}, database unreachable"},
    "sandbox generate": {0: "tenant written", 2: f"{_ALWAYS_2}, `--db` already holds data "
                         "(without `--replace`), `--out` not a tenant directory"},
    "sandbox serve": {0: "stopped cleanly", 2: f"{_ALWAYS_2}, unreadable dataset (file and "
                      "line named), port taken"},
    "extract": {0: "snapshot complete and its volume check passed",
                1: "snapshot complete, volume check failed: never a base or baseline "
                   "(`recon snapshots accept` if the drop is real)",
                2: f"{_ALWAYS_2}, Zuora or the local database "
                "unreachable, suspect export"},
    "validate": {0: "no error-severity check failed (warnings alone, unless `--strict`)",
                 1: "an error-severity check failed (or a warning, with `--strict`)",
                 2: f"{_ALWAYS_2}, a check could not run, unreadable input"},
    "reconcile": {0: "reconciled (drift or not, without `--fail-on-drift`)",
                  1: "open drift, with `--fail-on-drift`",
                  2: f"{_ALWAYS_2}, no complete snapshot"},
    "repair plan": {0: "plan written", 2: f"{_ALWAYS_2}, run not reconciled"},
    "repair apply": {0: "applied completely (already applied or superseded operations "
                        "included), or a dry run — a preview even when a guard would refuse "
                        "`--yes` (each guard listed)",
                     1: "partial: operations skipped as conflict or missing reference "
                        "(each listed)",
                     2: f"{_ALWAYS_2}, the target is not the plan's database (the flag that "
                        "points at it named) or does not exist, refused by a guard with "
                        "`--yes`, lock held, a batch failed (rolled back, cause named)"},
    "repair revert": {0: "reverted completely, or a dry run",
                      1: "partial: rows changed since the apply were skipped (each listed)",
                      2: f"{_ALWAYS_2}, refused, lock held, unknown apply id, a batch failed"},
    "repair history": {0: "listed", 2: f"{_ALWAYS_2}, database unreachable"},
    "backfill": {0: "every chunk committed (or committed before), nothing skipped",
                 1: "some inserts skipped: a row appeared meanwhile (conflict) or a "
                    "referenced row is missing (each chunk's apply lists them)",
                 2: f"{_ALWAYS_2}, a failed, unvalidated or partial snapshot (named), an "
                    "unstamped target, lock held, a chunk failed (rolled back; re-run to "
                    "continue)"},
    "sync": {0: "the keys are consistent after the sync, or a dry run that could read",
             1: "`human` findings or skipped operations remain (each listed)",
             2: f"{_ALWAYS_2}, Zuora or the local database unreachable, a bad record "
                "(rule named), the row cap refused it"},
    "catalog plans": {0: "plans listed (with the plans that cannot be classified, if any)",
                      1: "a current plan cannot be classified (D22), with "
                         "`--fail-on-unclassified`",
                      2: f"{_ALWAYS_2}, unknown scope (the known ones named), database "
                         "unreachable or without the catalog cache"},
    "report": {0: "report written (without `--fail-on-drift`: whatever its banner)",
               1: "report written, banner DRIFT, with `--fail-on-drift`",
               2: f"{_ALWAYS_2}, no report could be written; banner ERROR or PARTIAL, with "
                  "`--fail-on-drift`"},
    "findings ack": {0: "acknowledged (each finding listed)",
                     2: f"{_ALWAYS_2}, no such finding or an ambiguous prefix (named), a "
                        "resolved finding, a date in the past"},
    "findings unack": {0: "acknowledgements removed (each listed)",
                       2: f"{_ALWAYS_2}, no such acknowledgement"},
    "run": {0: "job finished (drift or not, without `--fail-on-drift`), or a recorded no-op",
            1: "drift found, with `--fail-on-drift`",
            2: f"{_ALWAYS_2}, job failed (report says why), lock held by another run"},
    "snapshots": {0: "listed", 2: f"{_ALWAYS_2}, unreadable state"},
    "snapshots accept": {0: "the drop is accepted: the snapshot is a base and a baseline",
                         2: f"{_ALWAYS_2}, no such snapshot, or it failed more than the "
                            "volume check"},
    "snapshots prune": {0: "old snapshots removed (or listed, with `--dry-run`); the ones "
                           "still needed kept, each with why",
                        2: f"{_ALWAYS_2}, no retention given (`--keep-days` or "
                           "`snapshots.keep_days`)"},
    "runs": {0: "listed", 2: f"{_ALWAYS_2}, unreadable state"},
    "runs show": {0: "shown", 2: f"{_ALWAYS_2}, no such run"},
    "status": {0: "every job's latest attempt succeeded (or is running) and none is overdue",
               1: "a job's latest attempt failed (or its tick was missed), or a job is "
                  "overdue (each named)",
               2: f"{_ALWAYS_2}, unreadable state"},
    "findings": {0: "listed (an empty list too)",
                 2: f"{_ALWAYS_2}, no such run, or it was not reconciled"},
    "scheduler": {0: "stopped by a signal", 2: f"{_ALWAYS_2}, unreadable schedule"},
    "callouts serve": {0: "stopped by a signal after draining the syncs in flight",
                       2: f"{_ALWAYS_2}, no authentication configured, port taken, inbox "
                          "unusable"},
    "callouts work": {0: "stopped by a signal after draining the syncs in flight",
                      2: f"{_ALWAYS_2}, the local side is not PostgreSQL, inbox unreachable"},
    "callouts status": {0: "shown, nothing needs a person",
                        1: "dead letters, or the oldest pending event past "
                           "`callouts.alert_oldest_pending_s`",
                        2: f"{_ALWAYS_2}, inbox unreachable"},
    "callouts retry": {0: "requeued", 2: f"{_ALWAYS_2}, no such dead letter, no inbox"},
    "demo": {0: "demo finished (drift is expected)", 2: f"{_ALWAYS_2}, a step failed"},
}


def markdown() -> str:
    """README's exit-code table (the test checks README contains exactly this)."""
    lines = ["| command | 0 | 1 | 2 |", "|---|---|---|---|"]
    for cmd, codes in EXIT_CODES.items():
        cells = [codes.get(c, "—") for c in (OK, NEEDS_A_PERSON, FAILED)]
        lines.append(f"| `recon {cmd}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)

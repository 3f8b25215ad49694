"""``recon validate PATH [--run RUN] [--no-gx] [--json]``: validate a snapshot or a dataset.

Runs the contracts (pandera), the volume check (snapshots only: against the previous complete
snapshot in the same data directory) and the business-rule suites (GX; ``--no-gx`` skips them
and their 4–6 s import), stores every result in recon's state and quarantines bad rows under
``DATA/runs/<run>/quarantine/``. Prints one line per failed or broken check and a summary
(``--json``: everything, machine-readable). Exit codes (``jobs.cli.exit_codes``): 0 no
error-severity check failed (warnings alone exit 0: a clean tenant has some, and CI validating
fixtures must tell them from failures), 1 an error-severity check failed (bad data, including
a wrong shape, a duplicated Zuora key or a volume drop, which would stop a pipeline run) — or,
with ``--strict``, any check failed, 2 some check could not run (or the input cannot be read).

Imports of ``expectations`` happen inside :func:`run`, so ``recon --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.config import Settings
from core.errors import ReconError
from jobs.cli.argtypes import IN_DIR, PathArg
from jobs.cli.common import EXIT_ERROR, EXIT_OK, add_global_options, add_json, add_run
from jobs.cli.common import settings_of as _settings
from jobs.cli.exit_codes import NEEDS_A_PERSON

if TYPE_CHECKING:
    from expectations.validate import ValidationResult

EXIT_FAILED = NEEDS_A_PERSON
WIDTH = {"where": 56, "rule": 40, "detail": 100}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``validate`` on a ``add_subparsers()`` object (``func`` loads the settings from
    ``--config`` when the top-level parser has one)."""
    p = subparsers.add_parser(
        "validate", help="validate a snapshot or a dataset: contracts, volume, business rules",
        description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("path", metavar="PATH", type=PathArg(IN_DIR),
                   help="a snapshot directory (DATA/snapshots/<run_id>) or a dataset directory")
    add_run(p, "run id to record results under (default: the snapshot's run id, or a new one "
            "for a dataset)", metavar="RUN")
    p.add_argument("--no-gx", action="store_true",
                   help="skip the Great Expectations business-rule suites")
    add_json(p, "print all results as JSON")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 on warning-severity failures too (default: only errors)")
    p.set_defaults(func=_from_args)
    return p


def _from_args(args: argparse.Namespace) -> int:
    return run(args, _settings(args))


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Validate ``args.path``; print; return the exit code. Input that cannot be read raises
    :class:`ReconError` (the CLI prints it and exits 2)."""
    from expectations.errors import ValidationError
    from expectations.validate import validate_path

    try:
        result = validate_path(args.path, settings, run_id=args.run, gx=not args.no_gx)
    except ValidationError as e:
        if e.result is None:
            raise
        result = e.result
    code = exit_code(result, strict=getattr(args, "strict", False))
    if args.json:
        print(json.dumps({**as_json(result), "exit_code": code}, indent=2, default=str))
    elif code != EXIT_OK or not getattr(args, "quiet", False):
        for line in table(result):
            print(line)
    if result.fatal:
        print(f"recon: validation stops the run: {result.fatal}", file=sys.stderr)
    return code


def exit_code(result: ValidationResult, *, strict: bool = False) -> int:
    """2 a check could not run; 1 an error-severity check failed or validation stopped the
    run (with ``strict``: any failed check); else 0 — warnings alone need no person."""
    if result.errors:
        return EXIT_ERROR
    if result.blocking or result.fatal or (strict and result.failed):
        return EXIT_FAILED
    return EXIT_OK


def as_json(result: ValidationResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id, "path": str(result.path), "kind": result.kind,
        "exit_code": result.exit_code, "stopped": result.fatal,
        "quarantined": result.quarantined, "quarantine_dir": str(result.quarantine_dir),
        "quarantine_counts": result.quarantine_counts,
        "previous_run_id": result.previous_run_id,
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "results": result.results.to_dicts(),
    }


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _share(pct: float | None) -> str:
    if pct is None:
        return ""
    return "<0.01%" if 0 < pct < 0.01 else f"{pct:.2f}%"


def _detail(row: dict[str, Any]) -> str:
    if row["outcome"] == "error" or not row["sample_keys"]:
        return row["message"] or ""
    values = row["sample_values"] or []
    pairs = [f"{k}={'NULL' if values[i] is None else repr(values[i])}" if i < len(values)
             else str(k) for i, k in enumerate(row["sample_keys"][:3])]
    return ", ".join(pairs)


def table(result: ValidationResult) -> list[str]:
    """One line per failed or errored check (errors first), then a summary line."""
    import polars as pl

    r = result.results
    bad = r.filter(pl.col("outcome") != "passed").with_columns(
        _o=pl.col("outcome").replace_strict({"error": 0, "failed": 1}, default=2),
        _s=pl.col("severity").replace_strict({"error": 0, "warning": 1}, default=2),
    ).sort("_o", "_s", "source", "object", "column", "rule", nulls_last=True)
    lines = []
    rows = []
    for row in bad.iter_rows(named=True):
        where = row["object"] or ""
        if row["column"]:
            where += f".{row['column']}"
        count = "" if row["failing_count"] is None else f"{row['failing_count']:,}"
        share = _share(row["failing_pct"])
        rows.append((row["outcome"].upper(), row["severity"], row["source"],
                     _cut(where, WIDTH["where"]), _cut(row["rule"], WIDTH["rule"]), count,
                     share, _cut(_detail(row), WIDTH["detail"])))
    if rows:
        head = ("OUTCOME", "SEVERITY", "SOURCE", "OBJECT.COLUMN", "RULE", "FAILING", "%", "SAMPLE")
        widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head) - 1)]
        for x in [head, *rows]:
            cells = [x[i].rjust(widths[i]) if i in (5, 6) else x[i].ljust(widths[i])
                     for i in range(len(head) - 1)]
            lines.append("  ".join([*cells, x[-1]]).rstrip())
    n = r.height
    counts = {k: int((r["outcome"] == k).sum()) if n else 0 for k in ("passed", "failed", "error")}
    where = f"{result.kind} {result.path}"
    summary = (f"{where}: {n:,} checks, {counts['passed']:,} passed, {counts['failed']:,} "
               f"failed, {counts['error']:,} errors; {result.quarantined:,} quarantined")
    if result.quarantined:
        summary += f" ({result.quarantine_dir})"
    summary += f"; run {result.run_id}"
    if result.previous_run_id:
        summary += f"; volume compared with {result.previous_run_id}"
    lines.append(summary)
    return lines


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser (``recon``'s global flags + ``validate``), for tests and for
    running this command alone)."""
    p = argparse.ArgumentParser(prog="recon")
    add_global_options(p)
    sub = p.add_subparsers(dest="command", required=True)
    add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``recon [--config F] [-q] validate …`` without the rest of the CLI; errors as in
    ``jobs.cli.main`` (a ReconError prints ``recon: error: …`` and exits 2)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # bad input: argparse printed the message naming the argument
        return e.code if isinstance(e.code, int) else EXIT_ERROR
    try:
        return int(args.func(args))
    except ReconError as e:
        print(f"recon: error: {e}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())

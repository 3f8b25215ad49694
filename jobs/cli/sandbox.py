"""``recon sandbox generate`` and ``recon sandbox serve``: the Zuora sandbox (tenant
generator, drift injection, a server speaking Zuora's API shapes) for demos and tests.

The sandbox is its own distribution (``sandbox/pyproject.toml``), never installed with recon
in production: this module imports it only inside the commands, after
:func:`require_sandbox` has made sure it is there — without it, ``recon sandbox …`` and
``recon demo`` exit 2 saying how to install it instead of a traceback.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path
from typing import Any

from core.config import redact_url
from core.errors import ReconError
from jobs.cli.argtypes import (
    COUNT,
    DRIFT,
    IN_DIR,
    OUT_DIR,
    OUT_FILE,
    PORT,
    SEED,
    SHARE,
    FloatRange,
    IntRange,
    PathArg,
    date,
    zone,
)
from jobs.cli.common import EXIT_OK, add_db
from jobs.cli.common import progress_of as _progress
from jobs.cli.common import settings_of as _settings

# Zuora's callout delivery settings: 1–5 attempts, at most 1440 minutes apart (zuora-api.md §5)
CALLOUT_ATTEMPTS = IntRange(1, 5, "a number of delivery attempts")
CALLOUT_INTERVAL = FloatRange(0.0, 86_400.0, "a number of seconds")
CALLOUT_DELAY = FloatRange(0.0, 3_600.0, "a number of seconds")

INSTALL_HINT = ("install it with `pip install -e ./sandbox` from a recon checkout, or run "
                "`make demo`")


class SandboxNotInstalled(ReconError):
    """The ``sandbox`` distribution is not installed (production installs carry none)."""


def require_sandbox(command: str = "recon sandbox") -> None:
    """Refuse, naming how to install it, when the ``sandbox`` package cannot be imported."""
    try:
        import sandbox  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != "sandbox":  # installed, but something it needs is missing: say that
            raise
        raise SandboxNotInstalled(f"`{command}` needs the Zuora sandbox, which is not "
                                  f"installed ({e}); {INSTALL_HINT}") from None


def print_summary(summary, out: Path, db_url: str | None) -> None:
    from core.catalog import OBJECTS

    width = max(len(o.name) for o in OBJECTS)
    print(f"tenant written to {out} in {summary.seconds:.1f}s")
    print(f"local side: {redact_url(db_url) if db_url else out / 'local.duckdb'}")
    print(f"  {'Zuora object':<{width}}  {'rows':>10}   local table")
    for spec in OBJECTS:
        local = summary.local_counts.get(spec.table, 0)
        print(f"  {spec.name:<{width}}  {summary.counts.get(spec.name, 0):>10,}   "
              f"{spec.table} ({local:,})")
    for table in ("customers", "billing_account_memberships", "orders"):
        print(f"  {'':<{width}}  {'':>10}   {table} ({summary.local_counts.get(table, 0):,})")
    total = sum(v for k, v in summary.labels.items() if k != "D26")
    print(f"labelled drift: {total:,} expected findings "
          f"({', '.join(f'{k}:{v}' for k, v in summary.labels.items())})")
    print(f"labels: {out / 'labels.parquet'}")


def cmd_sandbox_generate(args: argparse.Namespace) -> int:
    require_sandbox()
    from sandbox.generate.run import Options, generate

    settings = _settings(args)
    if args.scenario:
        from sandbox.generate.drift import SCENARIOS

        unknown = sorted(set(args.scenario) - set(SCENARIOS) - {"D26"})
        if unknown:
            raise ReconError(f"--scenario {', '.join(unknown)}: no such drift scenario; "
                             f"give one of {', '.join(sorted({*SCENARIOS, 'D26'}))}")
    opts = Options(
        accounts=args.accounts, seed=args.seed, drift=args.drift, d26=args.d26,
        as_of=args.as_of, tz=args.tenant_tz or settings.tenant_tz, chunk=args.chunk,
        scenarios=tuple(args.scenario) if args.scenario else None, fmt=args.format,
    )
    summary = generate(opts, Path(args.out), args.db, progress=_progress(args),
                       replace=args.replace)
    if not args.quiet:
        print_summary(summary, Path(args.out), args.db)
    return EXIT_OK


def first_invalid_utf8(root: Path) -> tuple[Path, int, int] | None:
    """The first (file, line, byte) under ``root`` that is not UTF-8 — text files only
    (JSON Lines, JSON, CSV); only called once reading a dataset has failed on a decode."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()
                       and p.suffix in (".jsonl", ".json", ".csv")):
        with path.open("rb") as fh:
            for n, line in enumerate(fh, 1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as e:
                    return path, n, line[e.start]
    return None


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    require_sandbox()
    from core.errors import DatasetError
    from sandbox.server import serve

    settings = _settings(args)
    try:
        serve(args.data, port=args.port, tenant_tz=args.tenant_tz, faults=args.faults,
              client_id=settings.zuora_client_id,
              client_secret=settings.zuora_client_secret.get() or "sandbox-secret",
              **callout_options(args))
    except (UnicodeDecodeError, ValueError, OSError) as e:
        bad = first_invalid_utf8(Path(args.data)) if not isinstance(e, OSError) else None
        if bad is not None:
            path, line, byte = bad
            raise DatasetError(
                f"--data {args.data}: {path} line {line} is not UTF-8 (byte 0x{byte:02x}); the "
                "sandbox serves UTF-8 datasets: fix or remove that record, or regenerate the "
                "dataset (`recon sandbox generate`)") from e
        if isinstance(e, OSError):
            raise DatasetError(f"--data {args.data} / --port {args.port}: {e.strerror or e}; "
                               "check the dataset is readable and the port is free") from e
        raise
    return EXIT_OK



def callout_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--callout-*`` flags as ``SandboxServer``'s keyword options (none without a URL)."""
    if not args.callout_url:
        given = [f"--callout-{k.removeprefix('callout_').replace('_', '-')}"
                 for k, v in vars(args).items()
                 if k.startswith("callout_") and v not in (None, False)]
        if given:
            raise ReconError(f"{', '.join(given)} need(s) --callout-url (the receiver's base "
                             "URL, e.g. http://127.0.0.1:8809)")
        return {}
    options = {k: v for k, v in vars(args).items() if k.startswith("callout_")}
    for name in ("auth", "secret"):  # kept off the command line (and out of `ps`) if wished
        options[f"callout_{name}"] = (options[f"callout_{name}"]
                                      or os.environ.get(f"RECON_SANDBOX_CALLOUT_{name.upper()}"))
    return options


def generate_args(p: argparse.ArgumentParser, accounts: int = 1_000, drift: float = 0.0) -> None:
    """The tenant options ``sandbox generate`` and ``demo`` share."""
    p.add_argument("--accounts", type=COUNT, default=accounts, help="number of Zuora accounts")
    p.add_argument("--seed", type=SEED, default=1, help="random seed (same seed, same tenant)")
    p.add_argument("--drift", type=DRIFT, default=drift,
                   help="fraction of subscriptions that get drift, spread over D01–D25")
    p.add_argument("--d26", type=SHARE, default=0.02,
                   help="rate of normalisation-only differences (must not be reported)")
    p.add_argument("--as-of", type=date, default=dt.date(2026, 11, 1),
                   help="the tenant's 'today' (fixed by default, for reproducibility)")


def sandbox_installed() -> bool:
    """Whether the ``sandbox`` distribution can be imported (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("sandbox") is not None
    except ModuleNotFoundError:
        return False


def _not_installed(args: argparse.Namespace) -> int:
    require_sandbox(f"recon {args.command}")
    return EXIT_OK  # the sandbox appeared after the parser was built: nothing to do


def add_unavailable(sub: Any, name: str, help: str) -> None:
    """``name`` without the sandbox installed: every invocation, ``--help`` included, exits 2
    saying how to install it (argparse would otherwise print a help for commands that cannot
    run)."""
    p = sub.add_parser(name, help=f"{help} (needs the sandbox: not installed)", add_help=False,
                       prefix_chars="+")  # every word, --help included, is an argument here
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_not_installed, command=name)


def add_parser(sub: Any) -> None:
    if not sandbox_installed():
        add_unavailable(sub, "sandbox", "the Zuora sandbox: tenant generator")
        return
    sb = sub.add_parser("sandbox", help="the Zuora sandbox: tenant generator")
    sb_sub = sb.add_subparsers(dest="sandbox_command", required=True)
    gen = sb_sub.add_parser("generate", help="generate a Zuora tenant and its local copy with "
                            "labelled drift")
    generate_args(gen)
    gen.add_argument("--out", required=True, type=PathArg(OUT_DIR),
                     help="dataset directory to write (new, empty or an earlier tenant, "
                     "replaced at the end)")
    add_db(gen, "local database URL (default: DuckDB file in --out); its local tables must "
           "be empty")
    gen.add_argument("--replace", action="store_true",
                     help="drop and recreate recon's local tables in --db when they hold data")
    gen.add_argument("--tenant-tz", type=zone,
                     help="tenant time zone (default: config tenant_tz)")
    gen.add_argument("--chunk", type=COUNT, default=20_000,
                     help="accounts generated per chunk (memory bound)")
    gen.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl",
                     help="Zuora-side file format (Parquet is smaller for large tenants)")
    gen.add_argument("--scenario", action="append",
                     help="only this drift scenario (repeatable), e.g. --scenario D11")
    gen.set_defaults(func=cmd_sandbox_generate)

    srv = sb_sub.add_parser("serve", help="serve a dataset over Zuora's API shapes (loopback)")
    srv.add_argument("--data", required=True, type=PathArg(IN_DIR),
                     help="dataset directory (see README)")
    srv.add_argument("--port", type=PORT, default=8808, help="TCP port on 127.0.0.1")
    srv.add_argument("--tenant-tz", type=zone,
                     help="tenant time zone (default: the dataset's)")
    srv.add_argument("--faults", help="fault spec, e.g. aqua_file:truncate_csv:1,oauth:429:2")
    co = srv.add_argument_group(
        "callouts", "send Zuora's callouts for every mutation to a receiver (recon callouts "
        "serve): each event kind to its default path on --callout-url (docs/sandbox.md \"The Zuora "
        "sandbox server\")")
    co.add_argument("--callout-url", metavar="BASE_URL",
                    help="the receiver's base URL, e.g. http://127.0.0.1:8809")
    co.add_argument("--callout-auth", metavar="USER:PASS",
                    help="Basic credentials (non-preemptive: sent after the receiver's 401); "
                    "default $RECON_SANDBOX_CALLOUT_AUTH")
    co.add_argument("--callout-preemptive", action="store_true", default=None,
                    help="send the Basic credentials on the first request")
    co.add_argument("--callout-secret", metavar="S",
                    help="HMAC-SHA256 secret: hex signature of the body in X-Zuora-Signature; "
                    "default $RECON_SANDBOX_CALLOUT_SECRET")
    co.add_argument("--callout-attempts", type=CALLOUT_ATTEMPTS, metavar="N",
                    help="delivery attempts per notification, 1-5 (default 3, as Zuora)")
    co.add_argument("--callout-retry-interval", type=CALLOUT_INTERVAL, metavar="S",
                    help="seconds between attempts (default 1800, as Zuora)")
    co.add_argument("--callout-loss", type=SHARE, metavar="P",
                    help="share of notifications lost, never sent (logged as dropped)")
    co.add_argument("--callout-delay", type=CALLOUT_DELAY, metavar="S",
                    help="delay each notification by a random 0..S seconds")
    co.add_argument("--callout-reorder", type=SHARE, metavar="P",
                    help="share held back until the next notification has gone")
    co.add_argument("--callout-seed", type=SEED, metavar="N",
                    help="seed of the loss, delay and reorder draws (same seed, same choices)")
    co.add_argument("--callout-log", type=PathArg(OUT_FILE), metavar="PATH",
                    help="append every sent, dropped and failed notification (kind, keys) as "
                    "JSON lines")
    srv.set_defaults(func=cmd_sandbox_serve)

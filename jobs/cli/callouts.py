"""``recon callouts serve|work|status|retry``: the callout receiver and its workers (issue 15).

``serve`` and ``work`` import the service (``callouts``, beside ``jobs``) inside the command
functions: the one place the jobs floor reaches the callouts floor, and only once asked to run
it. ``status`` and ``retry`` need only the inbox's reader in the shared base."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
from typing import Any

from core.config import Settings
from core.inbox import INBOX_FILE, Inbox, inbox_exists, open_inbox
from jobs.cli.argtypes import IN_FILE, PORT, IntRange, PathArg
from jobs.cli.common import (
    EXIT_DRIFT,
    EXIT_ERROR,
    EXIT_OK,
    add_json,
    add_log_json,
    context_of,
    setup_logging,
)
from jobs.cli.common import settings_of as _settings
from jobs.cli.jsonout import emit

WORKERS = IntRange(0, 64, "a number of worker threads")
DEAD_ID = IntRange(1, 2**62, "a dead letter's id (see `recon callouts status`)")


def cmd_serve(args: argparse.Namespace) -> int:
    from callouts.service import serve

    setup_logging(args)
    return serve(_settings(args), host=args.host, port=args.port,
                 metrics_host=args.metrics_host, metrics_port=args.metrics_port,
                 workers=args.workers, ssl_certfile=args.ssl_certfile,
                 ssl_keyfile=args.ssl_keyfile)


def cmd_work(args: argparse.Namespace) -> int:
    from callouts.service import work

    setup_logging(args)
    return work(_settings(args), workers=args.workers, metrics_host=args.metrics_host,
                metrics_port=args.metrics_port)


def _existing_inbox(settings: Settings) -> Inbox | None:
    """The inbox, or None when none was ever created (looking creates nothing)."""
    return open_inbox(settings) if inbox_exists(settings) else None


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _ago(when: dt.datetime | None, now: dt.datetime) -> str:
    if when is None:
        return ""
    s = (now - when).total_seconds()
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}m ago" if s < 7200 else \
        f"{s / 3600:.1f}h ago"


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def cmd_status(args: argparse.Namespace) -> int:
    """The queue, dead letters and the last syncs; exit 1 when a person is needed (dead
    letters, or the oldest pending event past ``callouts.alert_oldest_pending_s``)."""
    settings = _settings(args)
    inbox = _existing_inbox(settings)
    if inbox is None:
        if args.json:
            emit("callouts status", {"inbox": None, "needs_a_person": False})
        else:
            print("no callout inbox yet: `recon callouts serve` creates it (with a DuckDB "
                  f"local side at {settings.data_dir / INBOX_FILE})")
        return EXIT_OK
    now = dt.datetime.now(dt.UTC)
    with inbox:
        health = inbox.health(now)
        pending = inbox.pending()
        dead = inbox.dead_letters()
        log = inbox.sync_log(args.limit)
        where = f"{inbox.kind} {inbox.where()}"
    stale = (health.oldest_pending_s or 0) > settings.callouts_alert_oldest_pending_s
    code = EXIT_DRIFT if dead or stale else EXIT_OK
    retry = context_of(args).command("callouts", "retry", "--all-dead")
    if args.json:
        emit("callouts status", _plain({
            "inbox": where, "needs_a_person": code != EXIT_OK,
            "health": dataclasses.asdict(health),
            "pending": [dataclasses.asdict(p) for p in pending],
            "dead_letters": [dataclasses.asdict(d) for d in dead],
            "last_syncs": [dataclasses.asdict(e) for e in log],
            "next": [retry] if dead else []}))
        return code
    oldest = ("" if health.oldest_pending_s is None
              else f", oldest pending {health.oldest_pending_s:.0f}s"
              + (" (past the alert threshold)" if stale else ""))
    print(f"inbox: {where}")
    print(f"queue: {health.queue_depth} key(s), {health.running} running{oldest}; dead "
          f"letters: {health.dead_letters}; last 24 h: {health.events_24h} event(s), "
          f"{health.syncs_24h} sync(s) ({health.failed_24h} failed), {health.rejected_24h} "
          "rejected payload(s)")
    if pending:
        print("\nPENDING")
        _table(["OBJECT", "KEY", "STATE", "EVENTS", "FIRST EVENT", "SYNC AFTER", "ATTEMPTS",
                "LAST ERROR"],
               [[p.object, p.key, p.state, str(p.events), _ago(p.first_event_at, now),
                 p.not_before.strftime("%H:%M:%S"), str(p.attempts),
                 (p.last_error or "")[:60]] for p in pending[:args.limit]])
    if dead:
        print(f"\nDEAD LETTERS (`{retry}` requeues them all; `recon callouts retry ID` one)")
        _table(["ID", "OBJECT", "KEY", "ATTEMPTS", "DEAD", "REASON"],
               [[str(d.id), d.object, d.key, str(d.attempts), _ago(d.dead_at, now),
                 d.reason[:80]] for d in dead[:args.limit]])
    if log:
        print("\nLAST SYNCS")
        _table(["SYNC ID", "OBJECT", "KEYS", "STATUS", "FINISHED", "SECONDS", "EVENTS"],
               [[e.sync_id, e.object, str(e.keys), e.status, _ago(e.finished_at, now),
                 f"{(e.finished_at - e.started_at).total_seconds():.2f}",
                 str(len(e.trigger.split(",")) if e.trigger != "callout:" else 0)]
                for e in log])
    return code


def cmd_retry(args: argparse.Namespace) -> int:
    if (args.id is None) == (not args.all_dead):
        print("recon: error: give a dead letter's ID or --all-dead (see `recon callouts "
              "status`)", file=sys.stderr)
        return EXIT_ERROR
    settings = _settings(args)
    inbox = _existing_inbox(settings)
    if inbox is None:
        print("recon: error: no callout inbox yet: nothing to retry", file=sys.stderr)
        return EXIT_ERROR
    with inbox:
        n = inbox.retry(args.id, all_dead=args.all_dead)
    if n == 0 and args.id is not None:
        print(f"recon: error: no dead letter {args.id} waiting (already requeued? see "
              "`recon callouts status`)", file=sys.stderr)
        return EXIT_ERROR
    if not args.quiet:
        print(f"requeued {n} dead letter(s): the workers sync them now")
    return EXIT_OK


def add_parser(sub: Any) -> None:
    co = sub.add_parser("callouts", help="Zuora callouts: receiver, workers, queue status")
    cs = co.add_subparsers(dest="callouts_command", metavar="SUBCOMMAND", required=True)
    serve = cs.add_parser("serve", help="the callout receiver (with its workers)")
    serve.add_argument("--host", help="bind address (default: config callouts.host)")
    serve.add_argument("--port", type=PORT, help="port (default: config callouts.port, 8809)")
    serve.add_argument("--ssl-certfile", type=PathArg(IN_FILE), help="TLS certificate (PEM) "
                       "to serve https directly (default: plain http behind a TLS proxy)")
    serve.add_argument("--ssl-keyfile", type=PathArg(IN_FILE), help="TLS private key (PEM) "
                       "of --ssl-certfile")
    for p in (serve, cs.add_parser("work", help="sync workers apart from the receiver "
                                   "(PostgreSQL local side only)")):
        p.add_argument("--metrics-host", help="bind address of /metrics (default: config "
                       "callouts.metrics_host, loopback)")
        p.add_argument("--metrics-port", type=PORT, help="port of /metrics (default: config "
                       "callouts.metrics_port; 0 on serve: on the receiver's port)")
        p.add_argument("--workers", type=WORKERS, help="worker threads (default: config "
                       "callouts.workers; serve --workers 0 with PostgreSQL: run them apart)")
        add_log_json(p)
        p.set_defaults(func=cmd_serve if p is serve else cmd_work)
    st = cs.add_parser("status", help="the queue, dead letters and last syncs (exit 1: dead "
                       "letters or a stale queue)")
    add_json(st, "machine-readable output")
    st.add_argument("--limit", type=IntRange(1, 10_000, "a number of rows"), default=20,
                    help="rows per section (default 20)")
    st.set_defaults(func=cmd_status)
    rt = cs.add_parser("retry", help="requeue a dead letter (ID) or all of them")
    rt.add_argument("id", nargs="?", type=DEAD_ID, help="the dead letter's id")
    rt.add_argument("--all-dead", action="store_true", help="requeue every dead letter")
    rt.set_defaults(func=cmd_retry)

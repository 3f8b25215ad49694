"""``recon demo``: the ``full`` job on the embedded defaults, plus the Zuora sandbox.

Generate a drifted tenant (or reuse the one a previous demo made with the same options),
serve it from the Zuora sandbox (in-process, real HTTP on loopback), then run the declared
``full`` sequence (:mod:`jobs.steps`: extract → validate → reconcile → plan → report →
apply-if-allowed) against it and the tenant's local DuckDB — the very steps ``recon run full``
runs, with the demo's settings — and print what each step found. The demo's additions are
shown between the steps, never instead of one: after the plan, a dry run of it against the
demo's local copy; and with ``--apply`` the demo allows the apply step (``repair.auto``) on
that copy only, past the change-fraction guard the small tenant's tiny catalog tables trip.

Reusing the tenant keeps history meaningful: a second demo shows the same findings as
persisting, and after ``--apply`` the next demo shows the repaired ones as resolved. The
demo's run goes through :func:`jobs.pipeline.run_job` like ``recon run full`` (the job lock,
the run history with trigger ``demo``, one run id for its snapshot and run directory), so
``recon runs`` and ``recon status`` list it; it never alerts and never retries.

Then the event path (issue 15): the callout receiver and its workers start in this process
(real HTTP on loopback, Basic auth and HMAC with per-run random credentials, debounce
:data:`EVENT_DEBOUNCE_S`), the sandbox sends Zuora's callouts to it, and the demo changes a
contact's e-mail, an account's name, a subscription's custom field and adds a catalog product in
the sandbox; it waits until each callout's targeted sync finished and prints the keys, their
new local values and how long each took (callout received → sync finished). The syncs write a
copy of the local database in ``DATA/demo-events/`` (with its own inbox), never the tenant's:
the sandbox forgets its changes when it stops, so syncing them into the tenant's copy would show
as drift in the next demo, and without ``--apply`` the demo never writes the tenant's copy.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import secrets
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from core.commands import CommandContext
from core.config import Settings
from core.errors import ReconError
from core.layout import DataLayout
from jobs.cli.argtypes import OUT_DIR, PathArg
from jobs.cli.common import EXIT_ERROR, EXIT_OK, Progress, context_of
from jobs.cli.common import progress_of as _progress
from jobs.cli.common import settings_of as _settings
from jobs.cli.sandbox import generate_args, print_summary, require_sandbox

SECRET = "demo-sandbox-secret"


def _demo_tenant_matches(tenant: Path, opts) -> bool:  # noqa: ANN001 (generate.run.Options)
    """True when ``tenant`` is a finished demo tenant generated with ``opts`` (tenant.json is
    written last, so its presence means the generator finished)."""
    meta_file, db_file = tenant / "tenant.json", tenant / "local.duckdb"
    if not (meta_file.is_file() and db_file.is_file() and (tenant / "labels.parquet").is_file()):
        return False
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        return False
    want = {"accounts": opts.accounts, "seed": opts.seed, "drift": opts.drift, "d26": opts.d26,
            "as_of": opts.as_of.isoformat(), "tenant_tz": opts.tz, "format": opts.fmt}
    return all(meta.get(k) == v for k, v in want.items())


@dataclass
class _Show:
    """What the demo prints after each step of the sequence (``run_steps(after=…)``)."""

    args: argparse.Namespace
    tenant: Path
    url: str
    progress: Progress | None
    done: list[str] = field(default_factory=list)
    run: Any = None  # jobs.steps.StepRun, once a step has run
    ctx: CommandContext = field(default_factory=CommandContext)  # of the printed commands

    def __call__(self, step: str, run: Any) -> None:
        self.done.append(step)
        self.run = run
        quiet = self.args.quiet
        if step == "extract" and not quiet:
            m = run.manifest
            zrows = sum(int(v.get("rows", 0)) for v in m.zuora.values())
            lrows = sum(int(v.get("rows", 0)) for v in m.local.values())
            print(f"\nZuora sandbox served {self.tenant} at {self.url}; extracted {zrows:,} "
                  f"Zuora rows and {lrows:,} local rows in {m.duration_s or 0:.1f}s")
            print(f"snapshot: {run.data / 'snapshots' / m.run_id}")
        elif step == "validate" and not quiet:
            res = run.checks.results
            bad = res.filter(res["outcome"] != "passed")
            print(f"validated: {res.height} checks, {bad.height} not passed, "
                  f"{run.checks.quarantined} rows quarantined")
        elif step == "reconcile" and not quiet:
            from jobs.cli.reconcile import print_reconcile

            print()
            print_reconcile(run.result)
        elif step == "plan":
            self._dry_run(run)
        elif step == "apply" and not quiet and run.applied is not None:
            done = run.applied
            db = run.settings.local_database_url
            print(f"applied to the demo's local copy: {done.ops_applied:,} operations "
                  f"({done.status}, apply {done.apply_id}); run `recon demo` again to see "
                  "the repaired findings resolved")
            if done.ops_applied:  # its tiny tables: the revert trips the fraction guard too
                undo = self.ctx.command("repair", "revert", done.apply_id, "--db", db,
                                        "--yes", "--force")
                print(f"  undo:     {undo}")
            print(f"  history:  {self.ctx.command('repair', 'history', '--db', db)}")

    def _dry_run(self, run: Any) -> None:
        """The plan's dry run against the demo's local copy: a preview, with the guards an
        apply would trip (the small tenant trips the change-fraction guard on its tiny
        catalog tables), and the commands that preview, apply and list it — complete for this
        demo (its data directory, its database, the config it ran with)."""
        for line in demo_commands(run, self.ctx, self._dry(run), quiet=self.args.quiet):
            print(line)

    def _dry(self, run: Any) -> Any:
        from repair.apply import apply_plan

        if self.progress:
            self.progress("dry run of the repair plan")
        return apply_plan(run.plan_path, run.settings, progress=self.progress)


def demo_commands(run: Any, ctx: CommandContext, dry: Any, quiet: bool = False) -> list[str]:
    """What the demo prints after its plan: the dry run's counts, the guards ``--yes`` would
    trip, and the commands to preview, apply and list the repair of this demo's database."""
    db = run.settings.local_database_url
    plan = Path(run.plan_path)
    force = ["--force"] if any(t.override == "--force" for t in dry.guards) else []
    lines = [] if quiet else [
        f"\nrepair plan: {dry.ops_planned:,} operations, "
        f"{len(run.plan.needs_a_person):,} findings need a person; dry run against "
        f"the demo's local copy: {dry.ops_applied:,} would apply, "
        f"{dry.ops_skipped:,} would be skipped ({dry.seconds:.1f}s)",
        *(f"  guard: {t.guard} would refuse --yes"
          + (f" (the demo's tiny tables; {t.override} lets it through)" if t.override else
             f": {t.message}") for t in dry.guards),
        f"plan: {plan.resolve()}"]
    lines += [
        f"  preview:  {ctx.command('repair', 'apply', plan)}",
        f"  apply:    {ctx.command('repair', 'apply', plan, '--yes', *force)}",
        f"  history:  {ctx.command('repair', 'history', '--db', db)}"]
    return [] if quiet else lines


def demo_context(args: argparse.Namespace, settings: Settings, data: Path) -> CommandContext:
    """The printed commands' context: the config the demo ran with, and its data directory
    when ``--data-dir`` moved it away from the one a pasted command would find."""
    env = ({} if data.resolve() == Path(settings.data_dir).resolve()
           else {"RECON_DATA_DIR": str(data.resolve())})
    return context_of(args, **env)


def demo_settings(settings: Settings, data: Path, tenant: Path, base_url: str,
                  apply: bool) -> Settings:
    """The demo's settings: the sandbox as Zuora, the tenant's own DuckDB as the local
    database, ``data`` as the data directory, and ``repair.auto`` only with ``--apply``."""
    from core.config import Secret
    from core.localdb.connect import duckdb_url

    return replace(settings, zuora_client_secret=Secret(SECRET), zuora_base_url=base_url,
                   local_database_url=duckdb_url((tenant / "local.duckdb").resolve()),
                   data_dir=data, repair_auto=apply, jobs_retries=0,
                   alerts_webhook_url=Secret(None))


def cmd_demo(args: argparse.Namespace) -> int:
    """Generate or reuse the tenant, serve it, run the ``full`` sequence, print a summary."""
    require_sandbox("recon demo")
    from jobs.pipeline import run_job
    from jobs.steps import run_steps
    from sandbox.generate.run import Options, generate
    from sandbox.server import SandboxServer

    t_start = time.perf_counter()
    settings = _settings(args)
    data = Path(args.data_dir or settings.data_dir)
    tenant = DataLayout(data).demo
    progress = _progress(args)
    opts = Options(accounts=args.accounts, seed=args.seed, drift=args.drift, d26=args.d26,
                   as_of=args.as_of, tz=settings.tenant_tz)
    if not args.fresh and _demo_tenant_matches(tenant, opts):
        if not args.quiet:
            print(f"reusing the demo tenant in {tenant} (same options; --fresh regenerates it)")
    else:
        if progress:
            progress(f"generate {opts.accounts:,} accounts")
        summary = generate(opts, tenant, progress=progress)
        if not args.quiet:
            print_summary(summary, tenant, None)
    creds = EventCreds.new()
    with _listener() as sock, SandboxServer(
            tenant, client_id=settings.zuora_client_id, client_secret=SECRET,
            callout_url=f"http://127.0.0.1:{_port(sock)}",
            callout_auth=(creds.user, creds.password), callout_secret=creds.hmac_secret,
            callout_signature_header=settings.callouts_hmac_header,
            callout_retry_interval=EVENT_RETRY_S) as srv:
        srv.store.preload()
        run_settings = demo_settings(settings, data, tenant, srv.url, args.apply)
        show = _Show(args, tenant, srv.url, progress, ctx=demo_context(args, settings, data))
        result = run_job("full", run_settings, trigger="demo", progress=progress,
                         stop=threading.Event(),
                         steps=functools.partial(run_steps, force_apply=True, after=show))
        if result.status == "failed":
            if "extract" in show.done and "reconcile" not in show.done:
                # the run stops, but its report still says why (PARTIAL — NOT RECONCILED)
                _partial_report(data, show.run.manifest.run_id, run_settings)
            assert result.error is not None
            raise result.error
        run = show.run
        if run.counts.get("repair") == "refused":
            print(f"recon: the demo's repair was refused: {run.counts.get('repair_refusal')}",
                  file=sys.stderr)
            return EXIT_ERROR
        if not args.quiet:
            s, rec, paths = run.result.summary["by_status"], run.result, run.report
            print(f"\nrun {result.run_id}: {paths.label} — {s.get('new', 0):,} new, "
                  f"{s.get('persisting', 0):,} persisting, {s.get('resolved', 0):,} resolved "
                  f"since {rec.previous_run or 'no previous run'}, {s.get('pending', 0):,} "
                  "pending")
            print(f"report: {paths.html}  ({paths.html_bytes / 1e6:.1f} MB, {paths.seconds:.1f}s)")
            print(f"json:   {paths.json}")
        port = _port(sock)  # uvicorn closes the socket when it stops
        t_events = time.perf_counter()
        synced = run_event_path(run_settings, srv, tenant, data, sock, creds, progress)
        if not args.quiet:
            print_event_path(synced, data, port, time.perf_counter() - t_events)
    if not args.quiet:
        print(f"demo finished in {time.perf_counter() - t_start:.1f}s")
    return EXIT_OK


def _partial_report(data: Path, run_id: str, settings: Settings) -> None:
    from reports import build_report

    try:
        paths = build_report(data, run_id, settings=settings)
        print(f"{paths.label}: {paths.html}", file=sys.stderr)
    except ReconError as report_error:
        print(f"recon: no report either: {report_error}", file=sys.stderr)


# -- the event path (issue 15) ----------------------------------------------------------------
EVENTS_DIR = "demo-events"  # under the data directory: the syncs' copy of the local database
EVENTS_FILE = "events.json"  # what the event path changed and synced (read by its test)
EVENT_DEBOUNCE_S = 0.5  # every object's debounce (the catalog's default is five minutes)
EVENT_WORKERS = 4  # the four changes sync at once
EVENT_RETRY_S = 0.5  # the sandbox's retry interval, should a callout fail
EVENT_TIMEOUT_S = 60.0  # how long the demo waits for the callouts' syncs


@dataclass(frozen=True)
class EventCreds:
    """The receiver's Basic credentials and HMAC secret, random per run: the demo configures
    both sides itself, and authentication is mandatory for a receiver."""

    user: str
    password: str
    hmac_secret: str

    @classmethod
    def new(cls) -> EventCreds:
        return cls("zuora-demo", secrets.token_urlsafe(16), secrets.token_hex(16))


@dataclass(frozen=True)
class DemoChange:
    """One record the event path changes in the sandbox, the key its callout names, and the
    local row and column where the sync puts the new value."""

    what: str  # e.g. "contact e-mail"
    object: str  # the sync object (contact | account | subscription | catalog)
    key: str
    table: str
    column: str
    id_column: str
    id: str
    value: str


@dataclass(frozen=True)
class DemoSync:
    """A change as the event path delivered it: the sync that made the local copy equal."""

    change: DemoChange
    received_at: dt.datetime  # the first callout naming the key, as the inbox stored it
    finished_at: dt.datetime  # the end of the sync that processed it
    sync_id: str
    status: str  # ok | left (findings for a person remain on the key's subtree)
    local_value: Any  # the local column read back after the sync

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.received_at).total_seconds()


@contextlib.contextmanager
def _listener() -> Iterator[socket.socket]:
    """The receiver's socket, bound before the sandbox starts (which needs its URL): no race
    for a free port. It listens once the receiver starts, after the batch part."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        yield sock
    finally:
        sock.close()


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def event_settings(settings: Settings, events: Path, port: int, creds: EventCreds) -> Settings:
    """The event path's settings: the copy in ``events`` as the local side (its inbox beside
    it), the default event paths (those the sandbox posts to), short debounces, no alerts."""
    from core.config import Secret
    from core.localdb.connect import duckdb_url

    return replace(settings, data_dir=events,
                   local_database_url=duckdb_url((events / "local.duckdb").resolve()),
                   callouts_host="127.0.0.1", callouts_port=port, callouts_user=creds.user,
                   callouts_password=Secret(creds.password),
                   callouts_hmac_secret=Secret(creds.hmac_secret), callouts_events="",
                   callouts_workers=EVENT_WORKERS,
                   callouts_debounce_contact_s=EVENT_DEBOUNCE_S,
                   callouts_debounce_account_s=EVENT_DEBOUNCE_S,
                   callouts_debounce_subscription_s=EVENT_DEBOUNCE_S,
                   callouts_debounce_catalog_s=EVENT_DEBOUNCE_S,
                   alerts_webhook_url=Secret(None))


class _EventReceiver:
    """``recon callouts serve`` in this process: the same receiver app and workers, uvicorn on
    a thread (the demo's own process must not take signals away from the CLI)."""

    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        import uvicorn

        from callouts.alerts import Alerts
        from callouts.app import InboxPool, Receiver, create_app
        from callouts.metrics import Metrics
        from callouts.worker import WorkerPool, default_sync
        from core.inbox import event_kinds, open_inbox

        self.pool = InboxPool(lambda: open_inbox(settings), 1)
        self.workers = WorkerPool(settings, default_sync(settings), settings.callouts_workers)
        receiver = Receiver(settings, event_kinds(settings), self.pool, Metrics(),
                            Alerts(settings), on_stored=self.workers.notify)
        self.server = uvicorn.Server(uvicorn.Config(
            create_app(receiver), log_config=None, log_level="warning", access_log=False,
            lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]},
                                       name="recon-demo-callouts", daemon=True)
        self.workers.start()
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ReconError("the demo's callout receiver did not start (see the log "
                                 "above)")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop accepting, then let the syncs in flight finish."""
        self.server.should_exit = True
        self.thread.join(30)
        self.workers.stop(120)
        self.pool.close()


def demo_changes(srv: Any, tenant: Path, stamp: str) -> list[DemoChange]:
    """Change a few records in the sandbox through its store (each sends its callout): a
    contact's e-mail, an account's name, a subscription's custom field (outside an order), and
    a new catalog product. The records picked carry no labelled drift, so each sync's output
    is the change the demo made (the catalog's sync also repairs the catalog's drift)."""
    import polars as pl

    from core.inbox import WHOLE_CATALOG

    labels = pl.read_parquet(tenant / "labels.parquet")
    drifted = pl.lit(sorted({str(k) for k in labels["key"].drop_nulls().to_list()}),
                     dtype=pl.List(pl.String))
    st = srv.store

    def clean(df: pl.DataFrame, *cols: str) -> pl.DataFrame:
        out = df.with_columns([pl.col(c).cast(pl.String) for c in ("Id", *cols)])
        for c in ("Id", *cols):
            out = out.filter(pl.col(c).is_null() | ~pl.col(c).is_in(drifted))
        return out

    accounts = clean(st.live("Account"), "BillToId", "SoldToId")
    sold_to = pl.lit(accounts["SoldToId"].drop_nulls().to_list(), dtype=pl.List(pl.String))
    contact = clean(st.live("Contact"), "AccountId").filter(
        ~pl.col("Id").is_in(sold_to)).sort("Id").row(0, named=True)
    account = accounts.filter(pl.col("Id") != contact["AccountId"]).sort("Id").row(
        0, named=True)
    sub = clean(st.live("Subscription"), "AccountId").filter(
        pl.col("IsLatestVersion")).sort("Name").row(0, named=True)
    product = st.live("Product").row(0, named=True)
    changes = [
        DemoChange("contact e-mail", "contact", contact["Id"], "billing_account_contacts",
                   "work_email", "zuora_contact_id", contact["Id"],
                   f"demo.{stamp}@example.com"),
        DemoChange("account name", "account", account["Id"], "billing_accounts",
                   "zuora_account_name", "zuora_account_id", account["Id"],
                   f"Renamed in Zuora {stamp}"),
        DemoChange("subscription custom field", "subscription", sub["Name"],
                   "zuora_local_subscriptions", "git_lab_namespace_name__c", "zuora_id",
                   sub["Id"], f"demo-namespace-{stamp}"),
    ]
    st.update("Contact", contact["Id"], WorkEmail=changes[0].value)
    st.update("Account", account["Id"], Name=changes[1].value)
    st.update("Subscription", sub["Id"], GitLabNamespaceName__c=changes[2].value)
    name = f"Demo Add-on {stamp}"
    new_id = st.insert("Product", {
        "Name": name, "SKU": f"SKU-DEMO-{stamp}", "ProductNumber": f"PC-DEMO-{stamp}",
        "Category": product["Category"], "Description": "Added in Zuora by recon demo.",
        "EffectiveStartDate": product["EffectiveStartDate"],
        "EffectiveEndDate": product["EffectiveEndDate"], "Tier__c": product["Tier__c"],
        "DeploymentType__c": product["DeploymentType__c"],
        "CreatedById": product["CreatedById"], "UpdatedById": product["UpdatedById"]})
    changes.append(DemoChange("new catalog product", "catalog", WHOLE_CATALOG,
                              "zuora_local_products", "name", "zuora_id", new_id, name))
    return changes


def _wait_synced(settings: Settings, changes: list[DemoChange],
                 timeout: float) -> dict[tuple[str, str], tuple[dt.datetime, Any]]:
    """Per (object, key): when its first callout was received and the sync log entry of the
    sync that processed its last one, once every callout naming the key is processed."""
    from core.inbox import open_inbox

    want = {(c.object, c.key) for c in changes}
    deadline = time.monotonic() + timeout
    with open_inbox(settings) as inbox:
        while True:
            events = inbox.events()
            log = {e.sync_id: e for e in inbox.sync_log(500)}
            done: dict[tuple[str, str], tuple[dt.datetime, Any]] = {}
            for obj_key in want:
                mine = [e for e in events if obj_key in e.keys]
                if mine and all(e.status != "pending" and e.sync_id in log for e in mine):
                    last = max(mine, key=lambda e: e.received_at)
                    done[obj_key] = (min(e.received_at for e in mine), log[last.sync_id])
            if len(done) == len(want):
                return done
            if time.monotonic() > deadline:
                missing = ", ".join(f"{o} {k}" for o, k in sorted(want - set(done)))
                raise ReconError(f"the demo's event path: no sync of {missing} within "
                                 f"{timeout:.0f}s of the changes (see `recon callouts status` "
                                 f"with data_dir {settings.data_dir})")
            time.sleep(0.05)


def run_event_path(settings: Settings, srv: Any, tenant: Path, data: Path,
                   sock: socket.socket, creds: EventCreds,
                   progress: Progress | None) -> list[DemoSync]:
    """Start the receiver and its workers, change a few records in the sandbox, wait until
    their callouts are synced into the event path's copy of the local database, and read the
    new values back (``DATA/demo-events/events.json`` records it)."""
    from core.localdb.connect import connect

    events = data / EVENTS_DIR
    shutil.rmtree(events, ignore_errors=True)
    events.mkdir(parents=True)
    db = Path(settings.local_database_url.removeprefix("duckdb:///"))
    for suffix in ("", ".wal"):  # a WAL not checkpointed yet belongs to the copy
        if Path(f"{db}{suffix}").is_file():
            shutil.copyfile(f"{db}{suffix}", events / f"local.duckdb{suffix}")
    es = event_settings(settings, events, _port(sock), creds)
    if progress:
        progress("event path: the callout receiver and its workers")
    receiver = _EventReceiver(es, sock)
    try:
        changes = demo_changes(srv, tenant, dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S"))
        if progress:
            progress(f"event path: {len(changes)} changes in the sandbox, waiting for their "
                     "syncs")
        done = _wait_synced(es, changes, EVENT_TIMEOUT_S)
    finally:
        receiver.stop()
    synced = []
    with connect(es.local_database_url) as local:
        for c in changes:
            received, entry = done[(c.object, c.key)]
            got = local.query(f"SELECT {c.column} AS v FROM {c.table} WHERE {c.id_column} = ?",
                              [c.id])["v"].to_list()
            synced.append(DemoSync(c, received, entry.finished_at, entry.sync_id, entry.status,
                                   got[0] if got else None))
    (events / EVENTS_FILE).write_text(json.dumps([{
        **asdict(s.change), "sync_id": s.sync_id, "status": s.status, "seconds": s.seconds,
        "local_value": s.local_value} for s in synced], indent=2, default=str) + "\n")
    bad = [s for s in synced if s.status not in ("ok", "left") or s.local_value != s.change.value]
    if bad:
        raise ReconError("the demo's event path did not sync " + "; ".join(
            f"{s.change.what} ({s.change.object} {s.change.key}: sync {s.sync_id} "
            f"{s.status}, local {s.change.column} = {s.local_value!r})" for s in bad))
    return synced


def print_event_path(synced: list[DemoSync], data: Path, port: int, seconds: float) -> None:
    print(f"\nevent path: the sandbox sent Zuora's callouts to the receiver on "
          f"http://127.0.0.1:{port} ({EVENT_WORKERS} workers in this process, debounce "
          f"{EVENT_DEBOUNCE_S:g}s); targeted syncs into {data / EVENTS_DIR / 'local.duckdb'} "
          f"({seconds:.1f}s in all)")
    rows = [[s.change.what, f"{s.change.object} {s.change.key}",
             f"{s.change.column} = {s.local_value!r}",
             f"{s.seconds:.2f}s", f"{s.sync_id} ({s.status})"] for s in synced]
    header = ["CHANGED IN ZUORA", "KEY SYNCED", "LOCAL NOW", "CALLOUT → SYNCED", "SYNC"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    if any(s.status == "left" for s in synced):
        print("  (left: synced; findings for a person remain on that key's subtree, the demo "
              "tenant's labelled drift)")


def add_parser(sub: Any) -> None:
    from jobs.cli.sandbox import add_unavailable, sandbox_installed

    if not sandbox_installed():
        add_unavailable(sub, "demo", "run the main job on the embedded defaults")
        return
    demo = sub.add_parser("demo", help="run the main job on the embedded defaults")
    generate_args(demo, accounts=2_000, drift=0.02)
    demo.add_argument("--data-dir", type=PathArg(OUT_DIR),
                      help="where to write (default: config data_dir)")
    demo.add_argument("--fresh", action="store_true",
                      help="regenerate the demo tenant even if one with these options exists")
    demo.add_argument("--apply", action="store_true",
                      help="apply the repair plan to the demo's own local DuckDB copy (never "
                      "anything else); the next demo then shows those findings resolved")
    demo.set_defaults(func=cmd_demo)

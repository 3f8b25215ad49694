"""Helpers of the end-to-end callout tests (real processes, real HTTP, real PostgreSQL): a small
generated tenant loaded into a PostgreSQL schema of its own, the sandbox sending callouts to
``recon callouts serve`` (and ``recon callouts work``) started as the CLI starts them, and the
test's ground truth: a key's local rows against the catalogue's projection of Zuora's.

The projection is :func:`core.catalog.project.to_local` (what a correct sync writes, references
resolved to local surrogate ids), compared column by column for every stored field after the
oracle's canonicalisation (``tests.support.oracle.canonical``), so that "consistent" means every
column the catalogue stores, not a few picked by hand."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import requests

from core.catalog import get
from core.catalog.model import ObjectSpec
from core.catalog.project import to_local
from core.localdb.connect import connect
from sandbox.generate.run import Options, generate
from sandbox.server import SandboxServer
from tests.callouts.conftest import PASSWORD, REPO, SECRET, USER
from tests.conftest import free_port
from tests.support.oracle import canonical
from tests.support.pg import load_local_side
from tests.support.pg import pg_schema as schema_of
from tests.support.pipeline import SECRET as ZUORA_SECRET

CATALOG = ("Product", "ProductRatePlan", "ProductRatePlanCharge", "ProductRatePlanChargeTier")
SUBSCRIPTION_TREE = ("Subscription", "RatePlan", "RatePlanCharge", "RatePlanChargeTier")


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy (returned), failing after ``timeout``
    seconds with ``what`` and the last value it returned."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not after {timeout}s (last: {got!r})"
        time.sleep(interval)


def generate_tenant(out: Path, accounts: int, seed: int = 15) -> Path:
    """A drift-free generated tenant (Zuora side and its local copy)."""
    generate(Options(accounts=accounts, seed=seed, drift=0.0, d26=0.0), out)
    return out


@contextlib.contextmanager
def pg_schema(pg_dsn: str, tenant: Path | None = None) -> Iterator[str]:
    """A PostgreSQL schema of its own (a URL whose search_path is it), loaded with the
    tenant's local side when given; dropped afterwards."""
    with schema_of(pg_dsn, "e") as url:
        if tenant is not None:
            load_local_side(tenant, url)
        yield url


def callout_sandbox(tenant: Path, port: int, **options: Any) -> SandboxServer:
    """The sandbox serving ``tenant``, sending every mutation's callouts to the receiver on
    ``port`` (non-preemptive Basic + HMAC, as Zuora does); ``options``: ``callout_*``."""
    options.setdefault("callout_retry_interval", 0.2)
    return SandboxServer(tenant, client_secret=ZUORA_SECRET,
                         callout_url=f"http://127.0.0.1:{port}", callout_auth=(USER, PASSWORD),
                         callout_secret=SECRET, **options)


def serve_env(data: Path, url: str, srv: SandboxServer, **extra: str) -> dict[str, str]:
    """``RECON_*`` settings of a receiver or worker process: the local side at ``url``, Zuora
    at the sandbox, the callout credentials, debounce 0.3 s (``extra`` overrides)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env.update({"PYTHONPATH": str(REPO), "RECON_DATA_DIR": str(data),
                "RECON_LOCAL_DATABASE_URL": url, "RECON_ZUORA_BASE_URL": srv.url,
                "RECON_ZUORA_CLIENT_SECRET": ZUORA_SECRET, "RECON_ZUORA_TENANT_TZ": srv.tenant_tz,
                "RECON_CALLOUTS_USER": USER, "RECON_CALLOUTS_PASSWORD": PASSWORD,
                "RECON_CALLOUTS_HMAC_SECRET": SECRET, "RECON_CALLOUTS_RETRY_BACKOFF_S": "0.5",
                **{f"RECON_CALLOUTS_DEBOUNCE_{o}_S": "0.3"
                   for o in ("CONTACT", "ACCOUNT", "SUBSCRIPTION", "CATALOG")}})
    env.update(extra)
    return env


@contextlib.contextmanager
def recon_process(args: list[str], env: dict[str, str], cwd: Path,
                  health: str | None = None) -> Iterator[subprocess.Popen]:
    """``recon ARGS`` (``python -m jobs.cli``) as a process of its own, its output in a file
    in ``cwd`` (a pipe nobody reads would block it once full); with ``health`` (a URL),
    returned once it answers 200 there. Killed (-9) afterwards if still running."""
    cwd.mkdir(parents=True, exist_ok=True)
    log = cwd / f"recon-{'-'.join(args[:2])}-{secrets.token_hex(3)}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "jobs.cli", *args], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT)

    def up() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return requests.get(health, timeout=1).status_code == 200  # type: ignore[arg-type]
        except requests.ConnectionError:
            return False

    try:
        if health:
            wait_for(up, 30, f"recon {' '.join(args)} answering {health}", 0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def serve(env: dict[str, str], cwd: Path, port: int, *extra: str
          ) -> contextlib.AbstractContextManager[subprocess.Popen]:
    """``recon callouts serve`` on ``port`` (metrics on a port of their own)."""
    return recon_process(["callouts", "serve", "--port", str(port), "--metrics-port",
                          str(free_port()), *extra], env, cwd,
                         health=f"http://127.0.0.1:{port}/healthz")


def terminate(proc: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM (drains the syncs in flight) and the exit status."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


# -- ground truth: a key's local rows against the projection of Zuora's -----------------------
def _local(url: str, spec: ObjectSpec, column: str, values: list[Any]) -> pl.DataFrame:
    with connect(url) as db:
        return db.query(f"SELECT * FROM {spec.table} WHERE {column} = ANY(%s)", [values])


def _zuora(srv: SandboxServer, obj: str, field: str, values: list[Any]) -> pl.DataFrame:
    return srv.store.typed(obj).filter(pl.col(field).is_in(values))


def key_rows(srv: SandboxServer, url: str, obj: str, key: str
             ) -> dict[str, tuple[pl.DataFrame, pl.DataFrame]]:
    """Per catalogue object: (Zuora's typed rows, the local rows) of one sync key's subtree
    — each side walked along its own parent links, so a local row Zuora lacks shows too."""
    out: dict[str, tuple[pl.DataFrame, pl.DataFrame]] = {}
    if obj == "contact":
        out["Contact"] = (_zuora(srv, "Contact", "Id", [key]),
                          _local(url, get("Contact"), "zuora_contact_id", [key]))
    elif obj == "account":
        acct = _zuora(srv, "Account", "Id", [key])
        out["Account"] = (acct, _local(url, get("Account"), get("Account").key_column, [key]))
        ids = [i for c in ("BillToId", "SoldToId") for i in acct[c].to_list() if i]
        out["Contact"] = (_zuora(srv, "Contact", "Id", ids),
                          _local(url, get("Contact"), "zuora_contact_id", ids))
    elif obj in ("subscription", "catalog"):
        names = SUBSCRIPTION_TREE if obj == "subscription" else CATALOG
        z_ids: list[Any] = [key]
        l_ids: list[Any] = [key]
        for i, name in enumerate(names):
            spec = get(name)
            if i == 0 and obj == "subscription":
                z = _zuora(srv, name, "Name", [key])
                lo = _local(url, spec, spec.field("Name").column, [key])
            elif i == 0:
                z, lo = srv.store.typed(name), _local_all(url, spec)
            else:
                parent = spec.parent[0]  # type: ignore[index]
                z = _zuora(srv, name, parent, z_ids)
                lo = _local(url, spec, spec.field(parent).column, l_ids)
            out[name] = (z, lo)
            z_ids, l_ids = z["Id"].to_list(), lo[spec.key_column].to_list()
    else:
        raise ValueError(f"no subtree for sync object {obj!r}")
    return out


def _local_all(url: str, spec: ObjectSpec) -> pl.DataFrame:
    with connect(url) as db:
        return db.query(f"SELECT * FROM {spec.table}")


def out_of_step(srv: SandboxServer, url: str, obj: str, key: str) -> list[str]:
    """What differs between the local rows of ``obj`` ``key``'s subtree and the projection of
    Zuora's (every stored column; empty when consistent)."""
    with connect(url) as db:
        contacts = db.query("SELECT * FROM billing_account_contacts")
    problems: list[str] = []
    for name, (zrows, lrows) in key_rows(srv, url, obj, key).items():
        spec = get(name)
        if name == "Contact":  # the local copy holds Bill-To/Sold-To contacts only
            acct = srv.store.typed("Account")
            in_scope = set(acct["BillToId"].to_list()) | set(acct["SoldToId"].to_list())
            zrows = zrows.filter(pl.col("Id").is_in(list(in_scope)))
        projected = to_local(spec, zrows, refs={"billing_account_contacts": contacts})
        key_col = spec.key_column
        z_keys, l_keys = set(projected[key_col].to_list()), set(lrows[key_col].to_list())
        if z_keys != l_keys:
            problems.append(f"{name}: Zuora {sorted(z_keys - l_keys)} missing locally, local "
                            f"{sorted(l_keys - z_keys)} not in Zuora")
        both = sorted(z_keys & l_keys)
        zp = projected.filter(pl.col(key_col).is_in(both)).sort(key_col)
        lp = lrows.filter(pl.col(key_col).is_in(both)).sort(key_col)
        for f in spec.stored_fields:
            zc, lc = canonical(f, zp[f.column]), canonical(f, lp[f.column])
            for k, zv, lv in zip(zp[key_col].to_list(), zc.to_list(), lc.to_list(),
                                 strict=True):
                if zv != lv:
                    problems.append(f"{name} {k} {f.column}: Zuora {zv!r}, local {lv!r}")
    return problems

"""Orchestrates a generated tenant: catalog once, then accounts in chunks (bounded memory),
each chunk built clean, drifted by the scenarios, written out and dropped.

Determinism: every random stream is seeded from (seed, purpose, chunk number), so the same
seed and chunk size give the same dataset byte for byte. The chunk size is part of that
layout and is recorded in tenant.json.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from core import dataset
from core.catalog import get
from core.config import redact_url
from core.errors import DatasetError, LocalDatabaseError
from core.localdb import schema
from core.localdb.connect import LocalDB, connect, duckdb_url
from core.localdb.dialect import duckdb_path
from core.values import render_frame
from sandbox.generate import drift
from sandbox.generate.catalog import build_catalog
from sandbox.generate.drift.base import World
from sandbox.generate.ids import IdFactory
from sandbox.generate.local import (
    CATALOG_OBJECTS,
    COPY_OBJECTS,
    LocalCounters,
    build_accounts_local,
    build_orders,
    build_people,
    project_copy,
)
from sandbox.generate.tenant import (
    Counters,
    build_accounts,
    build_subscriptions,
    finalize_account_status,
)

DEFAULT_AS_OF = dt.date(2026, 11, 1)
DEFAULT_CHUNK = 20_000
LOCAL_ORDER = (
    "zuora_local_products", "zuora_local_product_rate_plans",
    "zuora_local_product_rate_plan_charges", "zuora_local_product_rate_plan_charge_tiers",
    "billing_account_contacts", "billing_accounts", "customers", "billing_account_memberships",
    "zuora_local_subscriptions", "zuora_local_rate_plans", "zuora_local_rate_plan_charges",
    "zuora_local_rate_plan_charge_tiers", "orders",
)


@dataclass
class Options:
    accounts: int
    seed: int = 1
    drift: float = 0.0
    d26: float = 0.02
    as_of: dt.date = DEFAULT_AS_OF
    tz: str = "America/Los_Angeles"
    chunk: int = DEFAULT_CHUNK
    scenarios: tuple[str, ...] | None = None  # None = all
    fmt: str = "jsonl"  # or "parquet"


@dataclass
class Summary:
    counts: dict[str, int] = field(default_factory=dict)  # Zuora objects
    local_counts: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def _rng(seed: int, *purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, *purpose])


def build_catalog_frames(seed: int) -> dict[str, pl.DataFrame]:
    rng = _rng(seed, 0)
    return build_catalog(IdFactory(rng), rng)


def build_world(opts: Options, chunk_no: int, n_accounts: int, catalog: dict[str, pl.DataFrame],
                counters: Counters, lcounters: LocalCounters) -> World:
    """One clean chunk (catalog included so rules and joins see it; written only once)."""
    rng = _rng(opts.seed, 1, chunk_no)
    ids = IdFactory(rng)
    accounts, contacts, acct = build_accounts(n_accounts, ids, rng, counters, opts.as_of, opts.tz)
    z = build_subscriptions(acct, catalog["_plans"], ids, rng, counters, opts.as_of, opts.tz)
    accounts = finalize_account_status(accounts, z["Subscription"], rng)
    zuora = {k: v for k, v in catalog.items() if not k.startswith("_")}
    zuora.update({k: v for k, v in z.items() if not k.startswith("_")})
    zuora["Account"], zuora["Contact"] = accounts, contacts
    local = build_accounts_local(accounts, contacts, lcounters, rng)
    local.update(build_people(accounts, contacts, local["billing_accounts"], lcounters, rng))
    names = COPY_OBJECTS + (CATALOG_OBJECTS if chunk_no == 0 else ())
    local.update(project_copy(zuora, names, rng))
    local["orders"] = build_orders(z["_order_facts"], local, lcounters, rng, opts.as_of)
    drift_rng = _rng(opts.seed, 2, chunk_no)
    return World(zuora=zuora, local=local, rng=drift_rng, ids=IdFactory(drift_rng),
                 counters=lcounters, tz=opts.tz, as_of=opts.as_of, has_catalog=chunk_no == 0,
                 order_facts=z["_order_facts"])


# what a generated tenant directory holds: a directory with only these may be replaced
TENANT_ENTRIES = frozenset({dataset.ZUORA_DIR, dataset.TENANT_FILE, dataset.LABELS_FILE,
                            dataset.LOCAL_DB_FILE, f"{dataset.LOCAL_DB_FILE}.wal",
                            f"{dataset.LOCAL_DB_FILE}.repair.lock"})


def _check_out(out: Path) -> None:
    """``out`` may be absent, empty or a generated tenant (replaced whole); anything else is
    refused, so ``--out ~`` can never delete a home directory."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"--out {out} is a file; give a directory for the tenant")
    if out.is_dir():
        other = sorted(p.name for p in out.iterdir() if p.name not in TENANT_ENTRIES)
        if other:
            raise DatasetError(
                f"--out {out} is not empty and not a generated tenant (it holds "
                f"{', '.join(other[:5])}{' …' if len(other) > 5 else ''}); give a new or empty "
                "directory, or remove it first")


def _local_rows(db: LocalDB) -> dict[str, bool]:
    """For each local table that exists in the target: whether it holds rows."""
    found = db.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = "
        "current_schema()")
    present = set(found["table_name"].to_list()) if found.height else set()
    out = {}
    for t in schema.all_tables():
        if t in present:
            out[t] = db.query(f"SELECT EXISTS (SELECT 1 FROM {t}) AS x")["x"][0]
    return out


def _prepare_target(db: LocalDB, url: str, replace: bool) -> None:
    """Refuse a target database whose local tables hold rows (the generator would append a
    second tenant to the first), unless ``replace``: then drop them, children first."""
    held = _local_rows(db)
    full = [t for t, has_rows in held.items() if has_rows]
    if full and not replace:
        raise LocalDatabaseError(
            f"--db {redact_url(url)} already holds data ({', '.join(full[:4])}"
            f"{' …' if len(full) > 4 else ''} have rows); give an empty database, or pass "
            "--replace to drop and recreate recon's local tables there")
    if replace:
        for t in reversed(schema.all_tables()):
            if t in held:
                db.execute(db.dialect.drop_table_sql(t))


def generate(opts: Options, out: Path, db_url: str | None = None,
             progress: Callable[[str], None] | None = None, *,
             replace: bool = False) -> Summary:
    """Write a dataset to ``out`` and its local side to ``db_url`` (default: out/local.duckdb).

    Nothing half-written is ever left at ``out``: the tenant is written into a sibling
    directory and renamed into place at the end (an earlier tenant there is replaced only
    then). ``db_url``'s local tables must be empty unless ``replace`` (see
    :func:`_prepare_target`)."""
    out = Path(out)
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.writing-", dir=out.parent))
    db_url = _inside(db_url, out, work)
    try:
        summary = _generate(opts, work, db_url, progress, replace)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            out.rename(old / "t")
            work.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return summary


def _inside(db_url: str | None, out: Path, work: Path) -> str | None:
    """A DuckDB ``--db`` inside ``--out`` is written inside the work directory, so it arrives
    with the tenant instead of being replaced by it."""
    if db_url is None or not db_url.startswith("duckdb:"):
        return db_url
    path = duckdb_path(db_url)
    if path == ":memory:":
        return db_url
    try:
        rel = Path(path).resolve().relative_to(out.resolve())
    except ValueError:
        return db_url
    return duckdb_url((work / rel).resolve())


def _generate(opts: Options, out: Path, db_url: str | None,
              progress: Callable[[str], None] | None, replace: bool) -> Summary:
    t0 = time.perf_counter()
    if db_url is None:
        db_url = duckdb_url((out / dataset.LOCAL_DB_FILE).resolve())
    with connect(db_url) as db:
        _prepare_target(db, db_url, replace)  # before any work: a refusal is immediate
        catalog = build_catalog_frames(opts.seed)
        counters, lcounters = Counters(), LocalCounters()
        summary = Summary()
        labels: list[pl.DataFrame] = []
        first = True
        db.init_schema()
        chunks = range(0, opts.accounts, opts.chunk)
        for chunk_no, start in enumerate(chunks):
            n = min(opts.chunk, opts.accounts - start)
            world = build_world(opts, chunk_no, n, catalog, counters, lcounters)
            drift.apply(world, opts.drift, opts.d26, opts.scenarios)
            labels.append(world.label_frame())
            for name, frame in world.zuora.items():
                if get(name).group == "catalog" and not first:
                    continue
                dataset.write_object(out, get(name), render_frame(get(name), frame, opts.tz),
                                     append=not first, fmt=opts.fmt)
                summary.counts[name] = summary.counts.get(name, 0) + frame.height
            with db.writing("load", "sandbox-generate"):  # recon loads the copy it manages
                for table in LOCAL_ORDER:
                    if table in world.local:
                        summary.local_counts[table] = summary.local_counts.get(table, 0) + \
                            db.load(table, world.local[table])
            first = False
            if progress:
                progress(f"chunk {chunk_no + 1}/{len(chunks)}: {start + n} accounts")
            del world
        db.reset_identities()
    label_frame = pl.concat(labels) if labels else pl.DataFrame()
    label_frame.write_parquet(out / dataset.LABELS_FILE)
    summary.labels = dict(label_frame.group_by("scenario").len().sort("scenario").iter_rows())
    summary.seconds = time.perf_counter() - t0
    dataset.write_tenant(out, {
        "generator": "recon sandbox generate", "accounts": opts.accounts, "seed": opts.seed,
        "drift": opts.drift, "d26": opts.d26, "as_of": opts.as_of.isoformat(),
        "tenant_tz": opts.tz, "chunk": opts.chunk, "format": opts.fmt, "counts": summary.counts,
        "local_counts": summary.local_counts, "labels": summary.labels,
    })
    return summary

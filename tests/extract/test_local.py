"""Local export: every local table from PostgreSQL (COPY … TO STDOUT, set-based) and from
DuckDB (Arrow record batches) equals the table, with the same Arrow types from both; and a whole
extract run puts the local tables into the snapshot next to the Zuora objects."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from core.localdb import schema
from core.localdb.connect import connect, duckdb_url
from core.snapshot import latest_complete
from extract.extractor import run_extract
from extract.local_export import export_local, table_schema
from sandbox.server import SandboxServer
from tests.support.extract import SECRET, base_dataset, fast_options, settings

TABLES = schema.all_tables()


def dataset_duckdb(tmp_path: Path) -> str:
    path = tmp_path / "local.duckdb"
    shutil.copy(base_dataset() / "local.duckdb", path)
    return duckdb_url(path.as_posix())


def tricky_rows(url: str) -> None:
    """Values that trip CSV round trips: NULL vs '', quotes, commas, newlines, non-ASCII."""
    with connect(url) as db:
        db.load("customers", pl.DataFrame({
            "id": [900001, 900002, 900003],
            "email": ["a@x.org", "b@x.org", "c@x.org"],
            "first_name": ["", None, 'Zoë "Z", \nO\'Neil'],
            "billable": [True, False, None],
            "confirmed_at": [dt.datetime(2026, 3, 8, 10, 0, 0, 123456), None,
                             dt.datetime(1999, 12, 31, 23, 59, 59)],
        }))


def table_rows(url: str, table: str) -> list[tuple]:
    with connect(url) as db:
        df = db.read_table(table)
    pk = table_schema(table).names[0]
    return [tuple(r) for r in df.sort(pk).rows()]


def parquet_rows(path: Path) -> list[tuple]:
    df = pl.read_parquet(path)
    return [tuple(r) for r in df.sort(df.columns[0]).rows()]


def assert_export_equals_tables(url: str, out: Path) -> dict:
    res = export_local(url, out)
    assert list(res) == TABLES
    for t in TABLES:
        path = out / f"{t}.parquet"
        assert pq.read_schema(path).remove_metadata().equals(table_schema(t)), t
        assert parquet_rows(path) == table_rows(url, t), t
        assert res[t].rows == pq.ParquetFile(path).metadata.num_rows
    return res


def test_duckdb_export_equals_tables(tmp_path: Path) -> None:
    url = dataset_duckdb(tmp_path)
    tricky_rows(url)
    res = assert_export_equals_tables(url, tmp_path / "out")
    assert res["zuora_local_rate_plan_charges"].rows > 1000
    c = pl.read_parquet(tmp_path / "out" / "customers.parquet").filter(pl.col("id") >= 900001)
    assert c["first_name"].to_list() == ["", None, 'Zoë "Z", \nO\'Neil']


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_export_equals_tables(pg_url: str, tmp_path: Path) -> None:
    src = dataset_duckdb(tmp_path)
    with connect(pg_url) as pg, connect(src) as dk:
        pg.init_schema()
        with pg.writing("load", "tests"):
            for t in TABLES:
                pg.load(t, dk.read_table(t))
    tricky_rows(pg_url)
    res = assert_export_equals_tables(pg_url, tmp_path / "pg")
    assert res["orders"].rows > 0
    # Same types and values as the DuckDB export of the same data.
    tricky_rows(src)
    export_local(src, tmp_path / "duck")
    for t in TABLES:
        a = pl.read_parquet(tmp_path / "pg" / f"{t}.parquet")
        b = pl.read_parquet(tmp_path / "duck" / f"{t}.parquet")
        assert a.schema == b.schema, t
        assert a.sort(a.columns[0]).equals(b.sort(b.columns[0])), t
    tiers = pl.read_parquet(tmp_path / "pg" / "zuora_local_rate_plan_charge_tiers.parquet")
    assert isinstance(tiers["price"][0], Decimal)


@pytest.mark.slow
@pytest.mark.postgres
def test_extract_run_includes_postgres_local_tables(pg_url: str, tmp_path: Path) -> None:
    with connect(pg_url) as pg, connect(dataset_duckdb(tmp_path)) as dk:
        pg.init_schema()
        with pg.writing("load", "tests"):
            for t in TABLES:
                pg.load(t, dk.read_table(t))
    with SandboxServer(base_dataset(), client_secret=SECRET, job_step_delay=0.01) as srv:
        m = run_extract(settings(srv.url, tmp_path / "data", pg_url), "full",
                        lag=dt.timedelta(0), options=fast_options(local=True))
    snap = latest_complete(tmp_path / "data")
    assert snap.run_id == m.run_id
    assert set(m.local) == set(TABLES)
    for t in TABLES:
        assert m.local[t]["rows"] == len(table_rows(pg_url, t))
        assert f"local/{t}.parquet" in m.files
    assert parquet_rows(snap.local_path("orders")) == table_rows(pg_url, "orders")
    snap.verify()


def test_local_export_failure_fails_the_run(tmp_path: Path) -> None:
    """A local table short of its columns (the others missing): the run fails naming the
    table's missing columns and the statements that add them, nothing published."""
    url = duckdb_url((tmp_path / "empty.duckdb").as_posix())
    with connect(url) as db:
        db.execute("CREATE TABLE zuora_local_products (zuora_id VARCHAR)")
    from extract.extractor import ExtractError

    with SandboxServer(base_dataset(), client_secret=SECRET, job_step_delay=0.01) as srv:
        srv.add_fault("aqua_submit", "slow_job", seconds=30)
        with pytest.raises(ExtractError, match=r"lacks 15 column\(s\).* zuora_local_products"
                                               r"\.name.*ALTER TABLE zuora_local_products ADD "
                                               r"COLUMN name VARCHAR\(100\)"):
            run_extract(settings(srv.url, tmp_path / "data", url), "full",
                        lag=dt.timedelta(0), options=fast_options(local=True))
        assert list(srv.aqua.jobs.values())[-1].cancelled, "the running AQuA job is cancelled"
    assert latest_complete(tmp_path / "data") is None

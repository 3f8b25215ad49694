"""The test suite's own isolation under pytest-xdist (``make test`` runs two workers): each
worker has its own PostgreSQL database, temporary directories and TCP port range."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import psycopg
import pytest
from conftest import free_port, port_range, worker_index

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.mark.postgres
def test_the_session_database_is_this_workers_own(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]
    assert name.startswith(f"recon_test_{WORKER}_")


def test_tmp_path_is_under_this_workers_base_directory(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.getbasetemp()
    assert tmp_path.is_relative_to(base)
    if WORKER != "main":
        assert base.name == f"popen-{WORKER}"


def test_free_ports_are_distinct_bindable_and_in_this_workers_range() -> None:
    ports = [free_port() for _ in range(5)]
    assert len(set(ports)) == 5
    assert all(p in port_range() for p in ports)
    other = 1 - worker_index() % 2  # the other worker of `make test -n 2`
    assert not set(port_range()) & set(range(20000 + 1000 * other, 21000 + 1000 * other))
    assert max(ports) < 32768  # below the kernel's ephemeral range
    with socket.socket() as s:
        s.bind(("127.0.0.1", ports[-1]))


def test_worker_index_follows_the_xdist_worker_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert worker_index() == 1
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert worker_index() == 0

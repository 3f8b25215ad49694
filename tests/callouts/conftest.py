"""Fixtures of the callout service's tests: a real receiver process on loopback (uvicorn),
started with ``RECON_*`` settings and a recording sync (``fake_sync_server``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD, SECRET = "zuora", "s3cret-pw", "hmac-key"


def auth_header(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Receiver:
    """One receiver process and how to talk to it."""

    proc: subprocess.Popen
    base: str
    metrics: str
    data_dir: Path
    sync_log: Path
    env: dict[str, str]
    session: requests.Session = field(default_factory=requests.Session)

    def post(self, path: str, payload: object, *, nid: str | None = None,
             auth: str | None = None, secret: str | None = SECRET,
             raw: bytes | None = None, headers: dict[str, str] | None = None,
             timeout: float = 10) -> requests.Response:
        body = raw if raw is not None else json.dumps(payload).encode()
        h = {"Content-Type": "application/json", "Zuora-Request-Id": uuid.uuid4().hex}
        if nid is not None:
            h["Zuora-Notification-Id"] = nid
        if auth is not None:
            h["Authorization"] = auth
        if secret is not None:
            h["X-Zuora-Signature"] = sign(body, secret)
        h.update(headers or {})
        return self.session.post(self.base + path, data=body, headers=h, timeout=timeout)

    def syncs(self) -> list[dict]:
        if not self.sync_log.exists():
            return []
        return [json.loads(line) for line in self.sync_log.read_text().splitlines()
                if line.strip()]


def receiver_env(data_dir: Path, db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    env.update({
        "PYTHONPATH": str(REPO),
        "RECON_DATA_DIR": str(data_dir),
        "RECON_LOCAL_DATABASE_URL": db_url,
        "RECON_CALLOUTS_USER": USER,
        "RECON_CALLOUTS_PASSWORD": PASSWORD,
        "RECON_CALLOUTS_HMAC_SECRET": SECRET,
        "RECON_CALLOUTS_MAX_BODY_BYTES": "2048",
        "RECON_CALLOUTS_DEBOUNCE_ACCOUNT_S": "0.3",
        "RECON_CALLOUTS_DEBOUNCE_CONTACT_S": "0.3",
        "RECON_CALLOUTS_DEBOUNCE_SUBSCRIPTION_S": "0.3",
        "RECON_CALLOUTS_DEBOUNCE_CATALOG_S": "0.3",
        "FAKE_SYNC_LOG": str(data_dir / "syncs.jsonl"),
    })
    env.update(extra)
    return env


def start_receiver(data_dir: Path, env: dict[str, str], workers: int = 1,
                   port: int | None = None, metrics_port: int | None = None,
                   timeout: float = 20) -> Receiver:
    port = port or free_port()
    metrics_port = metrics_port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.callouts.fake_sync_server", str(port),
         str(metrics_port), str(workers)],
        cwd=data_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    r = Receiver(proc, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}",
                 data_dir, Path(env["FAKE_SYNC_LOG"]), env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"receiver exited with {proc.returncode}: {out}")
        try:
            if requests.get(r.base + "/healthz", timeout=1).status_code == 200:
                return r
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("receiver did not answer /healthz in time")


def stop(r: Receiver) -> None:
    if r.proc.poll() is None:
        r.proc.kill()
        r.proc.wait(10)
    r.session.close()


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """One receiver per module (SQLite inbox beside a DuckDB local side, one worker)."""
    data = tmp_path_factory.mktemp("callouts")
    r = start_receiver(data, receiver_env(data, f"duckdb:///{data / 'local.duckdb'}"))
    try:
        yield r
    finally:
        stop(r)


def start_workers(data_dir: Path, env: dict[str, str], workers: int = 1) -> subprocess.Popen:
    """``callouts.service.work`` in a process of its own (PostgreSQL inbox), recording syncs."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.callouts.fake_sync_server", "work", str(free_port()),
         str(workers)], cwd=data_dir, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)

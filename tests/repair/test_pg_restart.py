"""PostgreSQL restarted in the middle of ``recon repair apply``, on a private server this test
starts (initdb + pg_ctl on a free port in a temp directory; never the shared server).

Deterministic without production knobs: the test holds a row lock on the row of the plan's
second batch, so that batch blocks inside its transaction (the first is committed); then the
server is restarted (``pg_ctl restart -m fast`` terminates every session). Expected: exit 2
with the real cause (the batch that failed, the server's termination), not a lock-release
error and no traceback; the apply recorded as ``failed``; a re-run of the same plan completes
(the committed batch is recognised as already applied)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.repair import REPO, account_updates, make_db, one, rows, write_plan

pytestmark = pytest.mark.postgres


def _bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateServer:
    """A throwaway PostgreSQL cluster (run as ``postgres`` when the test runs as root, since
    initdb refuses root)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="recon-pg-restart-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.port = _free_port()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.prefix, *cmd], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-sync")
        self._ctl("start")

    def _ctl(self, action: str) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-w", "-t", "60", "-m", "fast",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off", action)

    def restart(self) -> None:
        self._ctl("restart")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                      "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def server() -> Iterator[PrivateServer]:
    bindir = _bin()
    if bindir is None or (os.geteuid() == 0 and shutil.which("runuser") is None):
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin) to start a "
                    "private server with")
    srv = PrivateServer(bindir)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


def _recon(*args: str, env: dict[str, str]) -> subprocess.Popen:
    e = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    e.update(env, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "jobs.cli", *args], cwd=REPO, env=e,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for_blocked(url: str, timeout: float = 60.0) -> None:
    """Until some session waits for a row lock (the apply's second batch)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if rows(url, "SELECT count(*) FROM pg_locks WHERE NOT granted")[0][0]:
            return
        time.sleep(0.1)
    raise AssertionError("the apply never blocked on the held row lock")


@pytest.mark.slow
def test_restart_mid_apply_exits_2_with_the_real_cause_and_a_rerun_completes(
        server: PrivateServer, tmp_path: Path) -> None:
    url = server.url
    make_db(url)
    ops = account_updates(url, 3)  # three groups → three batches with --batch-size 1
    plan = write_plan(url, tmp_path / "plan.json", ops)
    second = ops[1]["key"]["zuora_account_id"]
    env = {"RECON_LOCAL_DATABASE_URL": url, "RECON_DATA_DIR": str(tmp_path / "data"),
           "RECON_REPAIR_MAX_CHANGE_FRACTION": "1.0"}

    holder = psycopg.connect(url)  # a transaction holding the second batch's row
    holder.execute("SELECT 1 FROM billing_accounts WHERE zuora_account_id = %s FOR UPDATE",
                   (second,))
    proc = _recon("repair", "apply", str(plan), "--yes", "--batch-size", "1", env=env)
    try:
        _wait_for_blocked(url)
        server.restart()
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(Exception):
            holder.close()

    assert proc.returncode == 2, out + err
    assert "Traceback" not in err and "advisory_unlock" not in err, err
    assert "batch 2 of 3" in err and "rolled back" in err, err
    assert "terminat" in err.lower() or "shut" in err.lower(), err  # the server's own words
    assert "re-run the same plan" in err
    status, message, applied = rows(
        url, "SELECT status, message, ops_applied FROM recon_repair_applies")[0]
    assert status == "failed" and "batch 2 of 3" in message and applied == 1, (status, message)
    assert one(url, "SELECT count(*) FROM billing_accounts WHERE zuora_account_name LIKE "
                    "'% (fixed)'") == 1  # batch 1 committed, batch 2 rolled back

    again = _recon("repair", "apply", str(plan), "--yes", "--batch-size", "1", env=env)
    out, err = again.communicate(timeout=90)
    assert again.returncode == 0, out + err
    assert "1 already applied" in out, out
    assert one(url, "SELECT count(*) FROM billing_accounts WHERE zuora_account_name LIKE "
                    "'% (fixed)'") == 3
    assert rows(url, "SELECT status FROM recon_repair_applies ORDER BY started_at") == [
        ("failed",), ("complete",)]


def test_releasing_a_lock_whose_session_died_never_raises(pg_url: str, pg_dsn: str) -> None:
    """The release runs while the apply's own error is on its way out; a dead lock session
    (its lock already gone with it) must not replace that error."""
    from repair.lock import RepairLock

    class Cause(Exception):
        pass

    with pytest.raises(Cause), RepairLock(pg_url, "ap-dying", "apply") as lock:
        pid = lock._pg.info.backend_pid
        with psycopg.connect(pg_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        raise Cause("the batch's real error")
    with RepairLock(pg_url, "ap-next", "apply"):  # and the lock is free again
        pass

"""The one file-lock primitive (core.locks): exclusive, non-blocking, labelled, and released
by the kernel when its holder dies."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.locks import FileLock, LockBusy, holder_label

REPO = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time
from core.locks import FileLock, holder_label
lock = FileLock(sys.argv[1], holder_label(job="holder-job"))
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


def _spawn_holder(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if "locked" in line:
                return proc
            if not line:
                break
    proc.kill()
    raise AssertionError(f"the holder never locked: {proc.stderr.read()}")  # type: ignore


def _acquire_until_free(path: Path, timeout: float = 10.0) -> FileLock:
    deadline = time.monotonic() + timeout
    while True:
        lock = FileLock(path, {"job": "second"})
        try:
            lock.acquire()
            return lock
        except LockBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_a_lock_held_in_another_process_is_refused_then_freed_by_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.lock"
    proc = _spawn_holder(path)
    try:
        with pytest.raises(LockBusy) as e:
            FileLock(path, {"job": "second"}).acquire()
        assert e.value.path == path
        assert e.value.holder["job"] == "holder-job"
        assert e.value.holder["pid"] == proc.pid  # the label names the holder
        assert FileLock(path).held is False
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    lock = _acquire_until_free(path)  # the kernel released it with the dead process
    try:
        assert lock.held
        assert json.loads(path.read_text()) == {"job": "second"}
    finally:
        lock.release()
    assert path.read_text() == ""  # the label goes with the lock; the file may stay


def test_a_second_holder_in_the_same_process_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "y.lock"
    with FileLock(path, holder_label(run_id="r1")) as first:
        assert first.held
        with pytest.raises(LockBusy) as e:
            FileLock(path).acquire()
        assert e.value.holder["run_id"] == "r1"
        assert set(e.value.holder) == {"run_id", "host", "pid", "since"}
    assert not first.held
    with FileLock(path):  # released on exit, so it can be taken again
        pass


def test_an_unlabelled_lock_leaves_the_file_alone_and_garbage_is_no_holder(
        tmp_path: Path) -> None:
    path = tmp_path / "z.lock"
    path.write_text("not json")
    with FileLock(path):
        assert path.read_text() == "not json"
        with pytest.raises(LockBusy) as e:
            FileLock(path).acquire()
        assert e.value.holder == {}


def test_release_is_idempotent_and_double_acquire_is_a_bug(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "w.lock")
    lock.acquire()
    with pytest.raises(RuntimeError):
        lock.acquire()
    lock.release()
    lock.release()
    assert not lock.held

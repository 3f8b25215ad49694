"""The declared step sequence (``jobs.steps``), the job retries (tenacity, transient errors
marked by their class) and the sandbox kept out of production — fast, without a Zuora: the
sequence and the runner are driven with steps of the test's own, through the real
``run_steps`` / ``run_job``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.config import Settings
from core.errors import ReconError, TransientError, is_transient
from core.snapshot import ExtractBusy
from core.state import StateDB, StateLockTimeout
from extract.client import (
    ZuoraConnectionError,
    ZuoraRateLimitError,
    ZuoraRequestError,
    ZuoraServerError,
)
from extract.extractor import ExtractError
from jobs import runs
from jobs.pipeline import JobAborted, run_job
from jobs.steps import JOBS, STEPS, Job, Step, run_steps

REPO = Path(__file__).resolve().parents[2]


# -- the declaration ----------------------------------------------------------------------------
def test_every_job_runs_the_one_declared_sequence() -> None:
    order = ["extract", "validate", "reconcile", "plan", "report", "apply"]
    assert [s.name for s in STEPS] == order
    assert runs.JOBS == ("nightly", "catalog", "full") == tuple(JOBS)
    for job in JOBS.values():
        assert job.steps is STEPS, job.name
    assert (JOBS["nightly"].mode, JOBS["full"].mode, JOBS["catalog"].mode) == \
        (None, "full", "full")
    assert [JOBS[j].scope for j in runs.JOBS] == ["all", "catalog", "all"]
    assert [s.name for s in JOBS["full"].through("reconcile").steps] == order[:3]
    with pytest.raises(ReconError, match="no step 'diff' in the full job"):
        JOBS["full"].through("diff")
    with pytest.raises(ReconError, match="unknown job 'weekly'"):
        run_steps("weekly", Settings(), stop=threading.Event(), progress=print)


def _job(calls: list[str], *, fail_at: str | None = None, allowed: bool = True,
         stop: threading.Event | None = None) -> Job:
    def step(name: str) -> Step:
        def run(r) -> None:  # noqa: ANN001
            calls.append(name)
            r.counts[name] = len(calls)
            if name == fail_at:
                raise ReconError(f"{name} broke")
            if stop is not None and name == "b":
                stop.set()  # SIGTERM while b runs: b finishes, c never starts
        return Step(name, f"step {name}", run,
                    allowed=(lambda _r: allowed) if name == "c" else (lambda _r: True))
    return Job("t", None, "all", tuple(step(n) for n in ("a", "b", "c")))


def test_run_steps_runs_in_order_reports_each_step_and_skips_what_is_not_allowed() -> None:
    calls: list[str] = []
    seen: list[str] = []
    said: list[str] = []
    out = run_steps(_job(calls), Settings(), stop=threading.Event(), progress=said.append,
                    after=lambda name, r: seen.append(f"{name}:{r.counts[name]}"))
    assert calls == ["a", "b", "c"] and seen == ["a:1", "b:2", "c:3"]
    assert said == ["step a", "step b", "step c"]
    assert out == {"status": "clean", "counts": {"a": 1, "b": 2, "c": 3}, "report_path": None,
                   "snapshot_run": None}
    calls.clear()
    run_steps(_job(calls, allowed=False), Settings(), stop=threading.Event(),
              progress=lambda _m: None)
    assert calls == ["a", "b"], "a step that is not allowed (apply without repair.auto) is skipped"
    calls.clear()
    run_steps(_job(calls), Settings(), stop=threading.Event(), progress=lambda _m: None,
              through="b")
    assert calls == ["a", "b"]


def test_a_stop_between_steps_aborts_before_the_next() -> None:
    calls: list[str] = []
    stop = threading.Event()
    with pytest.raises(JobAborted, match="stopped before step c"):
        run_steps(_job(calls, stop=stop), Settings(), stop=stop, progress=lambda _m: None)
    assert calls == ["a", "b"]


# -- transient errors, by class -----------------------------------------------------------------
def test_transient_errors_are_marked_by_their_class() -> None:
    for cls in (ZuoraRateLimitError, ZuoraServerError, ZuoraConnectionError):
        assert issubclass(cls, TransientError) and is_transient(cls("x")), cls
    for e in (StateLockTimeout("x"), ExtractBusy("x"), ConnectionResetError(), TimeoutError()):
        assert isinstance(e, (TransientError, OSError)) and is_transient(e), e
    for e in (ReconError("x"), ZuoraRequestError("x"), ValueError("x")):
        assert not is_transient(e), e
    # the cause chain: a stage wraps a passing failure in an error of its own
    try:
        try:
            raise ZuoraServerError("503 after 6 attempts")
        except ZuoraServerError as inner:
            raise ExtractError("the export failed") from inner
    except ExtractError as wrapped:
        assert is_transient(wrapped)
    loop = ReconError("a")
    loop.__context__ = ReconError("b")
    loop.__context__.__context__ = loop  # a cycle must not hang the walk
    assert not is_transient(loop)


# -- retries (tenacity) through the real run_job ------------------------------------------------
def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path / "data",
                    local_database_url=f"duckdb:///{tmp_path / 'local.duckdb'}", **kw)


def _rows(settings: Settings) -> list[dict]:
    with StateDB(settings.data_dir) as st:
        return st.con.sql("SELECT * FROM job_runs ORDER BY started_at").pl().to_dicts()


def _flaky(errors: list[BaseException]):
    def steps(job: str, settings: Settings, *, stop: threading.Event, progress) -> dict:  # noqa: ANN001
        if errors:
            raise errors.pop(0)
        return {"status": "clean", "counts": {"fine": 1}}
    return steps


def test_transient_failures_are_retried_with_backoff_and_recorded_per_attempt(
        tmp_path: Path) -> None:
    settings = _settings(tmp_path, jobs_retries=2, jobs_retry_delay_s=1.5)
    slept: list[float] = []
    said: list[str] = []
    res = run_job("nightly", settings, sleep=slept.append, progress=said.append,
                  steps=_flaky([StateLockTimeout("busy"), ExtractBusy("busy too")]))
    assert (res.status, res.attempt, res.counts) == ("clean", 3, {"fine": 1})
    assert slept == [1.5, 3.0], "jobs.retry_delay_s · 2^(n-1)"
    assert said == ["transient failure (StateLockTimeout); retrying in 2s",
                    "transient failure (ExtractBusy); retrying in 3s"]
    rows = _rows(settings)
    assert [(r["attempt"], r["trigger"], r["status"], r["error_class"]) for r in rows] == [
        (1, "manual", "failed", "StateLockTimeout"), (2, "retry", "failed", "ExtractBusy"),
        (3, "retry", "clean", None)]
    assert len({r["idem_key"] for r in rows}) == 1 and len({r["run_id"] for r in rows}) == 3
    assert rows[-1]["run_id"] == res.attempt_id and json.loads(rows[-1]["counts"]) == {"fine": 1}
    # one run id: the attempts are <run>, <run>.a2, <run>.a3 of the one run
    assert [r["run_id"] for r in rows] == [res.run_id, f"{res.run_id}.a2", f"{res.run_id}.a3"]
    assert {r["run"] for r in rows} == {res.run_id}


def test_retries_stop_when_exhausted_and_never_for_the_data_or_a_stop(tmp_path: Path) -> None:
    settings = _settings(tmp_path, jobs_retries=1, jobs_retry_delay_s=0.0)
    slept: list[float] = []
    res = run_job("full", settings, sleep=slept.append,
                  steps=_flaky([ZuoraServerError("503")] * 3))
    assert (res.status, res.attempt, type(res.error)) == ("failed", 2, ZuoraServerError)
    assert slept == [0.0]
    res = run_job("full", settings, sleep=slept.append,
                  steps=_flaky([ReconError("the data is wrong"), ZuoraServerError("x")]))
    assert (res.status, res.attempt, str(res.error)) == ("failed", 1, "the data is wrong")
    stop = threading.Event()
    stop.set()
    res = run_job("full", settings, sleep=slept.append, stop=stop,
                  steps=_flaky([StateLockTimeout("busy")]))
    assert (res.status, res.attempt) == ("failed", 1), "asked to stop: no retry"
    assert slept == [0.0]
    assert [r["status"] for r in _rows(settings)] == ["failed"] * 4


# -- the sandbox out of production ------------------------------------------------------------
_NO_SANDBOX = """
import sys

class _NoSandbox:
    '''As if the sandbox distribution were not installed (the checkout still holds it).'''

    def find_spec(self, name, path=None, target=None):
        if name == "sandbox" or name.startswith("sandbox."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoSandbox())
"""


def _without_sandbox(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    e.update(PYTHONPATH=str(REPO), RECON_DATA_DIR=str(cwd / "data"))
    return subprocess.run([sys.executable, "-c", _NO_SANDBOX + code, *args], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_without_the_sandbox_recon_works_and_its_commands_say_how_to_install_it(
        tmp_path: Path) -> None:
    ok = _without_sandbox("import jobs.cli, jobs.pipeline, jobs.scheduler, jobs.steps\n"
                          "from jobs.cli import main\nassert main(['--help']) == 0\n"
                          "assert not [m for m in sys.modules if m.split('.')[0] == 'sandbox']",
                          cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    cli = "from jobs.cli import main\nsys.exit(main(sys.argv[1:]))"
    (tmp_path / "tenant").mkdir()
    for argv in (["demo", "--data-dir", str(tmp_path / "demo")],
                 ["sandbox", "generate", "--out", str(tmp_path / "t")],
                 ["sandbox", "serve", "--data", str(tmp_path / "tenant")],
                 ["sandbox", "--help"], ["demo", "--help"]):
        r = _without_sandbox(cli, *argv, cwd=tmp_path)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        assert "pip install -e ./sandbox" in r.stderr and "make demo" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and f"recon {argv[0]}" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tenant"], "nothing was written"

"""``make mutate``: the mutation run of issue 13 (never part of ``make test``).

Builds the Python mutants (mutate/pymut.py), the SQL mutants (mutate/sqlmut.py) and the two
planted bugs (mutate/planted.py) of the normalisation, derivation and rule modules; runs,
for each, only the tests that cover its module (mutate/testmap.py) in a scratch copy of the
tree (one per worker: the real tree is never written); and reports the Python and SQL kill
rates apart, survivors, timeouts, declared equivalents and wall time, printed and written to
``bench/out/mutate/``.

A mutant is *killed* when its tests fail (pytest exit 1, or 2-4: it broke collection or
import), *killed by timeout* when they run past the module's baseline budget, and
*survived* when they pass. Exit status: 0 when both kill rates reach ``--target`` and both
planted bugs are killed, 1 when not, 2 when the run could not be made (a baseline failing,
a planted bug that no longer applies).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

from mutate.equivalent import EQUIVALENT
from mutate.planted import PATH as PLANTED_PATH
from mutate.planted import PlantedBugMissing, planted_mutants
from mutate.pymut import python_mutants
from mutate.source import Mutant
from mutate.sqlmut import sql_mutants
from mutate.testmap import TARGETS, module_tests, tests_for

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
KILLED, TIMEOUT, SURVIVED, ERROR, NOT_RUN = "killed", "timeout", "survived", "error", "not run"


@dataclass
class Result:
    id: str
    kind: str
    path: str
    func: str
    op: str
    description: str
    status: str
    seconds: float
    tests: int
    detail: str = ""


def build(sample_sql: int, sample_py: int, seed: int, only: Iterable[str] = ()
          ) -> tuple[list[Mutant], dict[str, int]]:
    """Every mutant of the target modules (SQL and Python sampled to the given counts when
    they are larger; 0 = all), the planted bugs always included."""
    py: list[Mutant] = []
    sql: list[Mutant] = []
    skipped = 0
    planted: list[Mutant] = []
    for path in TARGETS:
        source = (ROOT / path).read_text()
        py += python_mutants(path, source)
        found, n = sql_mutants(path, source)
        sql += found
        skipped += n
        if path == PLANTED_PATH:
            planted = planted_mutants(source)
    seen: set[str] = set()
    dedup: dict[str, list[Mutant]] = {"py": [], "sql": []}
    for name, group in (("sql", sql), ("py", py)):
        for m in group:  # two operators can produce the same program: run it once
            key = m.path + "\0" + m.source
            if key not in seen:
                seen.add(key)
                dedup[name].append(m)
    counts = {"python_total": len(dedup["py"]), "sql_total": len(dedup["sql"]),
              "sql_sites_skipped": skipped}
    rng = random.Random(seed)
    if sample_sql and len(dedup["sql"]) > sample_sql:
        dedup["sql"] = sorted(rng.sample(dedup["sql"], sample_sql), key=lambda m: m.id)
    if sample_py and len(dedup["py"]) > sample_py:
        dedup["py"] = sorted(rng.sample(dedup["py"], sample_py), key=lambda m: m.id)
    rest = dedup["py"] + dedup["sql"]
    rng.shuffle(rest)  # if the time budget runs out, what is left is a fair sample of both
    chosen = planted + rest
    if only:
        wanted = set(only)
        chosen = [m for m in planted + py + sql if m.id in wanted]
    return chosen, counts


def scratch_copy(dest: Path) -> None:
    """A copy of the tree as git sees it (tracked and untracked-not-ignored files): tests and
    code exactly as they are, no venv, no data, no bytecode."""
    files = subprocess.run(["git", "ls-files", "-z", "-c", "-o", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.split(b"\0")
    for f in files:
        if not f:
            continue
        src = ROOT / f.decode()
        if src.is_file():
            target = dest / f.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)


# pytest runs under way: each in its own session (a timeout kills its whole group), so an
# interrupted run ends them itself rather than leaving them behind
LIVE: set[subprocess.Popen[bytes]] = set()


def end_live() -> None:
    for proc in list(LIVE):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_all(jobs: int, fn: Callable[[T], object], items: list[T]) -> None:
    """``fn`` over ``items`` on ``jobs`` threads; on Ctrl-C nothing more starts and the pytest
    runs under way are ended (each worker then restores its scratch file)."""
    with ThreadPoolExecutor(jobs) as pool:
        try:
            list(pool.map(fn, items))
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            end_live()
            raise


class Worker:
    """One scratch tree; mutants are written into it one at a time and restored after."""

    def __init__(self, base: Path, n: int) -> None:
        self.root = base / f"w{n}"
        self.tmp = base / f"w{n}-pytest"
        scratch_copy(self.root)

    def pytest(self, tests: list[str], timeout: float) -> tuple[str, float, str]:
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=str(self.root))
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
               f"--basetemp={self.tmp}", "-o", "addopts=", *tests]
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=self.root, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        LIVE.add(proc)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return TIMEOUT, time.monotonic() - start, f"over {timeout:.0f} s"
        finally:
            LIVE.discard(proc)
        took = time.monotonic() - start
        tail = out.decode(errors="replace").strip().splitlines()[-1:] or [""]
        if proc.returncode == 0:
            return SURVIVED, took, tail[0]
        if proc.returncode in (1, 2, 3, 4):
            return KILLED, took, tail[0]
        return ERROR, took, f"pytest exit {proc.returncode}: {tail[0]}"

    def run(self, m: Mutant, timeout: float) -> Result:
        target = self.root / m.path
        original = target.read_text()
        tests = tests_for(self.root, m.path, m.func)
        try:
            _write(target, m.source)
            status, took, detail = self.pytest(tests, timeout)
        finally:
            _write(target, original)
        return Result(m.id, m.kind, m.path, m.func, m.op, m.description, status,
                      round(took, 1), len(tests), detail)


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".mutating")
    tmp.write_text(text)
    os.replace(tmp, path)


def rate(results: list[Result], kind: str) -> dict[str, object]:
    """Kill rate of one kind, declared equivalents left out of the denominator."""
    rs = [r for r in results if r.kind == kind and r.id not in EQUIVALENT
          and r.status not in (ERROR, NOT_RUN)]
    killed = sum(r.status in (KILLED, TIMEOUT) for r in rs)
    return {"mutants": len(rs), "killed": sum(r.status == KILLED for r in rs),
            "killed_by_timeout": sum(r.status == TIMEOUT for r in rs),
            "survived": sum(r.status == SURVIVED for r in rs),
            "kill_rate": round(killed / len(rs), 4) if rs else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make mutate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2, help="parallel workers (default 2)")
    ap.add_argument("--sample-sql", type=int, default=400,
                    help="SQL mutants drawn when there are more (0 = all; default 400)")
    ap.add_argument("--sample-py", type=int, default=0,
                    help="Python mutants drawn when there are more (0 = all)")
    ap.add_argument("--seed", type=int, default=None, help="sampling seed (printed)")
    ap.add_argument("--only", nargs="*", default=(), help="run only these mutant ids")
    ap.add_argument("--list", action="store_true", help="list the mutants and stop")
    ap.add_argument("--target", type=float, default=0.90, help="kill rate to reach (0.90)")
    ap.add_argument("--timeout-factor", type=float, default=3.0,
                    help="per-mutant timeout = factor x module baseline + 30 s")
    ap.add_argument("--budget-minutes", type=float, default=55.0,
                    help="stop starting mutants after this long (reported as not run; 55)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "mutate")
    args = ap.parse_args(argv)
    if args.jobs < 1 or args.sample_sql < 0 or args.sample_py < 0:
        ap.error("--jobs must be >= 1 and samples >= 0")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    try:
        mutants, counts = build(args.sample_sql, args.sample_py, seed, args.only)
    except PlantedBugMissing as e:
        print(f"mutate: {e}", file=sys.stderr)
        return 2
    print(f"mutate: seed {seed}; {counts['python_total']} Python and {counts['sql_total']} SQL "
          f"mutants exist ({counts['sql_sites_skipped']} SQL sites could not be written back); "
          f"running {len(mutants)} (SQL sampled to {args.sample_sql or 'all'}), "
          f"{args.jobs} workers", flush=True)
    unknown = sorted(set(EQUIVALENT) - {m.id for m in build(0, 0, 0)[0]})
    if unknown:
        print(f"mutate: declared equivalent but no such mutant (update mutate/equivalent.py): "
              f"{', '.join(unknown)}")
    if args.list:
        for m in mutants:
            print(f"{m.id}\t{m.func}\t{m.description}")
        return 0

    wall = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="recon-mutate-"))
    try:
        workers = [Worker(base, n) for n in range(args.jobs)]
        # baseline: each module's tests pass unmutated, and how long they take
        budgets: dict[str, float] = {}
        errors: list[str] = []
        paths = sorted({m.path for m in mutants})
        lock = threading.Lock()
        free = list(workers)

        def take() -> Worker:
            with lock:
                return free.pop()

        def give(w: Worker) -> None:
            with lock:
                free.append(w)

        def baseline(path: str) -> None:
            w = take()
            try:
                status, took, detail = w.pytest(module_tests(w.root, path), 3600)
            finally:
                give(w)
            print(f"  baseline {path}: {status} in {took:.0f} s", flush=True)
            if status != SURVIVED:
                errors.append(f"{path}: its tests fail unmutated ({detail})")
            budgets[path] = args.timeout_factor * took + 30

        run_all(args.jobs, baseline, paths)
        if errors:
            print("mutate: cannot measure mutants whose tests fail unmutated:\n  "
                  + "\n  ".join(errors), file=sys.stderr)
            return 2

        results: list[Result] = []

        deadline = wall + 60 * args.budget_minutes

        def one(m: Mutant) -> Result:
            if time.monotonic() > deadline:  # the run's time budget is spent
                r = Result(m.id, m.kind, m.path, m.func, m.op, m.description, NOT_RUN, 0.0, 0,
                           f"budget of {args.budget_minutes:g} min spent")
                with lock:
                    results.append(r)
                return r
            w = take()
            try:
                r = w.run(m, budgets[m.path])
            finally:
                give(w)
            with lock:
                results.append(r)
                print(f"  [{len(results)}/{len(mutants)}] {r.status:8} {r.seconds:6.1f} s "
                      f"{r.id}", flush=True)
            return r

        run_all(args.jobs, one, mutants)
    finally:
        end_live()
        shutil.rmtree(base, ignore_errors=True)
    wall = time.monotonic() - wall
    return report(results, counts, seed, wall, args)


def report(results: list[Result], counts: dict[str, int], seed: int, wall: float,
           args: argparse.Namespace) -> int:
    results.sort(key=lambda r: r.id)
    py, sql = rate(results, "python"), rate(results, "sql")
    planted = {r.id: r.status for r in results if r.kind == "planted"}
    survivors = [r for r in results if r.status == SURVIVED and r.id not in EQUIVALENT
                 and r.kind != "planted"]
    equivalent = [r for r in results if r.id in EQUIVALENT]
    wrong = [r.id for r in equivalent if r.status != SURVIVED]
    errors = [r for r in results if r.status == ERROR]
    per = [r.seconds for r in results if r.status != NOT_RUN]
    lines = [
        f"mutation run: seed {seed}, {len(results)} mutants, wall {wall / 60:.1f} min "
        f"({args.jobs} workers), mean {sum(per) / max(1, len(per)):.1f} s per mutant",
        f"  exist: {counts['python_total']} Python, {counts['sql_total']} SQL "
        f"(sampled to {args.sample_sql or 'all'})",
        f"  Python kill rate: {py['kill_rate']} ({py['killed']} killed, "
        f"{py['killed_by_timeout']} by timeout, {py['survived']} survived of {py['mutants']})",
        f"  SQL kill rate:    {sql['kill_rate']} ({sql['killed']} killed, "
        f"{sql['killed_by_timeout']} by timeout, {sql['survived']} survived of "
        f"{sql['mutants']})",
        "  planted bugs: " + ", ".join(f"{k} {v}" for k, v in sorted(planted.items())),
        f"  declared equivalent (not counted): {len(equivalent)}"
        + (f"; KILLED although declared equivalent: {', '.join(wrong)}" if wrong else ""),
        f"  errors (not counted): {len(errors)}; not run (time budget spent, not counted): "
        f"{sum(r.status == NOT_RUN for r in results)}",
        "survivors:",
        *[f"  {r.id}  [{r.func}] {r.description}" for r in survivors],
        "timeouts:",
        *[f"  {r.id}  {r.detail}" for r in results if r.status == TIMEOUT],
        "errors:",
        *[f"  {r.id}  {r.detail}" for r in errors],
        "equivalent:",
        *[f"  {r.id} ({r.status}): {EQUIVALENT[r.id]}" for r in equivalent],
    ]
    text = "\n".join(lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    (args.out / f"mutate-{stamp}.txt").write_text(text + "\n")
    (args.out / f"mutate-{stamp}.json").write_text(json.dumps(
        {"seed": seed, "wall_seconds": round(wall, 1), "jobs": args.jobs, "counts": counts,
         "python": py, "sql": sql, "planted": planted,
         "results": [asdict(r) for r in results]}, indent=1))
    print(f"written: {args.out / f'mutate-{stamp}.txt'} (and .json)")
    ok = all(r["kill_rate"] is not None and r["kill_rate"] >= args.target
             for r in (py, sql)) and all(v in (KILLED, TIMEOUT) for v in planted.values()) \
        and not any(r.status == NOT_RUN for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

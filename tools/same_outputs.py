"""``make same-outputs BASE=<rev>``: same inputs, same outputs across a refactoring.

A refactoring that moves code (issue 14: "behaviour stays as it is") must not change what recon
writes. This runs the base revision and this tree on the *same* snapshot and compares what each
wrote:

1. a Zuora tenant with labelled drift is generated once (``recon sandbox generate``), served
   (``recon sandbox serve``), extracted once (``recon extract --mode full``) and validated once
   (``recon validate``) — by the base revision, so both sides read a state file the older recon
   wrote (the newer one upgrades it in place; the older one would refuse a newer file);
2. the data directory (snapshot, recon's state, quarantine) and the local DuckDB are copied
   once per side, and each side in turn runs ``recon reconcile --run RUN``, ``recon repair
   plan --run RUN`` and ``recon report --run RUN`` on its copy — commands both revisions
   have — at the same path (so paths and the settings' hash compare equal), then moves it
   aside;
3. it compares ``drift.parquet`` (every column but ``run_id``, rows sorted by fingerprint), the
   plans' operations (canonical JSON without plan id, timestamps and run ids), the rest of the
   plan (same normalisation), and ``report.json`` (without timestamps, durations and run ids),
   printing ``identical`` or ``different`` per artefact with a readable diff.

Timestamps are found by value: every one later than the moment the inputs were taken is the
time a side ran (no input can hold one; e.g. the ``created_at`` the planner gives the rows it
inserts), written ``<TIME OF THE RUN>``, and so is its tenant-zone rendering beside it. Ids and
durations are dropped by key (:data:`VOLATILE`). A difference that is only the order of a list
is named as such, with the list's JSON path. ``--head PATH`` compares another tree (a merge, a
branch's export) instead of this checkout.

The base runs from a ``git worktree`` of BASE with this venv's interpreter and
``PYTHONPATH`` pointing at that worktree (the dependencies are the same but for new ones; the
sandbox moved from ``extract.sandbox`` to ``sandbox``, which the base's own CLI finds in its
tree). Exit 0 when every artefact is identical, 1 when one differs, 2 when a step failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
RECON = "import sys; from jobs.cli import main; sys.exit(main())"
# Keys whose values change from run to run whatever the code: ids minted per plan or run and
# durations (timestamps are found by value: see :func:`run_time`). Never stripped inside an
# operation's row images (``before``, ``after``), where they would be column names.
VOLATILE = {"plan_id", "run_id", "job_run_id", "apply_id", "seconds", "duration_s", "timings",
            "reconcile_s", "extract_s", "export_s", "job_s", "html_bytes"}
ROW_IMAGES = {"before", "after"}
RUN_TIME = "<TIME OF THE RUN>"
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")
DIFF_LINES = 80


class StepFailed(Exception):
    """A recon command of one side did not do what the comparison needs."""


@dataclass
class Side:
    name: str  # "base" or "head"
    tree: Path  # the source tree its recon runs from
    work: Path  # its own copy of the data

    @property
    def data(self) -> Path:
        return self.work / "data"

    @property
    def local_db(self) -> Path:
        return self.work / "local.duckdb"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("RECON_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(PYTHONPATH=str(self.tree), RECON_DATA_DIR=str(self.data),
                   RECON_LOCAL_DATABASE_URL=f"duckdb:///{self.local_db}", **extra)
        return env

    def recon(self, *argv: str, ok: tuple[int, ...] = (0,), timeout: float = 1800,
              **env: str) -> subprocess.CompletedProcess[str]:
        """``recon ARGV`` as this side's code, in its work directory (no recon.toml there)."""
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", RECON, *argv], cwd=self.work,
                             env=self.env(**env), capture_output=True, text=True,
                             timeout=timeout)
        print(f"  {self.name}: recon {' '.join(argv)} -> exit {out.returncode} "
              f"({time.perf_counter() - t0:.1f}s)", flush=True)
        if out.returncode not in ok:
            raise StepFailed(f"{self.name}: `recon {' '.join(argv)}` exited {out.returncode}:\n"
                             f"{out.stdout[-2000:]}{out.stderr[-3000:]}")
        return out

    def check_code(self) -> None:
        """This side imports its own tree (not the editable install of another checkout)."""
        out = subprocess.run([sys.executable, "-c", "import jobs.cli; print(jobs.cli.__file__)"],
                             cwd=self.work, env=self.env(), capture_output=True, text=True)
        where = Path(out.stdout.strip() or "?")
        if out.returncode != 0 or not where.resolve().is_relative_to(self.tree.resolve()):
            raise StepFailed(f"{self.name}: jobs.cli comes from {where}, not {self.tree}: "
                             f"{out.stderr[-1000:]}")


# -- the run ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, server: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise StepFailed(f"the sandbox server exited {server.returncode}: "
                             f"{(server.stderr.read() if server.stderr else '')[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise StepFailed(f"the sandbox server did not listen on port {port} in {timeout:.0f}s")


def seed(side: Side, args: argparse.Namespace) -> str:
    """Generate, serve, extract and validate once, into ``side``'s work directory; the run id."""
    tenant = side.work / "tenant"
    side.recon("sandbox", "generate", "--accounts", str(args.accounts), "--seed",
               str(args.seed), "--drift", str(args.drift), "--out", str(tenant))
    shutil.copy(tenant / "local.duckdb", side.local_db)
    secret, port = "same-outputs-secret", free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", RECON, "sandbox", "serve", "--data", str(tenant), "--port",
         str(port)], cwd=side.work, env=side.env(RECON_ZUORA_CLIENT_SECRET=secret),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, server)
        side.recon("extract", "--mode", "full", ok=(0, 1),
                   RECON_ZUORA_BASE_URL=f"http://127.0.0.1:{port}",
                   RECON_ZUORA_CLIENT_SECRET=secret)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    snapshots = sorted(p for p in (side.data / "snapshots").iterdir()
                       if p.is_dir() and (p / "manifest.json").is_file()
                       and not p.name.endswith(".failed"))
    if len(snapshots) != 1:
        raise StepFailed(f"expected one complete snapshot, found {[p.name for p in snapshots]}")
    side.recon("validate", str(snapshots[0]), "--run", snapshots[0].name, ok=(0, 1))
    return snapshots[0].name


def outputs(side: Side, run: str) -> dict[str, str]:
    """Reconcile, plan and report ``run`` on this side's copy; each command's stdout."""
    said = {}
    for argv in (("reconcile", "--run", run), ("repair", "plan", "--run", run),
                 ("report", "--run", run)):
        said[" ".join(argv[:2] if argv[0] == "repair" else argv[:1])] = side.recon(*argv).stdout
    return said


# -- the comparison --------------------------------------------------------------------------
def drift_frame(path: Path) -> pl.DataFrame:
    frame = pl.read_parquet(path)
    frame = frame.drop("run_id") if "run_id" in frame.columns else frame
    # by fingerprint, then by every other column: a duplicated fingerprint still sorts stably
    others = [c for c in frame.columns if c != "fingerprint"
              and not isinstance(frame.schema[c], pl.List | pl.Struct | pl.Array)]
    return frame.sort(["fingerprint", *others], nulls_last=True)


def describe_drift(base: pl.DataFrame, head: pl.DataFrame) -> list[str]:
    lines = []
    if base.schema != head.schema:
        bs, hs = dict(base.schema), dict(head.schema)
        for col in sorted(set(bs) | set(hs)):
            if bs.get(col) != hs.get(col):
                lines.append(f"  column {col}: base {bs.get(col)}, head {hs.get(col)}")
    if base.height != head.height:
        lines.append(f"  rows: base {base.height:,}, head {head.height:,}")
    bf, hf = set(base["fingerprint"]), set(head["fingerprint"])
    for label, only in (("only in base", bf - hf), ("only in head", hf - bf)):
        if only:
            lines.append(f"  {len(only):,} fingerprints {label}, e.g. {sorted(only)[:5]}")
    common = [c for c in base.columns if c in head.columns]
    b = base.filter(pl.col("fingerprint").is_in(hf)).select(common)
    h = head.filter(pl.col("fingerprint").is_in(bf)).select(common)
    if b.height == h.height:
        shown = 0
        for rb, rh in zip(b.iter_rows(named=True), h.iter_rows(named=True), strict=True):
            cols = [c for c in common if rb[c] != rh[c]]
            if cols and shown < 10:
                shown += 1
                lines.append(f"  {rb['fingerprint']} ({rb.get('object')} {rb.get('key')}): "
                             + "; ".join(f"{c}: {rb[c]!r} -> {rh[c]!r}" for c in cols[:6]))
    return lines


def run_time(text: str, inputs_taken: dt.datetime) -> str:
    """``text``, or ``<TIME OF THE RUN>`` when it is a timestamp later than the inputs."""
    if not TIMESTAMP.fullmatch(text):
        return text
    stamp = dt.datetime.fromisoformat(text)
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
    return RUN_TIME if stamp >= inputs_taken else text


def strip_volatile(value: Any, inputs_taken: dt.datetime, *, rows: bool = False) -> Any:
    """``value`` without the keys in :data:`VOLATILE` (outside row images, where they are
    column names) and with timestamps of the run written ``<TIME OF THE RUN>``."""
    if isinstance(value, dict):
        out = {k: strip_volatile(v, inputs_taken, rows=rows or k in ROW_IMAGES)
               for k, v in value.items() if rows or k not in VOLATILE}
        if out.get("utc") == RUN_TIME and "local" in out:  # the same time in the tenant's zone
            out["local"] = RUN_TIME
        return out
    if isinstance(value, list):
        return [strip_volatile(v, inputs_taken, rows=rows) for v in value]
    if isinstance(value, str):
        return run_time(value, inputs_taken)
    return value


def canonical(value: Any) -> list[str]:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False,
                      default=str).splitlines()


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def reordered(base: Any, head: Any, path: str = "$") -> list[str] | None:
    """The JSON paths of the lists that hold the same items in another order, when that is the
    only difference between ``base`` and ``head``; else None. Tells a reordering (e.g. ties of
    a sort broken differently) from a changed value at a glance."""
    if isinstance(base, dict) and isinstance(head, dict):
        if base.keys() != head.keys():
            return None
        found: list[str] = []
        for key in base:
            sub = reordered(base[key], head[key], f"{path}.{key}")
            if sub is None:
                return None
            found += sub
        return found
    if isinstance(base, list) and isinstance(head, list):
        if len(base) != len(head):
            return None
        pairs = [reordered(b, h, f"{path}[{i}]") for i, (b, h) in enumerate(zip(base, head, strict=True))]
        if all(p is not None for p in pairs):
            return [q for p in pairs if p for q in p]
        return [path] if sorted(map(_key, base)) == sorted(map(_key, head)) else None
    return [] if base == head else None


def json_diff(base: Any, head: Any, name: str) -> list[str]:
    """Nothing when equal; else which lists were only reordered, or the text diff."""
    if base == head:
        return []
    paths = reordered(base, head)
    if paths:
        return [f"  order only: the same items in another order in {', '.join(paths[:10])}"]
    return text_diff(canonical(base), canonical(head), name)


def text_diff(base: list[str], head: list[str], name: str) -> list[str]:
    diff = list(difflib.unified_diff(base, head, f"base/{name}", f"head/{name}", n=2,
                                     lineterm=""))
    more = len(diff) - DIFF_LINES
    return ["  " + d for d in diff[:DIFF_LINES]] + ([f"  … {more} more diff lines"]
                                                    if more > 0 else [])


def plan_json(path: Path) -> dict[str, Any]:
    """A plan file of any format as one document with its operations inline: version 3's
    Parquet chunks (``<stem>.ops/``) are read back into ``operations``; the format's own
    fields (``schema_version``, ``chunks`` with their hashes) are left out, so a base that
    wrote version 2 compares with a head that writes version 3 by content."""
    doc = json.loads(path.read_text())
    chunks = doc.pop("chunks", None)
    doc.pop("schema_version", None)
    if chunks is not None:
        ops = []
        for c in chunks:
            frame = pl.read_parquet(path.with_name(path.stem + ".ops") / c["file"])
            for r in frame.iter_rows(named=True):
                ops.append({**r, **{k: json.loads(r[k]) if r[k] is not None else None
                                    for k in ("key", "before", "after")},
                            "findings": list(r["findings"] or [])})
        doc["operations"] = sorted(ops, key=lambda o: o["seq"])
    return doc


def compare(base: Path, head: Path, run: str, inputs_taken: dt.datetime) -> dict[str, list[str]]:
    """Artefact name -> the differences (empty: identical); ``base`` and ``head`` are the data
    directories each side wrote."""
    result: dict[str, list[str]] = {}
    rb, rh = base / "runs" / run, head / "runs" / run
    missing = [str(d / f) for d in (rb, rh)
               for f in ("drift.parquet", "repair-plan.json", "report.json")
               if not (d / f).is_file()]
    if missing:
        raise StepFailed(f"an artefact was not written: {', '.join(missing)}")

    name = "drift.parquet (all columns but run_id, sorted by fingerprint)"
    db, dh = drift_frame(rb / "drift.parquet"), drift_frame(rh / "drift.parquet")
    result[name] = [] if db.equals(dh) else describe_drift(db, dh) or ["  frames differ"]

    def clean(value: Any) -> Any:
        return strip_volatile(value, inputs_taken)

    pb, ph = plan_json(rb / "repair-plan.json"), plan_json(rh / "repair-plan.json")
    name = (f"repair-plan.json operations ({len(pb.get('operations') or ()):,} base, "
            f"{len(ph.get('operations') or ()):,} head; without plan id, timestamps, run ids)")
    result[name] = json_diff(clean(pb.get("operations")), clean(ph.get("operations")),
                             "repair-plan.json#operations")
    name = "repair-plan.json other fields (needs_a_person, not_planned, summary, …)"
    result[name] = json_diff(clean({k: v for k, v in pb.items() if k != "operations"}),
                             clean({k: v for k, v in ph.items() if k != "operations"}),
                             "repair-plan.json")

    name = "report.json (without timestamps, durations, run ids)"
    result[name] = json_diff(clean(json.loads((rb / "report.json").read_text())),
                             clean(json.loads((rh / "report.json").read_text())), "report.json")
    return result


# -- main ------------------------------------------------------------------------------------
def git(*argv: str, cwd: Path = ROOT) -> str:
    out = subprocess.run(["git", *argv], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise StepFailed(f"git {' '.join(argv)}: {out.stderr.strip()}")
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="db52a1d", help="base revision (default: db52a1d, "
                        "the tree before issue 14)")
    parser.add_argument("--head", type=Path, default=ROOT,
                        help="the tree to compare with the base (default: this checkout)")
    parser.add_argument("--accounts", type=int, default=200, help="tenant size (default 200)")
    parser.add_argument("--drift", type=float, default=0.05,
                        help="share of subscriptions with drift (default 0.05)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument("--work", type=Path, help="work directory (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="recon-same-outputs-", dir=args.work)).resolve()
    base_rev = git("rev-parse", "--verify", f"{args.base}^{{commit}}")
    head = args.head.resolve()
    head_rev = (git("rev-parse", "--short=10", "HEAD", cwd=head) if (head / ".git").exists()
                else head.name)
    dirty = git("status", "--porcelain", "--untracked-files=no", cwd=head) if (
        head / ".git").exists() else ""
    base_tree = work / "base-tree"
    print(f"base {args.base} ({base_rev[:10]}) vs head {head_rev}"
          f"{' + uncommitted changes' if dirty else ''} ({head}); work directory {work}")
    code = 2
    try:
        git("worktree", "add", "--detach", "--quiet", str(base_tree), base_rev)
        seeder = Side("base", base_tree, work / "seed")
        seeder.work.mkdir()
        seeder.check_code()
        print(f"seed ({args.accounts} accounts, drift {args.drift}, seed {args.seed}), with "
              "the base revision:")
        run = seed(seeder, args)
        # every timestamp from here on is a side's own run time, not an input
        inputs_taken = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        print(f"run {run}: each side reconciles, plans and reports its copy, in {work / 'run'}:")
        for side in (Side("base", base_tree, work / "run"), Side("head", head, work / "run")):
            side.work.mkdir()
            shutil.copytree(seeder.data, side.data)
            shutil.copy(seeder.local_db, side.local_db)
            side.check_code()
            outputs(side, run)
            side.work.rename(work / side.name)
        differences = compare(work / "base" / "data", work / "head" / "data", run, inputs_taken)
        print()
        for artefact, lines in differences.items():
            print(f"{'identical' if not lines else 'DIFFERENT'}  {artefact}")
            for line in lines:
                print(line)
        code = 1 if any(differences.values()) else 0
        print(f"\nsame-outputs: {'identical' if code == 0 else 'outputs differ'} "
              f"(base {base_rev[:10]}, head {head_rev}, run {run})")
    except StepFailed as e:
        print(f"same-outputs: a step failed: {e}", file=sys.stderr)
    finally:
        if base_tree.exists():
            subprocess.run(["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT,
                           capture_output=True)
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())

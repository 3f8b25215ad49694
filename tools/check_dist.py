"""``make check-dist``: installing recon alone carries no Zuora sandbox (issue 14, point 1).

The sandbox (``sandbox/``) is its own distribution; recon's wheel must not hold it, and recon
must import and run its stages without it. The import contract (``.importlinter``, in
``make test``) covers the source tree; this checks what actually ships, which only a build and
a fresh install can show (a packaging mistake, e.g. ``packages.find`` picking the sandbox up,
passes every import contract). Slow — a wheel build and a fresh virtualenv with every runtime
dependency — so it is not part of ``make test``.

Checks, each printed as ``ok``/``FAILED``:
1. ``pip wheel . --no-deps``: the wheel holds no ``sandbox/``;
2. a fresh virtualenv, ``pip install -c constraints.txt .`` (no extras): importing ``extract``,
   ``reconcile`` and ``jobs.cli`` there loads no ``sandbox`` module (from the installed copy,
   not this checkout);
3. there, ``recon sandbox --help`` and ``recon demo`` exit 2 without a traceback, with a
   message saying how to install the sandbox (a typed refusal, not the crash path).

Exit 0 when every check passed, 1 otherwise. ``--keep`` keeps the work directory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT_CHECK = ("import sys, extract, reconcile, jobs.cli; "
                "assert not [m for m in sys.modules if m.split('.')[0] == 'sandbox'], "
                "sorted(m for m in sys.modules if m.split('.')[0] == 'sandbox'); "
                "print(extract.__file__)")


def run(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


class Checks:
    """Collects outcomes so every check runs and the summary names each failure."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def report(self, ok: bool, what: str, detail: str = "") -> bool:
        print(f"{'ok    ' if ok else 'FAILED'} {what}")
        if detail and not ok:
            print("       " + detail.strip().replace("\n", "\n       ")[-3000:])
        if not ok:
            self.failed.append(what)
        return ok


def build_wheel(work: Path, checks: Checks) -> Path | None:
    leftover = not (ROOT / "build").exists()  # setuptools builds in ./build: remove ours
    out = run([sys.executable, "-m", "pip", "wheel", "-q", ".", "--no-deps", "-w",
               str(work / "wheel")], cwd=ROOT)
    if leftover:
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    wheels = sorted((work / "wheel").glob("recon-*.whl"))
    if not checks.report(out.returncode == 0 and len(wheels) == 1,
                         "pip wheel . --no-deps builds recon's wheel", out.stdout + out.stderr):
        return None
    names = zipfile.ZipFile(wheels[0]).namelist()
    sandbox = [n for n in names if n.split("/")[0] == "sandbox"]
    tops = sorted({n.split("/")[0] for n in names if "/" in n and ".dist-info" not in n})
    checks.report(not sandbox, f"{wheels[0].name} holds no sandbox/ (top level: "
                  f"{', '.join(tops)})", "\n".join(sandbox[:20]))
    return wheels[0]


def fresh_install(work: Path, checks: Checks) -> Path | None:
    venv = work / "venv"
    out = run([sys.executable, "-m", "venv", str(venv)], cwd=work)
    if not checks.report(out.returncode == 0, "a fresh virtualenv", out.stderr):
        return None
    out = run([str(venv / "bin" / "pip"), "install", "-q", "-c", str(ROOT / "constraints.txt"),
               "."], cwd=ROOT)
    ok = checks.report(out.returncode == 0,
                       "pip install -c constraints.txt . (no extras) in it", out.stderr)
    return venv if ok else None


def check_installed(venv: Path, work: Path, checks: Checks) -> None:
    # run outside the checkout, with a clean environment: only the installed copy is importable
    home = work / "home"
    home.mkdir()
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(home),
           "RECON_DATA_DIR": str(work / "data"), "LANG": os.environ.get("LANG", "C.UTF-8")}
    out = run([str(venv / "bin" / "python"), "-c", IMPORT_CHECK], cwd=home, env=env)
    installed = out.stdout.strip()
    checks.report(out.returncode == 0 and installed.startswith(str(venv)),
                  "import extract, reconcile, jobs.cli loads no sandbox module "
                  f"(from {installed or '?'})", out.stdout + out.stderr)
    sandbox = run([str(venv / "bin" / "python"), "-c", "import sandbox"], cwd=home, env=env)
    checks.report(sandbox.returncode != 0, "the sandbox is not importable there",
                  sandbox.stdout + sandbox.stderr)
    for argv in (["sandbox", "--help"], ["demo"]):
        out = run([str(venv / "bin" / "recon"), *argv], cwd=home, env=env, timeout=300)
        said = (out.stderr.strip() or out.stdout.strip()).splitlines()
        checks.report(out.returncode == 2 and "Traceback" not in out.stderr + out.stdout,
                      f"recon {' '.join(argv)} exits 2 without the sandbox (exit "
                      f"{out.returncode}: {said[0][:150] if said else 'nothing printed'})",
                      out.stdout + out.stderr)
        # a typed refusal saying how to install it, not the crash path (which also exits 2)
        checks.report(out.returncode == 2 and "unexpected" not in out.stderr
                      and "sandbox" in out.stderr and "install" in out.stderr,
                      f"recon {' '.join(argv)} says how to install the sandbox (no crash log)",
                      out.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="recon-check-dist-"))
    checks = Checks()
    try:
        if build_wheel(work, checks) is not None:
            venv = fresh_install(work, checks)
            if venv is not None:
                check_installed(venv, work, checks)
    finally:
        if args.keep:
            print(f"work directory: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if checks.failed:
        print(f"check-dist: {len(checks.failed)} check(s) failed")
        return 1
    print("check-dist: recon installs and runs without the sandbox")
    return 0


if __name__ == "__main__":
    sys.exit(main())

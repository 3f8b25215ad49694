"""The floor order is enforced, not just drawn (issue 14, point 7).

``.importlinter`` declares the floors and who may import the sandbox; ``make test`` runs
``lint-imports`` on the tree. These tests prove the contracts can fail: on a copy of the tree
they plant an upward import, a production import of the sandbox and a (lazy) production
import of the tests, and require ``lint-imports`` to break exactly the contract each one
violates and name the import. The unplanted copy must keep every contract, so a failure of
the planted copy is the plant's doing and not an artefact of copying.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"
# lint-imports' own entry point, run with this interpreter (the venv's), so no PATH lookup
LINT = [sys.executable, "-c",
        "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())"]

# (file to plant in, line to append, text lint-imports must print: the broken import)
PLANTS = {
    "floors": ("core/values.py", "from jobs import cli as _planted  # noqa\n",
               "core.values -> jobs.cli"),
    "sandbox-beside": ("reconcile/engine.py", "import sandbox.server as _planted  # noqa\n",
                       "reconcile.engine -> sandbox.server"),
    # inside a function: a lazy import counts as much as a top-level one
    "no-dev-code": ("repair/apply.py",
                    "def _planted():\n    import tests.support.jobs  # noqa\n",
                    "repair.apply -> tests.support.jobs"),
    "cli-on-top": ("jobs/steps.py",
                   "def _planted():\n    from jobs.cli import common  # noqa\n",
                   "jobs.steps -> jobs.cli.common"),
}


def _root_packages() -> list[str]:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    return parser["importlinter"]["root_packages"].split()


def _copy_tree(dest: Path) -> None:
    """The root packages' Python files and the contract: all ``lint-imports`` reads."""
    for package in _root_packages():
        shutil.copytree(ROOT / package, dest / package,
                        ignore=lambda d, names: [n for n in names if not (
                            n.endswith(".py") or (Path(d) / n).is_dir())
                            or n == "__pycache__"])
    shutil.copy(CONFIG, dest / ".importlinter")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    # the copy comes first on the path: the editable installs of recon and the sandbox in the
    # venv would otherwise let grimp read the real tree
    return subprocess.run([*LINT, "--no-cache", str(tree / ".importlinter")],
                          cwd=tree, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)},
                          capture_output=True, text=True, timeout=120)


def _status(stdout: str, contract: str) -> str:
    """KEPT or BROKEN: the contract's line in the summary (lint-imports wraps long lines at 80
    characters, so whitespace is ignored when finding its name)."""
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    name = "".join(parser[f"importlinter:contract:{contract}"]["name"].split())
    flat = "".join(stdout.split())
    for status in ("BROKEN", "KEPT"):
        if name + status in flat:
            return status
    raise AssertionError(f"contract {contract!r} is not in the output:\n{stdout}")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("house")
    _copy_tree(dest)
    return dest


def test_the_contract_names_every_floor_and_every_root_package() -> None:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    layers = [line.strip() for line in
              parser["importlinter:contract:floors"]["layers"].strip().splitlines()]
    assert layers == ["jobs | callouts", "reports", "sync", "repair", "reconcile",
                      "expectations", "extract", "core"]
    top_level = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    assert top_level <= set(_root_packages()), "a package no contract covers"


def test_the_tree_keeps_every_contract(tree: Path) -> None:
    out = _lint(tree)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize("contract", sorted(PLANTS))
def test_a_planted_import_breaks_its_contract(tree: Path, tmp_path: Path, contract: str) -> None:
    planted = tmp_path / "planted"
    shutil.copytree(tree, planted)
    path, line, expected = PLANTS[contract]
    with (planted / path).open("a") as fh:
        fh.write("\n" + line)
    out = _lint(planted)
    assert out.returncode == 1, out.stdout + out.stderr
    assert expected in out.stdout, out.stdout
    assert _status(out.stdout, contract) == "BROKEN", out.stdout


def test_the_sandbox_commands_of_the_cli_may_import_the_sandbox(tree: Path,
                                                                 tmp_path: Path) -> None:
    """The one exception: the CLI's demo and sandbox command modules import the sandbox (the
    real modules do, lazily) and keep the contracts; any other CLI module does not."""
    allowed = tmp_path / "allowed"
    shutil.copytree(tree, allowed)
    for name in ("demo", "sandbox"):
        assert "from sandbox." in (allowed / "jobs" / "cli" / f"{name}.py").read_text()
    assert _lint(allowed).returncode == 0
    (allowed / "jobs" / "cli" / "report.py").write_text(
        "def run():\n    from sandbox.server import SandboxServer  # noqa\n")
    out = _lint(allowed)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "jobs.cli.report -> sandbox.server" in out.stdout, out.stdout
    assert _status(out.stdout, "sandbox-beside") == "BROKEN", out.stdout

"""Every failure of the ``recon`` command line exits 2 with a message naming the thing, and no
traceback ever escapes ``main``.

The bad-input cases are generated from the parser itself (sub-commands, options, and the
typed validators of ``jobs.cli.argtypes`` that carry each option's declared range or path role),
so a command added later is covered without touching this file. Exit codes are checked
against the one declaration (``jobs.cli.exit_codes``) and README's table."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobs.cli import build_parser, exit_codes, main
from jobs.cli.argtypes import (
    IN_DIR,
    IN_FILE,
    OUT_DIR,
    OUT_FILE,
    FloatRange,
    IntRange,
    PathArg,
    date,
    zone,
)
from tests.support.pg import outside_write
from tests.support.repair import account_updates, make_db, one, write_plan

REPO = Path(__file__).resolve().parents[2]
README = REPO / "docs" / "cli.md"  # the command reference (README links it)


# -- the parser, walked -------------------------------------------------------------------------
def commands(parser: argparse.ArgumentParser | None = None,
             path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                          argparse.ArgumentParser]]:
    """Every runnable (sub-)command: (words after ``recon``, its parser)."""
    parser = parser or build_parser()
    if parser.get_default("func") is not None:
        yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, (argparse._SubParsersAction, argparse._HelpAction))]


def every_action() -> Iterator[tuple[tuple[str, ...], argparse.Action]]:
    top = build_parser()
    for a in options(top):
        yield (), a
    for path, parser in commands(top):
        for a in options(parser):
            yield path, a


def name_of(action: argparse.Action) -> str:
    """How argparse names the action in its error (``--limit`` or the metavar ``PATH``)."""
    if action.option_strings:
        return "/".join(action.option_strings)
    return action.metavar or action.dest


def argv_for(path: tuple[str, ...], action: argparse.Action, value: str,
             ok: dict[str, str]) -> list[str]:
    """``recon … COMMAND`` with ``action`` given ``value`` and every other required argument a
    valid value (so only ``value`` can be wrong)."""
    top = build_parser()
    if not path:  # a global option: any cheap command
        return [*action.option_strings[:1], value, "config", "show"]
    parser = dict(commands(top))[path]
    words = list(path)
    mine: list[str] = [action.option_strings[0], value] if action.option_strings else []
    for a in options(parser):
        if a is action or a.dest == action.dest:
            if not a.option_strings:
                words.append(value)
            continue
        if a.option_strings and a.required:
            words += [a.option_strings[0], valid_value(a, ok)]
        elif not a.option_strings and a.nargs not in ("?", "*"):
            words.append(valid_value(a, ok))
    return words[:len(path)] + mine + words[len(path):]


def valid_value(action: argparse.Action, ok: dict[str, str]) -> str:
    if isinstance(action.type, PathArg):
        return ok[action.type.kind]
    if action.choices:
        return str(next(iter(action.choices)))
    return "x"


def bad_numbers(t: IntRange | FloatRange) -> list[str]:
    """A negative, a non-numeric and out-of-range values (zero when the range excludes it)."""
    out = ["-7", "many", str(t.hi + 1) if isinstance(t, IntRange) else str(t.hi * 2 + 1)]
    if t.lo > 0:
        out.append("0")
    elif t.lo == 0:
        out.append("-1" if isinstance(t, IntRange) else "-0.5")
    if isinstance(t, FloatRange):
        out.append("nan")
    return out


def is_date(t: object) -> bool:
    return t is date


NUMERIC = [(p, a) for p, a in every_action() if isinstance(a.type, (IntRange, FloatRange))]
PATHS = [(p, a) for p, a in every_action() if isinstance(a.type, PathArg)]
OTHER = [(p, a, v) for p, a in every_action() if a.type is zone or is_date(a.type)
         for v in (["Mars/Base", "../etc"] if a.type is zone else ["yesterday", "2026-13-01"])]


def _id(case: tuple) -> str:
    path, action = case[0], case[1]
    return " ".join([*path, name_of(action)]) + (f" {case[2]}" if len(case) > 2 else "")


# -- fixtures -----------------------------------------------------------------------------------
@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment: data directory and local database in tmp, no config file."""
    for k in list(os.environ):
        if k.startswith("RECON_"):
            monkeypatch.delenv(k)
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("RECON_DATA_DIR", str(data))
    monkeypatch.setenv("RECON_LOCAL_DATABASE_URL", f"duckdb:///{tmp_path / 'local.duckdb'}")
    monkeypatch.chdir(tmp_path)
    return data


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    """Bad inputs and valid stand-ins for the other required arguments."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "latin1.toml").write_bytes(b'data_dir = "caf\xe9"\n')
    (d / "good.json").write_text("{}\n")
    (d / "adir").mkdir()
    # a directory nobody can create a file in, even root: /proc; and a path under a file
    return {"missing": d / "nope" / "missing.txt", "dir": d / "adir",
            "latin1": d / "latin1.toml", "good": d / "good.json", "under_file": d / "good.json"}


def ok_values(inputs: dict[str, Path], tmp_path: Path) -> dict[str, str]:
    return {IN_FILE: str(inputs["good"]), IN_DIR: str(inputs["dir"]),
            OUT_FILE: str(tmp_path / "out" / "plan.json"), OUT_DIR: str(tmp_path / "out")}


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``main`` in-process: it must return (never raise, never SystemExit)."""
    code = main(argv)
    assert isinstance(code, int)
    return code, capsys.readouterr().err


# -- the declarations ---------------------------------------------------------------------------
def test_every_command_has_a_row_in_the_exit_code_table_and_readme_shows_it() -> None:
    declared = set(exit_codes.EXIT_CODES)
    runnable = {" ".join(p) for p, _ in commands()}
    assert runnable - declared == set(), "add these to jobs/cli/exit_codes.py EXIT_CODES"
    assert declared - runnable == set(), "EXIT_CODES names commands the parser does not have"
    assert all(set(c) <= {0, 1, 2} and 2 in c for c in exit_codes.EXIT_CODES.values())
    assert exit_codes.markdown() in README.read_text(), \
        "docs/cli.md's exit-code table differs from jobs.cli.exit_codes.markdown(); paste it"


def test_every_numeric_and_path_option_is_typed() -> None:
    """A plain ``type=int``/``float`` would accept ``--limit -3``: every number and path goes
    through a validator that declares its range or role (so the cases below cover it)."""
    untyped = [_id((p, a)) for p, a in every_action() if a.type in (int, float)]
    assert untyped == []
    assert len(NUMERIC) >= 10 and len(PATHS) >= 6 and len(OTHER) >= 6  # the walk found them


# -- bad input, generated from the parser ---------------------------------------------------
@pytest.mark.parametrize(("path", "action"), NUMERIC, ids=[_id(c) for c in NUMERIC])
def test_bad_numbers_exit_2_naming_the_option(path, action, env: Path, inputs, tmp_path,
                                              capsys) -> None:
    before = listing(env)
    ok = ok_values(inputs, tmp_path)
    for value in bad_numbers(action.type):
        code, err = run_main(argv_for(path, action, value, ok), capsys)
        assert code == 2, (value, err)
        assert name_of(action) in err and "Traceback" not in err, (value, err)
    assert listing(env) == before


@pytest.mark.parametrize(("path", "action"), PATHS, ids=[_id(c) for c in PATHS])
def test_bad_paths_exit_2_naming_the_option(path, action, env: Path, inputs, tmp_path,
                                            capsys) -> None:
    before = listing(env)
    ok = ok_values(inputs, tmp_path)
    kind = action.type.kind
    if kind == IN_FILE:
        bad = [inputs["missing"], inputs["dir"], inputs["latin1"]]
    elif kind == IN_DIR:
        bad = [inputs["missing"], inputs["latin1"]]  # a file where a directory is expected
    else:  # outputs: an unwritable directory, a path through a file
        bad = [Path("/proc/recon-test") / "x.json", inputs["under_file"] / "x"]
        if os.geteuid() != 0:
            locked = tmp_path / "locked"
            locked.mkdir(mode=0o500)
            bad.append(locked / "x")
    for value in bad:
        code, err = run_main(argv_for(path, action, str(value), ok), capsys)
        assert code == 2, (value, err)
        assert name_of(action) in err and str(value) in err, (value, err)
        assert "Traceback" not in err
    assert listing(env) == before
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("path", "action", "value"), OTHER, ids=[_id(c) for c in OTHER])
def test_bad_dates_and_zones_exit_2_naming_the_option(path, action, value, env: Path, inputs,
                                                      tmp_path, capsys) -> None:
    code, err = run_main(argv_for(path, action, value, ok_values(inputs, tmp_path)), capsys)
    assert code == 2 and name_of(action) in err and value in err, err


def test_an_unknown_drift_scenario_is_refused(env: Path, tmp_path: Path, capsys) -> None:
    code, err = run_main(["sandbox", "generate", "--out", str(tmp_path / "t"), "--scenario",
                          "D11", "--scenario", "D99"], capsys)
    assert code == 2 and "--scenario D99" in err and not (tmp_path / "t").exists()


def test_invalid_utf8_names_its_line(env: Path, inputs, capsys) -> None:
    code, err = run_main(["--config", str(inputs["latin1"]), "config", "show"], capsys)
    assert code == 2 and "--config" in err and "line 1" in err and "0xe9" in err


# -- subprocesses: nothing on stderr but the message ----------------------------------------
@pytest.mark.parametrize(("argv", "named"), [
    (["demo", "--accounts", "-5"], "--accounts"),
    (["repair", "apply", "no-such-plan.json"], "no-such-plan.json"),
])
def test_as_a_process_no_traceback(argv: list[str], named: str, tmp_path: Path) -> None:
    e = {k: v for k, v in os.environ.items() if not k.startswith("RECON_")}
    e.update(PYTHONPATH=str(REPO), RECON_DATA_DIR=str(tmp_path / "data"))
    r = subprocess.run([sys.executable, "-m", "jobs.cli", *argv], capture_output=True,
                       text=True, env=e, cwd=tmp_path, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and named in r.stderr, r.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "t").exists()


# -- the crash log ------------------------------------------------------------------------------
def _explode(args: argparse.Namespace) -> int:
    raise RuntimeError("boom in postgresql://app:hunter2@db.internal/x")


def test_an_unexpected_error_exits_2_with_a_crash_log(env: Path, monkeypatch, capsys) -> None:
    """A bug (any non-ReconError) is injected into a command: one message, exit 2, and the
    traceback in DATA/crash/, passwords masked."""
    monkeypatch.setattr("jobs.cli.config.cmd_config_show", _explode)
    code, err = run_main(["config", "show"], capsys)
    assert code == 2
    logs = list((env / "crash").glob("*.log"))
    assert len(logs) == 1 and str(logs[0]) in err
    assert "RuntimeError" in err and "Traceback" not in err and "hunter2" not in err
    text = logs[0].read_text()
    assert "Traceback" in text and "_explode" in text and "command: recon config show" in text
    assert "hunter2" not in text and "app:***@db.internal" in text


def test_crash_log_falls_back_to_a_temp_dir(tmp_path: Path, monkeypatch, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("RECON_DATA_DIR", str(blocker / "data"))  # unusable
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("jobs.cli.config.cmd_config_show", _explode)
    code, err = run_main(["config", "show"], capsys)
    logs = list((tmp_path / "tmp" / "recon-crash").glob("*.log"))
    assert code == 2 and len(logs) == 1 and str(logs[0]) in err


# -- exit codes that changed ----------------------------------------------------------------
def test_validate_warnings_alone_exit_0_unless_strict() -> None:
    import polars as pl

    from expectations.results import RESULT_SCHEMA
    from expectations.validate import ValidationResult
    from jobs.cli.validate import exit_code

    def result(*rows: tuple[str, str]) -> ValidationResult:
        frame = pl.DataFrame([{"outcome": o, "severity": s} for o, s in rows],
                             schema={"outcome": pl.String, "severity": pl.String}).with_columns(
            [pl.lit(None, dtype=t).alias(c) for c, t in RESULT_SCHEMA.items()
             if c not in ("outcome", "severity")]).select(list(RESULT_SCHEMA))
        return ValidationResult(run_id="r", path=Path("."), kind="dataset", data_dir=Path("."),
                                results=frame)

    warn = result(("passed", "error"), ("failed", "warning"), ("failed", "warning"))
    assert exit_code(warn) == 0 and exit_code(warn, strict=True) == 1
    assert exit_code(result(("failed", "error"), ("passed", "warning"))) == 1
    assert exit_code(result(("error", "warning"), ("failed", "error"))) == 2
    assert exit_code(result(("passed", "error"))) == 0


@pytest.mark.slow
def test_a_partial_apply_exits_1_and_lists_every_skipped_operation(
        env: Path, tmp_path: Path, capsys) -> None:
    url = os.environ["RECON_LOCAL_DATABASE_URL"]
    make_db(url)
    ops = account_updates(url, 3)
    plan = write_plan(url, tmp_path / "plan.json", ops)
    for o in ops[:2]:  # changed after planning: both must be skipped as conflicts
        outside_write(url, "UPDATE billing_accounts SET zuora_account_name = 'edited' "
                           f"WHERE zuora_account_id = '{o['key']['zuora_account_id']}'")
    code, _ = run_main(["repair", "apply", str(plan), "--force"], capsys)  # dry run
    assert code == 0
    code = main(["repair", "apply", str(plan), "--yes", "--force"])
    out = capsys.readouterr().out
    assert code == 1, out
    for o in ops[:2]:
        assert f"[{o['seq']}] update billing_accounts" in out and "conflict" in out
    code = main(["-q", "repair", "apply", str(plan), "--yes", "--force"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("conflict") == 2, err


# -- generate: a non-empty target, no half-written directory ----------------------------------
@pytest.mark.parametrize("backend", ["duckdb", pytest.param("postgres",
                                                            marks=pytest.mark.postgres)])
@pytest.mark.slow
def test_generate_refuses_a_database_with_data_and_leaves_nothing(
        backend: str, request, tmp_path: Path, env: Path, capsys) -> None:
    url = (request.getfixturevalue("pg_url") if backend == "postgres"
           else f"duckdb:///{tmp_path / 'target.duckdb'}")
    assert main(["-q", "db", "init", "--db", url]) == 0
    outside_write(url, "INSERT INTO customers (id, email) VALUES (1, 'someone@example.com')")
    gen = ["-q", "sandbox", "generate", "--accounts", "4", "--db", url, "--out",
           str(tmp_path / "t")]
    before = sorted(p.name for p in tmp_path.iterdir())
    code, err = run_main(gen, capsys)
    assert code == 2 and "--db" in err and "already holds data" in err and "customers" in err
    assert "--replace" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no t, no temp directory
    assert one(url, "SELECT count(*) FROM customers WHERE email = 'someone@example.com'") == 1
    assert main([*gen, "--replace"]) == 0
    meta = json.loads((tmp_path / "t" / "tenant.json").read_text())
    assert one(url, "SELECT count(*) FROM customers WHERE email = 'someone@example.com'") == 0
    assert one(url, "SELECT count(*) FROM billing_accounts") == meta["local_counts"][
        "billing_accounts"] > 0  # replaced, not appended


@pytest.mark.slow
def test_generated_tenant_directory_replaced_whole_other_directories_refused_and_a_bad_byte(
        tmp_path: Path, env: Path, capsys) -> None:
    out = tmp_path / "t"
    assert main(["-q", "sandbox", "generate", "--accounts", "4", "--out", str(out)]) == 0
    (out / "zuora" / "Stale.jsonl").write_text("{}\n")  # not from this generation
    assert main(["-q", "sandbox", "generate", "--accounts", "5", "--out", str(out)]) == 0
    assert not (out / "zuora" / "Stale.jsonl").exists()
    assert json.loads((out / "tenant.json").read_text())["accounts"] == 5
    other = tmp_path / "home"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, err = run_main(["sandbox", "generate", "--accounts", "4", "--out", str(other)], capsys)
    assert code == 2 and "notes.txt" in err and (other / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

    # `recon sandbox serve` on a dataset file with invalid UTF-8: exit 2, file and line named
    f = out / "zuora" / "Account.jsonl"
    lines = f.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b'"Name":"', b'"Name":"\xff', 1)
    assert b"\xff" in lines[2]
    f.write_bytes(b"\n".join(lines))
    with socket.socket() as taken:  # should the dataset load, serving must fail too
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, err = run_main(["sandbox", "serve", "--data", str(out), "--port", port], capsys)
    assert code == 2 and "Traceback" not in err, err
    if "UTF-8" in err:  # (a later loader may take raw bytes; then it is the port)
        assert f"{f}: line 3" in err and "\\xff" in err, err
    else:
        assert f"--port {port}" in err, err


# -- atomic outputs -----------------------------------------------------------------------------
def test_a_failed_write_keeps_the_previous_file_and_leaves_no_aside(tmp_path: Path) -> None:
    from reports.atomic import OutputError, write_bytes_atomic, write_text_atomic

    target = tmp_path / "report.json"
    write_text_atomic(target, "old")
    with pytest.raises(TypeError):
        write_bytes_atomic(target, "not bytes")  # type: ignore[arg-type]  # fails mid-write
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [
        "report.json"]
    with pytest.raises(OutputError, match="cannot write /proc"):
        write_text_atomic(Path("/proc/recon-test/report.json"), "x")

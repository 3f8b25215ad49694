"""``recon catalog plans``: JSON and text output on the hand-made catalog of
``tests/support/scoped_catalog.py`` (PostgreSQL and DuckDB), the unclassified plans, and bad
scope names refused without a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.localdb.connect import connect, duckdb_url
from jobs.cli import main
from tests.support.pg import pg_schema
from tests.support.scoped_catalog import UNCLASSIFIED, write_catalog


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres",
                                                               marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[str]:
    """A database initialised by `recon db init` holding the hand-made catalog."""
    if request.param == "duckdb":
        u = duckdb_url(tmp_path_factory.mktemp("cli-scopes") / "local.duckdb")
        _fill(u)
        yield u
        return
    with pg_schema(request.getfixturevalue("pg_dsn")) as u:
        _fill(u)
        yield u


def _fill(u: str) -> None:
    assert main(["-q", "db", "init", "--db", u]) == 0
    with connect(u) as db:
        write_catalog(db)


@pytest.fixture(autouse=True)
def _tenant(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray recon.toml
    monkeypatch.setenv("RECON_TENANT_TZ", "Europe/Berlin")


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    code = main(["catalog", "plans", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_json_lists_the_scoped_plans_and_the_unclassified(url: str, capsys) -> None:
    code, doc = _json(capsys, "--db", url, "--scope", "self_managed", "--scope", "ultimate",
                      "--scope", "active", "--as-of", "2026-07-01")
    assert code == 0
    assert (doc["as_of"], doc["tenant_tz"], doc["scopes"]) == (
        "2026-07-01", "Europe/Berlin", ["self_managed", "ultimate", "active"])
    assert [p["plan_id"] for p in doc["plans"]] == [
        "prp_duo", "prp_two", "prp_smu_1y", "prp_smu_future"]  # by product, then plan name
    future = doc["plans"][3]
    assert future == {"plan_id": "prp_smu_future", "plan_name": "Ultimate SM 2027",
                      "product_name": "Ultimate SM", "category_kind": "base",
                      "tiers": "ultimate", "deployment_types": "self_managed",
                      "web_direct__c": False, "effective_start_date": "2026-07-01",
                      "effective_end_date": "2099-12-31"}
    assert {u["plan_id"]: u["problems"] for u in doc["unclassified"]} == {
        k: [v] for k, v in UNCLASSIFIED.items()}


def test_as_of_on_each_side_of_an_end_date(url: str, capsys) -> None:
    before = _json(capsys, "--db", url, "--scope", "sales_assisted", "--scope", "active",
                   "--as-of", "2026-06-30")[1]
    edge = _json(capsys, "--db", url, "--scope", "sales_assisted", "--scope", "active",
                 "--as-of", "2026-07-01")[1]
    assert [p["plan_id"] for p in before["plans"]] == ["prp_ded", "prp_duo", "prp_smp_old"]
    assert [p["plan_id"] for p in edge["plans"]] == ["prp_ded", "prp_duo", "prp_smu_future"]


def test_text_output_and_fail_on_unclassified(url: str, capsys) -> None:
    assert main(["catalog", "plans", "--db", url, "--scope", "dedicated",
                 "--as-of", "2026-06-30"]) == 0
    out = capsys.readouterr().out
    assert "catalog plans in dedicated, as of 2026-06-30 (Europe/Berlin): 2" in out
    assert "4 current plan(s) cannot be classified" in out
    assert "prp_orphan  'Orphan 1y' of '?': its product is not in the catalog" in out
    assert main(["catalog", "plans", "--db", url, "--fail-on-unclassified",
                 "--as-of", "2026-06-30"]) == 1


@pytest.mark.parametrize("argv", [["--scope", "platinum"], ["--scope", "Premium"],
                                  ["--as-of", "2026-13-01"]])
def test_bad_input_exits_2_naming_what_is_known(argv: list[str], capsys,
                                                tmp_path: Path) -> None:
    db = duckdb_url(tmp_path / "none.duckdb")
    assert main(["catalog", "plans", "--db", db, *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if argv[0] == "--scope":
        assert f"unknown scope '{argv[1]}'; the known scopes are: self_managed, dedicated, " \
               "gitlab_dot_com, base_products, add_ons, web_direct, sales_assisted, " \
               "ultimate, premium, active" in err
    else:
        assert "is not a date" in err


def test_no_database_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["catalog", "plans", "--db", duckdb_url(tmp_path / "missing.duckdb")]) == 2
    assert "no local database" in capsys.readouterr().err

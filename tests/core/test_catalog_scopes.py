"""Catalog scopes (seed 004, issue 16 part 4) on a hand-made catalog, on PostgreSQL and DuckDB:
each scope's plans, three combinations, ``active`` on each side of an EffectiveEndDate, the
tenant zone's today, the plans that cannot be classified, and the view ``recon db init``
creates. Expected plan lists are literal (``tests/support/scoped_catalog.py``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.catalog.scopes import LOCAL, NAMES, SCOPE, scopes
from core.errors import CatalogError, ConfigError, LocalDatabaseError
from core.localdb.connect import LocalDB, connect, duckdb_url
from core.localdb.scopes import VIEW, plan_ids, plans, tenant_today
from tests.support.pg import pg_schema
from tests.support.scoped_catalog import (
    ACTIVE,
    BEFORE,
    EDGE,
    EXPECTED,
    UNCLASSIFIED,
    write_catalog,
)

UTC = dt.UTC


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres",
                                                               marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
       ) -> Iterator[LocalDB]:
    """One database per dialect for the module: schema by init, the catalog written once."""
    if request.param == "duckdb":
        url = duckdb_url(tmp_path_factory.mktemp("scopes") / "local.duckdb")
        with connect(url) as conn:
            conn.init_schema()
            write_catalog(conn)
            yield conn
        return
    with pg_schema(request.getfixturevalue("pg_dsn")) as url, connect(url) as conn:
        conn.init_schema()
        write_catalog(conn)
        yield conn


def ids(db: LocalDB, *names: str, as_of: dt.date = BEFORE) -> set[str]:
    return set(plan_ids(db, *names, as_of=as_of))


def test_the_seed_names_every_scope() -> None:
    assert NAMES == ("self_managed", "dedicated", "gitlab_dot_com", "base_products", "add_ons",
                     "web_direct", "sales_assisted", "ultimate", "premium", "active")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_scope_lists_its_plans(db: LocalDB, name: str) -> None:
    assert ids(db, name) == EXPECTED[name]


def test_three_combinations(db: LocalDB) -> None:
    # the seed's ALL_PREMIUM_SM_PLANS: a contradicting and an uncategorised plan are in it by
    # their metadata (and are listed as unclassified too)
    assert ids(db, "self_managed", "premium") == {
        "prp_smp_1y", "prp_smp_old", "prp_two", "prp_nocat", "prp_retired"}
    assert ids(db, "add_ons", "web_direct", "gitlab_dot_com") == {"prp_storage"}
    # composed as objects with &, and the same by names
    combo = SCOPE["self_managed"] & SCOPE["ultimate"] & SCOPE["active"]
    assert ids(db, combo) == {"prp_smu_1y", "prp_duo", "prp_two"}
    assert ids(db, "self_managed", "ultimate", "active") == {"prp_smu_1y", "prp_duo", "prp_two"}


def test_active_on_each_side_of_an_effective_end_date(db: LocalDB) -> None:
    """prp_smp_old ends on EDGE (not active that day: the end is exclusive); prp_smu_future
    starts on EDGE (active that day: the start is inclusive)."""
    assert ids(db, "active", as_of=BEFORE) == ACTIVE[BEFORE]
    assert ids(db, "active", as_of=EDGE) == ACTIVE[EDGE]
    assert ids(db, "premium", "active", as_of=BEFORE) == {
        "prp_smp_1y", "prp_smp_old", "prp_saas_prem", "prp_storage", "prp_two", "prp_nocat"}
    assert ids(db, "premium", "active", as_of=EDGE) == {
        "prp_smp_1y", "prp_saas_prem", "prp_storage", "prp_two", "prp_nocat"}
    assert ids(db, "self_managed", "ultimate", "active", as_of=EDGE) == {
        "prp_smu_1y", "prp_smu_future", "prp_duo", "prp_two"}


def test_today_is_the_tenant_zones_date(db: LocalDB) -> None:
    """03:00 UTC on EDGE is still BEFORE in Los Angeles: the plan ending on EDGE is active
    there, and not in a UTC tenant."""
    at = dt.datetime(2026, 7, 1, 3, 0, tzinfo=UTC)
    assert tenant_today("America/Los_Angeles", lambda: at) == BEFORE
    la = plans(db, "active", tenant_tz="America/Los_Angeles", clock=lambda: at)
    utc = plans(db, "active", tenant_tz="UTC", clock=lambda: at)
    assert (la.as_of, set(la.ids)) == (BEFORE, ACTIVE[BEFORE])
    assert (utc.as_of, set(utc.ids)) == (EDGE, ACTIVE[EDGE])


def test_unclassified_and_contradicting_plans_are_listed_with_their_reasons(db) -> None:
    """Whatever the scopes, the current plans with D22 reasons; a retired one is not."""
    for wanted in ((), ("dedicated",)):
        got = plans(db, *wanted, as_of=BEFORE).unclassified
        assert dict(zip(got["plan_id"], got["problems"], strict=True)) == UNCLASSIFIED


def test_the_view_classifies_each_plan_as_the_api_does(db: LocalDB) -> None:
    view = db.query(f"SELECT * FROM {VIEW}")
    assert set(view["plan_id"]) == set(ACTIVE[BEFORE]) | {"prp_smu_future", "prp_retired"}
    for name, want in EXPECTED.items():
        assert set(view.filter(view[name])["plan_id"]) == want, name
    row = view.filter(view["plan_id"] == "prp_storage").row(0, named=True)
    assert (row["category_kind"], row["tiers"], row["deployment_types"]) == (
        "add_on", "premium;ultimate", "gitlab_dot_com")
    assert view.filter(view["plan_id"] == "prp_support")["category_kind"].item() == \
        "miscellaneous"
    odd = view.filter(view["problems"].is_not_null())
    assert set(odd["plan_id"]) == set(UNCLASSIFIED) | {"prp_retired"}


def test_an_unknown_scope_names_the_known_ones(db: LocalDB) -> None:
    with pytest.raises(CatalogError, match="unknown catalog scope 'platinum'.*self_managed, "
                       "dedicated"):
        plans(db, "premium", "platinum", as_of=BEFORE)
    with pytest.raises(CatalogError, match="needs a date"):
        scopes("active").sql(LOCAL)
    with pytest.raises(ConfigError, match="give as_of, or tenant_tz"):
        plans(db, "active")


def test_a_database_without_the_catalog_cache_is_named(tmp_path: Path) -> None:
    with connect(duckdb_url(tmp_path / "empty.duckdb")) as empty:
        with pytest.raises(LocalDatabaseError, match="no catalog cache table .*recon db init"):
            plans(empty, "premium", as_of=BEFORE)

"""Reading records by key (extract.bykey), both ways, from the sandbox over HTTP."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from core.catalog import OBJECTS
from core.values import empty_frame
from extract.bykey import read_by_key
from extract.client import RetryPolicy, ZuoraClient
from sandbox.generate.run import Options, generate
from sandbox.server import SandboxServer
from tests.support.pipeline import SECRET


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory):
    out: Path = tmp_path_factory.mktemp("bykey-tenant")
    generate(Options(accounts=6, seed=7, drift=0.0), out)
    with SandboxServer(out, client_id="recon", client_secret=SECRET) as srv:
        srv.store.preload()
        yield srv


def test_every_object_reads_the_same_typed_rows_both_ways(sandbox: SandboxServer) -> None:
    """ZOQL and Object Query spell fields, dateTimes and numbers differently; read through
    the catalogue both give the snapshot's typed rows, identical, for every object."""
    with ZuoraClient(sandbox.url, "recon", SECRET, policy=RetryPolicy(attempts=2)) as client:
        for spec in OBJECTS:
            ids = sandbox.store.live(spec.name)["Id"].head(120).to_list()
            assert ids, spec.name
            z = read_by_key(client, spec, "Id", ids, tenant_tz=sandbox.tenant_tz, api="zoql")
            o = read_by_key(client, spec, "Id", ids, tenant_tz=sandbox.tenant_tz,
                            api="object_query")
            assert z.rejects.height == 0 and o.rejects.height == 0, spec.name
            assert z.frame.height == len(ids), spec.name
            assert z.frame.columns == spec.field_names
            assert z.frame.sort("Id").equals(o.frame.sort("Id")), spec.name
            assert z.frame.schema == empty_frame(spec).schema  # the snapshot's types
            # and the very values the tenant holds
            want = sandbox.store.live(spec.name).filter(pl.col("Id").is_in(ids)).select(
                spec.field_names)
            assert z.frame.sort("Id").equals(want.sort("Id")), spec.name


def test_unknown_keys_read_nothing_and_no_keys_ask_nothing(sandbox: SandboxServer) -> None:
    with ZuoraClient(sandbox.url, "recon", SECRET, policy=RetryPolicy(attempts=2)) as client:
        spec = OBJECTS[0]
        for api in ("zoql", "object_query"):
            got = read_by_key(client, spec, "Id", ["0" * 32], tenant_tz=sandbox.tenant_tz,
                              api=api)
            assert got.frame.height == 0 and got.requests == 1
        assert read_by_key(client, spec, "Id", [], tenant_tz=sandbox.tenant_tz).requests == 0


def test_object_query_enum_spellings_are_read_back_from_the_catalogues_declaration(
        sandbox: SandboxServer) -> None:
    """Object Query spells some enum values differently from ZOQL (``PerBillingPeriod`` for
    ``Per Billing Period``, docs §2.7). A field declaring those pairs once
    (``Field.object_query_values``) is served so by the sandbox and read back to the read
    spelling, so both APIs still give identical typed rows. No copied field differs today, so
    this declares pairs on ChargeModel for the duration of the test."""
    import dataclasses
    import json

    from core.catalog import BY_NAME

    spec = BY_NAME["ProductRatePlanCharge"]
    old = spec.field("ChargeModel")
    pairs = tuple((v, v.upper().replace(" ", "_")) for v in old.enum)
    new = dataclasses.replace(old, object_query_values=pairs)
    fields = tuple(new if f is old else f for f in spec.fields)
    object.__setattr__(spec, "fields", fields)
    spec._by_name["ChargeModel"] = new
    try:
        ids = sandbox.store.live(spec.name)["Id"].head(60).to_list()
        with ZuoraClient(sandbox.url, "recon", SECRET,
                         policy=RetryPolicy(attempts=2)) as client:
            raw = json.loads(client.request(
                "GET", f"/object-query/{spec.object_query_path}", route="object_query",
                params={"pageSize": "99", "fields[]": "chargeModel"}).text)["data"]
            served = {r["chargeModel"] for r in raw if "chargeModel" in r}
            assert served and served <= {oq for _, oq in pairs}  # the sandbox speaks it
            z = read_by_key(client, spec, "Id", ids, tenant_tz=sandbox.tenant_tz, api="zoql")
            o = read_by_key(client, spec, "Id", ids, tenant_tz=sandbox.tenant_tz,
                            api="object_query")
        assert o.rejects.height == 0
        assert set(o.frame["ChargeModel"].drop_nulls()) <= set(old.enum)
        assert z.frame.sort("Id").equals(o.frame.sort("Id"))
    finally:
        object.__setattr__(spec, "fields", tuple(old if f is new else f for f in spec.fields))
        spec._by_name["ChargeModel"] = old

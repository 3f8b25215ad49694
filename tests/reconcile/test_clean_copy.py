"""A clean local copy equals the Zuora side after the catalogue's normalisation; D26
variations stay equal; the dataset files round-trip through Zuora's string formats."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from core import dataset
from core.catalog import OBJECTS, get
from core.localdb.connect import connect
from core.values import parse_frame
from sandbox.generate.drift import normalisation
from sandbox.generate.run import Options, generate
from tests.support.oracle import diff
from tests.support.worlds import fresh_world


def test_clean_local_copy_equals_zuora() -> None:
    w = fresh_world()
    assert diff(w.zuora, w.local).height == 0


def test_d26_variations_are_normalised_away_and_labelled() -> None:
    w = fresh_world()
    normalisation.apply_d26(w, 0.05)
    labels = w.label_frame()
    assert labels.height > 20
    assert set(labels["kind"]) == {"none"}
    assert {"Status", "PriceFormat", "WorkEmail", "TurnOnCloudLicensing__c"} <= set(labels["field"])
    # the variations really are there on the local side...
    subs = w.local["zuora_local_subscriptions"]
    assert subs.filter(pl.col("status") == "PendingActivation").height > 0
    assert subs.filter(pl.col("turn_on_cloud_licensing__c") == "").height > 0
    # ...and normalisation makes them equal
    assert diff(w.zuora, w.local).height == 0


def test_a_real_difference_is_seen_by_the_oracle() -> None:
    """Guards the test above: the oracle is not blind."""
    w = fresh_world()
    key = w.local["zuora_local_rate_plan_charge_tiers"]["zuora_id"][0]
    w.update_local("zuora_local_rate_plan_charge_tiers", "zuora_id", [key],
                   price=pl.col("price") + pl.lit(1).cast(pl.Decimal(18, 2)))
    d = diff(w.zuora, w.local)
    assert d.select("object", "key", "field").rows() == [("RatePlanChargeTier", key, "Price")]


@pytest.mark.slow
def test_dataset_files_and_metadata(small_dataset: Path) -> None:
    for spec in OBJECTS:
        assert dataset.object_path(small_dataset, spec).is_file(), spec.name
    meta = json.loads((small_dataset / "tenant.json").read_text())
    assert meta["accounts"] == 150 and meta["tenant_tz"] == "America/Los_Angeles"
    labels = pl.read_parquet(small_dataset / "labels.parquet")
    assert set(labels.columns) == {"scenario", "object", "key", "field", "kind", "rule",
                                   "action", "detail"}
    assert labels.filter(pl.col("kind") != "none").height > 0
    # labels live outside the directories the pipeline reads
    assert not (small_dataset / "zuora" / "labels.parquet").exists()


def test_zuora_strings_carry_tenant_offset(small_dataset: Path) -> None:
    line = dataset.object_path(small_dataset, get("Subscription")).read_text().splitlines()[0]
    row = json.loads(line)
    assert row["CreatedDate"][-6:] in ("-07:00", "-08:00") and ".000" in row["CreatedDate"]
    assert len(row["TermStartDate"]) == 10


def test_dataset_parses_back_without_rejects_and_matches_local(small_dataset: Path) -> None:
    zuora = {}
    for spec in OBJECTS:
        parsed = parse_frame(spec, dataset.read_object(small_dataset, spec), "America/Los_Angeles")
        assert parsed.rejects.height == 0, parsed.rejects.head()
        zuora[spec.name] = parsed.frame
    with connect(f"duckdb:///{small_dataset / 'local.duckdb'}") as db:
        local = {t: db.read_table(t) for t in [s.table for s in OBJECTS]}
    # chunking (60 accounts per chunk) must not break ids, keys or sequences
    for spec in OBJECTS:
        assert zuora[spec.name]["Id"].n_unique() == zuora[spec.name].height
    assert zuora["Subscription"]["Name"].str.slice(0, 3).eq("A-S").all()
    # all differences between the written sides are labelled (drift), none unexplained
    d = diff(zuora, local)
    labels = pl.read_parquet(small_dataset / "labels.parquet")
    labelled = set(labels.filter(pl.col("kind").is_in(
        ["missing_in_local", "orphaned_in_local", "field_mismatch"])).select(
        "object", "key").iter_rows())
    assert set(d.select("object", "key").iter_rows()) <= labelled


@pytest.mark.slow
def test_generation_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        generate(Options(accounts=40, seed=9, drift=0.05, as_of=dt.date(2026, 11, 1)), out)
    for spec in OBJECTS:
        assert dataset.object_path(a, spec).read_bytes() == dataset.object_path(b, spec).read_bytes()
    assert pl.read_parquet(a / "labels.parquet").equals(pl.read_parquet(b / "labels.parquet"))


@pytest.mark.slow
@pytest.mark.postgres
def test_generate_into_postgresql(tmp_path: Path, pg_url: str) -> None:
    summary = generate(Options(accounts=60, seed=3, drift=0.05), tmp_path / "t", pg_url)
    with connect(pg_url) as db:
        n = db.query("SELECT count(*) AS n FROM zuora_local_subscriptions")["n"][0]
        assert n == summary.local_counts["zuora_local_subscriptions"] > 0
        # identities moved past the loaded ids: a plain insert works
        db.execute("INSERT INTO customers (email) VALUES ('new.person@example.com')")


def test_block_wise_reading_equals_a_whole_file_read(small_dataset: Path, monkeypatch) -> None:
    """Tiny blocks cut lines everywhere; every row must still come back exactly once."""
    spec = get("RatePlanCharge")
    whole = pl.read_ndjson(dataset.object_path(small_dataset, spec),
                           schema={f.name: pl.String for f in spec.fields})
    monkeypatch.setattr(dataset, "BLOCK_BYTES", 4096)
    blocks = list(dataset.iter_object(small_dataset, spec))
    assert len(blocks) > 10
    assert pl.concat(blocks).equals(whole)

"""Snapshot publication (temp dir → rename; failed runs kept and never 'latest'), checksums,
recon's state file, the merge of a delta onto a base, and the streaming helpers."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from core.catalog import get
from core.snapshot import (
    IterStream,
    Manifest,
    SnapshotError,
    SnapshotWriter,
    latest_complete,
    list_snapshots,
    mark_interrupted,
    new_run_id,
    open_snapshot,
)
from core.state import StateDB, register_table
from extract.aqua import DELETED_FLAG, AquaExporter, AquaFileError, ExportQuery, Window
from extract.extractor import (
    ExtractError,
    SuspectExportError,
    check_keys,
    check_not_suspect,
    merge_object,
    merge_rejects,
)


def write_snapshot(data: Path, *, ok: bool, rows: int = 2,
                   when: dt.datetime | None = None) -> SnapshotWriter:
    run_id = new_run_id(when)
    w = SnapshotWriter(data, run_id)
    pl.DataFrame({"Id": [f"id{i}" for i in range(rows)]}).write_parquet(w.path("zuora", "Product"))
    m = Manifest(run_id=run_id, mode="full", zuora={"Product": {"rows": rows}})
    if ok:
        w.complete(m)
    else:
        w.fail(m, RuntimeError("boom"))
    return w


def test_complete_snapshot_is_renamed_and_checksummed(tmp_path: Path) -> None:
    w = write_snapshot(tmp_path, ok=True)
    assert not w.dir.exists() and w.final_dir.is_dir()
    s = latest_complete(tmp_path)
    assert s is not None and s.path == w.final_dir and s.complete
    files = s.manifest.files
    assert list(files) == ["zuora/Product.parquet"] and len(files["zuora/Product.parquet"][
        "sha256"]) == 64
    s.verify()
    s.zuora_path("Product").write_bytes(b"tampered")
    with pytest.raises(SnapshotError, match="does not match its checksum"):
        s.verify()


def test_failed_and_partial_snapshots_are_never_latest(tmp_path: Path) -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    good = write_snapshot(tmp_path, ok=True, when=t0)
    bad = write_snapshot(tmp_path, ok=False, when=t0 + dt.timedelta(hours=1))
    running = SnapshotWriter(tmp_path, new_run_id(t0 + dt.timedelta(hours=2)))  # abandoned
    # a directory named like a run but whose manifest says failed (e.g. renamed by hand)
    forged = tmp_path / "snapshots" / new_run_id(t0 + dt.timedelta(hours=3))
    forged.mkdir()
    (forged / "manifest.json").write_text(Manifest(run_id=forged.name, mode="full",
                                                   status="failed").to_json())
    # a complete manifest copied under another name is not trusted either
    renamed = tmp_path / "snapshots" / new_run_id(t0 + dt.timedelta(hours=4))
    renamed.mkdir()
    (renamed / "manifest.json").write_text((good.final_dir / "manifest.json").read_text())

    assert latest_complete(tmp_path).path == good.final_dir
    assert bad.failed_dir.name.endswith(".failed")
    m = json.loads((bad.failed_dir / "manifest.json").read_text())
    assert m["status"] == "failed" and m["error"] == "boom" and m["error_type"] == "RuntimeError"
    assert running.dir.name.startswith(".tmp-")
    assert [s.path.name for s in list_snapshots(tmp_path) if s.complete] == [good.run_id]

    marked = mark_interrupted(tmp_path)
    assert [p.name for p in marked] == [f"{running.run_id}.failed"]
    assert open_snapshot(marked[0]).manifest.error.startswith("interrupted")
    assert latest_complete(tmp_path).path == good.final_dir


def test_no_snapshot_at_all(tmp_path: Path) -> None:
    assert latest_complete(tmp_path) is None and list_snapshots(tmp_path) == []


def test_state_marks_and_generic_tables(tmp_path: Path) -> None:
    t = dt.datetime(2026, 11, 1, 12, 0, 5, tzinfo=dt.UTC)
    with StateDB(tmp_path) as st:
        assert st.hwms() == {}
        st.set_hwms("run-1", "full", {"Account": t, "Contact": t})
        st.set_hwms("run-2", "incremental", {"Account": t + dt.timedelta(hours=1)})
    with StateDB(tmp_path) as st:
        marks = st.hwms()
    assert marks["Account"].hwm == t + dt.timedelta(hours=1) and marks["Account"].run_id == "run-2"
    assert marks["Contact"].hwm == t and marks["Contact"].mode == "full"
    register_table("test_floor_runs",
                   "CREATE TABLE IF NOT EXISTS test_floor_runs (run_id VARCHAR PRIMARY KEY)")
    with StateDB(tmp_path) as st:
        st.con.execute("INSERT INTO test_floor_runs VALUES ('r')")
        assert st.con.execute("SELECT count(*) FROM test_floor_runs").fetchone() == (1,)
    with pytest.raises(ValueError, match="IF NOT EXISTS"):
        register_table("bad", "CREATE TABLE bad (x INT)")


def test_merge_object_upserts_deletes_and_inserts(tmp_path: Path) -> None:
    base = pl.DataFrame({"Id": ["a", "b", "c"], "v": [1, 2, 3]})
    delta = pl.DataFrame({"Id": ["b", "c", "d", "d"], "v": [20, None, 40, 41],
                          DELETED_FLAG: [False, True, False, False]})
    base.write_parquet(tmp_path / "base.parquet")
    delta.write_parquet(tmp_path / "delta.parquet")
    n, up, dele = merge_object(tmp_path / "base.parquet", tmp_path / "delta.parquet",
                               tmp_path / "out.parquet")
    out = pl.read_parquet(tmp_path / "out.parquet").sort("Id")
    assert out.to_dicts() == [{"Id": "a", "v": 1}, {"Id": "b", "v": 20}, {"Id": "d", "v": 41}]
    assert (n, up, dele) == (3, 2, 1)

    rej = {"object": "X", "field": "v", "value": "?", "rule": "parse:int"}
    pl.DataFrame([{**rej, "key": "a"}, {**rej, "key": "b"}]).write_parquet(tmp_path / "br.parquet")
    pl.DataFrame([{**rej, "key": "d"}]).write_parquet(tmp_path / "dr.parquet")
    k = merge_rejects(tmp_path / "br.parquet", tmp_path / "dr.parquet",
                      tmp_path / "delta.parquet", tmp_path / "rej.parquet")
    assert k == 2
    assert sorted(pl.read_parquet(tmp_path / "rej.parquet")["key"]) == ["a", "d"]


def test_key_checks(tmp_path: Path) -> None:
    pl.DataFrame({"Id": ["a", "a", "b"]}).write_parquet(tmp_path / "d.parquet")
    with pytest.raises(ExtractError, match=r"Account: 1 duplicate Id\(s\).*'a'"):
        check_keys("Account", tmp_path / "d.parquet")
    pl.DataFrame({"Id": ["a", None]}).write_parquet(tmp_path / "n.parquet")
    with pytest.raises(ExtractError, match="have no Id"):
        check_keys("Account", tmp_path / "n.parquet")


def test_suspect_rule_only_for_objects_that_had_rows(tmp_path: Path) -> None:
    write_snapshot(tmp_path, ok=True, rows=13)
    prev = latest_complete(tmp_path)
    check_not_suspect({"Product": 13, "Contact": 0}, prev, ())  # Contact had none before
    check_not_suspect({"Product": 0}, prev, ("Product",))
    check_not_suspect({"Product": 0}, None, ())  # first run ever: nothing to compare
    with pytest.raises(SuspectExportError, match=r"Product \(had 13 rows\)"):
        check_not_suspect({"Product": 0}, prev, ("Account",))


def test_iter_stream_reads_many_small_chunks_and_keeps_nul() -> None:
    s = IterStream(iter([b"a,", b"", b"b\0\n", b"1,2\n"]))
    assert s.read(100) == b"a,b\0\n1,2\n"
    assert s.read(10) == b"" and s.bytes == 9 and s.ended_with_newline
    assert IterStream(iter([b"", b""])).empty()


def test_queries_come_from_the_catalogue() -> None:
    spec = get("Subscription")
    q = ExportQuery(spec, Window(dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC),
                                 dt.datetime(2026, 11, 2, 6, 30, tzinfo=dt.UTC)), deleted=True)
    text = q.zoql()
    assert text.startswith("select Id, Version, ") and " from Subscription where " in text
    assert all(f in text for f in spec.field_names)
    assert text.endswith("where UpdatedDate >= '2026-11-01T08:00:00+00:00' and "
                         "UpdatedDate < '2026-11-02T06:30:00+00:00'")
    body = q.body()
    assert body["deleted"] == {"column": "IsDeleted", "format": "Boolean", "forceExport": True}
    assert q.expected_header[:2] == ["Subscription.IsDeleted", "Subscription.Id"]
    assert "where" not in ExportQuery(spec).zoql()


def test_header_mismatch_names_the_fields() -> None:
    q = ExportQuery(get("Product"))
    header = [h for h in q.expected_header if h != "Product.SKU"] + ["Product.Bogus"]
    exporter = AquaExporter.__new__(AquaExporter)
    with pytest.raises(AquaFileError, match=r"missing \['SKU'\]; unexpected \['Bogus'\]"):
        exporter._check_header(q, header, "Product: file f1", "job1")


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def iter_content(self, chunk_size: int) -> object:
        return (self.data[i:i + 7] for i in range(0, len(self.data), 7))  # tiny chunks

    def close(self) -> None:
        pass


class _StubClient:
    """Serves one canned CSV body for any file download."""

    def __init__(self, body: bytes) -> None:
        from extract.client import ApiStats, RetryPolicy

        self.body = body
        self.stats = ApiStats()
        self.policy = RetryPolicy(attempts=2, backoff_base=0, sleep=lambda s: None)

    def request(self, *a: object, **kw: object) -> _Body:
        return _Body(self.body)


def _product_csv(rows: list[dict[str, str]]) -> bytes:
    spec = get("Product")
    lines = [",".join(f"Product.{f}" for f in spec.field_names)]
    for r in rows:
        lines.append(",".join(r.get(f, "") for f in spec.field_names))
    return ("\n".join(lines) + "\n").encode()


def _export_with(body: bytes, tmp_path: Path, record_count: int):
    from extract.aqua import AquaOptions

    ex = AquaExporter(_StubClient(body), "America/Los_Angeles",  # type: ignore[arg-type]
                      AquaOptions(file_attempts=1))
    q = ExportQuery(get("Product"))
    (tmp_path / "rejects").mkdir(exist_ok=True)
    return ex._download_object("job1", q, {"fileId": "f1", "recordCount": record_count},
                               tmp_path, tmp_path / "rejects")


GOOD = {"Id": "p1", "Name": "Pre\0mium", "SKU": "SKU-1", "EffectiveStartDate": "2020-01-01",
        "EffectiveEndDate": "2099-12-31", "CreatedById": "u", "UpdatedById": "u",
        "CreatedDate": "2026-03-08T10:00:00+0000", "UpdatedDate": "2026-11-01T09:30:00+0000"}


def test_values_that_fail_typing_go_to_rejects_never_dropped(tmp_path: Path) -> None:
    bad = {**GOOD, "Id": "p2", "EffectiveStartDate": "2026-13-45", "UpdatedDate": "soon"}
    res = _export_with(_product_csv([GOOD, bad]), tmp_path, 2)
    typed = pl.read_parquet(res.path).sort("Id")
    assert typed["Id"].to_list() == ["p1", "p2"]  # the row is kept...
    assert typed["Name"][0] == "Pre\0mium"  # a NUL byte is Zuora data: kept exactly
    assert typed["UpdatedDate"][0] == dt.datetime(2026, 11, 1, 9, 30)
    assert typed["EffectiveStartDate"][1] is None  # ...with the bad value null
    rej = pl.read_parquet(res.rejects_path).sort("field")
    assert res.rejects == 2
    assert rej.to_dicts() == [
        {"object": "Product", "key": "p2", "field": "EffectiveStartDate",
         "value": "2026-13-45", "rule": "parse:d", "location": "file f1 record 2"},
        {"object": "Product", "key": "p2", "field": "UpdatedDate", "value": "soon",
         "rule": "parse:dt", "location": "file f1 record 2"},
    ]


def test_undecodable_bytes_quarantine_the_record_not_the_file(tmp_path: Path) -> None:
    """One Name that is not UTF-8 (and one record whose key is not) costs that record, not
    the object: the file is read once, the rest arrives, the rejects name the record."""
    body = _product_csv([GOOD, GOOD | {"Id": "p2"}, GOOD | {"Id": "p3"}])
    body = body.replace(b"p2,Pre\0mium", b"p2,Pre\xffmium").replace(b"p3,", b"p\xfe3,")
    res = _export_with(body, tmp_path, 3)
    assert res.downloads == 1
    typed = pl.read_parquet(res.path).sort("Id")
    assert typed["Id"].to_list() == ["p1", "p2"]  # p\xfe3 has no identity: not written
    assert typed["Name"].to_list() == ["Pre\0mium", None]
    rej = pl.read_parquet(res.rejects_path).sort("field").to_dicts()
    assert rej == [
        {"object": "Product", "key": None, "field": "Id", "value": "p\\xfe3",
         "rule": "utf8", "location": "file f1 record 3"},
        {"object": "Product", "key": "p2", "field": "Name", "value": "Pre\\xffmium",
         "rule": "utf8", "location": "file f1 record 2"},
    ]


@pytest.mark.parametrize(("body", "count", "words"), [
    (_product_csv([GOOD, GOOD | {"Id": "p2"}])[:-30], 2, "truncated or non-rectangular"),
    (_product_csv([GOOD]), 2, "recordCount 2"),
    (_product_csv([GOOD])[:-1], 1, "not terminated by a newline"),
    (b"", 0, "is empty"),
])
def test_broken_files_are_detected(tmp_path: Path, body: bytes, count: int, words: str) -> None:
    from extract.aqua import _Resubmit

    with pytest.raises(_Resubmit) as e:
        _export_with(body, tmp_path, count)
    assert isinstance(e.value.error, AquaFileError) and words in str(e.value.error)
    assert e.value.error.objects == ("Product",)
    assert not (tmp_path / "Product.parquet").exists()

"""The drift report end to end: three runs of a small generated world (drift, history,
HTML and script payloads in a contact name and a subscription note, a quarantined row, a
failed check, then a failed extract), their reports as files, and the page in headless
Chromium (no console error, no request, numbers equal report.json, a filter from the URL
hash, nothing injected executes, a screenshot).

Chromium is Debian's ``/usr/bin/chromium`` (``make test`` installs it where it can). Under
``CI=true`` a missing Chromium fails these tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from html import unescape
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from core.config import Secret, Settings
from core.snapshot import Manifest, SnapshotWriter
from expectations.results import CheckResult, results_frame, store_results
from jobs.cli import main
from reconcile.engine import reconcile_snapshot
from repair.plan import write_plan
from repair.planner import build_plan
from reports import SCHEMA_VERSION, RunNotFound, build_report
from sandbox.generate.drift import SCENARIOS
from tests.support.chromium import Chromium
from tests.support.snapshots import LATER, write_snapshot
from tests.support.worlds import fresh_world

RUN1, RUN2, RUN3 = "20261102T070000Z", "20261103T070000Z", "20261104T070000Z"
NAME = '<img src=x onerror="window.__pwned=1;alert(1)">Zoë & "Co" \'</td>'
NOTE = "</script><script>window.__pwned=2;alert(2)</script><b>bold?</b>"
OLD_NOTE = "<i>old</i> & <script>window.__pwned=3</script>"
NEW_NAME = "<svg onload=alert(3)>Smith"
QVALUE = "<script>window.__pwned=4</script>"
SECRET, PASSWORD, HOST = "s3cr3t-XYZ", "pw-SECRET", "db.internal"
TEMPLATE = "https://zuora.example/apps/{object}/{id}"

# Every test here reads the module's three reconciled runs (or drives Chromium): slow.
pytestmark = pytest.mark.slow


def _settings(data: Path, **kw: Any) -> Settings:
    return Settings(data_dir=data, zuora_client_secret=Secret(SECRET),
                    local_database_url=f"postgresql://recon:{PASSWORD}@{HOST}:5432/billing",
                    report_zuora_url_template=kw.pop("template", TEMPLATE), **kw)


def _set(frame: pl.DataFrame, key_col: str, key: str, col: str, value: str) -> pl.DataFrame:
    return frame.with_columns(pl.when(pl.col(key_col) == key).then(pl.lit(value))
                              .otherwise(pl.col(col)).alias(col))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data = tmp_path_factory.mktemp("report")
    world = fresh_world()
    for sid in ("D05", "D06", "D19", "D11", "D21"):
        SCENARIOS[sid](world, 2)
    at = dt.datetime.combine(world.as_of, dt.time(7)) + LATER
    contacts = world.zuora["Contact"]["Id"].to_list()
    c1, c2 = contacts[10], contacts[11]
    sub = world.zuora["Subscription"].row(20, named=True)

    def variant(name_on: str | None, new_on: str | None) -> Any:
        w = copy.copy(world)
        w.zuora, w.local = dict(world.zuora), dict(world.local)
        contact = w.zuora["Contact"]
        if name_on:
            contact = _set(contact, "Id", name_on, "FirstName", NAME)
        if new_on:
            contact = _set(contact, "Id", new_on, "LastName", NEW_NAME)
        w.zuora["Contact"] = contact
        w.zuora["Subscription"] = _set(w.zuora["Subscription"], "Id", sub["Id"], "Notes", NOTE)
        w.local["zuora_local_subscriptions"] = _set(
            w.local["zuora_local_subscriptions"], "zuora_id", sub["Id"], "notes", OLD_NOTE)
        return w

    first = reconcile_snapshot(write_snapshot(variant(c1, None), data, RUN1, at), data)
    # run 2: the name payload is gone (resolved), the note persists, a new payload appears
    qdir = data / "runs" / RUN2 / "quarantine"
    qdir.mkdir(parents=True)
    qkey = world.zuora["Account"]["Id"][30]
    pl.DataFrame({"side": ["local"], "object": ["Account"], "table": ["billing_accounts"],
                  "key": [qkey], "column": ["currency"], "check": ["enum"], "value": [QVALUE],
                  "severity": ["error"]}).write_parquet(qdir / "Account.parquet")
    second = reconcile_snapshot(write_snapshot(variant(None, c2), data, RUN2,
                                               at + dt.timedelta(days=1)), data)
    store_results(data, RUN2, results_frame([
        CheckResult(run_id=RUN2, source="gx", suite="orders", object="orders",
                    column="subscription_name", rule="unique_order_per_subscription",
                    severity="warning", outcome="failed", failing_count=2, failing_pct=0.1,
                    total_count=2000, sample_keys=["k<1>"], sample_values=[NOTE],
                    message="2 of 2,000 rows"),
        CheckResult(run_id=RUN2, source="pandera", suite="ZuoraAccountContract",
                    object="Account", column=None, rule="shape", message="ok")]))
    SnapshotWriter(data, RUN3).fail(Manifest(run_id=RUN3, mode="incremental"),
                                    RuntimeError("AQuA job 42 failed: file truncated"))
    # run 2's plan is saved, as the nightly's plan step does before its report step; run 1
    # has none (the report says so and how to make one)
    write_plan(build_plan(data, RUN2), data / "runs" / RUN2 / "repair-plan.json")
    settings = _settings(data)
    report = build_report(data, RUN2, settings=settings)
    return {"data": data, "first": first, "second": second, "settings": settings,
            "report": report, "sub": sub, "c1": c1, "c2": c2, "qkey": qkey,
            "drift": pl.read_parquet(data / "runs" / RUN2 / "drift.parquet")}


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


# -- files -------------------------------------------------------------------------------------
def test_report_files_and_json_twin_match_drift_parquet(runs: dict[str, Any]) -> None:
    r = runs["report"]
    assert r.html.name == "report.html" and r.json.name == "report.json"
    assert r.html.parent == runs["data"] / "runs" / RUN2
    doc = _json(r.json)
    drift = runs["drift"]
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    s = doc["summary"]
    assert s["findings_rows"] == drift.height == len(doc["findings"])
    assert s["by_status"] == dict(drift.group_by("status").len().iter_rows())
    assert s["drift"] == drift.filter(pl.col("status").is_in(["new", "persisting"])).height
    for k in ("new", "persisting", "pending", "resolved"):
        assert s[k] == drift.filter(pl.col("status") == k).height
    assert s["resolved"] >= 1 and s["new"] >= 1 and s["persisting"] >= 1
    assert {f["fingerprint"] for f in doc["findings"]} == set(drift["fingerprint"])
    assert doc["status"]["banner"] == "DRIFT" and doc["status"]["label"] == f"DRIFT ({s['drift']})"
    assert r.banner == "DRIFT" and r.exit_code == 1 and r.open_findings == s["drift"]
    assert doc["run"]["previous_run"] == RUN1 and doc["run"]["trigger"] == "manual"
    assert doc["run"]["tenant_tz"] == "America/Los_Angeles"
    assert "PST" in doc["run"]["started"]["local"] or "PDT" in doc["run"]["started"]["local"]
    assert doc["summary"]["quarantined_rows"] == 1
    assert doc["validation"]["failed_count"] == 1 and doc["validation"]["passed"] == 1
    assert doc["repair"]["available"] and doc["repair"]["source"] == "file"
    saved = json.loads((runs["data"] / "runs" / RUN2 / "repair-plan.json").read_text())
    assert doc["repair"]["plan_id"] == saved["plan_id"]
    planned = sum(c["operations"] for c in saved["chunks"])  # version 3: chunk files
    assert doc["repair"]["operations"] == planned > 0
    assert doc["summary"]["repair_operations"] == planned
    assert r.plan_note is None
    assert [t["run_id"] for t in doc["trends"]["runs"]] == [RUN1, RUN2]  # ≤ this run
    resolved = [f for f in doc["findings"] if f["status"] == "resolved"]
    assert any(f["key"] == runs["c1"] and f["field"] == "FirstName" for f in resolved)


def test_no_secret_or_connection_string_anywhere(runs: dict[str, Any]) -> None:
    r = runs["report"]
    for text in (r.html.read_text(), r.json.read_text()):
        for needle in (SECRET, PASSWORD, HOST, "postgresql://"):
            assert needle not in text
    assert _json(r.json)["settings"]["local_database"] == "PostgreSQL"


def test_raw_html_has_the_first_page_server_side_and_escapes_every_payload(
        runs: dict[str, Any]) -> None:
    html = runs["report"].html.read_text()
    # usable with JavaScript off: banner, tiles and the first page of findings are in the HTML
    assert 'data-banner="DRIFT"' in html
    body = html.split('<table id="f-table" class="findings">', 1)[1].split("</tbody>", 1)[0]
    assert body.count('<tr class="row">') == min(50, runs["drift"].height)
    doc = _json(runs["report"].json)
    for key, value in (("drift", doc["summary"]["drift"]),
                       ("resolved", doc["summary"]["resolved"])):
        assert f'data-key="{key}" data-value="{value}"' in html
    # only the page's own two script elements; payloads appear escaped, never as markup
    assert len(re.findall(r"<script\b", html, flags=re.I)) == 2
    for payload in (NAME, NOTE, OLD_NOTE, NEW_NAME, QVALUE):
        assert payload not in html
    assert "&lt;script&gt;window.__pwned=2" in html  # rendered as text in a table cell
    assert not re.search(r"<[^>]*\b(onerror|onload)\s*=", html)  # no handler in any tag
    assert "<img" not in html and "<svg onload" not in html
    # the island: no raw <, >, & inside; still JSON; the payload round-trips
    island = html.split('<script type="application/json" id="report-data">', 1)[1] \
        .split("</script>", 1)[0]
    assert not set("<>&") & set(island)
    data = json.loads(island)
    assert NOTE in data["findings"]["cols"]["zuora_value"]
    assert data["findings"]["n"] == runs["drift"].height
    # the Content-Security-Policy allows only the page's own script, by hash, and no loads
    csp = unescape(html.split('http-equiv="Content-Security-Policy" content="', 1)[1]
                   .split('"', 1)[0])
    assert "script-src 'sha256-" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp.split("style-src")[0]
    assert not re.search(r'\ssrc=["\']?(https?:)?//', html)


def test_zuora_ids_link_through_the_template_and_empty_template_means_no_links(
        runs: dict[str, Any], tmp_path: Path) -> None:
    html = runs["report"].html.read_text()
    # Zuora ids are in each finding's detail (the page script); the accounts list links them
    acct = runs["drift"].filter(pl.col("key") == runs["c2"])["account_id"][0]
    assert f'href="https://zuora.example/apps/Account/{acct}"' in html
    plain = build_report(runs["data"], RUN2, settings=_settings(runs["data"], template=""),
                         out_dir=tmp_path)
    text = plain.html.read_text()
    assert "zuora.example" not in text and not re.search(r'href="https?://', text)


def test_partial_run_says_not_reconciled_never_zero_differences(runs: dict[str, Any]) -> None:
    r = build_report(runs["data"], settings=runs["settings"])  # newest run = the failed one
    assert r.run_id == RUN3 and r.banner == "PARTIAL" and r.exit_code == 2
    html = r.html.read_text()
    assert "PARTIAL — NOT RECONCILED" in html
    assert "AQuA job 42 failed: file truncated" in html
    banner = html.split('id="status-banner"', 1)[1].split("</div></div>", 1)[0]
    assert 'data-banner="PARTIAL"' in html and "CLEAN" not in banner and "DRIFT" not in banner
    assert "0 differences" not in html
    assert 'data-key="drift" data-value=""' in html  # unknown, not zero
    doc = _json(r.json)
    assert doc["status"]["label"] == "PARTIAL — NOT RECONCILED"
    assert doc["findings"] == [] and doc["repair"]["available"] is False
    assert doc["summary"]["drift"] is None and doc["summary"]["resolved"] is None
    assert doc["run"]["previous_run"] == RUN2 and doc["run"]["previous_report"]


def test_unknown_run_is_a_typed_error(runs: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(RunNotFound, match="no run 'nope'"):
        build_report(runs["data"], "nope", settings=runs["settings"])
    with pytest.raises(RunNotFound, match="no run under"):
        build_report(tmp_path, settings=runs["settings"])


def test_mask_pii_masks_emails(runs: dict[str, Any], tmp_path: Path) -> None:
    plain = json.dumps(_json(runs["report"].json)["findings"])
    assert re.search(r"[A-Za-z0-9]{2,}@[a-z]", plain)  # D19 e-mails are there unmasked
    r = build_report(runs["data"], RUN2, settings=runs["settings"], out_dir=tmp_path,
                     mask_pii=True)
    masked = json.dumps(_json(r.json)["findings"])
    assert "***@" in masked and not re.search(r"[A-Za-z0-9]{2,}@[a-z]", masked)


def test_cli_report_writes_and_exit_code_follows_the_banner(
        runs: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RECON_DATA_DIR", str(runs["data"]))
    monkeypatch.delenv("RECON_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--run", RUN2, "--out", str(tmp_path / "o"), "--no-plan"]) == 0
    out = capsys.readouterr().out
    assert "DRIFT (" in out and str(tmp_path / "o" / "report.html") in out
    assert main(["-q", "report", "--run", RUN2, "--out", str(tmp_path / "o"), "--no-plan",
                 "--fail-on-drift"]) == 1
    assert main(["-q", "report", "--out", str(tmp_path / "p"), "--fail-on-drift"]) == 2
    assert main(["-q", "report", "--run", "nope"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_a_run_without_a_saved_plan_says_so_and_how_to_make_one(
        runs: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The report never plans (issue 14, d): run 1 has no repair-plan.json, so its report and
    the CLI say so and name the command; the exit code stays README's (0 written; with
    --fail-on-drift the banner's), and --no-plan is still accepted."""
    hint = (f"no repair-plan.json for this run (run `RECON_DATA_DIR={runs['data'].resolve()} "
            f"recon repair plan --run {RUN1}`)")
    r = build_report(runs["data"], RUN1, settings=runs["settings"], out_dir=tmp_path / "r1")
    doc = _json(r.json)
    assert doc["repair"]["available"] is False and doc["repair"]["source"] == ""
    assert doc["repair"]["error"] == hint and r.plan_note == hint
    assert "plan_id" not in doc["repair"] and doc["summary"]["repair_operations"] is None
    assert f"No repair plan: {hint}." in r.html.read_text()
    assert not (runs["data"] / "runs" / RUN1 / "repair-plan.json").exists()  # nothing planned
    monkeypatch.setenv("RECON_DATA_DIR", str(runs["data"]))
    monkeypatch.delenv("RECON_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["report", "--run", RUN1, "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out  # the CLI's settings: the default DuckDB file, by path
    assert (f"repair: no repair-plan.json for this run (run `RECON_DATA_DIR="
            f"{runs['data'].resolve()} RECON_LOCAL_DATABASE_URL=duckdb:///"
            f"{(tmp_path / 'data' / 'local.duckdb').resolve()} recon repair plan --run "
            f"{RUN1}`)") in out
    assert main(["-q", "report", "--run", RUN1, "--out", str(tmp_path / "o"), "--no-plan",
                 "--fail-on-drift"]) == 1
    assert capsys.readouterr().out == ""
    # a run with its plan saved has no such line
    assert main(["report", "--run", RUN2, "--out", str(tmp_path / "p")]) == 0
    assert "repair:" not in capsys.readouterr().out


def test_a_saved_plan_is_read_by_the_repair_floor_reader(runs: dict[str, Any],
                                                        tmp_path: Path) -> None:
    """A plan the repair floor's reader refuses (an unknown format version) is named in the
    report, not shown half-understood and not re-planned."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(runs["data"], data)
    path = data / "runs" / RUN2 / "repair-plan.json"
    plan = json.loads(path.read_text())
    path.write_text(json.dumps({**plan, "schema_version": 99}))
    r = build_report(data, RUN2, settings=_settings(data), out_dir=tmp_path / "o")
    doc = _json(r.json)
    assert doc["repair"]["available"] is False
    assert "cannot be read" in doc["repair"]["error"] and "99" in doc["repair"]["error"]
    assert r.plan_note == doc["repair"]["error"]
    assert json.loads(path.read_text())["schema_version"] == 99  # left as it was


def test_markup_and_template_syntax_in_data_render_as_text(runs: dict[str, Any],
                                                          tmp_path: Path) -> None:
    """A value that closes the script element, carries an event handler or looks like Jinja2
    syntax is printed as text: autoescaped, never evaluated as a template."""
    import shutil

    payload = "</script><img src=x onerror=alert(5)>{{ 7*7 }}{% if true %}yes{% endif %}"
    data = tmp_path / "data"
    shutil.copytree(runs["data"], data)
    path = data / "runs" / RUN2 / "drift.parquet"
    pl.read_parquet(path).with_columns(explanation=pl.lit(payload)).write_parquet(path)
    r = build_report(data, RUN2, settings=_settings(data), out_dir=tmp_path / "o")
    html = r.html.read_text()
    assert ("&lt;/script&gt;&lt;img src=x onerror=alert(5)&gt;{{ 7*7 }}"
            "{% if true %}yes{% endif %}") in html
    assert payload not in html and "<img" not in html
    assert len(re.findall(r"<script\b", html, flags=re.I)) == 2
    assert not re.search(r"<[^>]*\bonerror\s*=", html)
    island = html.split('<script type="application/json" id="report-data">', 1)[1] \
        .split("</script>", 1)[0]
    assert not set("<>&") & set(island)
    assert payload in json.loads(island)["findings"]["cols"]["note"]


def _model(runs: dict[str, Any], run: str, tmp_path: Path) -> tuple[Any, pl.DataFrame]:
    from reports.collect import collect
    from reports.model import build_model

    c = collect(runs["data"], run, settings=runs["settings"])
    return build_model(c, runs["settings"], out_dir=tmp_path)


def test_every_template_branch_renders_under_strict_undefined(runs: dict[str, Any],
                                                              tmp_path: Path) -> None:
    """The templates run under StrictUndefined, so a model field they name but the model lacks
    (a rename) fails here, not in the browser. The fixture's runs plus variants of their typed
    models take every {% if %} both ways; each branch leaves a mark checked below."""
    from dataclasses import replace

    from jinja2.exceptions import UndefinedError

    from reports import html as page
    from reports.json_out import island
    from reports.model import Stamp

    model, f = _model(runs, RUN2, tmp_path)
    run, repair, validation = model.run, model.repair, model.validation
    z = run.data_as_of.zuora
    assert repair.plan is not None and validation.failed
    full = replace(
        model, notes=("a note <b>",),
        run=replace(run, attempt=2, job_status="failed", error_class="RepairFailed",
                    error_message="apply <batch 3> failed", job_counts={"applied": 5, "x": "y"},
                    last_clean_run=run.run_id,
                    snapshot=replace(run.snapshot, mode="full", requested_mode="incremental"),
                    data_as_of=replace(run.data_as_of, zuora=replace(
                        z, mode="incremental", aqua_job_ids=("job-1", "job-2"),
                        window_upper_bound=Stamp(utc="2026-11-03T06:00:00Z", local=None)))),
        validation=replace(validation, errors=validation.failed),
        repair=replace(repair, applies=({"apply_id": "ap-1", "kind": "apply",
                                         "status": "applied", "dry_run": False,
                                         "ops_planned": 3, "ops_applied": 2, "ops_skipped": 1,
                                         "started_at": "2026-11-03T08:00:00Z",
                                         "message": "ok <fine>"},),
                       plan=replace(repair.plan, not_planned_count=2, snapshot_complete=False)))
    text = page.render(full, f, island(full, f))
    for mark in ("Job error", "RepairFailed: apply &lt;batch 3&gt; failed", "Job counts",
                 "applied 5, x y", "(asked: incremental)", "changes up to", "AQuA job job-1, job-2",
                 "· attempt 2", "· status failed", "Checks that could not run", 'id="check-errors"',
                 'id="applies-table"', "ok &lt;fine&gt;", "2 auto findings have no operation",
                 "snapshot NOT complete", "Notes:", "a note &lt;b&gt;", "<dd>this run</dd>"):
        assert mark in text, mark
    runs_ = model.trends.runs
    bare = replace(model, objects=(), fields=(), rules=(), notes=(), artifacts={},
                   run=replace(run, last_clean_run="20260101T000000Z"),
                   repair=replace(repair, plan=None, available=False, applies=(),
                                  error="no plan here", applies_error="history unavailable"),
                   validation=replace(validation, failed=(), errors=(), suites=(),
                                      quarantine=replace(validation.quarantine, groups=())),
                   trends=replace(model.trends, objects=(), rules=(), runs=tuple(
                       replace(r, banner="CLEAN", current=False, report=None) for r in runs_)))
    text = page.render(bare, f.head(0), island(bare, f.head(0)))
    for mark in ("Nothing was compared in this run.", "No field differs.", "No findings.",
                 "Artifacts: none.", "<dd>20260101T000000Z</dd>", "✔ CLEAN</td>",
                 f'<td class="mono">{RUN2}</td>',
                 "<h3>By object</h3><p class=\"muted\">None.</p>", "No repair plan: no plan here.",
                 "history unavailable.", "Nothing was quarantined.", "Showing 0 of 0 findings"):
        assert mark.replace("\n", "") in text.replace("\n", ""), mark
    assert "Notes:" not in text and 'id="applies-table"' not in text
    # the partial run (PARTIAL callout, blank tiles) and the run without a plan
    for rid in (RUN3, RUN1):
        m, fr = _model(runs, rid, tmp_path)
        assert "<table" in page.render(m, fr, island(m, fr))
    # a field the model does not have fails the render instead of printing nothing
    with pytest.raises(UndefinedError):
        page.environment().from_string("{{ m.run.no_such_field }}").render(m=model)


def test_every_model_field_the_page_script_reads_exists(runs: dict[str, Any],
                                                         tmp_path: Path) -> None:
    """The page's script reads a few model fields from the data island (``M.…``, and each
    catalogue entry's ``table`` / ``key_column``): a renamed dataclass field fails here."""
    from reports.html import ASSETS
    from reports.model import to_json

    js = (ASSETS / "report.js").read_text()
    paths = set(re.findall(r"\bM((?:\.[a-z_]+)+)", js))
    assert {".catalogue", ".settings.zuora_url_template", ".run.snapshot.dir"} <= paths
    model, _ = _model(runs, RUN2, tmp_path)
    doc = to_json(model)
    for path in paths:
        node: Any = doc
        for key in path.strip(".").split("."):
            assert isinstance(node, dict) and key in node, path
            node = node[key]
    for entry in doc["catalogue"].values():
        assert set(re.findall(r"CAT\[obj\]\.([a-z_]+)", js)) <= set(entry)


# -- in headless Chromium ----------------------------------------------------------------------------
def _load(c: Chromium, path: Path, fragment: str = "") -> None:
    c.clear()
    c.open_file(path, fragment)
    c.wait_for("document.documentElement.dataset.ready === '1'")


def _clean(c: Chromium) -> None:
    r = c.recorded
    assert r.errors == [], r.errors
    assert r.requests == [], r.requests
    assert r.dialogs == [], r.dialogs


def test_browser_renders_without_errors_or_requests_and_numbers_match_json(
        runs: dict[str, Any], browser: Chromium, tmp_path: Path) -> None:
    r = runs["report"]
    _load(browser, r.html)
    tiles = browser.evaluate("Object.fromEntries([...document.querySelectorAll('.tile')]"
                             ".map(t => [t.dataset.key, t.querySelector('.v').textContent]))")
    summary = _json(r.json)["summary"]
    assert tiles, "no summary tiles"
    for key, shown in tiles.items():
        expected = summary[key]
        assert shown == ("–" if expected is None else f"{expected:,}"), key
    banner = browser.evaluate("document.getElementById('status-banner').innerText")
    assert f"DRIFT ({summary['drift']})" in banner
    count = browser.evaluate("+document.getElementById('f-count').dataset.count")
    assert count == summary["findings_rows"]
    shot = browser.screenshot(tmp_path / "report.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    _clean(browser)


def test_browser_filter_from_the_url_hash_narrows_the_table(
        runs: dict[str, Any], browser: Chromium) -> None:
    drift = runs["drift"]
    _load(browser, runs["report"].html, "#findings?object=Contact&kind=field_mismatch")
    want = drift.filter((pl.col("object") == "Contact") & (pl.col("kind") == "field_mismatch"))
    assert 0 < want.height < drift.height
    assert browser.evaluate("+document.getElementById('f-count').dataset.count") == want.height
    rows = browser.evaluate("document.querySelectorAll('#f-table tbody tr.row').length")
    assert rows == min(want.height, 50)
    assert browser.evaluate("document.querySelector('select[name=object]').value") == "Contact"
    # change the hash in the page: open findings of one severity
    browser.evaluate("location.hash = '#findings?status=open&severity=high'")
    want = drift.filter(pl.col("status").is_in(["new", "persisting"])
                        & (pl.col("severity") == "high"))
    browser.wait_for(f"+document.getElementById('f-count').dataset.count === {want.height}")
    # free-text search by key, and a filter set in the form lands in the hash
    key = runs["c2"]
    browser.evaluate(f"location.hash = '#findings?q={key[:12]}'")
    want = drift.filter(pl.col("key").str.contains(key[:12], literal=True)
                        | pl.col("account_id").str.contains(key[:12], literal=True)
                        | pl.col("subscription_name").str.contains(key[:12], literal=True))
    browser.wait_for(f"+document.getElementById('f-count').dataset.count === {want.height}")
    browser.evaluate("const s = document.querySelector('select[name=status]'); s.value = 'resolved';"
                     "s.dispatchEvent(new Event('change', {bubbles: true}))")
    assert "status=resolved" in browser.evaluate("location.hash")
    _clean(browser)


def test_browser_payloads_are_text_and_nothing_executes(
        runs: dict[str, Any], browser: Chromium) -> None:
    r = runs["report"]
    sub = runs["sub"]["Name"]
    _load(browser, r.html, f"#findings?q={runs['sub']['Id']}")
    text = browser.evaluate("document.getElementById('f-table').innerText")
    assert NOTE in text and OLD_NOTE in text
    # expand the row: detail (evidence, query) is text too
    browser.evaluate("document.querySelector('#f-table tbody tr.row td.expl').click()")
    assert browser.evaluate("document.querySelectorAll('#f-table tr.detail').length") == 1
    browser.evaluate(f"location.hash = '#drill?sub={sub}'")
    browser.wait_for("document.getElementById('drill-panel').innerText.length > 0")
    assert NOTE in browser.evaluate("document.getElementById('drill-panel').innerText")
    _load(browser, r.html, f"#findings?q={runs['c2']}")
    assert NEW_NAME in browser.evaluate("document.getElementById('f-table').innerText")
    _load(browser, r.html, "#findings?status=resolved&object=Contact")
    assert NAME in browser.evaluate("document.getElementById('f-table').innerText")
    assert QVALUE in browser.evaluate("document.getElementById('validation').parentNode.innerText")
    assert browser.evaluate("typeof window.__pwned") == "undefined"
    assert browser.evaluate("document.querySelectorAll('main img, main [onerror], main [onload],"
                            " main script').length") == 0
    _clean(browser)


def test_browser_partial_report_and_javascript_off(runs: dict[str, Any],
                                                   browser: Chromium) -> None:
    partial = build_report(runs["data"], RUN3, settings=runs["settings"])
    _load(browser, partial.html)
    banner = browser.evaluate("document.getElementById('status-banner').innerText")
    assert "PARTIAL — NOT RECONCILED" in banner and "AQuA job 42" in banner
    _clean(browser)
    # with JavaScript off the server-side page still shows the summary and the first rows
    browser.send("Emulation.setScriptExecutionDisabled", value=True)
    try:
        browser.clear()
        browser.open_file(runs["report"].html)
        rows = browser.evaluate("document.querySelectorAll('#f-table tbody tr.row').length")
        assert rows == min(50, runs["drift"].height)
        assert "DRIFT (" in browser.evaluate("document.getElementById('status-banner').innerText")
        assert browser.evaluate("getComputedStyle(document.querySelector('.nojs')).display") \
            != "none"
    finally:
        browser.send("Emulation.setScriptExecutionDisabled", value=False)


def test_job_runs_give_trigger_and_a_failed_job_makes_error(runs: dict[str, Any],
                                                            tmp_path: Path) -> None:
    import shutil

    import duckdb

    data = tmp_path / "data"
    shutil.copytree(runs["data"], data)
    con = duckdb.connect(str(data / "state.duckdb"))
    # the jobs layer's table (jobs/runs.py); created here when that module is not imported
    con.execute("""CREATE TABLE IF NOT EXISTS job_runs (run_id VARCHAR PRIMARY KEY,
        job VARCHAR NOT NULL, idem_key VARCHAR NOT NULL, "trigger" VARCHAR NOT NULL,
        scheduled_for TIMESTAMP, started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP,
        status VARCHAR NOT NULL, attempt INTEGER NOT NULL, error_class VARCHAR,
        error_message VARCHAR, counts VARCHAR, report_path VARCHAR, snapshot_run VARCHAR,
        host VARCHAR, pid INTEGER)""")
    t = dt.datetime(2026, 11, 3, 7)
    cols = ("run_id, job, idem_key, trigger, scheduled_for, started_at, finished_at, status, "
            "attempt, error_class, error_message, counts, snapshot_run")
    ins = f"INSERT INTO job_runs ({cols}) VALUES (?, 'nightly', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    con.execute(ins, ["nightly-a", "nightly:2026-11-03", "schedule", t, t,
                      t + dt.timedelta(minutes=3), "failed", 1, "RepairFailed",
                      "apply <batch 3> failed", '{"applied": 5}', RUN2])
    con.execute(ins, ["nightly-b", "nightly:2026-11-02", "retry", t, t - dt.timedelta(days=1),
                      t - dt.timedelta(days=1, minutes=-2), "drift", 2, None, None, None, RUN1])
    con.execute(ins, ["nightly-c", "nightly:2026-11-05", "catch-up", t, t, None, "running", 1,
                      None, None, None, None])
    con.close()
    r = build_report(data, RUN2, settings=_settings(data))
    doc = _json(r.json)
    assert doc["run"]["trigger"] == "schedule" and doc["run"]["job"] == "nightly"
    assert doc["run"]["duration_s"] == 180.0 and doc["run"]["job_counts"] == {"applied": 5}
    assert r.banner == "ERROR" and r.exit_code == 2
    assert any("apply <batch 3> failed" in x for x in doc["status"]["reasons"])
    assert "apply &lt;batch 3&gt; failed" in r.html.read_text()
    assert [x["trigger"] for x in doc["trends"]["runs"]] == ["retry", "schedule"]
    # the pipeline names its own (still running) attempt
    r = build_report(data, RUN2, settings=_settings(data),
                     job_run_id="nightly-c", out_dir=tmp_path / "c")
    doc = _json(r.json)
    assert doc["run"]["trigger"] == "catch-up" and doc["run"]["job_status"] == "running"
    assert r.banner == "DRIFT"


def test_a_run_that_validation_stopped_is_partial_with_the_reason(runs: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(runs["data"], data)
    run = "20261105T070000Z"
    SnapshotWriter(data, run).complete(Manifest(run_id=run, mode="full"))
    store_results(data, run, results_frame([CheckResult(
        run_id=run, source="pandera", suite="ZuoraAccountContract", object="Account",
        column="Id", rule="unique", severity="error", outcome="failed", failing_count=3,
        message="Account.Id: 3 duplicated Zuora keys")]))
    r = build_report(data, settings=_settings(data))
    doc = _json(r.json)
    assert r.run_id == run and r.banner == "PARTIAL"
    assert doc["status"]["reasons"][0].startswith("validation stopped the run")
    assert "Account.Id: 3 duplicated Zuora keys" in doc["status"]["reasons"]
    assert doc["summary"]["drift"] is None and 'data-key="drift" data-value=""' in r.html.read_text()


# -- issue 17: the report for the 3 a.m. reader, owners, acknowledgements, alerts ---------------
# The page must fit these windows without scrolling sideways; what a reader looks for first
# (every column header, the first group's identifier and its explanation) must be on screen,
# and not merely inside a box that clips or scrolls it away.
_VISIBLE = """((sel, scope) => {
  const vw = document.documentElement.clientWidth, vh = window.innerHeight;
  const el = typeof sel === 'string' ? (scope || document).querySelector(sel) : sel;
  if (!el) return 'missing: ' + sel;
  const r = el.getBoundingClientRect();
  if (r.width <= 0 || r.height <= 0) return 'empty box: ' + el.textContent;
  if (r.left < 0 || r.right > vw + 0.5 || r.top < 0 || r.bottom > vh + 0.5)
    return 'outside the viewport: ' + el.textContent.slice(0, 40) + ' ' + JSON.stringify(r);
  for (let a = el.parentElement; a && a !== document.documentElement; a = a.parentElement) {
    const s = getComputedStyle(a);
    if (s.overflowX !== 'visible' || s.overflowY !== 'visible') {
      const b = a.getBoundingClientRect();
      if (r.left < b.left - 0.5 || r.right > b.right + 0.5 || a.scrollWidth > a.clientWidth + 1)
        return 'clipped by ' + a.tagName + '.' + a.className + ': ' + el.textContent.slice(0, 40);
    }
  }
  return 'ok';
})"""


def _show(c: Chromium, expr: str, top: int = 48) -> None:
    """Scroll so that the element of ``expr`` sits just below the sticky navigation."""
    c.evaluate(f"(() => {{ const e = {expr}; window.scrollTo(0, e.getBoundingClientRect().top"
               f" + window.scrollY - {top}); }})()")


@pytest.mark.parametrize("width,height", [(1280, 800), (1400, 900)])
def test_browser_findings_fit_the_window_grouped_by_what_broke(
        runs: dict[str, Any], browser: Chromium, width: int, height: int) -> None:
    browser.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                 deviceScaleFactor=1, mobile=False)
    try:
        _load(browser, runs["report"].html)
        assert browser.evaluate("document.documentElement.scrollWidth <= "
                                "document.documentElement.clientWidth")
        _show(browser, "document.querySelector('#f-table thead')")
        heads = browser.evaluate("[...document.querySelectorAll('#f-table thead th')]"
                                 ".map(t => t.textContent)")
        assert heads[:3] == ["Status", "Subscription / product", "Account"]  # people's ids first
        for i in range(len(heads)):
            assert browser.evaluate(f"{_VISIBLE}(document.querySelectorAll("
                                    f"'#f-table thead th')[{i}])") == "ok", heads[i]
        # the first group, and the first subscription's group: identifier and explanation
        first_sub = ("[...document.querySelectorAll('#f-table tr.gh')].find(g => "
                     "g.querySelector('.g-kind').textContent === 'Subscription')")
        for group in ("document.querySelector('#f-table tr.gh')", first_sub):
            _show(browser, group, top=90)
            assert browser.evaluate(f"{_VISIBLE}({group}.querySelector('.g-id'))") == "ok"
            expl = f"{group}.nextElementSibling.querySelector('td.expl')"
            assert browser.evaluate(f"{_VISIBLE}({expl})") == "ok"
            note = browser.evaluate(f"{expl}.textContent")
            row_key = browser.evaluate(f"{group}.nextElementSibling.dataset.i")
            assert note and row_key is not None
        # one subscription with four fields off by a day is one group of four rows, named by
        # its subscription, its explanation without the row's Zuora id
        sub = runs["drift"].filter((pl.col("object") == "Subscription")
                                   & (pl.col("drift_id") == "D05"))
        assert sub["subscription_name"].n_unique() == 1 and sub.height == 4
        name, zid = sub["subscription_name"][0], sub["key"][0]
        group = ("[...document.querySelectorAll('#f-table tr.gh')].find(g => "
                 f"g.querySelector('.g-id').textContent === '{name}')")
        text = browser.evaluate(f"{group}.textContent")
        assert "4 findings" in text and "account A" in text
        rows = browser.evaluate(f"(() => {{ const out = []; let r = {group}.nextElementSibling;"
                                " while (r && r.classList.contains('row')) {"
                                " out.push(r.textContent); r = r.nextElementSibling; }"
                                " return out; })()")
        assert len(rows) == 4 and not any(zid in r for r in rows)
        # drill-down from the group and the detail (with the Zuora id) still work
        browser.evaluate(f"{group}.nextElementSibling.querySelector('td.expl').click()")
        detail = browser.evaluate("document.querySelector('#f-table tr.detail').innerText")
        assert zid in detail and "findings ack" in detail
        browser.evaluate(f"{group}.querySelector('.g-id a').click()")
        browser.wait_for("document.getElementById('drill-panel').innerText.length > 0")
        assert name in browser.evaluate("document.getElementById('drill-panel').innerText")
        assert browser.evaluate("document.documentElement.scrollWidth <= "
                                "document.documentElement.clientWidth")
        _clean(browser)
    finally:
        browser.send("Emulation.setDeviceMetricsOverride", width=1400, height=1000,
                     deviceScaleFactor=1, mobile=False)


def test_first_page_is_grouped_server_side_with_account_numbers(runs: dict[str, Any]) -> None:
    """With JavaScript off the groups are there too, led by subscription names and account
    numbers; report.json carries the entity columns and the compact note."""
    doc = _json(runs["report"].json)
    f = pl.DataFrame(doc["findings"])
    # each group is contiguous, in reading order
    seen: list[tuple[str, str]] = []
    for k in zip(f["entity_kind"], f["entity"], strict=True):
        if not seen or seen[-1] != k:
            assert k not in seen, f"group {k} split"
            seen.append(k)
    subs = f.filter(pl.col("subscription_name").is_not_null())
    assert (subs["entity"] == subs["subscription_name"]).all()
    accts = f.filter(pl.col("entity_kind") == "account")
    assert accts.height and accts["entity"].str.contains(r"^A\d{8}$").all()
    for r in f.filter(pl.col("kind") == "field_mismatch").to_dicts():
        assert r["key"] not in r["note"] and (r["subscription_name"] or "@@") not in r["note"]
    html = runs["report"].html.read_text()
    body = html.split('<table id="f-table" class="findings">', 1)[1].split("</tbody>", 1)[0]
    first = f.row(0, named=True)
    assert body.count('<tr class="gh">') == len(dict.fromkeys(
        zip(f["entity_kind"][:50], f["entity"][:50], strict=True)))
    head = body.split("</thead>", 1)[1].split("</tr>", 1)[0]
    assert '<span class="g-id">' in head and first["entity"] in head


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], data: Path,
         *argv: str) -> tuple[int, str, str]:
    monkeypatch.setenv("RECON_DATA_DIR", str(data))
    monkeypatch.delenv("RECON_CONFIG", raising=False)
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ack_mutes_alerts_stays_visible_lapses_and_unack(
        runs: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    import duckdb

    from repair.planner import build_plan
    from reports.alerting import alert_findings

    data = tmp_path / "data"
    shutil.copytree(runs["data"], data)
    monkeypatch.chdir(tmp_path)
    settings = _settings(data)
    drift = runs["drift"]
    target = drift.filter((pl.col("key") == runs["c2"]) & (pl.col("status") == "new")).row(
        0, named=True)
    fp = target["fingerprint"]
    before = alert_findings(data, RUN2, settings)
    assert before.filter(pl.col("field") == target["field"]).height == 1
    def planned() -> list[tuple[Any, ...]]:
        return [(o.step, o.table, o.op, json.dumps(o.key, sort_keys=True, default=str),
                 tuple(o.findings))
                for o in build_plan(data, RUN2).operations]

    plan_before = planned()
    # typed refusals, exit 2, never a traceback
    for argv, says in ((["findings", "ack", "0123456789ab", "--note", "x"], "no finding"),
                       (["findings", "ack", fp[:4], "--note", "x"], "too short"),
                       (["findings", "ack", fp, "--note", "x", "--until", "2000-01-01"],
                        "in the past"),
                       (["findings", "ack", "--rule", "D99", "--key", "nope", "--note", "x"],
                        "no finding of rule D99"),
                       (["findings", "unack", fp], "no single ack")):
        code, _, err = _cli(monkeypatch, capsys, data, *argv)
        assert code == 2 and says in err and "Traceback" not in err, (argv, err)
    code, out, _ = _cli(monkeypatch, capsys, data, "findings", "ack", fp[:12], "--note",
                        "known: the CRM import renames it tonight")
    assert code == 0 and "acknowledged 1 finding" in out and fp[:12] in out
    # muted in the alert, visible in the report under "acknowledged", repair unchanged
    after = alert_findings(data, RUN2, settings)
    assert after.height == before.height - 1
    assert after.filter(pl.col("field") == target["field"]).height == 0
    r = build_report(data, RUN2, settings=settings, out_dir=tmp_path / "o")
    doc = _json(r.json)
    acked = [x for x in doc["findings"] if x["fingerprint"] == fp][0]
    assert acked["ack"] == "acknowledged" and acked["ack_by"] and acked["ack_note"]
    assert doc["summary"]["acknowledged"] == 1 and doc["summary"]["drift"] == runs[
        "report"].open_findings  # still drift: an ack hides nothing
    assert doc["acks"]["acknowledged"][0]["fingerprint"] == fp
    html = r.html.read_text()
    assert 'id="acks-table"' in html and "the CRM import renames it tonight" in html
    assert planned() == plan_before
    # the date passes: lapsed, alerts again
    code, _, _ = _cli(monkeypatch, capsys, data, "findings", "ack", fp, "--note", "till today",
                      "--until", dt.datetime.now(dt.UTC).date().isoformat())
    assert code == 0
    later = dt.date.today() + dt.timedelta(days=2)
    lapsed = alert_findings(data, RUN2, settings, today=later)
    assert lapsed.filter(pl.col("why") == "acknowledgement lapsed: date passed").height == 1
    # the values change: lapsed
    con = duckdb.connect(str(data / "state.duckdb"))
    con.execute("UPDATE finding_acks SET zuora_value = 'what it was' WHERE fingerprint = ?",
                [fp])
    con.close()
    doc = _json(build_report(data, RUN2, settings=settings, out_dir=tmp_path / "p").json)
    assert [x["ack_lapsed"] for x in doc["findings"] if x["fingerprint"] == fp] == [
        "values changed"]
    assert doc["acks"]["lapsed"][0]["lapsed"] == "values changed"
    # resolution: acknowledged in run 1, resolved in run 2
    gone = drift.filter(pl.col("status") == "resolved").row(0, named=True)
    code, _, _ = _cli(monkeypatch, capsys, data, "findings", "ack", gone["fingerprint"],
                      "--run", RUN1, "--note", "will fix")
    assert code == 0
    code, _, err = _cli(monkeypatch, capsys, data, "findings", "ack", gone["fingerprint"],
                        "--note", "again")  # its latest run resolved it
    assert code == 2 and "is resolved" in err
    doc = _json(build_report(data, RUN2, settings=settings, out_dir=tmp_path / "q").json)
    assert [x["ack"] for x in doc["findings"] if x["fingerprint"] == gone["fingerprint"]] == [
        "lapsed"]
    # by rule and key (the subscription name): every D05 finding of one subscription
    sub = drift.filter((pl.col("object") == "Subscription") & (pl.col("drift_id") == "D05"))
    code, out, _ = _cli(monkeypatch, capsys, data, "findings", "ack", "--rule", "D05", "--key",
                        sub["subscription_name"][0], "--note", "tz fix deploys Monday")
    assert code == 0 and "acknowledged 4 finding" in out
    # unack: alerts again
    code, out, _ = _cli(monkeypatch, capsys, data, "findings", "unack", fp[:10])
    assert code == 0 and "removed 1" in out
    assert alert_findings(data, RUN2, settings).filter(
        pl.col("field") == target["field"]).height == 1
    code, out, _ = _cli(monkeypatch, capsys, data, "findings", "unack", "--rule", "D05",
                        "--key", sub["subscription_name"][0])
    assert code == 0 and "removed 4" in out


def test_ack_lapses_set_wise() -> None:
    """:func:`reconcile.acks.ack_states` on every lapse at once (no loop per finding)."""
    from reconcile.acks import ACK_SCHEMA, ack_states

    today = dt.date(2026, 11, 10)
    f = pl.DataFrame({
        "fingerprint": ["a", "b", "c", "d", "e", "f"],
        "status": ["persisting", "resolved", "new", "persisting", "persisting", "new"],
        "first_seen_run": ["r1", "r1", "r3", "r1", "r1", "r3"],
        "zuora_value": ["x", "x", "x", "y", None, "x"],
        "local_value": ["w", "w", "w", "w", None, "w"]})
    acks = pl.DataFrame({
        "fingerprint": ["a", "b", "c", "d", "e"], "object": ["O"] * 5, "key": ["k"] * 5,
        "kind": ["field_mismatch"] * 5, "rule": [None] * 5, "field": ["F"] * 5,
        "zuora_value": ["x", "x", "x", "x", None], "local_value": ["w", "w", "w", "w", None],
        "first_seen_run": ["r1"] * 5, "run_id": ["r1"] * 5, "note": ["n"] * 5,
        "acked_by": ["ops"] * 5, "host": ["h"] * 5,
        "acked_at": [dt.datetime(2026, 11, 1)] * 5,
        "until": [None, None, None, None, dt.date(2026, 11, 9)]}, schema=ACK_SCHEMA)
    out = ack_states(f, acks, today).sort("fingerprint")
    assert out["ack"].to_list() == ["acknowledged", "lapsed", "lapsed", "lapsed", "lapsed", None]
    assert out["ack_lapsed"].to_list() == [None, "resolved", "resolved and came back",
                                           "values changed", "date passed", None]
    assert ack_states(f, acks, dt.date(2026, 11, 9)).sort("fingerprint")["ack"][4] == \
        "acknowledged"  # valid through its day


def test_owners_in_report_and_alerts_and_owner_webhooks_get_their_own(
        runs: dict[str, Any], tmp_path: Path) -> None:
    import json as _json_mod

    from jobs import alerts
    from tests.support.jobs import Receiver

    drift = runs["drift"]
    with Receiver() as main_hook, Receiver() as billing_hook:
        settings = _settings(
            runs["data"], owners_default="data-eng",
            owners_rule=_json_mod.dumps({"D11": "orders-team", "D05": "tz-team"}),
            owners_object=_json_mod.dumps({"Subscription": "billing", "Contact": "crm"}),
            owners_webhook=Secret(_json_mod.dumps({"billing": billing_hook.url})),
            alerts_webhook_url=Secret(main_hook.url))
        r = build_report(runs["data"], RUN2, settings=settings, out_dir=tmp_path)
        doc = _json(r.json)
        owner = {(x["object"], x["key"], x["field"]): x["owner"] for x in doc["findings"]}
        for x in drift.to_dicts():
            want = ("orders-team" if x["rule"] == "D11" else "billing"
                    if x["object"] == "Subscription" else "crm" if x["object"] == "Contact"
                    else "tz-team" if x["drift_id"] == "D05" else "data-eng")
            assert owner[(x["object"], x["key"], x["field"])] == want, x
        assert doc["settings"]["owners"] is True and doc["summary"]["owners"]
        assert "orders-team" in r.html.read_text()
        # the alert lists the new findings by identifiers only; the owner's hook gets its own
        n = alerts.drift(settings, "nightly", "job-1", "drift", {"new": 1}, str(r.html), RUN2)
        assert n == drift.filter(pl.col("status") == "new").height
        bodies = main_hook.wait(1)
    assert len(bodies) == 1 and not billing_hook.bodies  # billing owns no new finding
    body = bodies[0]
    lines = body["recon"]["findings"]
    assert lines and set(lines[0]) == {"subscription_name", "account_number", "object", "rule",
                                       "owner", "why", "fields", "findings"}
    raw = main_hook.raw[0]
    for x in drift.filter(pl.col("status") == "new").to_dicts():
        for value in (x["zuora_value"], x["local_value"], x["key"], x["explanation"]):
            if value and len(value) > 3 and value != x["subscription_name"]:
                assert value not in raw, value
    assert not re.search(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+\.", body["text"])
    assert "T0KEN" not in raw
    # an owner with a webhook gets the alert of its own findings only
    with Receiver() as crm_hook:
        s2 = replace_settings(settings, owners_webhook=Secret(_json_mod.dumps(
            {"crm": crm_hook.url})), alerts_webhook_url=Secret(None))
        alerts.drift(s2, "nightly", "job-1", "drift", {"new": 1}, None, RUN2)
        got = crm_hook.wait(1)
    assert len(got) == 1 and got[0]["recon"]["owner"] == "crm"
    assert {x["owner"] for x in got[0]["recon"]["findings"]} == {"crm"}


def replace_settings(settings: Settings, **kw: Any) -> Settings:
    from dataclasses import replace

    return replace(settings, **kw)


def test_auto_apply_outcome_and_pasteable_commands(
        runs: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """With ``repair.auto`` the report says what the apply did (or that it is to come); the
    commands it prints carry real paths and the data directory, and run as printed."""
    import shlex
    import shutil

    data = tmp_path / "data"
    shutil.copytree(runs["data"], data)
    settings = replace_settings(_settings(data), repair_auto=True,
                                local_database_url="duckdb:///local.duckdb")
    monkeypatch.chdir(tmp_path)
    doc = _json(build_report(data, RUN2, settings=settings, out_dir=tmp_path / "a").json)
    assert doc["repair"]["auto_apply"]["outcome"] == "pending"
    r = build_report(data, RUN2, settings=settings, out_dir=tmp_path / "b",
                     auto_apply={"repair": "refused", "repair_refusal": "would change 9% of "
                                 "billing_accounts (limit 5%)"})
    html = r.html.read_text()
    assert 'data-outcome="refused"' in html and "would change 9% of billing_accounts" in html
    # the nightly's apply step writes the run's report again with its outcome
    from core.snapshot import find_complete
    from jobs.steps import JOBS, StepRun, _report_outcome

    step = StepRun(JOBS["nightly"], settings, lambda _m: None, report=r,
                   snapshot=find_complete(data, RUN2),
                   counts={"new": 1, "repair": "complete", "repair_apply_id": "ap-42",
                           "repair_applied": 7, "repair_operations": 7})
    _report_outcome(step)
    page = (data / "runs" / RUN2 / "report.html").read_text()
    assert 'data-outcome="complete"' in page and "ap-42" in page
    assert "repair revert ap-42 --yes" in page
    doc = _json(r.json)
    cmds = doc["repair"]["commands"] + [x["command"] for x in doc["rules"] if x["command"]]
    assert cmds and not any("DATA/" in c for c in cmds)
    prefix = (f"RECON_DATA_DIR={data.resolve()} RECON_LOCAL_DATABASE_URL=duckdb:///"
              f"{(tmp_path / 'local.duckdb').resolve()} recon")
    assert all(c.startswith(prefix) for c in cmds) and doc["command_prefix"] == prefix
    assert str((data / "runs" / RUN2 / "repair-plan.json").resolve()) in cmds[1]

    def run(cmd: str) -> int:
        """A printed command run as a shell would: its VAR=value words, then recon's argv
        (in-process, from another directory)."""
        words = shlex.split(cmd.split("  #")[0])
        env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
        argv = words[len(env) + 1:]
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            m.delenv("RECON_CONFIG", raising=False)
            m.chdir(tmp_path / "a")
            code = main(["-q", *argv])
        capsys.readouterr()
        return code

    assert run(cmds[0]) == 0  # recon repair plan --run RUN
    assert (data / "runs" / RUN2 / "repair-plan.json").is_file()
    fp = runs["drift"].filter(pl.col("status") == "new")["fingerprint"][0]
    assert run(f"{doc['command_prefix']} findings ack {fp[:12]} --note 'why this can wait'") == 0
    assert run(f"{doc['command_prefix']} findings unack {fp[:12]}") == 0

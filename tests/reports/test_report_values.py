"""The report's small pure parts: before → after marking, the data island's escaping, Zuora
links built from data, plain words for codes."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl

from reconcile.findings import DRIFT_SCHEMA
from reports.html import e, value_pair, zuora_link
from reports.json_out import MARK_KEY, MARK_LOCAL, MARK_ZUORA, escape_island, island_findings
from reports.model import prepare_findings
from reports.values import delta_note, diff_parts
from reports.words import check_words


def test_a_date_off_by_one_day_marks_the_digit_and_says_plus_one_day() -> None:
    assert diff_parts("2026-03-14", "2026-03-15") == (("2026-03-1", "4", ""), ("2026-03-1", "5", ""))
    assert delta_note("2026-03-14", "2026-03-15") == "+1 day"
    assert delta_note("2026-03-01", "2026-02-28") == "-1 day"
    assert delta_note("2026-03-01", "2026-03-04") == "+3 days"


def test_a_decimal_marks_its_digits_and_gives_the_exact_difference() -> None:
    assert diff_parts("29.99", "30.00") == (("", "29.99", ""), ("", "30.00", ""))
    assert diff_parts("1234.50", "1234.55") == (("1234.5", "0", ""), ("1234.5", "5", ""))
    assert delta_note("29.99", "30.00") == "Δ +0.01"
    assert delta_note("10.5", "10.50") is None  # equal numbers: no delta
    assert delta_note("abc", "abd") is None


def test_value_pair_escapes_both_sides_and_marks_the_middle() -> None:
    out = value_pair("<b>old</b>", "<b>new</b>", "field_mismatch")
    assert "<b>" not in out
    assert "&lt;b&gt;<mark>old</mark>&lt;/b&gt;" in out
    assert "<mark>new</mark>" in out
    assert "∅ null" in value_pair(None, "x", "field_mismatch")
    assert "missing locally" in value_pair(None, None, "missing_in_local")


def test_island_escaping_keeps_json_but_no_markup_characters() -> None:
    text = escape_island(json.dumps({"v": "</script><script>alert(1)</script> & <b>"}))
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\\u003c/script\\u003e" in text
    assert json.loads(text) == {"v": "</script><script>alert(1)</script> & <b>"}


def _decode(data: dict, col: str) -> list[str | None]:
    codes = data["cols"][col]
    if isinstance(codes, str):
        codes = [-1 if ch == data["null"] else data["alphabet"].index(ch) for ch in codes]
    return [None if c < 0 else data["dict"][col][c] for c in codes]


def test_island_findings_are_columnar_coded_compact_and_cut() -> None:
    rows = {c: [None, None] for c in DRIFT_SCHEMA}
    rows.update(object=["Account", "Contact"], key=["a<1>", "b5c3d2"], kind=["field_mismatch"] * 2,
                severity=["low", "high"], status=["resolved", "new"], action=["auto", "human"],
                zuora_value=[None, "2026-03-15"], local_value=[None, "2026-03-14"],
                explanation=["x" * 1000, "</script> b5c3d2: 2026-03-15 vs 2026-03-14"],
                zuora_updated=[None, dt.datetime(2026, 11, 1, 12, 30)])
    frame = prepare_findings(pl.DataFrame(rows, schema=DRIFT_SCHEMA))
    data = json.loads(island_findings(frame))
    assert data["n"] == 2
    # reading order: new before resolved; severity dictionary in severity order
    assert data["dict"]["severity"] == ["high", "low"]
    assert _decode(data, "status") == ["new", "resolved"]
    assert _decode(data, "rule") == [None, None]
    assert isinstance(data["cols"]["object"], str) and len(data["cols"]["object"]) == 2
    # the page carries the compact note, not repeating its key and values (the script puts
    # them back), and no whole explanation (it is in report.json)
    assert data["cols"]["note"][0] == f"</script> {MARK_KEY}: {MARK_ZUORA} vs {MARK_LOCAL}"
    assert len(data["cols"]["note"][1]) == data["cap"] + 1  # cut, with an ellipsis
    assert "explanation" not in data["cols"]
    assert data["cols"]["zuora_updated"] == [1793536200, None]  # epoch seconds
    assert not set('"\\<>&') & set(data["alphabet"])


def test_zuora_ids_are_encoded_into_links_and_no_template_means_no_link() -> None:
    tpl = "https://zuora.example/apps/{object}/{id}"
    html = zuora_link(tpl, "Account", 'a"b<c>&d /x?y#z')
    assert 'href="https://zuora.example/apps/Account/a%22b%3Cc%3E%26d%20%2Fx%3Fy%23z"' in html
    assert ">a&#34;b&lt;c&gt;&amp;d /x?y#z</a>" in html  # markupsafe spells " as &#34;
    assert zuora_link("", "Account", "<id>") == "&lt;id&gt;"


def test_plain_words() -> None:
    assert check_words("not_null") == "a required value is empty"
    assert check_words("parse:decimal") == "the value could not be read as decimal"
    assert e(None) == "" and e("<&>") == "&lt;&amp;&gt;"


def test_chart_labels_are_escaped_text() -> None:
    """The charts' geometry comes from reports.svg and their markup from a template, so a run
    label or series name that looks like markup is escaped like any other value."""
    from reports import svg
    from reports.html import environment

    charts = environment().get_template("charts.html.j2").module
    out = str(charts.chart(svg.stacked_bars(["<b>r1</b>", "r2"], {"a<svg onload=x>": [3, None]},
                                            title="T & <i>"))) + str(charts.chart(svg.lines(
        ["<b>r1</b>", "r2", "r3"], {"s\"q": [1, None, 2]}, title="L")))
    assert "<b>" not in out and "<svg onload" not in out and "<i>" not in out
    assert "&lt;b&gt;r1&lt;/b&gt; — a&lt;svg onload=x&gt;: 3" in out
    assert "T &amp; &lt;i&gt;" in out and "s&#34;q" in out
    assert out.count("<figure>") == 2 and out.count("<rect ") == 1 and out.count("<circle ") == 2
    assert out.count("n/a</text>") == 1  # r2: every series missing, marked n/a
    spark = str(charts.sparkline(svg.sparkline([1, 2], label="<x>")))
    assert 'aria-label="&lt;x&gt;: 1 → 2"' in spark
    assert str(charts.sparkline(svg.sparkline([]))) == '<span class="muted">no history</span>'
    assert "no runs yet" in str(charts.chart(svg.lines([], {"a": []}, title="<t>")))

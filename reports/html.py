"""The report page: one self-contained HTML file rendered from the model.

Inline CSS and JS (``reports/assets/``), inline SVG charts, no CDN, no web font, no request of
any kind; a Content-Security-Policy that allows only the page's own script (by hash), so even
markup that slipped into the page could neither run nor load anything. The summary and the
first page of every table are rendered here, so the page reads with JavaScript off; the script
then takes over the interactive parts from the data island. Every value from data goes through
:func:`e` (``html.escape``): customer names and notes are text, never markup.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

import polars as pl

from reports import svg
from reports.model import OPEN, PARTIAL_LABEL, SEVERITY_ORDER, STATUS_ORDER
from reports.values import delta_note, diff_parts
from reports.words import (
    ACTION_WORDS,
    DRIFT_TITLES,
    KIND_WORDS,
    SOURCE_WORDS,
    STATUS_WORDS,
)

ASSETS = Path(__file__).parent / "assets"
PAGE = 50  # rows per page rendered server-side (the script's default page size)
SEV_ICON = {"critical": "‼", "high": "▲", "medium": "●", "low": "○"}
STATUS_ICON = {"new": "✚", "persisting": "↻", "pending": "⏳", "resolved": "✔"}
KIND_SHORT = {"missing_in_local": "missing locally", "orphaned_in_local": "orphaned locally",
              "field_mismatch": "field differs", "duplicate_local": "duplicate",
              "rule_violation": "rule", "quarantined": "quarantined"}
FINDING_COLUMNS = (("status", "Status"), ("severity", "Severity"), ("object", "Object"),
                   ("key", "Key"), ("kind", "Kind"), ("rule", "Rule / drift"),
                   ("field", "Field"), ("local_value", "Local (before) → Zuora (after)"),
                   ("action", "Action"), ("explanation", "Explanation"),
                   ("subscription_name", "Subscription"), ("account_id", "Account"))


def e(value: Any) -> str:
    """Escaped text of any value (None → empty)."""
    return "" if value is None else escape(str(value), quote=True)


def num(value: Any, suffix: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}{suffix}" if not value.is_integer() else f"{int(value):,}{suffix}"
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    return e(value)


def when(t: dict[str, Any] | None) -> str:
    """A time in UTC with the tenant-zone time next to it."""
    if not t or not t.get("utc"):
        return '<span class="muted">–</span>'
    utc = t["utc"].replace("T", " ").replace("Z", " UTC")
    local = f' <span class="muted">({e(t["local"])})</span>' if t.get("local") else ""
    return f'<span class="nowrap">{e(utc)}</span>{local}'


def zuora_link(template: str, obj: str, ident: str | None, text: str | None = None) -> str:
    """An id as a link through the configured template; the id is data, so it is
    percent-encoded into the URL and the whole href escaped. "" template → plain text."""
    if ident is None:
        return ""
    label = e(text if text is not None else ident)
    if not template:
        return label
    href = template.replace("{object}", quote(obj, safe="")).replace("{id}", quote(ident, safe=""))
    return (f'<a href="{e(href)}" rel="noopener noreferrer" target="_blank" '
            f'title="open in Zuora">{label}</a>')


def value_pair(before: str | None, after: str | None, kind: str | None) -> str:
    """Local value (before) → Zuora value (after), the differing middle marked."""
    if kind == "missing_in_local":
        return '<span class="null">row missing locally</span>'
    if kind == "orphaned_in_local":
        return '<span class="null">row only in the local copy</span>'
    if before is None and after is None:
        return ""

    def side(v: str | None, parts: tuple[str, str, str] | None, cls: str) -> str:
        tag = "del" if cls == "b" else "ins"
        if v is None:
            return f'<{tag} class="{cls}"><span class="null">∅ null</span></{tag}>'
        if parts is None:
            return f'<{tag} class="{cls}">{e(v)}</{tag}>'
        p, mid, s = parts
        return f'<{tag} class="{cls}">{e(p)}<mark>{e(mid)}</mark>{e(s)}</{tag}>'

    pb = pa = None
    if before is not None and after is not None:
        pb, pa = diff_parts(before, after)
    note = delta_note(before, after)
    return (side(before, pb, "b") + " → " + side(after, pa, "a")
            + (f'<span class="delta">{e(note)}</span>' if note else ""))


def badge_status(s: str | None) -> str:
    return (f'<span class="badge s-{e(s)}" title="{e(STATUS_WORDS.get(s or "", ""))}">'
            f'{STATUS_ICON.get(s or "", "")} {e(s)}</span>')


def badge_sev(s: str | None) -> str:
    return f'<span class="v-{e(s)}">{SEV_ICON.get(s or "", "")} {e(s)}</span>'


def action_cell(a: str | None) -> str:
    if a == "human":
        return f'<span class="a-human" title="{e(ACTION_WORDS["human"])}">🔒 human</span>'
    return f'<span title="{e(ACTION_WORDS.get(a or "", ""))}">{e(a)}</span>'


def finding_row(r: dict[str, Any], m: dict[str, Any]) -> str:
    tpl = m["settings"]["zuora_url_template"]
    cat = m["catalogue"]
    obj = r["object"]
    key = zuora_link(tpl, obj, r["key"]) if obj in cat else e(r["key"])
    rule = r["rule"] or ""
    drift = r["drift_id"] or ""
    rule_cell = (f'<span title="{e(DRIFT_TITLES.get(rule or drift, ""))}">{e(rule)}'
                 + (f' <span class="muted">{"" if rule else "likely "}{e(drift)}</span>'
                    if drift and drift != rule else "") + "</span>")
    sub = r["subscription_name"]
    acct = r["account_id"]
    return (
        f'<tr class="row"><td>{badge_status(r["status"])}</td><td>{badge_sev(r["severity"])}'
        f'</td><td>{e(obj)}</td><td class="key">{key}</td>'
        f'<td title="{e(KIND_WORDS.get(r["kind"], ""))}">{e(KIND_SHORT.get(r["kind"], r["kind"]))}'
        f'</td><td>{rule_cell}</td><td>{e(r["field"])}</td>'
        f'<td class="val">{value_pair(r["local_value"], r["zuora_value"], r["kind"])}</td>'
        f'<td>{action_cell(r["action"])}</td><td class="expl"><div>{e(r["explanation"])}'
        f'</div></td><td class="mono">{drill_link("sub", sub)}</td>'
        f'<td class="mono">{drill_link("account", acct)}'
        f'{" " + zuora_link(tpl, "Account", acct, "↗") if acct and tpl else ""}</td></tr>')


def drill_link(kind: str, ident: str | None) -> str:
    if not ident:
        return ""
    return f'<a href="#drill?{kind}={e(quote(ident, safe=""))}">{e(ident)}</a>'


def table(head: Iterable[tuple[str, str]], rows: Iterable[str], *, tid: str = "",
          cls: str = "") -> str:
    ths = "".join(f'<th class="{e(c)}">{t}</th>' for t, c in head)
    return (f'<div class="scroll"><table{f" id={chr(34)}{tid}{chr(34)}" if tid else ""}'
            f'{f" class={chr(34)}{cls}{chr(34)}" if cls else ""}><thead><tr>{ths}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def h2(anchor: str, title: str) -> str:
    return f'<h2 id="{anchor}">{title} <a class="top" href="#top">back to top ↑</a></h2>'


# -- sections ---------------------------------------------------------------------------------------
def header(m: dict[str, Any]) -> str:
    run, st = m["run"], m["status"]
    snap = run["snapshot"]
    asof = run["data_as_of"]
    z = asof["zuora"]
    reasons = "".join(f"<li>{e(x)}</li>" for x in st["reasons"])
    prev = run["previous_run"]
    prev_html = (f'<a href="{e(run["previous_report"])}">{e(prev)}</a>' if run["previous_report"]
                 else e(prev)) if prev else '<span class="muted">none (first run)</span>'
    clean = run["last_clean_run"]
    clean_html = ("this run" if clean == run["run_id"] else e(clean)) if clean else \
        '<span class="muted">none in the recorded history</span>'
    gen = m["generator"]
    job = run["job"] or "—"
    rows = [
        ("Run", f'<code>{e(run["run_id"])}</code>'),
        ("Job / trigger", f'{e(job)} · <b>{e(run["trigger"])}</b>'
         + (f' · attempt {e(run["attempt"])}' if run.get("attempt") else "")
         + (f' · status {e(run["job_status"])}' if run.get("job_status") else "")),
        ("Started", when(run["started"])),
        ("Finished", when(run["finished"])
         + (f' · {num(run["duration_s"])} s' if run["duration_s"] is not None else "")),
        ("Snapshot", f'{e(snap["mode"] or "–")}'
         + (f' (asked: {e(snap["requested_mode"])})' if snap.get("requested_mode")
            and snap["requested_mode"] != snap["mode"] else "")
         + f' · {e(snap["status"] or "missing")}'
         + (f' · extract {num(snap["extract_s"])} s' if snap.get("extract_s") else "")),
        ("Zuora data as of", when(z) + (
            f' · AQuA job {", ".join(e(j) for j in z["aqua_job_ids"])}' if z["aqua_job_ids"]
            else "") + (f' · changes up to {when(z["window_upper_bound"])}'
                        if z.get("window_upper_bound") and z.get("mode") == "incremental"
                        else "")),
        ("Local data as of", when(asof["local"]) + (
            f' · one consistent export, {num(asof["local"]["export_s"])} s'
            if asof["local"].get("export_s") is not None else "")),
        ("Validated", when(run["validated"])),
        ("Reconciled", when(run["reconciled"]) + (
            f' · {num(run["reconcile_s"])} s' if run.get("reconcile_s") is not None else "")
         + (f' · grace window {num(run["grace_hours"])} h' if run.get("grace_hours")
            is not None else "")),
        ("Previous run", prev_html),
        ("Last clean run", clean_html),
        ("Tenant time zone", f'{e(run["tenant_tz"])} <span class="muted">(times: UTC, '
                             'then tenant zone)</span>'),
        ("recon", f'{e(gen["recon_version"])}'
         + (f' · git {e(gen["git_sha"])}' if gen["git_sha"] else "")
         + f' · config {e(gen["config_hash"])} · host {e(gen["host"])}'),
    ]
    if run.get("error_message"):
        rows.append(("Job error", f'{e(run.get("error_class"))}: {e(run["error_message"])}'))
    if run.get("job_counts"):
        rows.append(("Job counts", ", ".join(f"{e(k)} {num(v) if isinstance(v, int) else e(v)}"
                                            for k, v in run["job_counts"].items())))
    prov = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in rows)
    return (
        f'<h1 id="top">recon drift report <span class="muted">· run {e(run["run_id"])}</span>'
        f'</h1>'
        f'<div class="banner {e(st["banner"])}" role="status" id="status-banner" '
        f'data-banner="{e(st["banner"])}"><span class="icon" aria-hidden="true">'
        f'{e(st["icon"])}</span><div><div class="label">{e(st["label"])}</div>'
        f'<div>{e(st["text"])}</div>{f"<ul>{reasons}</ul>" if reasons else ""}</div></div>'
        f'<dl class="prov">{prov}</dl>')


def toc() -> str:
    links = [("summary", "Summary"), ("objects", "Objects"), ("fields", "Fields"),
             ("findings", "Findings"), ("rules", "By rule"), ("drill", "Drill-down"),
             ("validation", "Validation"), ("repair", "Repair"), ("trends", "Trends"),
             ("runs", "Runs"), ("howto", "How to read")]
    return '<nav class="toc">' + "".join(f'<a href="#{a}">{t}</a>' for a, t in links) + "</nav>"


def tile(key: str, label: str, value: Any, sub: str = "", tone: str = "") -> str:
    raw = "" if value is None else str(value)
    return (f'<div class="tile {tone}" data-key="{e(key)}" data-value="{e(raw)}">'
            f'<div class="v">{num(value)}</div><div class="l">{e(label)}</div>'
            f'{f"<div class={chr(34)}s{chr(34)}>{sub}</div>" if sub else ""}</div>')


def summary(m: dict[str, Any]) -> str:
    s = m["summary"]
    partial = m["status"]["banner"] == "PARTIAL"
    if partial:
        note = (f'<p class="callout"><b>{PARTIAL_LABEL}.</b> This run was not compared, so '
                "there are no difference counts: blank tiles mean “unknown”, not zero.</p>")
    else:
        note = ""
    sev = " · ".join(f'{badge_sev(k)} {num(v)}' for k, v in s["by_severity"].items()) or "none"
    tiles = [
        tile("drift", "open findings (new + persisting)", s["drift"],
             tone="" if partial else "bad" if s["drift"] else "good"),
        tile("new", "new since the previous run", None if partial else s["new"],
             tone="bad" if s["new"] else ""),
        tile("persisting", "persisting", None if partial else s["persisting"],
             tone="warn" if s["persisting"] else ""),
        tile("resolved", "resolved since the previous run", None if partial else s["resolved"],
             tone="good" if s["resolved"] else ""),
        tile("pending", "pending (grace window)", None if partial else s["pending"]),
        tile("rows_zuora", "rows compared in Zuora", s["rows_zuora"]),
        tile("rows_local", "rows compared locally", s["rows_local"]),
        tile("matched", "rows matched by key", s["matched"]),
        tile("missing_locally", "missing locally", None if partial else s["missing_locally"],
             tone="bad" if s["missing_locally"] else ""),
        tile("orphaned_locally", "orphaned locally", None if partial else s["orphaned_locally"],
             tone="warn" if s["orphaned_locally"] else ""),
        tile("field_drift", "field differences (cells)", None if partial else s["field_drift"],
             sub=f'in {num(s["rows_with_field_drift"])} rows', tone="warn" if s["field_drift"]
             else ""),
        tile("rule_violations", "rule violations", None if partial else s["rule_violations"],
             tone="warn" if s["rule_violations"] else ""),
        tile("auto", "auto (repair may fix)", None if partial else s["auto"]),
        tile("human", "🔒 need a person", None if partial else s["human"],
             tone="bad" if s["human"] else ""),
        tile("quarantined_rows", "rows quarantined", s["quarantined_rows"],
             tone="warn" if s["quarantined_rows"] else ""),
        tile("validation_failures", "validation failures", s["validation_failures"],
             sub=f'{num(s["validation_failures_error"])} error severity · '
                 f'{num(s["validation_errors"])} checks could not run',
             tone="bad" if s["validation_errors"] or s["validation_failures_error"]
             else "warn" if s["validation_failures"] else ""),
        tile("repair_operations", "repair operations planned", s["repair_operations"],
             sub=f'{num(s["repair_groups"])} transactions' if s["repair_groups"] is not None
             else ""),
    ]
    return (h2("summary", "Summary") + note + f'<div class="tiles">{"".join(tiles)}</div>'
            + f'<p>By severity (open): {sev}. Objects compared: {num(s["objects_compared"])}. '
            f'Findings rows in drift.parquet (resolved included): {num(s["findings_rows"])}.</p>')


def objects(m: dict[str, Any]) -> str:
    rows = []
    for r in m["objects"]:
        link = f'#findings?object={quote(r["object"], safe="")}'
        rows.append(
            f'<tr id="object-{e(r["object"])}"><td><a href="{e(link)}">{e(r["object"])}</a>'
            f'<div class="small muted">{e(r["table"])}</div></td><td class="small">'
            f'{e(r["key"])}</td>'
            + "".join(f'<td class="num">{num(r[k])}</td>' for k in (
                "zuora_rows", "local_rows", "matched", "only_zuora", "only_local", "unequal",
                "equal", "columns_compared", "columns_unequal", "duplicates"))
            + f'<td class="num"><b>{num(r["findings"])}</b></td><td class="num">{num(r["new"])}'
            f'</td><td class="num">{num(r["resolved"])}</td><td class="num">{num(r["human"])}'
            f'</td><td>{svg.sparkline(r["trend"], label=r["object"] + " open findings")}</td>'
            "</tr>")
    head = [("Object / local table", ""), ("Key", ""), ("Zuora rows", "num"),
            ("Local rows", "num"), ("Matched", "num"), ("Only Zuora", "num"),
            ("Only local", "num"), ("Unequal rows", "num"), ("Equal rows", "num"),
            ("Columns compared", "num"), ("Columns unequal", "num"),
            ("Duplicate keys", "num"), ("Open findings", "num"), ("New", "num"),
            ("Resolved", "num"), ("🔒 Human", "num"), (f"Trend (last {m['settings']['trend_runs']}"
                                                      " runs)", "")]
    body = table(head, rows, tid="objects-table") if rows else \
        '<p class="muted">Nothing was compared in this run.</p>'
    return (h2("objects", "Per object") + body +
            '<p class="small muted">Rows are matched on the Zuora Id (local Zuora-id column). '
            "Values are compared after the catalogue's normalisation (tolerance): decimals "
            "half-up to the local column's scale, tenant-zone datetimes vs naive UTC, "
            "\"\" = NULL for custom fields, enum spellings; see “Fields” for each column's "
            "rule. Local-only tables (orders, customers, memberships) have rule findings only."
            "</p>")


def fields(m: dict[str, Any]) -> str:
    rows = []
    for r in m["fields"]:
        samples = "".join(
            f'<div class="small"><span class="mono muted">{e(s["key"])}</span><br>'
            f'{value_pair(s["before"], s["after"], "field_mismatch")}</div>'
            for s in r["samples"])
        link = (f'#findings?object={quote(r["object"], safe="")}'
                f'&field={quote(r["field"], safe="")}')
        rows.append(
            f'<tr><td>{e(r["object"])}</td><td><a href="{e(link)}">{e(r["field"])}</a>'
            f'<div class="small muted">{e(r["column"])}</div></td>'
            f'<td class="small">{e(r["zuora_type"])} / {e(r["local_type"])}</td>'
            f'<td class="small">{e(r["tolerance"])}</td><td class="small">{e(r["owner"])}</td>'
            f'<td class="num">{num(r["unequal"])}</td>'
            f'<td class="num">{_pct(r["pct_unequal"])}</td>'
            f'<td class="num">{num(r["null_vs_value"])}</td>'
            f'<td class="num">{e(_diff(r["max_abs_diff"]))}</td><td class="samples">{samples}</td></tr>')
    head = [("Object", ""), ("Field / local column", ""), ("Type Zuora / local", ""),
            ("Tolerance (normalisation)", ""), ("Owner", ""), ("Unequal", "num"),
            ("% of matched", "num"), ("Null vs value", "num"), ("Max |diff|", "num"),
            ("Samples: local (before) → Zuora (after)", "")]
    body = table(head, rows, tid="fields-table") if rows else \
        '<p class="muted">No field differs.</p>'
    return (h2("fields", "Per field") + body + '<p class="small muted">Max |diff| is numeric '
            "for numbers and in days for dates. Each field links to all its findings.</p>")


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.3g}%"


def _diff(v: Any) -> str:
    if v in (None, ""):
        return "–"
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f"{x:,.6g}"


def _options(values: Iterable[str], label: str, name: str,
             words: dict[str, str] | None = None) -> str:
    opts = "".join(f'<option value="{e(v)}">{e(v)}'
                   f'{" — " + e(words[v]) if words and v in words else ""}</option>'
                   for v in values)
    return (f'<label>{label}<select name="{name}" data-filter="{name}">'
            f'<option value="">all</option>{opts}</select></label>')


def findings_section(m: dict[str, Any], f: pl.DataFrame) -> str:
    def uniq(col: str, order: tuple[str, ...] = ()) -> list[str]:
        vals = [v for v in f[col].unique().to_list() if v is not None]
        return [v for v in order if v in vals] + sorted(v for v in vals if v not in order)

    status_opts = ('<label>Status<select name="status" data-filter="status">'
                   '<option value="">all</option><option value="open">open (new + '
                   'persisting)</option>' + "".join(
                       f'<option value="{e(v)}">{e(v)}</option>'
                       for v in uniq("status", STATUS_ORDER)) + "</select></label>")
    rules = uniq("rule")
    form = (
        '<div class="filters" id="f-form" role="search">'
        + _options(uniq("object"), "Object", "object")
        + _options(uniq("kind"), "Kind", "kind")
        + ('<label>Rule<select name="rule" data-filter="rule"><option value="">all</option>'
           '<option value="-">no rule (row differences)</option>'
           + "".join(f'<option value="{e(v)}">{e(v)}</option>' for v in rules)
           + "</select></label>")
        + _options(uniq("drift_id"), "Likely drift", "drift")
        + _options(uniq("field"), "Field", "field")
        + _options(uniq("severity", SEVERITY_ORDER), "Severity", "severity")
        + _options(uniq("action"), "Action", "action")
        + status_opts
        + '<label>Search key, subscription, account<input type="search" name="q" id="f-q" '
          'placeholder="e.g. A-S00001234" autocomplete="off"></label>'
        + '<label>Group by<select name="group" data-filter="group"><option value="">none'
          '</option><option value="object">object</option><option value="rule">rule / drift'
          '</option></select></label>'
        + '<label>Rows<select name="size" data-filter="size"><option>50</option>'
          '<option>100</option><option>500</option></select></label>'
        + '<label>&nbsp;<button type="button" id="f-reset">Reset filters</button></label>'
        + "</div>")
    first = f.head(PAGE).to_dicts()
    rows = [finding_row(r, m) for r in first]
    head_html = "".join(f'<th data-sort="{c}">{t}</th>' for c, t in FINDING_COLUMNS)
    total = f.height
    count = (f'<p id="f-count" data-count="{total}" data-total="{total}">'
             f'Showing {min(PAGE, total):,} of {total:,} findings (all statuses, newest first).'
             "</p>")
    return (
        h2("findings", "Findings")
        + '<p class="nojs">JavaScript is off: this is the first page of findings in reading '
          'order. All rows are in <code>drift.parquet</code> and <code>report.json</code>.</p>'
        + form + count
        + f'<div class="scroll"><table id="f-table"><thead><tr>{head_html}</tr></thead>'
          f'<tbody>{"".join(rows)}</tbody></table></div>'
        + '<div class="pager" id="f-pager"></div>'
        + '<p class="small muted">Click a row for its full detail: evidence, the query that '
          "reproduces it over the run's snapshot, first seen, links. Filters are kept in the "
          "address (copy the link to share this view).</p>")


def rules_section(m: dict[str, Any]) -> str:
    rows = []
    for r in m["rules"]:
        ex = ", ".join(f"<code>{e(k)}</code>" for k in r["examples"])
        rows.append(
            f'<tr><td><a href="#findings?{e(r["filter"])}"><b>{e(r["code"])}</b></a>'
            f'<div class="small muted">{"cross-object rule" if r["is_rule"] else "row / field difference"}'
            f'</div></td><td>{e(r["title"])}'
            + (f'<div class="small muted">{e(r["drift_title"])}</div>'
               if r["drift_title"] and r["drift_title"] != r["title"] else "")
            + f'</td><td>{badge_sev(r["severity"])}</td>'
            + "".join(f'<td class="num">{num(r[k])}</td>' for k in (
                "open", "new", "persisting", "pending", "resolved", "auto", "human"))
            + f'<td class="small">{", ".join(e(o) for o in r["objects"])}</td>'
            f'<td class="small">{ex}</td><td class="small">'
            + (f'<code>{e(r["command"])}</code>' if r["command"] else
               '<span class="muted">none: needs a person</span>' if r["human"] else "")
            + "</td></tr>")
    head = [("Rule / drift", ""), ("What it means", ""), ("Worst severity", ""),
            ("Open", "num"), ("New", "num"), ("Persisting", "num"), ("Pending", "num"),
            ("Resolved", "num"), ("Auto", "num"), ("🔒 Human", "num"), ("Objects", ""),
            ("Example keys", ""), ("Suggested repair", "")]
    by_object = []
    for r in m["objects"]:
        if not (r["findings"] or r["resolved"] or r["pending"]):
            continue
        by_object.append(
            f'<tr><td><a href="#findings?object={e(quote(r["object"], safe=""))}">'
            f'{e(r["object"])}</a></td>' + "".join(
                f'<td class="num">{num(r[k])}</td>' for k in (
                    "findings", "new", "pending", "resolved", "auto", "human")) + "</tr>")
    return (h2("rules", "Findings by rule and by object")
            + (table(head, rows, tid="rules-table") if rows else
               '<p class="muted">No findings.</p>')
            + "<h3>By object</h3>"
            + (table([("Object", ""), ("Open", "num"), ("New", "num"), ("Pending", "num"),
                      ("Resolved", "num"), ("Auto", "num"), ("🔒 Human", "num")], by_object,
                     tid="by-object-table") if by_object else '<p class="muted">None.</p>'))


def drill_section(m: dict[str, Any]) -> str:
    d = m["drill"]
    tpl = m["settings"]["zuora_url_template"]

    def rows(items: list[dict], kind: str) -> list[str]:
        out = []
        for r in items:
            link = f'#drill?{kind}={quote(r["id"], safe="")}'
            other = ", ".join(e(x) for x in r["other"])
            ext = zuora_link(tpl, "Account", r["id"], "Zuora ↗") if kind == "account" else ""
            out.append(f'<tr><td class="mono"><a href="{e(link)}">{e(r["id"])}</a> {ext}</td>'
                       f'<td class="num">{num(r["findings"])}</td><td class="num">'
                       f'{num(r["human"])}</td><td>{badge_sev(r["severity"])}</td>'
                       f'<td class="small">{", ".join(e(o) for o in r["objects"])}</td>'
                       f'<td class="small mono">{other}</td></tr>')
        return out

    subs = table([("Subscription name", ""), ("Findings", "num"), ("🔒 Human", "num"),
                  ("Worst", ""), ("Objects", ""), ("Account(s)", "")],
                 rows(d["subscriptions"], "sub"), tid="drill-subs")
    accts = table([("Account id", ""), ("Findings", "num"), ("🔒 Human", "num"), ("Worst", ""),
                   ("Objects", ""), ("Subscriptions", "")], rows(d["accounts"], "account"),
                  tid="drill-accounts")
    return (h2("drill", "Drill-down by subscription and account")
            + '<p>Every version, charge, tier and order finding of one subscription (or '
              'everything under one account) together. Open one from the lists, from a '
              'subscription or account cell in the findings table, or search:</p>'
            + '<div class="filters" id="drill-form"><label>Subscription '
              'name or account id<input type="search" id="drill-q" autocomplete="off"></label>'
              '<label>&nbsp;<button type="button" id="drill-go">Open</button></label></div>'
            + '<div id="drill-panel"></div>'
            + f'<div class="two"><div><h3>Subscriptions with the most findings '
              f'<span class="muted small">({num(d["subscription_count"])} with findings)</span>'
              f'</h3>{subs}</div><div><h3>Accounts with the most findings <span class="muted '
              f'small">({num(d["account_count"])} with findings)</span></h3>{accts}</div></div>')


def validation_section(m: dict[str, Any]) -> str:
    v = m["validation"]
    status_words = {"passed": "✔ every check passed", "warnings": "▲ passed with warnings",
                    "failed": "✖ failed (error-severity checks)", "error": "✖ some checks could "
                    "not run", "not_run": "– no validation recorded for this run"}
    out = [h2("validation", "Validation: contracts and business rules"),
           f'<p><b>{e(status_words.get(v["status"], v["status"]))}</b> — {num(v["checks"])} '
           f'checks: {num(v["passed"])} passed, {num(v["failed_count"])} failed, '
           f'{num(v["error_count"])} could not run.</p>']

    def check_rows(items: list[dict]) -> list[str]:
        rows = []
        for r in items:
            samples = ", ".join(
                f'<code>{e(k)}</code>' + (f' = <code>{e(val)}</code>' if val is not None else "")
                for k, val in zip(r["sample_keys"], r["sample_values"] or [None] * len(
                    r["sample_keys"]), strict=False))
            rows.append(f'<tr><td>{badge_sev("high" if r["severity"] == "error" else "medium")}'
                        f' {e(r["severity"])}</td><td>{e(r["source_words"])}<div class="small '
                        f'muted">{e(r["suite"])}</div></td><td>{e(r["words"])}<div class="small '
                        f'muted">{e(r["message"])}</div></td><td class="num">'
                        f'{num(r["failing_count"])}</td><td class="small">{samples}</td></tr>')
        return rows

    head = [("Severity", ""), ("Kind of check", ""), ("In plain words", ""),
            ("Failing", "num"), ("Sample keys = values", "")]
    if v["errors"]:
        out.append('<h3>Checks that could not run (errors, not bad data)</h3>'
                   + table(head, check_rows(v["errors"]), tid="check-errors"))
    out.append("<h3>Failed checks</h3>" + (table(head, check_rows(v["failed"]),
                                                  tid="check-failed")
                                            if v["failed"] else
                                            '<p class="muted">None.</p>'))
    suites = "".join(
        f'<tr><td>{e(SOURCE_WORDS.get(s["source"], s["source"]))}</td><td>{e(s["suite"])}</td>'
        f'<td class="num">{num(s["total"])}</td><td class="num">{num(s["passed"])}</td>'
        f'<td class="num">{num(s["failed"])}</td><td class="num">{num(s["errors"])}</td></tr>'
        for s in v["suites"])
    out.append(f'<details><summary>All checks by suite ({len(v["suites"])} suites)</summary>'
               f'{table([("Kind", ""), ("Suite", ""), ("Checks", "num"), ("Passed", "num"), ("Failed", "num"), ("Errors", "num")], [suites])}'
               "</details>")
    q = v["quarantine"]
    qrows = [f'<tr><td>{e(g["side"])}</td><td>{e(g["object"])}<div class="small muted">'
             f'{e(g["table"])}</div></td><td>{e(g["column"])}</td><td>{e(g["check"])}</td>'
             f'<td>{e(g["why"])}</td><td class="num">{num(g["rows"])}</td><td class="num">'
             f'{num(g["keys"])}</td><td class="small">' + ", ".join(
                 f'<code>{e(k)}</code> = <code>{e(val)}</code>' for k, val in zip(
                     g["sample_keys"], g["sample_values"], strict=False)) + "</td></tr>"
             for g in q["groups"]]
    out.append(f'<h3>Quarantined rows ({num(q["rows"])})</h3>'
               '<p class="small muted">A row that breaks its contract is set aside before the '
               'comparison and reported as “quarantined”, never as missing.</p>'
               + (table([("Side", ""), ("Object / table", ""), ("Column", ""), ("Check", ""),
                         ("Why", ""), ("Rows", "num"), ("Keys", "num"),
                         ("Sample keys = values", "")], qrows, tid="quarantine-table")
                  if qrows else '<p class="muted">Nothing was quarantined.</p>'))
    return "".join(out)


def repair_section(m: dict[str, Any], f: pl.DataFrame) -> str:
    r = m["repair"]
    out = [h2("repair", "Repair: what the plan would do")]
    if not r["available"]:
        out.append(f'<p class="muted">No repair plan: {e(r["error"])}.</p>')
    else:
        src = ("saved plan <code>repair-plan.json</code>" if r["source"] == "file" else
               "a plan built in memory for this report (not saved; run "
               "<code>recon repair plan</code> to save one)")
        out.append(f'<p>From {src}: plan <code>{e(r["plan_id"])}</code>, created '
                   f'{e(r["created_at"])}; validation <b>{e(r["validation"])}</b>; snapshot '
                   f'{"complete" if r["snapshot_complete"] else "NOT complete"}. '
                   f'<b>{num(r["operations"])}</b> operations in {num(r["groups"])} '
                   "transactions on the local database; nothing in Zuora is ever written.</p>")
        steps = [f'<tr><td>{e(s["step"])}</td><td>{e(s["table"])}</td>'
                 + "".join(f'<td class="num">{num(s[k])}</td>' for k in
                           ("insert", "update", "delete")) + "</tr>" for s in r["steps"]]
        out.append(table([("Step", ""), ("Table", ""), ("Insert", "num"), ("Update", "num"),
                          ("Delete", "num")], steps, tid="repair-steps"))
        samples = []
        for s in r["samples"]:
            ch = "".join(f'<div><span class="mono">{e(c["column"])}</span>: '
                         f'{value_pair(c["before"], c["after"], "field_mismatch")}</div>'
                         for c in s["changes"])
            more = f'<div class="muted small">… {s["more"]} more columns</div>' if s["more"] \
                else ""
            samples.append(f'<tr><td>{e(s["table"])}</td><td>{e(s["op"])}</td>'
                           f'<td class="mono small">{e(s["key"])}</td><td class="val small">'
                           f'{ch}{more}</td><td class="small">{e(s["reason"])}</td></tr>')
        out.append("<details><summary>Sample operations (before → after)</summary>"
                   + table([("Table", ""), ("Op", ""), ("Key", ""), ("Changes", ""),
                            ("Why", "")], samples) + "</details>")
        out.append("<p>Commands:</p><pre>" + "\n".join(e(c) for c in r["commands"]) + "</pre>")
        if r["not_planned_count"]:
            out.append(f'<p class="callout">{num(r["not_planned_count"])} auto findings have no '
                       "operation (see <code>not_planned</code> in the plan).</p>")
    if r["applies"]:
        rows = [f'<tr><td class="mono">{e(a.get("apply_id"))}</td><td>{e(a.get("kind"))}</td>'
                f'<td>{e(a.get("status"))}</td><td>{"dry run" if a.get("dry_run") else "applied"}'
                f'</td><td class="num">{num(a.get("ops_planned"))}</td><td class="num">'
                f'{num(a.get("ops_applied"))}</td><td class="num">{num(a.get("ops_skipped"))}'
                f'</td><td>{e(a.get("started_at"))}</td><td class="small">{e(a.get("message"))}'
                "</td></tr>" for a in r["applies"]]
        out.append("<h3>Applies of this run's plans</h3>" + table(
            [("Apply", ""), ("Kind", ""), ("Status", ""), ("Mode", ""), ("Planned", "num"),
             ("Applied", "num"), ("Skipped", "num"), ("Started", ""), ("Message", "")], rows,
            tid="applies-table"))
    elif r.get("applies_error"):
        out.append(f'<p class="muted">{e(r["applies_error"])}.</p>')
    by = r.get("needs_a_person_by") or {}
    by_txt = " · ".join(f"{e(k)} {num(v)}" for k, v in sorted(by.items()))
    queue = f.filter((pl.col("action") == "human") & pl.col("status").is_in(OPEN))
    rows = [f'<tr><td>{badge_sev(q["severity"])}</td><td>{e(q["object"])}</td>'
            f'<td class="key">{e(q["key"])}</td><td>{e(q["rule"] or q["kind"])}</td>'
            f'<td>{e(q["explanation"])}</td><td class="mono">{e(q["subscription_name"])}</td>'
            f'<td class="mono">{e(q["account_id"])}</td></tr>'
            for q in queue.head(PAGE).to_dicts()]
    out.append(f'<h3 id="people">🔒 Needs a person ({num(queue.height)})</h3>'
               + (f"<p>By rule / kind: {by_txt}.</p>" if by_txt else "")
               + "<p>Never repaired automatically. Each line says what to decide; "
                 '<a href="#findings?action=human&amp;status=open">open them in the findings '
                 "table</a>.</p>"
               + table([("Severity", ""), ("Object", ""), ("Key", ""), ("Rule / kind", ""),
                        ("What to decide", ""), ("Subscription", ""), ("Account", "")], rows,
                       tid="people-table")
               + '<div class="pager" id="people-pager"></div>')
    return "".join(out)


def trends_section(m: dict[str, Any]) -> str:
    tr = m["trends"]
    runs = tr["runs"]
    labels = [_short(r["run_id"]) for r in runs]
    if len(set(labels)) < len(labels):  # several runs in one minute (demos, tests)
        labels = [_short(r["run_id"], seconds=True) for r in runs]
    status_series = {s: [(r["by_status"].get(s, 0) if r["reconciled"] else None) for r in runs]
                     for s in STATUS_ORDER}
    out = [h2("trends", f"Trends over the last {len(runs)} runs")]
    out.append('<div class="two"><div>' + svg.stacked_bars(
        labels, status_series, title="Findings by status", colors=svg.STATUS_COLORS) + "</div>")
    out.append("<div>" + svg.lines(labels, {
        "Zuora rows": [r["zuora_rows"] for r in runs],
        "local rows": [r["local_rows"] for r in runs]}, title="Extract volumes (rows)")
        + "</div>")
    out.append("<div>" + svg.stacked_bars(labels, {
        "extract": [r["extract_s"] for r in runs],
        "reconcile": [r["reconcile_s"] for r in runs]}, title="Run duration", unit=" s")
        + "</div>")
    out.append(_heatmap(runs, labels, tr["objects"], "by_object", "Open findings by object"))
    out.append(_heatmap(runs, labels, tr["rules"], "by_rule",
                        "Open rule findings by rule (cross-object rules)"))
    out.append("</div>")
    vols = sorted({k for r in runs for k in r["volumes"]})
    if vols:
        heads = "".join(f'<th class="num" title="{e(r["run_id"])}">{e(lab)}</th>'
                        for r, lab in zip(runs, labels, strict=True))
        body = "".join(f"<tr><td>{e(o)}</td>" + "".join(
            f'<td class="num">{num(r["volumes"].get(o))}</td>' for r in runs) + "</tr>"
            for o in vols)
        out.append('<details><summary>Extract volume per Zuora object</summary><div '
                   f'class="scroll"><table><thead><tr><th>Object</th>{heads}</tr></thead>'
                   f"<tbody>{body}</tbody></table></div></details>")
    return "".join(out)


def _heatmap(runs: list[dict], labels: list[str], names: list[str], key: str,
             title: str) -> str:
    """A table of counts per name (rows) and run (columns), shaded by size."""
    if not names:
        return ""
    heads = "".join(f'<th class="num" title="{e(r["run_id"])}">{e(lab)}</th>'
                    for r, lab in zip(runs, labels, strict=True))
    top = max((v for r in runs for v in r[key].values()), default=1) or 1
    body = []
    for name in names:
        cells = []
        for r in runs:
            if not r["reconciled"]:
                cells.append('<td class="num muted">n/a</td>')
                continue
            v = r[key].get(name, 0)
            a = 0.08 + 0.6 * v / top if v else 0
            cells.append(f'<td class="num" style="background:rgba(217,119,6,{a:.2f})">'
                         f'{num(v)}</td>')
        label = f'{e(name)} <span class="muted small">{e(DRIFT_TITLES.get(name, ""))}</span>' \
            if key == "by_rule" else e(name)
        body.append(f"<tr><td>{label}</td>{''.join(cells)}</tr>")
    return (f'<div><figure><figcaption>{e(title)}</figcaption><div class="scroll"><table '
            f'class="heat"><thead><tr><th>{"Rule" if key == "by_rule" else "Object"}</th>'
            f'{heads}</tr></thead><tbody>{"".join(body)}</tbody></table></div></figure></div>')


def _short(run_id: str, seconds: bool = False) -> str:
    """``20261123T012427270014Z-e3bc`` → ``11-23 01:24`` (``11-23 01:24:27``)."""
    if len(run_id) >= 15 and run_id[8] == "T":
        sec = f":{run_id[13:15]}" if seconds else ""
        return f"{run_id[4:6]}-{run_id[6:8]} {run_id[9:11]}:{run_id[11:13]}{sec}"
    return run_id[:12]


def runs_section(m: dict[str, Any]) -> str:
    icons = {"CLEAN": "✔", "DRIFT": "▲", "ERROR": "✖", "PARTIAL": "◐"}
    rows = []
    for r in reversed(m["trends"]["runs"]):
        name = f'<b>{e(r["run_id"])}</b> (this report)' if r["current"] else (
            f'<a href="{e(r["report"])}">{e(r["run_id"])}</a>' if r["report"] else e(r["run_id"]))
        label = "PARTIAL — NOT RECONCILED" if r["banner"] == "PARTIAL" else (
            f'DRIFT ({r["drift"]:,})' if r["banner"] == "DRIFT" else r["banner"])
        bs = r["by_status"]
        rows.append(
            f'<tr><td class="mono">{name}</td><td class="b-{e(r["banner"])}">'
            f'{icons.get(r["banner"], "")} {e(label)}</td><td class="nowrap">'
            f'{e((r["started"] or "").replace("T", " ").replace("Z", ""))}</td>'
            f'<td>{e(r["mode"])}</td><td>{e(r["trigger"] or "manual")}</td>'
            + "".join(f'<td class="num">{num(bs.get(k, 0)) if r["reconciled"] else "–"}</td>'
                      for k in ("new", "persisting", "pending", "resolved"))
            + f'<td class="num">{num(r["zuora_rows"])}</td><td class="num">'
            f'{num(r["local_rows"])}</td><td class="num">{num(r["extract_s"])}</td>'
            f'<td class="num">{num(r["reconcile_s"])}</td><td class="small">{e(r["error"])}'
            "</td></tr>")
    return (h2("runs", "Recent runs") + table(
        [("Run", ""), ("Status", ""), ("Started (UTC)", ""), ("Mode", ""), ("Trigger", ""),
         ("New", "num"), ("Persisting", "num"), ("Pending", "num"), ("Resolved", "num"),
         ("Zuora rows", "num"), ("Local rows", "num"), ("Extract s", "num"),
         ("Reconcile s", "num"), ("Error", "")], rows, tid="runs-table"))


def footer(m: dict[str, Any]) -> str:
    arts = " · ".join(f'<a href="{e(v)}">{e(k)}</a>' for k, v in m["artifacts"].items())
    notes = "".join(f"<li>{e(n)}</li>" for n in m["notes"])
    tz = e(m["settings"]["tenant_tz"])
    return (
        h2("howto", "How to read this report")
        + "<ul>"
        "<li><b>Banner</b>: CLEAN (nothing differs), DRIFT (n open findings), ERROR (part of the "
        "run failed: a check could not run or the job failed), PARTIAL — NOT RECONCILED (the "
        "extract failed or the run stopped before comparing: no numbers here mean zero).</li>"
        "<li><b>Zuora is the source of truth</b>: “before” is the local value, “after” is "
        "Zuora's, i.e. what a repair writes. Marked characters are the ones that differ; "
        "“+1 day” / “Δ” give the size of a date or number difference.</li>"
        "<li><b>Status</b>: new (first seen in this run), persisting (open since an earlier "
        "run, see first seen), pending (Zuora changed it within the grace window of "
        f"{num(m['settings']['grace_hours'])} h; not drift yet), resolved (gone since the "
        "previous run).</li>"
        "<li><b>Action</b>: auto findings are repaired from Zuora by <code>recon repair</code>; "
        "🔒 human findings never are: someone must decide.</li>"
        f"<li><b>Times</b> are UTC, then the tenant's zone ({tz}) in brackets.</li>"
        "<li>Severity and status are written out in words and icons, not only colours.</li>"
        "</ul>"
        + (f"<p>Notes:</p><ul>{notes}</ul>" if notes else "")
        + f"<footer>Artifacts: {arts or 'none'}. Generated {e(m['generated_at'])} by recon "
          f"{e(m['generator']['recon_version'])}. Local database: "
          f"{e(m['settings']['local_database'])}. This file is self-contained and makes no "
          "network request; data is escaped text. Machine-readable twin: "
          "<code>report.json</code>.</footer>")


def read_asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def render(model: dict[str, Any], findings: pl.DataFrame, island_text: str) -> str:
    """The whole page."""
    css = read_asset("report.css")
    js = read_asset("report.js")
    js_hash = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode()
    csp = (f"default-src 'none'; script-src 'sha256-{js_hash}'; style-src 'unsafe-inline'; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    st = model["status"]
    title = f"{st['label']} · recon report {model['run']['run_id']}"
    body = "".join([
        header(model), toc(), summary(model), objects(model), fields(model),
        findings_section(model, findings), rules_section(model), drill_section(model),
        validation_section(model), repair_section(model, findings), trends_section(model),
        runs_section(model), footer(model)])
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{e(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{e(title)}</title><style>{css}</style></head>"
        f'<body><main>{body}</main>'
        f'<script type="application/json" id="report-data">{island_text}</script>'
        f"<script>{js}</script></body></html>\n")

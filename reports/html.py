"""The report page: one self-contained HTML file rendered from the model by Jinja2 templates
(``reports/templates/*.html.j2``).

Inline CSS and JS (``reports/assets/``), inline SVG charts, no CDN, no web font, no request of
any kind; a Content-Security-Policy that allows only the page's own script (by hash), so even
markup that slipped into the page could neither run nor load anything. The summary and the
first page of every table are rendered here, so the page reads with JavaScript off; the script
then takes over the interactive parts from the data island.

Every value from data is text: the templates autoescape everything they print (the SVG charts
too: :mod:`reports.svg` computes their geometry, ``charts.html.j2`` writes them), and nothing
from data is marked safe. The only markup passed in from Python is recon's own CSS and JS
assets and the data island, which :mod:`reports.json_out` escapes for its ``<script>``
element. The environment
runs under ``StrictUndefined``: a model field a template names but the model lacks (a rename)
fails the render, and the tests render every branch.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import polars as pl
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from reports import svg
from reports.model import OPEN, PARTIAL_LABEL, SEVERITY_ORDER, STATUS_ORDER, ReportModel, Trends
from reports.values import delta_note, diff_parts
from reports.words import ACTION_WORDS, DRIFT_TITLES, KIND_WORDS, SOURCE_WORDS, STATUS_WORDS

ASSETS = Path(__file__).parent / "assets"
PAGE = 50  # rows per page rendered server-side (the script's default page size)
SEV_ICON = {"critical": "‼", "high": "▲", "medium": "●", "low": "○"}
STATUS_ICON = {"new": "✚", "persisting": "↻", "pending": "⏳", "resolved": "✔"}
KIND_SHORT = {"missing_in_local": "missing locally", "orphaned_in_local": "orphaned locally",
              "field_mismatch": "field differs", "duplicate_local": "duplicate",
              "rule_violation": "rule", "quarantined": "quarantined"}
# The findings table: human identifiers first (Zuora ids are in each row's detail), widths
# chosen so that the table fits 1,280 px without scrolling (report.css, table-layout: fixed).
# (sort column, header, <col> class)
FINDING_COLUMNS = (("status", "Status", "c-st"), ("entity", "Subscription / product", "c-ent"),
                   ("account_number", "Account", "c-acct"), ("object", "Object · field", "c-obj"),
                   ("local_value", "Local (before) → Zuora (after)", "c-val"),
                   ("note", "Explanation", "c-note"), ("owner", "Owner", "c-own"),
                   ("action", "Action", "c-act"))
GROUP_WORDS = {"subscription": "Subscription", "account": "Account", "product": "Product"}
TEMPLATE = "report.html.j2"


def e(value: Any) -> str:
    """Escaped text of any value (None → empty), as the templates print it."""
    return "" if value is None else str(escape(str(value)))


def num(value: Any, suffix: str = "") -> str:
    """A count or measure as text (thousands separated; "–" for unknown). Plain text: the
    template escapes it."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.1f}{suffix}" if not value.is_integer() else f"{int(value):,}{suffix}"
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    return str(value)


def pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.3g}%"


def absdiff(v: Any) -> str:
    """The per-field max |diff| (numbers; days for dates)."""
    if v in (None, ""):
        return "–"
    try:
        x = float(v)
    except (TypeError, ValueError):
        return str(v)
    return f"{x:,.6g}"


def zuora_href(template: str, obj: str, ident: str) -> str:
    """The configured link template filled in; the id is data, so it is percent-encoded (the
    template then escapes the whole href as an attribute)."""
    return template.replace("{object}", quote(obj, safe="")).replace("{id}", quote(ident, safe=""))


def _finalize(value: Any) -> Any:
    """What ``{{ value }}`` prints: nothing for None (a missing value is an empty cell)."""
    return "" if value is None else value


def _zip(a: Iterable[Any], b: Iterable[Any]) -> list[tuple[Any, Any]]:
    return list(zip(a, b, strict=False))


def _short(run_id: str, seconds: bool = False) -> str:
    """``20261123T012427270014Z-e3bc`` → ``11-23 01:24`` (``11-23 01:24:27``)."""
    if len(run_id) >= 15 and run_id[8] == "T":
        sec = f":{run_id[13:15]}" if seconds else ""
        return f"{run_id[4:6]}-{run_id[6:8]} {run_id[9:11]}:{run_id[11:13]}{sec}"
    return run_id[:12]


@functools.cache
def environment() -> Environment:
    """The report's Jinja2 environment: autoescape on, StrictUndefined, the shared words."""
    env = Environment(loader=PackageLoader("reports", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      finalize=_finalize)
    env.filters.update(num=num, pct=pct, absdiff=absdiff, zuora_href=zuora_href,
                       urlq=lambda v: quote(str(v), safe=""), zip=_zip)
    env.globals.update(
        PAGE=PAGE, SEV_ICON=SEV_ICON, STATUS_ICON=STATUS_ICON, KIND_SHORT=KIND_SHORT,
        FINDING_COLUMNS=FINDING_COLUMNS, GROUP_WORDS=GROUP_WORDS, PARTIAL_LABEL=PARTIAL_LABEL,
        DRIFT_TITLES=DRIFT_TITLES,
        KIND_WORDS=KIND_WORDS, STATUS_WORDS=STATUS_WORDS, ACTION_WORDS=ACTION_WORDS,
        SOURCE_WORDS=SOURCE_WORDS, diff_parts=diff_parts, delta_note=delta_note,
        spark=svg.sparkline)
    return env


def _parts() -> Any:
    return environment().get_template("parts.html.j2").module


def value_pair(before: str | None, after: str | None, kind: str | None) -> Markup:
    """Local value (before) → Zuora value (after), the differing middle marked."""
    return Markup(_parts().value_pair(before, after, kind))


def zuora_link(template: str, obj: str, ident: str | None, text: str | None = None) -> Markup:
    """An id as a link through the configured template ("" template → plain text)."""
    return Markup(_parts().zuora_link(template, obj, ident, text))


def _choices(f: pl.DataFrame) -> dict[str, list[str]]:
    """The findings filters' options: each column's values (status and severity in their
    reading order, the rest sorted)."""
    def uniq(col: str, order: Sequence[str] = ()) -> list[str]:
        vals = [v for v in f[col].unique().to_list() if v is not None]
        return [v for v in order if v in vals] + sorted(v for v in vals if v not in order)

    return {"object": uniq("object"), "kind": uniq("kind"), "rule": uniq("rule"),
            "drift_id": uniq("drift_id"), "field": uniq("field"),
            "severity": uniq("severity", SEVERITY_ORDER), "action": uniq("action"),
            "status": uniq("status", STATUS_ORDER), "owner": uniq("owner")}


def group_summaries(f: pl.DataFrame, rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What each group header of the first page says about its whole group (all its findings,
    not only those on the page): counts, fields, worst severity, statuses, owners, acks. Keyed
    like the page script's groups: ``entity_kind + "\x01" + entity``."""
    keys = {(r["entity_kind"], r["entity"]) for r in rows}
    if not keys:
        return {}
    sev = {s: i for i, s in enumerate(SEVERITY_ORDER)}
    want = pl.DataFrame(list(keys), schema={"entity_kind": pl.String, "entity": pl.String},
                        orient="row")
    g = (f.join(want, on=["entity_kind", "entity"], how="semi", nulls_equal=True)
         .group_by("entity_kind", "entity")
         .agg(n=pl.len(), rows=pl.struct("object", "key").n_unique(),
              fields=pl.col("field").drop_nulls().unique(maintain_order=True),
              objects=pl.col("object").unique(maintain_order=True),
              sev=pl.col("severity").replace_strict(sev, default=9, return_dtype=pl.Int32).min(),
              statuses=pl.col("status").value_counts(sort=True),
              owners=pl.col("owner").drop_nulls().unique(maintain_order=True),
              acked=(pl.col("ack") == "acknowledged").sum(),
              account_number=pl.col("account_number").drop_nulls().first(),
              account_name=pl.col("account_name").drop_nulls().first(),
              subscription=pl.col("subscription_name").drop_nulls().first()))
    out = {}
    for r in g.to_dicts():
        counts = {d["status"]: d["count"] for d in r["statuses"]}
        out[f"{r['entity_kind']}\x01{r['entity']}"] = {
            **r, "statuses": [(s, counts[s]) for s in STATUS_ORDER if s in counts],
            "severity": SEVERITY_ORDER[r["sev"]] if r["sev"] < len(SEVERITY_ORDER) else None}
    return out


def _trend_view(tr: Trends) -> dict[str, Any]:
    """Run labels, the SVG charts and the heatmaps' scales for the trends section."""
    runs = tr.runs
    labels = [_short(r.run_id) for r in runs]
    if len(set(labels)) < len(labels):  # several runs in one minute (demos, tests)
        labels = [_short(r.run_id, seconds=True) for r in runs]
    status_series = {s: [(r.by_status.get(s, 0) if r.reconciled else None) for r in runs]
                     for s in STATUS_ORDER}
    charts = {
        "status": svg.stacked_bars(labels, status_series, title="Findings by status",
                                   colors=svg.STATUS_COLORS),
        "volumes": svg.lines(labels, {"Zuora rows": [r.zuora_rows for r in runs],
                                      "local rows": [r.local_rows for r in runs]},
                             title="Extract volumes (rows)"),
        "durations": svg.stacked_bars(labels, {"extract": [r.extract_s for r in runs],
                                               "reconcile": [r.reconcile_s for r in runs]},
                                      title="Run duration", unit=" s"),
    }
    tops = {key: max((v for r in runs for v in getattr(r, key).values()), default=1) or 1
            for key in ("by_object", "by_rule")}
    return {"labels": labels, "charts": charts, "tops": tops,
            "volumes": sorted({k for r in runs for k in r.volumes})}


def read_asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def render(model: ReportModel, findings: pl.DataFrame, island_text: str) -> str:
    """The whole page. ``island_text`` is the data island already escaped for its
    ``<script>`` element (:func:`reports.json_out.island`)."""
    css = read_asset("report.css")
    js = read_asset("report.js")
    js_hash = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode()
    csp = (f"default-src 'none'; script-src 'sha256-{js_hash}'; style-src 'unsafe-inline'; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    people = findings.filter((pl.col("action") == "human") & pl.col("status").is_in(OPEN))
    page = environment().get_template(TEMPLATE).render(
        m=model, csp=csp,
        # recon's own assets and the island (escaped by json_out for <script>) are markup
        css=Markup(css), js=Markup(js), island=Markup(island_text),
        choices=_choices(findings), first_page=(first := findings.head(PAGE).to_dicts()),
        groups=group_summaries(findings, first),
        total=findings.height, people=people.head(PAGE).to_dicts(), people_total=people.height,
        trend=_trend_view(model.trends))
    return page + "\n"

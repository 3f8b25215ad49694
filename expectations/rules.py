"""Business rules: Great Expectations suites (JSON in ``expectations/suites/``) run on derived
check frames ("views").

GX has no polars or DuckDB support (dq-report-anchors §1.2), and most business rules are about
groups or joins, not single rows ("exactly one latest version per name"). So each rule has two
halves:

* a **view**: DuckDB SQL over the extract (relations named by Zuora object and local table),
  one row per thing the rule talks about (a subscription name, a charge of a version, an
  active account, a child row and whether its parent exists) with a ``key`` column; the
  references views are generated from the catalogue's parent edges;
* an **expectation** in a suite file, stating the rule on that view in GX's vocabulary, with
  ``meta``: ``view`` (required), ``rule`` (required, the name results carry), and optionally
  ``object``, ``column`` (how results name it) and ``value_column`` (the view column whose
  values are sampled, e.g. the dangling reference). ``severity``: ``critical`` (an error:
  Zuora-side invariants) or ``warning`` (local-side drift, which the reconciler reports and
  repairs).

Results come back by business key (``unexpected_index_column_names``). An expectation that
raised, a view whose SQL failed or a suite entry GX cannot load is an ``error`` result, never a
data failure. GX is imported only inside :func:`run_suites` (4–6 s, ~250 MB), so commands that
do not run suites never pay for it.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from core.catalog import OBJECTS, ObjectSpec, get
from expectations.contracts import LOCAL, ZUORA
from expectations.results import CheckResult, pct

SUITES_DIR = Path(__file__).parent / "suites"
SEVERITY = {"critical": "error", "warning": "warning", "info": "warning"}


@dataclass(frozen=True)
class View:
    """A derived check frame: ``sql`` yields one row per checked thing, with a ``key``."""

    name: str
    side: str
    object: str  # how results name what was checked (Zuora object or local table)
    sql: str
    doc: str = ""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _col(spec: ObjectSpec, side: str, field_name: str) -> str:
    f = spec.field(field_name)
    if side == ZUORA:
        return _q(f.name)
    assert f.column is not None, f"{spec.name}.{field_name} is not stored locally"
    return _q(f.column)


def _rel(spec: ObjectSpec, side: str) -> str:
    return _q(spec.name if side == ZUORA else spec.table)


def _latest_sql(side: str) -> str:
    spec = get("Subscription")
    name, version, rel = _col(spec, side, "Name"), _col(spec, side, "Version"), _rel(spec, side)
    if side == ZUORA:
        latest = _col(spec, side, "IsLatestVersion")
        return (f"SELECT {name} AS key, count(*) AS versions, "
                f"count(*) FILTER (WHERE {latest}) AS latest_versions, "
                f"max({version}) FILTER (WHERE {latest}) = max({version}) AS latest_is_max_version "
                f"FROM {rel} GROUP BY {name}")
    # The local copy has no latest flag: its latest is the highest version of the name (L2).
    return (f"SELECT name AS key, count(*) AS versions, "
            f"count(*) FILTER (WHERE version = top) AS latest_versions FROM ("
            f"SELECT {name} AS name, {version} AS version, "
            f"max({version}) OVER (PARTITION BY {name}) AS top FROM {rel}) GROUP BY name")


def _segments_sql(side: str) -> str:
    """Z8/L3 per (subscription version, charge number): segments 1..k, exactly one last
    segment and it is the highest, and each segment ends where the next one starts.

    The dates rule without a sort or a self-join (both cost seconds on 2.6M charges): for
    segments 1..k, "end(i) = start(i+1) for every i < k" holds exactly when the multiset
    {(i+1, end(i)) : i < k} equals {(i, start(i)) : i > 1}. Each side is summed as 64-bit
    hashes (in HUGEINT, no overflow): equal multisets give equal sums, and unequal ones
    collide with probability ~2^-64. NULL when the segment numbers are not 1..k themselves
    (``contiguous`` already fails then)."""
    spec = get("RatePlanCharge")
    c = {f: _col(spec, side, f) for f in ("SubscriptionId", "ChargeNumber", "Segment",
                                          "IsLastSegment", "EffectiveStartDate",
                                          "EffectiveEndDate")}
    contiguous = "(min(seg) = 1 AND max(seg) = count(*) AND count(DISTINCT seg) = count(*))"
    return f"""
SELECT concat(sub, '/', num) AS key,
       count(*) AS segments,
       {contiguous} AS contiguous,
       count(*) FILTER (WHERE last) AS last_segments,
       CASE WHEN count(*) FILTER (WHERE last) = 0 THEN NULL
            ELSE min(seg) FILTER (WHERE last) = max(seg) END AS last_is_max,
       CASE WHEN {contiguous} THEN
         sum(hash(seg + 1, fin)::HUGEINT) - hash(max(seg) + 1, arg_max_null(fin, seg))::HUGEINT
         = sum(hash(seg, st)::HUGEINT) - hash(min(seg), arg_min_null(st, seg))::HUGEINT
       END AS dates_contiguous
FROM (SELECT {c['SubscriptionId']} AS sub, {c['ChargeNumber']} AS num, {c['Segment']} AS seg,
             {c['IsLastSegment']} AS last, {c['EffectiveStartDate']} AS st,
             {c['EffectiveEndDate']} AS fin
      FROM {_rel(spec, side)})
GROUP BY sub, num"""


def _accounts_sql(side: str) -> str:
    """Z13/L7: an active account has a Bill-To and a Sold-To contact, both its own."""
    if side == ZUORA:
        key, status, bill, sold = '"Id"', '"Status"', '"BillToId"', '"SoldToId"'
        contacts, cid, cacct, rel = '"Contact"', '"Id"', '"AccountId"', '"Account"'
        active = f"a.{status} = 'Active'"
    else:
        acc, con = get("Account"), get("Contact")
        key, status = _col(acc, side, "Id"), _col(acc, side, "Status")
        bill, sold = _col(acc, side, "BillToId"), _col(acc, side, "SoldToId")
        rel, contacts = _q(acc.table), _q(con.table)
        cid, cacct = _q(con.local_pk), _col(con, side, "AccountId")
        active = f"lower(trim(a.{status})) = 'active'"
    return (f"SELECT a.{key} AS key, a.{bill} AS bill_to_id, a.{sold} AS sold_to_id, "
            f"CASE WHEN a.{bill} IS NULL THEN NULL ELSE b.{cacct} IS NOT DISTINCT FROM a.{key} "
            f"END AS bill_to_of_account, "
            f"CASE WHEN a.{sold} IS NULL THEN NULL ELSE s.{cacct} IS NOT DISTINCT FROM a.{key} "
            f"END AS sold_to_of_account "
            f"FROM {rel} a LEFT JOIN {contacts} b ON b.{cid} = a.{bill} "
            f"LEFT JOIN {contacts} s ON s.{cid} = a.{sold} WHERE {active}")


def _ref_sql(child_rel: str, child_key: str, ref: str, parent_rel: str, parent_key: str) -> str:
    """One row per child: its reference and whether the parent exists (NULL when the
    reference itself is NULL, which is the contract's not_null business)."""
    return (f"SELECT CAST(c.{child_key} AS VARCHAR) AS key, CAST(c.{ref} AS VARCHAR) AS ref, "
            f"CASE WHEN c.{ref} IS NULL THEN NULL "
            f"ELSE c.{ref} IN (SELECT {parent_key} FROM {parent_rel} WHERE {parent_key} IS NOT NULL) "
            f"END AS parent_found "
            f"FROM {child_rel} c")


def _views() -> dict[str, View]:
    out: list[View] = []
    for side in (ZUORA, LOCAL):
        sub, rpc, acc = get("Subscription"), get("RatePlanCharge"), get("Account")
        label = (lambda s: s.name) if side == ZUORA else (lambda s: s.table)  # noqa: E731
        out += [
            View(f"{side}.subscription_latest", side, label(sub), _latest_sql(side),
                 "one row per subscription name"),
            View(f"{side}.charge_segments", side, label(rpc), _segments_sql(side),
                 "one row per (subscription version, charge number)"),
            View(f"{side}.active_accounts", side, label(acc), _accounts_sql(side),
                 "one row per active account"),
        ]
        for spec in OBJECTS:  # referential integrity along the catalogue's parent edges
            if spec.parent is None:
                continue
            ref_field, parent_name = spec.parent
            parent = get(parent_name)
            out.append(View(
                f"{side}.references.{spec.name}", side, label(spec),
                _ref_sql(_rel(spec, side), _col(spec, side, "Id"), _col(spec, side, ref_field),
                         _rel(parent, side), _col(parent, side, "Id")),
                f"one row per {spec.name}: does its {ref_field} exist in {parent_name}?"))
    for ref, parent in (("customer_id", "customers"), ("billing_account_id", "billing_accounts")):
        out.append(View(f"local.references.billing_account_memberships.{ref}", LOCAL,
                        "billing_account_memberships",
                        _ref_sql("billing_account_memberships", "id", ref, parent, "id"),
                        f"one row per membership: does its {ref} exist in {parent}?"))
    out.append(View(
        "local.orders_non_trial", LOCAL, "orders",
        "SELECT CAST(id AS VARCHAR) AS key, subscription_name, zuora_account_id FROM orders "
        "WHERE NOT coalesce(trial, false)", "one row per non-trial order (L4, L10)"))
    return {v.name: v for v in out}


VIEWS: dict[str, View] = _views()


# ---------------------------------------------------------------------------------------------
# Suites
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """One expectation of a suite file, with what recon needs to report it."""

    suite: str
    index: int
    view: str
    rule: str
    object: str | None
    column: str | None
    severity: str  # error | warning
    value_column: str | None
    config: dict[str, Any] = field(hash=False, compare=False)  # the GX expectation as written


@dataclass
class Suites:
    rules: list[Rule]
    problems: list[CheckResult]  # suite files or entries that cannot be used (errors)


def load_suites(directory: Path | str = SUITES_DIR, run_id: str = "") -> Suites:
    """Read every ``*.json`` suite. A malformed file or entry becomes an ``error`` result
    naming the file and entry: a broken rule must never look like a passing one."""
    rules: list[Rule] = []
    problems: list[CheckResult] = []
    files = sorted(Path(directory).glob("*.json"))
    if not files:
        problems.append(CheckResult(run_id, "gx", None, None, None, "suites", "error", "error",
                                    None, None, None, message=f"no suite files in {directory}"))
    for path in files:
        try:
            doc = json.loads(path.read_text())
            name = str(doc["name"])
            entries = doc["expectations"]
            if not isinstance(entries, list):
                raise TypeError("'expectations' must be a list")
        except (OSError, ValueError, KeyError, TypeError) as e:
            problems.append(CheckResult(run_id, "gx", path.stem, None, None, "suite_file",
                                        "error", "error", None, None, None,
                                        message=f"{path}: not a usable suite: {e}"))
            continue
        for i, exp in enumerate(entries):
            meta = exp.get("meta", {}) if isinstance(exp, dict) else {}
            kwargs = exp.get("kwargs", {}) if isinstance(exp, dict) else {}
            view, rule = meta.get("view"), meta.get("rule") or f"{name}[{i}]"
            written = exp.get("severity", "critical") if isinstance(exp, dict) else "critical"
            severity = SEVERITY.get(str(written))
            column = meta.get("column") or kwargs.get("column") or (
                ",".join(kwargs["column_list"]) if "column_list" in kwargs else None)
            v = VIEWS.get(str(view))
            problem = None
            if not isinstance(exp, dict) or "type" not in exp:
                problem = "an expectation needs a 'type'"
            elif v is None:
                problem = f"meta.view {view!r} is not a known view ({', '.join(sorted(VIEWS))})"
            elif severity is None:
                problem = f"severity {written!r} is not critical, warning or info"
            if problem:
                problems.append(CheckResult(
                    run_id, "gx", name, v.object if v else None, column, rule, "error", "error",
                    None, None, None, message=f"{path.name} expectation {i}: {problem}"))
                continue
            assert v is not None and severity is not None
            rules.append(Rule(name, i, v.name, rule, meta.get("object") or v.object, column,
                              severity, meta.get("value_column"), exp))
    return Suites(rules, problems)


# ---------------------------------------------------------------------------------------------
# Running them
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_gx() -> Iterator[None]:
    """GX logs, warns and draws progress bars; cron logs and `recon validate` want none."""
    logger = logging.getLogger("great_expectations")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # problems become error results, not log lines
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _raised(exception_info: Any) -> str | None:
    """GX reports an expectation that raised as ``success=False`` with ``raised_exception``
    somewhere in ``exception_info`` (flat, or keyed by metric): find it."""
    if not isinstance(exception_info, dict):
        return None
    if exception_info.get("raised_exception"):
        return str(exception_info.get("exception_message") or "raised an exception")
    for v in exception_info.values():
        if isinstance(v, dict) and v.get("raised_exception"):
            return str(v.get("exception_message") or "raised an exception")
    return None


def _error(rule: Rule, run_id: str, message: str) -> CheckResult:
    return CheckResult(run_id, "gx", rule.suite, rule.object, rule.column, rule.rule,
                       rule.severity, "error", None, None, None, message=message)


def _result(rule: Rule, run_id: str, res: dict[str, Any],
            samples: dict[int, tuple[str | None, str | None]]) -> CheckResult:
    raised = _raised(res.get("exception_info"))
    if raised is not None:
        return _error(rule, run_id, f"{rule.suite}: {rule.config['type']} on view {rule.view} "
                      f"raised: {raised.splitlines()[0] if raised else raised}")
    r = res.get("result") or {}
    total = r.get("element_count")
    n = int(r.get("unexpected_count") or 0)
    if not res.get("success") and n == 0:  # aggregate expectations: no per-row count
        n = 1
    rids = [int(x[ROWID]) for x in r.get("partial_unexpected_index_list") or []
            if isinstance(x, dict) and x.get(ROWID) is not None]
    keys = [samples[i][0] for i in rids if i in samples]
    if rule.value_column:
        values = [samples[i][1] for i in rids if i in samples]
    else:
        values = [v if v is None or isinstance(v, str) else json.dumps(v, default=str)
                  for v in r.get("partial_unexpected_list") or []]
    outcome = "passed" if res.get("success") else "failed"
    where = f"{rule.object}.{rule.column}" if rule.column else str(rule.object)
    msg = None if outcome == "passed" else (
        f"{where}: {n:,} of {total:,} rows of view {rule.view} break rule {rule.rule} "
        f"({rule.config['type']})" if total is not None else
        f"{where}: rule {rule.rule} failed on view {rule.view} ({rule.config['type']})")
    return CheckResult(run_id, "gx", rule.suite, rule.object, rule.column, rule.rule,
                       rule.severity, outcome, n if outcome == "failed" else 0,
                       pct(n, total) if outcome == "failed" else 0.0, total, keys, values, msg)


ROWID = "_rid"
VIEW_TABLE = "_recon_view"


def _referenced(rules: list[Rule], columns: list[str]) -> list[str]:
    """View columns the expectations name (``column``, ``column_list``, ``column_A``…). Only
    these go to pandas: the ``key`` strings stay in DuckDB and are looked up for the sampled
    failures only (GX on 2.6M string keys took 4 s per expectation; on a row id, 0.2 s)."""
    if any("row_condition" in r.config.get("kwargs", {}) for r in rules):
        return [c for c in columns if c != "key"]
    named: set[str] = set()
    for r in rules:
        for v in r.config.get("kwargs", {}).values():
            named.update(x for x in (v if isinstance(v, list) else [v]) if isinstance(x, str))
    return [c for c in columns if c in named]


def run_suites(con: duckdb.DuckDBPyConnection, run_id: str, suites: Suites | None = None
               ) -> list[CheckResult]:
    """Run every rule against its view (relations already registered on ``con``): one GX
    validation per (suite, view). Each view is materialised once in DuckDB; GX gets a pandas
    frame of a row id and the columns the expectations name."""
    suites = suites if suites is not None else load_suites(run_id=run_id)
    results = list(suites.problems)
    if not suites.rules:
        return results
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    with _quiet_gx():
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx = gx.get_context(mode="ephemeral")  # never a File context found lying around
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        batch = (ctx.data_sources.add_pandas("recon").add_dataframe_asset("views")
                 .add_batch_definition_whole_dataframe("whole"))
        groups: dict[str, dict[str, list[Rule]]] = {}
        for rule in suites.rules:
            groups.setdefault(rule.view, {}).setdefault(rule.suite, []).append(rule)
        for view_name, by_suite in groups.items():
            rules_of_view = [r for rs in by_suite.values() for r in rs]
            try:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {VIEW_TABLE} AS "
                            f"{VIEWS[view_name].sql}")
                columns = [c[0] for c in con.sql(f"SELECT * FROM {VIEW_TABLE}").description]
                wanted = _referenced(rules_of_view, columns)
                frame = con.sql(f"SELECT rowid AS {ROWID}"
                                + "".join(f", {_q(c)}" for c in wanted)
                                + f" FROM {VIEW_TABLE} ORDER BY rowid").df()
            except duckdb.Error as e:
                results += [_error(r, run_id, f"view {view_name} failed: {e}")
                            for r in rules_of_view]
                continue
            for suite_name, rules in by_suite.items():
                results += _run_one(gx, ctx, batch, con, frame, suite_name, view_name, rules,
                                    run_id)
        con.execute(f"DROP TABLE IF EXISTS {VIEW_TABLE}")
    return results


def _samples(con: duckdb.DuckDBPyConnection, rules: list[Rule], rids: set[int]
             ) -> dict[int, tuple[str | None, str | None]]:
    """(key, value) of the sampled failing rows, read back from the materialised view."""
    if not rids:
        return {}
    cols = {c[0] for c in con.sql(f"SELECT * FROM {VIEW_TABLE} LIMIT 0").description}
    value = next((r.value_column for r in rules if r.value_column in cols), None)
    value_sql = f"CAST({_q(value)} AS VARCHAR)" if value else "NULL"
    rows = con.sql(f"SELECT rowid, CAST(key AS VARCHAR), {value_sql} FROM {VIEW_TABLE} "
                   f"WHERE rowid IN ({', '.join(str(i) for i in sorted(rids))})").fetchall()
    return {int(i): (k, v) for i, k, v in rows}


def _run_one(gx: Any, ctx: Any, batch: Any, con: duckdb.DuckDBPyConnection, frame: Any,
             suite_name: str, view_name: str, rules: list[Rule], run_id: str
             ) -> list[CheckResult]:
    out: list[CheckResult] = []
    usable: list[Rule] = []
    for rule in rules:  # one at a time, so a bad entry is named and the rest still run
        try:
            probe = gx.ExpectationSuite(name="probe", expectations=[dict(rule.config)])
            if len(probe.expectations) != 1:  # GX logs some bad entries and drops them
                raise ValueError("GX dropped it (unknown expectation type or bad kwargs)")
            usable.append(rule)
        except Exception as e:  # GX raises many types for a bad expectation config
            out.append(_error(rule, run_id, f"{rule.suite} expectation {rule.index} "
                              f"({rule.config.get('type')}) cannot be loaded: {e}"))
    if not usable:
        return out
    name = f"{suite_name}:{view_name}"
    suite = ctx.suites.add(gx.ExpectationSuite(
        name=name, expectations=[dict(r.config) for r in usable]))
    by_id = {str(e.id): r for e, r in zip(suite.expectations, usable, strict=True)}
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch, suite=suite))
    try:
        res = vd.run(batch_parameters={"dataframe": frame}, result_format={
            "result_format": "SUMMARY", "partial_unexpected_count": 20,
            "unexpected_index_column_names": [ROWID]})
    except Exception as e:
        return out + [_error(r, run_id, f"{name}: validation raised {type(e).__name__}: {e}")
                      for r in usable]
    found: list[tuple[Rule, dict[str, Any]]] = []
    for er in res.results:
        d = er.to_json_dict()
        rule = by_id.get(str(d.get("expectation_config", {}).get("id")))
        if rule is not None:
            found.append((rule, d))
    rids = {int(x[ROWID]) for _, d in found
            for x in (d.get("result") or {}).get("partial_unexpected_index_list") or []
            if isinstance(x, dict) and x.get(ROWID) is not None}
    samples = _samples(con, usable, rids)
    out += [_result(rule, run_id, d, samples) for rule, d in found]
    seen = {rule.index for rule, _ in found}
    out += [_error(r, run_id, f"{name}: GX returned no result for this expectation")
            for r in usable if r.index not in seen]
    return out

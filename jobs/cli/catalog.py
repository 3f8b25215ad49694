"""``recon catalog plans [--scope S]… [--as-of DATE] [--json] [--fail-on-unclassified]``: the
cached product rate plans in the seed-004 scopes (``core.catalog.scopes``), read from the local
catalog cache.

The plans CustomersDot cannot classify (metadata missing or contradicting the product: the
D22 reasons) are always listed after the plans, whatever the scopes — their scopes cannot be
told. Exit codes (README): 0 listed; 1 with ``--fail-on-unclassified`` when such a plan is
current on the date; 2 bad input (an unknown scope is refused naming the known ones), no
database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from core.catalog.scopes import NAMES, SCOPE
from jobs.cli.argtypes import date
from jobs.cli.common import EXIT_DRIFT, EXIT_OK, add_db, add_json
from jobs.cli.common import settings_of as _settings

PLAN_COLUMNS = ("plan_id", "plan_name", "product_name", "category_kind", "tiers",
                "deployment_types", "web_direct__c", "effective_start_date",
                "effective_end_date")


def scope_name(text: str) -> str:
    """``type=scope_name``: one of the seed-004 scopes; anything else names them all."""
    if text not in SCOPE:
        raise argparse.ArgumentTypeError(
            f"unknown scope {text!r}; the known scopes are: {', '.join(NAMES)}")
    return text


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _table(rows: list[dict[str, Any]], cols: tuple[str, ...]) -> None:
    cells = [[_cell(r[c]) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


def _jsonable(v: Any) -> Any:
    return v.isoformat() if isinstance(v, dt.date) else str(v)


def cmd_catalog_plans(args: argparse.Namespace) -> int:
    from core.localdb.connect import connect, require_exists
    from core.localdb.scopes import plans

    settings = _settings(args)
    url = args.db or settings.local_database_url
    require_exists(url)
    with connect(url) as db:
        found = plans(db, *args.scope, as_of=args.as_of, tenant_tz=settings.tenant_tz)
    rows = found.plans.select(PLAN_COLUMNS).to_dicts()
    odd = found.unclassified.to_dicts()
    code = EXIT_DRIFT if odd and args.fail_on_unclassified else EXIT_OK
    if args.json:
        for r in odd:
            r["problems"] = r["problems"].split("; ")
        print(json.dumps({"as_of": found.as_of, "tenant_tz": settings.tenant_tz,
                          "scopes": list(found.scopes), "plans": rows, "unclassified": odd},
                         indent=2, default=_jsonable))
        return code
    what = " & ".join(found.scopes) or "all plans"
    print(f"catalog plans in {what}, as of {found.as_of} ({settings.tenant_tz}): {len(rows)}")
    if rows:
        _table(rows, PLAN_COLUMNS)
    if odd:
        print(f"\n{len(odd)} current plan(s) cannot be classified (D22; in no scope you can "
              "trust until classified in Zuora):")
        for r in odd:
            print(f"  {r['plan_id']}  '{r['plan_name']}' of '{r['product_name'] or '?'}': "
                  f"{r['problems']}")
    return code


def add_parser(sub: Any) -> None:
    cat = sub.add_parser("catalog", help="the product catalog cache, classified by scopes")
    cat_sub = cat.add_subparsers(dest="catalog_command", required=True)
    p = cat_sub.add_parser(
        "plans", help="product rate plans in the seed-004 scopes (all given must hold)",
        description="List the cached product rate plans in every --scope given (seed 004: "
        f"{', '.join(NAMES)}), as of --as-of (default: today in zuora.tenant_tz). Plans "
        "whose classification is missing or contradicts their product (the D22 reasons) "
        "are listed after them.")
    add_db(p)
    p.add_argument("--scope", action="append", default=[], type=scope_name, metavar="S",
                   help=f"a scope, repeatable: {', '.join(NAMES)}")
    p.add_argument("--as-of", type=date, metavar="DATE",
                   help="the date (YYYY-MM-DD) for `active` and for which plans are current "
                   "(default: today in the tenant's zone)")
    add_json(p, "one JSON object: as_of, tenant_tz, scopes, plans, unclassified")
    p.add_argument("--fail-on-unclassified", action="store_true",
                   help="exit 1 when a current plan cannot be classified")
    p.set_defaults(func=cmd_catalog_plans)

"""Alerts: a Slack-compatible JSON POST to a configured webhook.

Sent on a failed run, on drift at or above ``alerts.new_drift_threshold``, and when a job is
overdue. The payload carries job, run, status, counts and the report path — never a secret,
a connection string or customer data (the webhook URL itself is a secret and never logged).
Delivery (:mod:`core.webhook`) failures are logged, never raised: an unreachable webhook must
not fail the night.

The drift alert lists the findings nobody has looked at yet (:mod:`reports.alerting`: new and
not acknowledged, or whose acknowledgement lapsed), compactly and by identifiers only —
subscription name, account number, object, rule, field, owner; never a value, a key or an
e-mail address. An owner with a webhook of its own (``[owners] webhook.<owner>``) also gets
an alert listing only its findings.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core import webhook
from core.config import Settings
from core.owners import Owners

log = logging.getLogger("recon.alerts")
TOP_LINES = 10  # finding lines in an alert; the rest are counted ("+N more")


def payload(kind: str, job: str, run_id: str | None, status: str, counts: dict[str, Any],
            report_path: str | None, detail: str = "") -> dict[str, Any]:
    icon = {"failed": ":rotating_light:", "drift": ":warning:", "overdue": ":hourglass:",
            "missed": ":hourglass:"}.get(
        kind, ":information_source:")
    text = f"{icon} recon {job}: {kind}" + (f" — run {run_id}" if run_id else "") + (
        f" ({detail})" if detail else "")
    return {"text": text,
            "recon": {"alert": kind, "job": job, "run_id": run_id, "status": status,
                      "counts": counts, "report_path": report_path, "detail": detail}}


def send(settings: Settings, body: dict[str, Any], timeout: float = 10.0) -> bool:
    """Deliver through the shared primitive (:func:`core.webhook.send`, also used by the
    callout service)."""
    return webhook.send(settings, body, timeout)


def _line(r: dict[str, Any]) -> str:
    """One alert line: ``A-S00001008 · account A00000406 · Subscription TermEndDate,
    TermStartDate (D05) · owner billing`` — identifiers only."""
    where = [x for x in (r["subscription_name"],
                         f"account {r['account_number']}" if r["account_number"] else None) if x]
    what = r["object"] + (" " + ", ".join(r["fields"]) if r["fields"] else "")
    if r["rule"]:
        what += f" ({r['rule']})"
    parts = [*where, what]
    if r["findings"] > 1:
        parts.append(f"{r['findings']} findings")
    if r["owner"]:
        parts.append(f"owner {r['owner']}")
    if r["why"] != "new":
        parts.append(r["why"])
    return "• " + " · ".join(parts)


def drift_payload(job: str, run_id: str, status: str, counts: dict[str, Any],
                  report_path: str | None, lines: list[dict[str, Any]], more: int,
                  total: int, owner: str | None = None) -> dict[str, Any]:
    """The drift alert: the usual payload plus the compact finding lines (``findings``)."""
    who = f" for {owner}" if owner else ""
    body = payload("drift", job, run_id, status, counts, report_path,
                   f"{total} new or unacknowledged findings{who}")
    body["text"] += "\n" + "\n".join(_line(r) for r in lines) + (
        f"\n+{more} more in the report" if more else "")
    body["recon"]["findings"] = lines
    body["recon"]["more"] = more
    if owner:
        body["recon"]["owner"] = owner
    return body


def drift(settings: Settings, job: str, run_id: str, status: str, counts: dict[str, Any],
          report_path: str | None, snapshot_run: str | None) -> int:
    """The drift alert of a finished run: to ``alerts.webhook_url`` when the run has at least
    ``alerts.new_drift_threshold`` findings that alert, and to each owner's own webhook with
    its findings. Returns how many findings alerted (acknowledged ones never do)."""
    from reports.alerting import alert_findings, compact_lines

    if status != "drift" or snapshot_run is None:
        return 0
    try:
        found = alert_findings(Path(settings.data_dir), snapshot_run, settings)
    except Exception as e:  # noqa: BLE001 — never let the alert's detail drop the alert
        log.warning("alert detail unavailable (%s); counting new findings only",
                    type(e).__name__)
        new = int(counts.get("new", 0))
        if new >= settings.alerts_new_drift_threshold:
            send(settings, payload("drift", job, run_id, status, counts, report_path,
                                   f"{new} new findings"))
        return new
    try:  # the run is recorded already: a fault here costs the alert's detail, not the run
        if found.height >= settings.alerts_new_drift_threshold and found.height:
            lines, more = compact_lines(found, TOP_LINES)
            send(settings, drift_payload(job, run_id, status, counts, report_path, lines,
                                         more, found.height))
        owners = Owners.of(settings)
        for owner in owners.with_webhooks():
            mine = found.filter(found["owner"] == owner)
            if mine.height:
                lines, more = compact_lines(mine, TOP_LINES)
                webhook.send(settings, drift_payload(job, run_id, status, counts,
                                                     report_path, lines, more, mine.height,
                                                     owner=owner),
                             to=owners.webhook(owner))
    except Exception as e:  # noqa: BLE001
        log.warning("drift alert of run %s not sent in full (%s)", run_id, type(e).__name__)
    return found.height

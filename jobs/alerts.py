"""Alerts: a Slack-compatible JSON POST to a configured webhook.

Sent on a failed run, on new drift at or above ``alerts.new_drift_threshold``, and when a job is
overdue. The payload carries job, run, status, counts and the report path — never a secret,
a connection string or customer data (the webhook URL itself is a secret and never logged).
Delivery failures are logged, never raised: an unreachable webhook must not fail the night.
"""

from __future__ import annotations

import logging
from typing import Any

import requests

from core.config import Settings

log = logging.getLogger("recon.alerts")


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
    url = settings.alerts_webhook_url.get()
    if not url:
        return False
    try:
        r = requests.post(url, json=body, timeout=timeout)
        r.raise_for_status()
        return True
    except requests.RequestException as e:
        # the URL may carry a token: name only the error class and the status
        status = getattr(getattr(e, "response", None), "status_code", None)
        log.warning("alert not delivered (%s%s)", type(e).__name__,
                    f", HTTP {status}" if status else "")
        return False

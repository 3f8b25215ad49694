"""Alerts: a Slack-compatible JSON POST to a configured webhook.

Sent on a failed run, on new drift at or above ``alerts.new_drift_threshold``, and when a job is
overdue. The payload carries job, run, status, counts and the report path — never a secret,
a connection string or customer data (the webhook URL itself is a secret and never logged).
Delivery (:mod:`core.webhook`) failures are logged, never raised: an unreachable webhook must
not fail the night.
"""

from __future__ import annotations

from typing import Any

from core import webhook
from core.config import Settings


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

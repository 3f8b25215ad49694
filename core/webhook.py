"""The alert webhook's delivery: one Slack-compatible JSON POST to ``alerts.webhook_url``.

In the shared base so that both the jobs (``jobs.alerts``: failed runs, drift, overdue jobs) and
the callout service (``callouts.alerts``: dead letters, a stale queue, a burst of rejected
callouts) alert through one primitive without importing each other. The URL is a secret (it
usually carries a token): it is never logged, and a failed delivery names only the error class
and the HTTP status. Failures are logged, never raised: an unreachable webhook must not fail a
night's run or drop a callout.
"""

from __future__ import annotations

import logging
from typing import Any

import requests

from core.config import Secret, Settings

log = logging.getLogger("recon.alerts")


def send(settings: Settings, body: dict[str, Any], timeout: float = 10.0,
         to: Secret | None = None) -> bool:
    """POST ``body`` to the webhook (``to``: another one, e.g. an owner's own from
    ``[owners]``); True when it answered 2xx, False when none is configured or the delivery
    failed (logged)."""
    url = (to if to is not None else settings.alerts_webhook_url).get()
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

"""The callout service's alerts, through the shared webhook (:mod:`core.webhook`): a key
dead-lettered, the oldest pending event older than ``callouts.alert_oldest_pending_s``, and a
burst of 400/401 answers (``callouts.alert_rejects`` within ``callouts.alert_window_s``) —
a broken callout template or a rotated password loses events, since Zuora does not retry a
4xx. Each condition alerts once per window, not once per event, so a storm of bad callouts
is one message. The payload names keys and notification ids, never a payload or a secret."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from core import webhook
from core.config import Settings

log = logging.getLogger("recon.callouts.alerts")


def payload(kind: str, detail: str, counts: dict[str, Any]) -> dict[str, Any]:
    icon = {"dead_letter": ":skull:", "stale_queue": ":hourglass:",
            "rejects": ":no_entry:"}.get(kind, ":information_source:")
    return {"text": f"{icon} recon callouts: {kind} ({detail})",
            "recon": {"alert": kind, "job": "callouts", "run_id": None, "status": kind,
                      "counts": counts, "report_path": None, "detail": detail}}


class Alerts:
    """Decides when to alert; delivery runs on a thread so a slow webhook never delays an
    answer to Zuora."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic,
                 send: Callable[[Settings, dict[str, Any]], bool] = webhook.send) -> None:
        self.settings = settings
        self.clock = clock
        self._send = send
        self._rejects: collections.deque[float] = collections.deque()
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self.sent: list[dict[str, Any]] = []  # what was sent, for status and tests

    def _due(self, kind: str) -> bool:
        now = self.clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.settings.callouts_alert_window_s:
            return False
        self._last[kind] = now
        return True

    def _emit(self, body: dict[str, Any]) -> None:
        self.sent.append(body)
        if self.settings.alerts_webhook_url:
            threading.Thread(target=self._send, args=(self.settings, body),
                             name="recon-callout-alert", daemon=True).start()

    def rejected(self, kind: str, status: int) -> None:
        """A 400 or 401 answer; alerts on a burst."""
        with self._lock:
            now = self.clock()
            self._rejects.append(now)
            while self._rejects and self._rejects[0] < now - self.settings.callouts_alert_window_s:
                self._rejects.popleft()
            n = len(self._rejects)
            if n >= self.settings.callouts_alert_rejects and self._due("rejects"):
                self._emit(payload("rejects", f"{n} callouts refused with 400/401 in "
                                   f"{self.settings.callouts_alert_window_s:g} s, last on {kind}: "
                                   "check the callout templates and credentials",
                                   {"rejected": n, "last_status": status}))

    def dead_letter(self, obj: str, keys: tuple[str, ...], reason: str) -> None:
        with self._lock:
            self._emit(payload("dead_letter", f"{obj} {', '.join(keys[:10])}"
                               f"{' …' if len(keys) > 10 else ''}: {reason[:300]}",
                               {"keys": len(keys)}))

    def queue_age(self, oldest_pending_s: float | None, depth: int) -> None:
        """Called periodically with the inbox's health."""
        limit = self.settings.callouts_alert_oldest_pending_s
        if oldest_pending_s is None or oldest_pending_s < limit:
            return
        with self._lock:
            if self._due("stale_queue"):
                self._emit(payload("stale_queue", f"oldest pending event is "
                                   f"{oldest_pending_s:.0f} s old (limit {limit:g} s), "
                                   f"{depth} keys queued: are the workers running?",
                                   {"queue_depth": depth,
                                    "oldest_pending_s": round(oldest_pending_s)}))

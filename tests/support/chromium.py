"""Headless Chromium over the DevTools protocol: load a report, record what it did, look at it.

Used by the report tests and ``bench/report_bench.py`` (not by the report itself). Chromium is
Debian's ``/usr/bin/chromium`` (``$RECON_CHROMIUM`` overrides), started with
``--headless --no-sandbox --disable-gpu --disable-background-networking``, a private profile,
``--remote-debugging-port=0`` (the port is read from its stderr) and every host name resolving
to nothing, so a report that tried to load anything could not, and the attempt is recorded.

What is recorded while a page is open: console messages of level error, uncaught exceptions,
log entries of level error (CSP violations, failed loads), every network request the page
made, and JavaScript dialogs (``alert()``: what an injected script would do).
The websocket is the ``websocket-client`` package (a test dependency), imported lazily.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_BINARY = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
EXTRA_FLAGS = ("--remote-debugging-port=0", "--no-first-run", "--no-default-browser-check",
               "--disable-extensions", "--disable-sync", "--disable-component-update",
               "--host-resolver-rules=MAP * ~NOTFOUND", "--mute-audio")


class ChromiumError(RuntimeError):
    """Chromium could not be started or did not answer."""


def find_binary() -> str | None:
    """The Chromium to use, or None when there is none on this machine."""
    explicit = os.environ.get("RECON_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    if Path(DEFAULT_BINARY).is_file():
        return DEFAULT_BINARY
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Recorded:
    """What the page did since the last :meth:`Chromium.clear`."""

    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return self.console_errors + self.exceptions + self.log_errors


class Chromium:
    """``with Chromium() as c: c.navigate(url); c.evaluate("1+1")``."""

    def __init__(self, binary: str | None = None, *, width: int = 1366, height: int = 900,
                 timeout: float = 30.0) -> None:
        self.binary = binary or find_binary()
        if not self.binary:
            raise ChromiumError(f"no Chromium at {DEFAULT_BINARY} (apt-get install chromium) "
                                "and none on PATH; set RECON_CHROMIUM to use another")
        self.width, self.height, self.timeout = width, height, timeout
        self.recorded = Recorded()
        self._profile = tempfile.mkdtemp(prefix="recon-chromium-")
        self._proc: subprocess.Popen[str] | None = None
        self._ws: Any = None
        self._id = 0
        self._events: list[dict[str, Any]] = []
        self._stderr: queue.Queue[str] = queue.Queue()
        self.document_url: str | None = None

    # -- life cycle ----------------------------------------------------------------------------
    def __enter__(self) -> Chromium:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        import websocket  # websocket-client (test dependency)

        cmd = [self.binary, *FLAGS, *EXTRA_FLAGS, f"--user-data-dir={self._profile}",
               f"--window-size={self.width},{self.height}", "about:blank"]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._drain, daemon=True).start()
        port = self._port()
        page = self._page_target(port)
        self._ws = websocket.create_connection(page, timeout=self.timeout, suppress_origin=True,
                                               enable_multithread=False)
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)

    def _drain(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for line in self._proc.stderr:
            self._stderr.put(line)

    def _port(self) -> int:
        deadline = time.monotonic() + self.timeout
        seen: list[str] = []
        active = Path(self._profile) / "DevToolsActivePort"
        while time.monotonic() < deadline:
            try:
                line = self._stderr.get(timeout=0.1)
            except queue.Empty:
                line = ""
            if line:
                seen.append(line.strip())
                if "DevTools listening on ws://" in line:
                    return int(line.split("ws://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
            if active.is_file():
                text = active.read_text().split()
                if text:
                    return int(text[0])
            if self._proc is not None and self._proc.poll() is not None:
                break
        self.close()
        raise ChromiumError("Chromium did not report its DevTools port: "
                            + " | ".join(seen[-5:]))

    def _page_target(self, port: int) -> str:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list",
                                            timeout=5) as r:
                    targets = json.loads(r.read())
                for t in targets:
                    if t.get("type") == "page" and t.get("webSocketDebuggerUrl"):
                        return str(t["webSocketDebuggerUrl"])
            time.sleep(0.1)
        raise ChromiumError("Chromium has no page target")

    def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._ws.close()
            self._ws = None
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            self._proc = None
        shutil.rmtree(self._profile, ignore_errors=True)

    # -- protocol ------------------------------------------------------------------------------
    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events meanwhile are recorded)."""
        self._id += 1
        mid = self._id
        self._ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            msg = self._recv(deadline)
            if msg is None:
                continue
            if msg.get("id") == mid:
                if "error" in msg:
                    raise ChromiumError(f"{method}: {msg['error']}")
                return msg.get("result", {})
        raise ChromiumError(f"{method}: no answer in {self.timeout:.0f} s")

    def _recv(self, deadline: float) -> dict[str, Any] | None:
        import websocket

        self._ws.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            msg = json.loads(self._ws.recv())
        except websocket.WebSocketTimeoutException:
            return None
        if "method" in msg:
            self._event(msg)
        return msg

    def _event(self, msg: dict[str, Any]) -> None:
        m, p = msg["method"], msg.get("params", {})
        self._events.append(msg)
        r = self.recorded
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            r.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                             for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            r.exceptions.append(str(d.get("exception", {}).get("description") or d.get("text")))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            r.log_errors.append(str(p["entry"].get("text")))
        elif m == "Network.requestWillBeSent":
            url = p.get("request", {}).get("url", "")
            if url.split("#", 1)[0] != (self.document_url or "").split("#", 1)[0]:
                r.requests.append(url)
        elif m == "Page.javascriptDialogOpening":
            r.dialogs.append(str(p.get("message")))
            self._ws.send(json.dumps({"id": 0, "method": "Page.handleJavaScriptDialog",
                                      "params": {"accept": True}}))

    def wait_event(self, method: str, timeout: float | None = None,
                   since: int | None = None) -> dict[str, Any]:
        """The first ``method`` event at or after event number ``since`` (default: now)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        start = len(self._events) if since is None else since
        while time.monotonic() < deadline:
            for msg in self._events[start:]:
                if msg["method"] == method:
                    return msg
            start = len(self._events)
            self._recv(deadline)
        raise ChromiumError(f"no {method} within {timeout or self.timeout:.0f} s")

    def clear(self) -> None:
        self.recorded = Recorded()

    # -- what tests do -------------------------------------------------------------------------
    def navigate(self, url: str) -> float:
        """Load ``url`` and wait for its load event; returns the seconds it took."""
        if self.document_url and url.split("#")[0] == self.document_url.split("#")[0]:
            # same document, other fragment: that would not load the page again
            self._events.clear()
            self.send("Page.navigate", url="about:blank")
            self.wait_event("Page.loadEventFired", since=0)
        self.document_url = url
        self._events.clear()
        t = time.perf_counter()
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise ChromiumError(f"navigating to {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired", since=0)
        return time.perf_counter() - t

    def open_file(self, path: Path, fragment: str = "") -> float:
        return self.navigate(Path(path).resolve().as_uri() + fragment)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (promises awaited)."""
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                        awaitPromise=True)
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise ChromiumError(f"evaluating {expression[:80]!r}: "
                                f"{d.get('exception', {}).get('description') or d.get('text')}")
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.05)
        raise ChromiumError(f"timed out waiting for {expression!r}")

    def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            m = self.send("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m.get("contentSize")
            params.update(captureBeyondViewport=True, clip={
                "x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 16000),
                "scale": 1})
        data = self.send("Page.captureScreenshot", **params)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def paint_timings(self) -> dict[str, float | None]:
        """Milliseconds from navigation start: first paint, first contentful paint,
        DOMContentLoaded, load, and when the report's script had rendered its tables."""
        return self.evaluate("""(() => {
          const p = n => { const e = performance.getEntriesByName(n)[0]; return e ? e.startTime : null; };
          const nav = performance.getEntriesByType('navigation')[0] || {};
          return {first_paint: p('first-paint'), first_contentful_paint: p('first-contentful-paint'),
                  dom_content_loaded: nav.domContentLoadedEventEnd || null,
                  load: nav.loadEventEnd || null, script_ready: window.__reportReadyMs || null};
        })()""")

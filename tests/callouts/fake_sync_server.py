"""``python -m tests.callouts.fake_sync_server PORT METRICS_PORT WORKERS``: the real receiver
(uvicorn, ``callouts.service.serve``) with a recording sync instead of ``sync.sync_keys``, so
the receiver's tests need no Zuora; ``… work METRICS_PORT WORKERS``: the workers apart
(``callouts.service.work``). Settings come from ``RECON_*`` like any recon process.

The sync appends ``{"at": "start"|"end", object, keys, trigger}`` lines to ``$FAKE_SYNC_LOG``
and sleeps ``$FAKE_SYNC_DELAY`` seconds in between (a sync in flight, for the SIGTERM test)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import threading
import time

from callouts.service import serve, work
from core.config import Settings, load_settings
from sync.model import SyncRequest, SyncResult, new_sync_id

_lock = threading.Lock()


def _log(line: dict) -> None:
    with _lock, open(os.environ["FAKE_SYNC_LOG"], "a") as f:
        f.write(json.dumps(line) + "\n")
        f.flush()
        os.fsync(f.fileno())


def recording_sync(settings: Settings, request: SyncRequest) -> SyncResult:
    started = dt.datetime.now(dt.UTC)
    line = {"object": request.object, "keys": list(request.keys), "trigger": request.trigger,
            "pid": os.getpid()}
    _log({"at": "start", **line})
    time.sleep(float(os.environ.get("FAKE_SYNC_DELAY", "0")))
    _log({"at": "end", **line})
    return SyncResult(new_sync_id(), request.object, request.keys, request.trigger, False,
                      started, dt.datetime.now(dt.UTC), 0)


if __name__ == "__main__":
    if sys.argv[1] == "work":
        metrics_port, workers = int(sys.argv[2]), int(sys.argv[3])
        sys.exit(work(load_settings(), metrics_port=metrics_port, workers=workers,
                      sync=recording_sync))
    port, metrics_port, workers = (int(a) for a in sys.argv[1:4])
    sys.exit(serve(load_settings(), port=port, metrics_port=metrics_port, workers=workers,
                   sync=recording_sync))

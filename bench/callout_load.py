"""Load client of the callouts bench (``bench/callouts_bench.py``): posts Zuora-shaped callouts
to a running ``recon callouts serve`` as fast as it answers, and writes what it saw as JSON.

N threads, each with its own ``requests.Session`` (keep-alive: one TCP connection per thread,
as Zuora's callout service reuses its connections), share ``--count`` callouts round-robin over
the event kinds' default paths. Every callout has a unique ``Zuora-Notification-Id``, a fresh
``Zuora-Request-Id``, Basic credentials sent preemptively (Zuora answers the receiver's
challenge at once; the bench measures the accepted requests, not the handshake) and, with
``--hmac-secret``, the HMAC-SHA256 signature. Keys are drawn from ``--keys`` made-up ids, so
several callouts name one key, as a busy tenant's do.

The answer time of each request (client side: send → whole response read) gives p50/p99;
accepted/s is the 200s over the wall time from the first request to the last answer. The
notification ids answered 200 are written out so the bench can check every one is in the
inbox. The password comes from ``$CALLOUT_LOAD_PASSWORD`` (not the command line, which
``ps`` shows).

    python bench/callout_load.py --url http://127.0.0.1:8809 --user zuora --threads 8 \\
        --count 3000 --out load.json
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import random
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

# kind → (default path, payload for a key): the receiver's defaults (docs/callouts.md "Event kinds")
KINDS = {
    "contact": ("/callouts/contact",
                lambda k: {"ContactId": f"c{k}", "AccountId": f"a{k}", "ChangeType": "UPDATE"}),
    "account": ("/callouts/account",
                lambda k: {"AccountId": f"a{k}", "AccountNumber": f"A-{k}",
                           "ChangeType": "UPDATE"}),
    "subscription": ("/callouts/subscription",
                     lambda k: {"SubscriptionName": f"A-S{k}", "SubscriptionId": f"s{k}",
                                "ChangeType": "UPDATE"}),
    "order_processed": ("/callouts/order-processed",
                        lambda k: {"OrderNumber": f"O-{k}", "SubscriptionNames": f"A-S{k}",
                                   "AccountIds": f"a{k}"}),
}


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of ``values``; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def _worker(args: argparse.Namespace, index: int, n: int, auth: str, start: threading.Barrier,
            out: list[tuple[str, int, float]]) -> None:
    rng = random.Random(f"{args.seed}-{index}")
    kinds = list(KINDS.values())
    with requests.Session() as http:
        start.wait()
        for i in range(n):
            path, payload = kinds[(index + i) % len(kinds)]
            body = json.dumps(payload(f"{rng.randrange(args.keys):08d}")).encode()
            nid = f"{args.prefix}{index:03d}{i:07d}"
            headers = {"Content-Type": "application/json", "Authorization": auth,
                       "Zuora-Notification-Id": nid, "Zuora-Request-Id": uuid.uuid4().hex}
            if args.hmac_secret:
                headers[args.hmac_header] = hmac.new(args.hmac_secret.encode(), body,
                                                     hashlib.sha256).hexdigest()
            t0 = time.perf_counter()
            try:
                r = http.post(args.url + path, data=body, headers=headers, timeout=30)
                status = r.status_code
            except requests.RequestException:
                status = 0  # no answer: counted, never as accepted
            out.append((nid, status, time.perf_counter() - t0))


def run(args: argparse.Namespace) -> dict:
    password = os.environ.get("CALLOUT_LOAD_PASSWORD", "")
    auth = "Basic " + base64.b64encode(f"{args.user}:{password}".encode()).decode()
    shares = [args.count // args.threads + (i < args.count % args.threads)
              for i in range(args.threads)]
    results: list[list[tuple[str, int, float]]] = [[] for _ in shares]
    start = threading.Barrier(args.threads + 1)
    threads = [threading.Thread(target=_worker, args=(args, i, n, auth, start, results[i]),
                                daemon=True) for i, n in enumerate(shares)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    rows = [r for part in results for r in part]
    statuses: dict[str, int] = {}
    for _, status, _ in rows:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    ok = [(nid, secs) for nid, status, secs in rows if status == 200]
    times = [secs * 1000 for _, _, secs in rows]
    return {"threads": args.threads, "sent": len(rows), "accepted": len(ok),
            "statuses": statuses, "wall_s": wall,
            "accepted_per_s": len(ok) / wall if wall else 0.0,
            "p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99),
            "max_ms": max(times, default=0.0), "ok_ids": [nid for nid, _ in ok]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="the receiver's base URL")
    p.add_argument("--user", required=True, help="Basic user (password: $CALLOUT_LOAD_PASSWORD)")
    p.add_argument("--hmac-secret", help="sign each body (HMAC-SHA256, hex)")
    p.add_argument("--hmac-header", default="X-Zuora-Signature")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--count", type=int, default=3000, help="callouts in all")
    p.add_argument("--keys", type=int, default=500, help="distinct made-up keys per kind")
    p.add_argument("--prefix", default=uuid.uuid4().hex[:12],
                   help="notification id prefix (unique per run)")
    p.add_argument("--seed", type=int, default=15)
    p.add_argument("--out", type=Path, help="write the result JSON here (default: stdout)")
    args = p.parse_args(argv)
    if args.threads < 1 or args.count < 1:
        p.error("--threads and --count must be at least 1")
    result = run(args)
    text = json.dumps(result)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

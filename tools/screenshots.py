"""``make screenshots``: the README's pictures of the drift report, regenerated.

Builds two reconciled runs of a small generated tenant (the test worlds of
``tests/support``: a few drift scenarios, so there are new, persisting and resolved findings,
subscriptions with several fields off, a product-catalog finding), owners and one
acknowledgement, writes the second run's report, loads it in headless Chromium at 1,400 ×
900 px and saves:

* ``docs/report-summary-1400.png``: the top of the page (banner, provenance, tiles);
* ``docs/report-1400.png``: the findings, grouped by what broke;
* ``docs/report-detail-1400.png``: a subscription's group with one finding's detail open.

Each PNG is optimised losslessly (its image data recompressed at zlib's best level, the
chunks a viewer does not need dropped) and must stay under 300 KB. Chromium is Debian's
``/usr/bin/chromium`` (``$RECON_CHROMIUM`` overrides; ``make chromium`` installs it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import struct
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MAX_BYTES = 300_000
WIDTH, HEIGHT = 1400, 900
RUN1, RUN2 = "20261102T070000Z", "20261103T070000Z"
_KEEP = {b"IHDR", b"PLTE", b"tRNS", b"IEND"}


def optimise_png(data: bytes) -> bytes:
    """The same image, smaller: IDAT recompressed at level 9 (the smaller of two zlib
    strategies), ancillary chunks (text, time, colour profile) dropped. Lossless."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, chunks, idat = 8, [], b""
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IDAT":
            idat += body
        elif kind in _KEEP:
            chunks.append((kind, body))
    raw = zlib.decompress(idat)
    best = b""
    for strategy in (zlib.Z_DEFAULT_STRATEGY, zlib.Z_FILTERED):
        c = zlib.compressobj(9, zlib.DEFLATED, 15, 9, strategy)
        out = c.compress(raw) + c.flush()
        if not best or len(out) < len(best):
            best = out

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    head = [chunk(k, b) for k, b in chunks if k != b"IEND"]
    return b"\x89PNG\r\n\x1a\n" + b"".join(head) + chunk(b"IDAT", best) + chunk(
        b"IEND", b"")


def build(data: Path) -> Path:
    """Two reconciled runs, a saved plan, owners and an acknowledgement; the report's path."""
    import polars as pl

    from core.config import Settings
    from core.state import StateDB
    from reconcile.acks import add_acks, select_findings
    from reconcile.engine import reconcile_snapshot
    from repair.plan import write_plan
    from repair.planner import build_plan
    from reports import build_report
    from sandbox.generate.drift import SCENARIOS
    from tests.support.snapshots import LATER, write_snapshot
    from tests.support.worlds import fresh_world

    # run 1: six kinds of drift; run 2: the same tenant with one of them fixed (resolved)
    # and two new ones (the same generator stream draws the same rows for the shared ones)
    def world(scenarios: tuple[str, ...]) -> Any:
        w = fresh_world()
        for sid in scenarios:
            SCENARIOS[sid](w, 2)
        return w

    shared = ("D05", "D06", "D11", "D19", "D21")
    first = world((*shared, "D04"))
    at = dt.datetime.combine(first.as_of, dt.time(7)) + LATER
    reconcile_snapshot(write_snapshot(first, data, RUN1, at), data)
    reconcile_snapshot(write_snapshot(world((*shared, "D22", "D10")), data, RUN2,
                                      at + dt.timedelta(days=1)), data)
    write_plan(build_plan(data, RUN2), data / "runs" / RUN2 / "repair-plan.json")
    settings = Settings(
        data_dir=data, local_database_url=f"duckdb:///{data / 'local.duckdb'}",
        report_zuora_url_template="https://zuora.example/apps/{object}/{id}",
        owners_default="data-eng",
        owners_rule=json.dumps({"D22": "catalog-team", "D11": "orders-team"}),
        owners_object=json.dumps({"Subscription": "billing", "RatePlanCharge": "billing",
                                  "Contact": "crm"}))
    drift = pl.read_parquet(data / "runs" / RUN2 / "drift.parquet")
    pick = drift.filter((pl.col("status") != "resolved") & (pl.col("object") == "Account"))
    if pick.height:
        with StateDB(data) as st:
            rows = select_findings(st.con, [pick["fingerprint"][0]])
            add_acks(st, rows, "CRM rename lands in Zuora on Monday")
    return build_report(data, RUN2, settings=settings).html


def shoot(html: Path, out_dir: Path) -> list[Path]:
    from tests.support.chromium import Chromium

    out_dir.mkdir(parents=True, exist_ok=True)
    shots = []
    with Chromium(width=WIDTH, height=HEIGHT) as c:
        c.open_file(html)
        c.wait_for("document.documentElement.dataset.ready === '1'")
        if c.evaluate("document.documentElement.scrollWidth > "
                      "document.documentElement.clientWidth"):
            raise SystemExit("the report scrolls sideways at 1,400 px")
        shots.append(c.screenshot(out_dir / "report-summary-1400.png"))
        c.evaluate("window.scrollTo(0, document.getElementById('findings')"
                   ".getBoundingClientRect().top + window.scrollY - 36)")
        shots.append(c.screenshot(out_dir / "report-1400.png"))
        group = ("[...document.querySelectorAll('#f-table tr.gh')].find(g => "
                 "g.querySelector('.g-kind').textContent === 'Subscription' && "
                 "/[2-9] findings/.test(g.textContent))")
        c.evaluate(f"{group}.nextElementSibling.querySelector('td.expl').click()")
        c.evaluate(f"window.scrollTo(0, {group}.getBoundingClientRect().top + window.scrollY"
                   " - 40)")
        shots.append(c.screenshot(out_dir / "report-detail-1400.png"))
        if c.recorded.errors:
            raise SystemExit(f"the page logged errors: {c.recorded.errors}")
    for p in shots:
        p.write_bytes(optimise_png(p.read_bytes()))
        if p.stat().st_size >= MAX_BYTES:
            raise SystemExit(f"{p} is {p.stat().st_size:,} bytes (limit {MAX_BYTES:,})")
    return shots


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tools/screenshots.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "docs", help="where the PNGs go")
    p.add_argument("--keep", action="store_true", help="keep the generated data directory")
    a = p.parse_args(argv)
    data = Path(tempfile.mkdtemp(prefix="recon-screens-"))
    try:
        html = build(data)
        for shot in shoot(html, a.out):
            print(f"{shot}  ({shot.stat().st_size / 1e3:.0f} KB)")
        if a.keep:
            print(f"report: {html}")
    finally:
        if not a.keep:
            shutil.rmtree(data, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

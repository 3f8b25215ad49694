"""Fuzz: seeded records with hostile bytes, through the sandbox's AQuA file route, end to end.

The oracle is written here from the rule, not from the code under test: a value is *valid in
Zuora* when it parses as its Zuora type within the snapshot's types — text is UTF-8 (NUL
bytes, quotes, commas and line breaks included), integers are whole numbers within Int64,
decimals are plain numbers within DECIMAL(38, 9), dates are real ``YYYY-MM-DD`` days,
dateTimes real instants, booleans ``true``/``false``. A valid value must arrive exactly
(strings byte for byte, however long: fitting the local column is not the extractor's
question); any other value quarantines its record (a reject with a rule), whose other fields
still arrive. A record whose key is not UTF-8 has no identity: it is not written, and its
reject names the file and record. Nothing is lost: every record is either in the snapshot or
quarantined. The seed is printed on failure (``RECON_FUZZ_SEED`` replays one).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import random
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from core.catalog import ZType, get
from core.snapshot import latest_complete
from extract.extractor import run_extract
from sandbox.server import SandboxServer
from tests.support.extract import fast_options, settings

RECORDS = 5_000
OBJECT = "RatePlanCharge"  # the one object with every Zuora type (id, str, dt, d, dec, int, bool)
SEED = int(os.environ.get("RECON_FUZZ_SEED", "20261207"))
INT64 = (-(2 ** 63), 2 ** 63 - 1)
EPOCH = dt.datetime(1970, 1, 1)


# ------------------------------------------------------------------------------------------
# Values: (wire bytes, expected typed value) for valid ones; wire bytes for invalid ones
# ------------------------------------------------------------------------------------------
_PIECES = ['"', '""', ",", "\n", "\r\n", "\r", "\0", " ", "é", "€", "😀", "'", ";", "\\",
           "Z", "0", "\t", "\x7f", "ü", *"abcdefghijklmnopqrstuvwxyz  "]


def _text(rng: random.Random) -> str:
    """Valid UTF-8 text with what breaks naive CSV: quotes, commas, CR/LF, NULs, non-ASCII,
    leading/trailing spaces, and sometimes longer than any local column."""
    n = 700 if rng.random() < 0.02 else rng.choice([0, 1, 3, 8, 20, 60])
    return "".join(rng.choices(_PIECES, k=n))


def _bad_text(rng: random.Random) -> bytes:
    """Bytes that are not UTF-8, wrapped in what CSV must still frame."""
    bad = rng.choice([b"\xff", b"\xfe\xff", b"\x80", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80",
                      b"\xc0\xaf", b"\xf8\x88\x80\x80\x80"])
    around = [b"", b'"', b",", b"\n", b"\0", b"ok", b"\r\n"]
    return rng.choice(around) + b"A" + bad + rng.choice(around)


def _good(ztype: ZType, rng: random.Random) -> tuple[str, object]:
    """(text Zuora would send, the exact typed value the snapshot must hold)."""
    match ztype:
        case ZType.INT:
            v = rng.choice([0, 1, -1, INT64[0], INT64[1], rng.randint(*INT64),
                            rng.randint(-1000, 1000)])
            text = str(v) + rng.choice(["", "", "", ".0", ".000"])  # "7.0" is the integer 7
            return text, v
        case ZType.DECIMAL:
            digits = rng.randint(0, 29)
            places = rng.randint(0, 9)
            whole = str(rng.randint(10 ** (digits - 1), 10 ** digits - 1)) if digits else "0"
            frac = "".join(rng.choice("0123456789") for _ in range(places))
            sign = rng.choice(["", "", "-"])
            text = sign + whole + ("." + frac if places else "")
            if rng.random() < 0.1:
                text += "." * (not places) + "000"  # trailing zeros past 9 places are exact
            return text, Decimal(text)
        case ZType.DATE:
            d = rng.choice([dt.date(2024, 2, 29), dt.date(9999, 12, 31), dt.date(1900, 1, 1),
                            dt.date(2000, 1, 1) + dt.timedelta(days=rng.randint(0, 40_000))])
            return d.isoformat(), d
        case ZType.DATETIME:
            t = rng.choice([dt.datetime(2024, 3, 10, 10, 0, 0), dt.datetime(2024, 11, 3, 9, 0),
                            EPOCH + dt.timedelta(seconds=rng.randint(0, 4_000_000_000))])
            off = rng.choice([-8 * 60, -7 * 60, 0, 330, 14 * 60, -12 * 60])
            local = t + dt.timedelta(minutes=off)
            sign = "-" if off < 0 else "+"
            text = (local.strftime("%Y-%m-%dT%H:%M:%S") + rng.choice(["", ".000"])
                    + f"{sign}{abs(off) // 60:02d}:{abs(off) % 60:02d}")
            return text, t
        case ZType.BOOL:
            v = rng.random() < 0.5
            return ("true" if v else "false"), v
        case _:
            s = _text(rng)
            return s, s


def _bad(ztype: ZType, rng: random.Random) -> bytes:
    """A value that is not a valid Zuora value of ``ztype`` (any type: bytes not UTF-8)."""
    if rng.random() < 0.25:
        return _bad_text(rng)
    match ztype:
        case ZType.INT:
            return rng.choice([b"1.5", b"-0.25", b"9223372036854775808",
                               b"-9223372036854775809", b"12abc", b"1e3", b"0x10", b"seven"])
        case ZType.DECIMAL:
            return rng.choice([b"1" + b"0" * 29, b"0.1234567891", b"1,5", b"abc", b"1e5",
                               b"--1", b"NaN", b"Infinity", b"12.3.4",
                               b"-" + b"9" * 30 + b".5"])
        case ZType.DATE:
            return rng.choice([b"2021-02-29", b"2021-13-01", b"2021-07-32", b"20210715",
                               b"2021-7-5", b"2021-07-15T10:00:00", b"yesterday", b"0000-00-00"])
        case ZType.DATETIME:
            return rng.choice([b"2021-02-30T10:00:00+00:00", b"2021-07-15T25:00:00-07:00",
                               b"tomorrow", b"2021-07-15T10:61:00+00:00", b"2021-13-15T10:00:00Z",
                               b"2021-07-15 noon"])
        case ZType.BOOL:
            return rng.choice([b"maybe", b"tru", b"2", b"-1", b"T"])
        case _:
            return _bad_text(rng)


# ------------------------------------------------------------------------------------------
# The dataset
# ------------------------------------------------------------------------------------------
def _dataset(root: Path, seed: int) -> tuple[dict[str, dict], dict[str, set[str]], set[str]]:
    """Write the fuzz dataset; returns (expected typed rows by Id, bad fields by Id, escaped
    keys of the records whose Id is not UTF-8)."""
    rng = random.Random(seed)
    spec = get(OBJECT)
    expected: dict[str, dict] = {}
    bad_fields: dict[str, set[str]] = {}
    bad_keys: set[str] = set()
    lines = []
    for i in range(RECORDS):
        rid = f"fz{seed % 1000:03d}{i:06d}"
        rec: dict = {}
        raw: dict[str, str] = {}
        row: dict = {}
        bad: set[str] = set()
        hostile = rng.random() < 0.12
        as_bytes = rng.random() < 0.15  # this record's valid values go as raw bytes too
        for f in spec.fields:
            if f.name == "Id":
                if hostile and rng.random() < 0.05:
                    wire = rid.encode() + rng.choice([b"\xff", b"\x80", b"\xc3"])
                    raw["Id"] = base64.b64encode(wire).decode()
                    bad_keys.add(wire.decode("utf-8", "backslashreplace"))
                    bad.add("Id")
                else:
                    rec["Id"] = rid
                    row["Id"] = rid
                continue
            if hostile and rng.random() < 0.2:
                raw[f.name] = base64.b64encode(_bad(f.ztype, rng)).decode()
                bad.add(f.name)
                row[f.name] = None
                continue
            if rng.random() < 0.08:  # absent: NULL
                row[f.name] = None
                continue
            text, value = _good(f.ztype, rng)
            row[f.name] = value
            if as_bytes and rng.random() < 0.5:  # valid values as raw bytes (byte-exact path)
                raw[f.name] = base64.b64encode(text.encode()).decode()
            else:
                rec[f.name] = text
        if hostile and not bad:  # a hostile record has at least one bad value
            f = rng.choice([x for x in spec.fields if x.name != "Id"])
            raw[f.name] = base64.b64encode(_bad(f.ztype, rng)).decode()
            rec.pop(f.name, None)
            bad.add(f.name)
            row[f.name] = None
        if raw:
            rec["$raw"] = raw
        lines.append(json.dumps(rec))
        if "Id" in bad:
            continue
        expected[rid] = row
        if bad:
            bad_fields[rid] = bad
    (root / "zuora").mkdir(parents=True)
    (root / "zuora" / f"{OBJECT}.jsonl").write_text("\n".join(lines) + "\n")
    return expected, bad_fields, bad_keys


@pytest.mark.slow
def test_fuzzed_records_arrive_exactly_or_are_quarantined(tmp_path: Path) -> None:
    seed = SEED
    spec = get(OBJECT)
    expected, bad_fields, bad_keys = _dataset(tmp_path / "ds", seed)
    opts = fast_options()
    opts.objects = (OBJECT,)
    with SandboxServer(tmp_path / "ds", port=0, tenant_tz="America/Los_Angeles") as srv:
        # broken framing at the file's end is a transport fault: retried, then complete
        srv.add_fault("aqua_file", "truncate_csv", 1, fraction=0.9995)
        m = run_extract(settings(srv.url, tmp_path / "data"), "full", options=opts)
    snap = latest_complete(tmp_path / "data", "partial")
    assert snap is not None, f"seed={seed}: no complete snapshot"
    entry = m.zuora[OBJECT]
    got = snap.read_zuora(OBJECT)
    rejects = snap.read_rejects(OBJECT)
    why = f"seed={seed} (replay with RECON_FUZZ_SEED={seed})"

    # transport: the truncated download was retried; values never were
    assert entry["downloads"] == 2, f"{why}: downloads {entry['downloads']}"
    assert any("truncated" in e or "malformed" in e or "not terminated" in e
               for e in m.aqua["events"]), f"{why}: {m.aqua['events']}"

    # every quarantined record has a reason; no reject without a bad value behind it
    assert rejects["rule"].null_count() == 0 and rejects["location"].null_count() == 0, why
    keyed = rejects.filter(pl.col("key").is_not_null())
    got_bad = {(k, f) for k, f in keyed.select("key", "field").iter_rows()}
    want_bad = {(k, f) for k, fs in bad_fields.items() for f in fs}
    assert got_bad == want_bad, (f"{why}: rejects differ: missing {sorted(want_bad - got_bad)[:5]}"
                                 f", unexpected {sorted(got_bad - want_bad)[:5]}")
    unreadable = rejects.filter(pl.col("key").is_null() & (pl.col("field") == "Id"))
    assert set(unreadable["value"]) == bad_keys, f"{why}: unreadable keys differ"
    assert unreadable["rule"].unique().to_list() == ["utf8"], why

    # every other record arrives, value for value (strings byte for byte)
    assert got.height == len(expected), f"{why}: {got.height} rows, expected {len(expected)}"
    by_id = {r["Id"]: r for r in got.iter_rows(named=True)}
    wrong = []
    for rid, want in expected.items():
        have = by_id.get(rid)
        if have is None:
            wrong.append((rid, "missing"))
            continue
        for f in spec.fields:
            a, b = have[f.name], want[f.name]
            if isinstance(b, str) and isinstance(a, str):
                same = a.encode() == b.encode()
            else:
                same = a == b and (a is None) == (b is None)
            if not same:
                wrong.append((rid, f.name, a, b))
    assert not wrong, f"{why}: {len(wrong)} values differ, e.g. {wrong[:3]}"

    records = RECORDS
    bad = len(bad_fields) + len(bad_keys)
    quarantined = keyed["key"].n_unique() + unreadable.height
    lost = records - got.height - unreadable.height
    print(f"\nfuzz seed={seed}: records={records} bad={bad} quarantined={quarantined} "
          f"lost={lost}")
    assert quarantined == bad and lost == 0, why

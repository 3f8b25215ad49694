"""README's pictures of the report (``make screenshots``, tools/screenshots.py): committed,
optimised PNGs under 300 KB, each referenced from README; the optimiser is lossless."""

from __future__ import annotations

import importlib.util
import struct
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHOTS = ("report-summary-1400.png", "report-1400.png", "report-detail-1400.png")


def _tool():
    spec = importlib.util.spec_from_file_location("screenshots", REPO / "tools/screenshots.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _chunks(data: bytes) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    pos = 8
    while pos < len(data):
        n = struct.unpack(">I", data[pos:pos + 4])[0]
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        out[kind] = out.get(kind, b"") + body
        pos += 12 + n
    return out


def test_screenshots_are_committed_small_and_referenced_from_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for name in SHOTS:
        path = REPO / "docs" / name
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) < 300_000, name
        width, height = struct.unpack(">II", _chunks(data)[b"IHDR"][:8])
        assert width == 1400 and height == 900, name
        assert f"docs/{name}" in readme, name


def test_the_png_optimiser_is_lossless() -> None:
    tool = _tool()
    # a 64 x 16 RGB image, filter type 0 per row, compressed at level 1 (like a fast encoder)
    raw = b"".join(b"\x00" + bytes((x * 4 + y) % 256 for x in range(64 * 3)) for y in range(16))
    ihdr = struct.pack(">IIBBBBB", 64, 16, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"tEXt", b"Software\x00x" * 50)
           + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))
    small = tool.optimise_png(png)
    got = _chunks(small)
    assert len(small) < len(png) and b"tEXt" not in got
    assert got[b"IHDR"] == ihdr and zlib.decompress(got[b"IDAT"]) == raw

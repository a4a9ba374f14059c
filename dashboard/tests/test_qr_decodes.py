"""static/js/qr.js draws QR codes a real reader decodes (zxing-cpp), across versions and levels.

The encoder runs in Node (the same module the instructor's page imports); the matrix becomes
a grey-scale image with a quiet zone, and zxing-cpp must read back exactly the text.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

zxingcpp = pytest.importorskip("zxingcpp")

ROOT = Path(__file__).resolve().parents[2]
SCALE = 4
BORDER = 4

TEXTS = [
    ("M", "http://127.0.0.1:8000/join/K7M2QX/"),
    ("M", "http://192.168.1.20:8000/join/ABCDEFGH/"),
    ("L", "x"),
    ("M", "https://classroom.example/join/" + "q" * 90),  # version 7+: the version bits
    ("M", "é ü — utf-8 ✓ " * 12),
    ("L", "A" * 300),  # many blocks of two lengths, interleaved
]


def encode(texts: list[tuple[str, str]]) -> list[dict]:
    script = (
        "import('./static/js/qr.js').then((m) => {"
        " const items = JSON.parse(process.argv[1]);"
        " console.log(JSON.stringify(items.map(([level, text]) => m.encodeQR(text, level))));"
        "});"
    )
    out = subprocess.run(["node", "-e", script, json.dumps(texts)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def image(modules: list[list[bool]]) -> memoryview:
    side = (len(modules) + 2 * BORDER) * SCALE
    pixels = bytearray([255]) * (side * side)
    for y, row in enumerate(modules):
        for x, dark in enumerate(row):
            if not dark:
                continue
            for dy in range(SCALE):
                start = ((y + BORDER) * SCALE + dy) * side + (x + BORDER) * SCALE
                pixels[start:start + SCALE] = bytes(SCALE)
    return memoryview(bytes(pixels)).cast("B", (side, side))


@pytest.mark.skipif(shutil.which("node") is None, reason="node runs the front end's tests")
def test_every_symbol_decodes_to_its_text():
    symbols = encode(TEXTS)
    assert [s["version"] for s in symbols][3] >= 7
    for (level, text), symbol in zip(TEXTS, symbols, strict=True):
        found = zxingcpp.read_barcodes(image(symbol["modules"]), formats=zxingcpp.BarcodeFormat.QRCode)
        assert [b.text for b in found] == [text], (level, symbol["version"], text)
        assert found[0].ec_level == level

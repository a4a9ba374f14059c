// The QR encoder against published vectors (dashboard/tests/test_qr_decodes.py decodes whole symbols).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  alignmentPositions, dataCodewordsFor, encodeQR, formatBits, qrPath, rsRemainder, versionBits,
} from "../qr.js";

test("Reed–Solomon: the error correction of the standard's HELLO WORLD 1-M example", () => {
  const data = [32, 91, 11, 120, 209, 114, 220, 77, 67, 64, 236, 17, 236, 17, 236, 17];
  assert.deepEqual(rsRemainder(data, 10), [196, 35, 39, 119, 235, 215, 231, 226, 93, 23]);
});

test("format bits: level M mask 0, level L mask 4", () => {
  assert.equal(formatBits("M", 0).toString(2).padStart(15, "0"), "101010000010010");
  assert.equal(formatBits("L", 4).toString(2).padStart(15, "0"), "110011000101111");
});

test("version bits: version 7", () => {
  assert.equal(versionBits(7).toString(2).padStart(18, "0"), "000111110010010100");
});

test("alignment pattern centres", () => {
  assert.deepEqual(alignmentPositions(1), []);
  assert.deepEqual(alignmentPositions(2), [6, 18]);
  assert.deepEqual(alignmentPositions(7), [6, 22, 38]);
  assert.deepEqual(alignmentPositions(32), [6, 34, 60, 86, 112, 138]);
});

test("byte-mode data codewords: mode, count, bytes, terminator and 0xEC/0x11 padding", () => {
  // "AB" in 1-M (16 data codewords): 0100 00000010 01000001 01000010 0000, then pads.
  assert.deepEqual(dataCodewordsFor([0x41, 0x42], 1, "M"),
    [0x40, 0x24, 0x14, 0x20, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11]);
});

test("a join URL: the smallest version that holds it, finder patterns in three corners", () => {
  const qr = encodeQR("http://192.168.1.20:8000/join/K7M2QX/");
  assert.equal(qr.version, 3); // 37 bytes: 1-M holds 14, 2-M 26, 3-M 42
  assert.equal(qr.size, 29);
  const finder = (x0, y0) => [0, 1, 2, 3, 4, 5, 6].map((y) => [0, 1, 2, 3, 4, 5, 6]
    .map((x) => (qr.modules[y0 + y][x0 + x] ? "#" : ".")).join(""));
  const expected = ["#######", "#.....#", "#.###.#", "#.###.#", "#.###.#", "#.....#", "#######"];
  assert.deepEqual(finder(0, 0), expected);
  assert.deepEqual(finder(22, 0), expected);
  assert.deepEqual(finder(0, 22), expected);
  assert.equal(qr.modules[29 - 8][8], true, "the dark module");
});

test("the version grows with the text and level L holds more than M", () => {
  assert.equal(encodeQR("x".repeat(14)).version, 1);
  assert.equal(encodeQR("x".repeat(15)).version, 2);
  assert.equal(encodeQR("x".repeat(17), "L").version, 1);
  assert.throws(() => encodeQR("x".repeat(3000)), RangeError);
  assert.throws(() => encodeQR("x", "Q"), RangeError);
});

test("qrPath draws one unit square per dark module inside the quiet zone", () => {
  const qr = { modules: [[true, false], [false, true]] };
  assert.equal(qrPath(qr, 4), "M4 4h1v1h-1zM5 5h1v1h-1z");
});

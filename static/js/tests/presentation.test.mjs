// Presentation mode's pure parts: the URL that says the mode is on (presentation.js) and
// the run page's one key map (run-keys.js), whose commands presentation mode drives.
import assert from "node:assert/strict";
import { test } from "node:test";

import { presentRequested, withPresent } from "../presentation.js";
import { keyCommand } from "../run-keys.js";

test("?present=1 (or true) asks for presentation mode; anything else does not", () => {
  assert.equal(presentRequested("?present=1"), true);
  assert.equal(presentRequested("present=1"), true);
  assert.equal(presentRequested("?message=m-4&present=true"), true);
  for (const search of ["", "?", "?present=0", "?present=", "?present=yes", "?presenter=1", "?message=m-1"]) {
    assert.equal(presentRequested(search), false, search);
  }
  assert.equal(presentRequested(undefined), false);
});

test("withPresent adds present=1 and removes it, keeping every other parameter and the hash", () => {
  const base = "http://127.0.0.1:8000/runs/7/";
  assert.equal(withPresent(base, true), `${base}?present=1`);
  assert.equal(withPresent(`${base}?present=1`, false), base);
  assert.equal(withPresent(`${base}?message=m-4#log`, true), `${base}?message=m-4&present=1#log`);
  assert.equal(withPresent(`${base}?present=1&message=m-4#log`, false), `${base}?message=m-4#log`);
  // Idempotent both ways: toggling twice gives back the same address.
  assert.equal(withPresent(withPresent(base, true), true), `${base}?present=1`);
  assert.equal(withPresent(base, false), base);
  assert.equal(withPresent(withPresent(`${base}?message=m-4`, true), false), `${base}?message=m-4`);
  // A stale present=0 becomes present=1, not a second parameter.
  assert.equal(withPresent(`${base}?present=0`, true), `${base}?present=1`);
});

const press = (key, more = {}) => ({ key, modifier: false, inText: false, onControl: false, onButton: false, handled: false, ...more });

test("the player's keys map to the player's commands, in and out of presentation mode", () => {
  const expected = { " ": "play", ArrowRight: "forward", ArrowLeft: "back", Home: "start", End: "end",
    "+": "faster", "=": "faster", "-": "slower" };
  for (const presenting of [false, true]) {
    for (const [key, command] of Object.entries(expected)) assert.equal(keyCommand(press(key), presenting), command, key);
  }
  for (const key of ["a", "Enter", "Tab", "ArrowUp", "PageDown", "p"]) assert.equal(keyCommand(press(key), true), null, key);
});

test("F toggles presentation mode (either case) except while typing", () => {
  assert.equal(keyCommand(press("f"), false), "present");
  assert.equal(keyCommand(press("F"), true), "present");
  assert.equal(keyCommand(press("f", { onButton: true }), false), "present");
  // The seek slider and the speed menu are controls, not text: F still works there.
  assert.equal(keyCommand(press("f", { onControl: true }), false), "present");
  assert.equal(keyCommand(press("f", { inText: true, onControl: true }), false), null);
  assert.equal(keyCommand(press("f", { modifier: true }), false), null, "Ctrl+F is the browser's find");
});

test("Escape leaves presentation mode only when nothing else took it", () => {
  assert.equal(keyCommand(press("Escape"), true), "leave");
  assert.equal(keyCommand(press("Escape"), false), null);
  // The message panel was open and closed on this Escape: the mode stays.
  assert.equal(keyCommand(press("Escape", { handled: true }), true), null);
  assert.equal(keyCommand(press("Escape", { inText: true, onControl: true }), true), null);
});

test("form controls keep their own keys; Space activates a focused button instead of playing", () => {
  for (const key of ["ArrowRight", "ArrowLeft", "Home", "End", " ", "+", "-"]) {
    assert.equal(keyCommand(press(key, { onControl: true }), true), null, key);
  }
  assert.equal(keyCommand(press(" ", { onButton: true }), true), null);
  assert.equal(keyCommand(press("ArrowRight", { onButton: true }), true), "forward");
  for (const key of [" ", "ArrowRight", "End"]) assert.equal(keyCommand(press(key, { modifier: true }), true), null, key);
  assert.equal(keyCommand(press(" ", { handled: true }), true), null);
});

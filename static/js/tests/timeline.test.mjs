// The timeline player following a live run (timeline.js): a page opened mid-run replays what
// it missed, but never stays more than catchUpMs behind live, unless the user put it there.
import assert from "node:assert/strict";
import test from "node:test";

import { Timeline, tooFarBehindLive } from "../timeline.js";

const BOUND_MS = 2000;
const RATE = 5; // events per ms of run time: ~5,000 events/s
const FRAME_MS = 16;

/** A fake wall clock and frame loop the player runs on; `frames(ms)` advances both. */
function fakeBrowser() {
  let now = 0;
  let callback = null;
  globalThis.requestAnimationFrame = (fn) => { callback = fn; };
  Object.defineProperty(globalThis, "performance", { value: { now: () => now }, configurable: true, writable: true });
  return {
    get now() { return now; },
    frames(ms, each) {
      for (const end = now + ms; now < end;) {
        now += FRAME_MS;
        if (each) each(now);
        callback(now);
      }
    },
  };
}

/** A run that started at wall time 0: every event up to run time `until`, from seq `from`. */
function events(fromMs, untilMs) {
  const out = [];
  for (let t = fromMs; t < untilMs; t += 1 / RATE) out.push({ seq: Math.round(t * RATE) + 1, t_ms: t });
  return out;
}

/** A page opened mid-run: the catch-up (run time 0–1.9 s) arrives at 2 s, play starts at 2.8 s. */
function pageOpenedMidRun(browser) {
  const player = new Timeline({ reveal() {}, reset() {} }, { speed: 1, catchUpMs: BOUND_MS });
  player.playing = false; // as the run page does until the first summary
  browser.frames(2000);
  player.push(events(0, 1900));
  let sent = 1900;
  const live = (now) => { // events arrive 20 ms after they happen
    if (now - 20 > sent) {
      player.push(events(sent, now - 20));
      sent = now - 20;
    }
  };
  browser.frames(800, live); // the page is busy: the first summary is handled later
  return { player, live };
}

const behindMs = (player) => player.horizon() - player.clock;

test("a page opened mid-run does not stay more than the bound behind live", () => {
  const browser = fakeBrowser();
  const { player, live } = pageOpenedMidRun(browser);
  player.follow();
  let worst = 0;
  browser.frames(10_000, (now) => {
    live(now);
    if (now > 3000) worst = Math.max(worst, behindMs(player));
  });
  assert.ok(worst <= BOUND_MS + FRAME_MS, `${worst.toFixed(0)} ms behind live`);
  assert.ok(player.events.length - player.index < BOUND_MS * RATE, `${player.events.length - player.index} events behind`);
  assert.equal(player.following, true);
});

test("a page opened early in a run replays it from the start", () => {
  const browser = fakeBrowser();
  const player = new Timeline({ reveal() {}, reset() {} }, { speed: 1, catchUpMs: BOUND_MS });
  player.playing = false;
  browser.frames(500);
  player.push(events(0, 480));
  player.follow();
  browser.frames(FRAME_MS);
  assert.ok(player.index < 200, `${player.index} events revealed in the first frame`);
});

test("paused, seeked or at a chosen speed, the player stays where the user put it", () => {
  const ways = {
    pause: (player, frames) => { player.pause(); frames(3000); player.play(); },
    seek: (player) => { player.scrubTo(10); player.play(); },
    speed: (player, frames) => { player.setSpeed(0.5); frames(5000); player.setSpeed(1); },
  };
  for (const [name, leave] of Object.entries(ways)) {
    const browser = fakeBrowser();
    const { player, live } = pageOpenedMidRun(browser);
    player.follow();
    browser.frames(FRAME_MS, live);
    assert.ok(behindMs(player) < FRAME_MS * 2, `${name}: following, at live`);
    leave(player, (ms) => browser.frames(ms, live));
    browser.frames(3000, live);
    assert.ok(behindMs(player) > BOUND_MS, `${name}: ${behindMs(player).toFixed(0)} ms behind live`);
    player.jumpToEnd(); // Live: following again
    browser.frames(FRAME_MS, live);
    assert.ok(behindMs(player) < FRAME_MS * 2, `${name}: back at live`);
  }
});

test("only a player following a live run at 1× or faster jumps, once past the bound", () => {
  const following = { following: true, playing: true, finished: false, speed: 1 };
  assert.equal(tooFarBehindLive(following, 2001, BOUND_MS), true);
  assert.equal(tooFarBehindLive(following, 2000, BOUND_MS), false);
  assert.equal(tooFarBehindLive({ ...following, speed: 2 }, 5000, BOUND_MS), true);
  assert.equal(tooFarBehindLive({ ...following, speed: 0.5 }, 5000, BOUND_MS), false);
  assert.equal(tooFarBehindLive({ ...following, following: false }, 5000, BOUND_MS), false);
  assert.equal(tooFarBehindLive({ ...following, playing: false }, 5000, BOUND_MS), false);
  assert.equal(tooFarBehindLive({ ...following, finished: true }, 5000, BOUND_MS), false);
});

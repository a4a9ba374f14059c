// The room socket's messages and the follower's catch-up decisions.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  followPlan, followUrl, indexAtSeq, parseChoices, PLAYING_SYNC_MS, positionMessage, samePosition, sendNow,
  socketUrl, tallyRows, tallyText,
} from "../room-protocol.js";

const events = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((seq) => ({ seq, t_ms: seq * 10 }));

test("a position message is exactly the contract's fields", () => {
  const state = { index: 4, seq: 4, playing: false, speed: 0.5, total: 10 };
  assert.deepEqual(positionMessage(7, state, "m-3"),
    { type: "position", run: 7, seq: 4, playing: false, speed: 0.5, message: "m-3" });
  assert.equal(positionMessage(7, state, undefined).message, null);
});

test("what goes out now: changes of play, speed, message and paused moves; playing moves at most every second", () => {
  const at = (seq, playing = false, extra = {}) => ({ type: "position", run: 1, seq, playing, speed: 1, message: null, ...extra });
  assert.ok(sendNow(null, at(0), 0));
  assert.ok(!sendNow(at(3), at(3), 5000));
  assert.ok(sendNow(at(3), at(4), 0), "a step while paused");
  assert.ok(sendNow(at(3), at(3, true), 0), "play");
  assert.ok(sendNow(at(3, true), at(3, true, { speed: 2 }), 0), "speed");
  assert.ok(sendNow(at(3), at(3, false, { message: "m-1" }), 0), "inspector");
  assert.ok(sendNow(at(3), at(3, false, { run: 2 }), 0), "another run");
  assert.ok(!sendNow(at(3, true), at(4, true), PLAYING_SYNC_MS - 1));
  assert.ok(sendNow(at(3, true), at(4, true), PLAYING_SYNC_MS));
  assert.ok(samePosition(at(3), at(3)) && !samePosition(at(3), at(4)) && !samePosition(null, at(3)));
});

test("indexAtSeq: how many received events are at or before seq", () => {
  assert.equal(indexAtSeq(events, 0), 0);
  assert.equal(indexAtSeq(events, 4), 4);
  assert.equal(indexAtSeq(events, 99), 10);
  assert.equal(indexAtSeq([{ seq: 2 }, { seq: 5 }], 4), 1);
});

test("a follower: another run → navigate; not yet received → wait; paused → exact seek; playing → seek only when far off", () => {
  const here = { run: 1, index: 2, playing: false, speed: 1, finished: false };
  assert.deepEqual(followPlan({ run: 2, seq: 3, playing: false, speed: 1 }, here, events), { navigate: 2 });
  assert.deepEqual(followPlan({ run: 1, seq: 30, playing: false, speed: 1 }, here, events), { wait: true });
  assert.equal(followPlan({ run: 1, seq: 30, playing: false, speed: 1 }, { ...here, finished: true }, events).seekTo, 10);
  assert.deepEqual(followPlan({ run: 1, seq: 6, playing: false, speed: 2, message: "m-1" }, here, events),
    { seekTo: 6, playing: false, speed: 2, message: "m-1" });
  assert.equal(followPlan({ run: 1, seq: 2, playing: false, speed: 1 }, here, events).seekTo, null);
  assert.equal(followPlan({ run: 1, seq: 4, playing: true, speed: 1 }, here, events).seekTo, null);
  assert.equal(followPlan({ run: 1, seq: 9, playing: true, speed: 1 }, here, events).seekTo, 9);
  assert.equal(followPlan({ run: null, seq: 0, playing: false, speed: 1 }, here, events).seekTo, 0);
});

test("URLs: the follower's run page and the socket", () => {
  assert.equal(followUrl(5, "AB CD"), "/runs/5/?follow=AB%20CD");
  assert.equal(socketUrl("/ws/rooms/X/", { protocol: "https:", host: "h:1" }), "wss://h:1/ws/rooms/X/");
  assert.equal(socketUrl("/ws/rooms/X/", { protocol: "http:", host: "h:1" }), "ws://h:1/ws/rooms/X/");
});

test("the tally: the question's order, shares, the right choice marked, unknown answers kept", () => {
  const { rows, total } = tallyRows(["yes", "no"], { no: 1, yes: 3, maybe: 1 }, (c) => c === "yes");
  assert.equal(total, 5);
  assert.deepEqual(rows.map((r) => [r.choice, r.count, r.right]), [["yes", 3, true], ["no", 1, false], ["maybe", 1, false]]);
  assert.equal(tallyText(rows[0]), "3 (60%) ✓ right");
  assert.equal(tallyText(rows[1]), "1 (20%)");
  assert.deepEqual(tallyRows(["a", "b"], {}, null).rows.map((r) => r.share), [0, 0]);
});

test("typed choices: one per line or comma-separated, trimmed, no blanks or repeats", () => {
  assert.deepEqual(parseChoices("yes, no ,, yes"), ["yes", "no"]);
  assert.deepEqual(parseChoices("order.eu, paid\nbilling\n\n"), ["order.eu, paid", "billing"]);
});

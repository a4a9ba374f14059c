// The counters' definitions and the panels' verdicts: one definition per counter, the same
// words as docs/contracts.md, and verdicts computed from the recorded outcome, failures included.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { ASYNC_COUNTERS } from "../counters.js";

const CONTRACTS = readFileSync(new URL("../../../docs/contracts.md", import.meta.url), "utf8").replace(/\s+/g, " ");

test("the Duplicates counter says what docs/contracts.md says: the same logical consumer", () => {
  const [, , help] = ASYNC_COUNTERS.duplicates;
  const phrase = "a 2nd+ delivery of a message to the same logical consumer (queue, group, subscriber, task)";
  assert.ok(help.includes(phrase), help);
  assert.ok(CONTRACTS.includes(phrase), "docs/contracts.md defines duplicates in the same words");
  assert.ok(!/same consumer\b/.test(help), "not 'the same consumer': AMQP and Kafka duplicates go to another member");
});

// The run page's action controls: targets only from what the server says applies now, answers in its words.
import assert from "node:assert/strict";
import { test } from "node:test";

import { answerText, targetOptions, WORKFLOW_DECIDES } from "../live-actions.js";

test("a target select offers the live targets, and '(workflow decides)' only where the workflow picks", () => {
  const crash = { label: "Crash consumer", target: "consumer", picks: true, targets: ["consumer:work/1", "consumer:work/2"] };
  assert.deepEqual(targetOptions(crash), [
    { value: "", label: WORKFLOW_DECIDES },
    { value: "consumer:work/1", label: "consumer:work/1" },
    { value: "consumer:work/2", label: "consumer:work/2" },
  ]);
  const disconnect = { label: "Disconnect subscriber", target: "subscriber", picks: false, targets: ["subscriber:s1"] };
  assert.deepEqual(targetOptions(disconnect), [{ value: "subscriber:s1", label: "subscriber:s1" }]);
});

test("an action with nothing live to apply to says so, and cannot be chosen", () => {
  const reconnect = { label: "Reconnect subscriber", target: "subscriber", picks: false, targets: [] };
  assert.deepEqual(targetOptions(reconnect), [{ value: "", label: "(no live subscriber)", disabled: true }]);
  assert.deepEqual(targetOptions(undefined), [{ value: "", label: "(no live target)", disabled: true }]);
});

test("the answer shown is the server's sentence, or its reasons for refusing", () => {
  assert.equal(answerText(true, { accepted: true, action: "crash", target: "group:billing/member-2",
    result: "group:billing/member-2 will crash at its next message, before commit" }),
  "✓ group:billing/member-2 will crash at its next message, before commit");
  assert.equal(answerText(true, { accepted: true, action: "cancel", target: "", result: "run cancelled" }), "✓ run cancelled");
  assert.equal(answerText(false, { errors: { target: "no live consumer named producer; live: consumer:work/1" } }),
    "✗ no live consumer named producer; live: consumer:work/1");
  assert.equal(answerText(false, null), "✗ refused");
});

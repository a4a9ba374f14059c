// The workflow form's `multi` param (multi-choice.js): what a value selects, what is sent, the bounds line.
import assert from "node:assert/strict";
import { test } from "node:test";

import { multiBounds, multiValue, selectedChoices } from "../multi-choice.js";

const CHOICES = ["http", "grpc", "celery", "amqp", "kafka", "mqtt"];

test("a value selects its choices from a list or a comma-separated string, unknown ones ignored", () => {
  assert.deepEqual([...selectedChoices(["kafka", "http"], CHOICES)], ["http", "kafka"]);
  assert.deepEqual([...selectedChoices(" grpc, mqtt ,nope,", CHOICES)], ["grpc", "mqtt"]);
  assert.deepEqual([...selectedChoices("", CHOICES)], []);
  assert.deepEqual([...selectedChoices(null, CHOICES)], []);
});

test("the value sent is the checked choices in the contract's order; none checked sends an empty list", () => {
  assert.deepEqual(multiValue(["mqtt", "http", "amqp"], CHOICES), ["http", "amqp", "mqtt"]);
  assert.deepEqual(multiValue([], CHOICES), []);
  assert.deepEqual(multiValue(["x"], CHOICES), []);
});

test("the bounds line says one or more and the default", () => {
  assert.equal(multiBounds({ choices: CHOICES, default: CHOICES }), "one or more · default all 6");
  assert.equal(multiBounds({ choices: CHOICES, default: ["grpc", "http"] }), "one or more · default http, grpc");
  assert.equal(multiBounds({ choices: CHOICES, default: [] }), "one or more · default none");
});

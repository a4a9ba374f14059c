// syncChildren (panels/kit.js): a list that scrolls keeps its middle nodes in place; any
// other change rebuilds it; either way the parent ends with exactly the wanted nodes.
import assert from "node:assert/strict";
import test from "node:test";

import { syncChildren } from "../panels/kit.js";

/** Just enough of an element for syncChildren, counting how many nodes were (re)inserted. */
function fakeParent(names) {
  const parent = { children: [], inserted: 0 };
  const node = (name) => ({ name, remove() { parent.children.splice(parent.children.indexOf(this), 1); } });
  parent.append = (...nodes) => { parent.children.push(...nodes); parent.inserted += nodes.length; };
  parent.replaceChildren = (...nodes) => { parent.children = [...nodes]; parent.inserted += nodes.length; };
  parent.node = node;
  parent.children = names.map(node);
  return parent;
}

test("a list that lost its oldest and gained newest nodes only removes and appends those", () => {
  const parent = fakeParent(["a", "b", "c", "d"]);
  const [, , c, d] = parent.children;
  const wanted = [c, d, parent.node("e"), parent.node("f")];
  const dropped = syncChildren(parent, wanted);
  assert.deepEqual(parent.children.map((n) => n.name), ["c", "d", "e", "f"]);
  assert.deepEqual(dropped.map((n) => n.name), ["a", "b"]);
  assert.equal(parent.inserted, 2);
});

test("a reordered list is rebuilt, and the nodes left out are returned", () => {
  const parent = fakeParent(["a", "b", "c"]);
  const [a, b, c] = parent.children;
  const dropped = syncChildren(parent, [c, a]);
  assert.deepEqual(parent.children.map((n) => n.name), ["c", "a"]);
  assert.deepEqual(dropped, [b]);
  assert.deepEqual(syncChildren(parent, []).map((n) => n.name), ["c", "a"]);
  assert.equal(parent.children.length, 0);
});

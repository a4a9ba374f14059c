/* Where the topology draws each actor and each edge label: pure functions, no DOM.

   Actors sit in columns (producer → exchange/topic → queue/partition → consumer …). Actors
   whose names share a prefix up to the last "/" form a cluster ("group:billing/member-1"
   and "group:billing/member-2" → cluster "group:billing", drawn as one frame; the actor
   "group:billing" itself, if drawn, heads it). A cluster lays out its members as a grid, and
   a column too tall for the box continues in a sub-column beside it, so 4 groups × 8
   members or 32 partitions stay a compact picture instead of a 2000 px tower. Of the grid
   shapes tried, the one that fits the box best at the largest scale wins.

   Nothing is truncated: boxes grow to their text, a long name wraps onto two lines at a
   separator. Edge labels are placed where they touch no box and no other label, or not at
   all (the edge keeps its text in a <title>). */

/** Natural sizes in SVG units (px at scale 1); CSS uses the same font sizes. */
export const SIZES = {
  type: 14, // "consumer", "queue" above the name
  name: 17,
  status: 15,
  note: 15,
  label: 15, // edge labels
  frame: 15, // a cluster frame's title
  padX: 12,
  padY: 8,
  gapX: 12, // between nodes of one cluster
  gapY: 10,
  blockGap: 18, // between blocks stacked in a column
  columnGap: 96, // between columns: room for edge labels
  frameTitle: 24,
  framePad: 8,
  minNodeW: 96,
  maxNameChars: 22, // a longer name wraps onto two lines
  maxNoteChars: 26, // and so does a panel's note
};
const LINE = 1.3; // line height, in font sizes
export const MIN_SCALE = 0.75; // 17 px names stay ≥ 12.75 px, 15 px labels ≥ 11.25 px
export const MAX_SCALE = 1.5; // a small graph grows for the back of the room, no more
const MAX_COLUMN_GAP = 320;

/** "group:billing/member-1" → "group:billing"; null when the actor is in no cluster. */
export function clusterOf(actor) {
  const slash = actor.lastIndexOf("/");
  const colon = actor.indexOf(":");
  return slash > colon + 1 ? actor.slice(0, slash) : null;
}

/** "queue:billing" → {type: "queue", name: "billing"}; no prefix → type "". */
export function splitActor(actor) {
  const colon = actor.indexOf(":");
  return colon < 0 ? { type: "", name: actor } : { type: actor.slice(0, colon), name: actor.slice(colon + 1) };
}

/** A cluster's frame title: "group:billing" → "group billing". */
export function clusterLabel(key) {
  const { type, name } = splitActor(key);
  return type ? `${type} ${name}` : name;
}

/** At most two lines, split after a separator (/ - . _ : space) near the middle; never cut. */
export function wrapName(name, maxChars = SIZES.maxNameChars) {
  if (name.length <= maxChars) return [name];
  let best = -1;
  for (let i = 1; i < name.length - 1; i += 1) {
    if ("/-._: ".includes(name[i]) && Math.abs(i + 1 - name.length / 2) < Math.abs(best + 1 - name.length / 2)) best = i;
  }
  const at = best >= 0 ? best + 1 : Math.ceil(name.length / 2);
  return [name.slice(0, at), name.slice(at)];
}

/** A rough width for text when no canvas is at hand (DejaVu Sans is wide: ~0.62 em, bold ~0.68). */
export function estimateWidth(text, size, bold = false) {
  return String(text).length * size * (bold ? 0.68 : 0.62);
}

/** The text lines of a node and their size: what the box must hold. */
export function nodeLines(actor, clustered, texts = {}) {
  const { type, name } = splitActor(actor);
  const shown = clustered ? actor.slice(actor.lastIndexOf("/") + 1) : name;
  return {
    type: clustered ? "" : type,
    name: wrapName(shown),
    status: texts.status || "",
    note: wrapName(texts.note || "", SIZES.maxNoteChars),
  };
}

function nodeSize(lines, measure, grown) {
  const s = SIZES;
  const widths = [
    measure(lines.type, s.type, false),
    ...lines.name.map((line) => measure(line, s.name, true)),
    measure(lines.status, s.status, false),
    ...lines.note.map((line) => measure(line, s.note, true)),
  ];
  const w = Math.max(s.minNodeW, grown || 0, Math.ceil(Math.max(...widths) + 2 * s.padX));
  // The status and note lines are always reserved: they fill in as the run goes.
  const h = Math.ceil(2 * s.padY + (lines.type ? s.type * LINE : 0) + lines.name.length * s.name * LINE
    + s.status * LINE + Math.max(1, lines.note.length) * s.note * LINE);
  return { w, h };
}

/** The y of each text line's baseline, from the node's centre (for SVG text). */
export function lineOffsets(lines, h) {
  const s = SIZES;
  let y = -h / 2 + s.padY;
  const at = (size) => {
    y += size * LINE;
    return y - size * (LINE - 1) / 2 - size * 0.18;
  };
  return {
    type: lines.type ? at(s.type) : null,
    name: lines.name.map(() => at(s.name)),
    status: at(s.status),
    note: lines.note.map(() => at(s.note)),
  };
}

/**
 * Blocks of one column: a cluster (frame, optional head, member grid) or a lone node.
 * items: [{actor, column, row, index}] already sorted.
 */
function columnBlocks(items, heads, titleOf) {
  const blocks = [];
  const byCluster = new Map();
  for (const item of items) {
    const key = clusterOf(item.actor);
    if (key) {
      let block = byCluster.get(key);
      if (!block) {
        block = { key, head: heads.get(key) || null, members: [], ...titleOf(key) };
        byCluster.set(key, block);
        blocks.push(block);
      }
      block.members.push(item);
    } else {
      blocks.push({ key: null, head: null, members: [item] });
    }
  }
  return blocks;
}

/** A block's grid: as few grid columns as keep it within maxH and clusterRows rows (a lone node is 1 × 1). */
function gridOf(block, sizes, maxH, clusterRows = Infinity) {
  const s = SIZES;
  const n = block.members.length;
  const cellW = Math.max(...block.members.map((m) => sizes.get(m.actor).w));
  const cellH = Math.max(...block.members.map((m) => sizes.get(m.actor).h));
  if (!block.key) return { cols: 1, rows: 1, cellW, cellH, w: cellW, h: cellH, headH: 0, top: 0 };
  const head = block.head ? sizes.get(block.head.actor) : null;
  // A cluster with a head shows the head's box on top instead of a title line.
  const top = head ? s.framePad : s.frameTitle * block.titleLines.length;
  const headH = head ? head.h + s.gapY : 0;
  let cols = Math.max(1, Math.ceil(n / clusterRows));
  for (; cols < n; cols += 1) {
    const rows = Math.ceil(n / cols);
    if (top + headH + rows * cellH + (rows - 1) * s.gapY + s.framePad <= maxH) break;
  }
  const rows = Math.ceil(n / cols);
  const gridW = cols * cellW + (cols - 1) * s.gapX;
  const gridH = rows * cellH + (rows - 1) * s.gapY;
  const titleW = head ? 0 : (block.titleW || 0);
  const innerW = Math.max(gridW, head ? head.w : 0, titleW - 2 * s.framePad);
  return { cols, rows, cellW, cellH, headH, innerW, top, w: innerW + 2 * s.framePad, h: top + headH + gridH + s.framePad };
}

/** One candidate layout: every column wraps (grids, then sub-columns) to stay within maxH. */
function layoutWith(columns, sizes, { maxH, clusterRows }, columnGap = SIZES.columnGap, center = true) {
  const s = { ...SIZES, columnGap };
  const placed = new Map();
  const frames = [];
  let x = 0;
  let height = 0;
  const stacks = []; // [{x, w, h, blocks: [{block, grid, y}]}]
  for (const blocks of columns) {
    let stack = null;
    for (const block of blocks) {
      const grid = gridOf(block, sizes, maxH, clusterRows);
      if (!stack || (stack.blocks.length && stack.h + s.blockGap + grid.h > maxH)) {
        if (stack) x += stack.w + s.columnGap / 2;
        stack = { x, w: 0, h: 0, blocks: [] };
        stacks.push(stack);
      }
      const y = stack.blocks.length ? stack.h + s.blockGap : 0;
      stack.blocks.push({ block, grid, y });
      stack.h = y + grid.h;
      stack.w = Math.max(stack.w, grid.w);
    }
    if (stack) x += stack.w + s.columnGap;
  }
  const width = Math.max(0, x - s.columnGap);
  for (const stack of stacks) height = Math.max(height, stack.h);
  for (const stack of stacks) {
    const top = center ? (height - stack.h) / 2 : 0;
    for (const { block, grid, y } of stack.blocks) {
      const left = stack.x + (stack.w - grid.w) / 2;
      if (!block.key) {
        const m = block.members[0];
        const size = sizes.get(m.actor);
        placed.set(m.actor, { x: left + grid.w / 2, y: top + y + grid.h / 2, w: size.w, h: size.h, own: size.w });
        continue;
      }
      const lines = block.head ? [] : block.titleLines;
      const frame = { key: block.key, label: lines.join(""), lines, x: left, y: top + y, w: grid.w, h: grid.h };
      frames.push(frame);
      const inner = left + s.framePad;
      if (block.head) {
        const size = sizes.get(block.head.actor);
        placed.set(block.head.actor, { x: inner + grid.innerW / 2, y: frame.y + grid.top + size.h / 2, w: grid.innerW, h: size.h, own: size.w });
      }
      const gridW = grid.cols * grid.cellW + (grid.cols - 1) * s.gapX;
      const gridLeft = inner + (grid.innerW - gridW) / 2;
      block.members.forEach((m, i) => {
        const col = Math.floor(i / grid.rows);
        const row = i % grid.rows;
        placed.set(m.actor, {
          x: gridLeft + col * (grid.cellW + s.gapX) + grid.cellW / 2,
          y: frame.y + grid.top + grid.headH + row * (grid.cellH + s.gapY) + grid.cellH / 2,
          w: grid.cellW,
          h: grid.cellH,
          own: sizes.get(m.actor).w,
        });
      });
    }
  }
  return { width, height, nodes: placed, frames };
}

/**
 * Lay out the graph's nodes.
 * nodes: [{actor, column, row (int|null), texts: {status, note}, minW}] in order of appearance;
 * box: {width, height} the space on screen; measure(text, size, bold) → width.
 * → {width, height, scale, nodes: Map(actor → {x, y, w, h, own, lines}), frames: [{key, label, lines, x, y, w, h}]}
 * (w: the box as drawn, own: what the node itself needs)
 * with a margin included (coordinates start at 0,0).
 */
export function layoutGraph(nodes, box, measure = estimateWidth) {
  const s = SIZES;
  const margin = 10;
  if (!nodes.length) return { width: box.width, height: 60, scale: 1, nodes: new Map(), frames: [] };
  const keys = new Set(nodes.map((n) => clusterOf(n.actor)).filter(Boolean));
  const heads = new Map(nodes.filter((n) => keys.has(n.actor)).map((n) => [n.actor, n]));
  const sizes = new Map();
  const lines = new Map();
  for (const n of nodes) {
    const clustered = clusterOf(n.actor) !== null && keys.has(clusterOf(n.actor));
    const l = nodeLines(n.actor, clustered, n.texts);
    lines.set(n.actor, l);
    sizes.set(n.actor, nodeSize(l, measure, n.minW));
  }
  // A head is drawn in its cluster's frame, whatever column it asked for.
  const members = nodes.filter((n) => !heads.has(n.actor));
  const order = new Map(nodes.map((n, i) => [n.actor, i]));
  const byColumn = new Map();
  for (const n of members) {
    if (!byColumn.has(n.column)) byColumn.set(n.column, []);
    byColumn.get(n.column).push(n);
  }
  const rank = (n) => (Number.isInteger(n.row) ? n.row : 1e6 + order.get(n.actor));
  const columns = [...byColumn.keys()].sort((a, b) => a - b)
    .map((c) => columnBlocks(byColumn.get(c).sort((a, b) => rank(a) - rank(b) || order.get(a.actor) - order.get(b.actor)), heads,
      (key) => {
        // A long title wraps like a long name: two lines, never cut.
        const titleLines = wrapName(clusterLabel(key), s.maxNameChars + 4);
        return { titleLines, titleW: Math.ceil(Math.max(...titleLines.map((l) => measure(l, s.frame, true)))) + 2 * s.framePad + 4 };
      }));
  // Heads whose cluster has no member drawn yet stand alone in their own column.
  for (const [key, head] of heads) {
    if (!members.some((n) => clusterOf(n.actor) === key)) {
      const at = [...byColumn.keys()].sort((a, b) => a - b).filter((c) => c < head.column).length;
      columns.splice(Math.min(at, columns.length), 0, [{ key: null, head: null, members: [head] }]);
    }
  }
  // Try shapes (a column's height in rows of boxes × a cluster's rows): the one that fits the
  // box at the largest scale wins, the smaller area on a tie; if none fits the box's width at
  // a legible scale, the narrowest (the box then scrolls).
  const rowH = Math.max(...[...sizes.values()].map((z) => z.h)) + s.gapY;
  let best = null;
  const shapes = [];
  for (const rows of [1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40]) {
    for (const clusterRows of [2, 4, 8, Infinity]) shapes.push({ maxH: rows * rowH + 2 * s.frameTitle, clusterRows });
  }
  for (const shape of shapes) {
    const layout = layoutWith(columns, sizes, shape);
    const w = layout.width + 2 * margin;
    const h = layout.height + 2 * margin + 4 * Math.ceil(SIZES.label * LINE);
    const widthFit = box.width / w;
    const fit = Math.min(1, widthFit, box.height ? box.height / h : 1);
    const candidate = { fit, w, h, layout, shape, legible: widthFit >= MIN_SCALE };
    const better = !best
      || (candidate.legible && !best.legible)
      || (candidate.legible === best.legible && (candidate.legible
        ? fit > best.fit + 1e-6 || (Math.abs(fit - best.fit) <= 1e-6 && w * h < best.w * best.h)
        : widthFit > box.width / best.w));
    if (better) best = candidate;
  }
  // The scale: as large as fits (up to MAX_SCALE) when the whole graph fits; else as wide as
  // the box, never below MIN_SCALE (the box scrolls).
  const fitsBoth = best.legible && (!box.height || box.height / best.h >= MIN_SCALE);
  const scale = fitsBoth
    ? Math.max(MIN_SCALE, Math.min(MAX_SCALE, box.width / best.w, box.height ? box.height / best.h : MAX_SCALE))
    : Math.max(MIN_SCALE, Math.min(1, box.width / best.w));
  // Spare width goes between the columns: room for the edge labels.
  // A graph taller than the box starts at the top (the box scrolls down), a smaller one is centred.
  const gaps = columnCount(best.layout);
  const spare = box.width / scale - best.w;
  const gap = gaps > 0 && spare > 1 ? Math.min(MAX_COLUMN_GAP, s.columnGap + spare / gaps) : s.columnGap;
  const layout = layoutWith(columns, sizes, best.shape, gap, fitsBoth);
  // Room above and below for labels of edges that bend past the first and last rows.
  const marginY = margin + 2 * Math.ceil(SIZES.label * LINE);
  for (const p of layout.nodes.values()) {
    p.x += margin;
    p.y += marginY;
  }
  for (const f of layout.frames) {
    f.x += margin;
    f.y += marginY;
  }
  for (const [actor, p] of layout.nodes) p.lines = lines.get(actor);
  return { width: layout.width + 2 * margin, height: layout.height + 2 * marginY, scale, nodes: layout.nodes, frames: layout.frames };
}

/** How many gaps between columns (and sub-columns) a layout has. */
function columnCount(layout) {
  let gaps = -1;
  let right = -Infinity;
  for (const p of [...layout.nodes.values()].sort((a, b) => a.x - a.w / 2 - (b.x - b.w / 2))) {
    if (p.x - p.w / 2 > right + 1) gaps += 1;
    right = Math.max(right, p.x + p.w / 2);
  }
  return Math.max(0, gaps);
}

/** Whether two boxes {x, y, w, h} overlap by more than a hair. */
export function overlaps(a, b, slack = 0.5) {
  return a.x + slack < b.x + b.w && b.x + slack < a.x + a.w && a.y + slack < b.y + b.h && b.y + slack < a.y + a.h;
}

/** A point on the quadratic curve (s → c → e) at t. */
export function curvePoint(s, c, e, t) {
  const u = 1 - t;
  return { x: u * u * s.x + 2 * u * t * c.x + t * t * e.x, y: u * u * s.y + 2 * u * t * c.y + t * t * e.y };
}

/** Keyframes that carry a token along an edge's curve as `steps` straight pieces of one
    CSS transform each: the browser animates them on its own (on the compositor, with
    will-change: transform), with no script, style or layout per frame. */
export function tokenKeyframes(curve, steps = 8) {
  const frames = [];
  for (let i = 0; i <= steps; i++) {
    const p = curvePoint(curve.s, curve.c, curve.e, i / steps);
    frames.push({ transform: `translate(${p.x.toFixed(1)}px, ${p.y.toFixed(1)}px)`, offset: i / steps });
  }
  return frames;
}

const ALONG = [0.5, 0.38, 0.62, 0.26, 0.74, 0.16, 0.84];
const ACROSS = [0, -1, 1, -2, 2, -3, 3];

/**
 * Place edge labels: each at the first spot along its curve (middle first, then outwards,
 * then off to either side) that overlaps no obstacle (node boxes, frame titles) and no label
 * placed before; else nowhere. A label with the same text as a label already placed on an
 * edge into or out of the same node is not repeated.
 * labels: [{key, text, from, to, curve: {s, c, e}}]; → Map(key → {x, y, w, h} | null), x/y the centre.
 */
export function placeLabels(labels, obstacles, measure = estimateWidth, bounds = null) {
  const size = SIZES.label;
  const h = Math.ceil(size * LINE);
  const placed = [];
  const shown = new Set();
  const result = new Map();
  for (const label of labels) {
    const w = Math.ceil(measure(label.text, size, true)) + 6;
    // One label per bundle: the same text into the same node, or out of the same node, is shown once.
    const seen = [`to\u0000${label.to}\u0000${label.text}`, `from\u0000${label.from}\u0000${label.text}`];
    let spot = null;
    if (label.text && !seen.some((key) => shown.has(key))) {
      // Only what lies near this curve can be in the way: check those alone.
      const { s: a, c, e } = label.curve;
      const near = { x: Math.min(a.x, c.x, e.x) - w, y: Math.min(a.y, c.y, e.y) - 3 * h,
        w: Math.abs(Math.max(a.x, c.x, e.x) - Math.min(a.x, c.x, e.x)) + 2 * w,
        h: Math.abs(Math.max(a.y, c.y, e.y) - Math.min(a.y, c.y, e.y)) + 6 * h };
      const nearby = obstacles.filter((o) => overlaps(o, near)).concat(placed.filter((o) => overlaps(o, near)));
      search: for (const t of ALONG) {
        const p = curvePoint(label.curve.s, label.curve.c, label.curve.e, t);
        for (const k of ACROSS) {
          const box = { x: p.x - w / 2, y: p.y + k * (h + 1) - h / 2, w, h };
          if (bounds && (box.x < bounds.x || box.y < bounds.y || box.x + w > bounds.x + bounds.w || box.y + h > bounds.y + bounds.h)) continue;
          if (nearby.some((o) => overlaps(box, o))) continue;
          spot = { x: p.x, y: box.y + h / 2, w, h, box };
          break search;
        }
      }
    }
    if (spot) {
      placed.push(spot.box);
      for (const key of seen) shown.add(key);
      result.set(label.key, { x: spot.x, y: spot.y, w, h });
    } else {
      result.set(label.key, null);
    }
  }
  return result;
}

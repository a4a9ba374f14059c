/* kafka-consumer-groups panel: who owns which partition, what each group committed, and
   what a member crash costs (duplicates, or lost messages when committing first).

   - Groups: each group is one logical consumer and gets every message (lesson 6).
   - Partitions: per partition the end offset (the high watermark the members' fetches
     reported), and per group the owner, the committed offset and the lag as a bar.
   - Members: live / crashed, partitions owned, messages handled and handled-but-uncommitted
     (what a crash right now would deliver again), with a crash button each.
   - Ownership over time: one column per rebalance; moved partitions are marked, with how
     many partitions members that stayed had to give up (eager strategies revoke all,
     cooperative-sticky only what moves). A timeline lists every assign, revoke, crash.
   - Duplicates: every second delivery, to whom, and why; lost messages in at-most-once mode.
   Everything is derived from the revealed events, so a replay shows the state at that point. */
import { h } from "../dom.js";
import { swatch } from "../legend.js";
import { entry, fillTable, laneRouter, lessonLine, partitionLayout, renderSoon } from "./kit.js";

const GROUP_ORDER = ["billing", "shipping", "analytics", "audit"];
// Rows per group in the topology of an interactive run: members may be added up to this bound.
const MAX_MEMBERS = 8;
const LEFT = "left the group"; // a revoke's why when a member was removed by hand
const TIMELINE_MAX = 120;
const DUPLICATES_MAX = 200;
const MODES = {
  after: ["after processing", "at-least-once: a crash between handling and committing → the next owner gets those messages again (duplicates)"],
  before: ["before processing", "at-most-once: a crash between committing and handling → those messages are never handled (lost)"],
  auto: ["auto-commit", "the client commits the stored offsets every second; a crash re-delivers what was handled since the last tick"],
};
const STRATEGIES = {
  range: "range (eager): every rebalance revokes all partitions from every member, then hands them out again",
  roundrobin: "roundrobin (eager): every rebalance revokes all partitions from every member, then hands them out again",
  "cooperative-sticky": "cooperative-sticky (incremental): only partitions that move are revoked; the rest keep being consumed",
};

function freshState() {
  return {
    published: new Set(),
    routed: new Map(), // partition → records the delivery reports placed there
    ends: new Map(), // partition → end offset, as the members' fetch responses reported it
    groups: new Map(),
    timeline: [],
    duplicates: [],
    lostCandidates: [], // {group, partition, offset}: committed by a member that crashed before handling
    finished: false,
    lostTotal: null,
  };
}

function memberOf(actor) {
  const m = /^group:([^/]+)\/(.+)$/.exec(actor || "");
  return m ? { group: m[1], member: m[2] } : null;
}

function memberNumber(name) {
  return Number(String(name).replace(/^member-/, "")) || 0;
}

/** The topology row of a member: its group's block of `slots` rows, then its number within it. */
export function memberRow(groupIndex, number, slots) {
  return groupIndex * (slots + 1) + Math.min(Math.max(0, number - 1), slots - 1);
}

function shortMember(name) {
  return name ? String(name).replace(/^member-/, "m") : "—";
}

function secs(tMs) {
  return `${(tMs / 1000).toFixed(1)} s`;
}

function parts(list) {
  return list && list.length ? list.map((p) => `p${p}`).join(", ") : "none";
}

/** The same, short enough for a topology box: runs of partitions as ranges ("p0–p3, p8"). */
export function partRanges(list) {
  if (!list || !list.length) return "none";
  const runs = [];
  for (const p of list) {
    const run = runs[runs.length - 1];
    if (run && p === run[1] + 1) run[1] = p;
    else runs.push([p, p]);
  }
  return runs.map(([a, b]) => (a === b ? `p${a}` : `p${a}–p${b}`)).join(", ");
}

const panel = {
  title: "Consumer groups: partitions, commits, rebalances, duplicates",

  init(root, ctx) {
    const p = ctx.run.params || {};
    this.ctx = ctx;
    this.params = p;
    this.partitions = Number(p.partitions) || 1;
    // Hand actions add members: an interactive run leaves room for as many as a group may have.
    this.members = p.interactive ? Math.max(MAX_MEMBERS, Number(p.members) || 1) : Number(p.members) || 1;
    this.laneOf = laneRouter();
    this.finalEnds = null;
    this.state = freshState();
    const [modeName, modeHelp] = MODES[p.commit_mode] || ["", ""];
    root.append(
      lessonLine(
        "a consumer group splits the partitions among its members, and every group gets every message. ",
        "Consuming is receive → handle → commit. A crash between handling and committing means the broker cannot know: ",
        "after the rebalance another member gets those messages again. Consumers must be idempotent."),
      h("ul", { class: "kcg-settings" },
        h("li", {}, h("strong", {}, "Commit: "), `${modeName} — ${modeHelp}`),
        h("li", {}, h("strong", {}, "Assignment: "), STRATEGIES[p.strategy] || String(p.strategy)),
        h("li", {}, h("strong", {}, "Partitioner: "), "murmur2_random — keys hash exactly as in the Java client (murmur2 mod partitions)"),
        p.idempotent ? h("li", {}, h("strong", {}, "Idempotent consumers: "),
          "each group keeps an inbox of handled message ids; a duplicate is recognised and has no effect") : null),
      (this.verdictsEl = h("div", { class: "verdicts", id: "kcg-groups" })),
      h("h3", {}, "Partitions: end offset, committed offset and lag per group"),
      h("p", { class: "muted small" }, "End offset: the high watermark in the members' fetch responses. ",
        "Bar: green = committed, hatched = lag (messages the group has not committed yet)."),
      h("div", { class: "table-wrap" }, (this.partitionsEl = h("table", { id: "kcg-partitions", class: "kcg-partitions" }))),
      h("h3", {}, "Members"),
      (this.membersEl = h("div", { id: "kcg-members", class: "kcg-members" })),
      h("h3", {}, "Ownership over time"),
      h("p", { class: "muted small" }, "One column per rebalance (when every partition has an owner again). ",
        "⇢ marks a partition that moved; “revoked” counts partitions taken from members that stayed in the group."),
      (this.historyEl = h("div", { id: "kcg-history", class: "kcg-history" })),
      h("div", { class: "kcg-two" },
        h("div", {},
          h("h3", {}, "Timeline: assign, revoke, rebalance, crash"),
          h("div", { class: "table-wrap kcg-timeline-wrap" }, (this.timelineEl = h("ol", { id: "kcg-timeline", class: "kcg-timeline", reversed: true })))),
        h("div", {},
          h("h3", {}, "Duplicates and lost messages"),
          h("div", { class: "table-wrap kcg-dup-wrap" }, (this.duplicatesEl = h("table", { id: "kcg-duplicates", class: "kcg-duplicates", dataset: { inspect: "" } }))))));
    this.render();
  },

  reset() {
    this.state = freshState();
    this.render();
  },

  // -- topology ------------------------------------------------------------------------

  groupIndex(label) {
    const i = GROUP_ORDER.indexOf(label);
    return i >= 0 ? i : GROUP_ORDER.length + [...this.state.groups.keys()].indexOf(label);
  },

  layout(actor) {
    const member = memberOf(actor);
    if (member) return { column: 3, row: memberRow(this.groupIndex(member.group), memberNumber(member.member), this.members) };
    const group = /^group:([^/]+)$/.exec(actor);
    if (group) return { column: 4, row: this.groupIndex(group[1]) * (this.members + 1) };
    return partitionLayout(actor);
  },

  route(ev, guess) {
    const lane = this.laneOf(ev);
    if (lane && memberOf(ev.actor)) return lane;
    if (ev.kind === "process" || ev.kind === "commit") return null;
    return guess;
  },

  // -- events --------------------------------------------------------------------------

  group(label) {
    return entry(this.state.groups, label, () => ({ label, members: new Map(), committed: new Map(), owners: new Map(),
      processed: new Set(), handled: 0, deliveries: 0, duplicates: 0, effects: 0, suppressed: 0, rebalances: [], crashes: 0 }));
  },

  member(group, name, actor) {
    return entry(group.members, name, () => ({ name, actor, state: "live", owned: new Set(), handled: 0, uncommitted: new Set(),
      slowedMs: 0 }));
  },

  /** The group and member entries of who = memberOf(ev.actor), made on first sight. */
  seat(who, actor) {
    const g = this.group(who.group);
    return { g, m: this.member(g, who.member, actor) };
  },

  onEvent(ev, ctx) {
    const s = this.state;
    const a = ev.attrs || {};
    const who = memberOf(ev.actor);
    switch (ev.kind) {
      case "publish":
        s.published.add(ev.message_id);
        break;
      case "route":
        s.routed.set(a.partition, (s.routed.get(a.partition) || 0) + 1);
        // The delivery report's offset: the log's end, even while a slowed member has not fetched that far.
        if (Number.isInteger(a.offset)) s.ends.set(a.partition, Math.max(s.ends.get(a.partition) || 0, a.offset + 1));
        break;
      case "deliver": {
        if (!who) break;
        const { g } = this.seat(who, ev.actor);
        g.deliveries += 1;
        if (Number.isInteger(a.end_offset)) s.ends.set(a.partition, Math.max(s.ends.get(a.partition) || 0, a.end_offset));
        if (ev.duplicate) {
          g.duplicates += 1;
          s.duplicates.push({ seq: ev.seq, t: ev.t_ms, id: ev.message_id, group: who.group, member: who.member,
            partition: a.partition, offset: a.offset, attempt: ev.attempt, reason: a.reason, why: a.why,
            previous: a.previous_member, effect: null });
          if (s.duplicates.length > DUPLICATES_MAX) s.duplicates.shift();
        }
        break;
      }
      case "process": {
        if (!who) break;
        const { g, m } = this.seat(who, ev.actor);
        m.handled += 1;
        m.slowedMs = a.slowed_ms || 0;
        g.handled += 1;
        g.processed.add(ev.message_id);
        if (a.effect === false) g.suppressed += 1;
        else g.effects += 1;
        if (a.offset >= (g.committed.get(a.partition) ?? 0)) m.uncommitted.add(`${a.partition}:${a.offset}`);
        if (ev.duplicate) {
          const dup = s.duplicates.find((d) => d.id === ev.message_id && d.group === who.group && d.attempt === ev.attempt);
          if (dup) dup.effect = a.effect !== false;
        }
        break;
      }
      case "commit": {
        if (!who) break;
        const { g, m } = this.seat(who, ev.actor);
        for (const [p, o] of Object.entries(a.offsets || {})) {
          g.committed.set(Number(p), o);
          for (const key of [...m.uncommitted]) {
            const [kp, ko] = key.split(":").map(Number);
            if (kp === Number(p) && ko < o) m.uncommitted.delete(key);
          }
        }
        break;
      }
      case "assign": {
        if (!who) break;
        const { g, m } = this.seat(who, ev.actor);
        if (m.state !== "live") {
          // Restarted, or added again under a removed member's name: a new consumer, nothing in hand.
          m.uncommitted.clear();
          m.slowedMs = 0;
        }
        m.state = "live";
        for (const p of a.partitions || []) {
          m.owned.add(p);
          g.owners.set(p, who.member);
        }
        this.note(ev, who.group, `${who.member} assigned ${parts(a.partitions)}${a.incremental ? " (incremental)" : ""} → owns ${parts(a.owned)}`, "routed");
        ctx.topology.setNote(ev.actor, `owns ${partRanges([...m.owned].sort((x, y) => x - y))}`);
        break;
      }
      case "revoke": {
        if (!who) break;
        const { g, m } = this.seat(who, ev.actor);
        for (const p of a.partitions || []) {
          m.owned.delete(p);
          if (g.owners.get(p) === who.member) g.owners.delete(p);
          for (const key of [...m.uncommitted]) if (Number(key.split(":")[0]) === p && a.why !== "member crashed") m.uncommitted.delete(key);
        }
        if (a.why === "shutdown" || a.why === LEFT) m.state = "stopped";
        if (a.why === "shutdown") g.ended = true;
        this.note(ev, who.group, `${who.member} revoked ${parts(a.partitions)} (${a.why})`, a.why === "member crashed" ? "error" : "routed");
        ctx.topology.setNote(ev.actor, m.state === "crashed" ? "✗ crashed" : `owns ${partRanges([...m.owned].sort((x, y) => x - y))}`);
        break;
      }
      case "rebalance": {
        const g = this.group(a.group);
        g.rebalances.push({ ...a, t: ev.t_ms, seq: ev.seq });
        const moved = (a.moved || []).map((mv) => `p${mv.partition} ${mv.from ? shortMember(mv.from) : "—"}→${shortMember(mv.to)}`);
        this.note(ev, a.group, `rebalance #${a.rebalance} (${a.cause}): ${moved.length ? moved.join(", ") : "nothing moved"} · revoked from members that stayed: ${a.revoked}`, "routed");
        break;
      }
      case "crash": {
        if (!who) break;
        const { g, m } = this.seat(who, ev.actor);
        m.state = "crashed";
        g.crashes += 1;
        for (const [p, o] of a.unhandled || []) s.lostCandidates.push({ group: who.group, partition: p, offset: o, member: who.member, seq: ev.seq });
        const unc = (a.uncommitted || []).length;
        const lost = (a.unhandled || []).length;
        this.note(ev, who.group, `${who.member} crashed (${a.reason}) holding ${parts(a.partitions)}: `
          + `${unc} handled but not committed${lost ? `, ${lost} committed but not handled` : ""}`, "error");
        ctx.topology.setNote(ev.actor, "✗ crashed");
        break;
      }
      case "error":
        this.note(ev, who ? who.group : "", a.reason || "error", "error");
        break;
      case "done":
        s.finished = true;
        s.lostTotal = Number(a.lost) || 0;
        break;
      default:
        break;
    }
    renderSoon(this);
  },

  note(ev, group, text, category) {
    this.state.timeline.push({ seq: ev.seq, t: ev.t_ms, kind: ev.kind, group, text, category });
    if (this.state.timeline.length > TIMELINE_MAX) this.state.timeline.shift();
  },

  onSummary(summary) {
    // A partition no message went to has no event that says so; the run's result carries its end offset.
    const ends = summary && summary.result && summary.result.end_offsets;
    if (ends) this.finalEnds = ends;
    renderSoon(this);
  },

  // -- rendering -----------------------------------------------------------------------

  orderedGroups() {
    return [...this.state.groups.values()].sort((x, y) => this.groupIndex(x.label) - this.groupIndex(y.label));
  },

  render() {
    if (!this.verdictsEl) return;
    this.renderGroups();
    this.renderPartitions();
    this.renderMembers();
    this.renderHistory();
    this.renderTimeline();
    this.renderDuplicates();
  },

  renderGroups() {
    const total = this.state.published.size;
    const cards = this.orderedGroups().map((g) => {
      const all = total > 0 && g.processed.size >= total;
      const lost = this.state.lostCandidates.filter((l) => l.group === g.label).length;
      const headline = all ? "✓ every message" : this.state.finished ? (lost ? "∅ some lost" : "✗ incomplete") : "… receiving";
      const cat = all ? "cat-acked" : lost ? "cat-lost" : this.state.finished ? "cat-error" : "in-progress";
      return h("div", {
        class: `verdict ${cat}`,
        dataset: { groupStat: g.label, processed: g.processed.size, published: total, handled: g.handled,
          duplicates: g.duplicates, effects: g.effects, lost, all: String(all) },
      },
      h("p", { class: "verdict-headline" }, `${g.label}: ${g.processed.size} of ${total}`, h("span", { class: "small" }, headline)),
      h("p", { class: "verdict-explain" },
        `${g.handled} handled · `,
        h("span", { class: "chip cat-duplicate" }, swatch("duplicate"), `${g.duplicates} duplicates`), " · ",
        h("span", { class: "chip cat-lost" }, swatch("lost"), `${lost} lost`), " · ",
        `${g.effects} effects${g.suppressed ? ` (${g.suppressed} duplicates suppressed by the inbox)` : ""}`));
    });
    this.verdictsEl.replaceChildren(...cards);
  },

  renderPartitions() {
    const groups = this.orderedGroups();
    const ends = this.state.ends;
    const scale = Math.max(1, ...ends.values(), ...this.state.routed.values());
    const head = h("thead", {}, h("tr", {},
      h("th", {}, "partition"),
      h("th", { class: "num" }, "end offset"),
      groups.map((g) => h("th", {}, `${g.label}: owner · committed · lag`))));
    const rows = [];
    for (let p = 0; p < this.partitions; p++) {
      const final = this.state.finished && this.finalEnds ? this.finalEnds[p] : undefined;
      const end = ends.has(p) ? ends.get(p) : final ?? null;
      rows.push(h("tr", { dataset: { partition: p, endOffset: end ?? "" } },
        h("th", {}, `p${p}`),
        h("td", { class: "num" }, end ?? "—"),
        groups.map((g) => {
          const committed = g.committed.has(p) ? g.committed.get(p) : null;
          const lag = end !== null ? Math.max(0, end - (committed || 0)) : null;
          const owner = g.owners.get(p) || null;
          return h("td", { dataset: { group: g.label, owner: owner || "", committed: committed ?? "", lag: lag ?? "" } },
            h("div", { class: "kcg-cell-head" },
              h("span", { class: owner || g.ended ? "kcg-owner" : "kcg-owner none" },
                owner ? `◉ ${owner}` : g.ended ? "■ released (run ended)" : "○ no owner (rebalancing)"),
              h("span", { class: "small" }, `committed ${committed ?? "—"} · lag ${lag ?? "—"}`)),
            h("div", { class: "kcg-bar", role: "img", "aria-label": `committed ${committed ?? 0} of ${end ?? 0}` },
              h("span", { class: "kcg-committed", style: `width:${(100 * (committed || 0)) / scale}%` }),
              h("span", { class: "kcg-lag", style: `width:${(100 * (lag || 0)) / scale}%` })));
        })));
    }
    this.partitionsEl.replaceChildren(head, h("tbody", {}, rows));
  },

  renderMembers() {
    const live = this.ctx.run && !this.state.finished;
    const blocks = this.orderedGroups().map((g) => h("div", { class: "kcg-group", dataset: { group: g.label } },
      h("strong", {}, g.label),
      h("div", { class: "kcg-member-row" },
        [...g.members.values()].sort((x, y) => memberNumber(x.name) - memberNumber(y.name)).map((m) => {
          const owned = [...m.owned].sort((x, y) => x - y);
          const icon = m.state === "crashed" ? "✗" : m.state === "stopped" ? "■" : "◉";
          return h("div", {
            class: `kcg-member state-${m.state}`,
            dataset: { memberActor: m.actor, state: m.state, owned: owned.join(","), handled: m.handled, uncommitted: m.uncommitted.size },
          },
          h("div", { class: "kcg-member-head" }, h("strong", {}, `${icon} ${m.name}`), h("span", { class: "small" }, m.state)),
          h("div", { class: "small" }, `owns ${parts(owned)}`),
          h("div", { class: "small" }, `handled ${m.handled} · `,
            m.state === "crashed" ? `never committed ${m.uncommitted.size}` : `not yet committed ${m.uncommitted.size}`),
          m.slowedMs && m.state === "live" ? h("div", { class: "small kcg-slowed", dataset: { slowedMs: m.slowedMs } },
            `slowed: +${m.slowedMs} ms a message`) : null,
          h("button", {
            type: "button", class: "kcg-crash", dataset: { crashMember: m.actor },
            disabled: !live || m.state !== "live",
            title: "Crash this member at its next message, between handling and committing",
            onclick: (e) => this.crash(m.actor, e.currentTarget),
          }, "⚡ crash"));
        }))));
    this.membersEl.replaceChildren(...blocks);
  },

  crash(actor, button) {
    button.disabled = true;
    this.ctx.api.action("crash", actor).then((answer) => {
      if (!answer.ok) button.title = `not crashed: ${JSON.stringify(answer.data)}`;
    });
  },

  renderHistory() {
    const tables = this.orderedGroups().filter((g) => g.rebalances.length).map((g) => {
      const head = h("tr", {}, h("th", {}, g.label),
        g.rebalances.map((r) => h("th", { dataset: { rebalance: r.rebalance } },
          h("div", {}, `#${r.rebalance} · ${secs(r.t)}`),
          h("div", { class: "small kcg-cause" }, r.cause),
          h("div", { class: "small" }, `revoked ${r.revoked} · kept ${r.kept}`))));
      const rows = [];
      for (let p = 0; p < this.partitions; p++) {
        rows.push(h("tr", {}, h("th", {}, `p${p}`), g.rebalances.map((r) => {
          const owner = Object.entries(r.owners || {}).find(([, ps]) => ps.includes(p));
          const move = (r.moved || []).find((mv) => mv.partition === p);
          return h("td", { class: move ? "kcg-moved" : "", dataset: { partition: p, owner: owner ? owner[0] : "", moved: String(Boolean(move)) } },
            move ? `⇢ ${shortMember(move.to)}` : shortMember(owner ? owner[0] : null),
            move && move.from ? h("span", { class: "small muted" }, ` from ${shortMember(move.from)}`) : null);
        })));
      }
      return h("div", { class: "table-wrap kcg-history-wrap" },
        h("table", { class: "kcg-history-table", dataset: { group: g.label } }, h("thead", {}, head), h("tbody", {}, rows)));
    });
    this.historyEl.replaceChildren(...(tables.length ? tables : [h("p", { class: "muted" }, "Waiting for the groups' first assignment…")]));
  },

  renderTimeline() {
    const items = [...this.state.timeline].reverse().map((e) => h("li", {
      class: `kcg-entry cat-${e.category}`, dataset: { kind: e.kind, group: e.group, seq: e.seq },
    },
    swatch(e.category),
    h("span", { class: "kcg-when" }, secs(e.t)),
    h("strong", {}, e.kind),
    e.group ? h("span", { class: "kcg-group-name" }, e.group) : null,
    h("span", {}, e.text)));
    this.timelineEl.replaceChildren(...items);
  },

  renderDuplicates() {
    const rows = [...this.state.duplicates].reverse().map((d) => h("tr", {
      class: "cat-duplicate kcg-dup", tabindex: "0", title: "Open its journey in the inspector",
      dataset: { message: d.id, seq: d.seq, group: d.group, partition: d.partition, offset: d.offset, attempt: d.attempt },
    },
    h("td", {}, swatch("duplicate"), ` ${d.id}`),
    h("td", {}, d.group),
    h("td", { class: "mono" }, `p${d.partition}@${d.offset}`),
    h("td", {}, `${d.member} (attempt ${d.attempt})`),
    h("td", {}, h("strong", {}, d.reason || "duplicate"), d.why ? h("div", { class: "small" }, d.why) : null,
      d.effect === false ? h("div", { class: "small ok" }, "✓ inbox: already applied, no second effect") : null)));
    const lost = this.state.lostCandidates.map((l) => h("tr", {
      class: "cat-lost kcg-lost", dataset: { group: l.group, partition: l.partition, offset: l.offset },
    },
    h("td", {}, swatch("lost"), " lost"),
    h("td", {}, l.group),
    h("td", { class: "mono" }, `p${l.partition}@${l.offset}`),
    h("td", {}, "nobody"),
    h("td", {}, h("strong", {}, "committed, never handled"),
      h("div", { class: "small" }, `${l.member} committed this offset before handling it, then crashed; the group resumed after it`))));
    const empty = !rows.length && !lost.length
      ? [h("tr", {}, h("td", { colspan: 5, class: "muted" }, "None yet. Crash a member between handling and committing to see one."))] : [];
    fillTable(this.duplicatesEl, ["message", "group", "partition@offset", "to", "what happened"], [...lost, ...rows, ...empty]);
  },
};


export default panel;

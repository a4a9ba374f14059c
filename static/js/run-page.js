/* The live run page: wires the stream, the timeline player and the views together.

   stream (every event once, in seq order) → timeline player (reveals at the chosen speed)
   → model, event log, topology, counters, charts and the workflow's panel. A second model
   over everything received cross-checks the numbers against the server's summaries. */
import { api } from "./api.js";
import { Counters } from "./counters.js";
import { h, inViewEnough, onActivate, onFrame, onPacedFrame } from "./dom.js";
import { EventLog } from "./event-log.js";
import "./health.js";
import "./run-again.js";
import { LatencyCharts } from "./latency-charts.js";
import { mountLessonStrip } from "./lesson-strip.js";
import { mountClassroom } from "./classroom.js";
import { LiveActions } from "./live-actions.js";
import { Presentation } from "./presentation.js";
import { MessageInspector, messageParam, messagesOf } from "./message-inspector.js";
import { renderLegend } from "./legend.js";
import { keyCommand, keyContext } from "./run-keys.js";
import { compareSummaries, progressOf, progressText, RunModel } from "./run-model.js";
import { browserStorage, HandsOn } from "./hands-on.js";
import { fidelityLine } from "./fidelity.js";
import { FINAL_STATES, RunStream } from "./run-stream.js";
import { SPEEDS, Timeline } from "./timeline.js";
import { Topology } from "./topology.js";

const $ = (selector) => document.querySelector(selector);
const SPEED_KEY = "flow-speed";
// Following a live run, the player jumps to live when it is more than this behind (a page
// opened mid-run replays at most this much of what it missed).
const CATCH_UP_REPLAY_MS = 2000;
// /runs/<id>/?follow=<room code>: a student's screen, driven by the instructor (classroom.js).
const FOLLOWING = new URLSearchParams(window.location.search).has("follow");
// The counters, progress and charts are drawn at most 10 times a second: a text that changes
// lays the whole page out again, and nobody reads a number that changes every frame. The
// first event after a pause is drawn in the next frame, and the end of the events at once.
const NUMBERS_PACE = { factor: 0, minGapMs: 100, maxGapMs: 100 };

function storedSpeed() {
  try {
    const value = Number(localStorage.getItem(SPEED_KEY));
    return SPEEDS.includes(value) ? value : 1;
  } catch (e) {
    return 1;
  }
}

/** el[prop] = value unless it already is: the player and the numbers are redrawn for every
    batch of events, and even an equal write costs the browser a style and layout pass. */
function put(el, prop, value) {
  if (el[prop] !== value) el[prop] = value;
}

/** panel: the workflow's panel module's default export, or null. */
function boot(panel) {
  const data = JSON.parse($("#run-boot").textContent);
  const run = data.run;
  const workflow = data.workflow || {};
  const pattern = run.pattern;
  const model = new RunModel(); // what the player has revealed: drives every view
  const received = new RunModel(); // everything received: checked against the server
  let summary = null;
  let toCheck = null;
  let positioned = false;

  const topology = new Topology($("#topology-svg"));
  renderLegend($("#legend"));
  const counters = new Counters($("#counters"), $("#summary-check"), pattern);
  const charts = new LatencyCharts({
    scatter: $("#latency-scatter"),
    hist: { perceived: $("#latency-hist-perceived"), end_to_end: $("#latency-hist-end_to_end") },
    notes: { perceived: $("#latency-note-perceived"), end_to_end: $("#latency-note-end_to_end") },
  });
  const log = new EventLog({
    tbody: $("#event-log tbody"),
    query: $("#log-query"),
    kindFilter: $("#filter-kind"),
    dupFilter: $("#filter-duplicates"),
    status: $("#log-status"),
  }, (messageId, seq) => inspector.open(messageId, seq));

  function highlightRoute(messageId) {
    topology.highlight(messageId ? log.messageEvents(messageId).map((ev) => ev.actor) : []);
  }

  // -- the message inspector: from a log row, a panel's [data-inspect] row, or ?message= ----

  const inspector = new MessageInspector($("#message-path"), {
    events: (id) => log.messageEvents(id),
    eventAt: (seq) => log.eventAt(seq),
  }, {
    changed: (id) => {
      log.markSelected(id);
      highlightRoute(id);
      // A room follows the instructor's inspector (classroom.js).
      document.dispatchEvent(new CustomEvent("flow:inspect", { detail: id }));
    },
    filter: (id) => log.showOnly(id),
    row: (id) => log.rowOf(id),
  });
  onActivate($("#panel-root"), "[data-inspect] [data-message]", (el) => inspector.open(el.dataset.message, Number(el.dataset.seq) || 0));
  onActivate($(".topology-wrap"), ".token[data-message]", (el) => inspector.open(el.dataset.message, Number(el.dataset.seq) || 0));
  // A shared link opens its message once the player has revealed an event of it.
  let wanted = messageParam(window.location.search);

  function inspect(ev) {
    if (!wanted && !inspector.selected) return; // nothing to open or follow: no list per event
    const ids = messagesOf(ev);
    if (wanted && ids.includes(wanted)) {
      const id = wanted;
      wanted = "";
      inspector.open(id);
    } else if (inspector.selected && ids.includes(inspector.selected)) {
      onFrame("inspector", () => inspector.render());
      highlightRoute(inspector.selected);
    }
  }

  // -- the workflow's panel ------------------------------------------------------------

  const ctx = {
    run,
    workflow,
    topology,
    model,
    summary: null,
    // A panel's own action buttons get the answer, and it is shown where every answer is.
    api: { action: (name, target) => api.action(run.id, name, target).then((answer) => { liveActions.answered(answer); return answer; }) },
  };
  let panelFailed = false;
  function callPanel(method, ...args) {
    if (!panel || typeof panel[method] !== "function") return undefined;
    try {
      return panel[method](...args);
    } catch (err) {
      if (!panelFailed) {
        panelFailed = true;
        $("#panel-error").textContent = `✗ The ${run.workflow} panel failed in ${method}(): ${err.message}`;
        console.warn(`panel ${run.workflow}.${method} failed`, err);
      }
      return undefined;
    }
  }
  if (panel) {
    $("#panel").hidden = false;
    $("#panel-title").textContent = panel.title || workflow.title || run.workflow;
    if (typeof panel.layout === "function") topology.setLayout((actor) => callPanel("layout", actor));
    if (typeof panel.route === "function") topology.setRoute((ev, guess) => callPanel("route", ev, guess));
    callPanel("init", $("#panel-root"), ctx);
    // The panel paces itself while little of it is on screen (panels/kit.js, renderSoon).
    if (window.IntersectionObserver) {
      new IntersectionObserver((entries) => {
        const seen = entries[entries.length - 1];
        const was = panel.inView;
        panel.inView = inViewEnough(seen.intersectionRect.height, seen.boundingClientRect.height);
        // A panel that draws less while out of view draws all of itself once watched, even paused.
        if (panel.inView && was === false) onFrame("panel-in-view", () => callPanel("render", ctx));
      }, { threshold: [0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1] }).observe($("#panel"));
    }
  }

  // -- revealing events ----------------------------------------------------------------

  function reveal(ev, options) {
    model.feed(ev);
    log.add(ev);
    topology.onEvent(ev, options);
    callPanel("onEvent", ev, ctx);
    inspect(ev);
    onPacedFrame("numbers", renderNumbers, NUMBERS_PACE);
  }

  function resetViews() {
    model.reset();
    log.reset();
    inspector.render(); // the selected message stays open: its journey replays with the events
    topology.reset();
    callPanel("reset", ctx);
    renderNumbers();
  }

  function renderNumbers() {
    counters.render(model.counts(), model.completed(), summary && summary.counts);
    const { done, expected, beyond, share } = progressOf(model, pattern,
      summary && summary.progress ? summary.progress.expected : run.expected);
    const progress = $("#progress");
    put(progress.dataset, "done", String(done));
    put(progress.dataset, "expected", String(expected));
    progress.setAttribute("aria-valuenow", String(done));
    progress.setAttribute("aria-valuemax", String(expected || 0));
    put(progress.querySelector(".bar").style, "transform", `scaleX(${share.toFixed(3)})`);
    put(progress.querySelector(".progress-text"), "textContent", progressText(done, expected, pattern, beyond));
    renderFidelity();
    charts.update(model);
  }

  /** Which fidelity mode the revealed events are in, and why (a sampled run lists a sample). */
  function renderFidelity() {
    const line = fidelityLine(model.fidelity, (run.params || {}).fidelity);
    const el = $("#fidelity");
    // Only a sampled run needs the line (a full one lists everything, and its params row
    // says the fidelity asked for): the first screen keeps its room for the topology.
    el.hidden = !line || line.mode !== "sampled";
    if (!line || el.textContent === line.text) return;
    el.dataset.mode = line.mode;
    el.textContent = line.text;
    el.title = line.text;
  }

  // -- the player ----------------------------------------------------------------------

  const presentation = new Presentation({ button: $("#present-toggle"), focusOnEnter: $('#player [data-player="play"]') });
  const player = new Timeline({ reveal, reset: resetViews, changed: renderPlayer }, { speed: storedSpeed(), catchUpMs: CATCH_UP_REPLAY_MS });
  player.playing = false; // until the first summary says whether this is a live run or a replay

  let numbersAt = -1;
  let playerShown = null; // the newest player state (a paced draw shows it, not an older one)
  function renderPlayer(state) {
    const root = $("#player");
    // At the end the numbers are drawn now, not in the next frame: whoever sees
    // #player[data-index] = data-total also sees the counters of every revealed event.
    if (state.atEnd && state.index !== numbersAt) {
      numbersAt = state.index;
      renderNumbers();
      // Once the run is over, its last rows and the panel's last state too (while live, the
      // log and an off-screen panel keep their own pace).
      if (state.finished) {
        log.flush(true);
        callPanel("render", ctx);
      }
    }
    const following = !state.finished && state.playing; // a live run, at or near its newest event
    if (log.following && !following) log.flush(true); // rows left for later are drawn once it stops
    log.following = following;
    put(root.dataset, "index", String(state.index));
    put(root.dataset, "total", String(state.total));
    put(root.dataset, "playing", String(state.playing));
    put(root.dataset, "atEnd", String(state.atEnd));
    const play = root.querySelector('[data-player="play"]');
    const replay = state.finished && state.atEnd;
    put(play, "textContent", state.playing && !replay ? "❚❚ Pause" : replay ? "⟲ Replay" : "▶ Play");
    const jump = root.querySelector('[data-player="live"]');
    put(jump, "textContent", state.finished ? "⇥ End" : "⇥ Live");
    jump.setAttribute("aria-label", state.finished ? "Jump to the end (End)" : "Jump to live (End)");
    put(jump, "disabled", state.atEnd);
    playerShown = state;
    // Following a live run, the slider and the status line (which change every frame) are
    // drawn at most 10 times a second, like the counters: each changed text is a layout.
    if (following) onPacedFrame("player-text", () => renderPlayerText(playerShown), NUMBERS_PACE);
    else renderPlayerText(state);
    put($("#player-speed"), "value", String(state.speed));
    // The lesson strip and the classroom follow the player through this (last: views are drawn).
    document.dispatchEvent(new CustomEvent("flow:player", { detail: state }));
  }

  function renderPlayerText(state) {
    const replay = state.finished && state.atEnd;
    const seek = $("#player-seek");
    put(seek, "max", String(state.total));
    put(seek, "value", String(state.index));
    let mode;
    if (state.live) mode = state.playing ? "● live" : "paused at live";
    else if (!state.playing) mode = "paused";
    else if (replay) mode = "end of run";
    else mode = state.finished ? `replaying at ${state.speed}×` : `${state.total - state.index} events behind live`;
    put($("#player-status"), "textContent", `event ${state.index} of ${state.total} · t = ${state.t_ms.toFixed(1)} ms · ${mode}`);
  }

  function bindPlayer() {
    const root = $("#player");
    const speed = $("#player-speed");
    for (const value of SPEEDS) speed.append(h("option", { value: String(value) }, `${value}×`));
    speed.value = String(player.speed);
    speed.addEventListener("change", () => {
      player.setSpeed(Number(speed.value));
      try { localStorage.setItem(SPEED_KEY, String(player.speed)); } catch (e) { /* not remembered */ }
    });
    const actions = {
      play: () => player.toggle(),
      back: () => player.stepBack(),
      forward: () => player.stepForward(),
      live: () => player.jumpToEnd(),
      restart: () => { player.seek(0); player.play(); },
    };
    root.addEventListener("click", (event) => {
      const button = event.target.closest("[data-player]");
      if (button) actions[button.dataset.player]();
    });
    const seek = $("#player-seek");
    // The value is read before anything re-renders the player: that resets the slider.
    const scrub = () => {
      const count = Number(seek.value);
      if (count === player.index) player.pause();
      else player.scrubTo(count);
    };
    seek.addEventListener("input", scrub);
    seek.addEventListener("change", scrub);
    // The page's one key handler (run-keys.js says which key is which command).
    const commands = {
      ...actions,
      start: () => player.scrubTo(0),
      end: () => player.jumpToEnd(),
      faster: () => player.faster(1),
      slower: () => player.faster(-1),
      present: () => presentation.toggle(true),
      leave: () => presentation.set(false),
    };
    document.addEventListener("keydown", (event) => {
      const command = keyCommand(keyContext(event), presentation.on);
      if (command) {
        event.preventDefault();
        commands[command]();
      }
    });
  }

  // -- state, actions, connection ------------------------------------------------------

  const liveActions = new LiveActions($("#actions"), $("#action-result"), run.id, api);
  // An interactive run, live: the publish bar and the other hands-on controls, focused.
  if (run.params && run.params.interactive && !FINAL_STATES.has(run.state) && $("#hands-on")) {
    new HandsOn($("#hands-on"), { runId: run.id, workflow: run.workflow, actions: workflow.actions, api, liveActions,
      storage: browserStorage() }).focus();
  }

  function renderState(current) {
    const state = current.state;
    const el = $("#run-state");
    el.dataset.state = state;
    el.className = `badge state-${state}`;
    const icons = { pending: "…", running: "●", succeeded: "✓", failed: "✗", cancelled: "■" };
    el.textContent = `${icons[state] || ""} ${state}`;
    const error = $("#run-error");
    error.hidden = !current.error;
    error.textContent = current.error ? `✗ ${current.error}` : "";
    const live = !FINAL_STATES.has(state);
    liveActions.setLive(live);
  }

  function renderConnection(state, text) {
    const el = $("#connection");
    el.dataset.state = state;
    const icons = { connecting: "…", live: "⇄", reconnecting: "↻", complete: "✓", failed: "✗" };
    const words = { live: "streaming live", complete: text };
    el.textContent = `${icons[state] || ""} ${words[state] || text}`;
  }

  /** A result too big for a WebSocket frame arrives cut (result.truncated): panels get the whole one. */
  let whole = null;
  let wholeAsked = false;
  async function fetchWholeResult(current) {
    if (wholeAsked || !current.result || !current.result.truncated || !FINAL_STATES.has(current.state)) return;
    wholeAsked = true;
    try {
      const { ok, data } = await api.result(run.id);
      if (!ok) return;
      whole = data.result;
      summary = ctx.summary = { ...summary, result: whole };
      callPanel("onSummary", summary, ctx);
    } catch (e) {
      wholeAsked = false; // the server was not reachable: the next summary tries again
    }
  }

  /** Cross-check: at the summary's last_seq, the received events must give the same numbers. */
  function check() {
    if (!toCheck) return;
    if (received.lastSeq === toCheck.last_seq) {
      counters.showCheck(toCheck.last_seq, compareSummaries(received.snapshot(), toCheck));
      toCheck = null;
    } else if (received.lastSeq > toCheck.last_seq) {
      toCheck = null; // overtaken; a newer summary will come
    }
  }

  function position(first) {
    if (FOLLOWING) return; // the instructor's position decides
    // A finished run opens at its end (the same view it finished with); Replay restarts it.
    if (FINAL_STATES.has(first.state)) return;
    // A live one replays what it missed, unless that is more than CATCH_UP_REPLAY_MS behind
    // live (the player checks every frame: the catch-up may still be arriving now).
    player.follow();
  }

  const stream = new RunStream(run.id, {
    onEvents(events) {
      for (const ev of events) {
        received.feed(ev);
        check();
      }
      player.push(events);
    },
    onSummary(current) {
      if (whole && current.result && current.result.truncated) current = { ...current, result: whole };
      summary = current;
      ctx.summary = current;
      renderState(current);
      liveActions.changed(); // the targets an action applies to change as the run goes on
      toCheck = current;
      check();
      callPanel("onSummary", current, ctx);
      fetchWholeResult(current);
      onPacedFrame("numbers", renderNumbers, NUMBERS_PACE);
      if (!positioned) {
        positioned = true;
        position(current);
      }
    },
    onState(state, text) {
      renderConnection(state, text);
      if (state === "complete") {
        player.setFinished(true);
        if (summary && player.index === 0 && !player.playing && !FOLLOWING) {
          player.jumpToEnd();
          player.pause();
        }
      }
    },
  });

  if (FOLLOWING) document.body.classList.add("following");
  else bindPlayer();
  liveActions.refresh();
  renderState(run);
  renderNumbers();
  renderPlayer(player.state());
  stream.start();
  window.addEventListener("pagehide", () => stream.stop());
  // A deliberate hook, documented in README.md: the browser tests and the console read the
  // live objects behind this page here (modules keep everything else off window).
  window.flowRun = { run, stream, player, model, received, topology, log, inspector, charts, counters, panel, ctx };
  mountLessonStrip(window.flowRun);
  mountClassroom(window.flowRun, FOLLOWING);
}

/** The workflow's panel: the module the page names in #panel[data-module], if it has one. */
async function loadPanel() {
  const url = $("#panel").dataset.module;
  if (!url) return null;
  try {
    return (await import(url)).default;
  } catch (err) {
    // The run page works without its panel: say so where the panel would be.
    $("#panel").hidden = false;
    $("#panel-error").textContent = `✗ The panel module ${url} could not be loaded: ${err.message}`;
    console.warn("panel module failed to load", err);
    return null;
  }
}

boot(await loadPanel());

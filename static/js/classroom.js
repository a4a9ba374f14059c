/* Classroom mode on the run page (docs/contracts.md, "Classroom").

   Instructor: "Open a room" (POST /api/rooms/ {run}) shows the join URL and a QR code drawn
   here (qr.js); while the room is open every move of the player (seek, step, play/pause,
   speed) and of the message inspector goes out as a `position` on /ws/rooms/<code>/. "Ask"
   sends a question with typed choices or choices from the run; the answer count arrives
   live; "Reveal" shows everyone the tally. The room is remembered for the browser tab, so
   the next lesson step's run page keeps it and the followers move to the new run.

   Follower (/runs/<id>/?follow=<code>, where /join/<code>/ leads): no controls; each
   `follow` moves this page's player, opens the inspector the instructor opened, or goes
   to the instructor's new run; a question appears as an overlay with choice buttons and,
   after the reveal, the tally. */
import { api } from "./api.js";
import { h } from "./dom.js";
import { choicesFrom, isRight, truthOf } from "./lessons.js";
import { encodeQR, qrPath } from "./qr.js";
import {
  followPlan, followUrl, parseChoices, PLAYING_SYNC_MS, positionMessage, samePosition, sendNow, socketUrl, tallyRows,
  tallyText,
} from "./room-protocol.js";

const ROOM_KEY = "flow-room";
const RETRY_MS = [500, 1000, 2000, 5000];
const QR_BORDER = 4;

/** A room socket that reconnects (the server sends the current state on every connect). */
class RoomSocket {
  constructor(code, onMessage, onState) {
    this.code = code;
    this.onMessage = onMessage;
    this.onState = onState;
    this.attempt = 0;
    this.closed = false;
    this.connect();
  }

  connect() {
    this.onState("connecting");
    const ws = new WebSocket(socketUrl(`/ws/rooms/${encodeURIComponent(this.code)}/`, window.location));
    this.ws = ws;
    ws.addEventListener("open", () => { this.attempt = 0; this.onState("open"); });
    ws.addEventListener("message", (event) => {
      try {
        this.onMessage(JSON.parse(event.data));
      } catch (err) {
        console.warn("room message not understood", err);
      }
    });
    ws.addEventListener("close", (event) => {
      if (this.closed) return;
      if (event.code === 4404) { this.onState("gone"); return; }
      this.onState("reconnecting");
      setTimeout(() => this.connect(), RETRY_MS[Math.min(this.attempt++, RETRY_MS.length - 1)]);
    });
  }

  send(message) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(message));
      return true;
    }
    return false;
  }

  close() {
    this.closed = true;
    if (this.ws) this.ws.close();
  }
}

function qrSvg(text) {
  const qr = encodeQR(text, "M");
  const side = qr.size + 2 * QR_BORDER;
  return h("svg:svg", { class: "qr", viewBox: `0 0 ${side} ${side}`, role: "img", "aria-label": `QR code of ${text}`,
    "shape-rendering": "crispEdges", dataset: { version: String(qr.version) } },
  h("svg:rect", { width: String(side), height: String(side), class: "qr-light" }),
  h("svg:path", { d: qrPath(qr, QR_BORDER), class: "qr-dark" }));
}

function renderTally(root, choices, tally, truth) {
  const { rows, total } = tallyRows(choices, tally, truth === null ? null : (c) => isRight(c, truth));
  root.replaceChildren(
    h("p", { class: "tally-total" }, `${total} answer${total === 1 ? "" : "s"}`),
    ...rows.map((row) => h("div", { class: `tally-row${row.right ? " right" : ""}`, dataset: { choice: row.choice } },
      h("span", { class: "tally-choice" }, row.choice),
      h("span", { class: "tally-bar" }, h("span", { class: "tally-fill", dataset: { share: String(Math.round(row.share * 100)) } })),
      h("span", { class: "tally-count" }, tallyText(row)))),
  );
  // Widths through the CSSOM, not a style attribute: the page's CSP allows no inline styles.
  for (const fill of root.querySelectorAll(".tally-fill")) fill.style.width = `${fill.dataset.share}%`;
}

// -- the instructor ------------------------------------------------------------------------

class InstructorRoom {
  constructor(root, flowRun) {
    this.flowRun = flowRun;
    // The socket once a room is open; the last position sent, when, and the pending send.
    Object.assign(this, { socket: null, lastSent: null, sentAt: 0, timer: null, question: null });
    this.openButton = h("button", { type: "button", class: "room-open", dataset: { room: "open" },
      title: "Students' screens follow this page (a join link and a QR code)" }, "⇶ Open a room");
    this.openButton.addEventListener("click", () => this.open());
    this.said = h("span", { class: "form-error", role: "alert" });
    this.panel = h("div", { class: "room-panel", hidden: true });
    // The button sits in the topology's title line, where there is room, so the first screen
    // keeps its layout; the room's panel (join link, QR code, questions) takes a row of its
    // own only once it is open.
    this.root = root;
    const bar = h("span", { class: "room-bar" }, this.openButton, this.said);
    (root.ownerDocument.querySelector(".topology-box .box-head") || root).append(bar);
    root.append(this.panel);
    document.addEventListener("flow:player", () => this.moved());
    document.addEventListener("flow:inspect", () => this.moved());
    document.addEventListener("flow:lesson-question", (event) => this.prefill(event.detail));
    let remembered = null;
    try { remembered = sessionStorage.getItem(ROOM_KEY); } catch (e) { /* not remembered */ }
    if (remembered) this.resume(remembered);
  }

  async open() {
    this.openButton.disabled = true;
    this.said.textContent = "";
    try {
      const { ok, status, data } = await api.request("POST", "/api/rooms/", { run: this.flowRun.run.id });
      if (!ok) throw new Error(Object.values((data && data.errors) || {}).join("; ") || `HTTP ${status}`);
      this.show(data);
    } catch (err) {
      this.said.textContent = `✗ Could not open a room: ${err.message}`;
      this.openButton.disabled = false;
    }
  }

  async resume(code) {
    const { ok, data } = await api.request("GET", `/api/rooms/${encodeURIComponent(code)}/`);
    if (ok) this.show(data);
    else this.forget();
  }

  forget() {
    try { sessionStorage.removeItem(ROOM_KEY); } catch (e) { /* nothing kept */ }
  }

  show(room) {
    this.room = room;
    try { sessionStorage.setItem(ROOM_KEY, room.code); } catch (e) { /* this page only */ }
    this.openButton.hidden = true;
    this.connection = h("span", { class: "badge room-connection", dataset: { state: "connecting" } }, "… connecting");
    const large = h("button", { type: "button", dataset: { room: "large" } }, "⤢ Show the QR code large");
    const leave = h("button", { type: "button", dataset: { room: "leave" } }, "✕ Leave the room");
    const overlay = h("div", { class: "qr-overlay", hidden: true, role: "dialog", "aria-label": "Join QR code" },
      qrSvg(room.join_url), h("p", { class: "join-url big" }, room.join_url));
    large.addEventListener("click", () => { overlay.hidden = false; });
    overlay.addEventListener("click", () => { overlay.hidden = true; });
    document.addEventListener("keydown", (event) => { if (event.key === "Escape") overlay.hidden = true; });
    leave.addEventListener("click", () => this.leave());
    this.count = h("span", { class: "answer-count", "aria-live": "polite" }, "no question asked");
    this.tally = h("div", { class: "tally" });
    this.panel.replaceChildren(
      h("div", { class: "room-join" },
        qrSvg(room.join_url),
        h("div", { class: "room-join-text" },
          h("p", {}, "Students open ", h("strong", {}, "this link"), " or scan the code:"),
          h("p", { class: "join-url" }, h("a", { href: room.join_url, target: "_blank", rel: "noopener" }, room.join_url)),
          h("p", {}, "Room ", h("strong", { class: "room-code" }, room.code), " ", this.connection),
          h("p", {}, large, " ", leave))),
      this.askForm(), overlay);
    this.panel.hidden = false;
    this.root.hidden = false;
    const strip = this.flowRun.lesson;
    if (strip && strip.asked) this.prefill(strip.asked);
    this.socket = new RoomSocket(room.code, (m) => this.received(m), (state) => this.socketState(state));
  }

  askForm() {
    this.questionInput = h("input", { type: "text", class: "ask-question", maxlength: "300", placeholder: "e.g. Will m-4 be processed again?", "aria-label": "Question" });
    this.choicesInput = h("textarea", { class: "ask-choices", rows: "2", placeholder: "choices, one per line", "aria-label": "Choices, one per line" });
    const from = h("select", { class: "ask-from", "aria-label": "Take the choices from the run" },
      h("option", { value: "" }, "choices from the run…"),
      ...["queues", "consumers", "members", "subscribers", "partitions", "numbers", "yes/no"].map((s) => h("option", { value: s }, s)));
    from.addEventListener("change", () => {
      const source = from.value;
      const choices = source === "numbers" ? ["0", "1", "2", "3"] : source === "yes/no" ? ["yes", "no"]
        : choicesFrom(source, this.flowRun.player.events);
      if (source) this.choicesInput.value = choices.join("\n");
      from.value = "";
    });
    const ask = h("button", { type: "button", class: "primary", dataset: { room: "ask" } }, "? Ask the room");
    ask.addEventListener("click", () => this.ask());
    this.revealButton = h("button", { type: "button", dataset: { room: "reveal" }, disabled: true }, "◉ Reveal");
    this.revealButton.addEventListener("click", () => this.socket.send({ type: "reveal" }));
    this.askError = h("p", { class: "form-error", role: "alert" });
    return h("div", { class: "room-ask" },
      h("h3", {}, "Predict, then reveal"), this.questionInput, h("div", { class: "ask-row" }, this.choicesInput, from),
      h("p", { class: "ask-buttons" }, ask, " ", this.revealButton, " ", this.count), this.askError, this.tally);
  }

  prefill(question) {
    this.lessonQuestion = question;
    if (!this.questionInput || this.questionInput.value) return;
    this.questionInput.value = question.text;
    this.choicesInput.value = question.choices.join("\n");
  }

  ask() {
    const question = this.questionInput.value.trim();
    const choices = parseChoices(this.choicesInput.value);
    this.askError.textContent = "";
    if (!question || choices.length < 2) {
      this.askError.textContent = "✗ Write a question and at least two choices.";
      return;
    }
    if (!this.socket.send({ type: "ask", question, choices })) this.askError.textContent = "✗ Not connected to the room.";
  }

  received(message) {
    if (message.type === "ask") {
      this.question = { question: message.question, choices: message.choices };
      this.count.textContent = "0 answers";
      this.revealButton.disabled = false;
      this.tally.replaceChildren();
    } else if (message.type === "answers") {
      this.count.textContent = `${message.count} answer${message.count === 1 ? "" : "s"}`;
    } else if (message.type === "reveal") {
      this.revealButton.disabled = true;
      const choices = this.question ? this.question.choices : [];
      renderTally(this.tally, choices, message.tally, this.truth());
      document.dispatchEvent(new CustomEvent("flow:room-reveal"));
    } else if (message.type === "error") {
      this.askError.textContent = `✗ ${message.error}`;
    }
  }

  /** The truth beside the tally: the lesson's, when the room was asked the lesson's question. */
  truth() {
    const strip = this.flowRun.lesson;
    if (!strip || !strip.question || !this.question || !this.lessonQuestion
        || this.question.question !== this.lessonQuestion.text) return null;
    return truthOf(strip.question, this.flowRun.player.events, strip.pausedEvent).answer;
  }

  socketState(state) {
    const words = { connecting: "… connecting", open: "⇄ students follow this page", reconnecting: "↻ reconnecting", gone: "✗ the room is gone" };
    this.connection.dataset.state = state;
    this.connection.textContent = words[state] || state;
    if (state === "open") {
      this.lastSent = null;
      this.moved();
    } else if (state === "gone") {
      this.forget();
    }
  }

  /** The player or the inspector moved: tell the room, at most every PLAYING_SYNC_MS while playing. */
  moved() {
    if (!this.socket) return;
    const next = positionMessage(this.flowRun.run.id, this.flowRun.player.state(), this.flowRun.inspector.selected);
    if (samePosition(this.lastSent, next)) return;
    const since = performance.now() - this.sentAt;
    clearTimeout(this.timer);
    if (sendNow(this.lastSent, next, since)) {
      if (this.socket.send(next)) {
        this.lastSent = next;
        this.sentAt = performance.now();
      }
    } else {
      this.timer = setTimeout(() => this.moved(), Math.max(0, PLAYING_SYNC_MS - since));
    }
  }

  leave() {
    this.forget();
    if (this.socket) this.socket.close();
    this.socket = null;
    this.panel.hidden = true;
    this.root.hidden = true;
    this.panel.replaceChildren();
    this.openButton.hidden = false;
    this.openButton.disabled = false;
  }
}

// -- a follower ----------------------------------------------------------------------------

class Follower {
  constructor(root, flowRun, code) {
    this.root = root;
    this.flowRun = flowRun;
    this.player = flowRun.player;
    this.code = code;
    this.pending = null;
    this.state = h("span", { class: "badge room-connection", dataset: { state: "connecting" } }, "… connecting");
    this.overlay = h("div", { class: "room-question", hidden: true, role: "dialog", "aria-label": "The instructor's question" });
    root.append(h("p", { class: "follow-banner" }, "⇶ Following room ", h("strong", { class: "room-code" }, code),
      ": the instructor drives this screen. ", this.state), this.overlay);
    root.hidden = false;
    document.addEventListener("flow:player", () => { if (this.pending) queueMicrotask(() => this.apply(this.pending)); });
    this.socket = new RoomSocket(code, (m) => this.received(m), (s) => this.socketState(s));
  }

  socketState(state) {
    const words = { connecting: "… connecting", open: "⇄ following", reconnecting: "↻ reconnecting", gone: "✗ this room is closed" };
    this.state.dataset.state = state;
    this.state.textContent = words[state] || state;
  }

  received(message) {
    if (message.type === "follow") this.apply(message);
    else if (message.type === "ask") this.ask(message);
    else if (message.type === "answered") this.answered(message.choice);
    else if (message.type === "reveal") this.reveal(message.tally);
    else if (message.type === "error" && this.said) this.said.textContent = `✗ ${message.error}`;
  }

  apply(follow) {
    const player = this.player;
    const state = player.state();
    const plan = followPlan(follow, { run: this.flowRun.run.id, index: state.index, finished: state.finished }, player.events);
    if (plan.navigate) {
      window.location.replace(followUrl(plan.navigate, this.code));
      return;
    }
    if (plan.wait) {
      this.pending = follow;
      return;
    }
    this.pending = null;
    if (player.speed !== plan.speed) player.setSpeed(plan.speed);
    // One step forward animates like the instructor's; anything else rebuilds at the target.
    if (plan.seekTo === state.index + 1) player.stepForward();
    else if (plan.seekTo !== null) player.scrubTo(plan.seekTo);
    const atFinishedEnd = state.finished && player.index === player.events.length;
    if (plan.playing && !atFinishedEnd) player.play();
    else player.pause();
    const inspector = this.flowRun.inspector;
    if ((inspector.selected || null) !== plan.message) {
      if (plan.message) inspector.open(plan.message);
      else inspector.close();
    }
  }

  ask(message) {
    this.choices = message.choices;
    this.said = h("p", { class: "form-error", role: "alert" });
    this.mine = h("p", { class: "your-answer", "aria-live": "polite" }, "Pick your prediction:");
    this.tally = h("div", { class: "tally" });
    this.buttons = h("div", { class: "choices", role: "group", "aria-label": "Your answer" },
      ...message.choices.map((choice) => {
        const button = h("button", { type: "button", class: "choice", dataset: { choice } }, choice);
        button.addEventListener("click", () => this.socket.send({ type: "answer", choice }));
        return button;
      }));
    this.overlay.replaceChildren(h("p", { class: "q-text" }, "? ", message.question), this.buttons, this.mine, this.said, this.tally);
    this.overlay.hidden = false;
  }

  answered(choice) {
    if (!this.buttons) return;
    for (const b of this.buttons.children) {
      b.setAttribute("aria-pressed", String(b.dataset.choice === choice));
      b.disabled = true;
    }
    this.mine.textContent = `Your answer: ${choice}. Waiting for the reveal…`;
  }

  reveal(tally) {
    if (!this.tally) return;
    for (const b of this.buttons.children) b.disabled = true;
    this.mine.textContent = "The class answered — watch the run show what really happens:";
    renderTally(this.tally, this.choices, tally, null);
    const close = h("button", { type: "button" }, "✕ Close");
    close.addEventListener("click", () => { this.overlay.hidden = true; });
    this.tally.append(close);
  }
}

/** The classroom section of the run page: a follower's banner, or the instructor's room controls. */
function mountClassroom(flowRun, following) {
  const root = document.getElementById("classroom");
  if (!root) return null;
  if (following) {
    const code = new URLSearchParams(window.location.search).get("follow");
    return code ? new Follower(root, flowRun, code) : null;
  }
  if (root.dataset.instructor !== "true") return null;
  return new InstructorRoom(root, flowRun);
}

export { mountClassroom };

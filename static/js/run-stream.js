/* A run's events, in seq order, each exactly once, over a WebSocket that survives drops.

   Protocol (docs/contracts.md, "WebSocket"): connect to /ws/runs/<id>/?after=<last seq seen>;
   the server sends {"type":"events","events":[...]} and {"type":"summary","summary":{...}}; we ack every
   batch with {"type":"ack","seq":lastSeq}. A gap in seq is filled from
   GET /api/runs/<id>/events/?after=; a dropped connection reconnects by itself with
   backoff and resumes after the last seq handed on, so nothing is lost or seen twice. */
import { api } from "./api.js";

const FINAL_STATES = new Set(["succeeded", "failed", "cancelled"]);
const FILL_PAGE = 5000;
const MAX_BACKOFF_MS = 10000;
// Acks go out at most this often: at thousands of events a second the server sends many small
// batches, and one ack frame each cost the page a send per batch. The server's window
// (FLOWS_WS_WINDOW, 20,000 events) is seconds of the fastest run, far beyond this delay.
const ACK_EVERY_MS = 50;
// The server closes with these when reconnecting cannot help.
const PERMANENT_CLOSE = new Set([4400, 4404]);

class RunStream {
  /**
   * handlers: onEvents(events) – consecutive new events; onSummary(summary);
   *           onState(state, text) – connecting | live | reconnecting | complete | failed.
   */
  constructor(runId, handlers) {
    this.runId = runId;
    this.handlers = handlers;
    this.lastSeq = 0;
    this.pending = new Map();
    this.ws = null;
    this.failures = 0;
    this.filling = false;
    this.finalSeq = null;
    this.closed = false;
    this.reconnectTimer = null;
    this.state = "idle";
    this.reconnects = 0;
    this.ackTimer = null;
    window.addEventListener("online", () => this.reconnectNow());
  }

  start() {
    this.connect();
  }

  /** Stop for good (page leaving). */
  stop() {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    if (this.ws) this.ws.close(1000, "done");
  }

  /** Drop the connection as a network failure would; the stream recovers by itself. */
  dropConnection() {
    if (this.ws) this.ws.close(4000, "dropped by the client");
  }

  reconnectNow() {
    if (this.state === "reconnecting") {
      clearTimeout(this.reconnectTimer);
      this.connect();
    }
  }

  setState(state, text) {
    this.state = state;
    if (this.handlers.onState) this.handlers.onState(state, text);
  }

  connect() {
    if (this.closed) return;
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${window.location.host}/ws/runs/${this.runId}/?after=${this.lastSeq}`;
    this.setState("connecting", this.lastSeq ? `resuming after event ${this.lastSeq}` : "connecting");
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onopen = () => {
      if (ws === this.ws) this.setState("live", "connected");
    };
    ws.onmessage = (message) => {
      if (ws === this.ws) this.onMessage(message);
    };
    ws.onclose = (event) => {
      if (ws === this.ws) this.onClose(event);
    };
  }

  onMessage(message) {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch (e) {
      return;
    }
    if (data.type === "events") {
      this.failures = 0;
      this.accept(data.events || []);
      this.ackSoon();
    } else if (data.type === "summary") {
      const summary = data.summary || {};
      if (FINAL_STATES.has(summary.state)) this.finalSeq = summary.last_seq || 0;
      if (this.handlers.onSummary) this.handlers.onSummary(summary);
      this.checkComplete();
    } else if (data.type === "error") {
      this.serverError = data.error;
    }
  }

  /** One ack for every batch received within ACK_EVERY_MS, carrying the newest seq. */
  ackSoon() {
    if (this.ackTimer !== null) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      this.ack();
    }, ACK_EVERY_MS);
  }

  ack() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: "ack", seq: this.lastSeq }));
    }
  }

  onClose(event) {
    this.ws = null;
    if (this.closed) return;
    if (PERMANENT_CLOSE.has(event.code)) {
      this.closed = true;
      this.setState("failed", this.serverError || `closed by the server (${event.code})`);
      return;
    }
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.failures) * (0.8 + Math.random() * 0.4);
    this.failures += 1;
    this.reconnects += 1;
    this.setState("reconnecting", `reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${this.failures})`);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  accept(events) {
    for (const ev of events) {
      if (ev.seq > this.lastSeq) this.pending.set(ev.seq, ev);
    }
    this.drain();
  }

  /** Hand on every event that follows lastSeq without a gap; fetch the gap if there is one. */
  drain(fromFill) {
    const ready = [];
    while (this.pending.has(this.lastSeq + 1)) {
      const ev = this.pending.get(this.lastSeq + 1);
      this.pending.delete(ev.seq);
      ready.push(ev);
      this.lastSeq = ev.seq;
    }
    if (ready.length) this.handlers.onEvents(ready);
    if (this.pending.size && !fromFill) this.fillGap();
    this.checkComplete();
  }

  async fillGap() {
    if (this.filling) return;
    this.filling = true;
    try {
      while (this.pending.size && !this.pending.has(this.lastSeq + 1)) {
        const { ok, data } = await api.events(this.runId, this.lastSeq, FILL_PAGE);
        if (!ok || !data.events.length) throw new Error("the gap is not in the database yet");
        for (const ev of data.events) {
          if (ev.seq > this.lastSeq) this.pending.set(ev.seq, ev);
        }
        this.drain(true);
      }
    } catch (e) {
      setTimeout(() => this.drain(), 1000);
    } finally {
      this.filling = false;
    }
  }

  checkComplete() {
    if (this.finalSeq !== null && this.lastSeq >= this.finalSeq && !this.closed) {
      this.closed = true;
      clearTimeout(this.reconnectTimer);
      this.setState("complete", `all ${this.lastSeq} events received`);
      if (this.ws) this.ws.close(1000, "run finished");
    }
  }
}

export { RunStream, FINAL_STATES };

/* The timeline player: reveals recorded events at a chosen speed, live or replayed.

   Real flows take milliseconds, so the player keeps a virtual clock (run time in ms) that
   advances at `speed` × wall time; every received event whose t_ms the clock has passed is
   revealed, in seq order. Pause stops the clock; step reveals exactly one event; seek
   rebuilds the view from the first event. Long idle gaps are shortened so a replay never
   sits still for more than MAX_IDLE_MS, and big bursts are revealed without animation.
   While it follows a live run (started there, or sent there by Live/End), a player that
   falls more than `catchUpMs` behind live jumps to live: at 1× its clock only keeps pace, so
   a replay that starts behind (a page opened mid-run) would stay behind for the whole run.
   Pause, step, seek and a chosen speed stop following: the player stays where it was put. */
const SPEEDS = [0.1, 0.25, 0.5, 1, 2, 5, 10];
const MAX_IDLE_MS = 1500;
// Revealing more than this in one frame: only the last ANIMATE_TAIL get a token.
const BURST = 40;
const ANIMATE_TAIL = 8;

class Timeline {
  /**
   * handlers: reveal(ev, {animate, speed}) – show one event;
   *           reset() – clear every view before a rebuild;
   *           changed(state) – position, speed or mode changed.
   */
  constructor(handlers, options) {
    this.handlers = handlers;
    this.events = [];
    this.index = 0; // how many events are revealed
    this.clock = 0; // virtual run time, ms
    this.playing = true;
    this.speed = (options && options.speed) || 1;
    this.catchUpMs = (options && options.catchUpMs) || Infinity; // how far behind live following may fall
    this.following = false; // keeping up with a live run, not where the user put the player
    this.finished = false; // the run is over and every event has been received
    this.offset = null; // wall ms − run ms, estimated from arrivals, to follow a live run
    this.lastFrame = null;
    this.pushed = false; // events arrived since the last notify
    this.frame = this.frame.bind(this);
    requestAnimationFrame(this.frame);
  }

  /** Events arrive from the stream, consecutive and in seq order. */
  push(events) {
    const now = performance.now();
    for (const ev of events) {
      this.events.push(ev);
      const offset = now - ev.t_ms;
      if (this.offset === null || offset < this.offset) this.offset = offset;
    }
    // Said in the next frame, once for every batch that arrived before it: a fast run sends
    // many batches a frame, and each notify redraws the player.
    this.pushed = true;
  }

  setFinished(finished) {
    this.finished = finished;
    this.notify();
  }

  /** Where a live run is now, in run time; the clock never runs ahead of it. */
  horizon() {
    const last = this.events.length ? this.events[this.events.length - 1].t_ms : 0;
    if (this.finished || this.offset === null) return last;
    return Math.max(last, performance.now() - this.offset);
  }

  frame(now) {
    const elapsed = this.lastFrame === null ? 0 : now - this.lastFrame;
    this.lastFrame = now;
    if (this.playing && (this.index < this.events.length || !this.finished)) {
      this.clock += elapsed * this.speed;
      if (tooFarBehindLive(this, this.horizon() - this.clock, this.catchUpMs)) this.jumpToEnd();
      const next = this.events[this.index];
      if (next && next.t_ms - this.clock > MAX_IDLE_MS * this.speed) this.clock = next.t_ms - MAX_IDLE_MS * this.speed;
      this.clock = Math.min(this.clock, this.horizon());
      let end = this.index;
      while (end < this.events.length && this.events[end].t_ms <= this.clock) end += 1;
      if (end > this.index) this.revealUntil(end, true);
    }
    if (this.pushed) this.notify();
    requestAnimationFrame(this.frame);
  }

  revealUntil(end, animate) {
    const burst = end - this.index > BURST;
    while (this.index < end) {
      const ev = this.events[this.index];
      this.index += 1;
      this.handlers.reveal(ev, { animate: animate && (!burst || end - this.index < ANIMATE_TAIL), speed: this.speed });
    }
    this.notify();
  }

  notify() {
    this.pushed = false;
    if (this.handlers.changed) this.handlers.changed(this.state());
  }

  state() {
    const total = this.events.length;
    const current = this.index ? this.events[this.index - 1] : null;
    return {
      index: this.index,
      total,
      clock: this.clock,
      t_ms: current ? current.t_ms : 0,
      seq: current ? current.seq : 0,
      playing: this.playing,
      speed: this.speed,
      finished: this.finished,
      atEnd: this.index === total,
      live: !this.finished && this.index === total,
    };
  }

  play() {
    if (this.finished && this.index === this.events.length) this.seek(0);
    this.playing = true;
    this.notify();
  }

  /** Play a live run from here and keep up with it (the page opened while it runs). */
  follow() {
    this.following = true;
    this.play();
  }

  pause() {
    this.playing = false;
    this.following = false;
    this.notify();
  }

  toggle() {
    if (this.playing) this.pause();
    else this.play();
  }

  setSpeed(speed) {
    this.speed = Math.min(10, Math.max(0.1, Number(speed) || 1));
    this.following = false;
    this.notify();
  }

  faster(direction) {
    const i = SPEEDS.findIndex((s) => s >= this.speed - 1e-9);
    const next = SPEEDS[Math.min(SPEEDS.length - 1, Math.max(0, (i < 0 ? SPEEDS.length - 1 : i) + direction))];
    this.setSpeed(next);
  }

  stepForward() {
    this.playing = false;
    this.following = false;
    if (this.index < this.events.length) {
      this.clock = this.events[this.index].t_ms;
      this.revealUntil(this.index + 1, true);
    } else {
      this.notify();
    }
  }

  stepBack() {
    this.playing = false;
    this.seek(Math.max(0, this.index - 1));
  }

  /** Stop at exactly `count` revealed events (the seek slider, Home). */
  scrubTo(count) {
    this.playing = false;
    this.seek(count);
  }

  /** Rebuild the view with exactly `count` events revealed. */
  seek(count) {
    const target = Math.max(0, Math.min(this.events.length, count));
    this.following = false; // Restart, Home, the slider: the user put the player here
    this.handlers.reset();
    this.index = 0;
    this.revealUntil(target, false);
    this.clock = target ? this.events[target - 1].t_ms : 0;
    this.notify();
  }

  /** Reveal everything received so far and keep following the run. */
  jumpToEnd() {
    if (this.index < this.events.length) {
      this.clock = this.events[this.events.length - 1].t_ms;
      this.revealUntil(this.events.length, true);
    }
    this.clock = Math.max(this.clock, this.horizon());
    this.playing = true;
    this.following = true;
    this.notify();
  }
}

/**
 * Whether a player `gapMs` behind live should jump there: only one following a live run,
 * playing at 1× or faster (slower falls behind by choice), and further behind than `boundMs`.
 */
function tooFarBehindLive({ following, playing, finished, speed }, gapMs, boundMs) {
  return following && playing && !finished && speed >= 1 && gapMs > boundMs;
}

export { Timeline, SPEEDS, tooFarBehindLive };

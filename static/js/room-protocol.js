/* The room socket's messages (docs/contracts.md, "Classroom") and the decisions around them,
   pure so that node tests them: what the instructor sends when the player moves, how a
   follower's player catches up with a `follow`, and the tally beside the truth. */

// While playing, followers play on their own clock: a position every this often keeps them in step.
const PLAYING_SYNC_MS = 1000;
// A playing follower this many events away from the instructor jumps; closer, it plays on.
const PLAYING_DRIFT = 3;

function positionMessage(runId, state, message) {
  return {
    type: "position", run: runId, seq: state.seq, playing: Boolean(state.playing),
    speed: state.speed, message: message || null,
  };
}

/**
 * Whether a new position must go out now: a change of run, play/pause, speed or inspected
 * message always; a move while paused (step, seek) always; while playing, at most every
 * PLAYING_SYNC_MS (the caller sends the latest one when that time is up).
 */
function sendNow(previous, next, msSinceSent) {
  if (!previous) return true;
  if (previous.run !== next.run || previous.playing !== next.playing || previous.speed !== next.speed
      || previous.message !== next.message) return true;
  if (previous.seq === next.seq) return false;
  return !next.playing || msSinceSent >= PLAYING_SYNC_MS;
}

function samePosition(a, b) {
  return Boolean(a && b) && ["run", "seq", "playing", "speed", "message"].every((k) => a[k] === b[k]);
}

/** How many of the received events (in seq order) are at or before seq: the player's index. */
function indexAtSeq(events, seq) {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (events[mid].seq <= seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * What a follower's player does with a follow message.
 * follow: {run, seq, playing, speed, message}; here: {run, index, playing, speed, finished};
 * events: what this follower has received.
 * → {navigate: run} when the instructor is on another run; else {wait: true} until the
 * events up to seq have arrived, or {seekTo: index|null, playing, speed, message}.
 */
function followPlan(follow, here, events) {
  if (follow.run !== null && follow.run !== undefined && follow.run !== here.run) return { navigate: follow.run };
  const last = events.length ? events[events.length - 1].seq : 0;
  if (follow.seq > last && !here.finished) return { wait: true };
  const target = indexAtSeq(events, follow.seq);
  const off = Math.abs(here.index - target);
  const seekTo = (follow.playing ? off > PLAYING_DRIFT : off !== 0) ? target : null;
  return { seekTo, playing: follow.playing, speed: follow.speed, message: follow.message || null };
}

/** The follower's run page for a room: the run page in follow mode. */
function followUrl(run, code) {
  return `/runs/${run}/?follow=${encodeURIComponent(code)}`;
}

function socketUrl(path, location) {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

/**
 * Rows of the tally, in the question's order (then any other choice answered):
 * [{choice, count, share (0–1), right}], with the total.
 */
function tallyRows(choices, tally, isRight) {
  const counts = tally || {};
  const order = [...choices, ...Object.keys(counts).filter((c) => !choices.includes(c))];
  const total = order.reduce((sum, c) => sum + (counts[c] || 0), 0);
  const rows = order.map((choice) => {
    const count = counts[choice] || 0;
    return { choice, count, share: total ? count / total : 0, right: Boolean(isRight && isRight(choice)) };
  });
  return { rows, total };
}

function tallyText(row) {
  const pct = Math.round(row.share * 100);
  return `${row.count} (${pct}%)${row.right ? " ✓ right" : ""}`;
}

/** Choices typed one per line (or comma-separated on one line): trimmed, blank and repeated ones left out. */
function parseChoices(text) {
  const parts = String(text).includes("\n") ? String(text).split("\n") : String(text).split(",");
  return [...new Set(parts.map((c) => c.trim()).filter(Boolean))];
}

export {
  followPlan, followUrl, indexAtSeq, parseChoices, PLAYING_DRIFT, PLAYING_SYNC_MS, positionMessage, samePosition,
  sendNow, socketUrl, tallyRows, tallyText,
};

/* The run page's keyboard: one map from a key press to a command, so every key is handled in
   exactly one place (run-page.js runs the command).

   keyCommand is pure: it reads a plain description of the key press (keyContext makes one
   from a KeyboardEvent), which is what the unit tests feed it. */

const PLAYER_KEYS = {
  " ": "play",
  ArrowRight: "forward",
  ArrowLeft: "back",
  Home: "start",
  End: "end",
  "+": "faster",
  "=": "faster", // + without Shift on most layouts
  "-": "slower",
};

/**
 * press: {key, modifier, inText, onControl, onButton, handled} — see keyContext.
 * presenting: whether presentation mode is on (Escape leaves it).
 * Returns "play" | "forward" | "back" | "start" | "end" | "faster" | "slower" | "present" |
 * "leave" | null (not ours: let the browser or the focused control have it).
 */
function keyCommand(press, presenting) {
  if (press.modifier || press.handled) return null;
  if (press.key === "Escape") return presenting && !press.inText ? "leave" : null;
  if (press.key === "f" || press.key === "F") return press.inText ? null : "present";
  // Form controls (the seek slider, the speed menu) keep their own arrows, Home and End.
  if (press.onControl) return null;
  // Space on a focused button, link or log row activates it instead.
  if (press.key === " " && press.onButton) return null;
  return PLAYER_KEYS[press.key] || null;
}

const TEXT_INPUTS = new Set(["text", "search", "email", "number", "password", "tel", "url"]);

function isTextEntry(el) {
  if (!el || !el.closest) return false;
  if (el.closest("textarea, [contenteditable]:not([contenteditable='false'])")) return true;
  const input = el.closest("input");
  return Boolean(input && TEXT_INPUTS.has((input.getAttribute("type") || "text").toLowerCase()));
}

/** The plain description keyCommand reads, from a keydown event. */
function keyContext(event) {
  const target = event.target;
  const closest = (selector) => Boolean(target && target.closest && target.closest(selector));
  return {
    key: event.key,
    modifier: event.altKey || event.ctrlKey || event.metaKey,
    inText: isTextEntry(target),
    onControl: closest("input, select, textarea, [contenteditable]"),
    onButton: closest("button, a, summary, tr[data-seq]"),
    // Something that was open (the message panel) already took this Escape.
    handled: event.defaultPrevented,
  };
}

export { keyCommand, keyContext };

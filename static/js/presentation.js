/* Presentation mode of the run page, for teaching from a projector: body.presenting
   (presentation.css hides the chrome and enlarges what is left), full screen when a user
   gesture allows it, and the URL's ?present=1 so the mode can be bookmarked.

   Full screen needs a user gesture: a page opened with ?present=1 shows the mode at once and
   offers a "Full screen" button in the keys hint. Leaving full screen through the browser
   (its own Escape, F11) keeps the mode; leaving the mode leaves full screen too. */
import { h } from "./dom.js";

const PARAM = "present";
const CLASS = "presenting";

/** Whether a query string (location.search) asks for presentation mode. */
function presentRequested(search) {
  const value = new URLSearchParams(search || "").get(PARAM);
  return value === "1" || value === "true";
}

/** href with present=1 added (on) or removed (off); every other parameter and the hash kept. */
function withPresent(href, on) {
  const url = new URL(href);
  if (on) url.searchParams.set(PARAM, "1");
  else url.searchParams.delete(PARAM);
  return url.href;
}

const HINT_KEYS = [
  ["space", "play / pause"],
  ["← →", "step"],
  ["+ −", "speed"],
  ["Home End", "start, end"],
  ["F", "present"],
  ["Esc", "leave"],
];

class Presentation {
  /**
   * button: the toggle on the page (aria-pressed follows the mode);
   * focusOnEnter: what gets the focus when the button turns the mode on (the play button,
   * so Space plays rather than pressing the toggle again); doc, win: for tests.
   */
  constructor({ button, focusOnEnter, doc = document, win = window }) {
    this.doc = doc;
    this.win = win;
    this.button = button;
    this.focusOnEnter = focusOnEnter;
    // The page's own toggle is hidden while presenting (the player needs the room): the
    // hint in the corner offers leaving, and full screen when the mode came without it.
    this.fullscreenButton = h("button", { type: "button", class: "present-fullscreen", onclick: () => this.requestFullscreen() },
      "⤢ Full screen");
    this.hint = h("aside", { class: "present-keys", "aria-label": "Presentation mode" },
      h("ul", { "aria-label": "Keys" }, HINT_KEYS.map(([key, what]) => h("li", {}, h("kbd", {}, key), ` ${what}`))),
      this.fullscreenButton,
      h("button", { type: "button", class: "present-leave", onclick: () => this.set(false) }, "✕ Leave"));
    doc.body.append(this.hint);
    if (button) {
      button.addEventListener("click", () => {
        this.toggle(true);
        if (this.on && this.focusOnEnter) this.focusOnEnter.focus();
      });
    }
    doc.addEventListener("fullscreenchange", () => this.render());
    this.set(presentRequested(win.location.search), false);
  }

  get on() {
    return this.doc.body.classList.contains(CLASS);
  }

  /** gesture: called from a click or key press, so full screen may be asked for. */
  toggle(gesture) {
    this.set(!this.on, gesture);
  }

  set(on, gesture) {
    this.doc.body.classList.toggle(CLASS, on);
    const url = withPresent(this.win.location.href, on);
    if (url !== this.win.location.href) this.win.history.replaceState(this.win.history.state, "", url);
    if (on && gesture) this.requestFullscreen();
    if (!on && this.doc.fullscreenElement) this.doc.exitFullscreen().catch(() => {});
    this.render();
  }

  requestFullscreen() {
    const root = this.doc.documentElement;
    if (!this.doc.fullscreenEnabled || this.doc.fullscreenElement || !root.requestFullscreen) return;
    // Refused (no gesture, a policy, a browser setting): the mode works without it.
    root.requestFullscreen().catch(() => {});
  }

  render() {
    const on = this.on;
    if (this.button) this.button.setAttribute("aria-pressed", String(on));
    this.hint.hidden = !on;
    this.fullscreenButton.hidden = !this.doc.fullscreenEnabled || Boolean(this.doc.fullscreenElement);
  }
}

export { Presentation, presentRequested, withPresent };

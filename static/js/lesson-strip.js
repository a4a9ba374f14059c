/* The run page in lesson mode (/runs/<id>/?lesson=<slug>&step=<n>): a strip above the player
   with the step's narration; it pauses the player after the first event matching the step's
   pause_at query, asks the question, lets a student on their own answer, and on Reveal plays
   on and shows the truth from the run's own events. Next starts the next step's run.

   It talks to the page through the player (flowRun.player) and the page's "flow:player"
   events; the classroom (classroom.js) gets the question as a "flow:lesson-question" event so
   the instructor can ask the room, and tells this strip "flow:room-reveal". */
import { api } from "./api.js";
import { h } from "./dom.js";
import { fillTemplate, isRight, pauseIndex, questionChoices, startStep, truthOf } from "./lessons.js";

function lessonParams(search) {
  const params = new URLSearchParams(search);
  const slug = params.get("lesson");
  const step = Number(params.get("step") || 1);
  return slug && Number.isInteger(step) && step >= 1 ? { slug, step } : null;
}

class LessonStrip {
  constructor(root, flowRun, lesson, n) {
    this.root = root;
    this.flowRun = flowRun;
    this.player = flowRun.player;
    this.lesson = lesson;
    this.n = n;
    this.step = lesson.steps[n - 1];
    this.question = this.step.question || null;
    this.paused = !this.step.pause_at; // nothing to wait for: the question shows at once
    this.pausedEvent = null;
    this.chosen = null;
    this.revealed = false;
    this.render();
    if (this.paused && this.question) this.ask();
    document.addEventListener("flow:player", () => queueMicrotask(() => this.update()));
    document.addEventListener("flow:room-reveal", () => this.reveal());
    queueMicrotask(() => this.update()); // a finished run may not move again
  }

  render() {
    const { lesson, n, step } = this;
    const last = n >= lesson.steps.length;
    this.status = h("p", { class: "lesson-status", "aria-live": "polite" },
      step.pause_at ? `❚❚ The player will pause after the first event matching ${step.pause_at.query}.` : "");
    this.questionBox = h("div", { class: "lesson-question", hidden: true });
    this.next = h("button", { type: "button", class: "primary", dataset: { lesson: "next" } },
      last ? "✓ Lesson done: all lessons" : `Next: step ${n + 1} ▶`);
    this.error = h("span", { class: "form-error", role: "alert" });
    this.next.addEventListener("click", () => this.goNext());
    this.root.append(
      h("div", { class: "lesson-head" },
        h("p", { class: "lesson-where" }, h("a", { href: `/lessons/${lesson.slug}/` }, lesson.title),
          ` · step ${n} of ${lesson.steps.length}`),
        h("p", { class: "lesson-nav" }, this.error, " ", this.next)),
      h("p", { class: "narration" }, step.narration),
      this.status, this.questionBox,
    );
    this.root.hidden = false;
  }

  /** On every player change: stop at the pause point once, then keep the truth current. */
  update() {
    const state = this.player.state();
    const events = this.player.events;
    if (!this.paused) {
      const at = pauseIndex(events, this.step.pause_at);
      if (at >= 0 && state.index > at) {
        this.paused = true;
        this.pausedEvent = events[at];
        if (state.index !== at + 1) this.player.scrubTo(at + 1);
        else this.player.pause();
        this.status.textContent = `❚❚ Paused after event ${at + 1}: ${this.pausedEvent.kind} of ${this.pausedEvent.message_id || this.pausedEvent.actor}.`;
        if (this.question) this.ask();
      } else if (at < 0 && state.finished && state.atEnd) {
        this.paused = true;
        this.status.textContent = `The run ended without an event matching ${this.step.pause_at.query}.`;
        if (this.question) this.ask();
      }
      return;
    }
    if (this.revealed) this.showTruth();
    else if (this.question && this.question.choices_from) this.renderChoices();
  }

  ask() {
    const text = fillTemplate(this.question.text, this.pausedEvent);
    this.choicesRow = h("div", { class: "choices", role: "group", "aria-label": "Your answer" });
    this.mine = h("p", { class: "your-answer", "aria-live": "polite" }, "Your prediction? Pick one, then reveal.");
    this.revealButton = h("button", { type: "button", dataset: { lesson: "reveal" } }, "◉ Reveal");
    this.revealButton.addEventListener("click", () => this.reveal());
    this.truth = h("p", { class: "truth", "aria-live": "polite" });
    this.questionBox.replaceChildren(h("div", { class: "question-row" }, h("p", { class: "q-text" }, "? ", text),
      this.choicesRow, this.revealButton, this.mine), this.truth);
    this.questionBox.hidden = false;
    this.renderChoices();
    this.asked = { text, choices: questionChoices(this.question, this.player.events) };
    document.dispatchEvent(new CustomEvent("flow:lesson-question", { detail: this.asked }));
  }

  renderChoices() {
    if (!this.choicesRow) return;
    const choices = questionChoices(this.question, this.player.events);
    const shown = [...this.choicesRow.children].map((b) => b.dataset.choice);
    if (shown.join("\n") === choices.join("\n")) return;
    this.choicesRow.replaceChildren(...choices.map((choice) => {
      const button = h("button", { type: "button", class: "choice", dataset: { choice }, "aria-pressed": String(choice === this.chosen) }, choice);
      button.addEventListener("click", () => this.choose(choice));
      return button;
    }));
  }

  choose(choice) {
    if (this.revealed) return;
    this.chosen = choice;
    for (const b of this.choicesRow.children) b.setAttribute("aria-pressed", String(b.dataset.choice === choice));
    this.mine.textContent = `Your prediction: ${choice}.`;
  }

  reveal() {
    if (this.revealed || !this.question) return;
    this.revealed = true;
    this.revealButton.disabled = true;
    this.player.play();
    this.showTruth();
  }

  showTruth() {
    const { answer, evidence } = truthOf(this.question, this.player.events, this.pausedEvent);
    const state = this.player.state();
    const pending = state.finished ? "" : " (the run is still going: this may change)";
    this.truth.textContent = `${answer === null ? "The run has not shown it yet" : `✓ The answer: ${answer}`}`
      + `${evidence ? ` — the run: ${evidence}` : ""}${pending}.`;
    for (const b of this.choicesRow.children) {
      b.classList.toggle("right", isRight(b.dataset.choice, answer));
      b.disabled = true;
    }
    if (this.chosen !== null && answer !== null) {
      this.mine.textContent = `Your prediction: ${this.chosen} — ${isRight(this.chosen, answer) ? "right ✓" : "not this time ✗"}.`;
    }
  }

  async goNext() {
    if (this.n >= this.lesson.steps.length) {
      window.location.assign("/lessons/");
      return;
    }
    this.next.disabled = true;
    this.error.textContent = "";
    try {
      window.location.assign(await startStep(api, this.lesson, this.n + 1));
    } catch (err) {
      this.error.textContent = `✗ Could not start the next step: ${err.message}`;
      this.next.disabled = false;
    }
  }
}

/** Show the strip when the page's URL names a lesson step; a no-op otherwise. */
async function mountLessonStrip(flowRun) {
  const wanted = lessonParams(window.location.search);
  if (!wanted) return null;
  const root = h("section", { id: "lesson-strip", class: "lesson-strip", "aria-label": "Lesson", hidden: true });
  document.getElementById("player").before(root);
  const { ok, data } = await api.request("GET", "/api/lessons/");
  const lesson = ok ? data.find((l) => l.slug === wanted.slug) : null;
  if (!lesson || !lesson.steps[wanted.step - 1]) {
    root.hidden = false;
    root.append(h("p", { class: "form-error" }, `✗ No lesson step ${wanted.slug} #${wanted.step}.`));
    return null;
  }
  const strip = new LessonStrip(root, flowRun, lesson, wanted.step);
  flowRun.lesson = strip;
  return strip;
}

export { lessonParams, mountLessonStrip };

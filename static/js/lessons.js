/* The guided lessons (GET /api/lessons/): pure helpers shared by the Lessons page and the
   run page's lesson strip, plus starting a step's run. The lesson data's shape is in
   flows/lessons.py. */
import { compileQuery } from "./log-query.js";

/** "{message}", "{actor}" or "{<attribute>}" filled from the event the player paused at. */
function fillTemplate(text, ev) {
  return String(text || "").replace(/\{([\w.-]+)\}/g, (whole, name) => {
    if (!ev) return whole;
    if (name === "message") return ev.message_id || whole;
    if (name === "actor") return ev.actor || whole;
    const value = ev.attrs ? ev.attrs[name] : undefined;
    return value === undefined || value === null ? whole : String(value);
  });
}

/** The index of the first event matching pause_at's query, or -1 (none received yet). */
function pauseIndex(events, pauseAt) {
  if (!pauseAt || !pauseAt.query) return -1;
  const test = compileQuery(pauseAt.query);
  return events.findIndex((ev) => test(ev));
}

/** What a reader calls a thing: the part after "kind:" ("queue:billing" → "billing"). */
function shortName(value) {
  const text = String(value);
  const colon = text.indexOf(":");
  return colon >= 0 ? text.slice(colon + 1) : text;
}

const ACTOR_PREFIXES = {
  queues: ["queue:"],
  consumers: ["consumer:", "worker:"],
  subscribers: ["subscriber:"],
  members: ["group:"],
};

/** Choices taken from the run: its queues, consumers, group members, subscribers or partitions. */
function choicesFrom(source, events) {
  const seen = new Set();
  for (const ev of events) {
    if (source === "partitions") {
      const p = ev.attrs && ev.attrs.partition;
      if (p !== undefined && p !== null) seen.add(`partition ${p}`);
      continue;
    }
    // A queue is often only named in attributes (AMQP consumers' assign, routes, deliveries).
    if (source === "queues" && ev.attrs && typeof ev.attrs.queue === "string") seen.add(ev.attrs.queue);
    const prefixes = ACTOR_PREFIXES[source] || [];
    if (ev.actor && prefixes.some((prefix) => ev.actor.startsWith(prefix))) {
      if (source !== "members" || ev.actor.includes("/")) seen.add(shortName(ev.actor));
    }
  }
  return [...seen].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
}

/** The question's choices: typed in the lesson, or taken from the run's events. */
function questionChoices(question, events) {
  if (question.choices && question.choices.length) return question.choices.slice();
  return choicesFrom(question.choices_from, events);
}

/**
 * The truth, from the lesson's answer and/or the run's own events:
 * {answer: string|null, evidence: string|null}. answer_from {count: query} counts the
 * matching events; {values: query, attr} lists the attribute's distinct values.
 */
function truthOf(question, events, pausedEvent) {
  const from = question.answer_from;
  let computed = null;
  let evidence = null;
  if (from && from.count) {
    const query = fillTemplate(from.count, pausedEvent);
    const test = compileQuery(query);
    computed = String(events.filter((ev) => test(ev)).length);
    evidence = `${computed} ${computed === "1" ? "event matches" : "events match"} “${query}”`;
  } else if (from && from.values) {
    const query = fillTemplate(from.values, pausedEvent);
    const test = compileQuery(query);
    const values = new Set();
    for (const ev of events.filter((e) => test(e))) {
      const value = from.attr === "actor" ? ev.actor : ev.attrs && ev.attrs[from.attr];
      if (value !== undefined && value !== null && value !== "") values.add(shortName(value));
    }
    computed = values.size ? [...values].sort().join(", ") : null;
    evidence = computed ? `${from.attr} of “${query}”: ${computed}` : `no event matches “${query}” yet`;
  }
  const answer = question.answer !== undefined ? String(question.answer) : computed;
  return { answer, evidence };
}

/** Whether a choice is (part of) the truth: "billing" is right when the truth is "audit, billing". */
function isRight(choice, answer) {
  if (answer === null || answer === undefined) return false;
  return String(answer).split(", ").includes(String(choice));
}

function stepUrl(runId, slug, n) {
  return `/runs/${runId}/?lesson=${encodeURIComponent(slug)}&step=${n}`;
}

/** Start step n (1-based) of a lesson: resolves to the run page's URL, or rejects with the server's words. */
async function startStep(api, lesson, n) {
  const step = lesson.steps[n - 1];
  if (!step) throw new Error(`${lesson.slug} has no step ${n}`);
  const { ok, data } = await api.startRun(step.workflow, step.params);
  if (!ok) {
    const errors = (data && data.errors) || {};
    throw new Error(Object.entries(errors).map(([k, v]) => `${k}: ${v}`).join("; ") || "the server refused");
  }
  return stepUrl(data.id, lesson.slug, n);
}

export { choicesFrom, fillTemplate, isRight, pauseIndex, questionChoices, shortName, startStep, stepUrl, truthOf };

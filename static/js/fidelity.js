/* What a sampled run's page shows beyond its events (docs/contracts.md, "Fidelity"): which
   mode is on and why, and the per-edge counts and rates of the `flow` frames. Pure: the
   topology and run-page.js draw what these return. */

const WHOLE = "every event listed one by one";
const SAMPLED = "exact counts per edge, a sample of whole journeys and every anomaly listed one by one";

/**
 * The line saying which fidelity mode is on and why.
 * fidelity: RunModel's {mode, why, switched_at_seq, counted}; asked: the run's fidelity param
 * (undefined for a workflow without one). Returns {mode, text}, or null when there is nothing to say.
 */
export function fidelityLine(fidelity, asked) {
  const mode = fidelity && fidelity.why ? fidelity.mode : asked === "sampled" ? "sampled" : "full";
  if (!asked && !(fidelity && fidelity.why)) return null;
  if (mode !== "sampled") {
    const why = fidelity && fidelity.why ? fidelity.why
      : asked === "auto" ? "auto: sampled if the run grows too big or fast to follow" : `fidelity=${asked}`;
    return { mode, text: `Fidelity: full — ${WHOLE} (${why}).` };
  }
  const since = fidelity && fidelity.switched_at_seq > 1 ? ` since event ${fidelity.switched_at_seq}` : "";
  const counted = fidelity && fidelity.counted ? ` · ${fidelity.counted.toLocaleString("en")} events counted, not listed` : "";
  const why = fidelity && fidelity.why ? ` (${fidelity.why})` : "";
  return { mode, text: `Fidelity: sampled${since}${why} — ${SAMPLED}${counted}.` };
}

/**
 * A flow frame's edges with their rate: [{from, to, kind, count, perSecond}], the edges
 * without a known source (from "") left out of the drawing but not of the counts.
 */
export function edgeRates(attrs) {
  const seconds = Number(attrs && attrs.window_ms) / 1000;
  return ((attrs && attrs.edges) || []).map((edge) => {
    const count = Math.trunc(Number(edge.count)) || 0;
    return { from: edge.from || "", to: edge.to, kind: edge.kind, count, perSecond: seconds > 0 ? count / seconds : null };
  });
}

/** "1.2k/s", "85/s", "0.5/s": a rate short enough for an edge label. */
export function rateText(perSecond) {
  if (perSecond === null || perSecond === undefined || !Number.isFinite(perSecond)) return "";
  if (perSecond >= 1000) return `${(perSecond / 1000).toFixed(perSecond >= 10000 ? 0 : 1)}k/s`;
  return `${perSecond >= 10 ? Math.round(perSecond) : perSecond.toFixed(1)}/s`;
}

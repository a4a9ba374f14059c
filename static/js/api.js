/* The JSON API (docs/contracts.md, "HTTP API"): fetch with the CSRF token from the csrftoken cookie. */
function csrfToken() {
  const match = document.cookie.split(";").map((c) => c.trim()).find((c) => c.startsWith("csrftoken="));
  return match ? decodeURIComponent(match.slice("csrftoken=".length)) : "";
}

/** Resolves to {status, ok, data}; rejects only when the server could not be reached. */
async function request(method, url, body) {
  const init = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.headers["X-CSRFToken"] = csrfToken();
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  let data = null;
  try {
    data = await response.json();
  } catch (e) {
    data = { errors: { server: `HTTP ${response.status} without a JSON body` } };
  }
  return { status: response.status, ok: response.ok, data };
}

export const api = {
  csrfToken,
  request,
  workflows: () => request("GET", "/api/workflows/"),
  startRun: (workflow, params) => request("POST", "/api/runs/", { workflow, params }),
  run: (id) => request("GET", `/api/runs/${id}/`),
  result: (id) => request("GET", `/api/runs/${id}/result/`),
  events: (id, after, limit) => request("GET", `/api/runs/${id}/events/?after=${after}&limit=${limit || 1000}`),
  actions: (id) => request("GET", `/api/runs/${id}/actions/`),
  action: (id, action, target, params) =>
    request("POST", `/api/runs/${id}/actions/`, { action, target: target || "", ...(params ? { params } : {}) }),
  health: () => request("GET", "/api/health/"),
};

/* "Run again" on the run page: the same workflow with the same parameters, then the new run's
   page. The parameters come from the page's boot data (#run-boot), i.e. as the server stored them. */
import { api } from "./api.js";

/** The sentence to show when the server refuses: its messages per field, or the status. */
function refusal(status, data) {
  const errors = (data && data.errors) || {};
  const parts = Object.entries(errors).map(([field, message]) => `${field}: ${message}`);
  return `✗ Could not start it again (HTTP ${status})${parts.length ? `: ${parts.join("; ")}` : ""}`;
}

function wire() {
  const button = document.getElementById("run-again");
  const boot = document.getElementById("run-boot");
  if (!button || !boot) return;
  const { run } = JSON.parse(boot.textContent);
  const said = document.getElementById("run-again-error");
  button.addEventListener("click", async () => {
    button.disabled = true;
    said.textContent = "";
    try {
      const { status, data } = await api.startRun(run.workflow, run.params);
      if (status === 201) {
        window.location.assign(data.page || `/runs/${data.id}/`);
        return;
      }
      said.textContent = refusal(status, data);
    } catch (e) {
      said.textContent = "✗ The dashboard server is not reachable";
    }
    button.disabled = false;
  });
}

wire();

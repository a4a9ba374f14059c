/* Entry of /lessons/<slug>/: "Start this step" starts the step's run and opens it in lesson mode. */
import { api } from "./api.js";
import "./health.js";
import { startStep } from "./lessons.js";

const lesson = JSON.parse(document.getElementById("lesson-boot").textContent);

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-start-step]");
  if (!button) return;
  const said = button.parentElement.querySelector("[data-step-error]");
  button.disabled = true;
  said.textContent = "";
  try {
    window.location.assign(await startStep(api, lesson, Number(button.dataset.startStep)));
  } catch (err) {
    said.textContent = `✗ Could not start the run: ${err.message}`;
    button.disabled = false;
  }
});

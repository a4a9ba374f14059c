/* The Runs page: the filter form applies as soon as a choice changes. It is a plain GET
   form, so the filter lives in the URL (shareable, Back works) and works without scripts. */
import "./health.js";

const form = document.getElementById("runs-filter");
if (form) {
  form.addEventListener("change", () => form.requestSubmit());
  // Empty choices stay out of the URL: /runs/?workflow=mqtt-qos, not ?workflow=mqtt-qos&state=.
  form.addEventListener("formdata", (event) => {
    for (const [name, value] of [...event.formData.entries()]) if (value === "") event.formData.delete(name);
  });
}

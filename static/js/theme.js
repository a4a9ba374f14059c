/* Light and dark theme. The one classic script: loaded in <head> without defer (a module
   would run after the first paint) so the page never flashes the wrong theme. The choice
   is remembered, the default follows prefers-color-scheme. */
(function () {
  "use strict";
  const KEY = "flow-theme";
  const root = document.documentElement;

  function stored() {
    try { return localStorage.getItem(KEY); } catch (e) { return null; }
  }

  function preferred() {
    const saved = stored();
    if (saved === "light" || saved === "dark") return saved;
    return window.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  function apply(theme) {
    root.dataset.theme = theme;
    const button = document.getElementById("theme-toggle");
    if (button) {
      const other = theme === "dark" ? "light" : "dark";
      button.textContent = theme === "dark" ? "☀ Light theme" : "☾ Dark theme";
      button.setAttribute("aria-label", `Switch to the ${other} theme`);
    }
    // Charts read colours from CSS variables and redraw on this.
    window.dispatchEvent(new CustomEvent("themechange", { detail: { theme } }));
  }

  function set(theme) {
    try { localStorage.setItem(KEY, theme); } catch (e) { /* private mode: not remembered */ }
    apply(theme);
  }

  root.dataset.theme = preferred();

  document.addEventListener("DOMContentLoaded", function () {
    apply(root.dataset.theme);
    const button = document.getElementById("theme-toggle");
    if (button) button.addEventListener("click", () => set(root.dataset.theme === "dark" ? "light" : "dark"));
  });
})();

/* The workflow panel registry. A workflow's own module (static/js/panels/<slug>.js) calls
   FlowPanels.register(slug, panel); the run page then drives it. See README.md. */
(function () {
  "use strict";
  const panels = new Map();

  window.FlowPanels = {
    register(slug, panel) {
      if (typeof slug !== "string" || !slug) throw new TypeError("FlowPanels.register needs a workflow slug");
      if (!panel || typeof panel !== "object") throw new TypeError(`FlowPanels.register(${slug}) needs a panel object`);
      panels.set(slug, panel);
    },
    get(slug) {
      return panels.get(slug) || null;
    },
    slugs() {
      return [...panels.keys()];
    },
  };
})();

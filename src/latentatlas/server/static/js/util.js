// Small helpers shared by the views.
// round-off below 1e-12 (a bootstrap bound of 1.4e-17, say) is shown as 0
export const fmt = (v, d = 3) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Math.abs(v) < 1e-12 ? "0" : Number(v).toPrecision(d));
export const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
export const $ = (id) => document.getElementById(id);
// Plotly reads a few HTML-like tags in its text fields; text from a run's files gets its angle brackets swapped
export const plain = (s) => String(s ?? "").replace(/</g, "‹").replace(/>/g, "›");
// A lab's page section, created on first use inside <main> from the lab's own markup (trusted, static).
export function section(id, className, html) {
  let el = document.getElementById(id);
  if (!el) {
    el = document.createElement("section");
    el.id = id;
    el.className = className;
    el.hidden = true;
    el.innerHTML = html;
    document.getElementById("main").append(el);
  }
  return el;
}

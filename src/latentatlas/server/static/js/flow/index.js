// The flow lab in the explorer: the flow view (samples moving from noise to data under any sampler, the
// learned and exact velocity fields, density contours, followed trajectories) and the metrics tab's charts.
// app.js mounts it from LABS.
import * as api from "../api.js";
import { FONT, PLOT_CONFIG } from "../metrics.js";
import { plain } from "../util.js";
import { PALETTE } from "./draw.js";
import * as view from "./view.js";
import * as dit from "./dit.js";
export { render as paint } from "./paint.js";  // painting a target and training on it (?view=paint, no run needed)

export const KINDS = ["flow", dit.KIND, "factor_classifier"];
export const tabs = (kind) => (kind === dit.KIND ? dit.TABS : kind === "factor_classifier" ? [["metrics", "Metrics"]]
  : [["flow", "Flow"], ["metrics", "Metrics"]]);

export async function load(ctx) {
  if (ctx.kind === dit.KIND) { await dit.load(ctx); return; }
  if (ctx.kind === "factor_classifier") return;
  ctx.flow = await api.json(`${api.runPath(ctx.run)}/flow`);
}

export async function render(ctx, v) {
  if (ctx.kind === dit.KIND) return dit.render(ctx, v);
  await view.render(ctx);
}

export const metricsSubject = (m) => (m.kind === dit.KIND ? dit.metricsSubject(m) : `${m.n ?? "?"} samples against fresh draws of the target`);

// The metrics tab's charts: the training loss, and the energy distance to the target against the NFE for
// every sampler (the model's field solid, the exact field dotted where the target is a mixture), with the
// noise floor of that distance at this sample size.
export async function charts(ctx, m, history, Plotly) {
  if (ctx.kind === dit.KIND) return dit.charts(ctx, m, history, Plotly);
  if (ctx.kind === "factor_classifier") return;
  const rows = history.filter((r) => typeof r.loss === "number");
  Plotly.newPlot("curves", [{ type: "scatter", mode: rows.length > 1 ? "lines" : "markers", x: rows.map((r) => r.step), y: rows.map((r) => r.loss), name: "loss" }],
    { title: { text: "training loss (squared error summed over coordinates)", font: { size: 13 } }, margin: { l: 55, r: 10, t: 36, b: 40 }, font: FONT,
      xaxis: { title: { text: "step" } }, yaxis: { type: "log" } }, PLOT_CONFIG);
  const table = (m.samplers || []).filter((r) => r && r.energy_distance && typeof r.energy_distance.value === "number");
  if (!table.length) return;
  const traces = [];
  const names = [...new Set(table.map((r) => String(r.sampler)))];
  for (const field of ["model", "exact"]) {
    for (const [k, s] of names.entries()) {
      const pts = table.filter((r) => r.field === field && String(r.sampler) === s).sort((a, b) => a.nfe - b.nfe);
      if (!pts.length) continue;
      traces.push({ type: "scatter", mode: "lines+markers", name: plain(`${s}${field === "exact" ? " (exact field)" : ""}`), x: pts.map((r) => r.nfe),
        y: pts.map((r) => Math.max(r.energy_distance.value, 1e-6)), line: { dash: field === "exact" ? "dot" : "solid", color: PALETTE[k % PALETTE.length] },
        marker: { color: PALETTE[k % PALETTE.length] }, legendgroup: plain(s) });
    }
  }
  const floor = m.noise_floor && typeof m.noise_floor.quantile === "number" ? m.noise_floor.quantile : null;
  Plotly.newPlot("kl-chart", traces, {
    title: { text: "energy distance to the target against NFE", font: { size: 13 } }, margin: { l: 55, r: 10, t: 36, b: 40 }, font: FONT,
    xaxis: { title: { text: "network evaluations (counted)" }, type: "log" }, yaxis: { type: "log", title: { text: "energy distance" } },
    legend: { font: { size: 10 } },
    shapes: floor === null ? [] : [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: floor, y1: floor, line: { color: "#888", dash: "dash", width: 1 } }],
    annotations: floor === null ? [] : [{ xref: "paper", x: 0, y: Math.log10(Math.max(floor, 1e-6)), text: "noise floor at this n", showarrow: false, xanchor: "left", yanchor: "bottom", font: { size: 10, color: "#666" } }],
  }, PLOT_CONFIG);
}

// The SAE lab in the explorer: feature list and pages, the text probe, steering, its metrics charts,
// and a sweep's frontier. app.js mounts it from LABS.
import { FONT, PLOT_CONFIG } from "../metrics.js";
import { section } from "../util.js";
import { sweepView } from "./sweep.js";
import * as views from "./views.js";

export const KINDS = ["sae", "sae_sweep"];
export const tabs = (kind) => (kind === "sae_sweep" ? [["metrics", "Frontier"]]
  : [["features", "Features"], ["probe", "Probe"], ["steer", "Steer"], ["metrics", "Metrics"]]);

const SECTIONS = {
  features: ["sae-view", "split sae", `<div id="sae-left" class="left"></div><div id="sae-right" class="right panel"></div>`],
  probe: ["probe-view", "full", ""],
  steer: ["steer-view", "full", ""],
};

export async function load() {}

export async function render(ctx, view) {
  const [id, cls, html] = SECTIONS[view];
  section(id, cls, html).hidden = false;
  await { features: views.featuresView, probe: views.probeView, steer: views.steerView }[view](ctx);
}

export async function metricsView(ctx, m, el) {
  if (m.kind !== "sae_sweep") return false;
  await sweepView(ctx, m, el);
  return true;
}

export const metricsSubject = (m) =>
  `${Number(m.n).toLocaleString()} ${m.held_out === true ? "held-out " : m.held_out === false ? "training " : ""}tokens of ${m.activations}`;

export async function charts(ctx, m, history, Plotly) {
  if (m.density_histogram) {
    const h = m.density_histogram, e = h.log10_density_edges;
    Plotly.newPlot("kl-chart", [{ type: "bar", x: h.counts.map((_, i) => (e[i] + e[i + 1]) / 2), y: h.counts, width: e[1] - e[0], marker: { color: "#2f6690" } }],
      { title: { text: `feature density (log10 firing rate); ${h.dead} dead`, font: { size: 13 } }, margin: { l: 40, r: 10, t: 36, b: 30 }, font: FONT,
        xaxis: { title: { text: "log10 density" } } }, PLOT_CONFIG);
  }
  const series = [["fvu", "y"], ["dead", "y"], ["l0", "y2"]].filter(([k]) => history.some((r) => k in r));
  Plotly.newPlot("curves", series.map(([k, axis]) => ({ type: "scatter", mode: "lines", name: k, yaxis: axis, x: history.map((r) => r.step), y: history.map((r) => r[k]) })),
    { title: { text: "training curves", font: { size: 13 } }, yaxis: { title: { text: "fraction" }, rangemode: "tozero" },
      yaxis2: { title: { text: "L0" }, overlaying: "y", side: "right", rangemode: "tozero" }, margin: { l: 50, r: 50, t: 36, b: 30 }, font: FONT,
      legend: { orientation: "h", x: 0, y: -0.15 } }, PLOT_CONFIG);
}

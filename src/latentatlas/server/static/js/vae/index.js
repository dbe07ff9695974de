// The VAE lab in the explorer: the latent map with the inspector, traversal and interpolation panels,
// and its metrics charts. app.js mounts it from LABS.
import * as api from "../api.js";
import * as state from "../state.js";
import { FONT, PLOT_CONFIG } from "../metrics.js";
import { $, section } from "../util.js";
import * as mapView from "./map.js";
import * as panels from "./panels.js";

export const KINDS = ["ae", "vae", "beta_vae", "beta_tcvae", "embeddings"];
// imported embeddings have no decoder: the map and the metrics view (their notes), no traversal
export const tabs = (kind) => (kind === "embeddings" ? [["map", "Map"], ["metrics", "Metrics"]]
  : [["map", "Map"], ["traverse", "Traverse"], ["interp", "Interpolate"], ["metrics", "Metrics"]]);

const EXPLORE = `
  <div class="left">
    <div class="map-controls">
      <label>projection <select id="proj-select"><option>pca</option><option>umap</option><option>tsne</option></select></label>
      <span id="proj-params">
        <label data-for="umap">neighbours <input id="proj-nn" type="number" min="2" max="200" step="1" placeholder="15" style="width:60px"></label>
        <label data-for="umap">min dist <input id="proj-md" type="number" min="0" max="1" step="0.05" placeholder="0.1" style="width:60px"></label>
        <label data-for="tsne">perplexity <input id="proj-pp" type="number" min="2" max="100" step="1" placeholder="30" style="width:60px"></label>
        <label data-for="umap tsne">metric <select id="proj-pm"><option value="">euclidean</option><option value="cosine">cosine</option></select></label>
      </span>
      <label>colour <select id="color-select"></select></label>
      <label>filter <input id="map-filter" type="search" placeholder="shape = heart and scale > 2" style="width:220px"></label>
      <span id="map-status" class="muted"></span>
      <span id="map-legend" class="legend"></span>
    </div>
    <div id="map"></div>
    <img id="hover-thumb" alt="" hidden>
    <div id="hover-info" class="hover-info" hidden></div>
    <p class="muted map-hint">drag: pan · wheel: zoom · double-click: reset · shift-drag: lasso</p>
  </div>
  <div class="right">
    <section id="lasso-panel" class="panel" hidden></section>
    <section id="inspect-panel" class="panel" hidden></section>
    <section id="neighbours-panel" class="panel" hidden></section>
    <section id="traverse-panel" class="panel" hidden></section>
    <section id="interp-panel" class="panel" hidden></section>
  </div>`;

function explore() {
  const fresh = !document.getElementById("explore-view");
  const el = section("explore-view", "split", EXPLORE);
  if (fresh) {
    $("proj-select").addEventListener("change", (e) => state.set({ proj: e.target.value }));
    $("color-select").addEventListener("change", (e) => state.set({ color: e.target.value }));
    $("map-filter").addEventListener("change", (e) => state.set({ filter: e.target.value || null }));
    // a projection's settings: a new value is a new projection (computed once in the background, then kept)
    for (const [id, keyName] of [["proj-nn", "nn"], ["proj-md", "md"], ["proj-pp", "pp"], ["proj-pm", "pm"]]) {
      $(id).addEventListener("change", (e) => state.set({ [keyName]: e.target.value || null }));
    }
  }
  return el;
}

export async function load(ctx) {
  if (!ctx.info.has_latents) throw new Error(`run ${ctx.run} has no stored latents yet; run \`latentatlas eval ${ctx.run}\``);
  // Everything per row travels as float32 binary, fetched when first needed: the projection for the map,
  // one column to colour by, and the latent means (N×D, the largest) only to colour by a latent dim.
  const latents = await api.json(`${api.runPath(ctx.run)}/latents/meta`);
  latents.values = {};
  const factorCols = latents.columns.filter((c) => !["index", "recon_error"].includes(c));
  Object.assign(ctx, { latents, mu: null, defaultColor: factorCols[0] || "recon_error", path: null, chosen: null, lassoPoly: null,
                       neighbourRows: null });
  ctx.onLasso = (rows, poly) => { ctx.chosen = rows; ctx.lassoPoly = poly; panels.lasso(ctx); mapView.draw(ctx); };
  explore();
  // the per-row columns the hover, the filter and the lasso summary read: binary, once
  mapView.loadColumns(ctx);
  const colorSel = $("color-select");
  colorSel.replaceChildren(...mapView.colorOptions(latents).map((name) => new Option(name, name)));
}

export async function render(ctx, view) {
  explore().hidden = false;
  const proj = state.get("proj", "pca");
  $("proj-select").value = proj;
  for (const label of $("proj-params").querySelectorAll("label")) label.hidden = !label.dataset.for.split(" ").includes(proj);
  $("proj-nn").value = state.get("nn", ""); $("proj-md").value = state.get("md", ""); $("proj-pp").value = state.get("pp", "");
  $("proj-pm").value = state.get("pm", "");
  $("color-select").value = state.get("color") || ctx.defaultColor;
  $("inspect-panel").hidden = view !== "map";
  $("neighbours-panel").hidden = view !== "map";
  $("lasso-panel").hidden = !ctx.chosen;
  $("traverse-panel").hidden = view !== "traverse";
  $("interp-panel").hidden = view !== "interp";
  ctx.path = null;
  if (view !== "traverse" && window.latentatlas.map) window.latentatlas.map.setMarks({ traversed: null });
  if (view === "interp") ctx.path = await panels.interp(ctx);
  const filter = state.get("filter", "");
  $("map-filter").value = filter;
  try {
    mapView.scatterOf(ctx).mask = await mapView.filterMask(ctx, filter);
    $("map-filter").setCustomValidity("");
    $("map-filter").title = "";
  } catch (e) {
    mapView.scatterOf(ctx).mask = null;
    $("map-filter").setCustomValidity(e.message);
    $("map-filter").title = e.message;
  }
  if (view === "map") ctx.neighbourRows = await panels.neighbours(ctx);
  else ctx.neighbourRows = null;
  await mapView.draw(ctx);
  if (view === "map") await panels.inspect(ctx);
  if (view === "traverse") await panels.traverse(ctx);
}

export const metricsSubject = (m) => `${m.n} samples`;

export async function charts(ctx, m, history, Plotly) {
  if (m.kl_per_dim) {
    const order = m.dims_by_kl;
    Plotly.newPlot("kl-chart", [{ type: "bar", x: order.map((d) => `z${Number(d)}`), y: order.map((d) => m.kl_per_dim[d]), marker: { color: "#2f6690" } }],
      { title: { text: "KL per dim (nats)", font: { size: 13 } }, margin: { l: 40, r: 10, t: 36, b: 30 }, font: FONT }, PLOT_CONFIG);
  }
  const keys = ["loss", "recon", "kl", "tc"].filter((k) => history.some((r) => k in r));
  Plotly.newPlot("curves", keys.map((k) => ({ type: "scatter", mode: "lines", name: k, x: history.map((r) => r.step), y: history.map((r) => r[k]) })),
    { title: { text: "training curves", font: { size: 13 } }, yaxis: { type: "log" }, margin: { l: 50, r: 10, t: 36, b: keys.includes("tc") ? 60 : 30 }, font: FONT,
      // the β-TCVAE's terms are estimates on each minibatch of 64, biased upwards by up to several nats (docs/metrics.md)
      annotations: keys.includes("tc") ? [{ text: "tc: minibatch estimate on batches of 64, shifted by +(D−1)·log N and biased upwards by up to several nats; eval's total_correlation is the TC to report",
        xref: "paper", yref: "paper", x: 0, y: -0.28, showarrow: false, xanchor: "left", font: { size: 10, color: "#777" } }] : [] }, PLOT_CONFIG);
}

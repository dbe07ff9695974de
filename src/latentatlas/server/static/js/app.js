// latentatlas explorer: routes between views, loads a run once, keeps every choice in the URL.
import * as api from "./api.js";
import * as state from "./state.js";
import * as mapView from "./map.js";
import * as panels from "./panels.js";
import * as sae from "./sae.js";
import { $ } from "./util.js";

let ctx = null;
// the views each kind of run has, in tab order
const TABS = {
  vae: [["map", "Map"], ["traverse", "Traverse"], ["interp", "Interpolate"], ["metrics", "Metrics"]],
  sae: [["features", "Features"], ["probe", "Probe"], ["steer", "Steer"], ["metrics", "Metrics"]],
  sae_sweep: [["metrics", "Frontier"]],
};
const SECTIONS = ["runs-view", "metrics-view", "explore-view", "sae-view", "probe-view", "steer-view"];

function showError(err) {
  const box = $("error");
  box.textContent = err && err.message ? err.message : String(err);
  box.hidden = false;
  console.error(err);
  setTimeout(() => { box.hidden = true; }, 8000);
}

async function loadRun(run) {
  if (ctx && ctx.run === run) return ctx;
  const info = await api.json(api.runPath(run));
  const kind = info.config.kind;
  if (kind === "sae" || kind === "sae_sweep") {
    ctx = { run, info, family: kind, select };
    return ctx;
  }
  if (!info.has_latents) throw new Error(`run ${run} has no stored latents yet; run \`latentatlas eval ${run}\``);
  // Everything per row travels as float32 binary, fetched when first needed: the projection for the map,
  // one column to colour by, and the latent means (N×D, the largest) only to colour by a latent dim.
  const latents = await api.json(`${api.runPath(run)}/latents/meta`);
  latents.values = {};
  const factorCols = latents.columns.filter((c) => !["index", "recon_error"].includes(c));
  ctx = { run, info, family: "vae", latents, mu: null, defaultColor: factorCols[0] || "recon_error", path: null, select };
  const colorSel = $("color-select");
  colorSel.innerHTML = mapView.colorOptions(latents).map((o) => `<option>${o}</option>`).join("");
  return ctx;
}

function select(row) {
  const view = state.get("view", "map");
  if (view === "interp") state.set({ a: state.get("b", state.get("sel")), b: row, sel: row });
  else state.set({ sel: row });
}
window.latentatlas = { select, state };

function showTabs(family, view) {
  const nav = $("tabs");
  const want = (TABS[family] || []).map(([v, label]) => `<a data-view="${v}">${label}</a>`).join("");
  if (nav.dataset.family !== family) {
    nav.innerHTML = want;
    nav.dataset.family = family;
    for (const a of nav.querySelectorAll("a")) a.addEventListener("click", () => state.set({ view: a.dataset.view }, { push: true }));
  }
  for (const a of nav.querySelectorAll("a")) a.classList.toggle("active", a.dataset.view === view);
}

function show(section) {
  for (const id of SECTIONS) $(id).hidden = id !== section;
}

async function render() {
  const run = state.get("run");
  delete document.body.dataset.ready;
  $("run-name").textContent = run || "";
  $("tabs").hidden = !run;
  if (!run) {
    show("runs-view");
    await panels.runsView();
    document.body.dataset.ready = "runs";
    return;
  }
  const c = await loadRun(run);
  const views = (TABS[c.family] || []).map(([v]) => v);
  const view = views.includes(state.get("view")) ? state.get("view") : views[0];
  showTabs(c.family, view);
  if (view === "metrics") { show("metrics-view"); await panels.metricsView(c); document.body.dataset.ready = view; return; }
  if (c.family === "sae") {
    const section = { features: "sae-view", probe: "probe-view", steer: "steer-view" }[view];
    show(section);
    await { features: sae.featuresView, probe: sae.probeView, steer: sae.steerView }[view](c);
    document.body.dataset.ready = view;
    return;
  }
  show("explore-view");
  $("proj-select").value = state.get("proj", "pca");
  $("color-select").value = state.get("color") || c.defaultColor;
  $("inspect-panel").hidden = view !== "map";
  $("traverse-panel").hidden = view !== "traverse";
  $("interp-panel").hidden = view !== "interp";
  c.path = null;
  if (view === "interp") c.path = await panels.interp(c);
  await mapView.draw(c);
  if (view === "map") await panels.inspect(c);
  if (view === "traverse") await panels.traverse(c);
  document.body.dataset.ready = view;
}

let queued = null;
function rerender() {
  // coalesce bursts of state changes into one render
  if (queued) return;
  queued = Promise.resolve().then(async () => {
    queued = null;
    try { await render(); } catch (e) { showError(e); }
  });
}

// the traversal keeps its slider positions in `t` for sharing; they need no re-render
state.onChange((changes) => { if (!Object.keys(changes).every((k) => k === "t")) rerender(); });
$("proj-select").addEventListener("change", (e) => state.set({ proj: e.target.value }));
$("color-select").addEventListener("change", (e) => state.set({ color: e.target.value }));
rerender();

// latentatlas explorer: routes between views, loads a run once, keeps every choice in the URL.
import * as api from "./api.js";
import * as state from "./state.js";
import * as mapView from "./map.js";
import * as panels from "./panels.js";

const $ = (id) => document.getElementById(id);
let ctx = null;

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
  if (!info.has_latents) throw new Error(`run ${run} has no stored latents yet; run \`latentatlas eval ${run}\``);
  // Everything per row travels as float32 binary, fetched when first needed: the projection for the map,
  // one column to colour by, and the latent means (N×D, the largest) only to colour by a latent dim.
  const latents = await api.json(`${api.runPath(run)}/latents/meta`);
  latents.values = {};
  const factorCols = latents.columns.filter((c) => !["index", "recon_error"].includes(c));
  ctx = { run, info, latents, mu: null, defaultColor: factorCols[0] || "recon_error", path: null, select };
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

async function render() {
  const run = state.get("run");
  const view = run ? state.get("view", "map") : "runs";
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.view === view);
  $("tabs").hidden = !run;
  $("run-name").textContent = run || "";
  $("runs-view").hidden = view !== "runs";
  $("metrics-view").hidden = view !== "metrics";
  $("explore-view").hidden = !["map", "traverse", "interp"].includes(view);
  delete document.body.dataset.ready;
  if (view === "runs") { await panels.runsView(); document.body.dataset.ready = view; return; }
  const c = await loadRun(run);
  if (view === "metrics") { await panels.metricsView(c); document.body.dataset.ready = view; return; }
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
for (const a of document.querySelectorAll("#tabs a")) a.addEventListener("click", () => state.set({ view: a.dataset.view }, { push: true }));
$("proj-select").addEventListener("change", (e) => state.set({ proj: e.target.value }));
$("color-select").addEventListener("change", (e) => state.set({ color: e.target.value }));
rerender();

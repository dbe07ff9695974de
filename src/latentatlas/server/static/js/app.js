// latentatlas explorer: the shell. Routes between views, loads a run once, keeps every choice in the URL;
// each lab (static/js/<lab>/index.js) draws its own views. A new lab is one import and one entry in LABS.
import * as api from "./api.js";
import * as state from "./state.js";
import { metricsView } from "./metrics.js";
import { runsView } from "./runs.js";
import { $ } from "./util.js";
import * as vae from "./vae/index.js";
import * as sae from "./sae/index.js";
import * as attention from "./attention/index.js";
import * as flow from "./flow/index.js";
import * as graph from "./attention/graph.js";

const LABS = [vae, sae, attention, flow];

let ctx = null;

const labOf = (kind) => LABS.find((l) => l.KINDS.includes(kind)) || null;
// the view a run opens in, by its kind
const firstView = (kind) => { const lab = labOf(kind); return lab ? lab.tabs(kind)[0][0] : "metrics"; };
const tabsOf = (kind) => { const lab = labOf(kind); return lab ? lab.tabs(kind) : [["metrics", "Metrics"]]; };
// any run that holds a module graph (`latentatlas attention graph RUN`, whatever its lab) gets a tab for it, before Metrics
const tabsOfRun = (c) => (c.graph ? [...tabsOf(c.kind).filter(([v]) => v !== "metrics"), ["graph", "Module graph"], ...tabsOf(c.kind).filter(([v]) => v === "metrics")] : tabsOf(c.kind));

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
  const kind = String(info.config.kind);
  const next = { run, info, kind, lab: labOf(kind), select };
  if (next.lab) await next.lab.load(next);
  next.graph = await graph.available(run);
  ctx = next;
  return ctx;
}

function select(row) {
  const view = state.get("view", "map");
  if (view === "interp") state.set({ a: state.get("b", state.get("sel")), b: row, sel: row });
  else state.set({ sel: row });
}
window.latentatlas = { select, state };

function showTabs(c, view) {
  const nav = $("tabs");
  const kind = `${c.kind}${c.graph ? "+graph" : ""}`;
  if (nav.dataset.kind !== kind) {
    nav.replaceChildren(...tabsOfRun(c).map(([v, label]) => {
      const a = document.createElement("a");
      a.dataset.view = v;
      a.textContent = label;
      a.addEventListener("click", () => state.set({ view: v }, { push: true }));
      return a;
    }));
    nav.dataset.kind = kind;
  }
  for (const a of nav.querySelectorAll("a")) a.classList.toggle("active", a.dataset.view === view);
}

function hideAll() {
  for (const el of document.querySelectorAll("#main > section")) el.hidden = true;
}

async function render() {
  const run = state.get("run");
  delete document.body.dataset.ready;
  $("run-name").textContent = run || "";
  $("tabs").hidden = !run;
  hideAll();
  if (!run && state.get("view") === "paint") { await flow.paint(); document.body.dataset.ready = "paint"; return; }  // the flow lab's page that needs no run
  if (!run) {
    $("runs-view").hidden = false;
    await runsView(firstView);
    document.body.dataset.ready = "runs";
    return;
  }
  const c = await loadRun(run);
  const views = tabsOfRun(c).map(([v]) => v);
  const view = views.includes(state.get("view")) ? state.get("view") : views[0];
  showTabs(c, view);
  if (view === "metrics") {
    $("metrics-view").hidden = false;
    await metricsView(c, c.lab || {});
  } else if (view === "graph") {
    await graph.render(c);
  } else {
    await c.lab.render(c, view);
  }
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

// keys a view keeps in the URL for sharing while it redraws itself (the traversal's slider positions, the
// head view's scroll offsets): changing them needs no re-render
const QUIET = new Set(["t", "q0", "k0"]);
state.onChange((changes) => { if (!Object.keys(changes).every((k) => QUIET.has(k))) rerender(); });
rerender();

// The flow view: a canvas showing, at the scrubbed time t, the samples of a sampler (their positions
// interpolated between the states it recorded), the velocity field as arrows (the model's, the exact one
// for a Gaussian mixture, or their difference), density contours of the target or of p_t, and the whole
// path of every point the user follows. Every array arrives as float32 binary; the contours and arrows are
// painted into layers when their data arrives, so a step of the scrubber copies two layers and draws the
// points (a few milliseconds for 2,000 samples). The state lives in the URL (t, sampler, nfe, field,
// contours, follow; n and seed too); text from the atlas is set as textContent, never as markup.
//
// Compare (compare=OTHER in the URL): a second flow run drawn beside the first by the same code (a "pane"
// each: its run, canvas, trajectories and layers), under the one scrubber, sampler, NFE, field and contour
// choice. Both start from the same noise (the noise is a function of n and seed), so a followed index is
// the same starting point in both panes.
import * as api from "../api.js";
import * as state from "../state.js";
import { section } from "../util.js";
import { FIELD_COLOURS, PALETTE, frame, layer, massLevels, paintArrows, paintAxes, paintDensity, speedScale } from "./draw.js";

const FIELD_GRID = 64, ARROW_STEP = 2, DENSITY_GRID = 96;
const T_STEP = 0.02;  // fields and densities of p_t are fetched (and kept) on this grid of times
const PLAY_SECONDS = 4;  // one sweep from noise to data
const PADS = { left: 34, top: 8, right: 8, bottom: 24 };  // room for the ticks' labels on the left and below
const MAX_FOLLOW = 24;
const NFE_PRESETS = [1, 2, 3, 4, 6, 8, 12, 16, 20, 30, 50, 100, 200, 500, 1000];
const FIELD_NAMES = { none: "none", model: "model", exact: "exact", diff: "model − exact" };
const CONTOURS = { off: "off", target: "target (t = 1)", pt: "p_t at t" };

let V = null;  // the view on screen: the shared controls and time, and its panes (the run, and the one compared)

// an element with properties and children (text goes in as textContent)
const el = (tag, props = {}, ...kids) => { const e = Object.assign(document.createElement(tag), props); e.append(...kids); return e; };

// -- fetching ---------------------------------------------------------------------------------------------
const arrays = new Map();
function f32(path, keep = 240) {
  if (!arrays.has(path)) {
    while (arrays.size >= keep) arrays.delete(arrays.keys().next().value);
    arrays.set(path, (async () => {
      const res = await fetch(path);
      if (!res.ok) {
        let detail = `${res.status} ${res.statusText}`;
        try { detail = (await res.json()).detail || detail; } catch (_) { /* not JSON */ }
        throw new Error(detail);
      }
      return { data: new Float32Array(await res.arrayBuffer()), shape: (res.headers.get("X-Shape") || "").split(",").map(Number), headers: res.headers };
    })().catch((e) => { arrays.delete(path); throw e; }));
  }
  return arrays.get(path);
}
const trajectories = new Map();  // big: a few kept apart from the small arrays
function trajectoryOf(base, sampler, nfe, n, seed) {
  const path = `${base}/trajectories.bin?sampler=${encodeURIComponent(sampler)}&nfe=${nfe}&n=${n}&seed=${seed}`;
  if (!trajectories.has(path)) {
    while (trajectories.size >= 6) trajectories.delete(trajectories.keys().next().value);
    trajectories.set(path, f32(path, Infinity).finally(() => arrays.delete(path)).catch((e) => { trajectories.delete(path); throw e; }));
  }
  return trajectories.get(path);
}
const roundT = (t) => Math.round(Math.round(t / T_STEP) * T_STEP * 1000) / 1000;
const fieldPath = (base, which, t) => `${base}/field.bin?t=${t}&grid=${FIELD_GRID}&which=${which}`;
const densityPath = (base, t) => `${base}/density.bin?t=${t}&grid=${DENSITY_GRID}`;

// -- reading the URL ----------------------------------------------------------------------------------------
const RUN_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

function wanted(meta) {
  const sampler = meta.samplers.includes(state.get("sampler")) ? state.get("sampler") : meta.default.sampler;
  const lo = meta.min_nfe[sampler] || 1;
  const nfe = Math.max(lo, Math.min(meta.limits.nfe, state.getInt("nfe", meta.default.nfe)));
  const n = Math.max(1, Math.min(meta.limits.n, state.getInt("n", meta.default.n)));
  const seed = Math.max(0, state.getInt("seed", 0));
  let field = state.get("field", "model");
  if (!(field in FIELD_NAMES) || (!meta.mixture && (field === "exact" || field === "diff"))) field = "model";
  const contours = state.get("contours", "target") in CONTOURS ? state.get("contours", "target") : "target";
  const follow = [...new Set((state.get("follow") || "").split(",").filter((s) => /^\d+$/.test(s)).map(Number).filter((i) => i < n))].slice(0, MAX_FOLLOW);
  const t = Number.parseFloat(state.get("t", "1"));
  const other = state.get("compare");
  const compare = other && RUN_NAME.test(other) && !other.includes("..") ? other : null;
  return { sampler, nfe, n, seed, field, contours, follow, compare, t: Number.isFinite(t) && t >= 0 && t <= 1 ? t : 1 };
}

// the field a pane draws: a run without an exact field draws its model's where the other has the exact one
const fieldOf = (P, w) => (!P.meta.mixture && (w.field === "exact" || w.field === "diff") ? "model" : w.field);

// -- building the view ---------------------------------------------------------------------------------------
function option(value, text) { return el("option", { value, textContent: text }); }
function label(text, ...kids) { return el("label", {}, text, ...kids); }

// A pane: one run drawn into its own canvas (pane 0 keeps the ids the view always had, pane 1 adds "-b").
function newPane(k, run, meta) {
  const id = (s) => (k ? `${s}-b` : s);
  const canvas = el("canvas", { id: id("flow-canvas"), className: "flow-canvas" });
  canvas.dataset.run = run;
  const head = el("div", { className: "flow-pane-head", id: id("flow-head") });
  const status = el("p", { id: id("flow-status"), className: "muted flow-status" });
  const note = el("p", { id: id("flow-note"), className: "muted flow-note" });
  const box = el("div", { className: "flow-pane" }, head, canvas, status, note);
  const P = { k, run, meta, base: `${api.runPath(run)}/flow`, box, head, canvas, status, note,
    traj: null, trajKey: null, pending: null, groups: [], fr: null, dpr: 1, axes: null,
    fieldLayer: null, fieldKey: null, fieldInfo: "", densityLayer: null, densityKey: null, densityInfo: "",
    layerToken: 0, painted: { field: 0, density: 0 }, inflight: { field: null, density: null }, error: "" };
  canvas.addEventListener("click", (e) => clickAt(P, e));
  canvas.addEventListener("mousemove", (e) => { const h = nearest(P, e, 10); if (h !== V.hover) { V.hover = h; draw(); } });
  canvas.addEventListener("mouseleave", () => { if (V.hover >= 0) { V.hover = -1; draw(); } });
  return P;
}

function build(ctx, root) {
  const meta = ctx.flow;
  const play = el("button", { id: "flow-play", type: "button", textContent: "▶ Play", title: "play from the current time to t = 1 (from 0 when at the end)" });
  const slider = el("input", { id: "flow-t", type: "range", min: 0, max: 1000, step: 1 });
  const tOut = el("output", { id: "flow-t-out" });
  const ticks = el("canvas", { id: "flow-ticks", title: "the states the sampler recorded (click to jump)" });
  const sampler = el("select", { id: "flow-sampler" }, ...meta.samplers.map((s) => option(s, meta.stochastic.includes(s) ? `${s} (stochastic)` : s)));
  const nfe = el("input", { id: "flow-nfe", type: "number", min: 1, max: meta.limits.nfe, step: 1 });
  nfe.setAttribute("list", "flow-nfe-list");
  nfe.style.width = "70px";
  const presets = el("datalist", { id: "flow-nfe-list" }, ...NFE_PRESETS.map((k) => option(String(k), String(k))));
  const field = el("select", { id: "flow-field" }, ...Object.entries(FIELD_NAMES).map(([k, v]) => option(k, v)));
  for (const o of field.options) if (!meta.mixture && (o.value === "exact" || o.value === "diff")) { o.disabled = true; o.title = "the target is not a Gaussian mixture: no exact field"; }
  const contours = el("select", { id: "flow-contours" }, ...Object.entries(CONTOURS).map(([k, v]) => option(k, v)));
  const clear = el("button", { id: "flow-clear", type: "button", textContent: "Clear followed", disabled: true });
  const compare = el("select", { id: "flow-compare", title: "draw another flow run beside this one, at the same time, sampler and NFE" }, option("", "none"));
  const A = newPane(0, ctx.run, meta);
  const panes = el("div", { className: "flow-panes", id: "flow-panes" }, A.box);
  const side = el("div", { className: "flow-side", id: "flow-side" });
  const time = el("div", { className: "flow-time" }, play, el("div", { className: "flow-slider" }, slider, ticks), tOut);
  const controls = el("div", { className: "controls flow-controls" },
    label("sampler ", sampler), label("NFE ", nfe), presets, label("field ", field), label("contours ", contours), clear, label("compare with ", compare));
  const main = el("div", { className: "flow-main" }, time, controls, panes);
  root.replaceChildren(el("div", { className: "flow-wrap" }, main, side));
  root.classList.remove("flow-comparing");
  V = { run: ctx.run, meta, root, main, play, slider, tOut, ticks, sampler, nfe, field, contours, clear, compare, panesBox: panes, side,
    panes: [A], compareRun: null, compareReady: null, compareError: null,
    want: null, t: 1, follow: [], hover: -1, playing: false, drawMs: 0, urlT: undefined };
  size();
  sampler.addEventListener("change", () => state.set({ sampler: sampler.value }));
  nfe.addEventListener("change", () => {
    const k = Number.parseInt(nfe.value, 10);
    if (!Number.isFinite(k)) { nfe.value = String(V.want.nfe); return; }
    state.set({ nfe: Math.max(meta.min_nfe[V.want.sampler] || 1, Math.min(meta.limits.nfe, k)) });
  });
  field.addEventListener("change", () => state.set({ field: field.value }));
  contours.addEventListener("change", () => state.set({ contours: contours.value }));
  compare.addEventListener("change", () => state.set({ compare: compare.value || null }, { push: true }));
  clear.addEventListener("click", () => state.set({ follow: null }));
  slider.addEventListener("input", () => { stop(); setT(Number(slider.value) / 1000); });
  slider.addEventListener("change", writeT);
  play.addEventListener("click", () => (V.playing ? stop(true) : start()));
  ticks.addEventListener("click", (e) => { stop(); const r = ticks.getBoundingClientRect(); setT(Math.max(0, Math.min(1, (e.clientX - r.left - 6) / (r.width - 12)))); writeT(); });
  if (!resizeBound) { window.addEventListener("resize", onResize); resizeBound = true; }
  const pane = (k) => V.panes[k] || null;
  window.latentatlas.flow = {
    // the sample `i`'s position at the current time in data units and in CSS pixels within the canvas (of pane k)
    at: (i, k = 0) => (pane(k) ? position(pane(k), i, V.t) : null),
    screen: (i, k = 0) => { const P = pane(k), p = P ? position(P, i, V.t) : null; return p ? [P.fr.px(p[0]), P.fr.py(p[1])] : null; },
    get t() { return V.t; }, get drawMs() { return V.drawMs; }, get follow() { return [...V.follow]; },
    get times() { return V.panes[0].traj ? Array.from(V.panes[0].traj.times) : []; },
    get layers() { return layersOf(V.panes[0]); },
    get runs() { return V.panes.map((P) => P.run); },
    layersOf: (k) => (pane(k) ? layersOf(pane(k)) : null),
    setT: (t) => { stop(); setT(t); },
  };
  sidePanel(ctx);
  refreshCompareChoices();
}

const layersOf = (P) => ({ field: P.fieldLayer ? P.fieldKey : null, density: P.densityLayer ? P.densityKey : null });

// the other flow runs of the atlas that can be drawn (trained), for the compare picker
async function refreshCompareChoices() {
  const view = V;
  let runs = [];
  try { runs = await api.json("/api/runs"); } catch (_) { return; }
  if (V !== view) return;
  const names = runs.filter((r) => r.kind === "flow" && (r.status === "trained" || r.status === "evaluated") && r.name !== V.run).map((r) => String(r.name));
  const cur = V.want && V.want.compare;
  if (cur && !names.includes(cur)) names.unshift(cur);
  const have = [...V.compare.options].slice(1).map((o) => o.value);
  if (have.join("\n") !== names.join("\n")) V.compare.replaceChildren(option("", "none"), ...names.map((s) => option(s, s)));
  V.compare.value = cur || "";
  V.compare.disabled = names.length === 0;
  V.compare.title = names.length ? "draw another flow run beside this one, at the same time, sampler and NFE" : "the atlas has no other trained flow run";
}

let resizeTimer = 0, resizeBound = false;
function onResize() {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => {
    if (!V || V.root.hidden || canvasSide() === V.panes[0].fr.inner) return;
    size();
    Promise.all(V.panes.map((P) => loadLayers(P))).then(draw);
  }, 150);
}

// the canvas: a square as tall as the window allows beside the side panel (alone), or half the width each
// (two panes, the side panel folded away), at the screen's pixel ratio; the controls above take two rows
const canvasSide = () => {
  const width = V.root.clientWidth || 1000;
  if (V.panes.length > 1) {
    const half = (width - 56 - 24) / 2 - PADS.left - PADS.right - 2;
    return Math.max(300, Math.min(760, Math.floor(Math.min(window.innerHeight - 310, half))));
  }
  return Math.max(380, Math.min(760, Math.floor(Math.min(window.innerHeight - 290, width - 400))));
};

function size() {
  const S = canvasSide();
  const dpr = window.devicePixelRatio || 1;
  for (const P of V.panes) {
    P.dpr = dpr;
    P.fr = frame(P.meta.bounds, S, PADS);
    P.canvas.width = Math.round(P.fr.W * dpr); P.canvas.height = Math.round(P.fr.H * dpr);
    P.canvas.style.width = `${P.fr.W}px`; P.canvas.style.height = `${P.fr.H}px`;
    P.box.style.width = `${P.fr.W + 2}px`;  // its text wraps under its canvas
    P.fieldLayer = null; P.densityLayer = null; P.fieldKey = null; P.densityKey = null; P.axes = null;
  }
  V.dpr = dpr;
  // the controls wrap above the canvases (one pane: the side panel keeps its room; two: they span both)
  V.main.style.width = `${V.panes.reduce((sum, P) => sum + P.fr.W + 2, 0) + 24 * (V.panes.length - 1)}px`;
  const tw = Math.max(200, V.ticks.clientWidth || S - 150);
  V.ticks.width = Math.round(tw * dpr); V.ticks.height = Math.round(16 * dpr);
  V.ticks.style.height = "16px";
}

// -- the side panel: facts, the legend and the evaluation's sampler table --------------------------------------
const objectiveText = (m) => (m.objective === "fm" ? "flow matching (velocity)" : `VP diffusion, ${m.objective}-prediction, ${m.schedule} schedule`);
const targetText = (m) => (m.target === "points" ? "points (painted or from a file)" : String(m.target));

function sidePanel(ctx) {
  const m = V.meta;
  const paint = el("button", { id: "flow-paint-open", type: "button", className: "flow-paint", textContent: "Paint a target…",
    title: "paint your own target distribution (starting from this run's, if you like) and train a flow model on it from the page" });
  paint.addEventListener("click", () => state.set({ run: null, view: "paint", from: ctx.run, t: null, sampler: null, nfe: null, n: null, seed: null,
    field: null, contours: null, follow: null, compare: null }, { push: true }));
  const facts = el("div", { className: "card" }, el("div", { className: "flow-card-head" }, el("h2", { textContent: "Flow" }), paint));
  const dl = el("table", { className: "compact flow-facts" });
  const row = (k, v) => dl.append(el("tr", {}, el("td", { className: "muted", textContent: k }), el("td", { textContent: v })));
  row("target", m.mixture ? `${m.target} (a Gaussian mixture: exact field known)` : `${targetText(m)} (no exact field)`);
  row("objective", objectiveText(m));
  row("network", m.net);
  if (m.train_steps != null) row("trained", `${Number(m.train_steps).toLocaleString()} steps`);
  if (m.origin === "reflow" && m.data && m.data.source) row("reflow of", String(m.data.source));
  facts.append(dl, el("p", { className: "muted flow-legend", textContent:
    "Points start as noise at t = 0 and reach the data at t = 1 (x_t = (1 − t)·x0 + t·x1), coloured by where they end. "
    + "Arrows: the velocity at t (model navy, exact green, model − exact red, all on the model's scale; "
    + "the red shade is |model − exact|, full where it matches the model's typical speed). "
    + "Green contours hold 20, 40, 60, 80 and 95 % of the density on the view. Click a point to follow its path; click it again to drop it." }));
  const table = el("div", { className: "card", id: "flow-table-card" });
  V.side.replaceChildren(facts, table);
  edTable(table, ctx);
}

function edTable(card, ctx) {
  const m = V.meta.metrics;
  card.append(el("h2", { textContent: "Energy distance to the target" }));
  if (!m || !m.samplers.length) {
    card.append(el("p", { className: "muted", textContent: V.meta.metrics_error
      ? V.meta.metrics_error : `No evaluation yet: \`latentatlas flow eval ${ctx.run}\` measures every sampler at several NFE and fills this table.` }));
    return;
  }
  for (const who of ["model", "exact"]) {
    const rows = m.samplers.filter((r) => r.field === who && r.sampler && r.nfe_budget != null);
    if (!rows.length) continue;
    const budgets = [...new Set(rows.map((r) => r.nfe_budget))].sort((a, b) => a - b);
    const names = [...new Set(rows.map((r) => r.sampler))];
    const t = el("table", { className: "compact flow-ed", id: `flow-ed-${who}` });
    t.append(el("thead", {}, el("tr", {}, el("th", { textContent: who === "model" ? "model · NFE" : "exact field · NFE" }),
      ...budgets.map((b) => el("th", { className: "num", textContent: String(b) })))));
    const body = el("tbody");
    for (const s of names) {
      const tr = el("tr", {}, el("td", { textContent: s }));
      for (const b of budgets) {
        const r = rows.find((x) => x.sampler === s && x.nfe_budget === b);
        const td = el("td", { className: `num${r && r.at_floor ? " floor" : ""}`, textContent: r && r.energy_distance != null ? r.energy_distance.toPrecision(2) : "–" });
        if (r) {
          td.title = `${s} within ${b} NFE: ${r.nfe} counted; energy distance ${r.energy_distance} [${r.ci_low}, ${r.ci_high}]${r.at_floor ? " (at the noise floor)" : ""}; click to draw it`;
          td.dataset.sampler = s; td.dataset.nfe = String(b);
          td.classList.add("clickable");
          if (who === "model" && V.meta.samplers.includes(s)) td.addEventListener("click", () => state.set({ sampler: s, nfe: b }));
        }
        tr.append(td);
      }
      body.append(tr);
    }
    t.append(body);
    card.append(t);
  }
  const floor = m.noise_floor != null ? `; green: within the noise floor (${m.noise_floor.toPrecision(2)}) of the distance between two samples of the target at this n` : "";
  card.append(el("p", { className: "muted", style: "font-size:12px", textContent: `${m.n ?? "?"} samples per cell, lower is better${floor}. Click a model cell to draw it.` }));
}

function markTable() {
  for (const td of V.side.querySelectorAll("#flow-ed-model td[data-sampler]")) {
    td.classList.toggle("cur", td.dataset.sampler === V.want.sampler && Number(td.dataset.nfe) === V.want.nfe);
  }
}

// a pane's heading when two are shown: the run, what it is, and its evaluated energy distance at this sampler and NFE
function paneHeads() {
  for (const P of V.panes) {
    const m = P.meta, w = V.want;
    const row = m.metrics && m.metrics.samplers.find((r) => r.field === "model" && r.sampler === w.sampler && r.nfe_budget === w.nfe);
    const ed = row && row.energy_distance != null
      ? `energy distance ${row.energy_distance.toPrecision(2)} at ${w.sampler}, ${w.nfe} NFE${row.at_floor ? " (at the noise floor)" : ""}`
      : `not evaluated at ${w.sampler}, ${w.nfe} NFE`;
    const steps = m.train_steps != null ? ` · ${Number(m.train_steps).toLocaleString()} steps` : "";
    const open = el("a", { href: `?run=${encodeURIComponent(P.run)}`, className: "flow-pane-run", textContent: P.run, title: `open ${P.run} alone` });
    open.addEventListener("click", (e) => { e.preventDefault(); state.set({ run: P.run, compare: P.k ? V.run : null }, { push: true }); });
    P.head.replaceChildren(open, el("span", { className: "muted", textContent: ` · ${targetText(m)} · ${objectiveText(m)} · ${m.net}${steps}` }),
      el("br"), el("span", { className: "flow-pane-ed", textContent: ed }));
  }
}

// -- syncing with the URL ------------------------------------------------------------------------------------
export async function render(ctx) {
  const root = section("flow-view", "full", "");
  root.hidden = false;
  if (!V || V.run !== ctx.run || V.meta !== ctx.flow || !root.contains(V.panes[0].canvas)) build(ctx, root);
  const view = V;
  const w = wanted(V.meta);
  V.want = w;
  V.sampler.value = w.sampler;
  V.nfe.value = String(w.nfe);
  V.nfe.min = String(V.meta.min_nfe[w.sampler] || 1);
  V.field.value = w.field;
  V.contours.value = w.contours;
  V.follow = w.follow;
  V.clear.disabled = !w.follow.length;
  // t from the URL when it changed there (a shared link, back and forward), not when the view wrote it
  const urlT = state.get("t");
  if (!V.playing && urlT !== V.urlT) { V.t = w.t; V.urlT = urlT; }
  V.slider.value = String(Math.round(V.t * 1000));
  markTable();
  await setCompare(w.compare);
  if (V !== view) return;
  if ([...V.compare.options].some((o) => o.value === (w.compare || ""))) V.compare.value = w.compare || ""; else refreshCompareChoices();
  paneHeads();
  const key = `${w.sampler}:${w.nfe}:${w.n}:${w.seed}`;
  const jobs = [];
  // the panes' trajectories one after the other: the server samples one at a time per run anyway, and two
  // first samplings at once in a fresh server can trip over diffusers' lazy imports (an ImportError, a 500)
  let sampled = null;
  for (const P of V.panes) {
    P.canvas.dataset.follow = w.follow.join(",");
    P.canvas.dataset.field = fieldOf(P, w);
    P.canvas.dataset.contours = w.contours;
    jobs.push(loadLayers(P));
    if (key !== P.trajKey) { sampled = loadTrajectories(P, w, key, sampled); jobs.push(sampled); }
  }
  await Promise.all(jobs);
  draw();
}

// Two panes or one: the compared run's meta is fetched when it changes; a run that cannot be drawn (not a
// flow run, gone, damaged) leaves its one sentence where its pane would be.
function setCompare(other) {
  if (V.compareRun === other) return V.compareReady;
  const view = V;
  V.compareRun = other;
  V.compareReady = (async () => {
    let meta = null, error = "";
    if (other) {
      try { meta = await api.json(`${api.runPath(other)}/flow`); } catch (e) { error = e.message; }
    }
    if (V !== view || V.compareRun !== other) return;  // a newer choice overtook this one
    for (const P of V.panes.slice(1)) P.box.remove();
    V.panes.length = 1;
    if (V.compareError) { V.compareError.remove(); V.compareError = null; }
    if (meta) {
      const B = newPane(1, other, meta);
      V.panes.push(B);
      V.panesBox.append(B.box);
    } else if (other) {
      V.compareError = el("div", { className: "flow-pane flow-pane-missing" },
        el("p", { id: "flow-status-b", className: "flow-status bad", textContent: `${other}: ${error}` }));
      V.panesBox.append(V.compareError);
    }
    V.root.classList.toggle("flow-comparing", V.panes.length > 1);
    size();
  })();
  return V.compareReady;
}

// (after: the previous pane's load, waited for before this one asks; the choice is marked pending at once,
// so a newer one overtakes it while it waits)
async function loadTrajectories(P, w, key, after = null) {
  P.pending = key;
  P.box.dataset.loading = key;
  if (P.k === 0) V.root.dataset.loading = key;
  const done = () => { delete P.box.dataset.loading; if (P.k === 0) delete V.root.dataset.loading; };
  if (after) await after;
  if (P.pending !== key) return;
  let got;
  try {
    got = await trajectoryOf(P.base, w.sampler, w.nfe, w.n, w.seed);
  } catch (e) {
    if (P.pending !== key) return;
    P.error = e.message;
    done();
    P.pending = null;
    showStatus(P);
    return;
  }
  if (P.pending !== key) return;  // a newer choice overtook this one
  P.pending = null;
  done();
  P.error = "";
  const [K, n] = got.shape;
  const times = Float64Array.from((got.headers.get("X-Times") || "").split(",").map(Number));
  P.traj = { data: got.data, K, n, times, nfe: Number(got.headers.get("X-NFE")), steps: Number(got.headers.get("X-Steps")),
    sampler: w.sampler, budget: w.nfe, seed: w.seed };
  P.trajKey = key;
  P.groups = colourGroups(P, P.traj);
  P.canvas.dataset.sampler = w.sampler;
  P.canvas.dataset.nfe = String(P.traj.nfe);
  P.canvas.dataset.states = String(K);
  showStatus(P);
  paintTicks();
}

function showStatus(P) {
  const tr = P.traj;
  P.status.classList.toggle("bad", !!P.error);
  if (P.error) { P.status.textContent = `${P.error} (still drawing ${tr ? `${tr.sampler} at ${tr.nfe} NFE` : "nothing"})`; return; }
  if (!tr) { P.status.textContent = "sampling…"; return; }
  P.status.textContent = `${tr.sampler}: ${tr.nfe} NFE counted (budget ${tr.budget}), ${tr.steps} solver steps, ${tr.K} recorded states · `
    + `${tr.n.toLocaleString()} samples (noise seed ${tr.seed})${P.meta.stochastic.includes(tr.sampler) ? " · stochastic: its own noise, seeded" : ""}`;
}

// -- colours: each point by where it ends (its nearest mode, or the direction it ends in) ------------------------
function colourGroups(P, tr) {
  const last = (tr.K - 1) * tr.n * 2, d = tr.data;
  const modes = P.meta.modes && P.meta.modes.means.length <= PALETTE.length ? P.meta.modes : null;
  const colourOf = new Array(tr.n);
  let cx = 0, cy = 0;
  for (let i = 0; i < tr.n; i++) { cx += d[last + 2 * i]; cy += d[last + 2 * i + 1]; }
  cx /= tr.n; cy /= tr.n;
  for (let i = 0; i < tr.n; i++) {
    const x = d[last + 2 * i], y = d[last + 2 * i + 1];
    if (modes) {
      let best = 0, bd = Infinity;
      modes.means.forEach(([mx, my], k) => { const q = ((x - mx) ** 2 + (y - my) ** 2) / modes.sigmas[k] ** 2; if (q < bd) { bd = q; best = k; } });
      colourOf[i] = PALETTE[best];
    } else {
      const h = Math.round(((Math.atan2(y - cy, x - cx) / (2 * Math.PI) + 1) % 1) * 12) % 12;
      colourOf[i] = `hsl(${h * 30}, 62%, 44%)`;
    }
  }
  const groups = new Map();
  colourOf.forEach((c, i) => { if (!groups.has(c)) groups.set(c, []); groups.get(c).push(i); });
  tr.colourOf = colourOf;
  return [...groups].map(([colour, idx]) => ({ colour, idx: Int32Array.from(idx) }));
}

// -- the layers: field arrows and density contours at the time grid nearest t --------------------------------------
function wantLayers() {
  clearTimeout(V.layerTimer);
  V.layerTimer = setTimeout(() => { Promise.all(V.panes.map((P) => loadLayers(P))).then(draw, () => {}); }, V.playing ? 0 : 60);
}

// A layer's data is fetched once per key; a result is painted unless a later request (another key, or
// "none") has been settled already, so a slow answer never paints over a newer choice.
function layerJob(P, kind, key, fetchIt, paint, token) {
  const busy = P.inflight[kind];
  if (busy && busy.key === key) return busy.promise;  // already on its way: wait for it, paint once
  const promise = fetchIt().then((got) => {
    if (token < P.painted[kind]) return;
    P.painted[kind] = token;
    paint(got);
  }).finally(() => { if (P.inflight[kind] && P.inflight[kind].promise === promise) P.inflight[kind] = null; });
  P.inflight[kind] = { key, promise };
  return promise;
}

async function loadLayers(P) {
  const token = ++P.layerToken;
  const w = V.want, tr = roundT(V.t), which = fieldOf(P, w), fr = P.fr;
  const jobs = [];
  if (which !== "none") {
    const key = `${which}@${tr}@${fr.inner}`;
    if (P.fieldKey !== key) {
      const fetchIt = () => Promise.all([f32(fieldPath(P.base, "model", tr)), which === "model" ? null : f32(fieldPath(P.base, which, tr))]);
      jobs.push(layerJob(P, "field", key, fetchIt, ([model, other]) => {
        if (P.fr !== fr) return;  // resized meanwhile: the next load paints it
        const f = other || model;
        const G = f.shape[0], g = layer(fr, P.dpr), typical = speedScale(model.data);
        const scale = (0.9 * (fr.inner / G) * ARROW_STEP) / typical;  // the model's typical arrow spans 0.9 of a block
        paintArrows(g.getContext("2d"), fr, f.data, G, ARROW_STEP, scale, FIELD_COLOURS[which], which === "diff" ? typical : 0);
        P.fieldLayer = g; P.fieldKey = key;
        const at = Number(f.headers.get("X-T"));
        const instead = which !== w.field ? " (no exact field for this target)" : "";
        P.fieldInfo = `${FIELD_NAMES[which]} field at t = ${at.toFixed(2)}${which === "diff" ? ` (largest |model − exact| ${maxSpeed(f.data).toPrecision(2)})` : ""}${instead}`;
      }, token));
    }
  } else { P.painted.field = token; P.fieldLayer = null; P.fieldKey = null; P.fieldInfo = ""; }
  if (w.contours !== "off") {
    const td = w.contours === "target" ? 1 : tr;
    const key = `${td}@${fr.inner}`;
    if (P.densityKey !== key) {
      jobs.push(layerJob(P, "density", key, () => f32(densityPath(P.base, td)), (dens) => {
        if (P.fr !== fr) return;
        const G = dens.shape[0], g = layer(fr, P.dpr);
        paintDensity(g.getContext("2d"), fr, dens.data, G, massLevels(dens.data));
        P.densityLayer = g; P.densityKey = key;
        P.densityInfo = `contours of ${td === 1 ? "the target" : `p_t at t = ${td.toFixed(2)}`} (${dens.headers.get("X-Density") === "exact" ? "exact density" : "histogram estimate"})`;
      }, token));
    }
  } else { P.painted.density = token; P.densityLayer = null; P.densityKey = null; P.densityInfo = ""; }
  try {
    await Promise.all(jobs);
  } catch (e) {
    P.note.textContent = e.message;
    P.note.classList.add("bad");
    return;
  }
  P.note.classList.remove("bad");
  P.note.textContent = [P.fieldInfo, P.densityInfo].filter(Boolean).join(" · ");
  P.canvas.dataset.fieldT = P.fieldKey ? P.fieldKey.split("@")[1] : "";
}

function maxSpeed(f) {
  let m = 0;
  for (let k = 0; k < f.length; k += 2) m = Math.max(m, Math.hypot(f[k], f[k + 1]));
  return m;
}

// while playing, the fields of the coming times are fetched ahead, one time at a time (every pane's)
async function prefetch() {
  const w = V.want;
  for (let t = roundT(V.t); t <= 1 + 1e-9 && V.playing; t = roundT(t + T_STEP)) {
    const jobs = [];
    for (const P of V.panes) {
      const which = fieldOf(P, w);
      if (which !== "none") { jobs.push(f32(fieldPath(P.base, "model", t))); if (which !== "model") jobs.push(f32(fieldPath(P.base, which, t))); }
      if (w.contours === "pt") jobs.push(f32(densityPath(P.base, t)));
    }
    try { await Promise.all(jobs); } catch (_) { return; }
  }
}

// -- time -------------------------------------------------------------------------------------------------------
function writeT() {
  clearTimeout(V.urlTimer);
  V.urlT = V.t.toFixed(3);
  state.set({ t: V.urlT });
}

function setT(t) {
  V.t = Math.max(0, Math.min(1, t));
  V.slider.value = String(Math.round(V.t * 1000));
  draw();
  clearTimeout(V.urlTimer);
  if (!V.playing) V.urlTimer = setTimeout(writeT, 400);
  if (V.want.field !== "none" || V.want.contours === "pt") wantLayers();
}

function start() {
  if (V.t >= 0.999) setT(0);
  V.playing = true;
  V.play.textContent = "❚❚ Pause";
  V.root.dataset.playing = "1";
  let last = performance.now();
  const tick = (now) => {
    if (!V.playing) return;
    const t = V.t + (now - last) / 1000 / PLAY_SECONDS;
    last = now;
    if (t >= 1) { setT(1); stop(true); return; }
    setT(t);
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  prefetch();
}

function stop(keep = false) {
  if (!V.playing) return;
  V.playing = false;
  V.play.textContent = "▶ Play";
  delete V.root.dataset.playing;
  if (keep) writeT();
}

// the scrubber's ticks: the states the first pane's sampler recorded
function paintTicks() {
  const c = V.ticks, g = c.getContext("2d"), dpr = V.dpr, w = c.width / dpr, h = 16;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  const x = (t) => 6 + t * (w - 12);
  g.fillStyle = "#d8d4cb"; g.fillRect(6, 7, w - 12, 2);
  const tr = V.panes[0].traj;
  if (tr) {
    g.fillStyle = "#5b6770";
    for (const t of tr.times) g.fillRect(Math.round(x(t)), 3, 1, 10);
  }
  g.fillStyle = "#d9480f";
  const X = x(V.t);
  g.beginPath(); g.moveTo(X, 9); g.lineTo(X - 5, 16); g.lineTo(X + 5, 16); g.closePath(); g.fill();
}

// -- the points ---------------------------------------------------------------------------------------------------
// the segment of recorded states around t and the weight of the later one
function segment(times, t) {
  const K = times.length;
  if (t <= times[0]) return [0, 0];
  if (t >= times[K - 1]) return [K - 1, 0];
  let lo = 0, hi = K - 1;
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (times[mid] <= t) lo = mid; else hi = mid; }
  const span = times[hi] - times[lo];
  return [lo, span > 0 ? (t - times[lo]) / span : 0];
}

function position(P, i, t) {
  const tr = P.traj;
  if (!tr || i < 0 || i >= tr.n) return null;
  const [k, w] = segment(tr.times, t), d = tr.data, a = (k * tr.n + i) * 2;
  if (w === 0) return [d[a], d[a + 1]];
  const b = a + tr.n * 2;
  return [d[a] + w * (d[b] - d[a]), d[a + 1] + w * (d[b + 1] - d[a + 1])];
}

function nearest(P, e, radius, among = null) {
  if (!P.traj || !P.fr) return -1;
  const r = P.canvas.getBoundingClientRect(), X = e.clientX - r.left, Y = e.clientY - r.top;
  const tr = P.traj, [k, w] = segment(tr.times, V.t), d = tr.data, fr = P.fr;
  let best = -1, bd = radius * radius;
  const test = (i) => {
    if (i >= tr.n) return;
    const a = (k * tr.n + i) * 2, b = w === 0 ? a : a + tr.n * 2;
    const x = d[a] + w * (d[b] - d[a]), y = d[a + 1] + w * (d[b + 1] - d[a + 1]);
    const q = (fr.px(x) - X) ** 2 + (fr.py(y) - Y) ** 2;
    if (q <= bd) { bd = q; best = i; }
  };
  if (among) among.forEach(test); else for (let i = 0; i < tr.n; i++) test(i);
  return best;
}

function clickAt(P, e) {
  const dropped = nearest(P, e, 10, V.follow);
  let next;
  if (dropped >= 0) next = V.follow.filter((i) => i !== dropped);
  else {
    const i = nearest(P, e, 10);
    if (i < 0) return;
    next = [...V.follow, i].slice(-MAX_FOLLOW);
  }
  V.follow = next;
  for (const Q of V.panes) Q.canvas.dataset.follow = next.join(",");
  draw();
  state.set({ follow: next.join(",") || null });
}

// -- one frame ------------------------------------------------------------------------------------------------------
function draw() {
  if (!V) return;
  const t0 = performance.now();
  for (const P of V.panes) if (P.fr) drawPane(P, { t: V.t, follow: V.follow, hover: V.hover });
  V.tOut.value = V.t.toFixed(3);
  V.tOut.textContent = V.t.toFixed(3);
  paintTicks();
  V.drawMs = performance.now() - t0;
  V.panes[0].canvas.dataset.drawMs = V.drawMs.toFixed(2);
}

// One run into its canvas at time t: the density and field layers, the axes, the samples, the followed
// paths and the hovered point. Sets the canvas's data-t and data-samples (the points drawn).
export function drawPane(P, { t, follow = [], hover = -1 }) {
  const g = P.canvas.getContext("2d"), fr = P.fr, W = fr.W, H = fr.H;
  g.setTransform(P.dpr, 0, 0, P.dpr, 0, 0);
  g.fillStyle = "#fff";
  g.fillRect(0, 0, W, H);
  if (!P.axes) { P.axes = layer(fr, P.dpr); paintAxes(P.axes.getContext("2d"), fr); }
  if (P.densityLayer) g.drawImage(P.densityLayer, 0, 0, W, H);
  g.drawImage(P.axes, 0, 0, W, H);
  if (P.fieldLayer) g.drawImage(P.fieldLayer, 0, 0, W, H);
  const tr = P.traj;
  if (tr) {
    g.save();
    g.beginPath(); g.rect(fr.left, fr.top, fr.inner, fr.inner); g.clip();
    const [k, w] = segment(tr.times, t), d = tr.data, n = tr.n;
    const r = n > 5000 ? 1 : 1.4;
    g.globalAlpha = 0.78;
    for (const grp of P.groups) {
      g.fillStyle = grp.colour;
      g.beginPath();
      for (const i of grp.idx) {
        const a = (k * n + i) * 2, b = w === 0 ? a : a + n * 2;
        const x = d[a] + w * (d[b] - d[a]), y = d[a + 1] + w * (d[b + 1] - d[a + 1]);
        g.rect(fr.px(x) - r, fr.py(y) - r, 2 * r, 2 * r);
      }
      g.fill();
    }
    g.globalAlpha = 1;
    for (const i of follow) if (i < n) drawPath(g, P, i, k, t);
    if (hover >= 0 && hover < n) {
      const p = position(P, hover, t);
      g.strokeStyle = "#222"; g.lineWidth = 1.2;
      g.beginPath(); g.arc(fr.px(p[0]), fr.py(p[1]), 6, 0, 2 * Math.PI); g.stroke();
    }
    g.restore();
  }
  g.font = "600 13px ui-monospace, monospace"; g.textAlign = "left"; g.textBaseline = "top";
  const label = `t = ${t.toFixed(3)}`, lw = g.measureText(label).width;
  g.fillStyle = "rgba(255, 255, 255, 0.85)"; g.fillRect(fr.left + 1, fr.top + 1, lw + 14, 22);
  g.fillStyle = "#333"; g.fillText(label, fr.left + 8, fr.top + 6);
  P.canvas.dataset.t = t.toFixed(4);
  P.canvas.dataset.samples = String(tr ? tr.n : 0);
}

// a followed point: its whole recorded path (walked solid, to come dashed), where it started and ends, and now
function drawPath(g, P, i, k, t) {
  const tr = P.traj, fr = P.fr, d = tr.data, n = tr.n;
  const xy = (s) => [fr.px(d[(s * n + i) * 2]), fr.py(d[(s * n + i) * 2 + 1])];
  const p = position(P, i, t), Q = [fr.px(p[0]), fr.py(p[1])];
  const colour = tr.colourOf[i];
  const walked = () => { g.beginPath(); g.moveTo(...xy(0)); for (let s = 1; s <= k; s++) g.lineTo(...xy(s)); g.lineTo(...Q); };
  const ahead = () => { g.beginPath(); g.moveTo(...Q); for (let s = k + 1; s < tr.K; s++) g.lineTo(...xy(s)); };
  g.lineJoin = "round"; g.lineCap = "round";
  g.setLineDash([]);
  g.strokeStyle = "rgba(255, 255, 255, 0.9)"; g.lineWidth = 4.5;  // a halo, so the path reads over arrows and points
  walked(); g.stroke();
  g.strokeStyle = "#222"; g.lineWidth = 2;
  walked(); g.stroke();
  g.setLineDash([4, 3]); g.strokeStyle = "rgba(34, 34, 34, 0.6)"; g.lineWidth = 1.4;
  ahead(); g.stroke();
  g.setLineDash([]);
  const [sx, sy] = xy(0), [ex, ey] = xy(tr.K - 1);
  g.lineWidth = 1.2; g.strokeStyle = "#222"; g.fillStyle = "#fff";
  g.beginPath(); g.arc(sx, sy, 3.5, 0, 2 * Math.PI); g.fill(); g.stroke();
  g.fillStyle = colour;
  g.fillRect(ex - 3.5, ey - 3.5, 7, 7); g.strokeRect(ex - 3.5, ey - 3.5, 7, 7);
  g.beginPath(); g.arc(Q[0], Q[1], 5, 0, 2 * Math.PI); g.fill();
  g.lineWidth = 2; g.strokeStyle = "#fff"; g.stroke();
  g.lineWidth = 1; g.strokeStyle = "#222"; g.beginPath(); g.arc(Q[0], Q[1], 6.5, 0, 2 * Math.PI); g.stroke();
  g.fillStyle = "#222"; g.font = "11px ui-monospace, monospace"; g.textAlign = "left"; g.textBaseline = "bottom";
  g.fillText(`#${i}`, Q[0] + 8, Q[1] - 4);
}

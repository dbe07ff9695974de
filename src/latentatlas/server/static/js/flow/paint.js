// Paint a target and train a flow model on it from the page: the flow lab's page that needs no run
// (?view=paint; &from=RUN offers that run's target as a start). Dragging on the canvas sprays points (brush
// radius and density), shift-drag or Erase removes them; undo, clear, presets. Train posts the points as
// little-endian float32 (N × 2) to POST /api/flow/train, follows the background job (GET /api/jobs/{id}) with
// a progress bar and the run's loss log (GET /api/runs/{run}/history, a row every 50 steps), can cancel it,
// and opens the new run's Flow view when it is done. The painting and the training followed are kept in
// sessionStorage, so a reload keeps both. Text from the server is set as textContent, never as markup.
import * as api from "../api.js";
import * as state from "../state.js";
import { section } from "../util.js";
import { frame, layer, paintAxes } from "./draw.js";

const HALF = 3.64;  // the flow view's square for a target inside the noise: ±3.5 with a 4 % margin
const BOUNDS = { x: [-HALF, HALF], y: [-HALF, HALF] };
const PADS = { left: 34, top: 8, right: 8, bottom: 24 };  // as the flow view's
const MAX_POINTS = 100_000;  // the server's limit on painted points
const MAX_STEPS = 20_000;
const UNDO_DEPTH = 40;
const PRESET_N = 1000;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const POINT_COLOUR = "#1f77b4";
const STORE = "latentatlas.paint";
const OBJECTIVES = [["fm", "flow matching (velocity)"], ["eps", "VP diffusion, ε-prediction"], ["v", "VP diffusion, v-prediction"]];
const NETS = [["sinusoidal", "sinusoidal embeddings + MLP"], ["plain", "plain MLP (t as an input)"]];

let S = null;  // the page

const el = (tag, props = {}, ...kids) => { const e = Object.assign(document.createElement(tag), props); e.append(...kids); return e; };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const count = (n, noun) => `${n.toLocaleString()} ${noun}${n === 1 ? "" : "s"}`;

// -- presets, sampled here from the formulas of data/toys.py ---------------------------------------------------
function gauss() {
  let u = 0;
  while (u === 0) u = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
}
const PRESETS = {
  "three-modes": ["three modes", (n) => Array.from({ length: n }, () => {
    const a = ((90 + 120 * Math.floor(3 * Math.random())) * Math.PI) / 180;
    return [2 * Math.cos(a) + 0.2 * gauss(), 2 * Math.sin(a) + 0.2 * gauss()];
  })],
  moons: ["moons", (n) => Array.from({ length: n }, () => {
    const th = Math.PI * Math.random(), up = Math.random() < 0.5;
    const x = up ? Math.cos(th) : 1 - Math.cos(th), y = up ? Math.sin(th) : 0.5 - Math.sin(th);
    return [(x - 0.5) * (4 / 3) + 0.1 * gauss(), (y - 0.25) * (4 / 3) + 0.1 * gauss()];
  })],
  spirals: ["spirals", (n) => Array.from({ length: n }, () => {
    const phi = 3 * Math.PI * Math.sqrt(Math.random()), r = (2 * phi) / (3 * Math.PI), s = Math.random() < 0.5 ? 1 : -1;
    return [s * r * Math.cos(phi) + 0.05 * gauss(), s * r * Math.sin(phi) + 0.05 * gauss()];
  })],
  rings: ["rings", (n) => Array.from({ length: n }, () => {
    const u = Math.random() * 5, r = (u < 0.5 ? 0.5 : u < 1.5 ? 1 : u < 3 ? 1.5 : 2) + 0.05 * gauss(), a = 2 * Math.PI * Math.random();
    return [r * Math.cos(a), r * Math.sin(a)];
  })],
};

// -- the points ---------------------------------------------------------------------------------------------------
const inside = (x, y) => x >= -HALF && x <= HALF && y >= -HALF && y <= HALF;

function setPoints(arr) {
  const n = Math.min(MAX_POINTS, arr.length / 2);
  S.pts = new Float32Array(Math.max(1024, 2 * n));
  S.pts.set(arr.subarray ? arr.subarray(0, 2 * n) : arr.slice(0, 2 * n));
  S.n = n;
}

function add(x, y) {
  if (S.n >= MAX_POINTS) { S.full = true; return; }
  if (2 * S.n + 2 > S.pts.length) { const grown = new Float32Array(S.pts.length * 2); grown.set(S.pts); S.pts = grown; }
  S.pts[2 * S.n] = x; S.pts[2 * S.n + 1] = y;
  S.n += 1;
}

// one dab of the brush at (x, y): `density` points uniform in the disc, or every point in it removed
function dab(x, y, erase) {
  const r = S.radius;
  if (erase) {
    let k = 0;
    const p = S.pts;
    for (let i = 0; i < S.n; i++) {
      const u = p[2 * i], v = p[2 * i + 1];
      if ((u - x) ** 2 + (v - y) ** 2 > r * r) { p[2 * k] = u; p[2 * k + 1] = v; k++; }
    }
    S.n = k;
    if (k < MAX_POINTS) S.full = false;
    return;
  }
  for (let q = 0; q < S.density; q++) {
    const rho = r * Math.sqrt(Math.random()), a = 2 * Math.PI * Math.random();
    const u = x + rho * Math.cos(a), v = y + rho * Math.sin(a);
    if (inside(u, v)) add(u, v);
  }
}

function snapshot() {
  S.undo.push(S.pts.slice(0, 2 * S.n));
  if (S.undo.length > UNDO_DEPTH) S.undo.shift();
}

function undo() {
  if (!S.undo.length) return;
  setPoints(S.undo.pop());
  S.full = false;
  changed();
}

function replace(points, what) {
  snapshot();
  const flat = new Float32Array(2 * points.length);
  let k = 0;
  for (const [x, y] of points) if (Number.isFinite(x) && Number.isFinite(y) && inside(x, y)) { flat[k++] = x; flat[k++] = y; }
  setPoints(flat.subarray(0, k));
  S.full = false;
  S.notice = { text: `Loaded ${count(S.n, "point")} of ${what}: paint over it, erase parts of it, or train on it as it is.`, kind: "" };
  changed();
}

// -- the canvas ---------------------------------------------------------------------------------------------------
const canvasSide = () => Math.max(360, Math.min(720, Math.floor(Math.min(window.innerHeight - 235, (S.root.clientWidth || 1000) - 440))));

function size() {
  const side = canvasSide(), dpr = window.devicePixelRatio || 1;
  if (S.fr && S.fr.inner === side && S.dpr === dpr) return;
  S.dpr = dpr;
  S.fr = frame(BOUNDS, side, PADS);
  S.canvas.width = Math.round(S.fr.W * dpr); S.canvas.height = Math.round(S.fr.H * dpr);
  S.canvas.style.width = `${S.fr.W}px`; S.canvas.style.height = `${S.fr.H}px`;
  S.main.style.width = `${S.fr.W + 2}px`;  // the tools wrap above the canvas rather than push the side panel
  S.back = layer(S.fr, dpr);
  paintBack(S.back.getContext("2d"), S.fr);
}

// the axes and, dashed, the circles of radius 1 and 2 around the noise N(0, I) every path starts from
function paintBack(g, fr) {
  paintAxes(g, fr);
  const R = fr.inner / (2 * HALF);
  g.save();
  g.strokeStyle = "rgba(107, 115, 120, 0.45)"; g.lineWidth = 1; g.setLineDash([4, 4]);
  for (const r of [1, 2]) { g.beginPath(); g.arc(fr.px(0), fr.py(0), r * R, 0, 2 * Math.PI); g.stroke(); }
  g.setLineDash([]);
  g.fillStyle = "rgba(107, 115, 120, 0.8)"; g.font = "10px ui-monospace, monospace"; g.textAlign = "center"; g.textBaseline = "top";
  g.fillText("noise N(0, I): 1σ, 2σ", fr.px(0), fr.py(-2) + 4);
  g.restore();
}

function draw() {
  S.frame = 0;
  const g = S.canvas.getContext("2d"), fr = S.fr;
  g.setTransform(S.dpr, 0, 0, S.dpr, 0, 0);
  g.fillStyle = "#fff";
  g.fillRect(0, 0, fr.W, fr.H);
  g.drawImage(S.back, 0, 0, fr.W, fr.H);
  g.save();
  g.beginPath(); g.rect(fr.left, fr.top, fr.inner, fr.inner); g.clip();
  const r = S.n > 20000 ? 1 : 1.3, p = S.pts;
  g.globalAlpha = 0.7; g.fillStyle = POINT_COLOUR;
  g.beginPath();
  for (let i = 0; i < S.n; i++) g.rect(fr.px(p[2 * i]) - r, fr.py(p[2 * i + 1]) - r, 2 * r, 2 * r);
  g.fill();
  g.globalAlpha = 1;
  if (S.cursor) {
    const [x, y] = S.cursor, erase = S.stroke ? S.stroke.erase : S.erasing || S.shift;
    g.strokeStyle = erase ? "#b23a48" : "#1d2327"; g.lineWidth = 1.2;
    g.setLineDash(erase ? [3, 3] : []);
    g.beginPath(); g.arc(fr.px(x), fr.py(y), (S.radius * fr.inner) / (2 * HALF), 0, 2 * Math.PI); g.stroke();
    g.setLineDash([]);
  }
  g.restore();
  if (!S.n) {
    g.fillStyle = "#8a8f94"; g.font = "13px DejaVu Sans, sans-serif"; g.textAlign = "center"; g.textBaseline = "middle";
    g.fillText("drag here to spray points, or start from a preset", fr.left + fr.inner / 2, fr.top + fr.inner * 0.62);
  }
}

const redraw = () => { if (!S.frame) S.frame = requestAnimationFrame(draw); };

function toData(e) {
  const b = S.canvas.getBoundingClientRect();
  return S.fr.toData(e.clientX - b.left, e.clientY - b.top);
}

function bindCanvas() {
  const c = S.canvas;
  c.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    e.preventDefault();
    c.setPointerCapture(e.pointerId);
    snapshot();
    const p = toData(e);
    S.stroke = { erase: e.shiftKey || S.erasing, last: p, carry: 0, before: S.n };
    S.cursor = p;
    S.notice = null;
    dab(p[0], p[1], S.stroke.erase);
    changed();
    // holding the brush still keeps spraying, as a spray can does
    S.hold = setInterval(() => { if (S.stroke && !S.stroke.erase) { dab(...S.stroke.last, false); changed(); } }, 90);
  });
  c.addEventListener("pointermove", (e) => {
    S.cursor = toData(e);
    S.shift = e.shiftKey;
    if (S.stroke) stroke(S.cursor); else redraw();
  });
  const end = () => {
    if (!S.stroke) return;
    clearInterval(S.hold);
    if (S.n === S.stroke.before) S.undo.pop();  // a stroke that changed nothing is no step to undo
    S.stroke = null;
    changed();
  };
  c.addEventListener("pointerup", end);
  c.addEventListener("pointercancel", end);
  c.addEventListener("pointerleave", () => { if (!S.stroke) { S.cursor = null; redraw(); } });
}

// the brush from its last dab to p: a dab every half radius along the way
function stroke(p) {
  const st = S.stroke, [x0, y0] = st.last, dx = p[0] - x0, dy = p[1] - y0, dist = Math.hypot(dx, dy), gap = S.radius / 2;
  if (dist > 0) {
    let s = gap - st.carry;  // st.carry: the way gone since the last dab
    for (; s <= dist; s += gap) dab(x0 + (dx * s) / dist, y0 + (dy * s) / dist, st.erase);
    st.carry = dist - (s - gap);
  }
  st.last = p;
  changed();
}

// -- the page -------------------------------------------------------------------------------------------------
function option(value, text) { return el("option", { value, textContent: text }); }
function say(p, text, kind = "") { p.textContent = text; p.className = `paint-msg ${kind}`.trim(); }

function build(root) {
  const radius = el("input", { id: "paint-radius", type: "range", min: 0.05, max: 1.5, step: 0.05, value: 0.3 });
  const radiusOut = el("output", { id: "paint-radius-out" });
  const density = el("input", { id: "paint-density", type: "range", min: 1, max: 60, step: 1, value: 10 });
  const densityOut = el("output", { id: "paint-density-out" });
  const erase = el("button", { id: "paint-erase", type: "button", textContent: "Erase", title: "erase instead of spraying (or hold shift while dragging)" });
  const undoBtn = el("button", { id: "paint-undo", type: "button", textContent: "Undo", title: "undo the last stroke, preset or clear (ctrl-Z)" });
  const clear = el("button", { id: "paint-clear", type: "button", textContent: "Clear" });
  const pointCount = el("span", { id: "paint-count", className: "paint-count" });
  const canvas = el("canvas", { id: "paint-canvas" });
  const tools = el("div", { className: "controls paint-tools" },
    el("label", {}, "brush ", radius, radiusOut), el("label", {}, "density ", density, densityOut), erase, undoBtn, clear);
  const hint = el("p", { className: "muted paint-hint", textContent:
    "Drag to spray points where the data should be; shift-drag or Erase removes them. Axes in data units, the same square as the Flow view's. "
    + "A flow model learns to carry the noise inside the dashed circles (t = 0) onto your points (t = 1)." });
  const main = el("div", { className: "paint-main" }, tools, canvas, el("div", { className: "paint-under" }, pointCount, hint));

  const presets = el("div", { className: "paint-presets", id: "paint-presets" },
    ...Object.entries(PRESETS).map(([k, [text]]) => { const b = el("button", { type: "button", textContent: text }); b.dataset.preset = k; return b; }));
  const fromBtn = el("button", { type: "button", id: "paint-from", hidden: true });
  presets.append(fromBtn);
  const start = el("div", { className: "card" }, el("h2", { textContent: "Paint a target" }),
    el("p", { className: "muted paint-lead", textContent: `Start from a preset (${PRESET_N.toLocaleString()} points, replacing the painting; Undo brings it back), or from nothing.` }), presets);

  const name = el("input", { id: "paint-name", type: "text", maxLength: 64, spellcheck: false, autocomplete: "off", placeholder: "painted" });
  const steps = el("input", { id: "paint-steps", type: "number", min: 10, max: MAX_STEPS, step: 10, value: 1500 });
  const objective = el("select", { id: "paint-objective" }, ...OBJECTIVES.map(([k, v]) => option(k, v)));
  const net = el("select", { id: "paint-net" }, ...NETS.map(([k, v]) => option(k, v)));
  const train = el("button", { id: "paint-train", type: "button", className: "primary", textContent: "Train" });
  const check = el("p", { id: "paint-check", className: "paint-msg hint" });
  const notice = el("p", { id: "paint-notice", className: "paint-msg" });
  const form = el("div", { className: "paint-form" },
    el("label", {}, el("span", { textContent: "run name" }), name), el("label", {}, el("span", { textContent: "steps" }), steps),
    el("label", {}, el("span", { textContent: "objective" }), objective), el("label", {}, el("span", { textContent: "network" }), net));
  const trainCard = el("div", { className: "card" }, el("h2", { textContent: "Train a flow model on it" }), form,
    el("div", { className: "paint-actions" }, train, check), notice);

  const jobTitle = el("h2", { id: "paint-job-title" });
  const fill = el("div", { className: "paint-bar-fill" });
  const bar = el("div", { className: "paint-bar", id: "paint-bar", role: "progressbar" }, fill);
  bar.setAttribute("aria-valuemin", "0");
  const progress = el("p", { id: "paint-progress", className: "paint-progress" });
  const loss = el("canvas", { id: "paint-loss" });
  const cancel = el("button", { id: "paint-cancel", type: "button", textContent: "Cancel" });
  const msg = el("p", { id: "paint-msg", className: "paint-msg" });
  const jobCard = el("div", { className: "card", id: "paint-job", hidden: true }, jobTitle, bar, progress, loss,
    el("div", { className: "paint-actions" }, cancel), msg);

  const side = el("div", { className: "paint-side" }, start, trainCard, jobCard);
  root.replaceChildren(el("div", { className: "paint-wrap" }, main, side));

  S = { root, main, canvas, radius: 0.3, density: 10, erasing: false, shift: false, pts: new Float32Array(2048), n: 0, undo: [], full: false,
    stroke: null, cursor: null, frame: 0, fr: null, dpr: 1, back: null, taken: new Set(), nameTouched: false, job: null,
    el: { radius, radiusOut, density, densityOut, erase, undoBtn, clear, pointCount, name, steps, objective, net, train, check,
      notice, jobCard, jobTitle, bar, fill, progress, loss, cancel, msg, fromBtn } };
  S.check = check;
  S.notice = null;

  const brush = () => {
    S.radius = Number(radius.value); S.density = Number(density.value);
    radiusOut.textContent = S.radius.toFixed(2);
    densityOut.textContent = `${S.density} / dab`;
    redraw();
  };
  radius.addEventListener("input", brush);
  density.addEventListener("input", brush);
  brush();
  erase.addEventListener("click", () => { S.erasing = !S.erasing; erase.classList.toggle("on", S.erasing); erase.setAttribute("aria-pressed", String(S.erasing)); redraw(); });
  erase.setAttribute("aria-pressed", "false");
  undoBtn.addEventListener("click", undo);
  clear.addEventListener("click", () => { if (!S.n) return; snapshot(); S.n = 0; S.full = false; S.notice = null; changed(); });
  for (const b of presets.querySelectorAll("button[data-preset]")) {
    b.addEventListener("click", () => { const [text, sample] = PRESETS[b.dataset.preset]; replace(sample(PRESET_N), `the ${text} preset`); });
  }
  fromBtn.addEventListener("click", () => fromRun(fromBtn.dataset.run));
  name.addEventListener("input", () => { S.nameTouched = true; S.notice = null; changed(); });
  steps.addEventListener("input", changed);
  objective.addEventListener("change", save);
  net.addEventListener("change", save);
  train.addEventListener("click", startTraining);
  cancel.addEventListener("click", cancelTraining);
  document.addEventListener("keydown", (e) => {
    if (S.root.hidden) return;
    if (e.key === "Shift") { S.shift = true; redraw(); }
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName) && e.target.type !== "range";
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === "z" && !typing) { e.preventDefault(); undo(); }
  });
  document.addEventListener("keyup", (e) => { if (e.key === "Shift" && S) { S.shift = false; redraw(); } });
  window.addEventListener("resize", () => { if (!S.root.hidden) { size(); draw(); drawLoss(); } });
  bindCanvas();
  restore();
  window.latentatlas = window.latentatlas || {};
  window.latentatlas.paint = {
    get count() { return S.n; },
    points: () => Array.from(S.pts.subarray(0, 2 * S.n)),
    // data units to CSS pixels within the canvas
    screen: (x, y) => [S.fr.px(x), S.fr.py(y)],
    get job() { return S.job ? { id: S.job.id, name: S.job.name, state: S.job.state } : null; },
  };
}

// What the Train button may do now, and why not: the name, the points, the steps.
function problem() {
  const name = S.el.name.value.trim(), steps = Number(S.el.steps.value);
  if (S.job && S.job.active) return "a training is running; wait for it or cancel it";
  if (S.n < 2) return "paint at least 2 points";
  if (!name) return "give the run a name";
  if (!NAME.test(name) || name.includes("..")) return "a run name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit (no '..')";
  if (S.taken.has(name)) return `the atlas already has a run '${name}'; choose another name`;
  if (!Number.isInteger(steps) || steps < 10 || steps > MAX_STEPS) return `steps: a whole number from 10 to ${MAX_STEPS.toLocaleString()}`;
  return "";
}

function changed() {
  S.el.pointCount.textContent = `${count(S.n, "point")}${S.full ? ` (the most a training takes: ${MAX_POINTS.toLocaleString()})` : ""}`;
  S.canvas.dataset.points = String(S.n);
  S.el.undoBtn.disabled = !S.undo.length;
  S.el.clear.disabled = !S.n;
  const why = problem();
  S.el.train.disabled = !!why;
  S.el.train.title = why || "train in the background; the progress and the loss show below";
  say(S.check, why, "hint");
  say(S.el.notice, S.notice ? S.notice.text : "", S.notice ? S.notice.kind : "");
  redraw();
  save();
}

// the other runs' names (a name must be new) and a free default name
async function refreshNames() {
  let runs = [];
  try { runs = await api.json("/api/runs"); } catch (_) { return; }
  S.taken = new Set(runs.map((r) => String(r.name)));
  if (!S.nameTouched && !(S.job && S.job.active)) {
    let k = 1, name = "painted";
    while (S.taken.has(name)) name = `painted-${++k}`;
    S.el.name.value = name;
  }
  changed();
}

// a flow run's target as a start (from=RUN: the page was opened from that run's Flow view)
function showFrom() {
  const run = state.get("from");
  const ok = run && NAME.test(run) && !run.includes("..");
  S.el.fromBtn.hidden = !ok;
  if (ok) { S.el.fromBtn.dataset.run = run; S.el.fromBtn.textContent = `${run}'s target`; S.el.fromBtn.title = `${PRESET_N.toLocaleString()} samples of run ${run}'s target`; }
}

async function fromRun(run) {
  try {
    const got = await api.floats(`${api.runPath(run)}/flow/target.bin?n=${PRESET_N}&seed=0`);
    const pts = [];
    for (let i = 0; i + 1 < got.data.length; i += 2) pts.push([got.data[i], got.data[i + 1]]);
    replace(pts, `run ${run}'s target`);
  } catch (e) {
    S.notice = { text: `Could not load run ${run}'s target: ${e.message}`, kind: "bad" };
    changed();
  }
}

// -- keeping the painting and the training followed across a reload ------------------------------------------------
let saveTimer = 0;
function save() {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => {
    try {
      const bytes = new Uint8Array(S.pts.buffer, 0, 8 * S.n);
      let bin = "";
      for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
      const job = S.job && S.job.active ? { id: S.job.id, name: S.job.name, total: S.job.total } : null;
      const e = S.el, form = { name: S.nameTouched ? e.name.value : null, steps: e.steps.value, objective: e.objective.value, net: e.net.value };
      sessionStorage.setItem(STORE, JSON.stringify({ points: btoa(bin), job, form }));
    } catch (_) { /* storage full or off: the painting lives as long as the page */ }
  }, 300);
}

function restore() {
  let kept = null;
  try { kept = JSON.parse(sessionStorage.getItem(STORE) || "null"); } catch (_) { kept = null; }
  if (!kept || typeof kept !== "object") return;
  try {
    const bin = atob(String(kept.points || ""));
    const bytes = new Uint8Array(bin.length - (bin.length % 8));
    for (let i = 0; i < bytes.length; i++) bytes[i] = bin.charCodeAt(i);
    const f = new Float32Array(bytes.buffer);
    if (f.every(Number.isFinite)) setPoints(f);
  } catch (_) { /* not ours */ }
  const form = kept.form && typeof kept.form === "object" ? kept.form : {}, e = S.el;
  if (typeof form.name === "string") { e.name.value = form.name.slice(0, 64); S.nameTouched = true; }
  if (/^\d{1,6}$/.test(String(form.steps))) e.steps.value = String(form.steps);
  if (OBJECTIVES.some(([k]) => k === form.objective)) e.objective.value = form.objective;
  if (NETS.some(([k]) => k === form.net)) e.net.value = form.net;
  const j = kept.job;
  if (j && typeof j.id === "string" && typeof j.name === "string" && NAME.test(j.name)) {
    S.nameTouched = true;
    S.el.name.value = j.name;
    follow({ id: j.id, state: "running", progress: { step: 0, phase: "reconnecting" } }, j.name, Number(j.total) || 0);
  }
}

// -- training ---------------------------------------------------------------------------------------------------
async function startTraining() {
  const why = problem();
  if (why) return;
  const name = S.el.name.value.trim(), steps = Number(S.el.steps.value);
  const body = new ArrayBuffer(8 * S.n), dv = new DataView(body);
  for (let i = 0; i < 2 * S.n; i++) dv.setFloat32(4 * i, S.pts[i], true);  // little-endian whatever the machine
  const q = new URLSearchParams({ name, steps: String(steps), objective: S.el.objective.value, net: S.el.net.value });
  S.el.train.disabled = true;
  say(S.el.notice, `Sending ${count(S.n, "point")}…`);
  let answer;
  try {
    answer = await api.json(`/api/flow/train?${q}`, { method: "POST", headers: { "Content-Type": "application/octet-stream" }, body });
  } catch (e) {
    S.notice = { text: `The server refused: ${e.message}`, kind: "bad" };
    if (e.status === 409) refreshNames(); else changed();
    return;
  }
  S.notice = null;
  S.taken.add(name);
  follow(answer.job, name, steps);
}

async function cancelTraining() {
  const F = S.job;
  if (!F || !F.active) return;
  S.el.cancel.disabled = true;
  S.el.cancel.textContent = "Cancelling…";
  try {
    await api.json(`/api/jobs/${encodeURIComponent(F.id)}/cancel`, { method: "POST" });
  } catch (e) {
    say(S.el.msg, `Could not cancel: ${e.message}`, "bad");
    S.el.cancel.disabled = false;
    S.el.cancel.textContent = "Cancel";
  }
}

// Follow a training job until it ends: its step and phase, the run's loss log as it grows, then the end.
async function follow(job, name, total) {
  const F = { id: String(job.id), name, total, active: true, state: job.state, step: 0, rows: [], histStep: -1, histAt: 0, misses: 0, t0: performance.now() };
  S.job = F;
  const e = S.el;
  e.jobCard.hidden = false;
  e.jobTitle.textContent = `Training ${name}`;
  e.cancel.hidden = false; e.cancel.disabled = false; e.cancel.textContent = "Cancel";
  say(e.msg, "");
  show(F, job);
  changed();
  for (;;) {
    await sleep(400);
    if (S.job !== F) return;
    let j;
    try {
      j = await api.json(`/api/jobs/${encodeURIComponent(F.id)}`);
      F.misses = 0;
    } catch (err) {
      if (err.status === 404 || ++F.misses > 15) { end(F, "lost", err.status === 404 ? `The server no longer knows this training (${err.message}); it restarted, perhaps.` : `Lost touch with the server: ${err.message}`); return; }
      continue;
    }
    show(F, j);
    const step = Number(j.progress && j.progress.step) || 0;
    // the log grows a row every 50 steps: asked for again when the step moved on or rows are still missing
    const behind = step > F.histStep || F.rows.length < Math.floor(step / 50);
    if (behind && performance.now() - F.histAt > 900) await history(F, step);
    if (j.state !== "queued" && j.state !== "running") break;
  }
  const j = F.last;
  if (j.state === "done") {
    await history(F, F.total);
    const run = (j.result && j.result.run) || name;
    const open = () => state.set({ run: String(run), view: "flow", from: null, t: null, sampler: null, nfe: null, n: null, seed: null, field: null,
      contours: null, follow: null, compare: null }, { push: true });
    end(F, "done", `Trained ${run} (${count(F.total, "step")}, ${Math.round(j.seconds || 0)} s) and evaluated its samplers. `);
    const link = el("a", { href: `?run=${encodeURIComponent(run)}`, id: "paint-open", textContent: "Open its Flow view" });
    link.addEventListener("click", (ev) => { ev.preventDefault(); open(); });
    S.el.msg.append(link);
    if (!S.root.hidden) open();
  } else if (j.state === "cancelled") {
    end(F, "cancelled", `Cancelled at step ${F.step.toLocaleString()} of ${F.total.toLocaleString()}; the run '${name}' was not kept.`);
  } else {
    end(F, "failed", `The training failed: ${j.error || "no reason given"}`);
  }
}

function show(F, j) {
  F.last = j;
  F.state = j.state;
  const p = j.progress || {};
  F.step = Number(p.step) || 0;
  if (Number(p.total) > 0) F.total = Number(p.total);
  const e = S.el, frac = F.total ? Math.min(1, F.step / F.total) : 0;
  e.fill.style.width = `${(100 * frac).toFixed(1)}%`;
  e.bar.setAttribute("aria-valuemax", String(F.total));
  e.bar.setAttribute("aria-valuenow", String(F.step));
  e.bar.classList.toggle("busy", p.phase === "evaluating");
  e.jobCard.dataset.state = j.state;
  e.jobCard.dataset.step = String(F.step);
  const phase = j.state === "queued" ? "queued behind another job" : p.phase === "evaluating" ? "evaluating the samplers" : String(p.phase || j.state);
  const last = F.rows.length ? ` · loss ${F.rows[F.rows.length - 1].loss.toPrecision(3)}` : "";
  e.progress.textContent = `step ${F.step.toLocaleString()} / ${F.total.toLocaleString()} · ${phase}${last} · ${Math.round(Number(j.seconds) || (performance.now() - F.t0) / 1000)} s`;
}

async function history(F, step) {
  F.histAt = performance.now();
  try {
    const rows = await api.json(`${api.runPath(F.name)}/history`);
    F.rows = (Array.isArray(rows) ? rows : []).filter((r) => r && typeof r.loss === "number" && typeof r.step === "number" && r.loss > 0);
    F.histStep = step;
  } catch (_) { /* not written yet */ }
  if (S.job === F) drawLoss();
}

function end(F, how, text) {
  F.active = false;
  F.state = how;
  const e = S.el;
  e.jobCard.dataset.state = how;
  e.cancel.hidden = true;
  e.bar.classList.remove("busy");
  if (how === "done") e.fill.style.width = "100%";
  if (how === "cancelled" || how === "failed") e.progress.textContent = `step ${F.step.toLocaleString()} / ${F.total.toLocaleString()} · ${how}`;
  e.bar.classList.toggle("stopped", how !== "done");
  say(e.msg, text, how === "done" ? "ok" : "bad");
  drawLoss();
  if (how === "done") S.nameTouched = false;  // the next painting gets a free name again
  refreshNames();
  changed();
}

const niceCeil = (v) => { const p = 10 ** Math.floor(Math.log10(v)), m = v / p; return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p; };

// The loss log on a log scale against the step.
function drawLoss() {
  const F = S.job, c = S.el.loss;
  if (!F || c.offsetParent === null) return;
  const dpr = window.devicePixelRatio || 1, W = c.clientWidth || 300, H = 150;
  if (c.width !== Math.round(W * dpr)) { c.width = Math.round(W * dpr); c.height = Math.round(H * dpr); }
  c.style.height = `${H}px`;
  const g = c.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, W, H);
  const L = 46, R = 10, T = 18, B = 22, w = W - L - R, h = H - T - B;
  g.font = "10px ui-monospace, monospace"; g.fillStyle = "#6b7378";
  g.textAlign = "left"; g.textBaseline = "top";
  g.fillText("training loss (log scale)", L, 2);
  g.strokeStyle = "#c9c5bb"; g.lineWidth = 1;
  g.strokeRect(L + 0.5, T + 0.5, w - 1, h - 1);
  // the step axis grows with the training (to the whole of it once it ends), so a long run's start is legible
  const rows = F.rows, seen = Math.max(F.step, rows.length ? rows[rows.length - 1].step : 0);
  const total = F.state === "done" ? Math.max(1, F.total) : Math.min(Math.max(1, F.total), niceCeil(Math.max(100, 1.25 * seen)));
  const x = (s) => L + (Math.min(s, total) / total) * w;
  [[0, "left"], [total / 2, "center"], [total, "right"]].forEach(([s, align]) => {
    g.textAlign = align;
    g.fillText(Math.round(s).toLocaleString(), x(s) + (align === "left" ? -2 : align === "right" ? 2 : 0), T + h + 5);
  });
  if (!rows.length) {
    g.textAlign = "center"; g.textBaseline = "middle";
    g.fillText("the first loss is logged at step 50", L + w / 2, T + h / 2);
    return;
  }
  let lo = Infinity, hi = -Infinity;
  for (const r of rows) { lo = Math.min(lo, Math.log10(r.loss)); hi = Math.max(hi, Math.log10(r.loss)); }
  if (hi - lo < 0.2) { const m = (hi + lo) / 2; lo = m - 0.1; hi = m + 0.1; }
  const pad = (hi - lo) * 0.08;
  lo -= pad; hi += pad;
  const y = (v) => T + ((hi - Math.log10(v)) / (hi - lo)) * h;
  g.textAlign = "right"; g.textBaseline = "middle";
  for (const v of [10 ** (hi - pad), 10 ** (lo + pad)]) {
    g.fillText(v.toPrecision(2), L - 5, y(v));
    g.fillRect(L - 3, Math.round(y(v)), 3, 1);
  }
  g.strokeStyle = "#2f6690"; g.lineWidth = 1.6; g.lineJoin = "round";
  g.beginPath();
  rows.forEach((r, k) => (k ? g.lineTo(x(r.step), y(r.loss)) : g.moveTo(x(r.step), y(r.loss))));
  g.stroke();
  const last = rows[rows.length - 1];
  g.fillStyle = "#2f6690";
  g.beginPath(); g.arc(x(last.step), y(last.loss), 2.8, 0, 2 * Math.PI); g.fill();
}

// -- entry -------------------------------------------------------------------------------------------------------
export async function render() {
  const root = section("paint-view", "full", "");
  root.hidden = false;
  if (!S || !root.contains(S.canvas)) build(root);
  size();
  draw();
  showFrom();
  drawLoss();
  await refreshNames();
}

// The DiT view of the flow lab, all on canvas and all from float32 arrays: a strip of the captured samples
// (one per class), the sampler's state and the predicted clean image at the scrubbed step, and a layer ×
// step grid in which each cell is that block's hidden states at that step, one token per patch, coloured by
// one PCA fitted jointly over every layer, step and sample (a colour means the same direction in every
// cell). A switch shows the conditional half, the unconditional half or their difference under
// classifier-free guidance; the scrubber moves through the sampling steps; a click on a cell shows that
// block's self-attention at that step, every head. The scrubbed time lives in the URL as `t` (redrawn
// here, not re-rendered); class names and numbers from the atlas are set as textContent, never as markup.
import * as api from "../api.js";
import * as state from "../state.js";
import { section } from "../util.js";

export const KIND = "flow_dit";
export const TABS = [["dit", "DiT layers × steps"], ["metrics", "Metrics"]];
const FONT = "12px ui-sans-serif, system-ui, sans-serif";
const WHICH = { cond: "conditional", uncond: "unconditional", diff: "cond − uncond" };
const PREDICTED = { cond: "predicted", uncond: "predicted_uncond", diff: "predicted" };
const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
const el = (tag, props = {}, ...kids) => { const e = Object.assign(document.createElement(tag), props); e.append(...kids); return e; };

export async function load(ctx) {
  ctx.dit = await api.json(`${api.runPath(ctx.run)}/dit`);
}

// a float32 array with its full shape (X-Shape), fetched once per path
const cache = new Map();
function f32(path) {
  if (!cache.has(path)) {
    if (cache.size > 96) cache.delete(cache.keys().next().value);
    cache.set(path, (async () => {
      const res = await fetch(path);
      if (!res.ok) {
        let detail = `${res.status} ${res.statusText}`;
        try { detail = (await res.json()).detail || detail; } catch (_) { /* not JSON */ }
        throw new Error(detail);
      }
      return { data: new Float32Array(await res.arrayBuffer()), shape: (res.headers.get("X-Shape") || "").split(",").map(Number) };
    })().catch((e) => { cache.delete(path); throw e; }));
  }
  return cache.get(path);
}

function canvas(w, h, id) {
  const c = el("canvas", id ? { id } : {});
  const dpr = window.devicePixelRatio || 1;
  c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); c.style.width = `${w}px`; c.style.height = `${h}px`;
  c.getContext("2d").setTransform(dpr, 0, 0, dpr, 0, 0);
  return c;
}

// a grey or RGB image (C, H, W) of [0, 1] values from `data` at `off`, as an offscreen canvas of H × W pixels
function imageCanvas(data, off, C, H, W) {
  const img = new ImageData(W, H);
  for (let p = 0; p < H * W; p++) {
    for (let ch = 0; ch < 3; ch++) img.data[4 * p + ch] = Math.round(255 * clamp(data[off + (C === 3 ? ch : 0) * H * W + p], 0, 1));
    img.data[4 * p + 3] = 255;
  }
  const c = el("canvas", { width: W, height: H });
  c.getContext("2d").putImageData(img, 0, 0);
  return c;
}

// R × C tokens of RGB (channels last) from `data` at `off`, as an offscreen canvas of R × C pixels
function rgbCanvas(data, off, R, C) {
  const img = new ImageData(C, R);
  for (let p = 0; p < R * C; p++) {
    for (let ch = 0; ch < 3; ch++) img.data[4 * p + ch] = Math.round(255 * clamp(data[off + 3 * p + ch], 0, 1));
    img.data[4 * p + 3] = 255;
  }
  const c = el("canvas", { width: C, height: R });
  c.getContext("2d").putImageData(img, 0, 0);
  return c;
}

// a matrix (R × C from `off`) of attention probabilities, white (0) → dark red (its maximum)
function heatCanvas(data, off, R, C) {
  const img = new ImageData(C, R);
  let max = 1e-9;
  for (let k = 0; k < R * C; k++) max = Math.max(max, data[off + k]);
  for (let k = 0; k < R * C; k++) {
    const v = clamp(data[off + k] / max, 0, 1);
    img.data.set([Math.round(255 - 80 * v), Math.round(255 - 230 * v), Math.round(255 - 220 * v), 255], 4 * k);
  }
  const c = el("canvas", { width: C, height: R });
  c.getContext("2d").putImageData(img, 0, 0);
  return c;
}

function blit(g, src, x, y, w, h) {
  g.imageSmoothingEnabled = false;
  g.drawImage(src, x, y, w, h);
}

export async function render(ctx, view) {
  const root = section("dit-view", "full", `<div id="dit-body"></div>`);
  root.hidden = false;
  await layersView(ctx, root.querySelector("#dit-body"));
}

async function layersView(ctx, root) {
  const m = ctx.dit, base = `${api.runPath(ctx.run)}/dit`;
  const [C, H, W] = m.image, [gr, gc] = m.grid, L = m.layers, S = m.steps, NH = m.heads, T = m.tokens;
  const sample = clamp(state.getInt("dsample", 0), 0, m.n - 1);
  const which = WHICH[state.get("half")] ? state.get("half") : "cond";
  const half = which === "uncond" ? "uncond" : "cond";
  const [cl, cs] = (state.get("cell", "") || "").split(".").map((s) => (s === "" ? NaN : Number(s)));
  const cell = Number.isInteger(cl) && Number.isInteger(cs) && cl >= 0 && cl < L && cs >= 0 && cs < S ? [cl, cs] : null;
  const tWanted = Number.parseFloat(state.get("t", ""));
  // the scrubbed step: the one nearest the URL's time t, else the clicked cell's, else the first
  let step = cell ? cell[1] : 0;
  if (Number.isFinite(tWanted)) step = m.times.reduce((best, t, k) => (Math.abs(t - tWanted) < Math.abs(m.times[best] - tWanted) ? k : best), 0);

  const [finals, rgb, states, predicted, att] = await Promise.all([
    f32(`${base}/finals.bin`), f32(`${base}/rgb.bin?sample=${sample}&which=${which}`),
    f32(`${base}/images.bin?sample=${sample}&what=state`), f32(`${base}/images.bin?sample=${sample}&what=${PREDICTED[which]}`),
    cell ? f32(`${base}/attention.bin?sample=${sample}&layer=${cell[0]}&step=${cell[1]}&half=${half}`) : null,
  ]);
  const px = C * H * W, className = (k) => m.classes[k] ?? String(k);

  // the strip of captured samples
  const strip = el("div", { id: "dit-strip" });
  strip.style.cssText = "display:flex;flex-wrap:wrap;gap:4px;margin:6px 0 12px";
  for (let k = 0; k < m.n; k++) {
    const c = canvas(40, 40);
    blit(c.getContext("2d"), imageCanvas(finals.data, k * px, C, H, W), 0, 0, 40, 40);
    const tile = el("div", { className: `dit-tile${k === sample ? " active" : ""}`, title: `sample ${k}, class ${className(m.labels[k])}` }, c,
      el("span", { className: "muted", style: "font-size:11px", textContent: className(m.labels[k]) }));
    tile.style.cssText = `display:flex;flex-direction:column;align-items:center;cursor:pointer;padding:2px;border-radius:4px;border:2px solid ${k === sample ? "#d9480f" : "transparent"}`;
    tile.dataset.index = k;
    tile.addEventListener("click", () => state.set({ dsample: k, cell: null }));
    strip.append(tile);
  }

  // the switch: conditional, unconditional, difference
  const switcher = el("div", { id: "dit-which", className: "controls" });
  for (const [key, label] of Object.entries(WHICH)) {
    const b = el("button", { textContent: label, className: key === which ? "active" : "" });
    if (key === which) b.style.cssText = "background:#d9480f;color:#fff;border-color:#d9480f";
    b.dataset.which = key;
    b.setAttribute("aria-pressed", String(key === which));
    b.addEventListener("click", () => state.set({ half: key === "cond" ? null : key }));
    switcher.append(b);
  }

  // the scrubber
  const slider = el("input", { type: "range", id: "dit-step", min: 0, max: S - 1, step: 1, value: step });
  slider.style.width = "320px";
  const tLabel = el("span", { id: "dit-t" });
  const play = el("button", { id: "dit-play", textContent: "Play" });

  // the images at the scrubbed step: the state x_t and the clean image predicted from it
  const big = 168;
  const stateCanvas = canvas(big, big, "dit-state"), predCanvas = canvas(big, big, "dit-predicted");
  const stateCap = el("figcaption"), predCap = el("figcaption");

  // the layer × step grid
  const size = clamp(Math.floor(820 / S) - 3, 18, 40), gap = 3, left = 58, top = 18;
  const gridCanvas = canvas(left + S * (size + gap), top + L * (size + gap) + 4, "dit-grid");
  const cellRGB = [];
  for (let l = 0; l < L; l++) {
    cellRGB.push([]);
    for (let s = 0; s < S; s++) cellRGB[l].push(rgbCanvas(rgb.data, ((l * S + s) * gr * gc) * 3, gr, gc));
  }
  const drawGrid = () => {
    const g = gridCanvas.getContext("2d");
    g.clearRect(0, 0, gridCanvas.width, gridCanvas.height);
    g.font = FONT; g.fillStyle = "#555"; g.textBaseline = "middle";
    for (let l = 0; l < L; l++) g.fillText(`layer ${l}`, 2, top + l * (size + gap) + size / 2);
    g.textBaseline = "alphabetic";
    for (let s = 0; s < S; s += Math.max(1, Math.round(S / 10))) g.fillText(`${s}`, left + s * (size + gap), 12);
    for (let l = 0; l < L; l++) for (let s = 0; s < S; s++) blit(g, cellRGB[l][s], left + s * (size + gap), top + l * (size + gap), size, size);
    g.strokeStyle = "#d9480f"; g.lineWidth = 2;
    g.strokeRect(left + step * (size + gap) - 1.5, top - 1.5, size + 3, L * (size + gap) - gap + 3);
    if (cell) { g.strokeStyle = "#1c7ed6"; g.strokeRect(left + cell[1] * (size + gap) - 1, top + cell[0] * (size + gap) - 1, size + 2, size + 2); }
  };
  gridCanvas.style.cursor = "pointer";
  gridCanvas.addEventListener("click", (ev) => {
    const r = gridCanvas.getBoundingClientRect();
    const s = Math.floor((ev.clientX - r.left - left) / (size + gap)), l = Math.floor((ev.clientY - r.top - top) / (size + gap));
    if (s >= 0 && s < S && l >= 0 && l < L) state.set({ cell: `${l}.${s}`, t: m.times[s].toFixed(4) });
  });

  const drawStep = () => {
    const sp = stateCanvas.getContext("2d"), pp = predCanvas.getContext("2d");
    blit(sp, imageCanvas(states.data, step * px, C, H, W), 0, 0, big, big);
    blit(pp, imageCanvas(predicted.data, step * px, C, H, W), 0, 0, big, big);
    const t = m.times[step];
    tLabel.textContent = `step ${step + 1} of ${S}, t = ${t.toFixed(3)} (0 noise, 1 data)`;
    stateCap.textContent = `the state x_t at t = ${t.toFixed(3)}`;
    predCap.textContent = `${which === "uncond" ? "unconditional" : `guided (scale ${m.scale})`} prediction x̂1 = x_t + (1 − t)·v`;
    drawGrid();
  };
  slider.addEventListener("input", () => {
    step = Number(slider.value);
    state.set({ t: m.times[step].toFixed(4) });  // a quiet key: the view redraws itself
    drawStep();
  });
  let timer = null;
  play.addEventListener("click", () => {
    if (timer) { clearInterval(timer); timer = null; play.textContent = "Play"; return; }
    play.textContent = "Pause";
    timer = setInterval(() => {
      if (!document.body.contains(slider)) { clearInterval(timer); timer = null; return; }
      step = (step + 1) % S; slider.value = step; drawStep();
    }, 160);
  });

  // the attention of the clicked cell: one T × T matrix per head (rows: queries, columns: keys), and the
  // attention each patch receives (the column means) on the patch grid
  const attention = el("div", { id: "dit-attention" });
  if (cell && att) {
    const side = clamp(Math.floor(520 / Math.max(NH, 1)) - 12, 64, 160);
    const heads = el("div", { style: "display:flex;gap:12px;flex-wrap:wrap" });
    for (let h = 0; h < NH; h++) {
      const c = canvas(side, side), g = c.getContext("2d");
      blit(g, heatCanvas(att.data, h * T * T, T, T), 0, 0, side, side);
      const recv = new Float32Array(T);
      for (let q = 0; q < T; q++) for (let k = 0; k < T; k++) recv[k] += att.data[h * T * T + q * T + k] / T;
      const r = canvas(side, side);
      blit(r.getContext("2d"), heatCanvas(recv, 0, gr, gc), 0, 0, side, side);
      c.dataset.head = h;
      heads.append(el("figure", { style: "margin:0" }, el("div", { style: "display:flex;gap:6px" }, c, r),
        el("figcaption", { textContent: `head ${h}: queries × keys (left), attention each patch receives (right)` })));
    }
    attention.append(el("h2", { textContent: `Self-attention of layer ${cell[0]} at step ${cell[1] + 1} (t = ${m.times[cell[1]].toFixed(3)}), ${half === "cond" ? "conditional" : "unconditional"} half` }), heads);
  } else {
    attention.append(el("p", { className: "muted", textContent: "Click a cell of the grid to see that block's self-attention at that step." }));
  }

  const pca = m.pca || {};
  root.replaceChildren(
    el("div", { className: "facts" },
      el("span", { textContent: `${m.n} samples, ${m.sampler} with ${m.nfe} NFE, guidance scale ${m.scale}` }),
      el("span", { className: "muted", textContent: `${L} layers, ${NH} heads, ${gr}×${gc} patches of ${m.patch}×${m.patch}; one PCA over every layer and step explains ${((pca.explained || []).reduce((a, b) => a + b, 0) * 100).toFixed(0)}% of the variance` })),
    strip,
    el("div", { style: "display:flex;gap:24px;align-items:center;flex-wrap:wrap;margin-bottom:10px" }, switcher, el("label", {}, "step ", slider), play, tLabel),
    el("div", { style: "display:flex;gap:28px;align-items:flex-start;flex-wrap:wrap" },
      el("figure", { style: "margin:0" }, stateCanvas, stateCap), el("figure", { style: "margin:0" }, predCanvas, predCap),
      el("div", {}, el("h2", { textContent: `Hidden states per layer and step (${WHICH[which]}), PCA → RGB` }), gridCanvas,
        el("p", { className: "muted", style: "max-width:760px;font-size:12px",
          textContent: which === "diff"
            ? "The difference of the conditional and unconditional hidden states through the same three directions, on its own scale: grey is no difference."
            : "Each cell is one block's output at one step, a patch per pixel; red, green and blue are the first three principal components of all hidden states together, so equal colours mean equal directions in any cell." }))),
    attention);
  drawStep();
}

// -- the metrics tab's charts: the training loss, and per class the probe's accuracy and the energy distance
export const metricsSubject = (m) => `${m.n ?? "?"} generated digits against real ones`;

export async function charts(ctx, m, history, Plotly) {
  const { FONT: PFONT, PLOT_CONFIG } = await import("../metrics.js");
  const rows = history.filter((r) => typeof r.loss === "number");
  Plotly.newPlot("curves", [{ type: "scatter", mode: rows.length > 1 ? "lines" : "markers", x: rows.map((r) => r.step), y: rows.map((r) => r.loss), name: "loss" }],
    { title: { text: "training loss (squared error summed over pixels)", font: { size: 13 } }, margin: { l: 55, r: 10, t: 36, b: 40 }, font: PFONT,
      xaxis: { title: { text: "step" } }, yaxis: { type: "log" } }, PLOT_CONFIG);
  const scales = m.per_scale ? Object.keys(m.per_scale) : [];
  if (!scales.length) return;
  const main = m.per_scale[scales[0]], names = main.per_class.map((r) => String(r.class));
  const ed = main.per_class.map((r) => r.energy_distance_test);
  Plotly.newPlot("kl-chart", [
    { type: "bar", name: "probe accuracy", x: names, y: main.per_class.map((r) => r.probe_accuracy), marker: { color: "#2f6690" } },
    { type: "scatter", mode: "markers", name: "energy distance to held-out digits", x: names, y: ed.map((e) => e.value), yaxis: "y2",
      error_y: { type: "data", symmetric: false, array: ed.map((e) => e.ci_high - e.value), arrayminus: ed.map((e) => e.value - e.ci_low) }, marker: { color: "#d9480f" } }],
  { title: { text: `per class at guidance ${scales[0]}`, font: { size: 13 } }, margin: { l: 50, r: 55, t: 36, b: 40 }, font: PFONT,
    xaxis: { type: "category", title: { text: "digit" } }, yaxis: { range: [0, 1], title: { text: "probe accuracy" } },
    yaxis2: { overlaying: "y", side: "right", title: { text: "energy distance" }, showgrid: false }, legend: { orientation: "h", y: -0.25 } }, PLOT_CONFIG);
}

// The ViT views of the attention lab, all on canvas and all from float32 arrays: a strip of test images
// (true → predicted class), the chosen image with its patch grid, a layer × head grid of the model's real
// CLS attention over the patches (click one to lay it over the image), attention rollout and attention
// flow side by side, the class probabilities; and for the model the position-embedding similarity grid
// and the patch-embedding filters (the ViT paper's figure 7). Class names are drawn with fillText or set
// as textContent: text from the atlas never becomes markup.
import * as api from "../api.js";
import * as state from "../state.js";
import { section } from "../util.js";

export const TABS = [["vit", "ViT attention"], ["vit-embed", "Embeddings"], ["metrics", "Metrics"]];
const FONT = "12px ui-sans-serif, system-ui, sans-serif";
import { el } from "./dom.js";
const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));

export async function load(ctx) {
  ctx.vit = await api.json(`${api.runPath(ctx.run)}/vit`);
}

// a float32 array with its full shape (X-Shape), fetched once per path
const cache = new Map();
function f32(path) {
  if (!cache.has(path)) {
    if (cache.size > 64) cache.delete(cache.keys().next().value);
    cache.set(path, (async () => {
      const res = await fetch(path);
      if (!res.ok) {
        let detail = `${res.status} ${res.statusText}`;
        try { detail = (await res.json()).detail || detail; } catch (_) { /* not JSON */ }
        throw new Error(detail);
      }
      return { data: new Float32Array(await res.arrayBuffer()), shape: (res.headers.get("X-Shape") || "").split(",").map(Number),
        headers: res.headers };
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

// an image (C, H, W) of [0, 1] values from `data` at `off`, as an offscreen canvas of H × W pixels
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

// weights (rows × cols from `off`) as a translucent overlay, red (low) → yellow (high), transparent at 0:
// a head's attention scaled to its maximum; rollout and flow (`range`), whose mixing with the identity
// flattens them, stretched over their own minimum … maximum
function overlayCanvas(data, off, R, C, range = false) {
  const img = new ImageData(C, R);
  let max = -Infinity, min = Infinity;
  for (let k = 0; k < R * C; k++) { max = Math.max(max, data[off + k]); min = Math.min(min, data[off + k]); }
  const lo = range ? min : 0, span = Math.max(max - lo, 1e-9);
  for (let k = 0; k < R * C; k++) {
    const v = clamp((data[off + k] - lo) / span, 0, 1);
    img.data.set([255, Math.round(255 * v), Math.round(60 * v * v), Math.round(235 * v)], 4 * k);
  }
  const c = el("canvas", { width: C, height: R });
  c.getContext("2d").putImageData(img, 0, 0);
  return c;
}

// the image (darkened under an overlay so the overlay reads), the overlay, and the patch grid
function drawTile(g, size, picture, overlay, grid, { lines = true } = {}) {
  g.imageSmoothingEnabled = false;
  g.fillStyle = "#000";
  g.fillRect(0, 0, size, size);
  g.globalAlpha = overlay ? 0.55 : 1;
  g.drawImage(picture, 0, 0, size, size);
  g.globalAlpha = 1;
  if (overlay) g.drawImage(overlay, 0, 0, size, size);
  if (lines) {
    g.strokeStyle = "rgba(120, 190, 255, 0.55)";
    g.lineWidth = 1;
    g.beginPath();
    for (let k = 1; k < grid[0]; k++) { const y = Math.round((k * size) / grid[0]) + 0.5; g.moveTo(0, y); g.lineTo(size, y); }
    for (let k = 1; k < grid[1]; k++) { const x = Math.round((k * size) / grid[1]) + 0.5; g.moveTo(x, 0); g.lineTo(x, size); }
    g.stroke();
  }
}

export async function render(ctx, view) {
  const root = section("vit-view", "full", `<div id="vit-body"></div>`);
  root.hidden = false;
  const body = root.querySelector("#vit-body");
  if (view === "vit-embed") await embeddingsView(ctx, body);
  else await attentionView(ctx, body);
}

// -- the attention view -------------------------------------------------------------------------------------
async function attentionView(ctx, root) {
  const m = ctx.vit, base = `${api.runPath(ctx.run)}/vit`;
  const [C, H, W] = m.image, grid = m.grid, L = m.n_layers, NH = m.n_heads;
  const strip = m.strip;
  const index = clamp(state.getInt("img", 0), 0, m.n_test - 1);
  const [layerSel, headSel] = (state.get("head", "") || "").split(".").map((s) => (s === "" ? NaN : Number(s)));
  const chosen = Number.isInteger(layerSel) && Number.isInteger(headSel) && layerSel < L && headSel < NH ? [layerSel, headSel] : null;
  const dataName = (k) => (m.data_classes[k] ?? String(k));
  const modelName = (k) => (m.classes.length ? m.classes[k] ?? String(k) : String(k));

  const [imgs, one, att, probs] = await Promise.all([
    f32(`${base}/images.bin?start=0&count=${strip.count}`),
    index < strip.count ? null : f32(`${base}/images.bin?start=${index}&count=1`),
    f32(`${base}/${index}/attention.bin`), f32(`${base}/${index}/probs.bin`),
  ]);
  const mapsWanted = f32(`${base}/${index}/maps.bin`);  // flow solves a max-flow problem per token: drawn when it comes
  const px = H * W * C;
  const pictureOf = (k) => imageCanvas(imgs.data, k * px, C, H, W);
  const picture = one ? imageCanvas(one.data, 0, C, H, W) : pictureOf(index);
  const cells = grid[0] * grid[1];

  // the strip of test images
  const tiles = el("div", { id: "vit-strip" });
  tiles.style.cssText = "display:flex;flex-wrap:wrap;gap:2px;margin:6px 0 16px";
  for (let k = 0; k < strip.count; k++) {
    const c = canvas(34, 34);
    drawTile(c.getContext("2d"), 34, pictureOf(k), null, grid, { lines: false });
    const pred = strip.predicted ? strip.predicted[k] : null;
    const wrong = pred !== null && m.classes.length === m.data_classes.length && pred !== strip.labels[k];
    const cap = el("span", { className: wrong ? "vit-wrong" : "muted", style: `font-size:11px${wrong ? ";color:#c92a2a;font-weight:600" : ""}`, textContent: pred === null ? dataName(strip.labels[k]) : `${dataName(strip.labels[k])}→${modelName(pred)}` });
    const tile = el("div", { className: `vit-tile${k === index ? " active" : ""}`, title: `test image ${k}` }, c, cap);
    tile.style.cssText = `display:flex;flex-direction:column;align-items:center;cursor:pointer;padding:2px;border-radius:4px;border:2px solid ${k === index ? "#d9480f" : "transparent"}`;
    tile.dataset.index = k;
    tile.addEventListener("click", () => state.set({ img: k }));
    tiles.append(tile);
  }

  // the chosen image with its patch grid, and the chosen head laid over it
  const big = 288;
  const main = canvas(big, big, "vit-image");
  const overlayOf = (l, h) => overlayCanvas(att.data, (l * NH + h) * cells, grid[0], grid[1]);
  drawTile(main.getContext("2d"), big, picture, chosen ? overlayOf(...chosen) : null, grid);
  const mainCap = el("figcaption", { id: "vit-image-caption",
    textContent: chosen ? `layer ${chosen[0]}, head ${chosen[1]}: CLS attention over the ${cells} patches` : `test image ${index} with its ${grid[0]}×${grid[1]} patch grid` });
  const clear = el("button", { textContent: "Clear overlay", id: "vit-clear", disabled: !chosen });
  clear.addEventListener("click", () => state.set({ head: null }));

  // rollout and flow: the image until they arrive
  const mapCanvases = [];
  const mapFigure = (k, label, id) => {
    const c = canvas(200, 200, id);
    drawTile(c.getContext("2d"), 200, picture, null, grid);
    const cap = el("figcaption", { textContent: `${label} (computing…)` });
    mapCanvases.push([c, cap, label]);
    return el("figure", {}, c, cap);
  };

  // class probabilities
  const probFigure = () => {
    const n = probs.data.length;
    if (!n) return el("p", { className: "muted", textContent: "This model has no classifier head (a bare ViTModel)." });
    const order = [...probs.data.keys()].sort((a, b) => probs.data[b] - probs.data[a]).slice(0, 10);
    const rowH = 18, w = 240, c = canvas(w, order.length * rowH + 4, "vit-probs"), g = c.getContext("2d");
    g.font = FONT; g.textBaseline = "middle";
    order.forEach((k, r) => {
      const y = r * rowH + 2, v = probs.data[k];
      g.fillStyle = r === 0 ? "#d9480f" : "#4a7fb5";
      g.fillRect(80, y + 3, (w - 130) * v, rowH - 6);
      g.fillStyle = "#222";
      g.fillText(modelName(k).slice(0, 12), 2, y + rowH / 2);
      g.fillText(`${(100 * v).toFixed(1)}%`, 84 + (w - 130) * v, y + rowH / 2);
    });
    const truth = strip && index < strip.count ? strip.labels[index] : null;
    const said = el("p", { id: "vit-prediction" });
    said.textContent = `predicted ${modelName(order[0])}` + (truth !== null ? `; true class ${dataName(truth)}` : "");
    return el("div", {}, said, c);
  };

  // the layer × head grid
  const cell = clamp(Math.floor(560 / Math.max(NH, 1)), 44, 84);
  const headGrid = el("div", { id: "vit-heads" });
  headGrid.style.cssText = "display:grid;gap:4px;align-items:center;justify-items:center";
  headGrid.style.gridTemplateColumns = `60px repeat(${NH}, ${cell}px)`;
  headGrid.append(el("span"), ...Array.from({ length: NH }, (_, h) => el("span", { className: "muted", textContent: `head ${h}` })));
  for (let l = 0; l < L; l++) {
    headGrid.append(el("span", { className: "muted", textContent: `layer ${l}` }));
    for (let h = 0; h < NH; h++) {
      const c = canvas(cell, cell);
      drawTile(c.getContext("2d"), cell, picture, overlayOf(l, h), grid, { lines: false });
      const on = chosen && chosen[0] === l && chosen[1] === h;
      c.className = `vit-head${on ? " active" : ""}`;
      c.style.cursor = "pointer";
      c.style.outline = on ? "3px solid #d9480f" : "1px solid #ccc";
      c.dataset.layer = l; c.dataset.head = h;
      c.title = `layer ${l}, head ${h}`;
      c.addEventListener("click", () => state.set({ head: on ? null : `${l}.${h}` }));
      headGrid.append(c);
    }
  }

  root.replaceChildren(
    el("div", { className: "facts" }, el("span", { textContent: `${m.data} test images (true→predicted), click one` }),
      el("span", { className: "muted", textContent: m.origin === "transformers" ? "a transformers ViT folder" : "a ViT trained here" })),
    tiles,
    el("div", { className: "vit-row", style: "display:flex;gap:28px;align-items:flex-start;flex-wrap:wrap" },
      el("figure", { className: "vit-main", style: "margin:0" }, main, mainCap, clear),
      el("div", {}, el("div", { className: "pair" }, mapFigure(0, "attention rollout (CLS)", "vit-rollout"), mapFigure(1, "attention flow (CLS)", "vit-flow")),
        el("p", { className: "muted", style: "max-width:420px;font-size:12px",
          textContent: "Rollout multiplies every layer's head-averaged attention mixed half-and-half with the residual; flow takes the maximum flow through the same layers (Abnar & Zuidema 2020). Each is stretched over its own range; a head's map is scaled to its maximum." })),
      probFigure()),
    el("h2", { textContent: "CLS attention per layer and head (click one to lay it over the image)" }),
    headGrid);
  const maps = await mapsWanted;
  mapCanvases.forEach(([c, cap, label], k) => {
    drawTile(c.getContext("2d"), 200, picture, overlayCanvas(maps.data, k * cells, grid[0], grid[1], true), grid);
    cap.textContent = label;
  });
}

// -- the model's embeddings -----------------------------------------------------------------------------------
// cosine similarity −1 … 1: blue → white → red
function diverging(v) {
  const x = clamp(v, -1, 1);
  return x >= 0 ? [255, Math.round(255 - 200 * x), Math.round(255 - 220 * x)] : [Math.round(255 + 210 * x), Math.round(255 + 150 * x), 255];
}

async function embeddingsView(ctx, root) {
  const m = ctx.vit, base = `${api.runPath(ctx.run)}/vit`;
  const [pos, filt] = await Promise.all([f32(`${base}/posemb.bin`), f32(`${base}/filters.bin`)]);
  const [P, R, Cc] = pos.shape;
  // the position-embedding similarity: one small map per patch, laid out on the patch grid
  const mini = clamp(Math.floor(400 / R), 12, 96), gap = 6, side = R * mini + (R - 1) * gap;
  const pc = canvas(side, side, "vit-posemb"), g = pc.getContext("2d");
  for (let k = 0; k < P; k++) {
    const img = new ImageData(Cc, R);
    for (let q = 0; q < R * Cc; q++) img.data.set([...diverging(pos.data[k * R * Cc + q]), 255], 4 * q);
    const t = el("canvas", { width: Cc, height: R });
    t.getContext("2d").putImageData(img, 0, 0);
    g.imageSmoothingEnabled = false;
    g.drawImage(t, (k % Cc) * (mini + gap), Math.floor(k / Cc) * (mini + gap), mini, mini);
  }
  // the patch-embedding filters' principal components, each scaled to its own largest magnitude
  const [k, ch, p] = filt.shape;
  const explained = (filt.headers.get("X-Explained") || "").split(",").map(Number);
  const fs = clamp(Math.floor(64 / p) * p, p * 4, 96), cols = Math.min(k, 7);
  const fc = canvas(cols * (fs + 8), Math.ceil(k / cols) * (fs + 22), "vit-filters"), fg = fc.getContext("2d");
  fg.font = FONT; fg.textBaseline = "top"; fg.fillStyle = "#555";
  for (let i = 0; i < k; i++) {
    const off = i * ch * p * p;
    let max = 1e-9;
    for (let q = 0; q < ch * p * p; q++) max = Math.max(max, Math.abs(filt.data[off + q]));
    const img = new ImageData(p, p);
    for (let q = 0; q < p * p; q++) {
      for (let c = 0; c < 3; c++) img.data[4 * q + c] = Math.round(127.5 + 127.5 * filt.data[off + (ch === 3 ? c : 0) * p * p + q] / max);
      img.data[4 * q + 3] = 255;
    }
    const t = el("canvas", { width: p, height: p });
    t.getContext("2d").putImageData(img, 0, 0);
    const x = (i % cols) * (fs + 8), y = Math.floor(i / cols) * (fs + 22);
    fg.imageSmoothingEnabled = false;
    fg.drawImage(t, x, y, fs, fs);
    fg.fillText(`PC${i + 1} ${Number.isFinite(explained[i]) ? (100 * explained[i]).toFixed(0) + "%" : ""}`, x, y + fs + 3);
  }
  root.replaceChildren(
    el("div", { className: "grid2" },
      el("div", { className: "card" }, el("h2", { textContent: "Position embedding similarity" }),
        el("p", { className: "muted", textContent: `Cosine similarity of each patch's learned position embedding with every other patch's (${R}×${Cc} patches; each small map is one patch, placed where that patch sits; red = similar, blue = opposite).` }),
        pc),
      el("div", { className: "card" }, el("h2", { textContent: "Patch-embedding filters" }),
        el("p", { className: "muted", textContent: `The first ${k} principal components of the patch embedding's ${m.patch}×${m.patch} filters (grey = 0), with each one's share of the variance.` }),
        fc)));
}

// -- the metrics tab's charts: training loss and accuracy, and the held-out accuracy per class ---------------------
export async function charts(ctx, m, history, Plotly) {
  const { FONT: PFONT, PLOT_CONFIG } = await import("../metrics.js");
  const steps = history.map((r) => r.step);
  Plotly.newPlot("curves", [
    { type: "scatter", mode: "lines", name: "training loss (cross-entropy)", x: steps, y: history.map((r) => r.loss) },
    { type: "scatter", mode: "lines", name: "training-batch accuracy", x: steps, y: history.map((r) => r.accuracy), yaxis: "y2", line: { dash: "dot" } }],
  { title: { text: "training", font: { size: 13 } }, margin: { l: 55, r: 55, t: 36, b: 40 }, font: PFONT, xaxis: { title: { text: "step" } },
    yaxis: { title: { text: "nats per image" }, type: "log" }, yaxis2: { title: { text: "accuracy" }, overlaying: "y", side: "right", range: [0, 1], tickmode: "linear", tick0: 0, dtick: 0.2, showgrid: false },
    legend: { orientation: "h", y: -0.25 } }, PLOT_CONFIG);
  const acc = (m.metrics || {}).test_accuracy, per = acc && acc.details ? acc.details.per_class : null;
  if (!per) return;
  const names = Object.keys(per);
  Plotly.newPlot("kl-chart", [{ type: "bar", x: names, y: names.map((k) => per[k]), marker: { color: "#2f6690" } }],
    { title: { text: `held-out accuracy per class (all: ${(100 * acc.value).toFixed(1)}%)`, font: { size: 13 } }, margin: { l: 50, r: 10, t: 36, b: 40 },
      font: PFONT, yaxis: { range: [0, 1], title: { text: "accuracy" } }, xaxis: { type: "category" } }, PLOT_CONFIG);
}

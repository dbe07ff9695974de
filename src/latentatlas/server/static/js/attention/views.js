// The attention views, all on canvas and all reading float16 windows: the head view (two virtualised
// token columns joined by lines), the model view (layer × head thumbnails), the matrix view (one head,
// zoomable), the neuron view (q, k, q⊙k, scores, softmax) and the head atlas (every head's statistics).
// Tokens are drawn with fillText or set as textContent: text from the atlas never becomes markup.
import * as api from "../api.js";
import * as state from "../state.js";
import { fmt } from "../util.js";
import { HEAD_COLOURS, headColour, headsOf, heat, neuronOf, thumbsOf, windowOf } from "./data.js";
import { canvas, el } from "./dom.js";

const ROW = 18; // head view: pixels per token row
const FONT = "12px ui-monospace, SFMono-Regular, Menlo, monospace";
const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));
// a token as a reader sees it: byte-level BPE's and SentencePiece's space and newline marks made visible,
// control characters as dots
const MARKS = { "Ġ": "␣", "▁": "␣", "Ċ": "↵", "ĉ": "⇥" };
const shown = (t) => String(t).replace(/[ĠĊĉ▁]/g, (c) => MARKS[c]).replace(/[\u0000-\u001f]/g, "·");

// A (rows × cols) block of `data` from `off` as an offscreen canvas, scaled to the block's maximum or, with
// `rows`, each row to its own maximum: far into a long text a query's weights are ~1/position, so one scale
// for the whole block leaves everything past the first rows white
function heatCanvas(data, off, R, C, rows = false) {
  const img = new ImageData(C, R);
  let max = 1e-6;
  if (!rows) for (let k = 0; k < R * C; k++) max = Math.max(max, data[off + k]);
  for (let i = 0; i < R; i++) {
    if (rows) { max = 1e-6; for (let j = 0; j < C; j++) max = Math.max(max, data[off + i * C + j]); }
    for (let j = 0; j < C; j++) img.data.set([...heat(data[off + i * C + j] / max), 255], 4 * (i * C + j));
  }
  const tmp = el("canvas", { width: C, height: R });
  tmp.getContext("2d").putImageData(img, 0, 0);
  return tmp;
}

// whole: one scale per image; rows: each query row to its own maximum (the default past 256 tokens)
const rowScaled = (meta) => state.get("scale", meta.n_tokens > 256 ? "rows" : "whole") === "rows";
function scaleSelect(meta) {
  const s = el("select", { id: "att-scale" }, el("option", { value: "whole", textContent: "whole image" }), el("option", { value: "rows", textContent: "each query row" }));
  s.value = rowScaled(meta) ? "rows" : "whole";
  s.addEventListener("change", () => state.set({ scale: s.value }));
  return el("label", {}, "Scale to ", s);
}

function layerSelect(n, value, onChange) {
  const s = el("select", { id: "att-layer" }, ...Array.from({ length: n }, (_, i) => el("option", { value: i, textContent: `layer ${i}` })));
  s.value = String(value);
  s.addEventListener("change", () => onChange(Number(s.value)));
  return el("label", {}, "Layer ", s);
}

// -- head view ------------------------------------------------------------------------------------------
export async function headView(ctx, root, meta) {
  const t = meta.n_tokens, H = meta.n_heads;
  const layer = clamp(state.getInt("layer", 0), 0, meta.n_layers - 1);
  const on = new Set((state.get("heads", "") || [...Array(H).keys()].join(",")).split(",").filter((s) => s !== "").map(Number).filter((h) => h < H));
  const width = Math.min(760, root.clientWidth - 20 || 760), height = 560, rows = Math.floor(height / ROW);
  const view = { q0: clamp(state.getInt("q0", 0), 0, Math.max(0, t - rows)), k0: clamp(state.getInt("k0", 0), 0, Math.max(0, t - rows)), hover: null };
  const chips = el("span", { className: "chips" }, ...Array.from({ length: H }, (_, h) => {
    const c = el("span", { className: "chip head-chip", textContent: `head ${h}` });
    c.dataset.head = h;
    c.style.borderColor = headColour(h);
    c.style.background = on.has(h) ? headColour(h) + "33" : "";
    c.addEventListener("click", () => { if (on.has(h)) on.delete(h); else on.add(h); state.set({ heads: [...on].sort((a, b) => a - b).join(",") }); });
    return c;
  }));
  const status = el("span", { id: "head-status", className: "muted" });
  const jump = el("input", { type: "number", min: 0, max: t - 1, value: view.q0, id: "head-jump", style: "width:80px" });
  jump.addEventListener("change", () => { view.q0 = clamp(Number(jump.value) || 0, 0, Math.max(0, t - rows)); view.k0 = view.q0; draw(); });
  root.replaceChildren(el("div", { className: "controls" }, layerSelect(meta.n_layers, layer, (l) => state.set({ layer: l })), chips,
    el("label", {}, "Go to token ", jump), status));
  const wrap = el("div", { style: "position:relative" });
  root.append(wrap);
  const cv = canvas(wrap, width, height, "head-canvas");
  const g = cv.getContext("2d");
  const colW = Math.min(200, width * 0.3), xL = colW, xR = width - colW;
  let data = null, seq = 0;

  async function fetchWindow() {
    const my = ++seq;
    const w = await windowOf(ctx.run, meta.id, { layer, r0: view.q0, r1: Math.min(t, view.q0 + rows), c0: view.k0, c1: Math.min(t, view.k0 + rows), max: rows });
    if (my === seq) { data = w; paint(); }
  }

  function paint() {
    g.clearRect(0, 0, width, height);
    g.font = FONT;
    g.textBaseline = "middle";
    const nq = Math.min(rows, t - view.q0), nk = Math.min(rows, t - view.k0);
    for (let i = 0; i < nq; i++) {
      const hot = view.hover && view.hover.side === "q" && view.hover.i === view.q0 + i;
      g.fillStyle = hot ? "#d1495b" : "#223";
      g.textAlign = "right";
      g.fillText(shown(meta.tokens[view.q0 + i]).slice(0, 24), xL - 8, i * ROW + ROW / 2);
    }
    for (let j = 0; j < nk; j++) {
      const hot = view.hover && view.hover.side === "k" && view.hover.i === view.k0 + j;
      g.fillStyle = hot ? "#d1495b" : "#223";
      g.textAlign = "left";
      g.fillText(shown(meta.tokens[view.k0 + j]).slice(0, 24), xR + 8, j * ROW + ROW / 2);
    }
    if (!data) return;
    const [hh, R, C] = data.shape;
    let drawn = 0;
    const skip = (i, j) => view.hover && ((view.hover.side === "q" && view.hover.i !== view.q0 + i) || (view.hover.side === "k" && view.hover.i !== view.k0 + j));
    // far into a long text a query spreads its attention over thousands of keys, so weights are small:
    // opacity is relative to the largest weight drawn (said in the status line)
    let top = 0;
    for (const h of on) if (h < hh) for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) if (!skip(i, j)) top = Math.max(top, data.data[(h * R + i) * C + j]);
    const scale = top > 0 ? 1 / top : 0;
    g.lineWidth = 2;
    for (const h of on) {
      if (h >= hh) continue;
      g.strokeStyle = headColour(h);
      for (let i = 0; i < R; i++) {
        for (let j = 0; j < C; j++) {
          if (skip(i, j)) continue;
          const w = data.data[(h * R + i) * C + j] * scale;
          if (w < 0.01) continue;
          g.globalAlpha = Math.min(1, w * (view.hover ? 1 : 0.9));
          g.beginPath(); g.moveTo(xL, i * ROW + ROW / 2); g.lineTo(xR, j * ROW + ROW / 2); g.stroke();
          drawn++;
        }
      }
    }
    g.globalAlpha = 1;
    cv.dataset.lines = String(drawn);
    cv.dataset.top = String(top);
    status.textContent = `queries ${view.q0}–${view.q0 + nq - 1}, keys ${view.k0}–${view.k0 + nk - 1} of ${t.toLocaleString()} tokens · darkest line = weight ${fmt(top, 3)} · scroll either column`;
    state.set({ q0: view.q0, k0: view.k0 });
  }

  function draw() { paint(); fetchWindow().catch((e) => { status.textContent = e.message; }); }

  cv.addEventListener("wheel", (e) => {
    e.preventDefault();
    const rect = cv.getBoundingClientRect(), left = e.clientX - rect.left < width / 2;
    const step = Math.sign(e.deltaY) * Math.max(1, Math.round(Math.abs(e.deltaY) / ROW));
    // the query column scrolls both columns together (shift: queries alone); the key column scrolls alone
    if (left) view.q0 = clamp(view.q0 + step, 0, Math.max(0, t - rows));
    if (!left || !e.shiftKey) view.k0 = clamp(view.k0 + step, 0, Math.max(0, t - rows));
    draw();
  }, { passive: false });
  cv.addEventListener("mousemove", (e) => {
    const rect = cv.getBoundingClientRect(), x = e.clientX - rect.left, i = Math.floor((e.clientY - rect.top) / ROW);
    let hover = null;
    if (x < xL) hover = { side: "q", i: view.q0 + i };
    else if (x > xR) hover = { side: "k", i: view.k0 + i };
    if (hover && hover.i >= t) hover = null;
    if (JSON.stringify(hover) !== JSON.stringify(view.hover)) { view.hover = hover; cv.dataset.hover = hover ? `${hover.side}${hover.i}` : ""; paint(); }
  });
  cv.addEventListener("mouseleave", () => { view.hover = null; cv.dataset.hover = ""; paint(); });
  cv.addEventListener("click", (e) => {
    if (view.hover && view.hover.side === "q") state.set({ query: view.hover.i, layer, head: [...on][0] ?? 0 });
  });
  draw();
  await fetchWindow();
}

// -- model view -------------------------------------------------------------------------------------------
export async function modelView(ctx, root, meta) {
  const th = await thumbsOf(ctx.run, meta.id);
  const [L, H, s] = th.shape;
  const rows = rowScaled(meta);
  const cell = clamp(Math.floor((Math.min(root.clientWidth || 900, 1100) - 60) / H) - 8, 36, 96);
  const grid = el("div", { id: "model-grid", style: `display:grid;grid-template-columns:40px repeat(${H}, ${cell + 6}px);gap:4px;align-items:center` });
  grid.append(el("span"), ...Array.from({ length: H }, (_, h) => el("span", { className: "muted", textContent: `h${h}`, style: "text-align:center" })));
  for (let l = 0; l < L; l++) {
    grid.append(el("span", { className: "muted", textContent: `L${l}` }));
    for (let h = 0; h < H; h++) {
      const box = el("div", { className: "thumb", title: `layer ${l}, head ${h}: click to enlarge`, style: "cursor:pointer;border:1px solid var(--line)" });
      const c = canvas(box, cell, cell);
      c.dataset.layer = l; c.dataset.head = h;
      const g = c.getContext("2d");
      g.imageSmoothingEnabled = false;
      g.drawImage(heatCanvas(th.data, (l * H + h) * s * s, s, s, rows), 0, 0, cell, cell);
      box.addEventListener("click", () => state.set({ view: "matrix", layer: l, head: h, zoom: null }, { push: true }));
      grid.append(box);
    }
  }
  root.replaceChildren(el("div", { className: "controls" }, scaleSelect(meta), el("span", { className: "muted", textContent: `${L} layers × ${H} heads, each max-pooled to ${s}×${s} (rows: queries, columns: keys; ${rows ? "each query row scaled to its own maximum" : "each image scaled to its own maximum"}). Click one to open its matrix.` })), grid);
}

// -- matrix view -----------------------------------------------------------------------------------------------
export async function matrixView(ctx, root, meta) {
  const t = meta.n_tokens;
  const layer = clamp(state.getInt("layer", 0), 0, meta.n_layers - 1), head = clamp(state.getInt("head", 0), 0, meta.n_heads - 1);
  const z = (state.get("zoom", "") || `0,${t},0,${t}`).split(",").map(Number);
  const box = { r0: z[0] || 0, r1: z[1] || t, c0: z[2] || 0, c1: z[3] || t };
  const headSel = el("select", { id: "att-head" }, ...Array.from({ length: meta.n_heads }, (_, h) => el("option", { value: h, textContent: `head ${h}` })));
  headSel.value = String(head);
  headSel.addEventListener("change", () => state.set({ head: Number(headSel.value) }));
  const info = el("span", { id: "matrix-info", className: "muted" });
  const reset = el("button", { textContent: "Whole matrix", id: "matrix-reset" });
  reset.addEventListener("click", () => state.set({ zoom: null }));
  root.replaceChildren(el("div", { className: "controls" }, layerSelect(meta.n_layers, layer, (l) => state.set({ layer: l })), headSel, scaleSelect(meta), reset, info));
  const side = Math.min(680, (root.clientWidth || 800) - 40);
  const cv = canvas(root, side, side, "matrix-canvas");
  const g = cv.getContext("2d");
  const hover = el("div", { id: "matrix-hover", className: "muted", style: "font-family:var(--mono);min-height:1.5em" });
  root.append(hover);
  const w = await windowOf(ctx.run, meta.id, { layer, r0: box.r0, r1: box.r1, c0: box.c0, c1: box.c1, max: Math.round(side) });
  const [, R, C] = w.shape;
  const off = head * R * C;
  g.imageSmoothingEnabled = false;
  g.drawImage(heatCanvas(w.data, off, R, C, rowScaled(meta)), 0, 0, side, side);
  cv.dataset.cells = `${R}x${C}`;
  info.textContent = `queries ${box.r0}–${box.r1 - 1} × keys ${box.c0}–${box.c1 - 1}; ${w.pool[0] > 1 || w.pool[1] > 1 ? `each cell the max of ${w.pool[0]}×${w.pool[1]}` : "one cell per token pair"} · wheel to zoom, drag to pan`;
  const at = (e) => {
    const r = cv.getBoundingClientRect();
    const fx = clamp((e.clientX - r.left) / side, 0, 0.9999), fy = clamp((e.clientY - r.top) / side, 0, 0.9999);
    return { fx, fy, q: Math.floor(box.r0 + fy * (box.r1 - box.r0)), k: Math.floor(box.c0 + fx * (box.c1 - box.c0)), i: Math.floor(fy * R), j: Math.floor(fx * C) };
  };
  cv.addEventListener("mousemove", (e) => {
    const p = at(e);
    hover.textContent = `query ${p.q} “${shown(meta.tokens[p.q])}” → key ${p.k} “${shown(meta.tokens[p.k])}”: ${fmt(w.data[off + p.i * C + p.j])}`;
  });
  let drag = null;
  cv.addEventListener("mousedown", (e) => { drag = at(e); });
  window.addEventListener("mouseup", (e) => {
    if (!drag) return;
    const p = at(e), dq = drag.q - p.q, dk = drag.k - p.k;
    drag = null;
    if (Math.abs(dq) + Math.abs(dk) < 2) return;
    const hgt = box.r1 - box.r0, wid = box.c1 - box.c0;
    const r0 = clamp(box.r0 + dq, 0, t - hgt), c0 = clamp(box.c0 + dk, 0, t - wid);
    state.set({ zoom: `${r0},${r0 + hgt},${c0},${c0 + wid}` });
  }, { once: true });
  cv.addEventListener("wheel", (e) => {
    e.preventDefault();
    const p = at(e), f = e.deltaY < 0 ? 0.5 : 2;
    const hgt = clamp(Math.round((box.r1 - box.r0) * f), 8, t), wid = clamp(Math.round((box.c1 - box.c0) * f), 8, t);
    const r0 = clamp(Math.round(p.q - p.fy * hgt), 0, t - hgt), c0 = clamp(Math.round(p.k - p.fx * wid), 0, t - wid);
    state.set({ zoom: hgt >= t && wid >= t ? null : `${r0},${r0 + hgt},${c0},${c0 + wid}` });
  }, { passive: false });
}

// -- neuron view ------------------------------------------------------------------------------------------
export async function neuronView(ctx, root, meta) {
  const layer = clamp(state.getInt("layer", 0), 0, meta.n_layers - 1), head = clamp(state.getInt("head", 0), 0, meta.n_heads - 1);
  const query = clamp(state.getInt("query", Math.min(meta.n_tokens - 1, 1)), 0, meta.n_tokens - 1);
  const headSel = el("select", { id: "neuron-head" }, ...Array.from({ length: meta.n_heads }, (_, h) => el("option", { value: h, textContent: `head ${h}` })));
  headSel.value = String(head);
  headSel.addEventListener("change", () => state.set({ head: Number(headSel.value) }));
  const qIn = el("input", { type: "number", min: 0, max: meta.n_tokens - 1, value: query, id: "neuron-query", style: "width:80px" });
  qIn.addEventListener("change", () => state.set({ query: clamp(Number(qIn.value) || 0, 0, meta.n_tokens - 1) }));
  root.replaceChildren(el("div", { className: "controls" }, layerSelect(meta.n_layers, layer, (l) => state.set({ layer: l })), headSel,
    el("label", {}, "Query token ", qIn), el("span", { className: "muted", textContent: `“${shown(meta.tokens[query])}”` })));
  if (!meta.neuron) { root.append(el("p", { className: "muted", textContent: meta.note || "no neuron view for this sample" })); return; }
  const n = await neuronOf(ctx.run, meta.id, layer, head, query);
  const d = (n.cols - 2) / 2, keys = n.rows - 1, D = n.data;
  const get = (row, col) => D[row * n.cols + col];
  // the keys this query may attend to, strongest first; the view lists the top ones
  const order = Array.from({ length: keys }, (_, j) => j).filter((j) => Number.isFinite(get(1 + j, 2 * d))).sort((a, b) => get(1 + b, 2 * d + 1) - get(1 + a, 2 * d + 1));
  const top = order.slice(0, 24);
  let vmax = 1e-6;
  for (let c = 0; c < d; c++) vmax = Math.max(vmax, Math.abs(get(0, c)));
  for (const j of top) for (let c = 0; c < 2 * d; c++) vmax = Math.max(vmax, Math.abs(get(1 + j, c)));
  const cw = clamp(Math.floor(220 / d), 2, 10), rowH = 16, left = 150, gap = 24;
  const width = left + 2 * d * cw + gap * 2 + 200, height = (top.length + 2) * rowH + 30;
  const cv = canvas(root, width, height, "neuron-canvas");
  const g = cv.getContext("2d");
  g.font = FONT; g.textBaseline = "middle";
  const div = (v) => { const x = clamp(v / vmax, -1, 1); return x >= 0 ? `rgba(209,73,91,${x.toFixed(3)})` : `rgba(47,102,144,${(-x).toFixed(3)})`; };
  g.fillStyle = "#555";
  g.fillText(`q (${d}, after rotary where the model has it)`, left, 8);
  g.fillText("k", left, 2 * rowH + 4); g.fillText("q ⊙ k", left + d * cw + gap, 2 * rowH + 4); g.fillText("q·k·scale  softmax", left + 2 * d * cw + 2 * gap, 2 * rowH + 4);
  for (let c = 0; c < d; c++) { g.fillStyle = div(get(0, c)); g.fillRect(left + c * cw, rowH, cw - 1, rowH - 3); }
  top.forEach((j, r) => {
    const y = (r + 3) * rowH;
    g.fillStyle = "#223"; g.textAlign = "right";
    g.fillText(`${j} ${shown(meta.tokens[j]).slice(0, 14)}`, left - 6, y + rowH / 2 - 2);
    g.textAlign = "left";
    for (let c = 0; c < d; c++) {
      g.fillStyle = div(get(1 + j, c)); g.fillRect(left + c * cw, y, cw - 1, rowH - 3);
      g.fillStyle = div(get(1 + j, d + c)); g.fillRect(left + d * cw + gap + c * cw, y, cw - 1, rowH - 3);
    }
    const x0 = left + 2 * d * cw + 2 * gap, p = get(1 + j, 2 * d + 1);
    g.fillStyle = "#223"; g.fillText(fmt(get(1 + j, 2 * d), 3), x0, y + rowH / 2 - 2);
    g.fillStyle = "#2f6690"; g.fillRect(x0 + 64, y + 2, 120 * p, rowH - 7);
    g.fillStyle = "#223"; g.fillText(fmt(p, 2), x0 + 64 + 120 * p + 4, y + rowH / 2 - 2);
  });
  cv.dataset.keys = String(keys);
  cv.dataset.top = String(top[0] ?? -1);
  cv.dataset.sum = String(order.reduce((s, j) => s + get(1 + j, 2 * d + 1), 0));
  root.append(el("p", { className: "muted", textContent: `the ${top.length} keys with the most attention of ${keys.toLocaleString()} (the probabilities sum to ${fmt(Number(cv.dataset.sum), 4)}); recomputed from the model's own q and k` }));
}

// -- head atlas -----------------------------------------------------------------------------------------------
const STAT_LABEL = { entropy: "entropy (nats)", distance: "mean distance (tokens)", first: "share to the first token", self: "share to itself",
  previous: "share to the previous token", prefix_matching: "prefix matching", copying: "copying" };

const STAT_DOMAIN = { first: [0, 1], self: [0, 1], previous: [0, 1], prefix_matching: [0, 1], copying: [-1, 1] };

export async function atlasView(ctx, root) {
  const hs = await headsOf(ctx.run);
  if (!hs) {
    root.replaceChildren(el("p", { className: "muted", textContent: `No head atlas yet: run \`latentatlas attention heads ${ctx.run}\`.` }));
    return;
  }
  const S = hs.stats.length, val = (l, h, s) => hs.data[(l * hs.heads + h) * S + s];
  const colour = state.get("stat", "prefix_matching"), xs = state.get("x", "previous"), ys = state.get("y", "prefix_matching");
  const pick = (id, value, key) => {
    const s = el("select", { id }, ...hs.stats.map((n) => el("option", { value: n, textContent: STAT_LABEL[n] || n })));
    s.value = hs.stats.includes(value) ? value : hs.stats[0];
    s.addEventListener("change", () => state.set({ [key]: s.value }));
    return s;
  };
  const sample = ctx.att.samples[0];
  root.replaceChildren(el("div", { className: "controls" }, el("label", {}, "Colour ", pick("atlas-stat", colour, "stat")),
    el("label", {}, "x ", pick("atlas-x", xs, "x")), el("label", {}, "y ", pick("atlas-y", ys, "y")),
    el("span", { className: "muted", textContent: `${ctx.att.heads.tokens.toLocaleString()} tokens; click a head to open its matrix${sample ? "" : " (capture a text first)"}` })));
  const si = hs.stats.indexOf(colour), xi = hs.stats.indexOf(xs), yi = hs.stats.indexOf(ys);
  // each statistic on its natural scale (shares and prefix matching 0..1, copying −1..1, entropy and
  // distance from 0), so that heads that all score alike look alike instead of spanning the colour map
  const domain = (i) => {
    const fixed = STAT_DOMAIN[hs.stats[i]];
    if (fixed) return fixed;
    let b = 0;
    for (let k = 0; k < hs.layers * hs.heads; k++) { const v = hs.data[k * S + i]; if (Number.isFinite(v)) b = Math.max(b, v); }
    return [0, b > 0 ? b : 1];
  };
  const wrap = el("div", { style: "display:flex;gap:24px;flex-wrap:wrap" });
  root.append(wrap);
  // the grid: layers × heads coloured by one statistic
  const cell = clamp(Math.floor(420 / Math.max(hs.heads, 1)), 18, 56);
  const gw = 40 + hs.heads * cell, gh = 24 + hs.layers * cell;
  const gc = canvas(wrap, gw, gh, "atlas-grid");
  const g = gc.getContext("2d");
  const [lo, hi] = domain(si);
  g.font = FONT; g.textBaseline = "middle"; g.textAlign = "center";
  for (let l = 0; l < hs.layers; l++) {
    g.fillStyle = "#555"; g.fillText(`L${l}`, 18, 24 + l * cell + cell / 2);
    for (let h = 0; h < hs.heads; h++) {
      const v = val(l, h, si);
      const [r, gg, b] = Number.isFinite(v) ? heat(hi > lo ? (v - lo) / (hi - lo) : 1) : [230, 230, 230];
      g.fillStyle = `rgb(${r},${gg},${b})`;
      g.fillRect(40 + h * cell, 24 + l * cell, cell - 2, cell - 2);
      g.fillStyle = (hi > lo ? (v - lo) / (hi - lo) : 1) > 0.55 ? "#fff" : "#223";
      if (cell >= 30) g.fillText(Number.isFinite(v) ? fmt(v, 2) : "–", 40 + h * cell + cell / 2 - 1, 24 + l * cell + cell / 2);
    }
  }
  for (let h = 0; h < hs.heads; h++) { g.fillStyle = "#555"; g.fillText(`h${h}`, 40 + h * cell + cell / 2, 10); }
  // the map: two statistics against each other, one dot per head, coloured by layer
  const W = 420, Hh = 360, m = 40;
  const sc = canvas(wrap, W, Hh, "atlas-map");
  const s2 = sc.getContext("2d");
  const [x0, x1] = domain(xi), [y0, y1] = domain(yi);
  const px = (v) => m + ((v - x0) / (x1 - x0)) * (W - 2 * m), py = (v) => Hh - m - ((v - y0) / (y1 - y0)) * (Hh - 2 * m);
  s2.strokeStyle = "#ccc"; s2.strokeRect(m, m, W - 2 * m, Hh - 2 * m);
  s2.font = FONT; s2.fillStyle = "#555"; s2.textAlign = "center";
  s2.fillText(STAT_LABEL[xs] || xs, W / 2, Hh - 10);
  s2.save(); s2.translate(12, Hh / 2); s2.rotate(-Math.PI / 2); s2.fillText(STAT_LABEL[ys] || ys, 0, 0); s2.restore();
  s2.fillText(fmt(x0, 2), m, Hh - m + 14); s2.fillText(fmt(x1, 2), W - m, Hh - m + 14);
  s2.textAlign = "right"; s2.fillText(fmt(y0, 2), m - 4, Hh - m); s2.fillText(fmt(y1, 2), m - 4, m + 4);
  const dots = [];
  for (let l = 0; l < hs.layers; l++) for (let h = 0; h < hs.heads; h++) {
    const vx = val(l, h, xi), vy = val(l, h, yi);
    if (!Number.isFinite(vx) || !Number.isFinite(vy)) continue;
    const p = { l, h, x: px(vx), y: py(vy) };
    dots.push(p);
    s2.fillStyle = HEAD_COLOURS[l % HEAD_COLOURS.length];
    s2.beginPath(); s2.arc(p.x, p.y, 6, 0, 2 * Math.PI); s2.fill();
    s2.fillStyle = "#223"; s2.textAlign = "left"; s2.fillText(`${l}.${h}`, p.x + 8, p.y - 6);
  }
  s2.textAlign = "left";
  for (let l = 0; l < Math.min(hs.layers, HEAD_COLOURS.length); l++) {
    const lx = m + (l % 6) * 62, ly = 14 + Math.floor(l / 6) * 14;
    s2.fillStyle = HEAD_COLOURS[l]; s2.beginPath(); s2.arc(lx + 4, ly, 4, 0, 2 * Math.PI); s2.fill();
    s2.fillStyle = "#555"; s2.fillText(`layer ${l}`, lx + 11, ly + 1);
  }
  const open = (l, h) => { if (sample) state.set({ view: "matrix", layer: l, head: h, sample: state.get("sample", sample.id), zoom: null }, { push: true }); };
  gc.addEventListener("click", (e) => {
    const r = gc.getBoundingClientRect(), h = Math.floor((e.clientX - r.left - 40) / cell), l = Math.floor((e.clientY - r.top - 24) / cell);
    if (l >= 0 && l < hs.layers && h >= 0 && h < hs.heads) open(l, h);
  });
  sc.addEventListener("click", (e) => {
    const r = sc.getBoundingClientRect(), x = e.clientX - r.left, y = e.clientY - r.top;
    const hit = dots.find((p) => (p.x - x) ** 2 + (p.y - y) ** 2 < 64);
    if (hit) open(hit.l, hit.h);
  });
  gc.dataset.range = `${lo},${hi}`;
}

export { api };

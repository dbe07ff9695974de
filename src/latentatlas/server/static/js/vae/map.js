// The latent map: the latent set's 2-D projection, coloured by a factor, label or latent dim, drawn by
// scatter.js (WebGL, binary payloads, every point). Hover shows the input's thumbnail; click selects.
import * as api from "../api.js";
import * as state from "../state.js";
import { Scatter, viridis } from "../scatter.js";
import { esc } from "../util.js";

// 20 distinct colours for named categories beyond 12 (an image folder's classes)
const PALETTE20 = ["#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896", "#9467bd", "#c5b0d5",
  "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7", "#bcbd22", "#dbdb8d", "#17becf", "#9edae5"];
const PALETTE = ["#2f6690", "#d1495b", "#edae49", "#00798c", "#7b5ea7", "#66a182", "#8d96a3", "#e07a5f", "#3d405b", "#81b29a", "#f2cc8f", "#9c6644"];
let current = { run: null, proj: null, coords: null, color: undefined };
let plot = null;

// the colour that shows how well the map keeps each point's latent-space neighbours
export const KEPT = "neighbours kept (map)";

export function colorOptions(latents) {
  const opts = [];
  for (const name of latents.columns) if (name !== "index") opts.push(name);
  for (let d = 0; d < latents.dim; d++) opts.push(`z${d}`);
  if (latents.dim >= 2) opts.push(KEPT);
  return opts;
}

// The distinct values of a column, or [] as soon as there are more than `most` (no full scan of 1M rows).
function distinctUpTo(values, most) {
  const seen = new Set();
  for (let i = 0; i < values.length; i++) {
    seen.add(values[i]);
    if (seen.size > most) return [];
  }
  return [...seen].sort((p, q) => p - q);
}

export async function column(run, name, latents) {
  if (!(name in latents.values)) latents.values[name] = (await api.floats(`${api.runPath(run)}/latents/column.bin?name=${encodeURIComponent(name)}`)).data;
  return latents.values[name];
}

async function colorValues(run, name, latents, ctx) {
  if (name === KEPT) {
    const proj = state.get("proj", "pca"), key = proj + projQuery(proj);
    ctx.kept = ctx.kept || {};
    if (!(key in ctx.kept)) {
      try { ctx.kept[key] = (await api.floats(`${api.runPath(run)}/projection/${encodeURIComponent(proj)}/kept.bin${projQuery(proj)}`)).data; }
      catch (e) { ctx.kept[key] = null; ctx.keptError = e.message; }
    }
    return ctx.kept[key];
  }
  if (name && latents.columns.includes(name)) {
    if (!(name in latents.values)) latents.values[name] = (await api.floats(`${api.runPath(run)}/latents/column.bin?name=${encodeURIComponent(name)}`)).data;
    return latents.values[name];
  }
  const m = /^z(\d+)$/.exec(name || "");
  if (m) {
    if (!ctx.mu) ctx.mu = await api.floats(`${api.runPath(run)}/latents/mu.bin`);
    const mu = ctx.mu;
    const d = Number(m[1]);
    const out = new Float32Array(mu.rows);
    for (let i = 0; i < mu.rows; i++) out[i] = mu.data[i * mu.cols + d];
    return out;
  }
  return null;
}

const fmt = (v) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(2) : v.toPrecision(3));

export const scatterOf = (ctx) => scatter(ctx);

function scatter(ctx) {
  if (plot) return plot;
  const node = document.getElementById("map");
  const thumb = document.getElementById("hover-thumb");
  plot = new Scatter(node, {
    useGL: state.get("gl") !== "0",
    onClick: (row) => ctx.select(row),
    onLasso: (rows, poly) => ctx.onLasso && ctx.onLasso(rows, poly),
    onHover: (row, ev) => {
      const tip = document.getElementById("hover-info");
      if (row === null) { thumb.hidden = true; tip.hidden = true; delete thumb.dataset.row; return; }
      const host = node.parentElement.getBoundingClientRect();
      if (thumb.dataset.row !== String(row)) {
        thumb.dataset.row = String(row);
        if (ctx.info.has_images !== false) thumb.src = api.inputPng(state.get("run"), row);
        tip.textContent = hoverText(ctx, row);
      }
      const x = ev.clientX - host.left + 14, y = ev.clientY - host.top + 14;
      thumb.style.left = `${x}px`; thumb.style.top = `${y}px`;
      tip.style.left = `${x}px`; tip.style.top = `${y + (ctx.info.has_images !== false ? 78 : 0)}px`;
      thumb.hidden = ctx.info.has_images === false;
      tip.hidden = false;
    },
  });
  node.dataset.renderer = plot.renderer;
  window.latentatlas.map = plot;
  return plot;
}

// a projection's settings from the URL (UMAP: nn, md; t-SNE: pp; both: pm), as the API's query
export function projQuery(proj) {
  const q = new URLSearchParams();
  const put = (k, v) => { if (v !== null && v !== "") q.set(k, v); };
  if (proj === "umap") { put("n_neighbors", state.get("nn", "")); put("min_dist", state.get("md", "")); }
  if (proj === "tsne") put("perplexity", state.get("pp", ""));
  if (proj !== "pca") put("metric", state.get("pm", ""));
  const s = q.toString();
  return s ? `?${s}` : "";
}

export async function draw(ctx) {
  const { run, latents, info } = ctx;
  const proj = state.get("proj", "pca");
  const pq = projQuery(proj);
  const status = document.getElementById("map-status");
  const colorName = state.get("color") || ctx.defaultColor;
  const fresh = current.run !== run || current.proj !== proj + pq;
  // the projection and the colour column load in parallel; a projection eval did not store is computed
  // by a background job on the server (once; then it is kept in the atlas) while the status line counts
  const waiting = (job) => { status.textContent = `computing ${proj} (once; then kept in the atlas)… ${Math.round(job.seconds)} s`; };
  const [coords, values] = await Promise.all([
    fresh ? api.computed(`${api.runPath(run)}/projection/${encodeURIComponent(proj)}.bin${pq}`, waiting) : Promise.resolve(current.coords),
    colorValues(run, colorName, latents, ctx),
  ]);
  const sp = scatter(ctx);
  const node = document.getElementById("map");
  const legend = document.getElementById("map-legend");
  if (fresh) {
    current = { run, proj: proj + pq, coords, color: undefined };
    sp.setPoints(coords.data, coords.rows);
    sp.setLabels(`${proj} 1`, `${proj} 2`);
  }
  const recolour = fresh || current.color !== colorName || current.mask !== sp.mask;
  if (recolour) {
    current.color = colorName;
    current.mask = sp.mask;
    // A factor or label with few values gets one colour per value and a legend, not a colour scale.
    // (up to 12 values, or 20 when the data names them): one colour each
    const names = (info.factors || []).find((f) => f.name === colorName)?.value_names || null;
    const distinct = values && latents.columns.includes(colorName) && colorName !== "recon_error" ? distinctUpTo(values, names ? 20 : 12) : [];
    if (distinct.length) {
      const palette = distinct.length > PALETTE.length ? PALETTE20 : PALETTE;
      sp.setColors(values, { categorical: distinct, palette });
      // names come from the run's files: into the page as text, never as markup
      legend.replaceChildren(...distinct.map((v, i) => {
        const item = document.createElement("span"), swatch = document.createElement("i");
        swatch.style.background = palette[i % palette.length];
        item.append(swatch, document.createTextNode(String(names && names[v] !== undefined ? names[v] : v)));
        return item;
      }));
    } else if (values) {
      sp.setColors(values);
      const stops = [0, 0.25, 0.5, 0.75, 1].map((t) => `rgb(${viridis(t).join(",")}) ${100 * t}%`).join(",");
      const [lo, hi] = sp.range;
      legend.innerHTML = `<span class="scale">${esc(colorName)} <b>${fmt(lo)}</b><em style="background:linear-gradient(90deg,${stops})"></em><b>${fmt(hi)}</b></span>`;
    } else {
      sp.setColors(null);
      legend.textContent = colorName === KEPT ? (ctx.keptError || "") : "";
    }
  }
  const sel = state.getInt("sel");
  sp.setMarks({ selected: sel !== null && sel < coords.rows ? sel : null, path: ctx.path, neighbours: ctx.neighbourRows || null,
                chosen: ctx.chosen || null, lasso: ctx.lassoPoly || null });
  // a new selection or path only changes the marks layer: redraw that, not a million points
  if (recolour) sp.draw(); else sp.drawMarks();
  node.dataset.points = String(coords.rows);
  const kept = sp.mask ? sp.mask.reduce((a, b) => a + b, 0) : null;
  status.textContent = kept === null ? `${coords.rows.toLocaleString()} points` : `${kept.toLocaleString()} of ${coords.rows.toLocaleString()} points match`;
}

// -- what the hover says: the row, its dataset index and every factor by name (from the binary columns
// already loaded for the map; loaded once, on the first hover)
function hoverText(ctx, row) {
  const { latents, info } = ctx;
  const parts = [`row ${row}`];
  const names = Object.fromEntries((info.factors || []).map((f) => [f.name, f.value_names]));
  for (const col of latents.columns) {
    const vals = latents.values[col];
    if (!vals) continue;
    const v = vals[row];
    const shown = names[col] && names[col][v] !== undefined ? names[col][v] : Number.isInteger(v) ? v : fmt(v);
    parts.push(`${col === "index" ? "index" : col} ${shown}`);
  }
  return parts.join(" · ");
}

export async function loadColumns(ctx) {
  await Promise.all(ctx.latents.columns.map((c) => column(ctx.run, c, ctx.latents)));
}

// -- filter: "shape = heart and scale > 2" over the per-row columns; the rest of the points go grey
const OPS = { "=": (a, b) => a === b, "==": (a, b) => a === b, "!=": (a, b) => a !== b, "<": (a, b) => a < b, ">": (a, b) => a > b,
  "<=": (a, b) => a <= b, ">=": (a, b) => a >= b };

export async function filterMask(ctx, text) {
  const clauses = text.split(/\s+and\s+|,/).map((c) => c.trim()).filter(Boolean);
  if (!clauses.length) return null;
  const names = Object.fromEntries((ctx.info.factors || []).map((f) => [f.name, f.value_names]));
  const n = ctx.latents.n;
  const mask = new Uint8Array(n).fill(1);
  for (const clause of clauses) {
    const m = /^(.+?)\s*(==|!=|<=|>=|=|<|>)\s*(.+)$/.exec(clause);
    if (!m) throw new Error(`"${clause}" is not COLUMN OP VALUE (ops: = != < > <= >=)`);
    const [, col, op, raw] = m;
    if (!ctx.latents.columns.includes(col)) throw new Error(`no column "${col}"; columns: ${ctx.latents.columns.join(", ")}`);
    let value = Number(raw);
    if (names[col] && names[col].includes(raw)) value = names[col].indexOf(raw);
    else if (!Number.isFinite(value)) throw new Error(`"${raw}" is neither a number nor one of ${col}'s names`);
    const vals = await column(ctx.run, col, ctx.latents), f = OPS[op];
    for (let i = 0; i < n; i++) if (mask[i] && !f(vals[i], value)) mask[i] = 0;
  }
  return mask;
}

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

export function colorOptions(latents) {
  const opts = [];
  for (const name of latents.columns) if (name !== "index") opts.push(name);
  for (let d = 0; d < latents.dim; d++) opts.push(`z${d}`);
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

async function colorValues(run, name, latents, ctx) {
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

function scatter(ctx) {
  if (plot) return plot;
  const node = document.getElementById("map");
  const thumb = document.getElementById("hover-thumb");
  plot = new Scatter(node, {
    useGL: state.get("gl") !== "0",
    onClick: (row) => ctx.select(row),
    onHover: (row, ev) => {
      if (row === null) { thumb.hidden = true; delete thumb.dataset.row; return; }
      const host = node.parentElement.getBoundingClientRect();
      if (thumb.dataset.row !== String(row)) { thumb.src = api.inputPng(state.get("run"), row); thumb.dataset.row = String(row); }
      thumb.style.left = `${ev.clientX - host.left + 14}px`;
      thumb.style.top = `${ev.clientY - host.top + 14}px`;
      thumb.hidden = false;
    },
  });
  node.dataset.renderer = plot.renderer;
  window.latentatlas.map = plot;
  return plot;
}

export async function draw(ctx) {
  const { run, latents, info } = ctx;
  const proj = state.get("proj", "pca");
  const status = document.getElementById("map-status");
  const colorName = state.get("color") || ctx.defaultColor;
  const fresh = current.run !== run || current.proj !== proj;
  // the projection and the colour column load in parallel; a projection eval did not store is computed
  // by a background job on the server (once; then it is kept in the atlas) while the status line counts
  const waiting = (job) => { status.textContent = `computing ${proj} (once; then kept in the atlas)… ${Math.round(job.seconds)} s`; };
  const [coords, values] = await Promise.all([
    fresh ? api.computed(`${api.runPath(run)}/projection/${encodeURIComponent(proj)}.bin`, waiting) : Promise.resolve(current.coords),
    colorValues(run, colorName, latents, ctx),
  ]);
  const sp = scatter(ctx);
  const node = document.getElementById("map");
  const legend = document.getElementById("map-legend");
  if (fresh) {
    current = { run, proj, coords, color: undefined };
    sp.setPoints(coords.data, coords.rows);
    sp.setLabels(`${proj} 1`, `${proj} 2`);
  }
  const recolour = fresh || current.color !== colorName;
  if (recolour) {
    current.color = colorName;
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
      legend.innerHTML = "";
    }
  }
  const sel = state.getInt("sel");
  sp.setMarks({ selected: sel !== null && sel < coords.rows ? sel : null, path: ctx.path });
  // a new selection or path only changes the marks layer: redraw that, not a million points
  if (recolour) sp.draw(); else sp.drawMarks();
  node.dataset.points = String(coords.rows);
  status.textContent = `${coords.rows.toLocaleString()} points`;
}

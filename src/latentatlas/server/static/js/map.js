// The latent map: a WebGL scatter of the 2-D projection, coloured by a factor, label or latent dim.
import * as api from "./api.js";
import * as state from "./state.js";

const el = () => document.getElementById("map");
const PALETTE = ["#2f6690", "#d1495b", "#edae49", "#00798c", "#7b5ea7", "#66a182", "#8d96a3", "#e07a5f", "#3d405b", "#81b29a", "#f2cc8f", "#9c6644"];
let current = { run: null, proj: null, coords: null };

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
    if (!(name in latents.values)) latents.values[name] = (await api.floats(`${api.runPath(run)}/latents/column/${encodeURIComponent(name)}.bin`)).data;
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

export async function draw(ctx) {
  const { run, latents, info } = ctx;
  const proj = state.get("proj", "pca");
  const status = document.getElementById("map-status");
  const colorName = state.get("color") || ctx.defaultColor;
  const fresh = current.run !== run || current.proj !== proj;
  if (fresh) status.textContent = proj === "pca" ? "" : `computing ${proj} (once; then cached in the atlas)…`;
  // the projection and the colour column load in parallel
  const [coords, values] = await Promise.all([
    fresh ? api.floats(`${api.runPath(run)}/projection/${proj}.bin`) : Promise.resolve(current.coords),
    colorValues(run, colorName, latents, ctx),
  ]);
  if (fresh) current = { run, proj, coords };
  const { data, rows } = current.coords;
  const x = new Float32Array(rows), y = new Float32Array(rows);
  for (let i = 0; i < rows; i++) { x[i] = data[2 * i]; y[i] = data[2 * i + 1]; }
  let c = values;
  // A factor or label with few values gets one colour per value and a legend, not a colour scale.
  const distinct = c && latents.columns.includes(colorName) ? distinctUpTo(c, 13) : [];
  const categorical = distinct.length > 0 && distinct.length <= 12 && colorName !== "recon_error";
  const legend = document.getElementById("map-legend");
  // One colour string per point: measured faster in Plotly's scattergl than numbers through a stepped
  // colour scale (1M points: 6.3 s vs 9.3 s to first render, bench/bench_map.py).
  if (categorical) {
    const names = (info.factors || []).find((f) => f.name === colorName)?.value_names || null;
    const slot = new Map(distinct.map((v, i) => [v, PALETTE[i % PALETTE.length]]));
    c = Array.from(c, (v) => slot.get(v));
    legend.innerHTML = distinct.map((v) => `<span><i style="background:${slot.get(v)}"></i>${names ? names[v] : v}</span>`).join("");
  } else legend.innerHTML = "";
  const size = rows > 200000 ? 2 : rows > 20000 ? 3 : 5;
  const traces = [{
    type: "scattergl", mode: "markers", x, y,
    marker: { size, color: c || "#2f6690", colorscale: "Viridis", showscale: !!c && !categorical, opacity: rows > 50000 ? 0.6 : 0.85,
              colorbar: { title: { text: colorName || "" }, thickness: 12 } },
    hoverinfo: "none", name: "latents",
  }];
  const sel = state.getInt("sel");
  if (sel !== null && sel < rows) {
    traces.push({ type: "scattergl", mode: "markers", x: [x[sel]], y: [y[sel]], hoverinfo: "skip", name: "selected",
                  marker: { size: 16, color: "rgba(0,0,0,0)", line: { color: "#b23a48", width: 3 } } });
  }
  if (ctx.path && ctx.path.length) {
    traces.push({ type: "scattergl", mode: "lines+markers", x: ctx.path.map((r) => x[r]), y: ctx.path.map((r) => y[r]),
                  hoverinfo: "skip", name: "path", line: { color: "#b23a48", width: 2 }, marker: { size: 7, color: "#b23a48" } });
  }
  const layout = {
    margin: { l: 36, r: 10, t: 6, b: 30 }, showlegend: false, dragmode: "pan", hovermode: "closest",
    xaxis: { title: { text: `${proj} 1` }, zeroline: false, gridcolor: "#eee" },
    yaxis: { title: { text: `${proj} 2` }, zeroline: false, gridcolor: "#eee" },
    plot_bgcolor: "#fff", paper_bgcolor: "#fff", font: { family: "DejaVu Sans, sans-serif", size: 11 },
    uirevision: `${run}-${proj}`,
  };
  const node = el();
  await Plotly.react(node, traces, layout, { responsive: true, displaylogo: false, scrollZoom: true });
  node.dataset.points = String(rows);
  status.textContent = `${rows.toLocaleString()} points`;
  if (!node.dataset.wired) {
    node.dataset.wired = "1";
    node.on("plotly_click", (ev) => {
      const p = ev.points.find((q) => q.curveNumber === 0);
      if (p) ctx.select(p.pointIndex);
    });
    const thumb = document.getElementById("hover-thumb");
    node.on("plotly_hover", (ev) => {
      const p = ev.points.find((q) => q.curveNumber === 0);
      if (!p) return;
      thumb.src = api.inputPng(state.get("run"), p.pointIndex);
      const box = node.getBoundingClientRect(), host = node.parentElement.getBoundingClientRect();
      thumb.style.left = `${ev.event.clientX - host.left + 14}px`;
      thumb.style.top = `${ev.event.clientY - host.top + 14}px`;
      thumb.hidden = !(ev.event.clientX >= box.left);
    });
    node.on("plotly_unhover", () => { thumb.hidden = true; });
  }
}

// The right-hand panels (inspector, traversal, interpolation) and the full-page runs and metrics views.
import * as api from "./api.js";
import * as state from "./state.js";
import { $, esc, fmt } from "./util.js";

// the view a run opens in, by its kind
export const firstView = (kind) => (kind === "sae" ? "features" : kind === "sae_sweep" ? "metrics" : "map");

// -- runs ----------------------------------------------------------------------------------------
export async function runsView() {
  const runs = await api.json("/api/runs");
  const keys = ["mig", "dci_disentanglement", "factor_vae", "active_units", "recon_error", "l0", "fvu", "embedding_cosine", "ce_loss_recovered"]
    .filter((k) => runs.some((r) => k in (r.metrics || {})));
  const rows = runs.map((r) => `<tr class="clickable" data-run="${esc(r.name)}" data-kind="${esc(r.kind)}"><td>${esc(r.name)}</td><td>${esc(r.kind)}</td>
    <td>${esc(r.data)}</td><td class="num">${r.steps ?? ""}</td><td>${esc((r.created_at || "").replace("T", " ").slice(0, 16))}</td>
    ${keys.map((k) => `<td class="num">${fmt((r.metrics || {})[k])}</td>`).join("")}</tr>`).join("");
  $("runs-view").innerHTML = `<h2>Runs</h2>${runs.length ? `<table id="runs-table"><thead><tr><th>run</th><th>kind</th><th>data</th>
    <th class="num">steps</th><th>created</th>${keys.map((k) => `<th class="num">${esc(k)}</th>`).join("")}</tr></thead><tbody>${rows}</tbody></table>`
    : `<p class="muted">No runs yet. Train one: <code>latentatlas train vae --data digits</code></p>`}`;
  for (const tr of document.querySelectorAll("#runs-table tr[data-run]")) {
    tr.addEventListener("click", () => state.set({ run: tr.dataset.run, view: firstView(tr.dataset.kind), sel: null, color: null, feat: null }, { push: true }));
  }
}

// -- inspector -----------------------------------------------------------------------------------
export async function inspect(ctx) {
  const panel = $("inspect-panel");
  const sel = state.getInt("sel");
  if (sel === null) { panel.innerHTML = `<h2>Inspector</h2><p class="muted">Click a point on the map.</p>`; return; }
  const rec = await api.json(`${api.runPath(ctx.run)}/inspect/${sel}`);
  const lo = ctx.info.traversal ? Math.min(...ctx.info.traversal.lo) : -3, hi = ctx.info.traversal ? Math.max(...ctx.info.traversal.hi) : 3;
  const pos = (v) => `${(100 * (Math.max(lo, Math.min(hi, v)) - lo) / (hi - lo || 1)).toFixed(1)}%`;
  const order = ctx.info.dims_by_kl || rec.mu.map((_, i) => i);
  const rows = order.map((d) => {
    const m = rec.mu[d], s = rec.sigma ? rec.sigma[d] : 0;
    return `<tr><td>z${d}</td><td class="num">${fmt(m)}</td><td class="num">${rec.sigma ? fmt(s) : "–"}</td>
      <td class="bar-cell"><div class="track"></div><div class="sig" style="left:calc(${pos(m - s)});width:calc(${pos(m + s)} - ${pos(m - s)})"></div>
      <div class="mu" style="left:${pos(m)}"></div></td></tr>`;
  }).join("");
  const facts = Object.entries(rec.factors).map(([k, v]) => `${esc(k)} ${v}`).join(" · ");
  panel.innerHTML = `<h2>Inspector · row ${sel}</h2>
    <div class="pair">
      <figure><img id="inspect-input" class="pix" src="${api.inputPng(ctx.run, sel)}" alt="input"><figcaption>input</figcaption></figure>
      <figure><img id="inspect-recon" class="pix" src="${api.reconPng(ctx.run, sel)}" alt="reconstruction"><figcaption>reconstruction</figcaption></figure>
      <div class="muted" style="font-size:12px">dataset index ${rec.index}<br>${facts || ""}${rec.label !== null ? `<br>label ${rec.label}` : ""}
        <br>recon. error ${fmt(rec.recon_error, 4)}</div>
    </div>
    <h3>latent mean ± σ (dims by KL)</h3>
    <table id="inspect-latents"><thead><tr><th>dim</th><th>μ</th><th>σ</th><th></th></tr></thead><tbody>${rows}</tbody></table>`;
}

// -- traversal -----------------------------------------------------------------------------------
let traverseBase = null;

export async function traverse(ctx) {
  const panel = $("traverse-panel");
  const dim = ctx.info.latent_dim;
  const sel = state.getInt("sel");
  let base;
  if (sel !== null) base = (await api.json(`${api.runPath(ctx.run)}/inspect/${sel}`)).mu;
  else base = ctx.info.traversal ? ctx.info.traversal.lo.map((l, i) => (l + ctx.info.traversal.hi[i]) / 2) : new Array(dim).fill(0);
  traverseBase = base.slice();
  const dirs = await api.json(`${api.runPath(ctx.run)}/directions?k=${Math.min(5, dim)}`).catch(() => null);
  const order = ctx.info.dims_by_kl || base.map((_, i) => i);
  const t = ctx.info.traversal || { lo: base.map(() => -3), hi: base.map(() => 3) };
  const stored = Object.fromEntries((state.get("t") || "").split(";").filter(Boolean).map((p) => p.split(":").map(Number)));
  const dimRows = order.map((d) => {
    const v = d in stored ? stored[d] : base[d];
    return `<div class="slider-row"><label>z${d}</label><input type="range" class="dim-slider" data-dim="${d}" min="${t.lo[d]}"
      max="${t.hi[d]}" step="${(t.hi[d] - t.lo[d]) / 200 || 0.01}" value="${v}"><output>${fmt(v)}</output></div>`;
  }).join("");
  const comps = dirs ? (dirs.components || []) : [];
  const dirRows = comps.map((_, i) => `<div class="slider-row"><label>PC${i + 1} ${fmt(100 * dirs.explained_variance_ratio[i], 2)}%</label>
    <input type="range" class="dir-slider" data-dir="${i}" min="-3" max="3" step="0.05" value="0"><output>0</output></div>`).join("");
  panel.innerHTML = `<h2>Traversal ${sel !== null ? `· from row ${sel}` : "· from the aggregate mean"}</h2>
    <div class="traverse-top"><img id="traverse-image" class="pix big" alt="decoded">
      <div class="muted" style="font-size:12px">Drag a slider: the image is decoded as you move.<br>
      Ranges: ±3σ of the aggregate posterior per dim, ordered by KL.<br><br><button id="traverse-reset">reset</button></div></div>
    <h3>latent dims</h3>${dimRows}
    ${dirRows ? `<h3>principal directions (GANSpace)</h3>${dirRows}` : ""}`;
  const img = $("traverse-image");
  const current = () => {
    const z = traverseBase.slice();
    for (const s of panel.querySelectorAll(".dim-slider")) z[Number(s.dataset.dim)] = Number(s.value);
    for (const s of panel.querySelectorAll(".dir-slider")) {
      const i = Number(s.dataset.dir), a = Number(s.value);
      if (a) for (let d = 0; d < z.length; d++) z[d] += a * dirs.std[i] * comps[i][d];
    }
    return z;
  };
  // Throttle: at most one decode in flight; the latest slider position wins.
  let inflight = false, pending = false;
  const render = () => {
    if (inflight) { pending = true; return; }
    inflight = true;
    img.src = api.decodePng(ctx.run, current());
  };
  img.addEventListener("load", () => { inflight = false; if (pending) { pending = false; render(); } });
  img.addEventListener("error", () => { inflight = false; });
  const remember = () => {
    const changed = [...panel.querySelectorAll(".dim-slider")].filter((s) => Math.abs(Number(s.value) - traverseBase[Number(s.dataset.dim)]) > 1e-9)
      .map((s) => `${s.dataset.dim}:${Number(s.value).toFixed(3)}`);
    state.set({ t: changed.join(";") || null });
  };
  for (const s of panel.querySelectorAll("input[type=range]")) {
    s.addEventListener("input", () => { s.nextElementSibling.textContent = fmt(Number(s.value)); render(); });
    s.addEventListener("change", remember);
  }
  $("traverse-reset").addEventListener("click", () => {
    for (const s of panel.querySelectorAll(".dim-slider")) { s.value = traverseBase[Number(s.dataset.dim)]; s.nextElementSibling.textContent = fmt(Number(s.value)); }
    for (const s of panel.querySelectorAll(".dir-slider")) { s.value = 0; s.nextElementSibling.textContent = "0"; }
    state.set({ t: null });
    render();
  });
  render();
}

// -- interpolation -------------------------------------------------------------------------------
export async function interp(ctx) {
  const panel = $("interp-panel");
  const n = ctx.info.n || 1;
  const a = state.getInt("a", 0), b = state.getInt("b", Math.min(1, n - 1));
  const method = state.get("method", "lerp"), steps = state.getInt("steps", 10);
  panel.innerHTML = `<h2>Interpolation</h2>
    <div class="controls">
      <label>from row <input id="interp-a" type="number" min="0" max="${n - 1}" value="${a}" style="width:80px"></label>
      <label>to row <input id="interp-b" type="number" min="0" max="${n - 1}" value="${b}" style="width:80px"></label>
      <label><select id="interp-method"><option ${method === "lerp" ? "selected" : ""}>lerp</option><option ${method === "slerp" ? "selected" : ""}>slerp</option></select></label>
      <label>steps <input id="interp-steps" type="number" min="2" max="64" value="${steps}" style="width:60px"></label>
    </div>
    <img id="interp-strip" alt="interpolation strip" src="${api.interpPng(ctx.run, a, b, steps, method)}">
    <p class="muted" style="font-size:12px">Tip: the selected point becomes "to", the previous one "from". The red path on the map joins
      the stored latents nearest to each step.</p>`;
  const apply = () => state.set({ a: $("interp-a").value, b: $("interp-b").value, method: $("interp-method").value, steps: $("interp-steps").value });
  for (const id of ["interp-a", "interp-b", "interp-method", "interp-steps"]) $(id).addEventListener("change", apply);
  // the path on the map: the nearest stored latent to each interpolated code
  const res = await api.json(`${api.runPath(ctx.run)}/interpolate`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ a, b, steps, method }),
  });
  return res.path_rows; // the stored latent nearest to each step (the server computes it)
}

// -- metrics -------------------------------------------------------------------------------------
export async function metricsView(ctx) {
  const view = $("metrics-view");
  let m = null;
  try { m = await api.json(`${api.runPath(ctx.run)}/metrics`); } catch (e) { view.innerHTML = `<h2>Metrics</h2><p class="muted">${esc(e.message)}</p>`; return; }
  if (m.kind === "sae_sweep") return sweepView(ctx, m, view);
  const history = await api.json(`${api.runPath(ctx.run)}/history`);
  const rows = Object.entries(m.metrics).map(([k, v]) => `<tr><td>${esc(k)}</td><td class="num">${fmt(v.value, 4)}</td>
    <td class="num">${v.ci_low === null ? "–" : `[${fmt(v.ci_low, 4)}, ${fmt(v.ci_high, 4)}]`}</td><td class="num">${v.n ?? ""}</td></tr>`).join("");
  const what = m.kind === "sae" ? `${Number(m.n).toLocaleString()} tokens of ${esc(m.activations)}` : `${m.n} samples`;
  view.innerHTML = `<h2>Metrics · ${esc(ctx.run)} · ${what}</h2>
    <div class="grid2"><div class="card"><table id="metrics-table"><thead><tr><th>metric</th><th class="num">value</th><th class="num">95% CI</th><th class="num">n</th></tr></thead>
    <tbody>${rows}</tbody></table><p class="muted" style="font-size:12px">Each metric's definition and interval: docs/metrics.md. ${esc((m.notes || []).join(" "))}</p></div>
    <div><div class="card"><div id="kl-chart" style="height:260px"></div></div><div class="card" style="margin-top:16px"><div id="curves" style="height:300px"></div></div></div></div>`;
  const font = { family: "DejaVu Sans, sans-serif", size: 11 };
  const Plotly = await api.loadPlotly();
  const config = { displaylogo: false, responsive: true };
  if (m.kl_per_dim) {
    const order = m.dims_by_kl;
    Plotly.newPlot("kl-chart", [{ type: "bar", x: order.map((d) => `z${d}`), y: order.map((d) => m.kl_per_dim[d]), marker: { color: "#2f6690" } }],
      { title: { text: "KL per dim (nats)", font: { size: 13 } }, margin: { l: 40, r: 10, t: 36, b: 30 }, font }, config);
  } else if (m.density_histogram) {
    const h = m.density_histogram, e = h.log10_density_edges;
    Plotly.newPlot("kl-chart", [{ type: "bar", x: h.counts.map((_, i) => (e[i] + e[i + 1]) / 2), y: h.counts, width: e[1] - e[0], marker: { color: "#2f6690" } }],
      { title: { text: `feature density (log10 firing rate); ${h.dead} dead`, font: { size: 13 } }, margin: { l: 40, r: 10, t: 36, b: 30 }, font,
        xaxis: { title: { text: "log10 density" } } }, config);
  }
  if (m.kind === "sae") {
    const series = [["fvu", "y"], ["dead", "y"], ["l0", "y2"]].filter(([k]) => history.some((r) => k in r));
    Plotly.newPlot("curves", series.map(([k, axis]) => ({ type: "scatter", mode: "lines", name: k, yaxis: axis, x: history.map((r) => r.step), y: history.map((r) => r[k]) })),
      { title: { text: "training curves", font: { size: 13 } }, yaxis: { title: { text: "fraction" }, rangemode: "tozero" },
        yaxis2: { title: { text: "L0" }, overlaying: "y", side: "right", rangemode: "tozero" }, margin: { l: 50, r: 50, t: 36, b: 30 }, font,
        legend: { orientation: "h", x: 0, y: -0.15 } }, config);
    return;
  }
  const keys = ["loss", "recon", "kl", "tc"].filter((k) => history.some((r) => k in r));
  Plotly.newPlot("curves", keys.map((k) => ({ type: "scatter", mode: "lines", name: k, x: history.map((r) => r.step), y: history.map((r) => r[k]) })),
    { title: { text: "training curves", font: { size: 13 } }, yaxis: { type: "log" }, margin: { l: 50, r: 10, t: 36, b: 30 }, font }, config);
}

// A sweep's rate–distortion frontier: the table of its SAEs and FVU against L0 and rate; a point opens its run.
async function sweepView(ctx, m, view) {
  const pts = m.frontier;
  const rows = pts.map((p) => `<tr class="clickable" data-run="${esc(p.run)}"><td>${esc(p.run)}</td><td>${esc(p.label)}</td><td class="num">${fmt(p.l0)}</td>
    <td class="num">${fmt(p.fvu, 4)}</td><td class="num">${p.fvu_low === null ? "–" : `[${fmt(p.fvu_low, 4)}, ${fmt(p.fvu_high, 4)}]`}</td>
    <td class="num">${fmt(p.rate_bits, 4)}</td><td class="num">${fmt(p.dead_fraction)}</td></tr>`).join("");
  view.innerHTML = `<h2>Sweep · ${esc(ctx.run)} · ${pts.length} SAEs over ${esc(m.param)}</h2>
    <div class="grid2"><div class="card"><table id="frontier-table"><thead><tr><th>run</th><th>setting</th><th class="num">L0</th><th class="num">FVU</th>
    <th class="num">95% CI</th><th class="num">rate (bits)</th><th class="num">dead</th></tr></thead><tbody>${rows}</tbody></table>
    <p class="muted" style="font-size:12px">Rate = Σ H(p<sub>i</sub>) + 16·L0 bits per token (docs/metrics.md). Click a row to open that SAE.</p></div>
    <div class="card"><div id="frontier" style="height:360px"></div></div></div>`;
  for (const tr of view.querySelectorAll("tr[data-run]")) tr.addEventListener("click", () => state.set({ run: tr.dataset.run, view: "features" }, { push: true }));
  const Plotly = await api.loadPlotly();
  const err = { type: "data", symmetric: false, array: pts.map((p) => (p.fvu_high ?? p.fvu) - p.fvu), arrayminus: pts.map((p) => p.fvu - (p.fvu_low ?? p.fvu)) };
  // labels sit above-right of each point; the last one's would run off the panel's right edge, so it goes
  // below-left (the frontier falls from the upper left, so that side is clear of the line)
  const where = pts.map((_, i) => (i === pts.length - 1 && pts.length > 1 ? "bottom left" : "top right"));
  const trace = (key, axis, color, name) => ({ type: "scatter", mode: "lines+markers+text", x: pts.map((p) => p[key]), y: pts.map((p) => p.fvu),
    error_y: err, text: pts.map((p) => p.label), textposition: where, textfont: { color: "#888" }, cliponaxis: false, xaxis: axis, name, marker: { color } });
  Plotly.newPlot("frontier", [trace("l0", "x", "#2f6690", "FVU vs L0"), trace("rate_bits", "x2", "#d1495b", "FVU vs rate")
  ], { title: { text: "rate–distortion frontier", font: { size: 13 } }, font: { family: "DejaVu Sans, sans-serif", size: 11 },
       xaxis: { title: { text: "L0" }, type: "log", domain: [0, 0.47] },
       xaxis2: { title: { text: "bits per token" }, type: "log", domain: [0.53, 1], anchor: "y" },
       yaxis: { title: { text: "FVU" } }, margin: { l: 50, r: 10, t: 36, b: 40 }, showlegend: false }, { displaylogo: false, responsive: true });
}

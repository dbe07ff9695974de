// The VAE lab's right-hand panels: the inspector, traversal sliders and interpolation strip.
import * as api from "../api.js";
import * as state from "../state.js";
import { $, esc, fmt } from "../util.js";

// -- inspector -----------------------------------------------------------------------------------
export async function inspect(ctx) {
  const panel = $("inspect-panel");
  const sel = state.getInt("sel");
  if (sel === null) { panel.innerHTML = `<h2>Inspector</h2><p class="muted">Click a point on the map.</p>`; return; }
  const rec = await api.json(`${api.runPath(ctx.run)}/inspect/${sel}`);
  const lo = ctx.info.traversal ? Math.min(...ctx.info.traversal.lo) : -3, hi = ctx.info.traversal ? Math.max(...ctx.info.traversal.hi) : 3;
  const pos = (v) => `${(100 * (Math.max(lo, Math.min(hi, v)) - lo) / (hi - lo || 1)).toFixed(1)}%`;
  const order = (ctx.info.dims_by_kl || rec.mu.map((_, i) => i)).map(Number);
  const rows = order.map((d) => {
    const m = rec.mu[d], s = rec.sigma ? rec.sigma[d] : 0;
    return `<tr><td>z${d}</td><td class="num">${fmt(m)}</td><td class="num">${rec.sigma ? fmt(s) : "–"}</td>
      <td class="bar-cell"><div class="track"></div><div class="sig" style="left:calc(${pos(m - s)});width:calc(${pos(m + s)} - ${pos(m - s)})"></div>
      <div class="mu" style="left:${pos(m)}"></div></td></tr>`;
  }).join("");
  // a factor's value by its name where the data has one (shape heart, class cat), its index otherwise
  const named = rec.factor_names || {};
  const shown = (v) => (typeof v === "number" && !Number.isInteger(v) ? fmt(v, 4) : v === null ? "–" : v);
  const facts = Object.entries(rec.factors).map(([k, v]) => `${esc(k)} <b>${esc(k in named ? named[k] : shown(v))}</b>`).join(" · ");
  panel.innerHTML = `<h2>Inspector · row ${sel}</h2>
    <div class="pair">
      ${ctx.info.has_images === false ? "" : `<figure><img id="inspect-input" class="pix" src="${api.inputPng(ctx.run, sel)}" alt="input"><figcaption>input</figcaption></figure>
      <figure><img id="inspect-recon" class="pix" src="${api.reconPng(ctx.run, sel)}" alt="reconstruction"><figcaption>reconstruction</figcaption></figure>`}
      <div class="muted" style="font-size:12px">dataset index ${rec.index}<br>${facts || ""}${rec.label !== null ? `<br>label ${esc(rec.label)}` : ""}
        ${rec.recon_error === null ? "" : `<br>recon. error ${fmt(rec.recon_error, 4)}`}</div>
    </div>
    <h3>${ctx.info.imported ? "the vector" : "latent mean ± σ (dims by KL)"}</h3>
    <table id="inspect-latents"><thead><tr><th>dim</th><th>μ</th><th>σ</th><th></th></tr></thead><tbody>${rows}</tbody></table>`;
}

// -- nearest neighbours in the full latent space (not on the map) ----------------------------------
export async function neighbours(ctx) {
  const panel = $("neighbours-panel");
  const sel = state.getInt("sel");
  if (sel === null) { panel.hidden = true; return null; }
  panel.hidden = false;
  const metric = state.get("metric", "cosine");
  const res = await api.json(`${api.runPath(ctx.run)}/neighbours/${sel}?k=10&metric=${encodeURIComponent(metric)}`);
  const cols = res.neighbours.length ? Object.keys(res.neighbours[0].factors) : [];
  const rows = res.neighbours.map((nb) => `<tr class="clickable" data-row="${nb.row}"><td class="num">${nb.row}</td>
    <td class="num">${fmt(nb.distance, 4)}</td>${cols.map((c) => `<td>${esc(nb.factors[c])}</td>`).join("")}</tr>`).join("");
  panel.innerHTML = `<h2>Nearest neighbours · row ${sel}</h2>
    <div class="controls"><label>distance <select id="nb-metric"><option value="cosine">cosine (1 − cos)</option>
      <option value="euclidean">Euclidean</option></select></label>
      <span class="muted">in the ${res.dim}-D latent space, over all ${ctx.latents.n.toLocaleString()} rows (ringed on the map)</span></div>
    <table id="neighbours-table"><thead><tr><th class="num">row</th><th class="num">distance</th>${cols.map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead>
    <tbody>${rows}</tbody></table>`;
  $("nb-metric").value = metric;
  $("nb-metric").addEventListener("change", (e) => state.set({ metric: e.target.value }));
  for (const tr of panel.querySelectorAll("tr[data-row]")) tr.addEventListener("click", () => ctx.select(Number(tr.dataset.row)));
  return res.neighbours.map((nb) => nb.row);
}

// -- lasso: what the selected points have in common, and their rows as CSV ----------------------------
export function lasso(ctx) {
  const panel = $("lasso-panel");
  const rows = ctx.chosen || [];
  panel.hidden = false;
  const { latents, info } = ctx;
  const names = Object.fromEntries((info.factors || []).map((f) => [f.name, f.value_names]));
  const label = (col, v) => (names[col] && names[col][v] !== undefined ? names[col][v] : v);
  const parts = [];
  for (const col of latents.columns) {
    const vals = latents.values[col];
    if (!vals || col === "index") continue;
    const counts = new Map();
    let sum = 0;
    for (const r of rows) { const v = vals[r]; counts.set(v, (counts.get(v) || 0) + 1); sum += v; }
    if (counts.size <= 20) {
      const top = [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 4)
        .map(([v, c]) => `${esc(label(col, v))} ${(100 * c / rows.length).toFixed(0)}%`).join(", ");
      parts.push(`<tr><td>${esc(col)}</td><td>${top}</td></tr>`);
    } else {
      parts.push(`<tr><td>${esc(col)}</td><td>mean ${fmt(sum / rows.length, 4)}</td></tr>`);
    }
  }
  panel.innerHTML = `<h2>Lasso · <span id="lasso-count">${rows.length.toLocaleString()}</span> points</h2>
    <table id="lasso-summary"><tbody>${rows.length ? parts.join("") : ""}</tbody></table>
    <div class="controls"><button id="lasso-export" ${rows.length ? "" : "disabled"}>export CSV</button><button id="lasso-clear">clear</button></div>`;
  $("lasso-clear").addEventListener("click", () => { ctx.chosen = null; ctx.lassoPoly = null; panel.hidden = true; state.set({}); });
  $("lasso-export").addEventListener("click", () => {
    const cols = latents.columns.filter((c) => latents.values[c]);
    const quote = (v) => (/[",\n]/.test(String(v)) ? `"${String(v).replace(/"/g, '""')}"` : String(v));
    const lines = [["row", ...cols].map(quote).join(",")];
    for (const r of rows) lines.push([r, ...cols.map((c) => label(c, latents.values[c][r]))].map(quote).join(","));
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
    a.download = `${ctx.run}-lasso.csv`;
    a.click();
  });
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
  const order = (ctx.info.dims_by_kl || base.map((_, i) => i)).map(Number);
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
    markTraversed(ctx, current());
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

// The traversed code on the map: the stored row nearest to it in the latent space (Euclidean), ringed
// and labelled, since a t-SNE or UMAP map has no place for a new code of its own.
async function markTraversed(ctx, z) {
  if (!ctx.mu) ctx.mu = await api.floats(`${api.runPath(ctx.run)}/latents/mu.bin`);
  const { data, rows, cols } = ctx.mu;
  let best = -1, bestD = Infinity;
  for (let i = 0; i < rows; i++) {
    let d = 0;
    for (let j = 0; j < cols; j++) { const e = data[i * cols + j] - z[j]; d += e * e; }
    if (d < bestD) { bestD = d; best = i; }
  }
  const map = window.latentatlas.map;
  if (!map) return;
  map.setMarks({ traversed: best >= 0 ? best : null });
  map.drawMarks();
  document.getElementById("map").dataset.traversed = String(best);
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

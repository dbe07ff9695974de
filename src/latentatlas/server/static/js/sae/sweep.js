// An SAE sweep's rate–distortion frontier (its metrics tab): the table of its SAEs and FVU against L0
// and rate; a row opens that SAE.
import * as api from "../api.js";
import * as state from "../state.js";
import { esc, fmt, plain } from "../util.js";

// A sweep's rate–distortion frontier: the table of its SAEs and FVU against L0 and rate; a point opens its run.
export async function sweepView(ctx, m, view) {
  const pts = m.frontier;
  const rows = pts.map((p) => `<tr class="clickable" data-run="${esc(p.run)}"><td>${esc(p.run)}</td><td>${esc(p.label)}</td><td class="num">${fmt(p.l0)}</td>
    <td class="num">${fmt(p.fvu, 4)}</td><td class="num">${p.fvu_low === null ? "–" : `[${fmt(p.fvu_low, 4)}, ${fmt(p.fvu_high, 4)}]`}</td>
    <td class="num">${fmt(p.rate_bits, 4)}</td><td class="num">${fmt(p.dead_fraction)}</td></tr>`).join("");
  view.innerHTML = `<h2>Sweep · ${esc(ctx.run)} · ${esc(pts.length)} SAEs over ${esc(m.param)}</h2>
    <div class="grid2"><div class="card"><table id="frontier-table"><thead><tr><th>run</th><th>setting</th><th class="num">L0</th><th class="num">FVU</th>
    <th class="num">95% CI</th><th class="num">rate (bits)</th><th class="num">dead</th></tr></thead><tbody>${rows}</tbody></table>
    <p class="muted" style="font-size:12px">Rate = Σ H(p<sub>i</sub>) + 16·L0 bits per token (docs/metrics.md). Click a row to open that SAE.</p></div>
    <div class="card"><div id="frontier" style="height:360px"></div></div></div>`;
  for (const tr of view.querySelectorAll("tr[data-run]")) tr.addEventListener("click", () => state.set({ run: tr.dataset.run, view: "features" }, { push: true }));
  const Plotly = await api.loadPlotly();
  const err = { type: "data", symmetric: false, array: pts.map((p) => Math.max(0, (p.fvu_high ?? p.fvu) - p.fvu)), arrayminus: pts.map((p) => Math.max(0, p.fvu - (p.fvu_low ?? p.fvu))) };
  // labels sit above-right of each point; the last one's would run off the panel's right edge, so it goes
  // below-left (the frontier falls from the upper left, so that side is clear of the line)
  const where = pts.map((_, i) => (i === pts.length - 1 && pts.length > 1 ? "bottom left" : "top right"));
  const trace = (key, axis, color, name) => ({ type: "scatter", mode: "lines+markers+text", x: pts.map((p) => p[key]), y: pts.map((p) => p.fvu),
    error_y: err, text: pts.map((p) => plain(p.label)), textposition: where, textfont: { color: "#888" }, cliponaxis: false, xaxis: axis, name, marker: { color } });
  Plotly.newPlot("frontier", [trace("l0", "x", "#2f6690", "FVU vs L0"), trace("rate_bits", "x2", "#d1495b", "FVU vs rate")
  ], { title: { text: "rate–distortion frontier", font: { size: 13 } }, font: { family: "DejaVu Sans, sans-serif", size: 11 },
       xaxis: { title: { text: "L0" }, type: "log", domain: [0, 0.47] },
       xaxis2: { title: { text: "bits per token" }, type: "log", domain: [0.53, 1], anchor: "y" },
       yaxis: { title: { text: "FVU" } }, margin: { l: 50, r: 10, t: 36, b: 40 }, showlegend: false }, { displaylogo: false, responsive: true });
}

// The metrics view every run has: the table of metrics with their intervals and the run's notes, then
// the charts its lab draws (KL per dim and loss curves for a VAE, feature density and FVU/L0 for an SAE).
// A lab may replace the whole view (an SAE sweep shows its frontier instead).
import * as api from "./api.js";
import { $, esc, fmt } from "./util.js";

export const FONT = { family: "DejaVu Sans, sans-serif", size: 11 };
export const PLOT_CONFIG = { displaylogo: false, responsive: true };

export async function metricsView(ctx, lab) {
  const view = $("metrics-view");
  let m = null;
  try { m = await api.json(`${api.runPath(ctx.run)}/metrics`); } catch (e) { view.innerHTML = `<h2>Metrics</h2><p class="muted">${esc(e.message)}</p>`; return; }
  if (lab.metricsView && (await lab.metricsView(ctx, m, view))) return;
  const history = await api.json(`${api.runPath(ctx.run)}/history`);
  const rows = Object.entries(m.metrics).map(([k, v]) => `<tr><td>${esc(k)}</td><td class="num">${fmt(v.value, 4)}</td>
    <td class="num">${v.ci_low === null ? "–" : `[${fmt(v.ci_low, 4)}, ${fmt(v.ci_high, 4)}]`}</td><td class="num">${esc(v.n ?? "")}</td></tr>`).join("");
  const what = lab.metricsSubject ? lab.metricsSubject(m) : `${m.n} samples`;
  // a warning that changes how every number below reads is said above them, not in the grey notes
  const loud = (m.notes || []).filter((n) => /^NOT HELD OUT/.test(n));
  const quiet = (m.notes || []).filter((n) => !/^NOT HELD OUT/.test(n));
  view.innerHTML = `<h2>Metrics · ${esc(ctx.run)} · ${esc(what)}</h2>
    ${loud.map((n) => `<p class="warn-banner" role="alert">${esc(n)}</p>`).join("")}
    <div class="grid2"><div class="card"><table id="metrics-table"><thead><tr><th>metric</th><th class="num">value</th><th class="num">95% CI</th><th class="num">n</th></tr></thead>
    <tbody>${rows}</tbody></table><p class="muted" style="font-size:12px">Each metric's definition and interval: docs/metrics.md. ${esc(quiet.join(" "))}</p></div>
    <div><div class="card"><div id="kl-chart" style="height:260px"></div></div><div class="card" style="margin-top:16px"><div id="curves" style="height:300px"></div></div></div></div>`;
  if (lab.charts) await lab.charts(ctx, m, history, await api.loadPlotly());
  figuresCard(ctx, view);
}

// The figures eval wrote (PNG), each with its SVG/PDF for a paper where they exist.
function figuresCard(ctx, view) {
  const figs = ctx.info.figures || [];
  if (!figs.length) return;
  const card = document.createElement("div");
  card.className = "card figures";
  card.id = "figures-card";
  const h = document.createElement("h3");
  h.textContent = "Figures";
  card.append(h);
  for (const name of figs) {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = `${api.runPath(ctx.run)}/figures/${encodeURIComponent(name)}`;
    img.alt = name;
    img.loading = "lazy";
    const cap = document.createElement("figcaption");
    cap.append(document.createTextNode(name.replace(/\.png$/, "").replace(/_/g, " ")));
    for (const fmt of (ctx.info.figure_formats || {})[name] || []) {
      const a = document.createElement("a");
      a.href = `${api.runPath(ctx.run)}/figures/${encodeURIComponent(name.replace(/\.png$/, `.${fmt}`))}`;
      a.textContent = fmt.toUpperCase();
      a.setAttribute("download", "");
      cap.append(" · ", a);
    }
    fig.append(img, cap);
    card.append(fig);
  }
  view.append(card);
}

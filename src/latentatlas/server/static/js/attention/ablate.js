// The ablation view: one ablation's modules as horizontal bars sorted by effect, each with its 95% bootstrap
// interval as whiskers, a metric selector, the comparison of a mid-block attention with its ResNet, and the
// table. Module names come from the atlas: drawn with fillText or set as textContent, never as markup.
import * as api from "../api.js";
import * as state from "../state.js";
import { fmt } from "../util.js";
import { canvas, el } from "./dom.js";

const FONT = "12px system-ui, sans-serif";
const ROW = 22;
// metrics that fall as the ablation does more: sorted ascending, so the largest effect is still on top
const FALLS = new Set(["psnr", "psnr_input", "cosine", "d_psnr_input"]);
const isAttention = (name) => /attention|attn/.test(name);

const interval = (e) => (e && e.value !== null ? `${fmt(e.value)} [${fmt(e.ci_low)}, ${fmt(e.ci_high)}]` : "–");

function sortedRows(report, metric) {
  const v = (r) => (r.metrics[metric] ? r.metrics[metric].value : null);
  const falls = FALLS.has(metric);
  return [...report.rows].sort((a, b) => {
    const x = v(a), y = v(b);
    if (x === null) return 1;  // no finite value (PSNR of an unchanged output is infinite): last
    if (y === null) return -1;
    return falls ? x - y : y - x;
  });
}

function drawChart(root, report, metric, width) {
  const rows = sortedRows(report, metric);
  const label = (report.metrics.find((m) => m.key === metric) || { label: metric }).label;
  const left = Math.min(300, Math.max(140, width * 0.34)), right = 70, top = 28, bottom = 40;
  const height = top + bottom + rows.length * ROW;
  const cv = canvas(root, width, height, "ablation-chart");
  const g = cv.getContext("2d");
  let lo = 0, hi = 0;
  for (const r of rows) {
    const e = r.metrics[metric];
    if (!e || e.value === null) continue;
    for (const x of [e.value, e.ci_low, e.ci_high]) if (x !== null && Number.isFinite(x)) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
  }
  if (hi === lo) hi = lo + 1;
  // round ticks (1, 2 or 5 × 10^k apart), the axis ending on one
  const raw = (hi - lo) / 5, mag = 10 ** Math.floor(Math.log10(raw)), step = mag * (raw / mag > 5 ? 10 : raw / mag > 2 ? 5 : raw / mag > 1 ? 2 : 1);
  lo = Math.floor(lo / step) * step; hi = Math.ceil(hi / step) * step;
  const W = width - left - right;
  const px = (x) => left + ((x - lo) / (hi - lo)) * W;
  g.font = FONT; g.textBaseline = "middle";
  // grid and axis
  g.strokeStyle = "#e4e4e4"; g.fillStyle = "#555"; g.textAlign = "center";
  for (let x = lo; x <= hi + step / 2; x += step) {
    g.beginPath(); g.moveTo(px(x), top - 4); g.lineTo(px(x), height - bottom + 4); g.stroke();
    g.fillText(String(Math.abs(x) < step / 1e6 ? 0 : +x.toPrecision(3)), px(x), height - bottom + 14);
  }
  g.fillText(`${label} — bars: mean over ${report.n} ${report.items}; whiskers: 95% bootstrap interval`, left + W / 2, height - 10);
  g.strokeStyle = "#555"; g.beginPath(); g.moveTo(px(0), top - 4); g.lineTo(px(0), height - bottom + 4); g.stroke();
  g.textAlign = "left"; g.fillStyle = "#333";
  g.fillText(`${report.mode} ablation of ${report.model}, sorted by effect`, 4, 12);
  rows.forEach((r, i) => {
    const y = top + i * ROW + ROW / 2, e = r.metrics[metric];
    g.fillStyle = "#223"; g.textAlign = "right";
    let name = r.module;
    while (name.length > 4 && g.measureText(name).width > left - 10) name = "…" + name.slice(2);
    g.fillText(name, left - 8, y);
    if (!e || e.value === null) {
      g.fillStyle = "#888"; g.textAlign = "left"; g.fillText("no finite value (output unchanged)", px(0) + 6, y);
      return;
    }
    g.fillStyle = isAttention(r.module) ? "#d1603d" : "#3b6ea8";
    const x0 = px(Math.min(0, e.value)), x1 = px(Math.max(0, e.value));
    g.fillRect(x0, y - ROW * 0.32, Math.max(1, x1 - x0), ROW * 0.64);
    if (e.ci_low !== null && e.ci_high !== null) {
      g.strokeStyle = "#222"; g.lineWidth = 1.2;
      g.beginPath(); g.moveTo(px(e.ci_low), y); g.lineTo(px(e.ci_high), y);
      g.moveTo(px(e.ci_low), y - 4); g.lineTo(px(e.ci_low), y + 4); g.moveTo(px(e.ci_high), y - 4); g.lineTo(px(e.ci_high), y + 4); g.stroke();
      g.lineWidth = 1;
    }
    g.fillStyle = "#444"; g.textAlign = "left";
    g.fillText(fmt(e.value, 3), Math.max(x1, e.ci_high !== null ? px(e.ci_high) : x1) + 6, y);
  });
  cv.dataset.rows = String(rows.length);
  cv.dataset.order = rows.map((r) => r.module).join("\n");
  return cv;
}

function table(report, metric) {
  const keys = report.metrics.map((m) => m.key);
  const head = el("tr", {}, el("th", { textContent: "module" }), el("th", { textContent: "type" }),
    ...report.metrics.map((m) => el("th", { textContent: m.label })));
  const body = sortedRows(report, metric).map((r) => el("tr", {}, el("td", { textContent: r.module }), el("td", { textContent: r.type }),
    ...keys.map((k) => el("td", { textContent: interval(r.metrics[k]), style: "text-align:right;white-space:nowrap" }))));
  const refused = report.refused.map((r) => el("tr", { className: "muted" }, el("td", { textContent: r.module }), el("td", { textContent: "not ablated" }),
    el("td", { textContent: r.reason, colSpan: keys.length })));
  return el("table", { id: "ablation-table", className: "table" }, el("thead", {}, head), el("tbody", {}, ...body, ...refused));
}

export async function ablationView(ctx, root) {
  const list = (await api.json(`${api.runPath(ctx.run)}/ablations`)).ablations;
  if (!list.length) {
    root.replaceChildren(el("p", { className: "muted", textContent: `No ablation yet: run \`latentatlas attention ablate ${ctx.run}\`.` }));
    return;
  }
  const id = list.some((a) => a.id === state.get("abl")) ? state.get("abl") : list[0].id;
  const report = await api.json(`${api.runPath(ctx.run)}/ablations/${encodeURIComponent(id)}`);
  const keys = report.metrics.map((m) => m.key);
  const metric = keys.includes(state.get("ametric")) ? state.get("ametric") : report.primary;
  const pick = el("select", { id: "ablation-select" }, ...list.map((a) => el("option", { value: a.id,
    textContent: `${a.mode} · ${a.modules} modules · ${a.n} ${a.items} · ${a.created_at.slice(0, 16).replace("T", " ")}` })));
  pick.value = id;
  pick.addEventListener("change", () => state.set({ abl: pick.value, ametric: null }));
  const mpick = el("select", { id: "ablation-metric" }, ...report.metrics.map((m) => el("option", { value: m.key, textContent: m.label })));
  mpick.value = metric;
  mpick.addEventListener("change", () => state.set({ ametric: mpick.value }));
  const base = Object.entries(report.base).map(([k, e]) => `unablated ${(report.metrics.find((m) => m.key === k) || { label: k }).label}: ${interval(e)}`);
  const notes = el("div", { id: "ablation-notes" });
  for (const line of base) notes.append(el("p", { className: "muted", textContent: line }));
  const byName = new Map(report.rows.map((r) => [r.module, r]));
  for (const p of report.pairs) {
    const a = byName.get(p.attention), b = byName.get(p.resnet);
    if (!a || !b) continue;
    notes.append(el("p", { className: "pair", textContent: `${report.mode} ${p.attention}: ${interval(a.metrics[p.metric])} beside ${p.resnet}: `
      + `${interval(b.metrics[p.metric])}; difference ${interval(p.difference)}` }));
  }
  const width = Math.max(520, Math.min(980, (root.clientWidth || 980) - 20));
  const chart = el("div", { id: "ablation-chart-wrap" });
  root.replaceChildren(el("div", { className: "controls" }, el("label", {}, "Ablation ", pick), el("label", {}, "Metric ", mpick),
    el("span", { className: "muted", textContent: report.selection })), notes, chart);
  drawChart(chart, report, metric, width);
  root.append(table(report, metric));
}

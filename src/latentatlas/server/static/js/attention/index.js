// The attention lab in the explorer: the head, model, matrix and neuron views of a captured text, and
// the head atlas. app.js mounts it from LABS.
import * as api from "../api.js";
import * as state from "../state.js";
import { section } from "../util.js";
import * as views from "./views.js";
import { ablationView } from "./ablate.js";
import { FONT, PLOT_CONFIG } from "../metrics.js";
import { headsOf } from "./data.js";
import * as vit from "./vit.js";

// "sd_vae" (the SD-style VAE trained here) and "diffusers_vae" (a user's AutoencoderKL) have no attention samples, only ablations
const VAES = ["sd_vae", "diffusers_vae"];
export const KINDS = ["attention", "attn_only", ...VAES, "vit"];
export const tabs = (kind) => (kind === "vit" ? vit.TABS : VAES.includes(kind) ? [["ablation", "Ablation"], ["metrics", "Metrics"]]
  : [["head", "Head view"], ["model", "Model view"], ["matrix", "Matrix"], ["neuron", "Neuron"], ["atlas", "Head atlas"], ["ablation", "Ablation"], ["metrics", "Metrics"]]);

export async function load(ctx) {
  if (ctx.kind === "vit") { ctx.att = null; await vit.load(ctx); return; }
  if (VAES.includes(ctx.kind)) { ctx.att = null; return; }
  ctx.att = await api.json(`${api.runPath(ctx.run)}/attention`);
}

const metaCache = new Map();
async function sampleMeta(run, id) {
  const key = `${run}/${id}`;
  if (!metaCache.has(key)) metaCache.set(key, api.json(`${api.runPath(run)}/attention/${encodeURIComponent(id)}`));
  return metaCache.get(key);
}

function sampleBar(ctx, current) {
  const bar = document.createElement("div");
  bar.className = "controls";
  const sel = document.createElement("select");
  sel.id = "att-sample";
  for (const s of ctx.att.samples) {
    const o = document.createElement("option");
    o.value = s.id;
    o.textContent = `${s.text.slice(0, 60)}${s.text.length > 60 ? "…" : ""} (${s.n_tokens.toLocaleString()} tokens)`;
    sel.append(o);
  }
  if (current) sel.value = current;
  sel.addEventListener("change", () => state.set({ sample: sel.value, zoom: null, q0: null, k0: null }));
  const text = document.createElement("input");
  text.id = "att-text";
  text.placeholder = ctx.att.reads_ids ? "token ids, e.g. 3 7 1 3 7" : "a text to look at";
  text.style.width = "320px";
  const go = document.createElement("button");
  go.id = "att-capture";
  go.textContent = "Capture";
  const note = document.createElement("span");
  note.className = "muted";
  go.addEventListener("click", async () => {
    if (!text.value.trim()) return;
    go.disabled = true;
    note.textContent = "capturing…";
    try {
      const meta = await api.json(`${api.runPath(ctx.run)}/attention`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ text: text.value }) });
      ctx.att = await api.json(`${api.runPath(ctx.run)}/attention`);
      state.set({ sample: meta.id, zoom: null, q0: null, k0: null });
    } catch (e) { note.textContent = e.message; } finally { go.disabled = false; }
  });
  const label = document.createElement("label");
  label.append("Text ", sel);
  bar.append(label, text, go, note);
  return bar;
}

export async function render(ctx, view) {
  if (ctx.kind === "vit") { await vit.render(ctx, view); return; }
  const root = section("attention-view", "full", `<div id="att-bar"></div><div id="att-body"></div>`);
  root.hidden = false;
  const bar = root.querySelector("#att-bar"), body = root.querySelector("#att-body");
  if (view === "atlas") {
    bar.replaceChildren();
    await views.atlasView(ctx, body);
    return;
  }
  if (view === "ablation") {
    bar.replaceChildren();
    await ablationView(ctx, body);
    return;
  }
  const id = state.get("sample") || (ctx.att.samples[0] && ctx.att.samples[0].id);
  bar.replaceChildren(sampleBar(ctx, id));
  if (!id) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = `No text captured yet: type one above, or run \`latentatlas attention show ${ctx.run} --text "…"\`.`;
    body.replaceChildren(p);
    return;
  }
  const meta = await sampleMeta(ctx.run, id);
  if (meta.note) {
    const p = document.createElement("p");
    p.className = "warn-banner";
    p.textContent = meta.note;
    bar.append(p);
  }
  await { head: views.headView, model: views.modelView, matrix: views.matrixView, neuron: views.neuronView }[view](ctx, body, meta);
}

export const metricsSubject = (m) => (m.kind === "attn_only" ? "the induction-heads ground truth" : "");

// The induction run's charts: the in-context-learning score over training with the step the induction
// head forms (the phase change), and each head's previous-token share and prefix matching at the end.
export async function charts(ctx, m, history, Plotly) {
  if (m.kind === "vit") { await vit.charts(ctx, m, history, Plotly); return; }
  if (m.kind === "sd_vae") {  // the SD-style VAE's training: reconstruction error and the posterior's KL
    const curve = (id, k, title, ytitle, type) => Plotly.newPlot(id, [{ type: "scatter", mode: history.length > 1 ? "lines" : "markers", x: history.map((r) => r.step), y: history.map((r) => r[k]) }],
      { title: { text: title, font: { size: 13 } }, margin: { l: 60, r: 10, t: 36, b: 40 }, font: FONT, xaxis: { title: { text: "step" } },
        yaxis: { title: { text: ytitle }, type } }, PLOT_CONFIG);
    curve("kl-chart", "kl", "posterior KL to N(0, I) over training", "nats per image", "linear");
    curve("curves", "mse", "reconstruction error over training", "MSE (pixels in [0, 1])", "log");
    return;
  }
  if (m.kind !== "attn_only") return;
  const rows = history.filter((r) => "icl" in r);
  const change = m.headline ? m.headline.phase_change_step : null;
  const line = (k, name, dash) => ({ type: "scatter", mode: "lines", name, x: rows.map((r) => r.step), y: rows.map((r) => r[k]), line: { dash } });
  Plotly.newPlot("curves", [line("icl", "ICL score (repeat − first copy)"), line("loss_first", "loss on the first copy", "dot"), line("loss_repeat", "loss on the repeat", "dash")],
    { title: { text: "in-context learning over training (step)", font: { size: 13 } }, margin: { l: 50, r: 10, t: 36, b: 30 }, font: FONT,
      yaxis: { title: { text: "nats per token" }, zeroline: true }, legend: { orientation: "h", y: -0.15 },
      shapes: change == null ? [] : [{ type: "line", x0: change, x1: change, yref: "paper", y0: 0, y1: 1, line: { color: "#d1495b", width: 1.5 } }],
      annotations: change == null ? [] : [{ x: change, yref: "paper", y: 1, text: `induction head forms (step ${change.toLocaleString()})`, showarrow: false, xanchor: "left", font: { size: 11, color: "#d1495b" } }] },
    PLOT_CONFIG);
  const hs = await headsOf(ctx.run);
  if (!hs) return;
  const S = hs.stats.length, col = (n) => hs.stats.indexOf(n);
  const names = [], prev = [], pm = [];
  for (let l = 0; l < hs.layers; l++) for (let h = 0; h < hs.heads; h++) {
    names.push(`${l}.${h}`);
    prev.push(hs.data[(l * hs.heads + h) * S + col("previous")]);
    pm.push(hs.data[(l * hs.heads + h) * S + col("prefix_matching")]);
  }
  Plotly.newPlot("kl-chart", [{ type: "bar", name: "share to the previous token", x: names, y: prev, marker: { color: "#2f6690" } },
    { type: "bar", name: "prefix matching", x: names, y: pm, marker: { color: "#d1495b" } }],
    { title: { text: "each head (layer.head) after training", font: { size: 13 } }, barmode: "group", yaxis: { range: [0, 1] }, xaxis: { type: "category" },
      margin: { l: 40, r: 10, t: 36, b: 30 }, font: FONT, legend: { orientation: "h", y: -0.2 } }, PLOT_CONFIG);
}

// The SAE lab's views: the feature list beside a feature's page, the text probe, and steering.
import * as api from "../api.js";
import * as state from "../state.js";
import { $, esc, fmt } from "../util.js";

const post = (run, path, body) => api.json(`${api.runPath(run)}/${path}`, {
  method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
});
const pct = (v) => (v >= 0.01 ? `${(100 * v).toFixed(1)}%` : v > 0 ? `${(100 * v).toPrecision(2)}%` : "0");

// A context: its tokens, each shaded by the feature's activation relative to `scale`; the focus outlined.
function contextHtml(ex, scale) {
  return ex.tokens.map((t, i) => {
    const a = Math.max(0, Math.min(1, t.a / (scale || 1)));
    const style = a > 0 ? ` style="background:rgba(209,73,91,${(0.12 + 0.78 * a).toFixed(2)})"` : "";
    return `<span class="tok${i === ex.focus ? " focus" : ""}"${style} title="${fmt(t.a)}">${esc(t.t)}</span>`;
  }).join("");
}

function histogramSvg(h, w = 420, height = 90) {
  const max = Math.max(1, ...h.counts), n = h.counts.length, bw = w / n;
  const bars = h.counts.map((c, i) => {
    const bh = c ? Math.max(1, (height - 14) * Math.sqrt(c / max)) : 0;
    return `<rect x="${(i * bw).toFixed(1)}" y="${(height - 14 - bh).toFixed(1)}" width="${(bw - 1).toFixed(1)}" height="${bh.toFixed(1)}"><title>${fmt(h.edges[i])}–${fmt(h.edges[i + 1])}: ${c}</title></rect>`;
  }).join("");
  return `<svg class="hist" viewBox="0 0 ${w} ${height}" width="${w}" height="${height}">${bars}
    <text x="0" y="${height - 2}">0</text><text x="${w}" y="${height - 2}" text-anchor="end">${fmt(h.edges[n])}</text></svg>`;
}

// -- the feature list and one feature's page -----------------------------------------------------------
const listState = { key: null, items: [], total: 0 };

async function loadList(run, append) {
  const sort = state.get("sort", "interpretability"), order = state.get("order", "desc"), tok = state.get("tok", "");
  const text = state.get("ftext", "");
  const key = `${run}|${sort}|${order}|${tok}|${text}`;
  if (!append && listState.key === key) return;
  if (!append) { listState.key = key; listState.items = []; }
  if (text) {
    // search by activating text: the features that fire on it, strongest first (the probe's answer)
    const res = await post(run, "probe", { text });
    listState.items = res.features.map((f) => ({ id: f.id, max_act: f.max, density: null, interpretability: null, top_tokens: f.top_tokens,
      fired: f.count }));
    listState.total = listState.items.length;
    return;
  }
  const q = new URLSearchParams({ sort, order, offset: String(listState.items.length), limit: "200" });
  if (tok) q.set("token", tok);
  const page = await api.json(`${api.runPath(run)}/features?${q}`);
  listState.items.push(...page.items);
  listState.total = page.total;
  listState.nTokens = page.n_tokens;
  listState.deadNote = page.dead_note;
}

function listHtml(run) {
  const sort = state.get("sort", "interpretability"), order = state.get("order", "desc"), sel = state.getInt("feat");
  const arrow = (k) => (k === sort ? (order === "desc" ? " ▾" : " ▴") : "");
  const rows = listState.items.map((f) => `<tr class="clickable${f.id === sel ? " selected" : ""}" data-feat="${f.id}"><td class="num">${f.id}</td>
    <td class="num">${f.interpretability === null ? "–" : pct(f.interpretability)}</td><td class="num">${f.density === null ? "–" : pct(f.density)}</td><td class="num">${fmt(f.max_act)}</td><td class="toks">${f.top_tokens.map((t) => `<code>${esc(t)}</code>`).join(" ")}</td></tr>`).join("");
  const text = state.get("ftext", "");
  return `<div class="controls"><label>top token <input id="feat-filter" type="search" value="${esc(state.get("tok", ""))}" placeholder="e.g. the" style="width:120px"></label>
      <label>fires on text <input id="feat-text" type="search" value="${esc(text)}" placeholder="e.g. open the file" style="width:180px"></label>
      ${text ? `<span class="muted" id="feat-text-note">the features that fire on this text, by their largest activation on it</span>` : ""}
      <span class="muted">${listState.total.toLocaleString()} features · ${Number(listState.nTokens || 0).toLocaleString()} tokens scanned</span></div>
    ${listState.deadNote ? `<p class="muted" id="dead-note" style="font-size:12px">${esc(listState.deadNote)}</p>` : ""}
    <div class="scroll"><table id="feature-list" class="sticky"><thead><tr><th class="num sortable" data-sort="id">#${arrow("id")}</th>
      <th class="num sortable" data-sort="interpretability" title="share of its firings on its 3 top tokens (word features firing on 20+ tokens and ≤ 1% of them; others 0): docs/metrics.md">focus${arrow("interpretability")}</th>
      <th class="num sortable" data-sort="density">density${arrow("density")}</th><th class="num sortable" data-sort="max_act">max act${arrow("max_act")}</th>
      <th>top tokens</th></tr></thead><tbody>${rows}</tbody></table>
    ${listState.items.length < listState.total ? `<button id="feat-more">more</button>` : ""}</div>`;
}

async function pageHtml(run, id) {
  const p = await api.json(`${api.runPath(run)}/features/${id}`);
  const top = p.top.map((ex) => `<div class="ctx"><span class="act">${fmt(ex.act)}</span>${contextHtml(ex, p.max_act)}</div>`).join("");
  const quant = p.quantiles.map((ex) => `<div class="ctx"><span class="act" title="bin ${fmt(ex.bin[0])}–${fmt(ex.bin[1])}, ${ex.count} tokens">${fmt(ex.act)}</span>${contextHtml(ex, p.max_act)}</div>`).join("");
  const neigh = p.neighbours.map((n) => `<a class="chip" data-feat="${n.id}" title="decoder cosine ${fmt(n.cos)}">#${n.id} <span class="muted">${fmt(n.cos, 2)}</span> ${n.top_tokens.map((t) => esc(t)).join(" ")}</a>`).join("");
  const toks = p.top_tokens.map((t) => `<tr><td><code>${esc(t.token)}</code></td><td class="num">${t.count}</td><td class="num">${pct(t.share)}</td></tr>`).join("");
  const logitCol = (rows, cls) => rows.map((t) => `<tr><td><code class="${cls}">${esc(t.token)}</code></td><td class="num">${fmt(t.logit)}</td></tr>`).join("");
  const logits = p.logits ? `<h3 title="the unembedding (with the final layer norm's gain) applied to the feature's decoder direction: its direct effect on the next-token logits">logit effect (direct path)</h3>
    <div class="grid2" id="feature-logits"><table class="compact"><thead><tr><th>promoted</th><th class="num">logit</th></tr></thead><tbody>${logitCol(p.logits.positive, "up")}</tbody></table>
      <table class="compact"><thead><tr><th>suppressed</th><th class="num">logit</th></tr></thead><tbody>${logitCol(p.logits.negative, "down")}</tbody></table></div>` : "";
  return `<h2>Feature #${p.id}</h2>
    <div class="facts"><span><b>${pct(p.density)}</b> density</span><span><b>${p.fires.toLocaleString()}</b> of ${p.n_tokens.toLocaleString()} tokens</span>
      <span><b>${fmt(p.max_act)}</b> max activation</span>
      <a class="button" href="?${new URLSearchParams({ run, view: "steer", feat: String(p.id) })}" id="steer-link">steer with it</a></div>
    <h3>activation histogram (non-zero)</h3>${histogramSvg(p.histogram)}
    <h3>top activations</h3><div id="feature-top">${top || `<p class="muted">never fired on the scanned tokens</p>`}</div>
    <h3>across the range (one example per activation bin)</h3><div id="feature-quantiles">${quant}</div>
    <div class="grid2"><div><h3>tokens that fire it most</h3><table class="compact"><thead><tr><th>token</th><th class="num">count</th>
      <th class="num" title="of that token's occurrences">share</th></tr></thead><tbody>${toks}</tbody></table></div>
      <div><h3>nearest features (decoder cosine)</h3><div id="feature-neighbours" class="chips">${neigh}</div></div></div>${logits}`;
}

export async function featuresView(ctx) {
  const left = $("sae-left"), right = $("sae-right");
  await loadList(ctx.run, false);
  left.innerHTML = listHtml(ctx.run);
  const pick = (id) => state.set({ feat: id }, { push: true });
  for (const tr of left.querySelectorAll("tr[data-feat]")) tr.addEventListener("click", () => pick(tr.dataset.feat));
  for (const th of left.querySelectorAll("th[data-sort]")) {
    th.addEventListener("click", () => {
      const same = state.get("sort", "interpretability") === th.dataset.sort;
      state.set({ sort: th.dataset.sort, order: same && state.get("order", "desc") === "desc" ? "asc" : "desc" });
    });
  }
  $("feat-filter").addEventListener("change", (e) => state.set({ tok: e.target.value.trim() || null }));
  $("feat-text").addEventListener("change", (e) => state.set({ ftext: e.target.value.trim() || null }));
  const more = $("feat-more");
  if (more) more.addEventListener("click", async () => { await loadList(ctx.run, true); await featuresView(ctx); });
  const id = state.getInt("feat") ?? (listState.items[0] ? listState.items[0].id : null);
  if (id === null) { right.innerHTML = `<p class="muted">No features.</p>`; return; }
  right.innerHTML = await pageHtml(ctx.run, id);
  right.dataset.feature = String(id);
  for (const a of right.querySelectorAll("[data-feat]")) a.addEventListener("click", () => pick(a.dataset.feat));
  left.querySelector("tr.selected")?.scrollIntoView({ block: "nearest" });
}

// -- the probe ---------------------------------------------------------------------------------------
export async function probeView(ctx) {
  const view = $("probe-view");
  const text = state.get("text", "Return the number of items in the list.");
  const focus = state.getInt("pf");
  view.innerHTML = `<h2>Probe · ${esc(ctx.run)}</h2>
    <div class="card"><textarea id="probe-text" rows="3">${esc(text)}</textarea>
    <div class="controls"><button id="probe-run">probe</button><span class="muted">Which features fire on each token. Click a token for its
      features, a feature to shade the text by it.</span></div><div id="probe-out"></div></div>`;
  $("probe-run").addEventListener("click", () => state.set({ text: $("probe-text").value, pf: null }));
  const res = await post(ctx.run, "probe", { text });
  const scale = focus === null ? 1 : Math.max(1e-9, ...res.tokens.map((t) => (t.features.find((f) => f.id === focus) || { a: 0 }).a));
  const toks = res.tokens.map((t, i) => {
    const a = focus === null ? 0 : (t.features.find((f) => f.id === focus) || { a: 0 }).a / scale;
    const style = a > 0 ? ` style="background:rgba(209,73,91,${(0.12 + 0.78 * a).toFixed(2)})"` : "";
    return `<span class="tok${t.special ? " special" : ""}" data-i="${i}"${style}>${esc(t.t)}</span>`;
  }).join("");
  const feats = res.features.map((f) => `<tr class="clickable${f.id === focus ? " selected" : ""}" data-pf="${f.id}"><td class="num">#${f.id}</td>
    <td class="num">${fmt(f.max)}</td><td class="num">${f.count}</td><td class="toks">${f.top_tokens.map((t) => `<code>${esc(t)}</code>`).join(" ")}</td>
    <td><a href="?${new URLSearchParams({ run: ctx.run, view: "features", feat: String(f.id) })}">page</a></td></tr>`).join("");
  $("probe-out").innerHTML = `<div id="probe-tokens" class="ctx big">${toks}</div><div class="grid2"><div><h3>features on this text</h3>
    <table id="probe-features" class="compact"><thead><tr><th class="num">#</th><th class="num">max</th><th class="num">tokens</th><th>its top tokens</th><th></th></tr></thead>
    <tbody>${feats}</tbody></table></div><div><h3>token</h3><div id="probe-token-detail" class="muted">click a token</div></div></div>`;
  for (const tr of view.querySelectorAll("tr[data-pf]")) tr.addEventListener("click", () => state.set({ pf: tr.dataset.pf }));
  for (const sp of view.querySelectorAll("#probe-tokens .tok")) {
    sp.addEventListener("click", () => {
      const t = res.tokens[Number(sp.dataset.i)];
      $("probe-token-detail").innerHTML = t.special ? `<code>${esc(t.t)}</code> is a special token: the SAE was not trained on these.`
        : `<code>${esc(t.t)}</code>: ${t.features.map((f) => `<a class="chip" data-pf="${f.id}">#${f.id} <b>${fmt(f.a)}</b></a>`).join(" ") || "no feature fires"}`;
      for (const a of $("probe-token-detail").querySelectorAll("[data-pf]")) a.addEventListener("click", () => state.set({ pf: a.dataset.pf }));
    });
  }
}

// -- steering ------------------------------------------------------------------------------------------
// α is in one unit for both modes: the layer's median activation norm (α = 1 adds a vector as long as a
// typical token's activation). The answer puts the default output beside the steered one, the cosine to
// the original beside every strength, and the steering-effect score against random directions.
export async function steerView(ctx) {
  const view = $("steer-view");
  const text = state.get("text", "Open the file and read its lines.");
  const feat = state.get("feat", ""), a = state.get("sa", ""), b = state.get("sb", ""), alpha = Number(state.get("alpha", "0.5"));
  const mode = a && b && !feat ? "texts" : "feature";
  view.innerHTML = `<h2>Steer · ${esc(ctx.run)}</h2>
    <div class="card"><label class="wide">text <input id="steer-text" type="text" value="${esc(text)}"></label>
    <div class="controls"><label><input type="radio" name="steer-mode" value="feature" ${mode === "feature" ? "checked" : ""}> feature
        <input id="steer-feat" type="number" min="0" value="${esc(feat)}" style="width:90px"></label>
      <label><input type="radio" name="steer-mode" value="texts" ${mode === "texts" ? "checked" : ""}> code(a) − code(b):
        <input id="steer-a" type="text" value="${esc(a)}" placeholder="a" style="width:160px"> − <input id="steer-b" type="text" value="${esc(b)}" placeholder="b" style="width:160px"></label></div>
    <div class="controls"><label>α <input id="steer-alpha" type="range" min="-4" max="4" step="0.05" value="${alpha}" style="width:240px"></label>
      <output id="steer-alpha-out">${alpha}</output><button id="steer-run">steer</button>
      <span class="muted">α is in units of the layer's median activation norm, for both modes (docs/metrics.md, Steering).</span></div>
    <div id="steer-out"></div></div>`;
  $("steer-alpha").addEventListener("input", (e) => { $("steer-alpha-out").textContent = e.target.value; });
  $("steer-run").addEventListener("click", () => {
    const m = view.querySelector("input[name=steer-mode]:checked").value;
    state.set({ text: $("steer-text").value, alpha: $("steer-alpha").value, feat: m === "feature" ? $("steer-feat").value : null,
                sa: m === "texts" ? $("steer-a").value : null, sb: m === "texts" ? $("steer-b").value : null });
  });
  if (!(feat !== "" || (a && b))) { $("steer-out").innerHTML = `<p class="muted">Pick a feature (or two texts) and press steer.</p>`; return; }
  const body = { text, alpha, ...(mode === "feature" ? { feature: Number(feat) } : { a, b }) };
  $("steer-out").innerHTML = `<p class="muted">steering…</p>`;
  let res = await post(ctx.run, "steer", body);
  if (res.job) {
    // the run was evaluated before its steering index was stored: the server builds it once, in the background
    await api.waitFor(res.job, (job) => { $("steer-out").innerHTML = `<p class="muted">${esc(res.detail)} (${Math.round(job.seconds)} s)</p>`; });
    res = await post(ctx.run, "steer", body);
  }
  const info = res.info || {};
  const how = `${esc(res.direction)}; α = ${fmt(res.alpha)} × ${fmt(res.unit, 3)} (the layer's median activation norm): a vector of norm ${fmt(info.added_norm, 3)} added to every token`
    + (info.strength !== undefined ? `, i.e. ${fmt(info.strength, 3)} × the feature's decoder row` + (info.strength_vs_max_act !== undefined ? ` (${fmt(info.strength_vs_max_act, 3)} × its largest activation seen)` : "") : "");
  const list = (xs) => xs.map((d) => `<li class="${d.target ? "target" : ""}"><span class="act">${fmt(d.cos, 3)}</span> <code>${esc(d.source)}</code> ${esc(d.text.slice(0, 140))}</li>`).join("");
  const next = (xs) => xs.map((d) => `<li><span class="act">${(100 * d.p).toFixed(1)}%</span> <code>${esc(d.token)}</code></li>`).join("");
  if (res.kind !== "embedding") {
    $("steer-out").innerHTML = `<p>${how}. Next-token predictions at the end of the text (KL to the default: <b id="steer-kl">${fmt(res.kl_before_after, 3)}</b> nats):</p>
       <div class="grid2"><div><h3>default</h3><ol id="steer-before" class="neighbours">${next(res.before)}</ol></div>
       <div><h3>steered</h3><ol id="steer-after" class="neighbours">${next(res.after)}</ol></div></div>
       <p class="muted">${esc(res.effect_note || "")}</p>`;
    return;
  }
  const e = res.effect;
  const score = e
    ? `<p id="steer-effect">Steering effect: ${esc(res.target_note)} rose by <b>${fmt(100 * e.effect, 3)}</b> percentile points in the pool's ranking
       (random directions of the same norm: ${fmt(100 * e.control_mean, 3)}, 95% of them in [${fmt(100 * e.control_low, 3)}, ${fmt(100 * e.control_high, 3)}];
       p = ${fmt(e.p, 2)} from ${res.controls} controls).</p>`
    : `<p id="steer-effect" class="muted">No steering-effect score: ${esc(res.target_note || "")}</p>`;
  const dose = res.dose.map((d) => `<tr class="${d.alpha === res.alpha ? "chosen" : ""}"><td class="num">${fmt(d.alpha, 3)}</td><td class="num">${fmt(d.cos, 3)}</td>
    <td class="num">${fmt(d.control_cos, 3)}</td><td class="num">${d.effect === undefined ? "–" : fmt(100 * d.effect, 3)}</td>
    <td class="num">${d.effect === undefined ? "–" : `${fmt(100 * d.control_mean, 3)} [${fmt(100 * d.control_low, 3)}, ${fmt(100 * d.control_high, 3)}]`}</td></tr>`).join("");
  $("steer-out").innerHTML = `<p>${how}. The steered sentence embedding has cosine <b id="steer-cos">${fmt(res.cos_before_after, 3)}</b> to the original.</p>
     ${score}
     <div class="grid2"><div><h3>default · nearest of ${res.corpus_docs} documents spread over the store</h3><ol id="steer-before" class="neighbours">${list(res.before)}</ol></div>
     <div><h3>steered</h3><ol id="steer-after" class="neighbours">${list(res.after)}</ol></div></div>
     <h3>Every strength</h3><table id="steer-dose"><thead><tr><th class="num">α</th><th class="num">cosine to original</th><th class="num">random direction's cosine</th>
     <th class="num">effect (pct. points)</th><th class="num">random directions: mean [95%]</th></tr></thead><tbody>${dose}</tbody></table>
     <p class="muted">Target documents are marked in the lists. Effect: the mean percentile rank of the target documents among the pool
     by cosine to the steered embedding, minus the same for the default embedding.</p>`;
}

// The runs list (the explorer's home page): every run with its lab's headline metrics; a click opens it.
import * as api from "./api.js";
import * as state from "./state.js";
import { $, esc, fmt } from "./util.js";

export async function runsView(firstView) {
  const runs = await api.json("/api/runs");
  const keys = ["mig", "dci_disentanglement", "factor_vae", "active_units", "recon_error", "l0", "fvu", "embedding_cosine", "ce_loss_recovered"]
    .filter((k) => runs.some((r) => k in (r.metrics || {})));
  // a bad run (damaged or hostile files) is listed with the reason, and does not open
  const rows = runs.map((r) => `<tr class="${r.status === "bad" ? "bad" : "clickable"}" ${r.status === "bad" ? "" : `data-run="${esc(r.name)}"`} data-kind="${esc(r.kind)}"
    ${r.error ? `title="${esc(r.error)}"` : ""}><td>${esc(r.name)}</td><td>${esc(r.kind)}</td><td class="status">${esc(r.status)}</td>
    <td>${esc(r.data)}</td><td class="num">${esc(r.steps ?? "")}</td><td>${esc((r.created_at || "").replace("T", " ").slice(0, 16))}</td>
    ${keys.map((k) => `<td class="num">${fmt((r.metrics || {})[k])}</td>`).join("")}</tr>`).join("");
  $("runs-view").innerHTML = `<h2>Runs</h2>${runs.length ? `<table id="runs-table"><thead><tr><th>run</th><th>kind</th><th>status</th><th>data</th>
    <th class="num">steps</th><th>created</th>${keys.map((k) => `<th class="num">${esc(k)}</th>`).join("")}</tr></thead><tbody>${rows}</tbody></table>
    ${runs.filter((r) => r.error).map((r) => `<p class="muted run-error"><b>${esc(r.name)}</b>: ${esc(r.error)}</p>`).join("")}`
    : `<p class="muted">No runs yet. Train one: <code>latentatlas train vae --data digits</code></p>`}
    <p class="muted paint-entry">Flow lab: <a href="?view=paint" id="paint-entry">paint a 2-D target</a> and train a flow model on it from this page.</p>`;
  for (const tr of document.querySelectorAll("#runs-table tr[data-run]")) {
    tr.addEventListener("click", () => state.set({ run: tr.dataset.run, view: firstView(tr.dataset.kind), sel: null, color: null, feat: null }, { push: true }));
  }
}

// The module graph: a model's module tree and the data flow between its parts, laid out on the server
// (grandalf's Sugiyama layout) and drawn here as SVG. Drag pans, the wheel zooms, the +/− marker of a module
// opens or closes it (a frame's marker closes it), a click selects a node and the side panel shows its
// type, shapes, parameters and statistics, and the command that captures its activations for the SAE lab.
// Every text from the atlas goes in as text (textContent), never as markup.
import * as api from "../api.js";
import * as state from "../state.js";
import { fmt, section } from "../util.js";

const SVG = "http://www.w3.org/2000/svg";
const COLORS = { module: "#e3eef8", op: "#fff4dc", input: "#e4f4e4", output: "#f6e1e1" };
const STROKES = { module: "#4a78a8", op: "#c29a3a", input: "#4f8f4f", output: "#a85050" };

export async function available(run) {
  try { return (await api.json(`${api.runPath(run)}/graph/exists`)).graph === true; } catch (_) { return false; }
}

const el = (tag, attrs = {}, text = null) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== null) e.textContent = text;
  return e;
};

const expandedOf = () => (state.get("gx") || "").split(",").filter(Boolean);
function setExpanded(list) { state.set({ gx: [...new Set(list)].sort().join(",") || null }); }
const shape = (s) => (s && s.length ? `(${s.join(", ")})` : "–");

let view = { k: 1, x: 20, y: 40 };  // the pan and zoom survive re-renders of the same run
let viewRun = null;

export async function render(ctx) {
  const root = section("graph-view", "split", `<div class="left"><div id="graph-status" class="map-controls"></div><div id="graph-box"></div></div>
    <div class="right"><div class="panel" id="graph-panel"><h2>Module graph</h2><p class="muted">Click a box for its statistics; its +/− marker opens or closes a module.</p></div></div>`);
  root.hidden = false;
  if (viewRun !== ctx.run) { view = { k: 1, x: 20, y: 40 }; viewRun = ctx.run; }
  const box = root.querySelector("#graph-box");
  box.style.flex = "1";
  box.style.minHeight = "480px";
  box.style.position = "relative";
  box.style.overflow = "hidden";
  const expanded = expandedOf();
  const g = await api.json(`${api.runPath(ctx.run)}/graph?expanded=${encodeURIComponent(expanded.join(","))}`);
  const status = root.querySelector("#graph-status");
  const s = g.summary;
  status.textContent = `${g.model} (${g.architecture}) — ${s.modules.toLocaleString()} modules, ${s.ops.toLocaleString()} ops, `
    + `${s.parameters.toLocaleString()} parameters; traced with ${g.tracer} through ${g.method}; ${g.nodes.length} boxes shown`;
  if (g.note) {
    const note = document.createElement("div");
    note.className = "warn-banner";
    note.textContent = g.note;
    status.append(note);
  }
  draw(box, g, ctx);
  const sel = state.get("gn");
  const chosen = g.nodes.find((n) => n.id === sel);
  if (chosen) showPanel(root.querySelector("#graph-panel"), chosen, g);
}

function draw(box, g, ctx) {
  const svg = el("svg", { width: "100%", height: "100%", id: "graph-svg" });
  svg.style.position = "absolute";
  svg.style.inset = "0";
  svg.style.cursor = "grab";
  svg.style.userSelect = "none";
  const defs = el("defs");
  const marker = el("marker", { id: "graph-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.append(el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#667" }));
  defs.append(marker);
  svg.append(defs);
  const world = el("g", { id: "graph-world" });
  svg.append(world);
  const place = () => world.setAttribute("transform", `translate(${view.x},${view.y}) scale(${view.k})`);
  place();
  const expanded = expandedOf();

  for (const f of g.frames) {
    const frame = el("g", { class: "graph-frame", "data-id": f.id });
    frame.append(el("rect", { x: f.x0, y: f.y0, width: f.x1 - f.x0, height: f.y1 - f.y0, rx: 8, fill: "rgba(74,120,168,0.05)", stroke: "#9bb3cc", "stroke-dasharray": "4 3" }));
    const toggle = el("text", { x: f.x0 + 6, y: f.y0 + 13, "font-size": 13, "font-weight": 700, fill: "#4a78a8", class: "graph-toggle", "data-id": f.id }, "−");
    toggle.style.cursor = "pointer";
    toggle.addEventListener("click", (e) => { e.stopPropagation(); setExpanded(expanded.filter((x) => x !== f.id && !x.startsWith(`${f.id}.`))); });
    frame.append(toggle, el("text", { x: f.x0 + 20, y: f.y0 + 13, "font-size": 11, fill: "#4a78a8", "font-family": "monospace" }, `${f.label} · ${f.type}`));
    world.append(frame);
  }
  for (const e of g.edges) {
    const pts = e.points.map(([x, y]) => `${x},${y}`).join(" ");
    const line = el("polyline", { points: pts, fill: "none", stroke: "#889", "stroke-width": Math.min(1 + Math.log2(e.count), 4), "marker-end": "url(#graph-arrow)", class: "graph-edge" });
    line.dataset.from = e.from;
    line.dataset.to = e.to;
    world.append(line);
  }
  for (const n of g.nodes) {
    const node = el("g", { class: "graph-node", transform: `translate(${n.x - n.w / 2},${n.y - n.h / 2})` });
    node.dataset.id = n.id;
    node.dataset.kind = n.kind;
    const selected = state.get("gn") === n.id;
    node.append(el("rect", { width: n.w, height: n.h, rx: n.kind === "module" ? 6 : 11, fill: COLORS[n.kind] || "#eee",
      stroke: selected ? "#d2691e" : STROKES[n.kind] || "#888", "stroke-width": selected ? 2.5 : 1.2 }));
    if (n.kind === "module") {
      node.append(el("text", { x: n.w / 2, y: 16, "text-anchor": "middle", "font-size": 12, "font-weight": 600, fill: "#223" }, n.label));
      node.append(el("text", { x: n.w / 2, y: 31, "text-anchor": "middle", "font-size": 10, fill: "#556", "font-family": "monospace" }, n.type));
    } else {
      node.append(el("text", { x: n.w / 2, y: n.h / 2 + 4, "text-anchor": "middle", "font-size": 11, fill: "#332", "font-family": "monospace" }, n.label));
    }
    if (n.expandable) {
      const toggle = el("text", { x: n.w - 11, y: 14, "text-anchor": "middle", "font-size": 14, "font-weight": 700, fill: "#4a78a8", class: "graph-toggle", "data-id": n.id }, "+");
      toggle.style.cursor = "pointer";
      toggle.addEventListener("click", (ev) => { ev.stopPropagation(); setExpanded([...expanded, n.id]); });
      node.append(toggle);
    }
    node.style.cursor = "pointer";
    node.addEventListener("click", (ev) => { ev.stopPropagation(); if (!moved) state.set({ gn: n.id }); });
    node.addEventListener("dblclick", (ev) => { ev.stopPropagation(); if (n.expandable) setExpanded([...expanded, n.id]); });
    world.append(node);
  }

  // pan (drag) and zoom (wheel, about the pointer)
  let drag = null, moved = false;
  svg.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y }; moved = false; svg.style.cursor = "grabbing"; });
  svg.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) moved = true;
    view.x = drag.vx + dx;
    view.y = drag.vy + dy;
    place();
  });
  const end = () => { drag = null; svg.style.cursor = "grab"; setTimeout(() => { moved = false; }, 0); };
  svg.addEventListener("pointerup", end);
  svg.addEventListener("pointerleave", end);
  svg.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = svg.getBoundingClientRect();
    const px = e.clientX - r.left, py = e.clientY - r.top;
    const k = Math.min(4, Math.max(0.05, view.k * Math.exp(-e.deltaY * 0.0015)));
    view.x = px - (px - view.x) * (k / view.k);
    view.y = py - (py - view.y) * (k / view.k);
    view.k = k;
    place();
  }, { passive: false });
  box.replaceChildren(svg);
}

function row(table, key, value) {
  const tr = document.createElement("tr");
  const th = document.createElement("th");
  th.textContent = key;
  th.style.textAlign = "left";
  th.style.paddingRight = "12px";
  th.style.fontWeight = "500";
  th.className = "muted";
  const td = document.createElement("td");
  td.textContent = value;
  td.style.fontFamily = "monospace";
  tr.append(th, td);
  table.append(tr);
}

function showPanel(panel, n, g) {
  const h = document.createElement("h2");
  h.textContent = n.id.startsWith(".") ? `${n.label} (${n.kind})` : (n.id || g.model);
  const table = document.createElement("table");
  table.id = "graph-stats";
  row(table, "type", n.type);
  if (n.kind === "module") {
    row(table, "parameters", `${n.params_total.toLocaleString()} (${n.params.toLocaleString()} its own)`);
    row(table, "calls", String(n.calls));
  }
  if (n.in_shapes.length) row(table, "input", n.in_shapes.map(shape).join(" "));
  row(table, "output", n.shapes.map(shape).join(" ") || "–");
  if (n.dtypes.length) row(table, "dtype", n.dtypes.join(" "));
  if (n.stats) {
    row(table, "mean", fmt(n.stats.mean, 4));
    row(table, "std", fmt(n.stats.std, 4));
    row(table, "zeros", `${(100 * n.stats.zeros).toFixed(1)} %`);
    row(table, "L2 norm / example", fmt(n.stats.norm, 4));
  }
  const parts = [h, table];
  if (n.capture) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "Capture its activations for the SAE lab:";
    const code = document.createElement("code");
    code.id = "graph-capture";
    code.textContent = n.capture;
    code.style.display = "block";
    code.style.wordBreak = "break-all";
    code.style.margin = "4px 0 8px";
    const copy = document.createElement("button");
    copy.id = "graph-copy";
    copy.textContent = "Copy";
    copy.addEventListener("click", async () => {
      try { await navigator.clipboard.writeText(n.capture); copy.textContent = "Copied"; } catch (_) { copy.textContent = "Select and copy it"; }
    });
    parts.push(p, code, copy);
  } else if (n.capture_note) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = `No SAE capture: ${n.capture_note}.`;
    parts.push(p);
  }
  panel.replaceChildren(...parts);
}

// The attention lab's data: float16 windows from the server, decoded once into Float32Arrays, and a small
// cache so scrolling back over a window costs nothing.
import * as api from "../api.js";

// float16 → float32 by table: 65,536 entries built once (Float16Array is not everywhere yet)
let HALF = null;
function halfTable() {
  if (HALF) return HALF;
  HALF = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
    HALF[h] = e === 0 ? s * 2 ** -14 * (f / 1024) : e === 31 ? (f ? NaN : s * Infinity) : s * 2 ** (e - 15) * (1 + f / 1024);
  }
  return HALF;
}

export async function halfs(path) {
  const res = await fetch(path);
  if (!res.ok) {
    let detail = `${res.status} ${res.statusText}`;
    try { detail = (await res.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  const shape = (res.headers.get("X-Shape") || "").split(",").map(Number);
  const pool = (res.headers.get("X-Pool") || "1,1").split(",").map(Number);
  const raw = new Uint16Array(await res.arrayBuffer());
  const t = halfTable(), out = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = t[raw[i]];
  return { data: out, shape, pool, bytes: raw.byteLength };
}

const cache = new Map();
export async function windowOf(run, sample, { layer, r0, r1, c0, c1, max = 512 }) {
  const q = new URLSearchParams({ layer, r0, r1, c0, c1, max });
  const path = `${api.runPath(run)}/attention/${encodeURIComponent(sample)}/window?${q}`;
  if (!cache.has(path)) {
    if (cache.size > 48) cache.delete(cache.keys().next().value);
    cache.set(path, halfs(path).catch((e) => { cache.delete(path); throw e; }));
  }
  return cache.get(path);
}

export const thumbsOf = (run, sample) => halfs(`${api.runPath(run)}/attention/${encodeURIComponent(sample)}/thumbs`);

export async function neuronOf(run, sample, layer, head, query) {
  const q = new URLSearchParams({ layer, head, query });
  return api.floats(`${api.runPath(run)}/attention/${encodeURIComponent(sample)}/neuron?${q}`);
}

export async function headsOf(run) {
  const res = await fetch(`${api.runPath(run)}/heads`);
  if (!res.ok) return null;
  const [layers, heads] = (res.headers.get("X-Heads") || "0,0").split(",").map(Number);
  const stats = (res.headers.get("X-Stats") || "").split(",");
  return { data: new Float32Array(await res.arrayBuffer()), layers, heads, stats };
}

// colours for heads (tab10) and a sequential map for weights
export const HEAD_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
export const headColour = (h) => HEAD_COLOURS[h % HEAD_COLOURS.length];

// white → deep blue, on sqrt(weight) so small weights still show
export function heat(v) {
  const x = Math.sqrt(Math.max(0, Math.min(1, v)));
  return [Math.round(255 - 230 * x), Math.round(255 - 190 * x), Math.round(255 - 100 * x)];
}

// Thin client for the /api routes. Binary arrays arrive as little-endian float32 with an X-Shape header.
const enc = encodeURIComponent;

async function check(res) {
  if (!res.ok) {
    let detail = `${res.status} ${res.statusText}`, body = null;
    try { body = await res.json(); detail = body.detail || detail; } catch (_) { /* not JSON */ }
    const err = new Error(detail);
    err.status = res.status;
    err.body = body;
    throw err;
  }
  return res;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Wait for a background job (GET /api/jobs/{id}) to finish; onWait(job) is called on each poll.
export async function waitFor(job, onWait) {
  while (job && (job.state === "queued" || job.state === "running")) {
    if (onWait) onWait(job);
    await sleep(400);
    job = await json(`/api/jobs/${enc(job.id)}`);
  }
  if (job && job.state === "failed") throw new Error(job.error || `${job.what} failed`);
  return job;
}

// A binary array that the server computes on demand: on a 404 that names a `compute` URL, POST it (a
// background job), wait for the job, then fetch the array.
export async function computed(path, onWait) {
  try {
    return await floats(path);
  } catch (err) {
    if (err.status !== 404 || !err.body || !err.body.compute) throw err;
    const started = await json(err.body.compute, { method: "POST" });
    await waitFor(started.job, onWait);
    return floats(path);
  }
}

export async function json(path, init) {
  return (await check(await fetch(path, init))).json();
}

export async function floats(path) {
  const res = await check(await fetch(path));
  const shape = (res.headers.get("X-Shape") || "").split(",").map(Number);
  return { data: new Float32Array(await res.arrayBuffer()), rows: shape[0], cols: shape[1] };
}

export const runPath = (run) => `/api/runs/${enc(run)}`;
export const inputPng = (run, row) => `${runPath(run)}/input/${row}.png`;
export const reconPng = (run, row) => `${runPath(run)}/reconstruction/${row}.png`;
export const decodePng = (run, z) => `${runPath(run)}/decode.png?z=${z.map((v) => v.toFixed(4)).join(",")}`;
export const interpPng = (run, a, b, steps, method) =>
  `${runPath(run)}/interpolate.png?a=${a}&b=${b}&steps=${steps}&method=${enc(method)}`;

// Plotly (3.5 MB) draws only the small charts of the metrics view, so it is loaded on first use.
let plotly = null;
export function loadPlotly() {
  if (!plotly) {
    plotly = new Promise((resolve, reject) => {
      const tag = document.createElement("script");
      tag.src = "/vendor/plotly.min.js";
      tag.onload = () => resolve(window.Plotly);
      tag.onerror = () => { plotly = null; reject(new Error("could not load /vendor/plotly.min.js")); };
      document.head.append(tag);
    });
  }
  return plotly;
}

"""Map payload bytes, time to first render and interaction latency in headless Chromium.

    python bench/bench_map.py [--sizes 10000,100000,1000000] [--repeats 5]

Writes a synthetic run per size into a temporary atlas (10-D Gaussian latents with five factor
columns, and a stored PCA projection, as `latentatlas eval` leaves them) and serves it on 127.0.0.1.

- First render: from navigation to `/?run=…&view=map` until the app marks the map drawn
  (`#map[data-points=N]`) and two animation frames have passed (so the frame is on screen), with every
  point sent (no sampling). The baseline is the same measurement at the smallest size.
- Pan/zoom frame: the map's view is moved and redrawn 30 times in the page; each redraw is timed up to a
  1-pixel `readPixels`, which waits for the GPU (here: software GL) to finish the frame.
- Hover: a real mouse move onto a point until the thumbnail `<img>` shows that point's input, loaded.
- Click: a real click on a point until the inspector's input and reconstruction images are loaded.
Chromium runs with --disable-gpu, as in the tests: WebGL is software-rendered (SwiftShader).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time

import numpy as np
import pandas as pd
import uvicorn

from latentatlas.analysis.projections import project
from latentatlas.atlas import Atlas
from latentatlas.models import VAEConfig, build
from latentatlas.server import create_app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_run(atlas: Atlas, n: int) -> str:
    rng = np.random.default_rng(n)
    name = f"big-{n}"
    run = atlas.create_run(name, {"kind": "beta_tcvae", "data": {"kind": "sprites"}, "model": {"latent_dim": 10}})
    mu = rng.normal(size=(n, 10)).astype(np.float32)
    rows = pd.DataFrame({"index": np.arange(n), "shape": rng.integers(0, 3, n), "scale": rng.integers(0, 6, n),
                         "orientation": rng.integers(0, 40, n), "pos_x": rng.integers(0, 32, n), "pos_y": rng.integers(0, 32, n)})
    run.write_latents({"mu": mu}, rows)
    # an (untrained) model, so the inspector's reconstruction and the decode routes answer as for a real run
    run.save_model(build(VAEConfig(kind="beta_tcvae", input_shape=(1, 64, 64), latent_dim=10, dataset_size=737280)))
    run.write_projection("eval-pca", project(mu, "pca").coords, {"method": "pca"})
    return name


page_renderer = ["?"]

FRAMES = """() => { const m = window.latentatlas.map, gl = m.gl, out = [], v0 = {...m.view};
  const px = new Uint8Array(4);
  for (let k = 0; k < 30; k++) {
    const w = v0.x1 - v0.x0, h = v0.y1 - v0.y0, f = k % 2 ? 0.9 : 1.0, s = 0.01 * k;
    m.view = {x0: v0.x0 + s * w, x1: v0.x0 + s * w + f * w, y0: v0.y0 - s * h, y1: v0.y0 - s * h + f * h};
    const t0 = performance.now();
    m.draw();
    if (gl) gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px);
    out.push(performance.now() - t0);
  }
  m.view = v0; m.draw();
  out.sort((a, b) => a - b);
  return [out[Math.floor(0.5 * out.length)], out[Math.floor(0.95 * out.length)]]; }"""

# the point to hover and click: row n/3 (a random Gaussian point; the map is still at its full extent)
TARGET = """() => { const m = window.latentatlas.map; const i = Math.floor(m.n / 3); return [i, m.screenOf(i)]; }"""


def interaction(page) -> dict[str, float]:
    page_renderer[0] = page.locator("#map").get_attribute("data-renderer")
    p50, p95 = page.evaluate(FRAMES)
    row, at = page.evaluate(TARGET)
    page.mouse.move(at["x"] - 30, at["y"] - 30)
    t0 = time.perf_counter()
    page.mouse.move(at["x"], at["y"])
    page.wait_for_function("""() => { const t = document.querySelector('#hover-thumb');
        return !t.hidden && t.complete && t.naturalWidth > 0 && t.dataset.row; }""")
    hover = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    page.mouse.click(at["x"], at["y"])
    page.wait_for_function("""() => { const ok = (id) => { const e = document.getElementById(id);
        return e && e.complete && e.naturalWidth > 0; }; return location.search.includes('sel=')
        && ok('inspect-input') && ok('inspect-recon'); }""")
    click = (time.perf_counter() - t0) * 1e3
    return {"frame_p50": p50, "frame_p95": p95, "hover": hover, "click": click}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as root:
        atlas = Atlas(root)
        names = {n: make_run(atlas, n) for n in sizes}
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(root), host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        time.sleep(1.5)
        results, lat = {}, {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                              "--disable-component-update", "--no-first-run"])
            for n in sizes:
                times, payload, inter = [], 0, []
                for _ in range(args.repeats):
                    ctx = browser.new_context(viewport={"width": 1400, "height": 850})
                    page = ctx.new_page()
                    sizes_seen: list[int] = []
                    page.on("response", lambda r: sizes_seen.append(int(r.headers.get("content-length") or 0))
                            if "/api/" in r.url else None)
                    t0 = time.perf_counter()
                    page.goto(f"http://127.0.0.1:{port}/?run={names[n]}&view=map")
                    page.wait_for_selector(f'#map[data-points="{n}"]', timeout=120_000)
                    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
                    times.append(time.perf_counter() - t0)
                    payload = sum(sizes_seen)
                    inter.append(interaction(page))
                    ctx.close()
                results[n] = (statistics.median(times), times, payload)
                med = {k: statistics.median(r[k] for r in inter) for k in inter[0]}
                lat[n] = med
                print(f"{n:>9,} points: median {results[n][0]:.2f} s  runs {[round(t, 2) for t in times]}  "
                      f"API payload {payload / 1e6:.1f} MB  renderer {page_renderer[0]}")
                print(f"           pan/zoom frame p50 {med['frame_p50']:.1f} ms p95 {med['frame_p95']:.1f} ms  "
                      f"hover→thumbnail {med['hover']:.0f} ms  click→inspector {med['click']:.0f} ms")
            browser.close()
        server.should_exit = True
    base = results[sizes[0]][0]
    for n in sizes:
        print(f"| map, {n:,} points, first render (bench/bench_map.py) | {results[n][0]:.2f} s | "
              f"{sizes[0]:,} points: {base:.2f} s | {results[n][0] / base:.1f} | payload {results[n][2] / 1e6:.1f} MB |")
    b = lat[sizes[0]]
    for n in sizes:
        m = lat[n]
        print(f"| map, {n:,} points, pan/zoom frame p50 / p95 | {m['frame_p50']:.1f} / {m['frame_p95']:.1f} ms | "
              f"{sizes[0]:,} points: {b['frame_p50']:.1f} ms | {m['frame_p50'] / b['frame_p50']:.1f} | |")
        print(f"| map, {n:,} points, hover → thumbnail; click → inspector | {m['hover']:.0f} ms; {m['click']:.0f} ms | "
              f"{sizes[0]:,} points: {b['hover']:.0f}; {b['click']:.0f} ms | {m['hover'] / b['hover']:.1f}; {m['click'] / b['click']:.1f} | |")


if __name__ == "__main__":
    main()

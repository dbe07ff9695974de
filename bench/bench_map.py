"""Map payload bytes and time to first render in headless Chromium, for large latent sets.

    python bench/bench_map.py [--sizes 10000,100000,1000000] [--repeats 5]

Writes a synthetic run per size into a temporary atlas (10-D Gaussian latents with five factor
columns, and a stored PCA projection, as `latentatlas eval` leaves them), serves it on 127.0.0.1, and
times `/?run=…&view=map` from navigation until the app marks the map drawn (`#map[data-points=N]`),
with every point sent (no sampling). The baseline is the same measurement at the smallest size.
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
    run.write_projection("eval-pca", project(mu, "pca").coords, {"method": "pca"})
    return name


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
        results = {}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                              "--disable-component-update", "--no-first-run"])
            for n in sizes:
                times, payload = [], 0
                for _ in range(args.repeats):
                    ctx = browser.new_context(viewport={"width": 1400, "height": 850})
                    page = ctx.new_page()
                    sizes_seen: list[int] = []
                    page.on("response", lambda r: sizes_seen.append(int(r.headers.get("content-length") or 0))
                            if "/api/" in r.url else None)
                    t0 = time.perf_counter()
                    page.goto(f"http://127.0.0.1:{port}/?run={names[n]}&view=map")
                    page.wait_for_selector(f'#map[data-points="{n}"]', timeout=120_000)
                    times.append(time.perf_counter() - t0)
                    payload = sum(sizes_seen)
                    ctx.close()
                results[n] = (statistics.median(times), times, payload)
                print(f"{n:>9,} points: median {results[n][0]:.2f} s  runs {[round(t, 2) for t in times]}  "
                      f"API payload {payload / 1e6:.1f} MB")
            browser.close()
        server.should_exit = True
    base = results[sizes[0]][0]
    for n in sizes:
        print(f"| map, {n:,} points, first render (bench/bench_map.py) | {results[n][0]:.2f} s | "
              f"{sizes[0]:,} points: {base:.2f} s | {results[n][0] / base:.1f} | payload {results[n][2] / 1e6:.1f} MB |")


if __name__ == "__main__":
    main()

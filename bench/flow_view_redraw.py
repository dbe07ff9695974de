"""The Flow view's redraw per scrubber step (issue 12): 2,000 samples, the 64 × 64 velocity field and the
density contours, in headless Chromium (Debian's /usr/bin/chromium through Playwright).

    .venv/bin/python bench/flow_view_redraw.py [--repeats 5] [--steps 200]

A tiny three-modes run (300 training steps) is served from a temporary atlas. The page opens the Flow
view with the model's field and the target's contours; once both layers are in, each measured step calls
the view's `setT(t)` for the next t of a sweep across [0, 1] and waits for two animation frames (the new
frame is then on screen); the time from the call to the second frame is one sample. The baseline, in the
same page and run: two animation frames without a redraw (the frame cadence itself). Reported per repeat
and as the median over repeats: p50 and p95 of the redraw, of the baseline, and of the view's own
JavaScript time (`drawMs`). Target: p95 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile

import numpy as np
import torch

STEP_JS = """async (t) => {
  const f = window.latentatlas.flow;
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const t0 = performance.now();
  f.setT(t);
  await frame(); await frame();
  return [performance.now() - t0, f.drawMs];
}"""
BASE_JS = """async () => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const t0 = performance.now();
  await frame(); await frame();
  return performance.now() - t0;
}"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from latentatlas.atlas import Atlas
    from latentatlas.labs.flow import jobs
    from latentatlas.server import create_app
    from latentatlas.server.background import run_in_thread

    torch.set_num_threads(1)
    atlas = Atlas(tempfile.mkdtemp(prefix="flow-view-bench-"))
    jobs.train(atlas, steps=300, batch_size=256, name="r", progress=False, evaluate=False, device="cpu")
    base, srv, _ = run_in_thread(create_app(atlas.root))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; chromium headless, --disable-gpu",
          flush=True)
    rows = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                           "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/?run=r&view=flow&field=model&contours=target&n=2000")
        page.wait_for_selector('body[data-ready="flow"]', timeout=60_000)
        page.wait_for_function("() => window.latentatlas.flow.layers.field && window.latentatlas.flow.layers.density", timeout=60_000)
        for r in range(args.repeats):
            ts = np.linspace(0, 1, args.steps) if r % 2 == 0 else np.linspace(1, 0, args.steps)
            redraw, js, frames = [], [], []
            for t in ts:
                ms, draw_ms = page.evaluate(STEP_JS, float(t))
                redraw.append(ms)
                js.append(draw_ms)
                frames.append(page.evaluate(BASE_JS))
            q = lambda v, p: float(np.percentile(v, p))  # noqa: E731
            rows.append((q(redraw, 50), q(redraw, 95), q(frames, 50), q(frames, 95), q(js, 50), q(js, 95)))
            print(f"repeat {r}: redraw p50 {rows[-1][0]:.1f} ms, p95 {rows[-1][1]:.1f} ms; two bare frames p50 {rows[-1][2]:.1f}, "
                  f"p95 {rows[-1][3]:.1f} ms; view JS p50 {rows[-1][4]:.2f}, p95 {rows[-1][5]:.2f} ms", flush=True)
        n = page.evaluate("() => window.latentatlas.flow.at(1999) !== null")
        browser.close()
    srv.should_exit = True
    med = [statistics.median(c) for c in zip(*rows)]
    print(f"\nmedian of {args.repeats} repeats × {args.steps} steps (2,000 samples drawn: {n}): redraw p50 {med[0]:.1f} ms, "
          f"p95 {med[1]:.1f} ms (target ≤ 50); baseline two frames p50 {med[2]:.1f}, p95 {med[3]:.1f} ms; "
          f"ratio of p95s {med[1] / med[3]:.2f}; view JS p50 {med[4]:.2f}, p95 {med[5]:.2f} ms")


if __name__ == "__main__":
    main()

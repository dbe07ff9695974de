"""What capturing every layer × step costs the DiT's sampling, for one sample (issue 12, deliverable 5;
target ≤ 1.3×).

    python bench/dit_capture_overhead.py [--atlas PATH --run NAME] [--repeats 31] [--steps 25] [--scale 1.5] [--threads 1]

The model is run NAME of the atlas, or else a DiT of the default size built here (its weights do not
change its cost). Both sides sample one image of class 3 with classifier-free guidance (the conditional and
unconditional halves as one batch of 2), Euler with ``--steps`` network calls, from the same seeded noise:

- plain: ``labs.flow.dit.generate`` (diffusers' default sdpa attention processor, nothing recorded);
- capture: ``labs.flow.dit.capture``: every block's output and self-attention probabilities at every call
  (``models.dit.BlockRecorder``: forward hooks, diffusers' ``AttnProcessor`` with its scores kept), the
  sampler's states and each call's predicted images, stacked into the numpy arrays the run stores.

The two alternate (plain, capture, plain, capture, …) after one warm-up of each, in one process on
``--threads`` torch threads; the report is the median of ``--repeats`` whole-call times of each and their
ratio (and, less moved by other processes on a shared CPU, the ratio of the fastest calls). The joint
PCA-to-RGB of the capture (done once per capture by the explorer) is timed apart, and so is a capture with
hidden states only (no attention) to split the cost.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atlas", default=None)
    ap.add_argument("--run", default=None, help="a DiT run of the atlas (default: a fresh default-size DiT)")
    ap.add_argument("--repeats", type=int, default=31)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--scale", type=float, default=None, help="guidance scale (default: labs.flow.dit.CFG_SCALE)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if args.repeats < 5:
        ap.error("--repeats should be at least 5")
    torch.set_num_threads(args.threads)

    from latentatlas.labs.flow import dit
    from latentatlas.models.dit import BlockRecorder, DiTConfig, FlowDiT

    if args.run:
        from latentatlas.atlas import Atlas

        model = dit.model_of(Atlas(args.atlas).run(args.run))
        what = f"run {args.run}"
    else:
        torch.manual_seed(0)
        model = FlowDiT(DiTConfig(**dit.DEFAULTS["digits"]["model"])).eval()
        what = "a default-size DiT (random weights)"
    labels = [3]
    args.scale = dit.CFG_SCALE if args.scale is None else args.scale
    kw = dict(scale=args.scale, steps=args.steps, seed=0)

    def plain() -> None:
        dit.generate(model, labels, **kw)

    def captured() -> None:
        dit.capture(model, labels, **kw)

    def hidden_only() -> None:
        with BlockRecorder(model.dit, attention=False) as rec:
            dit.generate(model, labels, **kw)
        rec.stacked()

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    for fn in (plain, captured, hidden_only):
        fn()  # warm-up
    times: dict[str, list[float]] = {"plain": [], "capture": [], "hidden_only": []}
    for _ in range(args.repeats):
        times["plain"].append(timed(plain))
        times["capture"].append(timed(captured))
        times["hidden_only"].append(timed(hidden_only))
    cap = dit.capture(model, labels, **kw)
    dit.joint_pca_rgb(cap.hidden[:, :, 0], cap.hidden[:, :, 1])  # warm-up (scikit-learn's first import)
    t0 = time.perf_counter()
    dit.joint_pca_rgb(cap.hidden[:, :, 0], cap.hidden[:, :, 1])
    pca_seconds = time.perf_counter() - t0
    med = {k: statistics.median(v) for k, v in times.items()}
    # the outputs agree: recording changes nothing the sampler sees
    res, _ = dit.generate(model, labels, **kw)
    gap = float(np.abs(cap.states[-1].reshape(1, -1) - dit.to_image(res.x)).max())
    report = {"model": what, "steps": args.steps, "scale": args.scale, "threads": args.threads, "repeats": args.repeats,
              "median_seconds": {k: round(v, 5) for k, v in med.items()},
              "ratio_capture": round(med["capture"] / med["plain"], 3), "ratio_hidden_only": round(med["hidden_only"] / med["plain"], 3),
              "ratio_capture_fastest": round(min(times["capture"]) / min(times["plain"]), 3),
              "pca_rgb_seconds": round(pca_seconds, 5), "captured_bytes": int(cap.hidden.nbytes + cap.attention.nbytes),
              "max_image_difference": gap, "torch": torch.__version__, "python": platform.python_version(),
              "all_seconds": {k: [round(x, 5) for x in v] for k, v in times.items()}}
    print(json.dumps(report, indent=2))
    print(f"capture of every layer × step: {report['ratio_capture']:.3f}× plain sampling "
          f"({med['capture'] * 1e3:.1f} ms against {med['plain'] * 1e3:.1f} ms, median of {args.repeats}); target ≤ 1.3×")


if __name__ == "__main__":
    main()

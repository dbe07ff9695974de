"""Does the SD-style VAE's mid-block attention do anything? Train the built-in SD-style VAE on sprites
and put the claim's numbers side by side: skipping (and zeroing) each mid-block attention against the
ResNet block of the same stage, with 95% bootstrap intervals over the images.

    python bench/sd_vae_ablation.py [--atlas DIR] [--steps 400] [--n 128] [--folder AUTOENCODERKL_FOLDER]

The run is kept in --atlas (default: a temporary folder), so a second call reuses it. With --folder, a
user's AutoencoderKL (e.g. SD's vae/ folder) is measured the same way on sprites repeated to 3 channels.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import torch

from latentatlas.atlas import Atlas
from latentatlas.labs.attention import ablate as A


def table(report: dict) -> None:
    rows = {r["module"]: r["metrics"] for r in report["rows"]}
    fmt = lambda e: "–" if e["value"] is None else f"{e['value']:.4g} [{e['ci_low']:.4g}, {e['ci_high']:.4g}]"  # noqa: E731
    print(f"\n{report['mode']} ablation of {report['model']} on {report['n']} {report['items']}; unablated PSNR vs input "
          f"{fmt(report['base']['psnr_input'])} dB")
    print(f"{'module':40s} {'MSE vs unablated decode':>34s} {'PSNR vs unablated (dB)':>28s} {'Δ PSNR vs input (dB)':>28s}")
    for name, m in rows.items():
        print(f"{name:40s} {fmt(m['mse']):>34s} {fmt(m['psnr']):>28s} {fmt(m['d_psnr_input']):>28s}")
    for p in report["pairs"]:
        print(f"  {p['attention']} − {p['resnet']}: MSE difference {fmt(p['difference'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atlas", default=None)
    ap.add_argument("--steps", type=int, default=A.SDVAE_DEFAULTS["steps"])
    ap.add_argument("--n", type=int, default=128)
    ap.add_argument("--folder", default=None)
    args = ap.parse_args()
    atlas = Atlas(args.atlas or tempfile.mkdtemp(prefix="sdvae-bench-"))
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; atlas {atlas.root}")
    t0 = time.perf_counter()
    run = A.train_sdvae(atlas, A.BUILTIN, steps=args.steps)
    print(f"trained/loaded in {time.perf_counter() - t0:.0f} s; last logged: {run.read_history()[-1]}")
    targets = [A.target_of_run(run)]
    if args.folder:
        targets.append(A.resolve(args.folder, atlas))
    for target in targets:
        batch = A.make_batch(target, n=args.n, seed=1)  # other images than training drew first
        for mode in ("skip", "zero"):
            names = ["encoder.mid_block.attentions.0", "decoder.mid_block.attentions.0"]
            table(A.ablate(target, names, mode, batch, num_resamples=1000, figure=mode == "skip"))


if __name__ == "__main__":
    main()

"""Plain VAE vs β-VAE vs β-TCVAE of the same size, at the demo's settings, in one table.

    python bench/compare_family.py --atlas /tmp/family [--steps 3000] [--n 10000]

Trains the three runs (named vae, beta_vae, beta_tcvae) in the given atlas unless they are already
there, evaluates each with `latentatlas eval`'s defaults, and prints a markdown table for
docs/benchmarks.md: reconstruction error, KL, active units, MIG, DCI, FactorVAE score, with 95% CIs.
"""

from __future__ import annotations

import argparse

from latentatlas.atlas import Atlas
from latentatlas.labs.vae.cli import DEMO
from latentatlas.labs.vae.jobs import evaluate_run
from latentatlas.labs.vae.jobs import train_run

KINDS = ("vae", "beta_vae", "beta_tcvae")
COLUMNS = ("recon_error", "kl", "active_units", "mig", "dci_disentanglement", "dci_completeness", "factor_vae")


def fmt(m: dict) -> str:
    if m.get("ci_low") is None:
        return f"{m['value']:.3g}"
    return f"{m['value']:.3g} [{m['ci_low']:.3g}, {m['ci_high']:.3g}]"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--atlas", required=True)
    ap.add_argument("--steps", type=int, default=DEMO["steps"])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    atlas = Atlas(args.atlas)
    rows = []
    for kind in KINDS:
        if not (atlas.has_run(kind) and atlas.run(kind).has_model):
            train_run(kind, "sprites", latent_dim=DEMO["latent_dim"], steps=args.steps, batch_size=DEMO["batch_size"],
                      lr=DEMO["lr"], seed=args.seed, name=kind, atlas=atlas,
                      beta=DEMO["beta"] if kind == "beta_tcvae" else None)
        run = atlas.run(kind)
        report = evaluate_run(run, n=args.n, seed=0, projections=["pca"], progress=False)
        beta = run.config()["model"]["beta"]
        rows.append((f"{kind} (β={beta:g})", report["metrics"]))
    print("| model | " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * (len(COLUMNS) + 1))
    for label, metrics in rows:
        print(f"| {label} | " + " | ".join(fmt(metrics[c]) if c in metrics else "–" for c in COLUMNS) + " |")


if __name__ == "__main__":
    main()

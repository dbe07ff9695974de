"""The VAE lab's static figures, written by ``latentatlas vae eval`` into ``runs/<run>/figures/``.

The shared ``latentatlas.figures`` draws arrays; this module decodes what needs decoding and picks what
to draw.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ... import figures as F
from ...analysis.traversal import (
    interpolate,
    manifold_grid,
    traversal_latents,
    traversal_range,
)
from ...atlas import Run


# What the β-TCVAE's logged terms are (docs/metrics.md): estimates on a minibatch of 64, not measurements.
TRAINING_NOTES = {
    "tc": "minibatch-weighted estimate on each batch of 64: shifted by +(D−1)·log N (not 0 for a factorised code) "
          "and biased upwards by up to several nats as posteriors sharpen; the TC to report is eval's total_correlation",
    "mi": "index-code MI, minibatch-weighted estimate: shifted by +log N",
    "dwkl": "dimension-wise KL, minibatch-weighted estimate: shifted by −D·log N",
}


@torch.no_grad()
def _decode(model, z: np.ndarray, batch_size: int = 512) -> np.ndarray:
    dev = next(model.parameters()).device
    out = [model.decode_mean(torch.from_numpy(np.ascontiguousarray(z[i : i + batch_size], dtype=np.float32)).to(dev)).cpu().numpy()
           for i in range(0, len(z), batch_size)]
    return np.concatenate(out)


def _as_images(x: np.ndarray) -> np.ndarray | None:
    return x if x.ndim == 4 else None


def write_run_figures(run: Run, model, data, idx: np.ndarray, enc: dict[str, np.ndarray], kl_dims: np.ndarray | None,
                      order: list[int], coords: dict[str, np.ndarray], factors: np.ndarray | None,
                      num_steps: int = 9) -> list[str]:
    written: list[str] = []

    def save(fig, name: str) -> None:
        F.save(fig, run.figure_path(name))
        written.append(name)

    mu = enc["mu"]
    n_show = min(10, len(idx))
    # the sample is sorted by dataset index (for sprites: by shape first), so pick rows spread over it
    show = np.sort(np.random.default_rng(0).choice(len(idx), n_show, replace=False))
    x = data.get(idx[show])
    images = x.ndim == 4
    if images:
        x_hat = _decode(model, mu[show])
        save(F.reconstructions(x, x_hat, n=n_show), "reconstructions.png")

        # Traversal around the sample whose code is nearest the aggregate mean, every dim ordered by KL.
        centre = int(np.argmin(np.linalg.norm(mu - mu.mean(0), axis=1)))
        lo, hi = traversal_range(mu, num_sigmas=3.0)
        rows = []
        labels = []
        for d in order:
            values = np.linspace(lo[d], hi[d], num_steps)
            z = traversal_latents(mu[centre], [d], values)[0]
            rows.append(_decode(model, z))
            kl_txt = f" · KL {kl_dims[d]:.2f}" if kl_dims is not None else ""
            labels.append(f"z{d}{kl_txt}")
        grid = np.stack(rows)
        save(F.traversal_grid(grid, labels, np.linspace(-3, 3, num_steps), xlabel="σ of the aggregate posterior",
                              title="Latent traversals (rows ordered by KL)"), "traversals.png")

        a, b = 0, min(1, len(mu) - 1)
        if factors is not None and len(mu) > 1:
            # two samples that differ in as many factors as possible make a telling strip
            diff = (factors != factors[0]).sum(1)
            b = int(np.argmax(diff))
        for method in ("lerp", "slerp"):
            z = interpolate(mu[a], mu[b], 10, method=method)
            save(F.interpolation_strip(_decode(model, z), method), f"interpolation_{method}.png")

        if mu.shape[1] == 2:
            z, (rows_n, _) = manifold_grid(15)
            save(F.manifold(_decode(model, z), rows_n, z=z), "manifold.png")

    if kl_dims is not None:
        save(F.kl_per_dim(kl_dims, threshold=None, title="KL per latent dimension"), "kl_per_dim.png")

    if coords or mu.shape[1] == 2:
        if mu.shape[1] == 2:
            xy, axis = mu, ("z0", "z1")
            method = "latent"
        else:
            method = "pca" if "pca" in coords else next(iter(coords))
            xy, axis = coords[method], (f"{method} 1", f"{method} 2")
        colorings: dict[str, Any] = {}
        if factors is not None:
            names_of = getattr(data, "factor_value_names", lambda: {})()
            for j, name in enumerate(data.factor_names):
                values = factors[:, j]
                if name in names_of:  # e.g. sprites' shape: square / ellipse / heart, not 0 / 1 / 2
                    values = np.asarray(names_of[name], dtype=object)[values]
                colorings[name] = (values, data.factor_sizes[j] <= 10)
        labels_arr = getattr(data, "labels", None)
        if labels_arr is not None and "class" not in colorings and "digit" not in colorings:
            colorings["label"] = (np.asarray(labels_arr)[idx], True)
        if not colorings:
            colorings["reconstruction error"] = (enc["recon_nll"], False)
        save(F.latent_maps(xy, colorings, axis_labels=axis, title=f"Latent map ({method})"), "latent_map.png")

    history = run.read_history()
    if history:
        save(F.training_curves(history, notes=TRAINING_NOTES), "training_curves.png")
    return written

"""The VAE lab's static figures, written by ``latentatlas vae eval`` into ``runs/<run>/figures/``.

The shared ``latentatlas.figures`` draws arrays; this module decodes what needs decoding and picks what
to draw.
"""

from __future__ import annotations

import math
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


def training_quantities(config: dict[str, Any]) -> tuple[dict[str, F.Quantity], str]:
    """What each logged quantity of a run is, for its training-curves figure, and the figure's caption.

    The β-TCVAE's mi, tc and dwkl are minibatch-weighted estimates whose logged values carry constant
    shifts (docs/metrics.md, "Training-time quantities"): TC +(D−1)·log N, dimension-wise KL −D·log N, MI
    +log N, and the loss their weighted sum. The figure removes the shifts (and says so on each axis), so
    each panel shows the quantity its title names; what stays is the estimator's bias at batch M.
    """
    model = config.get("model") or {}
    train = config.get("train") or {}
    kind = str(model.get("kind") or config.get("kind") or "")
    batch, every = train.get("batch_size"), train.get("log_every")
    gaussian_fixed = model.get("likelihood") == "gaussian" and not model.get("learned_variance")
    per_image = "per image" if gaussian_fixed else "nats per image"
    q: dict[str, F.Quantity] = {
        "recon": F.Quantity("reconstruction ½‖x − x̂‖²" if gaussian_fixed else "reconstruction −log p(x|z)", per_image),
        "kl": F.Quantity("KL(q(z|x) ‖ p(z))", "nats per image"),
        "elbo": F.Quantity("ELBO (higher is better)", per_image),
        "gamma": F.Quantity("decoder variance γ (learned)"),
    }
    beta = float(model.get("beta", 1.0))
    if kind == "ae" or not kind:
        q["loss"] = F.Quantity("loss = reconstruction", per_image)
    elif kind == "vae":
        q["loss"] = F.Quantity("loss = recon + KL (the negative ELBO)", per_image)
    elif kind == "beta_vae":
        q["loss"] = F.Quantity(f"loss = recon + β·KL (β = {beta:g})", per_image)
    parts = []
    if batch and every:
        parts.append(f"Each point is the mean over the {every} training batches of {batch} since the previous one.")
    if kind == "beta_tcvae":
        d, n = int(model.get("latent_dim") or 0), int(model.get("dataset_size") or 0)
        alpha, gamma = float(model.get("tc_alpha", 1.0)), float(model.get("tc_gamma", 1.0))
        m = f"batches of {batch}" if batch else "one batch"
        loss_title = "loss = recon + α·MI + β·TC + γ·dim-wise KL"
        if d and n > 1:
            log_n = math.log(n)
            shifts = {"mi": log_n, "tc": (d - 1) * log_n, "dwkl": -d * log_n}
            const = alpha * shifts["mi"] + beta * shifts["tc"] + gamma * shifts["dwkl"]

            def removed(c: float) -> str:
                return f"logged {'−' if c > 0 else '+'} {abs(c):.1f} (nats)"

            q["loss"] = F.Quantity(loss_title, removed(const) if abs(const) >= 0.05 else per_image, offset=const)
            q["mi"] = F.Quantity("index-code MI", removed(shifts["mi"]), offset=shifts["mi"], zero=True,
                                 note="minibatch-weighted estimate; can be negative")
            q["tc"] = F.Quantity("total correlation (TC)", removed(shifts["tc"]), offset=shifts["tc"], zero=True,
                                 note=f"minibatch-weighted estimate; biased upwards at batch size {batch or 'M'}; can be negative")
            q["dwkl"] = F.Quantity("dimension-wise KL", removed(shifts["dwkl"]), offset=shifts["dwkl"], zero=True,
                                   note="minibatch-weighted estimate; can be negative")
            parts.append(
                f"MI, TC and dimension-wise KL are the β-TCVAE's minibatch-weighted estimates on each training batch "
                f"(Chen et al. 2018). Their logged values carry constant shifts from the estimator's normalisation by the "
                f"dataset size N = {n:,}: MI by +log N = {shifts['mi']:.1f}, TC by +(D−1)·log N = {shifts['tc']:.1f} and "
                f"dimension-wise KL by −D·log N = −{-shifts['dwkl']:.1f} nats (D = {d}). The shifts are removed here (each "
                f"y axis says by how much), and from the loss (α = {alpha:g}, β = {beta:g}, γ = {gamma:g}) their weighted "
                f"sum, {const:.1f} nats; gradients do not change. What remains is still an estimate on {m}: biased (TC "
                f"upwards by up to several nats as posteriors sharpen) and able to go below zero (dashed lines). The TC "
                f"to report is eval's total_correlation (docs/metrics.md).")
        else:
            q["loss"] = F.Quantity(loss_title, "logged (shifts included)")
            note = "minibatch-weighted estimate, shifted by a constant (docs/metrics.md); can be negative"
            q["mi"] = F.Quantity("index-code MI", "logged (nats)", note=note)
            q["tc"] = F.Quantity("total correlation (TC)", "logged (nats)", note=note)
            q["dwkl"] = F.Quantity("dimension-wise KL", "logged (nats)", note=note)
    if gaussian_fixed:
        parts.append("With a unit-variance Gaussian decoder the reconstruction and ELBO leave out the constant ½·log 2π per pixel.")
    return q, " ".join(parts)


def factor_colorings(data, factors: np.ndarray | None) -> dict[str, Any]:
    """The latent map's colourings, one per ground-truth factor, as `figures.latent_maps` takes them.

    A factor with value names (sprites' shape, an image folder's class) is categorical, its legend the
    names in the data's order and category i always colour i; one with real values behind its indices
    (sprites' scale, orientation, position) is coloured by those values on a scale; any other is
    categorical by index when it has at most 10 values, else a scale over its indices.
    """
    colorings: dict[str, Any] = {}
    if factors is None:
        return colorings
    names_of = getattr(data, "factor_value_names", lambda: {})()
    values_of = getattr(data, "factor_values", lambda: {})()
    for j, name in enumerate(data.factor_names):
        codes = factors[:, j]
        if name in names_of:
            colorings[name] = (codes, [str(v) for v in names_of[name]])
        elif name in values_of and len(values_of[name]) == data.factor_sizes[j]:
            colorings[name] = (np.asarray(values_of[name], dtype=np.float64)[codes], False)
        else:
            colorings[name] = (codes, data.factor_sizes[j] <= 10)
    return colorings


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
        colorings = factor_colorings(data, factors)
        labels_arr = getattr(data, "labels", None)
        if labels_arr is not None and "class" not in colorings and "digit" not in colorings:
            colorings["label"] = (np.asarray(labels_arr)[idx], True)
        if not colorings:
            colorings["reconstruction error"] = (enc["recon_nll"], False)
        save(F.latent_maps(xy, colorings, axis_labels=axis, title=f"Latent map ({method})"), "latent_map.png")

    history = run.read_history()
    if history:
        quantities, caption = training_quantities(run.config())
        save(F.training_curves(history, quantities=quantities, caption=caption or None), "training_curves.png")
    return written

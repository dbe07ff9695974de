"""evaluate_run on tiny real runs: what it writes (metrics.json, latents, projections, figures) and
whether the numbers in metrics.json are the numbers they claim to be."""

import json
import shutil

import numpy as np
import pytest
import torch

from latentatlas.atlas import Atlas
from latentatlas.labs.vae.jobs import choose_sample, evaluate_run, train_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DISENTANGLEMENT = ("mig", "dci_disentanglement", "sap", "modularity", "explicitness")
IMAGE_FIGURES = {"reconstructions.png", "traversals.png", "interpolation_lerp.png", "interpolation_slerp.png",
                 "latent_map.png", "training_curves.png"}


@pytest.fixture(scope="module")
def bars(tmp_path_factory, bars):
    """Same data as conftest's tiny_images, saved once for this module's runs."""
    x, factors = bars.make(256, positions=8, widths=2, size=8)
    return bars.save(tmp_path_factory.mktemp("data") / "bars.npz", x, factors), x, factors


@pytest.fixture(scope="module")
def atlas(tmp_path_factory):
    return Atlas(tmp_path_factory.mktemp("atlas"))


@pytest.fixture(scope="module")
def vae(bars, atlas):
    """A 3-latent VAE trained a little on the bars, evaluated on every row (PCA; t-SNE/UMAP cost seconds)."""
    path, _, _ = bars
    run, _ = train_run("vae", str(path), latent_dim=3, steps=60, batch_size=32, lr=3e-3, name="vae",
                       atlas=atlas, log_every=20, progress=False)
    report = evaluate_run(run, n=10000, seed=0, projections=["pca"], progress=False)
    return run, report


@pytest.fixture(scope="module")
def ae2d(bars, atlas):
    """A deterministic autoencoder with a 2-D code: no log-variance, and a manifold figure."""
    path, _, _ = bars
    run, _ = train_run("ae", str(path), latent_dim=2, steps=30, batch_size=32, lr=3e-3, name="ae2d",
                       atlas=atlas, log_every=10, progress=False)
    report = evaluate_run(run, n=120, seed=0, projections=["pca"], progress=False)
    return run, report


# -- metrics.json -------------------------------------------------------------------------------------


def test_metrics_json_is_the_returned_report(vae):
    run, report = vae
    on_disk = json.loads((run.path / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert on_disk["run"] == "vae"
    assert on_disk["n"] == 256  # n larger than the data: every row
    assert on_disk["seed"] == 0
    assert on_disk["command"] == "latentatlas eval vae"
    assert on_disk["data"] == run.config()["data"]
    assert on_disk["notes"] == []


def test_metrics_have_values_inside_their_intervals(vae):
    _, report = vae
    metrics = report["metrics"]
    for name in ("recon_error", "mse_per_pixel", "kl", "elbo", "active_units", "aggregate_kl", *DISENTANGLEMENT):
        assert name in metrics, name
    for name, m in metrics.items():
        assert set(m) >= {"value", "ci_low", "ci_high", "n"}, name
        assert np.isfinite(m["value"]), name
        if m["ci_low"] is not None:
            assert m["ci_low"] <= m["value"] <= m["ci_high"], (name, m["ci_low"], m["value"], m["ci_high"])
    for name in DISENTANGLEMENT:
        assert 0.0 <= metrics[name]["value"] <= 1.0, name
        # DCI disentanglement has no interval unless its classifiers are refitted (num_refits > 0)
        assert (metrics[name]["ci_low"] is None) == (name == "dci_disentanglement"), name
    assert 0 <= metrics["active_units"]["value"] <= 3
    assert report["headline"] == {k: metrics[k]["value"] for k in report["headline"]}
    assert {"recon_error", "kl", "mig"} <= set(report["headline"])


def test_kl_numbers_agree_with_the_stored_latents(vae):
    run, report = vae
    arrays, _ = run.read_latents()
    mu, logvar = arrays["mu"].astype(np.float64), arrays["logvar"].astype(np.float64)
    kl = 0.5 * (mu**2 + np.exp(logvar) - 1.0 - logvar)  # (N, D) KL(q(z|x) || N(0, I)) per dim
    assert len(report["kl_per_dim"]) == 3
    np.testing.assert_allclose(report["kl_per_dim"], kl.mean(0), rtol=1e-5, atol=1e-8)
    assert report["metrics"]["kl"]["value"] == pytest.approx(kl.sum(1).mean(), rel=1e-5)
    # dims_by_kl is a permutation of the dims, ordered by KL, largest first
    order = report["dims_by_kl"]
    assert sorted(order) == [0, 1, 2]
    kl_sorted = [report["kl_per_dim"][d] for d in order]
    assert kl_sorted == sorted(kl_sorted, reverse=True)
    # elbo = -(recon + kl), sample by sample, so also on average
    assert report["metrics"]["elbo"]["value"] == pytest.approx(
        -(report["metrics"]["recon_error"]["value"] + report["metrics"]["kl"]["value"]), rel=1e-5)


def test_recon_error_is_the_mean_bce_of_the_decoded_posterior_means(vae, bars):
    """Known answer: recompute the Bernoulli NLL by hand from the saved model on the same rows."""
    run, report = vae
    _, x_all, _ = bars
    arrays, rows = run.read_latents()
    idx = rows["index"].to_numpy()
    x = x_all[idx]
    model = run.load_model()
    with torch.no_grad():
        mu, _ = model.encode(torch.from_numpy(x))
        logits = model.decode(mu).double().numpy()
    np.testing.assert_allclose(mu.numpy(), arrays["mu"], rtol=1e-5, atol=1e-5)
    xd = x.astype(np.float64)
    bce = (np.logaddexp(0.0, logits) - xd * logits).reshape(len(x), -1).sum(1)  # -log Bern(x | sigmoid(l))
    assert report["metrics"]["recon_error"]["value"] == pytest.approx(bce.mean(), rel=1e-5)
    np.testing.assert_allclose(rows["recon_error"].to_numpy(), bce, rtol=1e-4, atol=1e-4)
    p = 1.0 / (1.0 + np.exp(-logits))
    assert report["metrics"]["mse_per_pixel"]["value"] == pytest.approx(((p - xd) ** 2).mean(), rel=1e-5)
    # trained a little: better than an all-0.5 decoder (64 * log 2 nats), worse than perfect
    assert 0.0 < bce.mean() < 64 * np.log(2)


# -- latents, projections, figures --------------------------------------------------------------------


def test_latents_hold_the_codes_and_a_row_table(vae, bars):
    run, _ = vae
    _, _, factors = bars
    arrays, rows = run.read_latents()
    assert arrays["mu"].shape == (256, 3) and arrays["mu"].dtype == np.float32
    assert arrays["logvar"].shape == (256, 3)
    assert arrays["recon_nll"].shape == (256,)
    assert {"index", "position", "width", "recon_error"} <= set(rows.columns)
    assert len(rows) == 256
    idx = rows["index"].to_numpy()
    assert np.array_equal(idx, np.arange(256))
    assert np.array_equal(rows["position"].to_numpy(), factors[idx, 0])
    assert np.array_equal(rows["width"].to_numpy(), factors[idx, 1])
    np.testing.assert_array_equal(rows["recon_error"].to_numpy(), arrays["recon_nll"])


def test_projections_are_written_for_each_requested_method(vae):
    run, _ = vae
    mu = run.read_latents()[0]["mu"].astype(np.float64)
    got = run.read_projection("eval-pca")
    assert got is not None
    coords, params = got
    assert coords.shape == (256, 2) and np.all(np.isfinite(coords))
    assert params["method"] == "pca" and params["n"] == 256 and params["latents"] == "eval"
    assert run.read_projection("eval-umap") is None and run.read_projection("eval-tsne") is None  # not asked for
    # PCA coordinates are the centred codes on their top principal axes (up to sign)
    centred = mu - mu.mean(0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    for k in range(2):
        assert abs(np.corrcoef(coords[:, k], u[:, k] * s[k])[0, 1]) > 0.999
    ratio = s**2 / (s**2).sum()
    np.testing.assert_allclose(params["explained_variance"], ratio[:2], rtol=1e-3, atol=1e-6)


def _assert_png(path):
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.size[0] > 50 and im.size[1] > 50


def test_figures_are_written_as_pngs(vae):
    run, report = vae
    files = {p.name for p in run.figures_dir.glob("*.png")}
    assert IMAGE_FIGURES | {"kl_per_dim.png"} <= files
    assert "manifold.png" not in files  # 3-D codes: no decoded 2-D manifold
    assert set(report["figures"]) == files
    for name in files:
        _assert_png(run.figures_dir / name)


def test_every_requested_projection_is_written_and_figures_can_be_skipped(bars, atlas):
    path, _, _ = bars
    run, _ = train_run("vae", str(path), latent_dim=3, steps=5, name="nofig", atlas=atlas, progress=False)
    report = evaluate_run(run, n=50, seed=0, projections=["pca", "tsne"], progress=False, figures=False)
    for method in ("pca", "tsne"):
        coords, params = run.read_projection(f"eval-{method}")
        assert coords.shape == (50, 2) and np.all(np.isfinite(coords)), method
        assert params["method"] == method and params["n"] == 50
    assert "figures" not in report
    assert not run.figures_dir.exists()


# -- other kinds of run -------------------------------------------------------------------------------


def test_autoencoder_without_logvar_evaluates_without_kl(ae2d):
    run, report = ae2d
    metrics = report["metrics"]
    for name in ("kl", "elbo", "aggregate_kl"):
        assert name not in metrics
    assert {"recon_error", "mse_per_pixel", "active_units", "mig"} <= set(metrics)
    assert report["kl_per_dim"] is None
    # without KL the dims are ordered by the variance of their codes
    variance = metrics["active_units"]["details"]["variance_per_dim"]
    assert report["dims_by_kl"] == sorted(range(2), key=lambda d: -variance[d])
    arrays, rows = run.read_latents()
    assert "logvar" not in arrays and arrays["mu"].shape == (120, 2)
    files = {p.name for p in run.figures_dir.glob("*.png")}
    assert "kl_per_dim.png" not in files


def test_two_dimensional_codes_get_a_manifold_figure(ae2d):
    run, report = ae2d
    assert "manifold.png" in report["figures"]
    _assert_png(run.figures_dir / "manifold.png")
    assert IMAGE_FIGURES <= set(report["figures"])


def test_one_factor_data_gets_a_note_and_no_disentanglement_metrics(atlas):
    run, _ = train_run("vae", "digits", latent_dim=2, steps=10, name="digits", atlas=atlas, progress=False)
    report = evaluate_run(run, n=100, seed=0, projections=["pca"], progress=False, figures=False)
    assert report["n"] == 100
    assert not set(DISENTANGLEMENT + ("dci_completeness", "dci_informativeness")) & set(report["metrics"])
    assert len(report["notes"]) == 1 and "two ground-truth factors" in report["notes"][0]
    assert {"recon_error", "kl", "active_units"} <= set(report["metrics"])
    _, rows = run.read_latents()
    # the digit is one column: the label equals the factor and is not written a second time
    assert {"index", "digit"} <= set(rows.columns) and "label" not in rows.columns


# -- the sample and determinism -----------------------------------------------------------------------


def _copy_of(run, name):
    """A copy of a run folder under another name, so re-evaluating it leaves the fixture's files alone."""
    shutil.copytree(run.path, run.atlas.runs_dir / name)
    return run.atlas.run(name)


def test_n_smaller_than_the_data_uses_exactly_n_rows(vae):
    run = _copy_of(vae[0], "vae-n100")
    report = evaluate_run(run, n=100, seed=3, projections=["pca"], progress=False, figures=False)
    assert report["n"] == 100
    arrays, rows = run.read_latents()
    idx = rows["index"].to_numpy()
    assert len(rows) == 100 and arrays["mu"].shape == (100, 3)
    assert len(np.unique(idx)) == 100 and idx.min() >= 0 and idx.max() < 256
    assert np.array_equal(idx, choose_sample(np.zeros(256), 100, 3))
    assert all(m["n"] <= 100 for m in report["metrics"].values())
    assert report["metrics"]["recon_error"]["n"] == 100
    coords, params = run.read_projection("eval-pca")
    assert coords.shape == (100, 2) and params["n"] == 100
    other = choose_sample(np.zeros(256), 100, 4)
    assert not np.array_equal(idx, other)


def test_same_seed_gives_identical_metrics(vae):
    run = _copy_of(vae[0], "vae-seeds")

    def numbers(report):
        return {k: (m["value"], m["ci_low"], m["ci_high"]) for k, m in report["metrics"].items()}

    first = evaluate_run(run, n=120, seed=7, projections=[], progress=False, figures=False)
    second = evaluate_run(run, n=120, seed=7, projections=[], progress=False, figures=False)
    assert numbers(first) == numbers(second)
    assert first["kl_per_dim"] == second["kl_per_dim"]
    other = evaluate_run(run, n=120, seed=8, projections=[], progress=False, figures=False)
    assert numbers(other)["recon_error"] != numbers(first)["recon_error"]

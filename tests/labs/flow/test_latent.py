"""Latent diffusion on tiny real runs: a VAE on 16×16 bar images (two factors: position and width), a latent
flow on its encoder means, a second-stage VAE and a factor classifier; the run's self-contained latents, exact
resume without the VAE run, the VAE map's PCA reproduced, the evaluation's known answers (held-out data at the
noise floor, the prior far from a posterior that is not N(0, I)), and the distances against closed forms and
scipy."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from latentatlas.atlas import Atlas
from latentatlas.errors import LatentAtlasError, NotFound
from latentatlas.labs.flow import latent as L
from latentatlas.models.io import read_weights
from torch_helpers import one_thread

N_ROWS, HELD = 800, 300
FLOW = dict(hidden=64, depth=2, batch_size=128, device="cpu", progress=False)


@pytest.fixture(scope="module")
def lat(tmp_path_factory, bars):
    from latentatlas.labs.vae.jobs import evaluate_run, train_run

    root = tmp_path_factory.mktemp("latent")
    x, factors = bars.make(N_ROWS, positions=8, widths=2, size=16, scale=2)
    data = bars.save(root / "bars.npz", x, factors)
    atlas = Atlas(root / "atlas")
    with one_thread():
        vae, _ = train_run("vae", str(data), latent_dim=3, steps=250, batch_size=32, name="v", atlas=atlas, progress=False, device="cpu")
        evaluate_run(vae, n=N_ROWS, projections=["pca"], progress=False, figures=False)
        run, _ = L.train_latent(atlas, "v", held_out=HELD, steps=300, name="lf", **FLOW)
        L.train_stage2(run, steps=200, hidden=64, batch_size=128, device="cpu", progress=False)
        clf = L.train_classifier(atlas, vae.config()["data"], steps=150, device="cpu", progress=False)
        report = L.evaluate_latent(run, num_resamples=100, null_repeats=10, trajectories=5, progress=False)
    return {"atlas": atlas, "vae": vae, "run": run, "clf": clf, "report": report, "root": root}


def test_the_run_is_a_flow_run_holding_its_own_latents(lat):
    run, vae = lat["run"], lat["vae"]
    cfg = run.config()
    assert cfg["kind"] == "flow" and cfg["model"]["dim"] == 3
    spec = cfg["data"]
    assert spec["kind"] == "latents" and spec["vae"] == "v" and spec["latents"] == "eval" and spec["standardise"] is True
    assert spec["n"] == N_ROWS - HELD and spec["held_out"] == HELD
    stored = L.training_latents(run)
    mu = vae.read_latents()[0]["mu"]
    assert np.array_equal(stored["z"], mu[stored["rows"]])  # a bitwise copy of the VAE's means
    assert not set(stored["rows"]) & set(stored["held_out"]) and len(stored["rows"]) + len(stored["held_out"]) == N_ROWS
    x = (stored["z"] - stored["mean"]) / stored["std"]
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x.std(0), 1, atol=1e-4)
    # the second stage lives inside the run, trained by the trainer, and is not a run of the atlas
    part = L.stage2_of(run)
    assert part.has_model and part.read_history() and lat["atlas"].run_names() == sorted(["v", "lf", lat["clf"].name])


def test_resume_is_bitwise_and_needs_no_vae_run(lat, tmp_path):
    from latentatlas.trainer import TrainingInterrupted

    atlas = Atlas(tmp_path / "atlas")
    shutil.copytree(lat["vae"].path, atlas.runs_dir / "v")
    kw = {**FLOW, "steps": 40, "checkpoint_every": 10, "held_out": HELD}

    def stop(step):
        if step == 20:
            raise KeyboardInterrupt

    with one_thread():
        whole, _ = L.train_latent(atlas, "v", name="whole", **kw)
        with pytest.raises(TrainingInterrupted):
            L.train_latent(atlas, "v", name="part", on_step=stop, **kw)
        atlas.delete_run("v")  # the run keeps its latents: resuming needs nothing else
        part, result = L.train_latent(atlas, name="part", resume=True, progress=False)
    assert result.resumed_from == 20
    a, b = whole.load_model().state_dict(), part.load_model().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # decoding does need the VAE run: one sentence naming both runs
    with pytest.raises(NotFound) as err:
        L.evaluate_latent(part, progress=False)
    msg = str(err.value)
    assert "'part'" in msg and "'v'" in msg and msg.count(". ") == 0 and "\n" not in msg


def test_the_vae_map_is_reproduced_and_trajectories_are_drawn_through_it(lat):
    vae, run = lat["vae"], lat["run"]
    proj = L.map_projection(vae)
    coords, meta = vae.read_projection("eval-pca")
    assert proj.key == "eval-pca" and proj.note is None and proj.error is not None and proj.error <= 1e-5
    mu = vae.read_latents()[0]["mu"]
    np.testing.assert_allclose(proj.transform(mu), coords, atol=1e-5)
    # the components are the top eigenvectors of the latents' covariance (up to sign)
    w, v = np.linalg.eigh(np.cov(mu.astype(np.float64).T))
    top = v[:, np.argsort(w)[::-1][:2]].T
    np.testing.assert_allclose(np.abs((top * proj.components).sum(1)), 1.0, atol=1e-6)
    saved = {k: t.numpy() for k, t in read_weights(run.file("samples", "latent-trajectories.safetensors")).items()}
    steps = saved["times"].shape[0]
    assert saved["coords"].shape == (steps, 5, 2) and saved["latents"].shape == (steps, 5, 3)
    assert saved["times"][0] == 0.0 and saved["times"][-1] == 1.0 and np.all(np.diff(saved["times"]) > 0)
    np.testing.assert_allclose(saved["coords"], proj.transform(saved["latents"]), atol=1e-5)
    assert saved["images"].dtype == np.uint8 and saved["images"].shape[1:] == (5, 1, 16, 16)
    assert L.read_trajectory_meta(run)["reproduction_error"] == proj.error


def test_evaluation_known_answers(lat):
    rep = lat["report"]
    rows = {r["row"]: r for r in rep["latent_table"]}
    assert list(rows) == list(L.ROWS) and rep["factors"] == ["position", "width"]
    # held-out real images against the other held-out half: the same law, so at the noise floor
    for f in ("position", "width"):
        assert rows["data"]["factor_tv"][f]["details"]["at_floor"]
    # the held-out encoder means are draws of the aggregate posterior: their energy distance is at the floor,
    # and decoded they read like the other half's means decoded
    assert rows["encoder"]["latent_energy"]["details"]["at_floor"]
    assert rows["encoder"]["to_decoded_means"]["factor_tv_mean"]["details"]["at_floor"]
    assert rows["data"]["latent_energy"] is None and rows["data"]["to_decoded_means"] is None
    # this VAE's posterior is not N(0, I): prior samples are far in latent space and in their factors
    prior = rows["prior"]
    assert not prior["latent_energy"]["details"]["at_floor"]
    assert prior["factor_tv_mean"]["ci_low"] > prior["factor_tv_mean"]["details"]["floor_q95"]
    assert not prior["to_decoded_means"]["factor_tv_mean"]["details"]["at_floor"]
    # each row's histograms are shares that sum to one; the reference's are the real images' predictions
    for r in rows.values():
        assert all(len(h) == 8 if f == "position" else len(h) == 2 for f, h in r["histograms"].items())
        assert all(sum(h) == pytest.approx(1.0) for h in r["histograms"].values())
    assert rep["reference"]["true_histograms"]["width"] == pytest.approx(
        np.bincount(lat["vae"].read_latents()[1]["width"].to_numpy()[L.training_latents(lat["run"])["held_out"][: HELD // 2]], minlength=2) / (HELD // 2))
    assert rows["flow"]["latent_energy"]["value"] < prior["latent_energy"]["value"]
    for r in rows.values():
        tv = r["factor_tv_mean"]
        assert tv["ci_low"] <= tv["value"] <= tv["ci_high"]
        assert tv["value"] == pytest.approx(np.mean([r["factor_tv"][f]["value"] for f in rep["factors"]]))
    m = rep["metrics"]
    diff = m["factor_tv_mean_prior_minus_flow"]
    assert diff["value"] == pytest.approx(rows["prior"]["factor_tv_mean"]["value"] - rows["flow"]["factor_tv_mean"]["value"])
    assert lat["run"].read_metrics()["latent_table"] == rep["latent_table"]
    # decoded grids: uint8 images per row, with the latents they came from
    grid = L.read_latent_samples(lat["run"], "flow")
    assert grid["images"].dtype == np.uint8 and grid["images"].shape[1:] == (1, 16, 16) and grid["latents"].shape[1] == 3
    assert (lat["run"].figures_dir / "latent_samples.png").is_file() and (lat["run"].figures_dir / "latent_trajectories.png").is_file()


def test_the_classifier_reads_bars_and_never_trains_on_its_held_out_tenth(lat):
    rep = lat["clf"].read_metrics()
    assert rep["held_out"] and rep["metrics"]["accuracy_position"]["value"] >= 0.9 and rep["metrics"]["accuracy_width"]["value"] >= 0.9
    idx = np.arange(737_280)
    share = L.held_out_mask(idx).mean()
    assert abs(share - 0.1) < 0.002
    from latentatlas.data import load_dataset

    data = load_dataset(lat["vae"].config()["data"])
    pool = idx[:N_ROWS][~L.held_out_mask(idx[:N_ROWS])]
    batches = L.FactorBatches(data, pool, [0, 1], 64, 0)
    b = batches.batch_at(3)
    assert np.array_equal(b, batches.batch_at(3)) and b.shape == (64, 256 + 2)
    # the packed factors are the rows' own: find each image among the pool's images
    flat = data.get(pool).reshape(len(pool), -1)
    for row in b[:8]:
        hit = np.flatnonzero((flat == row[:256]).all(1))
        assert len(hit) and any(np.array_equal(data.get_factors(pool[h]), row[256:].astype(np.int64)) for h in hit)


def test_factor_distances_against_closed_forms_and_scipy():
    from scipy.stats import wasserstein_distance

    assert L.factor_tv(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 3) == pytest.approx(0.25)
    assert L.factor_tv(np.array([2, 2]), np.array([0, 1]), 3) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    values = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    p, q = rng.integers(0, 6, 300), rng.integers(2, 6, 200)
    ref = wasserstein_distance(values[p], values[q]) / 0.5
    assert L.factor_w1(p, q, values) == pytest.approx(ref, rel=1e-12)
    # one step of the whole range between point masses at the two ends
    assert L.factor_w1(np.zeros(5, int), np.full(5, 5), values) == pytest.approx(1.0)
    # a row identical to the reference: distance 0, its floor above 0, at the floor; a shifted one is not
    codes = np.stack([rng.integers(0, 8, 400), rng.integers(0, 6, 400)], 1)
    shifted = codes.copy()
    shifted[:, 0] = np.minimum(shifted[:, 0] + 2, 7)
    d = L.compare_factors({"same": codes, "shifted": shifted}, codes, [8, 6], ["a", "b"], {"b": values}, num_resamples=50)
    assert d["same"]["tv:a"].value == 0 and d["same"]["w1:b"].value == 0 and d["same"]["tv:a"].floor_mean > 0
    assert d["same"]["tv_mean"].estimate("x", 400).details["at_floor"]
    # shifting by two of eight uniform positions empties the two lowest: about a quarter of the mass moves
    expect = L.factor_tv(shifted[:, 0], codes[:, 0], 8)
    assert d["shifted"]["tv:a"].value == pytest.approx(expect) and expect > 0.2
    assert not d["shifted"]["tv:a"].estimate("x", 400).details["at_floor"]
    assert "joint_tv" in d["same"] and d["same"]["joint_tv"].value == 0


def test_bad_input_is_one_sentence(lat):
    with pytest.raises(LatentAtlasError, match="not a latent flow run"):
        L.evaluate_latent(lat["vae"], progress=False)
    with pytest.raises(LatentAtlasError, match="--held-out"):
        L.train_latent(lat["atlas"], "v", held_out=N_ROWS, **FLOW)
    with pytest.raises(LatentAtlasError, match="stochastic"):
        L.evaluate_latent(lat["run"], sampler="ddpm", progress=False)
    with pytest.raises(LatentAtlasError, match="not a VAE run"):
        L.train_latent(lat["atlas"], lat["clf"].name, **FLOW)


def test_the_whole_job_resumes_a_finished_run_and_reuses_the_classifier(lat):
    before = lat["atlas"].run_names()
    with one_thread():
        run, rep = L.latent_diffusion(lat["atlas"], name="lf", resume=True, device="cpu", progress=False)
    assert lat["atlas"].run_names() == before  # nothing new trained: the classifier of this data was found
    assert set(rep["timings_s"]) >= {"train_flow", "train_stage2", "train_classifier", "evaluate_total"}
    old = {r["row"]: r for r in lat["report"]["latent_table"]}
    for r in rep["latent_table"]:  # the same samples and classifier give the same values (intervals differ by resamples)
        assert r["factor_tv_mean"]["value"] == old[r["row"]]["factor_tv_mean"]["value"]
        assert (r["latent_energy"] or {}).get("value") == (old[r["row"]]["latent_energy"] or {}).get("value")
    text = L.table_text(rep)
    assert all(label in text for label in L.ROW_LABELS.values())
    view = L.latent_view(run)
    assert view["vae"] == "v" and view["samples"] == list(L.ROWS) and len(view["trajectories"]["coords"][0]) == 12


def test_flow_sample_on_a_latent_run_answers_in_the_vaes_coordinates(lat, capsys, monkeypatch):
    from latentatlas.cli import main
    from latentatlas.models.io import read_weights

    monkeypatch.setenv("COLUMNS", "300")
    run = lat["run"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc, one_thread():
        main(["flow", "sample", run.name, "--sampler", "euler", "--nfe", "8", "--n", "400", "--atlas", str(lat["atlas"].root)])
    out, err = capsys.readouterr()
    assert exc.value.code == 0, err
    assert "VAE's latent coordinates" in out and "energy distance to the encoder means" in out
    got = read_weights(run.file("samples", "latent-euler-8.safetensors"))
    direct = L.sample_latents(run, "flow", 400, seed=0, sampler="euler", nfe=8)["z"]
    np.testing.assert_allclose(got["z"].numpy(), direct, rtol=1e-6)
    z = L.training_latents(run)["z"]
    # un-standardised: on the scale of the encoder means, not of N(0, I)
    np.testing.assert_allclose(got["z"].numpy().std(0), z.std(0), rtol=0.35)

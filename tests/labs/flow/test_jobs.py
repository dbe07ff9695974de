"""The flow lab's jobs on tiny real runs: training and exact resume, a user's point file kept inside the
run, evaluation against the exact answer, saved samples, and reflow straightening the flow."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latentatlas.atlas import Atlas
from latentatlas.errors import LatentAtlasError
from latentatlas.labs.flow import jobs
from torch_helpers import one_thread

SMALL = dict(hidden=64, steps=300, batch_size=256, device="cpu", progress=False, evaluate=False)



@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow")
    with one_thread():
        run, result, _ = jobs.train(root, name="fm", seed=0, **{**SMALL, "steps": 600})
    return Atlas(root), run, result


def test_training_learns_the_field(trained):
    _, run, result = trained
    assert result.steps_done == 600 and run.has_model and not run.has_checkpoint
    cfg = run.config()
    assert cfg["kind"] == "flow" and cfg["data"]["name"] == "three-modes" and cfg["model"]["objective"] == "fm"
    assert 1.0 < cfg["model"]["x_scale"] < 2.0  # three modes on a circle of radius 2: per-coordinate std ≈ 1.4
    hist = run.read_history()
    assert np.mean([r["loss"] for r in hist[-3:]]) < 0.8 * hist[0]["loss"]


def test_evaluation_measures_against_the_exact_answer(trained):
    _, run, _ = trained
    with one_thread():
        rep = jobs.evaluate(run, n=500, samplers=("euler", "dpm++"), nfes=(2, 30), progress=False, null_repeats=10)
    assert json.loads(run.file("metrics.json").read_text())["run"] == "fm"
    rows = {(r["field"], r["sampler"], r["nfe_budget"]): r for r in rep["samplers"]}
    assert set(rows) == {(f, s, k) for f in ("model", "exact") for s in ("euler", "dpm++") for k in (2, 30)}
    # more steps help the exact field, and 30 NFE of it is at the noise floor
    ex2, ex30 = rows[("exact", "euler", 2)]["energy_distance"]["value"], rows[("exact", "euler", 30)]["energy_distance"]["value"]
    assert ex30 < ex2 and rows[("exact", "euler", 30)]["at_floor"]
    m = rep["metrics"]
    floor = m["fm_loss_floor"]["value"]
    assert 0 < floor < m["loss_excess"]["details"]["loss"]  # the loss cannot go below its floor
    assert m["field_error"]["value"] > 0 and m["field_error"]["ci_low"] <= m["field_error"]["value"] <= m["field_error"]["ci_high"]
    assert 0 <= m["mode_weight_tv"]["value"] <= 1 and m["straightness"]["value"] >= 0


def test_resume_is_bitwise(tmp_path):
    from latentatlas.trainer import TrainingInterrupted

    kw = {**SMALL, "steps": 40, "checkpoint_every": 10}
    with one_thread():
        whole, _, _ = jobs.train(tmp_path / "a", name="w", **kw)

        def stop(step):
            if step == 20:
                raise KeyboardInterrupt

        with pytest.raises(TrainingInterrupted):
            jobs.train(tmp_path / "b", name="p", on_step=stop, **kw)
        part, result, _ = jobs.train(tmp_path / "b", name="p", resume=True, device="cpu", progress=False, evaluate=False)
    assert result.resumed_from == 20
    a, b = whole.load_model().state_dict(), part.load_model().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the noise and times replay from the checkpointed generator


def test_a_point_file_is_copied_into_the_run(tmp_path):
    pts = np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32) + [3.0, -1.0]
    src = tmp_path / "mine.csv"
    np.savetxt(src, pts, delimiter=",", header="x,y", comments="")
    with one_thread():
        run, _, _ = jobs.train(tmp_path / "atlas", data=str(src), name="pts", **{**SMALL, "steps": 20})
    assert run.config()["data"]["path"] == "data/points.npy"
    np.testing.assert_allclose(np.load(run.file("data", "points.npy")), pts, rtol=1e-6)
    src.unlink()  # the run no longer needs the user's file
    assert jobs.target_of(run).sample(10).shape == (10, 2)


def test_a_run_naming_points_outside_itself_is_refused(tmp_path):
    with one_thread():
        run, _, _ = jobs.train(tmp_path, name="x", **{**SMALL, "steps": 5})
    cfg = run.config()
    cfg["data"] = {"kind": "toy2d", "name": "points", "path": "/etc/passwd", "batch_size": 256, "seed": 0}
    run.file("config.json").write_text(json.dumps(cfg))
    with pytest.raises(LatentAtlasError, match="expected data/points.npy inside the run"):
        jobs.target_of(run)


@pytest.mark.parametrize("body,needle", [("1,nan\n2,3\n", "NaN"), ("1\n2\n3\n", "expected 2"), ("1,2,3\n4,5,6\n", "3 columns")])
def test_bad_point_files_are_one_sentence_and_leave_no_run(tmp_path, body, needle):
    f = tmp_path / "bad.csv"
    f.write_text(body)
    with pytest.raises(LatentAtlasError, match=needle):
        jobs.train(tmp_path / "atlas", data=str(f), name="bad", **SMALL)
    assert not Atlas(tmp_path / "atlas").has_run("bad")


def test_samples_are_saved_with_their_noise_and_trajectory(trained):
    _, run, _ = trained
    res, meta = jobs.sample(run, "heun", 9, n=100, seed=3)
    assert meta["nfe"] == 9 and meta["steps"] == 5
    got_meta, t = jobs.read_sample(run, "heun-9")
    assert got_meta["nfe"] == 9
    torch.testing.assert_close(t["noise"], jobs.noise(100, 3))
    torch.testing.assert_close(t["trajectory"][0], t["noise"])
    torch.testing.assert_close(t["trajectory"][-1], t["samples"])
    with pytest.raises(LatentAtlasError, match="not a sample name"):
        jobs.read_sample(run, "../metrics")


def test_reflow_straightens_the_flow(trained, tmp_path):
    atlas, run, _ = trained
    with one_thread():
        new, _, _ = jobs.reflow(atlas, run.name, pairs=4000, nfe=40, steps=400, name="fm-reflow", device="cpu",
                                progress=False, evaluate_after=False)
    from latentatlas.analysis.sample_quality import straightness
    from latentatlas.models.samplers import sample

    x0 = jobs.noise(1000, 1)

    def straight(r):
        m = jobs.model_of(r)
        traj = sample(m.prediction(), x0, "euler", 50, trajectory=True)
        return straightness(traj.trajectory, traj.times, num_resamples=0).value

    before, after = straight(run), straight(new)
    assert after < 0.5 * before, (before, after)
    assert new.config()["data"]["kind"] == "coupling" and new.file("data", "coupling.safetensors").is_file()
    assert jobs.target_of(new).mixture is not None  # measured against the source run's target


def test_train_evaluates_by_default_and_takes_a_painted_array(tmp_path):
    pts = np.random.default_rng(1).normal(size=(200, 2)) * 0.3 + [1.0, 1.0]
    with one_thread():
        run, _, report = jobs.train(tmp_path, data=pts, name="painted", hidden=16, steps=30, batch_size=64, device="cpu", progress=False)
    assert report is not None and report["run"] == "painted" and "field_error" not in report["metrics"]  # no exact field for points
    np.testing.assert_allclose(np.load(run.file("data", "points.npy")), pts.astype(np.float32))
    with pytest.raises(LatentAtlasError, match="NaN or infinite values in row 2"):
        jobs.train(tmp_path, data=np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]]), name="nan", steps=5, progress=False)
    assert not Atlas(tmp_path).has_run("nan")

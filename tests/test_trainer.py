import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from conftest import sigkill_at_checkpoint
import torch

from latentatlas.atlas import Atlas
from latentatlas.data.base import ArrayDataset
from latentatlas.errors import LatentAtlasError
from latentatlas.models import VAE, VAEConfig, load_model
from latentatlas.trainer import BatchOrder, TrainConfig, fit, optimizer_from_tensors, optimizer_to_tensors


class _Crash(Exception):
    pass


def _dataset(tiny_images):
    x, f = tiny_images
    return ArrayDataset(x=x, factors=f, factor_names=("position", "width"), factor_sizes=(8, 2), name="bars", spec={"kind": "bars"})


def _model(kind="vae"):
    torch.manual_seed(0)
    return VAE(VAEConfig(kind=kind, input_shape=(1, 8, 8), latent_dim=3, hidden=32, dataset_size=256))


def _new_run(atlas_dir, name):
    return Atlas(atlas_dir).create_run(name, {"kind": "vae"})


def test_fit_learns_and_records_history(atlas_dir, tiny_images):
    data = _dataset(tiny_images)
    run = _new_run(atlas_dir, "a")
    model = _model()
    cfg = TrainConfig(steps=120, batch_size=32, lr=3e-3, log_every=20, checkpoint_every=50)
    result = fit(model, data, run, cfg, progress=False)
    assert result.steps_done == 120
    hist = run.read_history()
    assert [r["step"] for r in hist] == [20, 40, 60, 80, 100, 120]
    assert hist[-1]["loss"] < 0.85 * hist[0]["loss"]
    assert {"loss", "recon", "kl", "elbo", "time"} <= set(hist[0])
    assert run.has_model and not run.checkpoint_dir.exists()


def test_batch_order_is_a_seeded_permutation_per_epoch():
    order = BatchOrder(100, 10, seed=3)
    epoch0 = np.concatenate([order.indices(s) for s in range(10)])
    epoch1 = np.concatenate([order.indices(s) for s in range(10, 20)])
    assert sorted(epoch0) == list(range(100)) and sorted(epoch1) == list(range(100))
    assert not np.array_equal(epoch0, epoch1)
    assert np.array_equal(BatchOrder(100, 10, seed=3).indices(13), order.indices(13))
    assert not np.array_equal(BatchOrder(100, 10, seed=4).indices(13), order.indices(13))


def test_optimizer_state_roundtrips_through_safetensors():
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.loss(torch.rand(4, 1, 8, 8))["loss"].backward()
    opt.step()
    tensors, meta = optimizer_to_tensors(opt)
    json.dumps(meta)  # must be plain JSON
    opt2 = torch.optim.Adam(model.parameters(), lr=5.0)
    optimizer_from_tensors(opt2, tensors, meta)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"][0]["lr"] == b["param_groups"][0]["lr"] == 1e-3
    for pid in a["state"]:
        for key in a["state"][pid]:
            assert torch.equal(torch.as_tensor(a["state"][pid][key]), torch.as_tensor(b["state"][pid][key]))


@pytest.mark.parametrize("kind", ["vae", "beta_tcvae"])
def test_resume_after_a_crash_gives_bitwise_identical_weights(atlas_dir, tiny_images, kind):
    data = _dataset(tiny_images)
    cfg = TrainConfig(steps=40, batch_size=16, lr=2e-3, log_every=5, checkpoint_every=7, seed=11)

    straight = _new_run(atlas_dir, "straight")
    fit(_model(kind), data, straight, cfg, progress=False)

    broken = _new_run(atlas_dir, "broken")

    def crash(step):
        if step == 23:
            raise _Crash

    with pytest.raises(_Crash):
        fit(_model(kind), data, broken, cfg, progress=False, on_step=crash)
    assert json.loads((broken.checkpoint_dir / "latest.json").read_text())["step"] == 21
    result = fit(_model(kind), data, broken, cfg, resume=True, progress=False)
    assert result.resumed_from == 21

    a = load_model(straight.path).state_dict()
    b = load_model(broken.path).state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # history has each logged step exactly once
    rows = broken.read_history()
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)) == list(range(5, 41, 5))
    # and its time is the run's training time, continuing across the resume (never starting again at 0)
    times = [r["time"] for r in rows]
    assert times == sorted(times) and times[4] >= times[3] > 0


def test_nan_loss_is_one_sentence(atlas_dir, tiny_images):
    data = _dataset(tiny_images)
    run = _new_run(atlas_dir, "nan")
    with pytest.raises(LatentAtlasError, match="lower --lr"):
        fit(_model(), data, run, TrainConfig(steps=50, batch_size=16, lr=1e9, log_every=5), progress=False)


def test_bad_train_config():
    with pytest.raises(LatentAtlasError, match="--steps must be between 1 and"):
        TrainConfig(steps=0)
    with pytest.raises(LatentAtlasError, match="--lr"):
        TrainConfig(lr=-1)
    for bad, match in [(dict(seed=-1), "--seed"), (dict(seed=2**64), "--seed"), (dict(steps=10**12), "--steps"), (dict(lr=float("nan")), "--lr"),
                       (dict(device="meta"), "--device 'meta'"), (dict(batch_size=True), "--batch-size"), (dict(grad_clip=-1.0), "--grad-clip")]:
        with pytest.raises(LatentAtlasError, match=match):
            TrainConfig(**bad)


def test_a_run_config_train_section_is_checked():
    with pytest.raises(LatentAtlasError, match="unknown key"):
        TrainConfig.from_dict({"steps": 3, "evil": 1})
    with pytest.raises(LatentAtlasError, match="steps='3'; expected int"):
        TrainConfig.from_dict({"steps": "3"})
    assert TrainConfig.from_dict(TrainConfig(steps=7, adam_betas=(0.5, 0.9)).to_dict()).adam_betas == (0.5, 0.9)


def test_a_checkpoint_past_the_runs_last_step_changes_nothing(atlas_dir, tiny_images):
    """A latest.json claiming a step beyond the run's steps once made --resume write the checkpoint's weights
    as the final model and delete the checkpoint: silent data loss."""
    x, _ = tiny_images
    data = ArrayDataset(x)
    run = Atlas(atlas_dir).create_run("r", {"kind": "vae"})
    cfg = TrainConfig(steps=10, batch_size=16, checkpoint_every=5)
    torch.manual_seed(0)
    model = VAE(VAEConfig(input_shape=x.shape[1:], latent_dim=2))

    def stop_at_5(step):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(Exception):
        fit(model, data, run, cfg, progress=False, on_step=stop_at_5)
    latest = run.checkpoint_dir / "latest.json"
    assert json.loads(latest.read_text())["step"] == 5
    # tamper: the pointer and its folder claim step 50 of a 10-step run
    (run.checkpoint_dir / "step-000000005").rename(run.checkpoint_dir / "step-000000050")
    meta = json.loads((run.checkpoint_dir / "step-000000050" / "meta.json").read_text())
    (run.checkpoint_dir / "step-000000050" / "meta.json").write_text(json.dumps({**meta, "step": 50}))
    latest.write_text(json.dumps({"step": 50, "folder": "step-000000050"}))
    before = {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()}
    with pytest.raises(LatentAtlasError, match="at step 50, but the run has only 10 steps"):
        fit(VAE(VAEConfig(input_shape=x.shape[1:], latent_dim=2)), data, run, cfg, resume=True, progress=False)
    assert not run.has_model
    assert {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()} == before
    # and a pointer whose folder is not its step's is refused before anything is read
    latest.write_text(json.dumps({"step": 5, "folder": "step-000000050"}))
    with pytest.raises(LatentAtlasError, match="is not the folder of step 5"):
        run.read_checkpoint()


def _train_cmd(atlas, npz, name, resume=False):
    cmd = [sys.executable, "-m", "latentatlas.cli", "train", "beta_tcvae", "--data", str(npz), "--latent-dim", "3",
           "--steps", "400", "--batch-size", "16", "--checkpoint-every", "3", "--seed", "5", "--name", name,
           "--atlas", str(atlas), "--quiet"]
    return cmd + (["--resume"] if resume else [])


@pytest.mark.slow
def test_sigkill_at_a_random_step_then_resume_matches_an_uninterrupted_run(tmp_path, tiny_npz):
    atlas = tmp_path / "atlas"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(_train_cmd(atlas, tiny_npz, "straight"), check=True, env=env, capture_output=True)

    target = random.Random().randint(30, 300)
    proc = subprocess.Popen(_train_cmd(atlas, tiny_npz, "killed"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sigkill_at_checkpoint(proc, atlas / "runs" / "killed" / "checkpoint" / "latest.json", target)
    assert not (atlas / "runs" / "killed" / "model.safetensors").exists()

    out = subprocess.run(_train_cmd(atlas, tiny_npz, "killed", resume=True), env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "resumed from step" in out.stdout
    a = load_model(atlas / "runs" / "straight").state_dict()
    b = load_model(atlas / "runs" / "killed").state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # not only the tensors: the files' bytes (two processes, so the safetensors header order is tested too)
    assert (atlas / "runs" / "straight" / "model.safetensors").read_bytes() == (atlas / "runs" / "killed" / "model.safetensors").read_bytes()


def test_the_same_training_in_two_processes_writes_the_same_bytes(tmp_path, tiny_npz):
    """safetensors writes its metadata map in an order that changes from process to process; the files
    must not. Two processes, each with its own hash seed, train the same short run."""
    files = []
    for i, hash_seed in enumerate(("1", "2")):
        atlas = tmp_path / f"atlas{i}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": hash_seed}
        cmd = [sys.executable, "-c", "from latentatlas.cli import main; main()", "train", "vae", "--data", str(tiny_npz),
               "--steps", "3", "--batch-size", "16", "--latent-dim", "4", "--name", "same", "--atlas", str(atlas), "--quiet"]
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        files.append((atlas / "runs" / "same" / "model.safetensors").read_bytes())
    assert files[0] == files[1]


def test_safetensors_bytes_do_not_depend_on_metadata_order():
    from safetensors.torch import load

    from latentatlas._io import safetensors_bytes

    t = {"b": torch.arange(3.0), "a": torch.zeros(2, 2)}
    one = safetensors_bytes(t, {"format": "pt", "kind": "vae", "z": "1", "m": "2"})
    two = safetensors_bytes(dict(reversed(list(t.items()))), {"m": "2", "z": "1", "kind": "vae", "format": "pt"})
    assert one == two
    back = load(one)
    assert torch.equal(back["b"], t["b"]) and torch.equal(back["a"], t["a"])


def test_conv_model_resume_is_bitwise_identical_too(atlas_dir, tiny_images):
    """The conv body runs in channels_last; the checkpoint stores the standard layout. Resume must
    still reproduce the uninterrupted run exactly."""
    x, f = tiny_images
    big = np.repeat(np.repeat(x, 2, axis=2), 2, axis=3)  # 16x16: the conv architecture
    data = ArrayDataset(x=big, factors=f, factor_names=("position", "width"), factor_sizes=(8, 2), name="bars16", spec={})
    cfg = TrainConfig(steps=12, batch_size=16, lr=2e-3, log_every=4, checkpoint_every=5, seed=2)

    def model():
        torch.manual_seed(0)
        m = VAE(VAEConfig(kind="beta_tcvae", input_shape=(1, 16, 16), latent_dim=3, hidden=32, dataset_size=256))
        assert m.config.arch == "conv"
        return m

    straight = _new_run(atlas_dir, "s")
    fit(model(), data, straight, cfg, progress=False)
    broken = _new_run(atlas_dir, "b")

    def crash(step):
        if step == 8:
            raise _Crash

    with pytest.raises(_Crash):
        fit(model(), data, broken, cfg, progress=False, on_step=crash)
    fit(model(), data, broken, cfg, resume=True, progress=False)
    a, b = load_model(straight.path).state_dict(), load_model(broken.path).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

"""The ViT part of the attention lab on tiny models: the model's attention as capture reads it equals the
softmax of its own queries and keys; a few training steps on digits learn well above chance and resume
exactly; the explorer and the routes serve the real CLS attention, rollout, flow, the position-embedding
similarity and the patch filters as float32; a transformers ViT folder works the same way and its
attention equals transformers' own; bad input is one sentence."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from latentatlas import capture
from latentatlas.analysis.rollout import attention_flow, attention_rollout
from latentatlas.atlas import Atlas
from latentatlas.errors import LatentAtlasError
from latentatlas.labs.attention import vit
from latentatlas.models.vit import ViT, ViTConfig
from latentatlas.server import create_app
from torch_helpers import one_thread

TINY = dict(d_model=32, n_heads=2, n_layers=2, mlp_ratio=2)



@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    atlas = Atlas(tmp_path_factory.mktemp("vit-atlas"))
    with one_thread():
        # no dropout and no random shifts: the fastest start (86 % after these 100 steps when measured)
        run, result, report = vit.train_vit(atlas, data="digits", steps=100, lr=5e-3, name="vd", device="cpu", progress=False,
                                            dropout=0.0, shift=0, **TINY)
    return atlas, run, result, report


def test_capture_reads_the_models_own_attention():
    torch.manual_seed(0)
    model = ViT(ViTConfig(**TINY)).eval()
    x = torch.rand(3, 1, 8, 8)
    got = capture.attention(model, x, keep_qk=True)
    assert got.source == "attend" and got.names == ["layers.0.attention", "layers.1.attention"]
    # layer 0 by hand: the normed embeddings through the qkv projection, softmax(q·kᵀ/√d) per head
    blk = model.layers[0]
    h = blk.norm1(model.embeddings(x))
    q, k, _ = blk.attention.qkv(h).view(3, 17, 3, 2, 16).permute(2, 0, 3, 1, 4)
    want = torch.softmax(q @ k.transpose(-1, -2) / 4.0, dim=-1)
    assert torch.allclose(got.layers[0].probs, want, atol=1e-6)
    assert got.layers[0].probs.shape == (3, 2, 17, 17) and torch.allclose(got.layers[1].probs.sum(-1), torch.ones(3, 2, 17))


def test_a_few_steps_on_digits_learn_far_above_chance(trained):
    _, run, result, report = trained
    acc = report["metrics"]["test_accuracy"]
    assert result.steps_done == 100 and acc["n"] == 360
    assert acc["value"] > 0.5  # chance is 0.1
    assert acc["ci_low"] < acc["value"] < acc["ci_high"] and acc["ci_high"] - acc["ci_low"] < 0.12
    assert report["headline"]["train_seconds"] > 0 and "--data digits" in report["command"]
    assert run.read_metrics()["headline"]["test_accuracy"] == acc["value"]
    # the held-out split is fixed and disjoint from the training images
    images = vit.images_of(run)
    assert len(np.intersect1d(images.test_index, images.train_index)) == 0 and len(images) == 1797 - 360
    assert np.array_equal(images.test_index, vit.Images("digits").test_index)


def test_wilson_interval_known_values():
    # Wilson (1927) for 9 of 10 at 95 %: 0.5958 – 0.9821; for 0 of 20: 0 – 0.1611
    assert np.allclose(vit.wilson_interval(9, 10), (0.5958, 0.9821), atol=1e-4)
    assert np.allclose(vit.wilson_interval(0, 20), (0.0, 0.1611), atol=1e-4)


def test_resume_is_exact(tmp_path):
    from latentatlas.trainer import TrainingInterrupted

    small = dict(d_model=16, n_heads=2, n_layers=1, mlp_ratio=1, shift=1, dropout=0.1)
    kw = dict(data="digits", steps=12, checkpoint_every=4, device="cpu", progress=False, batch_size=16, **small)
    with one_thread():
        whole, _, _ = vit.train_vit(tmp_path / "a", name="w", **kw)

        def stop(step):
            if step == 8:
                raise KeyboardInterrupt

        with pytest.raises(TrainingInterrupted):
            vit.train_vit(tmp_path / "b", name="p", on_step=stop, **kw)
        part, result, _ = vit.train_vit(tmp_path / "b", name="p", resume=True, device="cpu", progress=False)
    assert result.resumed_from == 8
    a, b = whole.load_model().state_dict(), part.load_model().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the random shifts replay from the checkpointed generator


def test_explorer_serves_the_real_attention_rollout_and_flow(trained):
    atlas, run, _, _ = trained
    x = vit.ViTExplorer(run)
    meta = x.meta()
    assert meta["grid"] == [4, 4] and meta["n_layers"] == 2 and meta["n_heads"] == 2 and meta["image"] == [1, 8, 8]
    assert meta["strip"]["count"] == 48 and len(meta["strip"]["predicted"]) == 48 and meta["classes"][3] == "3"
    got = x.image(5)
    img, label = vit.images_of(run).test_images(slice(5, 6))
    ref = capture.attention(x.net.model, torch.from_numpy(img))
    layers = [layer.probs[0].numpy() for layer in ref.layers]
    assert np.allclose(got["attention"], np.stack([a[:, 0, 1:].reshape(2, 4, 4) for a in layers]), atol=1e-6)
    maps = x.maps(5)
    assert np.allclose(maps[0], attention_rollout(layers)[0, 1:].reshape(4, 4), atol=1e-6)
    assert np.allclose(maps[1], attention_flow(layers)[1:].reshape(4, 4), atol=1e-6)
    assert np.isclose(got["probs"].sum(), 1, atol=1e-5) and int(got["probs"].argmax()) == meta["strip"]["predicted"][5]
    sim = x.position_similarity()
    assert sim.shape == (16, 4, 4) and np.allclose(sim.reshape(16, 16).diagonal(), 1, atol=1e-5)
    assert np.allclose(sim.reshape(16, 16), sim.reshape(16, 16).T, atol=1e-6)
    comps, ratio = x.filters()
    flat = comps.reshape(len(comps), -1)
    assert comps.shape == (4, 1, 2, 2) and np.allclose(flat @ flat.T, np.eye(4), atol=1e-5)  # orthonormal components
    assert np.all(np.diff(ratio) <= 1e-7) and np.isclose(ratio.sum(), 1, atol=1e-5)  # 4 components of 4 pixels: all the variance
    with pytest.raises(LatentAtlasError, match="out of range"):
        x.image(360)


def test_routes_answer_in_float32_with_their_shape(trained):
    atlas, run, _, _ = trained
    client = TestClient(create_app(atlas.root), base_url="http://127.0.0.1")
    meta = client.get(f"/api/runs/{run.name}/vit").json()
    assert meta["n_test"] == 360 and meta["filters"]["k"] == 4
    r = client.get(f"/api/runs/{run.name}/vit/images.bin", params={"start": 0, "count": 3})
    assert r.headers["X-Shape"] == "3,1,8,8" and len(r.content) == 3 * 64 * 4
    assert np.array_equal(np.frombuffer(r.content, "<f4").reshape(3, 1, 8, 8), vit.images_of(run).test_images(slice(0, 3))[0])
    x = vit.ViTExplorer(run)
    want = {**x.image(7), "maps": x.maps(7)}
    for part, shape in (("attention", "2,2,4,4"), ("maps", "2,4,4"), ("probs", "10")):
        r = client.get(f"/api/runs/{run.name}/vit/7/{part}.bin")
        assert r.status_code == 200 and r.headers["X-Shape"] == shape
        assert np.allclose(np.frombuffer(r.content, "<f4").reshape(want[part].shape), want[part])
    assert client.get(f"/api/runs/{run.name}/vit/posemb.bin").headers["X-Shape"] == "16,4,4"
    f = client.get(f"/api/runs/{run.name}/vit/filters.bin")
    assert f.headers["X-Shape"] == "4,1,2,2" and len(f.headers["X-Explained"].split(",")) == 4
    bad = client.get(f"/api/runs/{run.name}/vit/360/maps.bin")
    assert bad.status_code == 422 and "out of range" in bad.json()["detail"]
    assert client.get(f"/api/runs/{run.name}/vit/images.bin", params={"count": 0}).status_code == 422
    assert client.get("/api/runs/nope/vit").status_code == 404


@pytest.fixture(scope="module")
def hf_folders(tmp_path_factory):
    """A tiny random ViTForImageClassification (16×16, patch 4, 3 channels) and a bare ViTModel, saved."""
    from transformers import ViTConfig as HFViTConfig
    from transformers import ViTForImageClassification, ViTModel

    root = tmp_path_factory.mktemp("hf-vit")
    torch.manual_seed(0)
    cfg = HFViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=24, num_hidden_layers=2, num_attention_heads=3,
                      intermediate_size=32, num_labels=10, id2label={i: f"digit-{i}" for i in range(10)},
                      label2id={f"digit-{i}": i for i in range(10)})
    ViTForImageClassification(cfg).eval().save_pretrained(root / "cls")
    ViTModel(cfg, add_pooling_layer=False).eval().save_pretrained(root / "bare")
    return root


def test_a_transformers_vit_folder_works_the_same_way(hf_folders, tmp_path):
    atlas = Atlas(tmp_path / "atlas")
    run = vit.register_vit(atlas, str(hf_folders / "cls"), data="digits", name="hf")
    x = vit.ViTExplorer(run)
    meta = x.meta()
    assert meta["origin"] == "transformers" and meta["grid"] == [4, 4] and meta["n_heads"] == 3 and meta["classes"][2] == "digit-2"
    got = x.image(0)
    assert got["attention"].shape == (2, 3, 4, 4) and x.maps(0).shape == (2, 4, 4) and got["probs"].shape == (10,)
    # the reference: transformers' own eager attention for the same input
    img, _ = vit.images_of(run).test_images(slice(0, 1))
    model = x.net.model
    model.set_attn_implementation("eager")
    with torch.inference_mode():
        out = model(**x.net.prepare(img), output_attentions=True)
    theirs = np.stack([a[0, :, 0, 1:].numpy().reshape(3, 4, 4) for a in out.attentions])
    assert np.allclose(got["attention"], theirs, atol=1e-6)
    assert np.allclose(got["probs"], torch.softmax(out.logits[0], -1).numpy(), atol=1e-6)
    assert x.position_similarity().shape == (16, 4, 4)
    comps, _ = x.filters()
    assert comps.shape == (24, 3, 4, 4)  # min(28, d=24, 3·4·4=48) components
    # a bare ViTModel has no classifier: no probabilities, the rest the same
    bare = vit.ViTExplorer(vit.register_vit(atlas, str(hf_folders / "bare"), data="digits", name="bare"))
    assert bare.image(1)["probs"].shape == (0,) and bare.meta()["strip"]["predicted"] is None and bare.meta()["image"] == [1, 8, 8]


def test_sprites_are_classified_by_their_shape():
    from latentatlas.data.sprites import Sprites

    images = vit.Images("sprites")
    assert images.classes == ["square", "ellipse", "heart"] and images.test_size == 3000 and len(images) == 737_280 - 3000
    rows = np.array([0, 1, 2, 400_000])
    batch = images.get(rows)
    assert batch.shape == (4, 1 + 64 * 64)
    truth = Sprites().get_factors(images.train_index[rows])
    assert np.array_equal(batch[:, 0], truth[:, 0]) and np.array_equal(batch[:, 1:].reshape(4, 1, 64, 64), Sprites().get(images.train_index[rows]))


def test_bad_input_is_one_sentence(tmp_path, trained):
    atlas, run, _, _ = trained
    with pytest.raises(LatentAtlasError, match="--data 'mnist'"):
        vit.train_vit(tmp_path / "a", data="mnist", steps=1)
    with pytest.raises(LatentAtlasError, match="unknown ViT setting"):
        vit.train_vit(tmp_path / "a", data="digits", steps=1, width=3)
    with pytest.raises(LatentAtlasError, match="no config.json"):
        vit.register_vit(tmp_path / "a", str(tmp_path))
    with pytest.raises(LatentAtlasError, match="already finished"):
        vit.train_vit(atlas, name=run.name, resume=True)
    with pytest.raises(LatentAtlasError, match="not a multiple"):
        ViTConfig(image_size=8, patch=3)
    with pytest.raises(LatentAtlasError, match="images of shape"):
        ViT(ViTConfig(**TINY))(torch.rand(1, 3, 8, 8))
    # a hand-edited data section is refused by its schema, in one sentence
    cfg = run.config()
    bad = atlas.create_run("bad", {**cfg, "name": "bad", "data": {"kind": "digits", "test": "all"}})
    with pytest.raises(LatentAtlasError, match="data section of run config .* test"):
        vit.images_of(bad)


def test_cli_trains_and_refuses_bad_flags(tmp_path, capsys, hf_folders):
    from latentatlas.cli import main

    def run_cli(*argv):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc, one_thread():
            main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return exc.value.code, out, err

    code, out, err = run_cli("attention", "vit", "--data", "pictures", "--atlas", tmp_path / "atlas")
    assert code == 2 and "--data 'pictures'" in err and "Traceback" not in err + out
    code, out, _ = run_cli("attention", "vit", "--data", "digits", "--steps", "5", "--name", "c", "--device", "cpu", "--quiet",
                           "--atlas", tmp_path / "atlas")
    assert code == 0 and "test accuracy" in out
    metrics = Atlas(tmp_path / "atlas").run("c").read_metrics()
    assert metrics["command"].startswith("latentatlas attention vit --data digits --steps 5")
    code, out, _ = run_cli("attention", "vit", "--model", hf_folders / "cls", "--name", "h", "--atlas", tmp_path / "atlas")
    assert code == 0 and Atlas(tmp_path / "atlas").run("h").config()["origin"] == "transformers"
    code, out, err = run_cli("attention", "vit", "--model", hf_folders / "cls", "--steps", "3", "--atlas", tmp_path / "atlas")
    assert code == 2 and "--model" in err and "Traceback" not in err + out

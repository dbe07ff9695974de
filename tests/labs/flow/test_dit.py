"""The DiT view of the flow lab against known answers: the loss is its formula (and, for a network that
outputs 0, the closed form E‖x1 − x0‖²); recording every block changes no output, and what it records is
what the blocks computed (the attention by hand from the block's own projections, the output rebuilt from
the last hidden state); one PCA colours every layer and step (a hand-built set where two layers share a
direction gives them one colour, which separate fits would not); guidance at scale 1 and 0 is the
conditional and the unconditional prediction; resume is bitwise; a DiT folder written by diffusers'
``save_pretrained`` loads and is sampled with the same recorder, a PixArt folder loads and records; bad
input is one sentence and bad route parameters a 4xx."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from torch_helpers import one_thread

from latentatlas.atlas import Atlas
from latentatlas.errors import LatentAtlasError
from latentatlas.labs.flow import dit
from latentatlas.models.dit import BlockRecorder, DiTConfig, FlowDiT, FolderField, GuidedField, load_dit_folder

TINY = dict(n_layers=2, n_heads=2, head_dim=8)
STEPS = 6  # sampling steps in these tests


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    atlas = Atlas(tmp_path_factory.mktemp("dit-atlas"))
    with one_thread():
        run, result, report = dit.train(atlas, steps=30, batch_size=32, name="d", device="cpu", progress=False, evaluate=False, **TINY)
        model = dit.model_of(run)
        dit.save_capture(run, dit.capture(model, [3, 7], steps=STEPS, scale=2.0, seed=5))
        report = dit.evaluate_run(run, per_class=4, steps=STEPS, num_resamples=20, train_seconds=result.seconds)
    return atlas, run, result, report


def tiny_model(seed: int = 0, **kw) -> FlowDiT:
    torch.manual_seed(seed)
    return FlowDiT(DiTConfig(**{**TINY, **kw})).eval()


def test_loss_is_its_formula_and_the_closed_form_for_a_zero_network():
    with one_thread():
        model = tiny_model(label_dropout=0.5)
        torch.manual_seed(1)
        batch = torch.cat([torch.randint(0, 10, (6, 1)).float(), torch.rand(6, 64)], dim=1)
        torch.manual_seed(7)
        got = model.loss(batch)["loss"]
        # the same draws, in the documented order: noise, times, label drops
        torch.manual_seed(7)
        x1 = batch[:, 1:].reshape(6, 1, 8, 8) * 2 - 1
        x0 = torch.randn_like(x1)
        t = torch.rand(6)
        drop = torch.rand(6) < 0.5
        assert 0 < int(drop.sum()) < 6  # some labels became the null class, some did not
        labels = torch.where(drop, 10, batch[:, 0].long())
        xt = (1 - t)[:, None, None, None] * x0 + t[:, None, None, None] * x1
        v = model.dit(xt, timestep=1000 * t, class_labels=labels).sample
        want = ((v - (x1 - x0)) ** 2).sum(dim=(1, 2, 3)).mean()
        assert torch.allclose(got, want, rtol=1e-6, atol=1e-6)
        # a network whose last layer is 0 predicts 0: the loss is mean_b Σ (x1 − x0)², whatever t
        with torch.no_grad():
            model.dit.proj_out_2.weight.zero_()
            model.dit.proj_out_2.bias.zero_()
        torch.manual_seed(7)
        zero = model.loss(batch)["loss"]
        assert torch.allclose(zero, ((x1 - x0) ** 2).sum(dim=(1, 2, 3)).mean(), rtol=1e-6)


def test_guidance_at_scale_one_and_zero_is_the_conditional_and_unconditional_prediction():
    with one_thread():
        model = tiny_model()
        x, t, labels = torch.randn(3, 64), torch.tensor(0.3), torch.tensor([1, 4, 9])
        img = x.reshape(3, 1, 8, 8)
        with torch.no_grad():
            vc = model(img, torch.full((3,), 0.3), labels).reshape(3, -1)
            vu = model(img, torch.full((3,), 0.3), torch.full((3,), 10)).reshape(3, -1)
        assert not torch.allclose(vc, vu, atol=1e-4)
        assert torch.allclose(GuidedField(model, labels, 1.0).velocity(x, t), vc, atol=1e-5)
        assert torch.allclose(GuidedField(model, labels, 0.0).velocity(x, t), vu, atol=1e-5)
        assert torch.allclose(GuidedField(model, labels, 3.0).velocity(x, t), vu + 3 * (vc - vu), atol=1e-5)


def test_recording_changes_no_output_and_records_what_the_blocks_computed():
    with one_thread():
        model = tiny_model()
        labels = np.array([2, 5, 8])
        plain, _ = dit.generate(model, labels, steps=STEPS, scale=2.0, seed=3)
        cap = dit.capture(model, labels, steps=STEPS, scale=2.0, seed=3)
        # the recorder's explicit softmax against the default sdpa processor: the same samples
        assert np.allclose(cap.states[-1].reshape(3, -1), dit.to_image(plain.x), atol=1e-5)
        assert cap.hidden.shape == (STEPS, 2, 2, 3, 16, 16) and cap.attention.shape == (STEPS, 2, 2, 3, 2, 16, 16)
        assert cap.states.shape == (STEPS + 1, 3, 1, 8, 8) and cap.predicted.shape == (STEPS, 3, 1, 8, 8)
        assert np.allclose(cap.times, np.arange(STEPS) / STEPS, atol=1e-6) and cap.meta["nfe"] == STEPS
        # the processors are put back
        assert all(type(b.attn1.processor).__name__ == "AttnProcessor2_0" for b in model.dit.transformer_blocks)
        assert all("get_attention_scores" not in b.attn1.__dict__ for b in model.dit.transformer_blocks)
        # one call by hand: layer 0's attention from its own q and k; the output rebuilt from the last block's output
        x, t, lab = torch.randn(2, 1, 8, 8), torch.tensor([0.2, 0.7]), torch.tensor([1, 10])
        with torch.no_grad(), BlockRecorder(model.dit) as rec:
            out = model(x, t, lab)
        hidden, att = rec.stacked()
        with torch.no_grad():
            assert torch.allclose(out, model(x, t, lab), atol=1e-5)  # the explicit softmax against sdpa, one call
        d = model.dit
        with torch.no_grad():
            h = d.pos_embed(x)
            b = d.transformer_blocks[0]
            normed = b.norm1(h, 1000 * t, lab, hidden_dtype=h.dtype)[0]
            q = b.attn1.to_q(normed).view(2, 16, 2, 8).transpose(1, 2)
            k = b.attn1.to_k(normed).view(2, 16, 2, 8).transpose(1, 2)
            want = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(8), dim=-1)
            assert torch.allclose(att[0, 0], want, atol=1e-6)
            assert torch.allclose(hidden[0, 0], b(h, timestep=1000 * t, class_labels=lab), atol=1e-6)
            cond = d.transformer_blocks[0].norm1.emb(1000 * t, lab, hidden_dtype=h.dtype)
            shift, scale = d.proj_out_1(torch.nn.functional.silu(cond)).chunk(2, dim=1)
            last = d.proj_out_2(d.norm_out(hidden[0, -1]) * (1 + scale[:, None]) + shift[:, None])
            rebuilt = last.reshape(2, 4, 4, 2, 2, 1).permute(0, 5, 1, 3, 2, 4).reshape(2, 1, 8, 8)
        assert torch.allclose(rebuilt, out, atol=1e-5)


def test_one_pca_colours_every_layer_and_step_alike():
    # hand-built hidden states (steps 2, layers 2, samples 1, tokens 4, width 5): every token lies on one axis
    # with balanced signs, so the covariance is diagonal and the components are the axes e0, e1, e2
    e = np.eye(5)
    cells = {(0, 0): [3 * e[0], -3 * e[0], 2 * e[1], -2 * e[1]], (0, 1): [e[2], -e[2], 6 * e[0], -6 * e[0]],
             (1, 0): [2 * e[1], -2 * e[1], e[2], -e[2]], (1, 1): [2 * e[1], -2 * e[1], -3 * e[0], 3 * e[0]]}
    cond = np.zeros((2, 2, 1, 4, 5))
    for (s, l), rows in cells.items():
        cond[s, l, 0] = rows
    assert np.array_equal(cond[1, 1, 0, 2], cond[0, 0, 0, 1])  # layer 1 at step 1 holds layer 0's vector at step 0
    uncond = cond.copy()
    uncond[..., 0] += 0.5  # the unconditional half: moved along e0 only
    got = dit.joint_pca_rgb(cond, uncond)
    assert got.cond.shape == (2, 2, 1, 4, 3) and got.diff.shape == (2, 2, 1, 4, 3)
    assert np.array_equal(got.cond[1, 1, 0, 2], got.cond[0, 0, 0, 1])  # one direction, one colour, in any layer and step
    assert np.allclose(np.abs(got.components), e[:3], atol=1e-6)
    rows = np.concatenate([cond.reshape(-1, 5), uncond.reshape(-1, 5)])
    var = rows.var(axis=0)
    assert np.allclose(got.explained, var[:3] / var.sum(), atol=1e-6)
    # colour k is 0.5 + 0.5·p_k/s_k: the shared vector −3·e0 sits at ∓3 − mean along e0, over the 99 % quantile of |p_0|
    p0 = np.sign(got.components[0, 0]) * (rows[:, 0] - rows[:, 0].mean())
    s0 = np.quantile(np.abs(p0), 0.99)
    want = 0.5 + 0.5 * np.sign(got.components[0, 0]) * (-3 - rows[:, 0].mean()) / s0
    assert got.cond[0, 0, 0, 1, 0] == pytest.approx(want, abs=1e-6)
    # the difference lies along e0 only: green and blue stay grey, red moves by the same amount everywhere
    assert np.allclose(got.diff[..., 1:], 0.5) and np.allclose(got.diff[..., 0], got.diff[0, 0, 0, 0, 0]) and got.diff[0, 0, 0, 0, 0] != 0.5
    # fitted layer by layer instead, the shared vector would not get one colour: the test can tell
    own0 = dit.joint_pca_rgb(cond[:, :1], uncond[:, :1]).cond[0, 0, 0, 1]
    own1 = dit.joint_pca_rgb(cond[:, 1:], uncond[:, 1:]).cond[1, 0, 0, 2]
    assert not np.allclose(own0, own1, atol=1e-3)
    # the same halves: a difference of zero is grey everywhere
    assert np.allclose(dit.joint_pca_rgb(cond, cond).diff, 0.5)


def test_training_capture_and_evaluation_are_written_into_the_run(trained):
    atlas, run, result, report = trained
    assert result.steps_done == 30 and run.config()["kind"] == "flow_dit"
    cap = dit.read_capture(run)
    assert cap.hidden.shape[:4] == (STEPS, 2, 2, 2) and list(cap.labels) == [3, 7] and cap.meta["scale"] == 2.0
    m = report["metrics"]
    assert report["n"] == 40 and m["probe_accuracy"]["ci_low"] <= m["probe_accuracy"]["value"] <= m["probe_accuracy"]["ci_high"]
    assert m["probe_accuracy_real"]["value"] > 0.9  # logistic regression on the real held-out digits
    assert list(report["per_scale"]) == ["1.5", "1"] and len(report["per_scale"]["1.5"]["per_class"]) == 10
    assert all(f"energy_distance_class_{k}" in m for k in range(10)) and run.read_metrics()["headline"]["probe_accuracy"] == m["probe_accuracy"]["value"]
    # the per-class energy distance is analysis.sample_quality's, on the generated digits of that class
    from latentatlas.analysis.sample_quality import energy_distance

    res, _ = dit.generate(dit.model_of(run), np.repeat(np.arange(10), 4), steps=STEPS, scale=dit.CFG_SCALE, seed=1)
    gen = np.clip(dit.to_image(res.x), 0, 1)
    xt, yt = dit.Digits().split("test")
    want = energy_distance(gen[np.repeat(np.arange(10), 4) == 6], xt[yt == 6].reshape(-1, 64), num_resamples=20, random_state=6)
    assert m["energy_distance_class_6"]["value"] == pytest.approx(want.value, rel=1e-6)


def test_explorer_serves_the_layer_by_step_grid(trained):
    _, run, _, _ = trained
    x = dit.DiTExplorer(run)
    meta = x.meta()
    assert meta["layers"] == 2 and meta["steps"] == STEPS and meta["grid"] == [4, 4] and meta["labels"] == [3, 7] and meta["saved"]
    rgb = x.grid_rgb(1, "cond")
    assert rgb.shape == (2, STEPS, 4, 4, 3) and rgb.min() >= 0 and rgb.max() <= 1
    # cell (layer 1, step 4) of sample 1 is token by token the joint colouring of that hidden state
    cap = x.cap
    want = dit.joint_pca_rgb(cap.hidden[:, :, 0], cap.hidden[:, :, 1]).cond[4, 1, 1]
    assert np.allclose(rgb[1, 4].reshape(16, 3), want)
    a = x.attention(0, 1, 2, "uncond")
    assert a.shape == (2, 16, 16) and np.allclose(a.sum(-1), 1, atol=2e-3)  # stored as float16
    assert np.array_equal(x.attention(0, 1, 2, "uncond", head=1), a[1])
    assert x.images(1, "state").shape == (STEPS + 1, 1, 8, 8) and x.images(1, "predicted_uncond").shape == (STEPS, 1, 8, 8)
    assert np.array_equal(x.finals()[1], x.images(1, "state")[-1])
    for bad in (lambda: x.grid_rgb(2), lambda: x.grid_rgb(0, "both"), lambda: x.attention(0, 2, 0), lambda: x.attention(0, 0, STEPS),
                lambda: x.attention(0, 0, 0, head=2), lambda: x.images(0, "noise")):
        with pytest.raises(LatentAtlasError, match="out of range|is not one of"):
            bad()


def test_resume_is_bitwise(tmp_path):
    from latentatlas.trainer import TrainingInterrupted

    kw = dict(steps=10, batch_size=16, checkpoint_every=4, device="cpu", progress=False, evaluate=False, n_layers=1, n_heads=2, head_dim=4)
    with one_thread():
        whole, _, _ = dit.train(tmp_path / "a", name="w", **kw)

        def stop(step):
            if step == 6:
                raise KeyboardInterrupt

        with pytest.raises(TrainingInterrupted):
            dit.train(tmp_path / "b", name="p", on_step=stop, **kw)
        part, result, _ = dit.train(tmp_path / "b", name="p", resume=True, device="cpu", progress=False, evaluate=False)
    assert result.resumed_from == 4
    a, b = whole.load_model().state_dict(), part.load_model().state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_users_dit_and_pixart_folders_load(tmp_path):
    from diffusers import DiTTransformer2DModel, PixArtTransformer2DModel
    from latentatlas.models.samplers import sample

    with one_thread():
        torch.manual_seed(0)
        ref = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
                                    sample_size=8, patch_size=2, num_embeds_ada_norm=5).eval()
        ref.save_pretrained(tmp_path / "pipe" / "transformer", safe_serialization=True)
        loaded = load_dit_folder(tmp_path / "pipe")  # a pipeline folder: its transformer/ is read
        assert loaded.family == "dit" and loaded.learned_sigma and loaded.n_classes == 5 and loaded.n_layers == 2
        x, tau, y = torch.randn(2, 4, 8, 8), torch.tensor([10.0, 900.0]), torch.tensor([1, 5])
        with torch.no_grad():
            want = ref(x, timestep=tau, class_labels=y).sample
            assert torch.equal(loaded.model(x, timestep=tau, class_labels=y).sample, want)
        # guidance at scale 1 is the conditional ε (its first 4 channels; the learned variance is dropped)
        field = FolderField(loaded, torch.tensor([1, 1]), 1.0)
        e = field.eps(x.reshape(2, -1), torch.tensor(10.0), torch.tensor(0.99))
        with torch.no_grad():
            assert torch.allclose(e, ref(x, timestep=torch.tensor([10.0, 10.0]), class_labels=torch.tensor([1, 1])).sample[:, :4].reshape(2, -1), atol=1e-5)
        # sampled by DDIM with every block recorded, as the model trained here is
        with BlockRecorder(loaded.model) as rec:
            res = sample(FolderField(loaded, torch.tensor([0, 3]), 4.0, record=True), torch.randn(2, 256), "ddim", 3, objective="eps")
        hidden, att = rec.stacked()
        assert res.nfe == 3 and hidden.shape == (3, 2, 4, 16, 16) and att.shape == (3, 2, 4, 2, 16, 16)
        with pytest.raises(LatentAtlasError, match="predicts ε on the VP path"):
            sample(FolderField(loaded, torch.tensor([0]), 1.0), torch.randn(1, 256), "euler", 2)
        # PixArt: loads, and its blocks are recorded under caption embeddings; sampling it is refused
        torch.manual_seed(0)
        px = PixArtTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
                                      cross_attention_dim=16, caption_channels=12, sample_size=8, patch_size=2).eval()
        px.save_pretrained(tmp_path / "pixart", safe_serialization=True)
        p = load_dit_folder(tmp_path / "pixart")
        assert p.family == "pixart" and p.n_classes is None
        with torch.no_grad(), BlockRecorder(p.model) as rec:
            out = p.model(x, encoder_hidden_states=torch.randn(2, 3, 12), timestep=tau,
                          added_cond_kwargs={"resolution": None, "aspect_ratio": None}).sample
        assert out.shape == (2, 8, 8, 8) and rec.stacked()[1].shape == (1, 2, 2, 2, 16, 16)
        with pytest.raises(LatentAtlasError, match="T5 caption embeddings"):
            FolderField(p, torch.tensor([0]), 1.0)
        # not a folder of either, and a folder without safetensors
        with pytest.raises(LatentAtlasError, match="is not a DiT or PixArt folder"):
            load_dit_folder(tmp_path)
        (tmp_path / "pickled").mkdir()
        (tmp_path / "pickled" / "config.json").write_text((tmp_path / "pixart" / "config.json").read_text())
        (tmp_path / "pickled" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04")
        with pytest.raises(LatentAtlasError, match="no .safetensors weights"):
            load_dit_folder(tmp_path / "pickled")


def test_bad_input_is_one_sentence(tmp_path, trained):
    atlas, run, _, _ = trained
    model = tiny_model()
    cases = [
        (lambda: dit.train(tmp_path / "a", data="sprites", steps=1), "--data 'sprites'"),
        (lambda: dit.train(tmp_path / "a", steps=1, width=3), "unknown DiT setting"),
        (lambda: dit.train(tmp_path / "a", steps=1, image_size=16), "cannot change"),
        (lambda: dit.train(atlas, name=run.name, resume=True), "already finished"),
        (lambda: DiTConfig(patch=3), "not a multiple of patch"),
        (lambda: DiTConfig(label_dropout=1.0), "label_dropout"),
        (lambda: model(torch.rand(1, 3, 8, 8), torch.rand(1), torch.zeros(1)), "expected \\(batch, 1, 8, 8\\)"),
        (lambda: model.loss(torch.rand(4, 64)), "expected \\(batch, 65\\)"),
        (lambda: dit.generate(model, [3, 10]), "classes 0 to 9"),
        (lambda: dit.generate(model, [1.5]), "whole class number"),
        (lambda: dit.generate(model, [1], scale=float("nan")), "guidance scale"),
        (lambda: dit.generate(model, [1], sampler="rk4"), "sampler 'rk4'"),
        (lambda: dit.capture(model, np.zeros(65, dtype=int)), "captured samples"),
        (lambda: BlockRecorder(torch.nn.Linear(2, 2)), "no transformer_blocks"),
        (lambda: dit.joint_pca_rgb(np.zeros((2, 3)), np.zeros((3, 3))), "one shape"),
    ]
    for fn, words in cases:
        with pytest.raises(LatentAtlasError, match=words) as exc:
            fn()
        msg = str(exc.value)
        assert "\n" not in msg and msg.count(". ") == 0, msg
    other = atlas.create_run("vae-run", {"name": "vae-run", "kind": "vae"})
    with pytest.raises(LatentAtlasError, match="not a DiT flow run"):
        dit.model_of(other)
    bad = atlas.create_run("bad", {**run.config(), "name": "bad", "data": {"kind": "mnist"}})
    with pytest.raises(LatentAtlasError, match="data section"):
        dit.data_of(bad)


def test_routes_answer_arrays_and_4xx(trained):
    from latentatlas.labs.flow import dit_routes
    from latentatlas.server import create_app

    atlas, run, _, _ = trained
    app = create_app(atlas.root)
    app.include_router(dit_routes.router)
    with one_thread(), TestClient(app, base_url="http://127.0.0.1") as client:
        base = f"/api/runs/{run.name}/dit"
        meta = client.get(base).json()
        assert meta["kind"] == "flow_dit" and meta["steps"] == STEPS and meta["n"] == 2
        x = dit.DiTExplorer(run)
        for path, params, want in (("rgb.bin", {"sample": 1, "which": "diff"}, x.grid_rgb(1, "diff")),
                                   ("attention.bin", {"sample": 0, "layer": 1, "step": 3, "half": "cond"}, x.attention(0, 1, 3)),
                                   ("attention.bin", {"layer": 0, "step": 0, "head": 1}, x.attention(0, 0, 0, head=1)),
                                   ("images.bin", {"sample": 1, "what": "predicted"}, x.images(1, "predicted")),
                                   ("finals.bin", {}, x.finals())):
            r = client.get(f"{base}/{path}", params=params)
            assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
            shape = tuple(int(s) for s in r.headers["X-Shape"].split(","))
            assert shape == want.shape and np.array_equal(np.frombuffer(r.content, "<f4").reshape(shape), want)
        for path, params in (("rgb.bin", {"sample": 2}), ("rgb.bin", {"which": "all"}), ("attention.bin", {"layer": 2, "step": 0}),
                             ("attention.bin", {"layer": 0, "step": 0, "half": "both"}), ("images.bin", {"what": "x"}),
                             ("attention.bin", {"layer": -1, "step": 0}), ("attention.bin", {"step": 0}), ("rgb.bin", {"sample": "one"})):
            r = client.get(f"{base}/{path}", params=params)
            assert r.status_code == 422 and isinstance(r.json()["detail"], str), (path, params, r.text)
        atlas.create_run("other", {"name": "other", "kind": "vae"}) if not atlas.has_run("other") else None
        assert client.get("/api/runs/other/dit").status_code == 422
        assert client.get("/api/runs/nope/dit/finals.bin").status_code == 404

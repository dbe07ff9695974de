"""The ablation lab on models whose answers are known: a residual block whose branch is exactly zero (skip
and zero change nothing), a linear pair whose mean ablation is computable by hand, a tiny GPT-2 whose
zeroed final layer norm leaves uniform next-token distributions (KL = log V − entropy), a tiny BERT whose
zeroed last layer leaves a zero embedding (cosine 0); the SD-style VAE trained a few steps and a user's
AutoencoderKL folder (the mid-block attention beside its ResNet); bad input as one sentence; the routes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

from latentatlas.atlas import Atlas
from latentatlas.errors import LatentAtlasError
from latentatlas.labs.attention import ablate as A
from latentatlas.models.sd_vae import SDVAEConfig

TINY_SD = SDVAEConfig(sample_size=16, block_out_channels=(8, 8), norm_num_groups=4)


class Residual(nn.Module):
    def __init__(self, d: int, zero: bool):
        super().__init__()
        self.branch = nn.Linear(d, d)
        if zero:
            nn.init.zeros_(self.branch.weight)
            nn.init.zeros_(self.branch.bias)

    def forward(self, x):
        return x + self.branch(x)


class Stack(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Residual(4, zero=True), Residual(4, zero=False)])
        self.head = nn.Linear(4, 3)  # changes the shape: skip is refused here

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return x


def _target(model, family="autoencoder"):
    return A.Target(model, family, "hand-built", model)


def test_residual_block_with_a_zero_branch_changes_nothing():
    torch.manual_seed(0)
    model = Stack().eval()
    x = torch.randn(16, 4)
    batch = A.Batch(x, 16, "images")
    assert A.sweep_modules(model) == ["blocks.0", "blocks.1"]
    for modules, mode in ((["blocks.0"], "skip"), (["blocks.0.branch"], "zero"), (["blocks.0.branch"], "mean")):
        r = A.ablate(_target(model), modules, mode, batch, save=False)
        m = r["rows"][0]["metrics"]
        assert m["mse"]["value"] == 0.0 and m["psnr"]["value"] is None  # identical output: PSNR is infinite
    # skipping the live block removes exactly its branch: the known output is x + branch0(x) = x
    r = A.ablate(_target(model), ["blocks.1"], "skip", batch, save=False)
    with torch.no_grad():
        full = model(x)
    expected = ((full - x) ** 2).mean(1).double().numpy()
    got = r["rows"][0]["metrics"]["mse"]
    assert got["value"] == pytest.approx(expected.mean(), rel=1e-5)
    assert got["ci_low"] <= got["value"] <= got["ci_high"] and got["n"] == 16
    assert r["rows"][0]["metrics"]["psnr"]["value"] == pytest.approx(10 * math.log10(1 / expected.mean()), rel=1e-5)


def test_mean_ablation_of_a_linear_layer_is_exactly_computable():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 3), nn.Linear(3, 5)).eval()
    x = torch.randn(32, 5)
    with torch.no_grad():
        base = model(x)
        # the first layer's output replaced by its batch mean = A(mean x), since it is affine
        ablated = model[1](model[0](x.mean(0, keepdim=True))).expand_as(base)
    r = A.ablate(_target(model), ["0"], "mean", A.Batch(x, 32, "images"), save=False)
    assert r["rows"][0]["metrics"]["mse"]["value"] == pytest.approx(((base - ablated) ** 2).mean().item(), rel=1e-5)
    r = A.ablate(_target(model), ["0"], "zero", A.Batch(x, 32, "images"), save=False)  # zero: only the bias of the second layer is left
    with torch.no_grad():
        assert r["rows"][0]["metrics"]["mse"]["value"] == pytest.approx(((base - model[1].bias) ** 2).mean().item(), rel=1e-5)


def test_bad_module_names_and_refused_skips_are_one_sentence():
    model = Stack().eval()
    batch = A.Batch(torch.randn(4, 4), 4, "images")
    with pytest.raises(LatentAtlasError, match=r"module 'blocks\.1\.brnch' is not in Stack; the nearest names: blocks\.1\.branch"):
        A.ablate(_target(model), ["blocks.1.brnch"], "zero", batch, save=False)
    wide = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3)).eval()
    with pytest.raises(LatentAtlasError, match=r"skip on module '1' is refused: its input is \(4, 4\) and its output \(4, 3\)"):
        A.ablate(_target(wide), ["1"], "skip", batch, save=False)
    with pytest.raises(LatentAtlasError, match="did not run"):
        A.ablate(_target(model), ["head"], "zero", batch, save=False)
    with pytest.raises(LatentAtlasError, match="expected one of zero, mean, skip"):
        A.ablate(_target(model), ["blocks.0"], "drop", batch, save=False)


@pytest.fixture(scope="module")
def sd_lab(tmp_path_factory):
    torch.manual_seed(0)
    atlas = Atlas(tmp_path_factory.mktemp("atlas"))
    run = A.train_sdvae(atlas, "sd", steps=3, batch_size=4, config=TINY_SD, progress=False)
    return atlas, run


def test_sd_vae_trains_and_its_mid_block_attention_is_reported_beside_its_resnet(sd_lab):
    atlas, run = sd_lab
    assert run.has_model and not run.has_checkpoint and run.read_history()[-1]["step"] == 3
    assert A.train_sdvae(atlas, "sd", progress=False).name == "sd"  # finished: reused, not retrained
    target = A.target_of_run(run)
    batch = A.make_batch(target, n=12)
    assert tuple(batch.inputs.shape) == (12, 1, 16, 16) and 0 <= float(batch.inputs.min()) and float(batch.inputs.max()) <= 1
    r = A.ablate(target, "sweep", "skip", batch, num_resamples=50)
    names = [row["module"] for row in r["rows"]]
    assert "decoder.mid_block.attentions.0" in names and "decoder.mid_block.resnets.0" in names
    assert {x["module"] for x in r["refused"]} == {"encoder.down_blocks.0", "decoder.up_blocks.0"}  # they resample
    mses = [row["metrics"]["mse"]["value"] for row in r["rows"]]
    assert mses == sorted(mses, reverse=True) and all(v > 0 for v in mses)
    for row in r["rows"]:
        e = row["metrics"]["mse"]
        assert e["ci_low"] <= e["value"] <= e["ci_high"]
    pair = next(p for p in r["pairs"] if p["attention"] == "decoder.mid_block.attentions.0")
    rows = {row["module"]: row for row in r["rows"]}
    diff = rows[pair["attention"]]["metrics"]["mse"]["value"] - rows[pair["resnet"]]["metrics"]["mse"]["value"]
    assert pair["difference"]["value"] == pytest.approx(diff)
    assert r["base"]["psnr_input"]["value"] > 0
    # written atomically, read back through the schema, with the figure beside it
    assert A.read_ablation(run, r["id"]) == json.loads(json.dumps(r))
    for ext in ("png", "svg", "pdf"):
        assert (run.figures_dir / f"ablation-{r['id']}.{ext}").is_file()
    # one module named: its ResNet comes along for the comparison
    r1 = A.ablate(target, ["decoder.mid_block.attentions.0"], "zero", batch, num_resamples=20, save=False)
    assert {row["module"] for row in r1["rows"]} == {"decoder.mid_block.attentions.0", "decoder.mid_block.resnets.0"}
    with pytest.raises(LatentAtlasError, match="skip on module 'decoder.up_blocks.0' is refused"):
        A.ablate(target, ["decoder.up_blocks.0"], "skip", batch, save=False)
    with pytest.raises(LatentAtlasError, match=r"nearest names: decoder\.mid_block\.attentions\.0"):
        A.ablate(target, ["decoder.mid_block.attention.0"], "skip", batch, save=False)


def test_routes_list_and_serve_ablations_and_refuse_damaged_ones(sd_lab):
    from latentatlas.server import create_app

    atlas, run = sd_lab
    target = A.target_of_run(run)
    r = A.ablate(target, ["encoder.mid_block.attentions.0"], "mean", A.make_batch(target, n=6), num_resamples=20, figure=False)
    client = TestClient(create_app(atlas.root), base_url="http://127.0.0.1")
    listed = client.get(f"/api/runs/{run.name}/ablations").json()["ablations"]
    assert r["id"] in [a["id"] for a in listed]
    got = client.get(f"/api/runs/{run.name}/ablations/{r['id']}").json()
    assert got["rows"][0]["metrics"].keys() == {"mse", "psnr", "mse_input", "psnr_input", "d_psnr_input"}
    assert client.get(f"/api/runs/{run.name}/ablations/zzz").status_code == 422
    assert client.get(f"/api/runs/{run.name}/ablations/{'0' * 12}").status_code == 404
    path = run.file("ablation", f"{r['id']}.json")
    bad = json.loads(path.read_text())
    bad["family"] = "<script>"
    path.write_text(json.dumps(bad))
    res = client.get(f"/api/runs/{run.name}/ablations/{r['id']}")
    assert res.status_code == 422 and "family" in res.json()["detail"]
    assert r["id"] not in [a["id"] for a in client.get(f"/api/runs/{run.name}/ablations").json()["ablations"]]
    path.unlink()


def test_a_users_autoencoder_kl_folder(tmp_path):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    folder = tmp_path / "my-vae"
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                  block_out_channels=(8, 8), norm_num_groups=4, latent_channels=4).save_pretrained(folder, safe_serialization=True)
    atlas = Atlas(tmp_path / "atlas")
    target = A.resolve(str(folder), atlas)
    assert target.run.config()["kind"] == A.DIFFUSERS_KIND and A.resolve(str(folder), atlas).run.name == target.run.name
    batch = A.make_batch(target, n=4)  # sprites, repeated to 3 channels
    assert tuple(batch.inputs.shape) == (4, 3, 64, 64)
    r = A.ablate(target, ["decoder.mid_block.attentions.0"], "skip", batch, num_resamples=20, figure=False)
    assert r["pairs"] and r["pairs"][0]["resnet"] == "decoder.mid_block.resnets.0"
    (tmp_path / "not-a-vae").mkdir()
    (tmp_path / "not-a-vae" / "config.json").write_text('{"_class_name": "UNet2DModel"}')
    with pytest.raises(LatentAtlasError):
        A.resolve(str(tmp_path / "not-a-vae"), atlas)


def test_tiny_gpt2_zeroed_final_norm_gives_uniform_predictions(tmp_path, tiny_tf):
    atlas = Atlas(tmp_path)
    target = A.resolve(tiny_tf["gpt2"], atlas)
    assert target.family == "causal_lm"
    batch = A.make_batch(target, texts=["Open the file, read its lines, and close it again.", "A list keeps them in order."])
    r = A.ablate(target, ["transformer.ln_f"], "zero", batch, num_resamples=50, figure=False)
    m = r["rows"][0]["metrics"]
    # zero hidden states → zero logits → the uniform distribution: KL(p ‖ u) = log V − H(p), per real token
    with torch.no_grad():
        logits = target.root(**batch.inputs, use_cache=False).logits.double()
    logp = torch.log_softmax(logits, -1)
    ent = -(logp.exp() * logp).sum(-1)
    v = logits.shape[-1]
    mask = batch.mask.double()
    expected = (((math.log(v) - ent) * mask).sum(1) / mask.sum(1)).mean().item()
    assert m["kl"]["value"] == pytest.approx(expected, rel=1e-4) and m["kl"]["value"] > 0
    assert r["base"]["ce"]["value"] + m["d_ce"]["value"] == pytest.approx(math.log(v), rel=1e-4)  # CE under the uniform is log V
    sweep = A.ablate(target, "sweep", "skip", batch, num_resamples=20, figure=False)
    assert [row["module"] for row in sweep["rows"]] and {row["module"] for row in sweep["rows"]} == {"transformer.h.0", "transformer.h.1"}
    with pytest.raises(LatentAtlasError, match=r"nearest names: transformer\.h\.0\.attn"):
        A.ablate(target, ["transformer.h.0.atn"], "zero", batch, save=False)


def test_tiny_bert_zeroed_last_layer_leaves_no_embedding(tmp_path, tiny_tf):
    target = A.resolve(tiny_tf["bert"], Atlas(tmp_path))
    assert target.family == "encoder"
    batch = A.make_batch(target, texts=["one text", "and another, longer text"])
    r = A.ablate(target, ["encoder.layer.1"], "zero", batch, num_resamples=20, figure=False)
    assert r["rows"][0]["metrics"]["cosine"]["value"] == 0.0 and r["rows"][0]["metrics"]["cos_dist"]["value"] == 1.0
    r = A.ablate(target, ["encoder.layer.1.attention"], "mean", batch, num_resamples=20, figure=False)
    assert 0 < r["rows"][0]["metrics"]["cos_dist"]["value"] < 1


def test_cli_ablates_and_says_bad_input_in_one_sentence(tmp_path, tiny_tf, capsys):
    from latentatlas.cli import main

    def code(*argv):
        try:
            main([str(a) for a in argv])
        except SystemExit as exc:
            return exc.code
        return 0

    atlas = tmp_path / "atlas"
    assert code("attention", "ablate", tiny_tf["gpt2"], "--module", "transformer.h.1", "--mode", "zero", "--text", "read its lines",
                "--atlas", atlas, "--quiet") == 0
    out = capsys.readouterr().out
    assert "transformer.h.1" in out and "KL" in out
    assert code("attention", "ablate", tiny_tf["gpt2"], "--module", "transformer.h.9", "--text", "x y z", "--atlas", atlas) == 2
    err = capsys.readouterr().err
    assert "nearest names" in err and "Traceback" not in err
    assert code("attention", "ablate", tiny_tf["gpt2"], "--module", "transformer.h.0", "--mode", "drop", "--text", "x y", "--atlas", atlas) == 2
    assert code("attention", "ablate", tiny_tf["gpt2"], "--module", "transformer.h.0", "--sweep", "--atlas", atlas) == 2
    assert "not both" in capsys.readouterr().err

"""The SAE family: each architecture's defining property, its losses, training on a store, resume."""

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest
import torch
from conftest import sigkill_at_checkpoint

from latentatlas.activations import ShuffledBatches
from latentatlas.atlas import Atlas
from latentatlas.errors import LatentAtlasError
from latentatlas.labs.sae.jobs import capture_store, evaluate_sae, train_sae
from latentatlas.models import SAE, SAEConfig, load_model


def _sae(arch, d=16, m=64, **kw):
    torch.manual_seed(0)
    return SAE(SAEConfig(arch=arch, d_in=d, d_sae=m, k=kw.pop("k", 4), **kw))


def _x(n=256, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * 3 + 5


def test_init_encoder_is_decoder_transpose_and_data_init():
    for arch in ("relu", "topk", "batchtopk", "jumprelu"):
        sae = _sae(arch)
        assert torch.equal(sae.W_enc, sae.W_dec.t())
        x = _x()
        sae.init_from_data(x)
        assert (x * sae.input_scale).norm(dim=1).mean().item() == pytest.approx(16**0.5, rel=1e-5)
        torch.testing.assert_close(sae.b_dec, (x * sae.input_scale).mean(0))
    plain = _sae("topk", normalize_input=False)
    plain.init_from_data(_x())
    assert plain.input_scale.item() == 1.0


def test_topk_keeps_exactly_k_and_forward_maps_raw_to_raw():
    sae = _sae("topk", k=5)
    x = _x()
    sae.init_from_data(x)
    x_hat, f = sae(x)
    assert ((f > 0).sum(1) <= 5).all() and ((f != 0).sum(1) == 5).float().mean() > 0.9
    # decode is linear in raw space: f·(unit decoder rows)/scale + b_dec/scale
    torch.testing.assert_close(x_hat, (f @ sae.decoder() + sae.b_dec) / sae.input_scale)


def test_batchtopk_keeps_k_per_token_on_average_then_uses_its_threshold():
    sae = _sae("batchtopk", k=4)
    x = _x(128)
    sae.init_from_data(x)
    sae.train()
    f = sae.encode(x)
    assert int((f > 0).sum()) <= 4 * 128 and int((f > 0).sum()) > 3 * 128
    assert ((f > 0).sum(1) != 4).any(), "BatchTopK should spread the k·B activations unevenly over tokens"
    theta = sae.threshold.item()
    assert theta > 0
    sae.eval()
    pre = torch.relu(sae.pre_acts(x * sae.input_scale))
    torch.testing.assert_close(sae.encode(x), pre * (pre > theta))


def test_jumprelu_forward_and_threshold_gradient():
    sae = _sae("jumprelu", threshold_init=0.5, bandwidth=2.0)
    x = _x()
    sae.init_from_data(x)
    pre = torch.relu(sae.pre_acts(x * sae.input_scale))
    f = sae.encode(x)
    torch.testing.assert_close(f, pre * (pre > 0.5))
    out = sae.loss(x)
    out["loss"].backward()
    assert sae.log_threshold.grad is not None and sae.log_threshold.grad.abs().sum() > 0
    assert out["l0"].item() == pytest.approx(float((f > 0).float().sum(1).mean()))


def test_relu_loss_is_mse_plus_decoder_norm_weighted_l1():
    sae = _sae("relu", l1_coeff=2.0)
    x = _x()
    sae.init_from_data(x)
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.5, 2.0, 64)[:, None])  # decoder rows of different norms
    out = sae.loss(x)
    xn = x * sae.input_scale
    f = torch.relu((xn - sae.b_dec) @ sae.W_enc + sae.b_enc)
    mse = (xn - f @ sae.W_dec - sae.b_dec).pow(2).sum(1).mean()
    l1 = (f * sae.W_dec.norm(dim=1)).sum(1).mean()
    assert out["loss"].item() == pytest.approx((mse + 2.0 * l1).item(), rel=1e-5)


def test_sparsity_warmup_ramps_lambda():
    sae = _sae("relu", sparsity_warmup=10)
    sae.before_step(0, 100)
    assert sae.sparsity_scale.item() == pytest.approx(0.1)
    sae.before_step(50, 100)
    assert sae.sparsity_scale.item() == 1.0


def test_auxk_reaches_dead_latents_only_when_there_are_some():
    sae = _sae("topk", k=2, dead_tokens=100)
    x = _x()
    sae.init_from_data(x)
    sae.train()
    out = sae.loss(x)
    assert out["aux"].item() == 0 and out["dead"].item() == 0
    with torch.no_grad():
        sae.tokens_since_fired[:32] = 10_000  # half the latents marked dead
    sae.eval()  # in training mode this batch's firing would revive them first
    sae.zero_grad()
    out = sae.loss(x)
    assert out["dead"].item() > 0 and out["aux"].item() > 0
    out["loss"].backward()
    # the dead latents' encoder columns get gradient only through AuxK (they are outside the top-k)
    assert sae.W_enc.grad[:, :32].abs().sum() > 0


def test_topk_decodes_with_unit_directions_and_carries_the_norm_in_the_code():
    sae = _sae("topk", k=3)
    x = _x()
    sae.init_from_data(x)
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.full((64,), 0.1))  # rows start at norm 0.1
    torch.testing.assert_close(sae.decoder().norm(dim=1), torch.ones(64))
    with torch.no_grad():
        sae.W_dec[5].mul_(7.0)  # a row's norm scales its pre-activation, not its decoded direction
    xn = x * sae.input_scale
    raw = (xn - sae.b_dec) @ sae.W_enc + sae.b_enc
    torch.testing.assert_close(sae.pre_acts(xn)[:, 5], raw[:, 5] * sae.W_dec[5].norm())
    f = sae.encode(x)
    torch.testing.assert_close(sae.decode(f), (f @ sae.decoder() + sae.b_dec) / sae.input_scale)


@pytest.fixture
def store(tiny_tf, tmp_path):
    capture_store(tiny_tf["bert"], 1, tiny_tf["corpus"], tokens=1200, name="acts", atlas=tmp_path, shard_tokens=200, batch_size=4, progress=False)
    return tmp_path


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "jumprelu", "relu"])
def test_each_arch_trains_on_a_store_and_beats_the_mean(store, arch):
    run, res = train_sae("acts", arch, expansion=4, k=8, steps=150, batch_size=128, lr=3e-3, atlas=store, progress=False,
                         l0_coeff=0.01, l1_coeff=0.5)
    report = evaluate_sae(run, progress=False)
    m = report["metrics"]
    acts = Atlas(store).activations("acts")
    lo, hi = report["rows"]  # evaluated on the held-out tail: at least 5% of the tokens, from a document's start
    held = run.config()["data"]["holdout"]
    assert report["held_out"] and hi == acts.n_tokens and lo == held["from_row"] and hi - lo >= 0.05 * acts.n_tokens
    assert acts.document_start(lo)[0] == lo and not any("NOT HELD OUT" in n for n in report["notes"])
    assert m["fvu"]["value"] < 0.6, m["fvu"]
    assert 0 < m["l0"]["value"] < 128
    if arch == "topk":
        assert m["l0"]["value"] == pytest.approx(8, abs=1e-6)
    sae = load_model(run.path)
    assert sae.config.arch == arch
    # (a random-init BERT's LayerNorm output already has norm ≈ √d, so its input scale is ≈ 1)
    assert sae.input_scale.item() == pytest.approx(1.0, rel=0.05)


def test_batchtopk_threshold_is_saved_with_the_weights(store):
    run, _ = train_sae("acts", "batchtopk", expansion=2, k=4, steps=40, batch_size=64, atlas=store, progress=False)
    sae = load_model(run.path)
    assert sae.threshold.item() > 0


def test_resume_after_a_crash_is_bitwise_identical(store):
    kw = dict(expansion=2, k=4, steps=40, batch_size=64, checkpoint_every=10, atlas=store, progress=False)
    straight, _ = train_sae("acts", "topk", name="straight", **kw)

    class Crash(Exception):
        pass

    def crash(step):
        if step == 27:
            raise Crash

    with pytest.raises(Crash):
        train_sae("acts", "topk", name="crashed", on_step=crash, **kw)
    run, res = train_sae("acts", "topk", name="crashed", resume=True, atlas=store, progress=False)
    assert res.resumed_from == 20
    a, b = load_model(straight.path).state_dict(), load_model(run.path).state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_sigkill_then_resume_through_the_cli(store):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "latentatlas.cli", "sae", "train", "--activations", "acts", "--expansion", "2", "--k", "4",
            "--steps", "400", "--batch-size", "64", "--checkpoint-every", "10", "--atlas", str(store), "--quiet"]
    subprocess.run([*base, "--name", "straight"], check=True, env=env, capture_output=True)
    target = random.Random().randint(20, 300)
    proc = subprocess.Popen([*base, "--name", "killed"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sigkill_at_checkpoint(proc, store / "runs" / "killed" / "checkpoint" / "latest.json", target)
    out = subprocess.run([*base, "--name", "killed", "--resume"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "resumed from step" in out.stdout
    a = load_model(store / "runs" / "straight").state_dict()
    b = load_model(store / "runs" / "killed").state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_gradient_norm_is_clipped_by_default_and_can_be_turned_off(store):
    clipped, _ = train_sae("acts", "topk", expansion=2, k=4, steps=20, batch_size=64, atlas=store, progress=False, name="clip")
    free, _ = train_sae("acts", "topk", expansion=2, k=4, steps=20, batch_size=64, atlas=store, progress=False, name="free",
                        grad_clip=None)
    assert clipped.config()["train"]["grad_clip"] == 1.0 and free.config()["train"]["grad_clip"] is None
    assert clipped.config()["data"]["shuffle"] == "global"
    # same seed, same batches: only the clipping differs, and it changes the trajectory
    assert not torch.equal(clipped.load_model().W_dec, free.load_model().W_dec)


def test_eval_against_a_store_of_another_width_is_refused(store, tiny_tf):
    run, _ = train_sae("acts", "topk", expansion=2, k=4, steps=5, batch_size=64, atlas=store, progress=False)
    capture_store(tiny_tf["gpt2"], 0, tiny_tf["corpus"], tokens=100, name="g", atlas=store, progress=False)
    # both tiny models are 32 wide: make a truly different width by capturing the BERT's attention output
    capture_store(tiny_tf["bert"], "encoder.layer.0.intermediate", tiny_tf["corpus"], tokens=100, name="wide", atlas=store, progress=False)
    with pytest.raises(LatentAtlasError, match="expects activations of width 32, but store 'wide' holds width 64"):
        evaluate_sae(run, activations="wide", progress=False)
    with pytest.raises(LatentAtlasError, match="store 'nope' was not found"):
        train_sae("nope", "topk", atlas=store, progress=False)
    with pytest.raises(LatentAtlasError, match="is not an SAE architecture"):
        train_sae("acts", "gated", atlas=store, progress=False)


def test_splicing_the_identity_is_perfect_and_a_bad_sae_is_not(tiny_tf, store):
    """Downstream fidelity on known cases: an SAE that reconstructs exactly leaves the model unchanged."""
    from latentatlas.labs.sae.fidelity import causal_fidelity, encoder_fidelity
    from latentatlas.models.hf import load_transformer

    class Exact(torch.nn.Module):
        def forward(self, x):
            return x, x

    class Zero(torch.nn.Module):
        def forward(self, x):
            return torch.zeros_like(x), x

    texts = [f"document number {i} is about {w}" for i, w in enumerate(["cats", "dogs", "code", "files", "lists", "maps"] * 3)]
    bert = load_transformer(tiny_tf["bert"])
    mean = torch.zeros(32)
    good = encoder_fidelity(bert.model, bert.tokenizer, "encoder.layer.1", Exact(), texts, mean=mean, batch_size=5)
    assert good["embedding_cosine"].value == pytest.approx(1.0, abs=1e-5)
    assert good["neighbour_overlap"].value == 1.0
    bad = encoder_fidelity(bert.model, bert.tokenizer, "encoder.layer.0", Zero(), texts, mean=mean, batch_size=5)
    assert bad["embedding_cosine"].value < 0.999
    gpt2 = load_transformer(tiny_tf["gpt2"])
    g = causal_fidelity(gpt2.model, gpt2.tokenizer, "transformer.h.0", Exact(), texts, batch_size=4, prepend_bos=True)
    assert g["ce_loss_recovered"].value == pytest.approx(1.0, abs=1e-5)
    assert g["kl_to_original"].value == pytest.approx(0.0, abs=1e-6)
    assert g["ce_sae"].value == pytest.approx(g["ce_orig"].value, rel=1e-6)
    z = causal_fidelity(gpt2.model, gpt2.tokenizer, "transformer.h.0", Zero(), texts, batch_size=4, prepend_bos=True)
    assert z["ce_loss_recovered"].value == pytest.approx(0.0, abs=1e-6)  # splicing zeros is the zero ablation
    assert z["kl_to_original"].value > 0


def test_sae_eval_reports_downstream_fidelity(store):
    run, _ = train_sae("acts", "topk", expansion=2, k=4, steps=60, batch_size=64, lr=3e-3, atlas=store, progress=False)
    report = evaluate_sae(run, progress=False)
    m = report["metrics"]
    assert -1 <= m["embedding_cosine"]["value"] <= 1 and 0 <= m["neighbour_overlap"]["value"] <= 1
    assert "embedding_cosine_mean_ablation" in m and m["embedding_cosine"]["n"] == m["neighbour_overlap"]["n"]


def test_topk_sparse_decoding_equals_the_dense_computation():
    """The training loss decodes TopK codes with embedding_bag; it must equal f @ W_dec, values and gradients."""
    sae = _sae("topk", k=5, dead_tokens=10)
    x = _x()
    sae.init_from_data(x)
    with torch.no_grad():
        sae.tokens_since_fired[:20] = 100  # some dead latents, so AuxK runs too
    sae.eval()
    out = sae.loss(x)
    out["loss"].backward()
    sparse_grads = {n: p.grad.clone() for n, p in sae.named_parameters()}
    sae.zero_grad()
    xn = x * sae.input_scale
    pre = sae.pre_acts(xn)
    f = sae.activate(pre)
    err = xn - (f @ sae.decoder() + sae.b_dec)
    mse = err.pow(2).sum(-1).mean()
    dead = sae.tokens_since_fired >= 10
    masked = torch.where(dead, pre, torch.full_like(pre, -torch.inf))
    v, i = torch.topk(masked, min(sae.config.aux_k, int(dead.sum())), dim=-1)
    e = err.detach()
    e_hat = torch.zeros_like(pre).scatter(-1, i, torch.relu(v)) @ sae.decoder()
    aux = min(int(dead.sum()) / sae.config.aux_k, 1.0) * (e - e_hat).pow(2).sum(-1).mean()
    dense = mse + sae.config.aux_coeff * aux
    dense.backward()
    assert out["loss"].item() == pytest.approx(dense.item(), rel=1e-5)
    assert out["mse"].item() == pytest.approx(mse.item(), rel=1e-5)
    for n, p in sae.named_parameters():
        torch.testing.assert_close(sparse_grads[n], p.grad, rtol=1e-4, atol=1e-5)


def test_a_small_store_still_holds_out_a_token_range_and_training_never_sees_it(tiny_tf, tmp_path):
    # two shards: the shard-based holdout of before held nothing out here
    store = capture_store(tiny_tf["bert"], 1, tiny_tf["corpus"], tokens=400, name="two", atlas=tmp_path, shard_tokens=200, batch_size=4,
                          progress=False)
    assert len(store.shards) == 2
    run, _ = train_sae("two", "topk", expansion=2, k=4, steps=5, batch_size=64, atlas=tmp_path, progress=False)
    held = run.config()["data"]["holdout"]
    assert 0 < held["tokens"] < 0.5 * store.n_tokens and held["from_row"] + held["tokens"] == store.n_tokens
    source = ShuffledBatches(store, 64, 0, stop=held["from_row"])
    assert max(source.indices(t).max() for t in range(20)) < held["from_row"]
    report = evaluate_sae(run, progress=False, downstream=False, features=False)
    assert report["held_out"] and report["rows"] == [held["from_row"], store.n_tokens]
    assert report["n"] == held["tokens"]


def test_no_holdout_is_said_loudly_and_a_tiny_store_is_refused(tiny_tf, tmp_path):
    store = capture_store(tiny_tf["bert"], 1, tiny_tf["corpus"], tokens=400, name="two", atlas=tmp_path, shard_tokens=200, batch_size=4,
                          progress=False)
    run, _ = train_sae("two", "topk", expansion=2, k=4, steps=5, batch_size=64, atlas=tmp_path, progress=False, holdout=0, name="all")
    report = evaluate_sae(run, progress=False, downstream=False, features=False)
    assert not report["held_out"] and report["rows"] == [0, store.n_tokens] and report["notes"][0].startswith("NOT HELD OUT")
    # a store of one document cannot be cut at a document boundary
    (tmp_path / "one.txt").write_text("the one document of this corpus, long enough to make a few dozen tokens of activations " * 3)
    capture_store(tiny_tf["bert"], 1, str(tmp_path / "one.txt"), tokens=400, name="one", atlas=tmp_path, batch_size=4, progress=False)
    with pytest.raises(LatentAtlasError, match="'one' .* too small to hold out 5%.*--holdout 0"):
        train_sae("one", "topk", expansion=2, k=4, steps=5, batch_size=64, atlas=tmp_path, progress=False, name="single")
    assert not Atlas(tmp_path).has_run("single")

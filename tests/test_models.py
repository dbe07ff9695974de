import json
import math
import pickle

import pytest
import torch

from latentatlas.errors import LatentAtlasError
from latentatlas.models import VAE, VAE_KINDS, VAEConfig, build, config_from_dict, load_model, save_model


@pytest.mark.parametrize("kind", VAE_KINDS)
@pytest.mark.parametrize("shape", [(1, 64, 64), (1, 8, 8), (3, 16, 16), (20,)])
def test_every_kind_trains_one_step_on_every_arch(kind, shape):
    torch.manual_seed(0)
    model = VAE(VAEConfig(kind=kind, input_shape=shape, latent_dim=4, hidden=32, dataset_size=1000))
    x = torch.rand(8, *shape)
    out = model.loss(x)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads)
    mu, logvar = model.encode(x)
    assert mu.shape == (8, 4)
    assert (logvar is None) == (kind == "ae")
    assert model.decode_mean(mu).shape == (8, *shape)
    decoded = model.decode_mean(mu).detach()
    assert float(decoded.min()) >= 0 and float(decoded.max()) <= 1


def test_conv_is_chosen_for_64px_and_mlp_for_digits():
    assert VAEConfig(input_shape=(1, 64, 64)).arch == "conv"
    assert VAEConfig(input_shape=(1, 8, 8)).arch == "mlp"
    with pytest.raises(ValueError):
        VAEConfig(input_shape=(1, 20, 20), arch="conv")


def test_kind_defaults_for_beta():
    assert VAEConfig(kind="vae").beta == 1.0
    assert VAEConfig(kind="beta_vae").beta == 4.0
    assert VAEConfig(kind="beta_tcvae", dataset_size=10).beta == 6.0
    assert VAEConfig(kind="beta_vae", beta=2.5).beta == 2.5


def test_vae_kl_term_matches_torch_distributions():
    torch.manual_seed(1)
    model = VAE(VAEConfig(kind="vae", input_shape=(10,), latent_dim=3, hidden=16))
    x = torch.rand(16, 10)
    out = model.loss(x)
    mu, logvar = model.encode(x)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(1).mean()
    assert torch.allclose(out["kl"], expected, atol=1e-5)


def test_beta_weights_the_kl():
    torch.manual_seed(2)
    cfg = dict(input_shape=(10,), latent_dim=3, hidden=16)
    a = VAE(VAEConfig(kind="beta_vae", beta=5.0, **cfg))
    x = torch.rand(16, 10)
    torch.manual_seed(3)
    out = a.loss(x)
    assert torch.allclose(out["loss"], out["recon"] + 5.0 * out["kl"], atol=1e-4)


def test_tc_decomposition_sums_to_the_sampled_kl():
    """MWS terms: MI + TC + dimKL = E[log q(z|x) − log p(z)] exactly (the three telescope)."""
    torch.manual_seed(4)
    model = VAE(VAEConfig(kind="beta_tcvae", input_shape=(10,), latent_dim=4, hidden=16, dataset_size=500))
    x = torch.rand(32, 10)
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    mi, tc, dwkl = model.tc_decomposition(z, mu, logvar)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(1)
    p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    assert torch.allclose(mi + tc + dwkl, (q - p).mean(), atol=1e-4)


def test_tc_is_near_zero_for_factorised_codes_and_large_for_correlated_ones():
    """The paper's MWS normalises by log(N·M), which shifts TC by exactly (D−1)·log N (a constant: no
    effect on gradients). With the shift removed, independent codes give TC ≈ 0."""
    torch.manual_seed(5)
    model = VAE(VAEConfig(kind="beta_tcvae", input_shape=(10,), latent_dim=2, hidden=16, dataset_size=2000))
    n = 2000
    logvar = torch.full((n, 2), math.log(0.01))
    mu_ind = torch.randn(n, 2)
    z_ind = mu_ind + 0.1 * torch.randn(n, 2)
    _, tc_ind, _ = model.tc_decomposition(z_ind, mu_ind, logvar)
    base = torch.randn(n, 1)
    mu_cor = torch.cat([base, base + 0.05 * torch.randn(n, 1)], 1)
    z_cor = mu_cor + 0.1 * torch.randn(n, 2)
    _, tc_cor, _ = model.tc_decomposition(z_cor, mu_cor, logvar)
    shift = (2 - 1) * math.log(2000)
    assert abs(float(tc_ind) - shift) < 0.15
    assert float(tc_cor) - shift > 1.0


def test_learned_decoder_variance_is_a_gaussian_nll_with_learned_gamma():
    torch.manual_seed(6)
    model = VAE(VAEConfig(kind="vae", input_shape=(12,), latent_dim=2, hidden=16, learned_variance=True))
    assert model.config.likelihood == "gaussian"
    with torch.no_grad():
        model.log_gamma.fill_(math.log(0.3))
    out = torch.rand(5, 12)
    x = torch.rand(5, 12)
    nll = model.recon_nll(out, x)
    expected = -torch.distributions.Normal(out, math.sqrt(0.3)).log_prob(x).sum(1)
    assert torch.allclose(nll, expected, atol=1e-4)
    loss = model.loss(x)["loss"]
    loss.backward()
    assert model.log_gamma.grad is not None and float(model.log_gamma.grad) != 0.0


def test_wrong_input_shape_is_one_sentence():
    model = VAE(VAEConfig(kind="vae", input_shape=(1, 8, 8), latent_dim=2, hidden=16))
    with pytest.raises(LatentAtlasError, match=r"expects \(1, 8, 8\)"):
        model.encode(torch.rand(2, 1, 64, 64))


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(7)
    model = VAE(VAEConfig(kind="beta_tcvae", input_shape=(1, 16, 16), latent_dim=3, hidden=32, dataset_size=100))
    save_model(model, tmp_path / "m", extra={"note": "x"})
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    assert meta["kind"] == "beta_tcvae" and meta["model"]["latent_dim"] == 3 and meta["note"] == "x"
    loaded = load_model(tmp_path / "m")
    x = torch.rand(4, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.eval().encode(x)[0], loaded.encode(x)[0])
    assert type(loaded) is VAE and loaded.config == model.config


def test_registry_rejects_unknown_kind_and_fields():
    with pytest.raises(LatentAtlasError, match="unknown model kind 'gan'"):
        config_from_dict("gan", {})
    with pytest.raises(LatentAtlasError, match="unknown field"):
        config_from_dict("vae", {"latent_dim": 2, "bogus": 1})
    assert build(config_from_dict("vae", {"input_shape": [1, 8, 8], "latent_dim": 2})).latent_dim == 2


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_MARKER",))


@pytest.mark.parametrize("suffix", [".pt", ".pkl", ".ckpt", ".pth"])
def test_pickle_checkpoints_are_refused_unopened(tmp_path, monkeypatch, suffix):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / f"model{suffix}"
    bad.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(LatentAtlasError, match="pickle-based checkpoint") as info:
        load_model(bad)
    assert str(bad) in str(info.value)
    assert not (tmp_path / "PWNED_MARKER").exists()


def _saved(tmp_path):
    model = VAE(VAEConfig(kind="vae", input_shape=(1, 8, 8), latent_dim=2, hidden=16))
    folder = save_model(model, tmp_path / "m")
    return folder


def test_truncated_weights_name_the_file_and_are_left_alone(tmp_path):
    folder = _saved(tmp_path)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    before = weights.read_bytes()
    with pytest.raises(LatentAtlasError, match="model.safetensors") as info:
        load_model(folder)
    assert "truncated or corrupt" in str(info.value)
    assert weights.read_bytes() == before


def test_garbage_weights_and_corrupt_config(tmp_path):
    folder = _saved(tmp_path)
    (folder / "model.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(LatentAtlasError, match="model.safetensors"):
        load_model(folder)
    folder = _saved(tmp_path / "b")
    (folder / "config.json").write_text('{"kind": "vae", "model": {')
    with pytest.raises(LatentAtlasError, match="config.json.*not valid JSON"):
        load_model(folder)


def test_weights_of_another_shape_are_refused(tmp_path):
    folder = _saved(tmp_path)
    other = VAE(VAEConfig(kind="vae", input_shape=(1, 8, 8), latent_dim=5, hidden=16))
    from safetensors.torch import save_file

    save_file(other.state_dict(), str(folder / "model.safetensors"))
    with pytest.raises(LatentAtlasError, match="do not match"):
        load_model(folder)


def test_missing_folder(tmp_path):
    with pytest.raises(LatentAtlasError, match="does not exist"):
        load_model(tmp_path / "nope")

"""The flow models' samplers and parametrisation conversions on fields whose answers are known: the exact
velocity and ε of a Gaussian mixture (analysis.flow_exact), and networks that compute them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentatlas.analysis import flow_exact as fe
from latentatlas.analysis.sample_quality import energy_distance, energy_null
from latentatlas.data.toys import mixture_of
from latentatlas.errors import LatentAtlasError
from latentatlas.analysis.flow_exact import ExactField
from latentatlas.models.flow import FlowConfig, FlowModel, abar_of, fm_time_of
from latentatlas.models.samplers import SAMPLERS, sample, steps_for

MIX = mixture_of("three-modes")
N = 2000


@pytest.fixture(scope="module")
def noise():
    return torch.randn(N, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


@pytest.fixture(scope="module")
def target():
    return MIX.sample(N, np.random.default_rng(1))[0]


@pytest.fixture(scope="module")
def floor():
    """The energy distance's 95 % noise floor between two independent samples of N from the target."""
    return energy_null(lambda n, rng: MIX.sample(n, rng)[0], N, repeats=30, random_state=3)["quantile"]


def test_one_euler_step_of_the_exact_field_lands_every_sample_on_the_mixture_mean(noise):
    r = sample(ExactField(MIX), noise, "euler", 1)
    assert r.nfe == 1
    # v*(x, 0) = E[x1] − x, and one step of length 1 from t = 0 gives x + v = E[x1] for every x
    np.testing.assert_allclose(r.x.numpy(), np.broadcast_to(MIX.mean, (N, 2)), atol=1e-6)  # diffusers steps in float32


@pytest.mark.parametrize("sampler,nfe", [("midpoint", 8), ("euler", 16), ("ddim", 50), ("dpm++", 16)])
def test_exact_field_reaches_the_noise_floor(noise, target, floor, sampler, nfe):
    r = sample(ExactField(MIX), noise, sampler, nfe)
    ed = energy_distance(r.x, target, num_resamples=0)
    assert ed.value <= floor, f"{sampler} at {nfe} NFE: energy distance {ed.value:.4f} above the noise floor {floor:.4f}"


def test_too_few_steps_do_not_reach_the_floor(noise, target, floor):
    r = sample(ExactField(MIX), noise, "euler", 2)  # the negative control: the tests above can fail
    assert energy_distance(r.x, target, num_resamples=0).value > 3 * floor


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_nfe_is_counted_not_assumed(noise, sampler):
    calls = []

    class Counting(ExactField):
        def velocity(self, x, t):
            calls.append(1)
            return super().velocity(x, t)

        def eps(self, x, tau, abar):
            calls.append(1)
            return super().eps(x, tau, abar)

    r = sample(Counting(MIX), noise[:50], sampler, 9, trajectory=True)
    n = steps_for(sampler, 9)
    want = {"midpoint": 2 * n, "heun": 2 * n - 1}.get(sampler, n)
    assert r.nfe == len(calls) == want <= 9
    assert r.trajectory.shape[1:] == (50, 2) and r.trajectory.shape[0] == len(r.times)
    assert r.times[0] == 0 and r.times[-1] == pytest.approx(1.0) and np.all(np.diff(r.times) > 0)
    torch.testing.assert_close(r.trajectory[-1], r.x.to(r.trajectory.dtype))


def test_ddim_with_eta_one_is_ddpm_ancestral_sampling(noise):
    # with η = 1 DDIM's noise is DDPM's posterior std (Song et al. 2021, eq. 16), so the same noise draws
    # give the same samples
    a = sample(ExactField(MIX), noise[:200], "ddim-eta1", 20, seed=5).x
    b = sample(ExactField(MIX), noise[:200], "ddpm", 20, seed=5).x
    torch.testing.assert_close(a, b, rtol=0, atol=1e-4)  # the two schedulers' float32 arithmetic differs in the last bits
    c = sample(ExactField(MIX), noise[:200], "ddpm", 20, seed=6).x
    assert (a - c).abs().max() > 0.05


def test_bad_sampler_and_budget_are_sentences(noise):
    with pytest.raises(LatentAtlasError, match="sampler 'rk4' is not one of"):
        sample(ExactField(MIX), noise, "rk4", 10)
    with pytest.raises(LatentAtlasError, match="too few"):
        sample(ExactField(MIX), noise, "midpoint", 1)


def test_path_change_of_variables_round_trips():
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    abar, scale = abar_of(t)
    t2, scale2 = fm_time_of(abar)
    torch.testing.assert_close(t2, t)
    torch.testing.assert_close(scale2, scale)


class _ExactNet(torch.nn.Module):
    """A network that outputs the exact answer in ``objective``'s parametrisation, reading its time input
    as FlowModel feeds it (t for fm, τ/T for the VP objectives)."""

    def __init__(self, objective: str, abar: torch.Tensor):
        super().__init__()
        self.objective, self.abar = objective, abar.double()

    def forward(self, x, time):
        x = x.double()
        if self.objective == "fm":
            return fe.fm_velocity(MIX, x, time.double())
        tau = time.double() * len(self.abar)
        ab = torch.from_numpy(np.interp(tau.numpy(), np.arange(len(self.abar)), self.abar.numpy()))
        a, s = ab.sqrt(), (1 - ab).sqrt()
        eps = fe.vp_eps(MIX, x, a, s)
        if self.objective == "eps":
            return eps
        return a[:, None] * eps - s[:, None] * fe.vp_denoised(MIX, x, a, s)  # v = α ε − σ x1


@pytest.mark.parametrize("objective", ["fm", "eps", "v"])
def test_every_model_answers_in_both_parametrisations(objective):
    model = FlowModel(FlowConfig(objective=objective)).double()
    abar = model.abar if objective != "fm" else FlowModel(FlowConfig(objective="eps")).abar
    model.net = _ExactNet(objective, abar)
    pred = model.prediction()
    x = torch.from_numpy(np.random.default_rng(2).normal(size=(64, 2)) * 2)
    for t in (0.2, 0.5, 0.8):
        torch.testing.assert_close(pred.velocity(x, t), fe.fm_velocity(MIX, x, torch.full((64,), t, dtype=torch.float64)),
                                   rtol=2e-3, atol=2e-3)
    for tau in (100, 400, 800):
        ab = abar[tau].double()
        want = fe.vp_eps(MIX, x, ab.sqrt(), (1 - ab).sqrt())
        torch.testing.assert_close(pred.eps(x, torch.tensor(float(tau)), ab), want, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("objective", ["fm", "eps", "v"])
def test_loss_is_the_squared_error_of_the_objective_target(objective):
    torch.manual_seed(0)
    model = FlowModel(FlowConfig(objective=objective, hidden=16))
    x1 = torch.from_numpy(MIX.sample(256, np.random.default_rng(0))[0])
    loss = model.loss(x1)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    # a reflow batch carries its own x0: with x1 = x0 the fm target is 0 and the loss is ‖v(x0, t)‖²
    if objective == "fm":
        pairs = torch.cat([x1, x1], dim=1)
        torch.manual_seed(1)
        got = model.loss(pairs)["loss"]
        torch.manual_seed(1)
        t = torch.rand(256)
        want = (model(x1, t) ** 2).sum(-1).mean()
        torch.testing.assert_close(got, want)

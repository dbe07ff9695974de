"""The steering-effect score (analysis/steering.py) on pools whose answer is worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from latentatlas.analysis.steering import percentile_ranks, steering_effect, target_rank


def _circle(degrees):
    a = np.radians(np.asarray(degrees, dtype=float))
    return np.stack([np.cos(a), np.sin(a)], 1)


# five documents on the unit circle at 0°, 45°, 90°, 135°, 180°; the targets are the two at 90° and 135°
POOL = _circle([0, 45, 90, 135, 180])
TARGETS = np.array([2, 3])


def test_percentile_ranks_order_the_pool_by_cosine():
    # seen from 0°: cosines 1, .71, 0, -.71, -1, so ranks 4/4, 3/4, 2/4, 1/4, 0
    np.testing.assert_allclose(percentile_ranks(_circle([0]), POOL)[0], [1, 0.75, 0.5, 0.25, 0])
    # seen from 112.5° (between the targets): the targets are the two nearest
    np.testing.assert_allclose(percentile_ranks(_circle([112.5]), POOL)[0][TARGETS], [0.75, 1.0], atol=1e-12)
    assert target_rank(_circle([0]), POOL, TARGETS)[0] == pytest.approx((0.5 + 0.25) / 2)


def test_turning_towards_the_targets_scores_their_rise_and_beats_turning_away():
    base = _circle([0])
    # row 0 turns to 112.5° (targets rank 0.75 and 1), the controls turn to -45° and to 10° (no change)
    steered = _circle([112.5, -45, 10])
    got = steering_effect(POOL, TARGETS, base, steered)
    assert got["target_rank_before"] == pytest.approx(0.375)
    assert got["effect"] == pytest.approx(0.875 - 0.375)
    # from -45°: cosines to 0..180° are .71, 0, -.71, -1, -.71 (ties broken by order) -> the targets rank lower
    from_m45 = target_rank(_circle([-45]), POOL, TARGETS)[0] - 0.375
    assert from_m45 < 0
    assert got["control_mean"] == pytest.approx(from_m45 / 2)
    assert got["p"] == pytest.approx(1 / 3)  # neither control reaches the effect: (1 + 0) / (2 + 1)


def test_no_push_is_no_effect_and_an_unremarkable_p():
    base = _circle([30])
    got = steering_effect(POOL, TARGETS, base, np.repeat(base, 9, 0))
    assert got["effect"] == 0 and got["control_mean"] == 0 and got["control_low"] == got["control_high"] == 0
    assert got["p"] == 1.0  # every control ties the effect


def test_a_random_direction_in_many_dimensions_rarely_beats_one_aimed_at_the_targets():
    rng = np.random.default_rng(0)
    pool = rng.standard_normal((400, 64))
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)
    targets = np.arange(10)
    aim = pool[targets].mean(0)
    aim /= np.linalg.norm(aim)
    base = rng.standard_normal(64)
    base /= np.linalg.norm(base)
    rand = rng.standard_normal((32, 64))
    rand /= np.linalg.norm(rand, axis=1, keepdims=True)
    dirs = np.concatenate([aim[None], rand])
    steered = base + 0.8 * dirs
    steered /= np.linalg.norm(steered, axis=1, keepdims=True)
    got = steering_effect(pool, targets, base[None], steered)
    assert got["effect"] > 0.3 and got["effect"] > got["control_high"] and got["p"] == pytest.approx(1 / 33)
    assert abs(got["control_mean"]) < 0.1

"""Warnings for implausible Q-values and TD losses, on hand-made metric rows (no training)."""

from __future__ import annotations

import math

import pytest

from purejax_ad.config import Config
from purejax_ad.divergence import REWARD_BOUNDS, ValueWatch, reward_bound, value_limits, value_warnings
from purejax_ad.dmc import DMC_ENVS
from purejax_ad.envs import CONTINUOUS_ENVS, ENV_REGISTRY


def row(seed, env_steps, q, loss, config=0):
    """A metrics.csv row with per-layer ``q`` and ``loss`` lists (as RunWriter writes them)."""
    r = {"config": config, "seed": seed, "env_steps": env_steps, "episodic_return": 20.0}
    r.update({f"td_loss_l{i + 1}": v for i, v in enumerate(loss)})
    r.update({f"q_mean_l{i + 1}": v for i, v in enumerate(q)})
    return r


def test_limits_follow_the_reward_bound_and_the_discount():
    # CartPole: r_max 1, gamma 0.99: returns <= 100; flagged beyond 10x (Q) and its square (loss).
    q_limit, loss_limit = value_limits(Config(), 0.99)
    assert q_limit == pytest.approx(1000.0) and loss_limit == pytest.approx(1e6)
    assert value_limits(Config(), 0.9) == pytest.approx((100.0, 1e4))
    assert value_limits(Config(), 1.0) is None  # no discounted bound
    small = value_limits(Config(), 0.0)  # scale 1, limit 10: the loss limit is max(10^2, 10)
    assert small == pytest.approx((10.0, 100.0))
    assert reward_bound(Config(env="dmc/cartpole-balance", action_repeat=2)) == 2.0  # [0, 1] per control step
    assert reward_bound(Config(env="MinAtar/Seaquest-v1")) == 10.0  # an alias resolves


def test_every_registered_env_has_a_reward_bound():
    for env in [*ENV_REGISTRY, *CONTINUOUS_ENVS]:
        assert REWARD_BOUNDS[env] > 0, env
    assert all(reward_bound(Config(env=env)) == 1.0 for env in list(DMC_ENVS)[:3])


def test_the_first_implausible_row_of_each_seed_and_layer_is_flagged_once():
    rows = [
        row(0, 800, q=[990.0, -1010.0], loss=[9.9e5, 1.0]),  # layer 1 just inside its limits; layer 2 Q beyond
        row(1, 800, q=[math.nan, 5.0], loss=[math.inf, 1.0]),  # non-finite: the NaN/Inf check reports those
        row(0, 1200, q=[1.0, -5000.0], loss=[2e6, 1.0]),  # layer 1 loss beyond; layer 2 already flagged
        row(1, 1200, q=[1e4, 5.0], loss=[1e8, 1.0]),  # both beyond: Q is named
    ]
    got = [(w["seed"], w["layer"], w["env_steps"], w["metric"], w["value"]) for w in value_warnings(Config(), rows)]
    assert got == [(0, 2, 800, "q_mean", -1010.0), (0, 1, 1200, "td_loss", 2e6), (1, 1, 1200, "q_mean", 1e4)]
    first = value_warnings(Config(), rows)[0]
    assert first["limit"] == pytest.approx(1000.0) and first["config"] == 0
    assert first["message"].startswith("seed 0, layer 2: mean Q -1.01e+03 at env step 800 is beyond the "
                                       "plausible 1e+03")


def test_a_watch_flags_each_pair_once_across_chunks_and_after_a_resume():
    chunk1 = [row(0, 800, q=[2000.0], loss=[1.0])]
    chunk2 = [row(0, 1200, q=[3000.0], loss=[1.0]), row(1, 1200, q=[3000.0], loss=[1.0])]
    watch = ValueWatch(Config())
    assert [w["seed"] for w in watch.check(chunk1)] == [0]
    assert [w["seed"] for w in watch.check(chunk2)] == [1]
    resumed = ValueWatch(Config(), chunk1)  # a resumed run has seen chunk1 already
    assert [w["seed"] for w in resumed.check(chunk2)] == [1]


def test_each_sweep_config_uses_its_own_discount():
    config = Config(num_seeds=1, sweep=(("gamma", (0.99, 0.9)),))
    rows = [row(0, 800, q=[150.0], loss=[1.0], config=0), row(0, 800, q=[150.0], loss=[1.0], config=1)]
    (w,) = value_warnings(config, rows)  # gamma 0.9: limit 100; gamma 0.99: limit 1000
    assert (w["config"], w["limit"]) == (1, pytest.approx(100.0))
    assert w["message"].startswith("seed 0 of sweep config 1, layer 1:")

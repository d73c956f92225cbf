"""Monte-Carlo returns of replayed episodes and the critic-return correlation (purejax_ad/diagnostics.py),
against a plain-Python walk over each lane's steps in time order and numpy's ``corrcoef``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejax_ad.diagnostics import critic_return_correlation, discounted_returns, sample_with_returns
from purejax_ad.replay import ObsCodec, StoredStep, make_replay, pack_flags

LANES, CAPACITY_PER_LANE, GAMMA = 2, 12, 0.9


def filled(num_steps: int, seed: int = 0, p_end: float = 0.15):
    """A buffer of 2 lanes after ``num_steps`` steps (wrapping when > 12); each step's observation is
    ``[lane, t]`` (its absolute time), so a sample tells which step it is. Returns the buffer and, per lane, the
    rewards and end flags of every step added, in time order."""
    rng = np.random.default_rng(seed)
    replay = make_replay(ObsCodec(2, "float32"), LANES, LANES * CAPACITY_PER_LANE, 8, 1, max_episode_steps=5)
    example = StoredStep(jnp.zeros((2,)), jnp.zeros((1,)), jnp.zeros(()), jnp.zeros((), jnp.uint8), ())
    state = replay.init(example)
    rewards = rng.normal(size=(LANES, num_steps)).astype(np.float32)
    terminated = rng.random((LANES, num_steps)) < p_end
    truncated = ~terminated & (rng.random((LANES, num_steps)) < 2 * p_end / 3)
    for t in range(num_steps):
        obs = jnp.asarray([[lane, t] for lane in range(LANES)], jnp.float32)
        flags = pack_flags(jnp.asarray(terminated[:, t]), jnp.asarray(truncated[:, t]), jnp.zeros(LANES, bool))
        step = StoredStep(obs, jnp.full((LANES, 1), t / 100, jnp.float32), jnp.asarray(rewards[:, t]), flags, ())
        state = replay.add(state, step, obs)
    return replay, state, rewards, terminated | truncated


def python_returns(rewards, ended, first):
    """``{(lane, t): G_t}`` for the steps ``t >= first`` whose episode ends at or before the newest step."""
    out = {}
    for lane in range(rewards.shape[0]):
        for t in range(first, rewards.shape[1]):
            g, discount = 0.0, 1.0
            for u in range(t, rewards.shape[1]):
                g += discount * rewards[lane, u]
                discount *= GAMMA
                if ended[lane, u]:
                    out[(lane, t)] = g
                    break
    return out


@pytest.mark.parametrize("num_steps", [9, 30], ids=["partly filled", "wrapped"])
def test_sampled_returns_are_the_monte_carlo_returns_of_complete_episodes(num_steps):
    replay, state, rewards, ended = filled(num_steps)
    first = max(0, num_steps - CAPACITY_PER_LANE)  # older steps were overwritten
    expected = python_returns(rewards, ended, first)
    assert expected and len(expected) < LANES * (num_steps - first)  # some steps are not complete: excluded
    batch, returns, any_complete = jax.jit(sample_with_returns, static_argnums=(0, 3))(
        replay, state, jax.random.key(1), 400, jnp.float32(GAMMA))
    assert bool(any_complete)
    seen = set()
    for obs, action, g in zip(np.asarray(batch.obs), np.asarray(batch.action), np.asarray(returns)):
        lane, t = int(obs[0]), int(obs[1])
        assert (lane, t) in expected, f"step {(lane, t)} has no complete episode in the buffer"
        np.testing.assert_allclose(g, expected[(lane, t)], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(action, [t / 100], rtol=1e-6)
        seen.add((lane, t))
    assert len(seen) > 0.8 * len(expected)  # uniform over the complete steps: nearly all are drawn


def test_without_a_complete_episode_nothing_counts():
    replay, state, rewards, ended = filled(20, p_end=0.0)
    _, _, any_complete = sample_with_returns(replay, state, jax.random.key(0), 16, jnp.float32(GAMMA))
    assert not bool(any_complete)
    values = (jnp.ones((16, 2)),)
    assert np.isnan(np.asarray(critic_return_correlation(values, jnp.arange(16.0), any_complete))).all()


def test_discounted_returns_by_hand():
    # One lane: rewards 1, 2, 3, 4 with the episode ending after the 2nd step; the 4th slot is empty.
    reward = jnp.asarray([[1.0, 2.0, 3.0, 4.0]])
    ended = jnp.asarray([[False, True, False, False]])
    valid = jnp.asarray([[True, True, True, False]])
    g, complete = discounted_returns(reward, ended, valid, jnp.float32(0.5))
    np.testing.assert_allclose(np.asarray(g)[0, :3], [1 + 0.5 * 2, 2, 3])
    assert np.asarray(complete).tolist() == [[True, True, False, False]]


def test_correlation_is_each_critics_pearson_averaged_per_layer():
    rng = np.random.default_rng(0)
    returns = rng.normal(size=64)
    layer1 = np.stack([returns + rng.normal(size=64) * s for s in (0.1, 1.0, 3.0)], axis=1)
    layer2 = np.stack([-returns, np.full(64, 2.0)], axis=1)  # anti-correlated, and a constant critic (left out)
    got = np.asarray(critic_return_correlation((jnp.asarray(layer1), jnp.asarray(layer2)), jnp.asarray(returns),
                                               jnp.asarray(True)))
    want1 = np.mean([np.corrcoef(layer1[:, j], returns)[0, 1] for j in range(3)])
    np.testing.assert_allclose(got, [want1, -1.0], rtol=1e-5)

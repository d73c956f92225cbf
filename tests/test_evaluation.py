"""Per-layer evaluation (docs/algorithm.md §Evaluation): prefix-mean policies, epsilon-greedy, returns on a probe env."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejax_ad.algos import algo_spec
from purejax_ad.evaluation import epsilon_greedy, evaluate
from purejax_ad.network import ADNetwork, prefix_mean_weights
from purejax_ad.q_learning import QLearningAgent

from _helpers import probe_config, probe_environment, random_params


def _agent(network, env, epsilon: float, advance: bool) -> QLearningAgent:
    """The ad-dqn agent with ``network`` as its network and the given evaluation epsilon / quirk Q2."""
    config = probe_config(network.net_arch, num_heads=network.num_heads, eval_epsilon=epsilon,
                          advance_context_on_random_action=advance)
    agent = QLearningAgent(config, env, algo_spec("ad-dqn"))
    agent.network = network
    return agent


def test_prefix_mean_weights_hand_values():
    np.testing.assert_allclose(np.asarray(prefix_mean_weights(3)),
                               [[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(prefix_mean_weights(1)), [[1.0]])


def test_epsilon_greedy():
    q = jax.random.normal(jax.random.key(0), (4000, 3))
    greedy = np.argmax(np.asarray(q), axis=-1)
    act = jax.jit(epsilon_greedy)
    action, explored = act(jax.random.key(1), q, 0.0)
    np.testing.assert_array_equal(np.asarray(action), greedy)
    assert not np.any(np.asarray(explored))

    action, explored = act(jax.random.key(2), q, 1.0)
    assert np.all(np.asarray(explored))
    counts = np.bincount(np.asarray(action), minlength=3)
    assert np.all(np.abs(counts - 4000 / 3) < 150), counts  # uniform over the actions (about 5 sigma)

    action, explored = act(jax.random.key(3), q, 0.3)
    action, explored = np.asarray(action), np.asarray(explored)
    assert abs(explored.mean() - 0.3) < 0.04
    np.testing.assert_array_equal(action[~explored], greedy[~explored])
    assert action.dtype == np.int32


NETWORK = ADNetwork(obs_size=3, num_outputs=2, net_arch=(6, 5), num_heads=2)


def _reference_returns(params, max_steps: int) -> np.ndarray:
    """Greedy episode of the fixed-start two-step probe for each policy 'mean of layers 1..i', by hand."""
    step = jax.jit(NETWORK.step)
    eye = np.eye(3, dtype=np.float32)
    q0, context, _ = step(params, jnp.asarray(eye[0]), NETWORK.initial_context())
    q1, _, _ = step(params, jnp.asarray(eye[2]), context)
    q0, q1 = np.asarray(q0), np.asarray(q1)
    returns = []
    for i in range(NETWORK.num_layers):
        a0 = np.argmax(q0[: i + 1].mean(axis=0))
        a1 = np.argmax(q1[: i + 1].mean(axis=0))
        ret = float(a0 == 0)
        if max_steps >= 2:
            ret += 1.0 if a1 == 1 else 0.5
        returns.append(ret)
    return np.array(returns)


def _params_with_distinct_prefix_policies():
    for seed in range(100):
        params = random_params(NETWORK, seed=seed, noise=0.5)
        ref = _reference_returns(params, max_steps=10)
        if ref[0] != ref[1]:
            return params, ref
    raise AssertionError("no seed with distinct per-layer policies")


@pytest.mark.parametrize("max_steps", [10, 1])
def test_evaluate_greedy_returns_per_prefix(max_steps):
    env = probe_environment(horizon=2, fixed_start=0)
    params, _ = _params_with_distinct_prefix_policies()
    expected = _reference_returns(params, max_steps)
    agent = _agent(NETWORK, env, epsilon=0.0, advance=False)
    run = jax.jit(lambda p, k: evaluate(agent, env, p, k, num_episodes=4, max_steps=max_steps))
    returns = np.asarray(run(params, jax.random.key(0)))
    assert returns.shape == (NETWORK.num_layers,)
    np.testing.assert_allclose(returns, expected, atol=1e-6)


def test_evaluate_random_policy_mean_return():
    """epsilon = 1 on the one-step probe: every policy is uniform, expected return 0.5."""
    env = probe_environment(horizon=1)
    network = ADNetwork(obs_size=2, num_outputs=2, net_arch=(4, 4), num_heads=2)
    params = random_params(network, seed=0)
    agent = _agent(network, env, epsilon=1.0, advance=True)
    returns = np.asarray(jax.jit(lambda k: evaluate(agent, env, params, k, num_episodes=800, max_steps=5))(
        jax.random.key(1)))
    np.testing.assert_allclose(returns, [0.5, 0.5], atol=0.07)  # std of the mean ~0.018

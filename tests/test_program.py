"""The training program: epsilon schedule, return bookkeeping, learning on probe environments with known
Q-values, determinism and single compilation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejax_ad.checks import validate
from purejax_ad.config import Config
from purejax_ad.replay import IS_FIRST, TERMINATED
from purejax_ad.program import make_program, mean_recent_return, record_returns
from purejax_ad.q_learning import epsilon_schedule

from _helpers import compiled_train, probe_config, probe_environment, probe_run, q_at

# ------------------------------------------------------------------------------------------------
# Epsilon schedule (docs/algorithm.md §Exploration).
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("step,expected", [(0, 1.0), (50, 1.0), (100, 1.0), (350, 0.55), (475, 0.325),
                                           (600, 0.1), (900, 0.1), (5000, 0.1)])
def test_epsilon_schedule(step, expected):
    config = Config(learning_starts=100, total_timesteps=1000, exploration_fraction=0.5, epsilon_start=1.0,
                    epsilon_end=0.1)
    # Hand values: decay over 0.5 * 1000 = 500 steps starting at step 100.
    assert float(epsilon_schedule(jnp.asarray(step, jnp.int32), config)) == pytest.approx(expected, abs=1e-6)


def test_epsilon_schedule_matches_spec_formula():
    config = Config(learning_starts=50_000, total_timesteps=5_000_000, exploration_fraction=0.1,
                    epsilon_start=1.0, epsilon_end=0.01)
    steps = np.array([0, 49_999, 50_000, 100_000, 300_000, 549_999, 550_000, 4_000_000])
    got = np.asarray(jax.vmap(lambda s: epsilon_schedule(s, config))(jnp.asarray(steps, jnp.int32)))
    # docs/algorithm.md §Exploration: max(start + (end - start) * max(t - learning_starts, 0) / (fraction * T), end).
    ref = np.maximum(1.0 + (0.01 - 1.0) * np.maximum(steps - 50_000, 0) / (0.1 * 5_000_000), 0.01)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Training-return ring buffer.
# ------------------------------------------------------------------------------------------------


def test_record_returns_hand_case():
    recent = jnp.asarray([7.0, 8.0, 9.0])
    # Two episodes already recorded; three envs end now -> slots 2, 0, 1 (wrapping).
    recent, count = record_returns(recent, jnp.asarray(2, jnp.int32), jnp.asarray([1.0, 2.0, 3.0, 4.0]),
                                   jnp.asarray([True, True, False, True]))
    np.testing.assert_array_equal(np.asarray(recent), [2.0, 4.0, 1.0])
    assert int(count) == 5
    assert float(mean_recent_return(recent, count)) == pytest.approx(7.0 / 3.0)


def test_mean_recent_return_empty_and_partial():
    recent = jnp.zeros((4,))
    assert np.isnan(float(mean_recent_return(recent, jnp.asarray(0, jnp.int32))))
    recent, count = record_returns(recent, jnp.asarray(0, jnp.int32), jnp.asarray([3.0, 5.0]),
                                   jnp.asarray([True, True]))
    assert int(count) == 2
    assert float(mean_recent_return(recent, count)) == pytest.approx(4.0)  # zeros of empty slots ignored


def test_record_returns_matches_python_reference():
    window, num_envs, steps = 5, 4, 30
    rng = np.random.default_rng(0)
    ended_all = rng.random((steps, num_envs)) < 0.4
    ended_all[3] = True  # several envs ending at once
    returns_all = rng.normal(size=(steps, num_envs)).astype(np.float32)

    record = jax.jit(record_returns)
    recent, count = jnp.zeros((window,), jnp.float32), jnp.asarray(0, jnp.int32)
    ref_ring, ref_history = np.zeros(window, np.float32), []
    for t in range(steps):
        recent, count = record(recent, count, jnp.asarray(returns_all[t]), jnp.asarray(ended_all[t]))
        for e in range(num_envs):  # reference: env order, one slot per finished episode
            if ended_all[t, e]:
                ref_ring[len(ref_history) % window] = returns_all[t, e]
                ref_history.append(returns_all[t, e])
        assert int(count) == len(ref_history)
        np.testing.assert_array_equal(np.asarray(recent), ref_ring)
        got_mean = float(mean_recent_return(recent, count))
        if ref_history:
            assert got_mean == pytest.approx(float(np.mean(ref_history[-window:])), rel=1e-5, abs=1e-6)
        else:
            assert np.isnan(got_mean)
    assert len(ref_history) > 2 * window  # the ring wrapped several times


# ------------------------------------------------------------------------------------------------
# Probe environments with known Q-values.
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("net_arch", [(16,), (16, 16)], ids=["1-layer", "2-layer"])
def test_one_step_probe_learns_known_q_values(net_arch):
    trainer, state, metrics = probe_run(net_arch, horizon=1, seed=0)
    q, _ = q_at(trainer.network, state.learner.params, np.eye(2))
    known = np.array([[1.0, 0.0], [0.0, 1.0]])  # Q(s_i, a) = 1[a == i]
    assert q.shape == (len(net_arch), 2, 2)
    for l in range(len(net_arch)):
        np.testing.assert_allclose(q[l], known, atol=0.15, err_msg=f"layer {l}")
    # Training episodes: one step each, so the episode count equals the env steps.
    np.testing.assert_array_equal(np.asarray(metrics.num_episodes), np.asarray(metrics.env_steps))
    # The greedy policy of every layer prefix collects the optimal return 1 (eval epsilon 0).
    returns = np.asarray(jax.jit(trainer.evaluate)(state, jax.random.key(1)))
    np.testing.assert_allclose(returns, np.ones(len(net_arch)), atol=1e-6)


def test_two_step_probe_learns_discounted_values():
    gamma = 0.9
    trainer, state, _ = probe_run((16, 16), horizon=2, seed=0, gamma=gamma)
    network, params = trainer.network, state.learner.params
    eye = np.eye(3)
    q0, context = q_at(network, params, eye[:2])  # first step, zero context: s_0 and s_1
    q1, _ = q_at(network, params, eye[[2, 2]], context)  # second step after s_0 / after s_1
    known0 = np.array([[1.0 + gamma, gamma], [gamma, 1.0 + gamma]])
    known1 = np.array([[0.5, 1.0], [0.5, 1.0]])
    for l in range(network.num_layers):
        np.testing.assert_allclose(q0[l], known0, atol=0.15, err_msg=f"first step, layer {l}")
        np.testing.assert_allclose(q1[l], known1, atol=0.15, err_msg=f"second step, layer {l}")
    returns = np.asarray(jax.jit(trainer.evaluate)(state, jax.random.key(1)))
    np.testing.assert_allclose(returns, [2.0, 2.0], atol=1e-6)


def test_train_is_deterministic_in_the_key():
    _, state_a, metrics_a = probe_run((16, 16), horizon=1, seed=0)  # shared with the probe test
    _, train = compiled_train((16, 16), horizon=1)
    state_b, metrics_b = train(jax.random.key(0))
    state_c, metrics_c = train(jax.random.key(7))
    for field in metrics_a._fields:
        np.testing.assert_array_equal(np.asarray(getattr(metrics_a, field)), np.asarray(getattr(metrics_b, field)),
                                      err_msg=field)
    for a, b in zip(jax.tree.leaves(state_a.learner.params), jax.tree.leaves(state_b.learner.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # A different key gives a different run.
    assert not np.array_equal(np.asarray(metrics_a.td_loss), np.asarray(metrics_c.td_loss))
    assert any(not np.array_equal(np.asarray(a), np.asarray(c))
               for a, c in zip(jax.tree.leaves(state_a.learner.params), jax.tree.leaves(state_c.learner.params)))


def test_train_chunk_compiles_once_over_seeds():
    config = probe_config((8,), learning_starts=20, total_timesteps=200, log_interval=20, batch_size=8,
                          buffer_size=200, target_update_interval=10)
    trainer = make_program(config, probe_environment(1))
    traces = 0

    def chunk(state):
        nonlocal traces
        traces += 1
        return trainer.train_chunk(state)

    keys = jax.random.split(jax.random.key(0), 2)
    states = jax.jit(jax.vmap(lambda k: trainer.warmup(trainer.init(k))))(keys)
    step_chunk = jax.jit(jax.vmap(chunk), donate_argnums=0)
    env_steps = []
    for _ in range(3):
        states, metrics = step_chunk(states)
        env_steps.append(np.asarray(metrics.env_steps))
    assert traces == 1
    # Each chunk advances both seeds by chunk_env_steps.
    start = config.warmup_iters * config.num_envs
    for i, steps in enumerate(env_steps):
        np.testing.assert_array_equal(steps, [start + (i + 1) * config.chunk_env_steps] * 2)
    # The two seeds are independent runs.
    assert not np.array_equal(*np.asarray(jax.tree.leaves(states.learner.params)[0]))


def test_probe_configs_are_valid():
    """The probe configs obey the config rules, so the tests above exercise supported settings."""
    assert validate(probe_config((16, 16))) == []
    assert validate(probe_config((16, 16), gamma=0.9)) == []


@pytest.mark.parametrize("advance", [True, False])
def test_actor_bookkeeping_and_stored_transitions(advance):
    """Warm-up on the two-step probe with 2 envs: stored transitions line up (o_t, a_t, r_t, o_{t+1}),
    is_first marks episode starts, the actor context is carried inside an episode and zeroed at its end,
    and with quirk Q2 (advance=False) all-random warm-up actions never advance the context."""
    config = probe_config((8, 6), num_envs=2, train_frequency=2, learning_starts=21, total_timesteps=60,
                          log_interval=10, batch_size=8, buffer_size=60, advance_context_on_random_action=advance)
    trainer = make_program(config, probe_environment(2))
    state = jax.jit(lambda k: trainer.warmup(trainer.init(k)))(jax.random.key(3))
    iters = config.warmup_iters
    assert iters == 11 and int(state.env_steps) == 22 and int(state.num_episodes) == 2 * 5

    exp = jax.device_get(state.buffer_state.steps.experience)
    codec = trainer.replay.codec
    obs_idx = np.argmax(np.asarray(codec.decode(exp.obs[:, :iters])), axis=-1)  # [env, t]
    action, reward = exp.action[:, :iters].astype(np.int32), exp.reward[:, :iters]
    first_step = np.arange(iters) % 2 == 0  # episodes are exactly two steps long
    np.testing.assert_array_equal((exp.flags[:, :iters] & IS_FIRST) > 0, np.broadcast_to(first_step, (2, iters)))
    np.testing.assert_array_equal((exp.flags[:, :iters] & TERMINATED) > 0, np.broadcast_to(~first_step, (2, iters)))
    assert np.all(obs_idx[:, first_step] < 2) and np.all(obs_idx[:, ~first_step] == 2)
    # o_{t+1} is not stored with the step: after a first step it is the next slot's observation (the second
    # step's); after a terminated step it is never read, and the sampled next observation is zero.
    window = jax.device_get(jax.jit(lambda s, k: trainer.replay._replace(batch_size=64).sample(
        s.buffer_state, k, s.actor.obs))(state, jax.random.key(0)))
    sampled_first = window.is_first[:, -1]
    assert sampled_first.any() and (~sampled_first).any()
    assert np.all(np.argmax(window.next_obs[sampled_first], axis=-1) == 2)
    assert np.all(window.next_obs[~sampled_first] == 0.0)
    expected_reward = np.where(first_step, (action == obs_idx).astype(np.float32), np.where(action == 1, 1.0, 0.5))
    np.testing.assert_array_equal(reward, expected_reward)

    # After 11 steps both envs sit at the second step of an episode.
    actor = jax.device_get(state.actor)
    np.testing.assert_array_equal(np.argmax(actor.obs, axis=-1), [2, 2])
    np.testing.assert_array_equal(actor.is_first, [False, False])
    np.testing.assert_array_equal(actor.episode_length, [1, 1])
    np.testing.assert_array_equal(actor.episode_return, reward[:, -1])
    if advance:
        # The carried context is the network's context after the episode's first observation, from zero
        # (it would differ had the context not been zeroed when the previous episode ended).
        network, params = trainer.network, state.learner.params
        start_obs = jnp.asarray(exp.obs[:, iters - 1])
        _, expected, _ = jax.jit(network.step)(params, start_obs, network.initial_context((2,)))
        for c, e in zip(actor.context, expected):
            np.testing.assert_allclose(c, np.asarray(e), rtol=1e-5, atol=1e-6)
            assert np.abs(c).sum() > 0
    else:
        assert all(np.all(c == 0.0) for c in actor.context)



def test_make_train_computes_the_runs_of_the_cli(tmp_path):
    """The Python API (``make_train`` vmapped over ``seed_keys``) gives the training returns that ``run`` writes."""
    import csv

    from purejax_ad.program import make_train
    from purejax_ad.run import run
    from purejax_ad.seeds import run_hyperparams, seed_keys

    config = Config(total_timesteps=1200, learning_starts=400, log_interval=400, eval_interval=800, num_seeds=2,
                    batch_size=16, net_arch=(8, 8), num_heads=2, context_size=3, num_eval_episodes=2,
                    eval_max_steps=50, out=str(tmp_path / "run"))
    run(config, progress=False)
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    written = np.array([[float(r["episodic_return"]) for r in rows if int(r["seed"]) == s] for s in range(2)])
    _, metrics = jax.jit(jax.vmap(make_train(config)))(seed_keys(config), run_hyperparams(config, 2))
    assert metrics.episodic_return.shape == written.shape == (2, config.num_chunks)
    np.testing.assert_allclose(np.asarray(metrics.episodic_return), written, rtol=1e-6)

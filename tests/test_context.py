"""Replayed context (docs/algorithm.md §Replayed context, quirk Q3): the unrolled contexts against an actor simulation and hand loops."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejax_ad.context import replayed_contexts, unroll_context
from purejax_ad.network import ADNetwork
from purejax_ad.replay import Window, prepare_sequences

from _helpers import random_params

S = 4  # context_size 3 -> sequences of 4 observations
N_STEPS = 10
EPISODE_STARTS = (0, 5)  # o_0 and o_5 start episodes; o_4 ends the first one


def _network(alpha: float) -> ADNetwork:
    return ADNetwork(obs_size=3, num_outputs=2, net_arch=(8, 6), num_heads=2, context_alpha=alpha)


def _observations(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(N_STEPS, 3)).astype(np.float32)


def _single_step(network, params):
    """Jitted one-observation forward pass: (x [obs], context of [d_l]) -> (q [L, A], new context)."""

    @jax.jit
    def step(x, context):
        q, new_context, _ = network.step(params, x, context)
        return q, new_context

    return step


def _actor_contexts(network, params, obs):
    """What the actor carries right before each o_t: zero at episode starts, else the previous step's context."""
    step = _single_step(network, params)
    context = network.initial_context()
    carried = []
    for t in range(N_STEPS):
        if t in EPISODE_STARTS:  # the previous step ended an episode: context = where(done, 0, new_context)
            context = jax.tree.map(jnp.zeros_like, context)
        carried.append(jax.tree.map(np.asarray, context))
        _, context = step(jnp.asarray(obs[t]), context)
    return carried


def _window(obs: np.ndarray, end: int, length: int = S) -> Window:
    """The sampled window of ``length`` steps ending at o_end, with is_first set at every episode start."""
    idx = np.arange(end - length + 1, end + 1)
    is_first = np.isin(idx, EPISODE_STARTS)
    return Window(
        obs=jnp.asarray(obs[idx]),
        action=jnp.zeros((length,), jnp.int32),
        reward=jnp.zeros((length,), jnp.float32),
        terminated=jnp.zeros((length,), bool),
        truncated=jnp.zeros((length,), bool),
        is_first=jnp.asarray(is_first),
        next_obs=jnp.asarray(obs[min(end + 1, N_STEPS - 1)]),
    )


def _stack(windows):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *windows)


# Windows ending at o_5..o_8 all contain the episode start o_5 (at positions 3, 2, 1, 0).
ENDS = (5, 6, 7, 8)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_zero_context_replay_equals_actor_context(alpha):
    network = _network(alpha)
    params = random_params(network, seed=1)
    obs = _observations()
    carried = _actor_contexts(network, params, obs)
    batch = prepare_sequences(_stack([_window(obs, e) for e in ENDS]), "zero_context")
    context_t, _ = jax.jit(lambda o, r: replayed_contexts(network, params, params, o, r))(batch.obs_seq, batch.reset)
    for b, end in enumerate(ENDS):
        for l in range(network.num_layers):
            np.testing.assert_allclose(np.asarray(context_t[l][b]), carried[end][l], rtol=1e-5, atol=1e-5,
                                       err_msg=f"window ending at {end}, layer {l}")
    # The episode-start window gives the zero context exactly, as the actor uses.
    assert all(np.all(np.asarray(c[0]) == 0.0) for c in context_t)
    # Sanity: the actor's context is not trivially zero elsewhere.
    assert np.abs(carried[7][0]).sum() > 0.1


def test_zero_context_differs_from_faithful_padding():
    """Control: at an episode start the faithful padding does NOT give the actor's zero context (docs/algorithm.md §Exploration)."""
    network = _network(1.0)
    params = random_params(network, seed=1)
    obs = _observations()
    window = _stack([_window(obs, 5)])
    for padding, expect_zero in (("zero_context", True), ("repeat_first", False)):
        batch = prepare_sequences(window, padding)
        context_t, _ = replayed_contexts(network, params, params, batch.obs_seq, batch.reset)
        assert bool(np.all(np.asarray(context_t[0]) == 0.0)) == expect_zero, padding


@pytest.mark.parametrize("end", ENDS)
def test_repeat_first_replay_equals_hand_unroll(end):
    """Faithful padding: context for o_t = unroll from zero over [O[m]]*m + O[m:S-1] (numpy index logic)."""
    network = _network(0.5)
    params = random_params(network, seed=2)
    target_params = random_params(network, seed=3)
    obs = _observations(1)
    window = _window(obs, end)
    batch = prepare_sequences(_stack([window]), "repeat_first")
    context_t, target_next = jax.jit(lambda o, r: replayed_contexts(network, params, target_params, o, r))(
        batch.obs_seq, batch.reset)

    o = np.asarray(window.obs)
    m = max(k for k in range(S) if bool(window.is_first[k]))
    padded = [o[m]] * m + [o[k] for k in range(m, S)]
    assert len(padded) == S

    def hand_unroll(p, seq):
        step = _single_step(network, p)
        context = network.initial_context()
        for x in seq:
            _, context = step(jnp.asarray(x), context)
        return context

    expected_t = hand_unroll(params, padded[:-1])
    expected_next = hand_unroll(target_params, padded)
    for l in range(network.num_layers):
        np.testing.assert_allclose(np.asarray(context_t[l][0]), np.asarray(expected_t[l]), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(target_next[l][0]), np.asarray(expected_next[l]), rtol=1e-5,
                                   atol=1e-5)


def test_target_context_uses_target_params():
    network = _network(1.0)
    params = random_params(network, seed=4)
    other = random_params(network, seed=5)
    obs = _observations(2)
    batch = prepare_sequences(_stack([_window(obs, e) for e in ENDS]), "zero_context")
    fn = jax.jit(lambda p, tp: replayed_contexts(network, p, tp, batch.obs_seq, batch.reset))

    # Same parameters: the target context for o_{t+1} is the online context after one more step at o_t.
    context_t, target_next = fn(params, params)
    _, online_next, _ = jax.jit(network.step)(params, batch.obs_seq[:, -1], context_t)
    for l in range(network.num_layers):
        np.testing.assert_allclose(np.asarray(target_next[l]), np.asarray(online_next[l]), rtol=1e-5, atol=1e-5)

    # Different target parameters: the online context is unchanged, the target context follows the target.
    context_t2, target_next2 = fn(params, other)
    for l in range(network.num_layers):
        np.testing.assert_array_equal(np.asarray(context_t2[l]), np.asarray(context_t[l]))
        assert np.max(np.abs(np.asarray(target_next2[l]) - np.asarray(target_next[l]))) > 1e-2
    expected = unroll_context(network, other, batch.obs_seq, batch.reset)
    for l in range(network.num_layers):
        np.testing.assert_allclose(np.asarray(target_next2[l]), np.asarray(expected[l]), rtol=1e-5, atol=1e-5)


def test_unroll_context_has_no_gradient():
    network = _network(1.0)
    params = random_params(network, seed=6)
    obs_seq = jnp.asarray(_observations(3)[None, :S])
    reset = jnp.zeros((1, S), bool)

    def f(p):
        return sum(jnp.sum(c) for c in unroll_context(network, p, obs_seq, reset))

    grads = jax.jit(jax.grad(f))(params)
    assert all(np.all(np.asarray(g) == 0.0) for g in jax.tree.leaves(grads))


# ------------------------------------------------------------------------------------------------
# Stored contexts (context_source="stored"): a short burn-in from the context the actor stored.
# ------------------------------------------------------------------------------------------------


def _stored_window(obs, carried, end: int, length: int) -> Window:
    """A stored window of ``length`` steps ending at o_end, carrying the actor's context of every step."""
    idx = np.arange(end - length + 1, end + 1)
    context = tuple(jnp.asarray(np.stack([carried[i][l] for i in idx])) for l in range(len(carried[0])))
    return _window(obs, end, length)._replace(extras=context)


@pytest.mark.parametrize("burn_in", [0, 1, 3])
def test_stored_context_burn_in_reproduces_the_actor_context(burn_in):
    """With the acting parameters, a burn-in of any length from the stored context gives exactly the
    context the actor carried at o_t, also across episode starts; the target context for o_{t+1} is one
    more step at o_t."""
    network = _network(0.5)
    params = random_params(network, seed=7)
    obs = _observations(4)
    carried = _actor_contexts(network, params, obs)
    batch = prepare_sequences(_stack([_stored_window(obs, carried, e, burn_in + 1) for e in ENDS]), "repeat_first",
                              stored_context=True)
    assert batch.context0 is not None and batch.obs_seq.shape[1] == burn_in + 1
    context_t, target_next = jax.jit(
        lambda o, r, c0: replayed_contexts(network, params, params, o, r, c0))(batch.obs_seq, batch.reset,
                                                                               batch.context0)
    step = _single_step(network, params)
    for b, end in enumerate(ENDS):
        next_context = step(jnp.asarray(obs[end]), tuple(jnp.asarray(c) for c in carried[end]))[1]
        for l in range(network.num_layers):
            np.testing.assert_allclose(np.asarray(context_t[l][b]), carried[end][l], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(np.asarray(target_next[l][b]), np.asarray(next_context[l]), rtol=1e-5,
                                       atol=1e-5)


def _flops(fn, *args) -> float:
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis["flops"])


def test_replayed_context_computes_only_the_hidden_path():
    """The context is h, so XLA drops each cell's Q head (Z1, Z2, W) from the unroll: a replayed step costs
    only the fc_h path, far below a full forward pass (XLA's own FLOP counts, paper-sized Breakout net)."""
    network = ADNetwork(obs_size=400, num_outputs=3, net_arch=(128, 96, 96), num_heads=8)
    params = jax.eval_shape(network.init, jax.random.key(0))
    batch, T = 8, 10
    x = jax.ShapeDtypeStruct((batch, 400), jnp.float32)
    context = jax.eval_shape(lambda: network.initial_context((batch,)))
    full_step = _flops(lambda p, x, c: network.step(p, x, c)[0], params, x, context)
    unroll = _flops(lambda p, o, r: unroll_context(network, p, o, r), params,
                    jax.ShapeDtypeStruct((batch, T, 400), jnp.float32), jax.ShapeDtypeStruct((batch, T), bool))
    # fc_h multiply-adds per sample: sum over layers of D_in * d (docs/algorithm.md §Network wiring input sizes 624, 720, 592).
    fc_h = 2 * (624 * 128 + 720 * 96 + 592 * 96)
    assert unroll / (T * batch) == pytest.approx(fc_h, rel=0.1)
    assert unroll < 0.15 * T * full_step


def test_stored_context_reduces_the_update_flops():
    """One learning step with stored contexts (no burn-in) vs the official 11-step replay: the saving is the
    replayed unrolls (XLA FLOP counts)."""
    from purejax_ad.config import Config
    from purejax_ad.envs import make_env
    from purejax_ad.program import make_program

    env = make_env("Breakout-MinAtar")
    flops = {}
    for source in ("replay", "stored"):
        config = Config(env="Breakout-MinAtar", context_source=source, burn_in=0, context_size=10,
                        net_arch=(128, 96, 96), num_heads=8, batch_size=8, num_seeds=1, total_timesteps=2000,
                        learning_starts=200, log_interval=100)
        trainer = make_program(config, env)
        flops[source] = _flops(trainer.learn, jax.eval_shape(trainer.init, jax.random.key(0)))
    fc_h = 2 * (624 * 128 + 720 * 96 + 592 * 96)
    saved_per_sample = (flops["replay"] - flops["stored"]) / 8
    # 10 online + 11 target replayed steps dropped, 1 target step at o_t added: 20 fc_h paths per sample.
    assert saved_per_sample == pytest.approx(20 * fc_h, rel=0.15), flops

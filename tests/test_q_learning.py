"""AD-DQN update (docs/algorithm.md §Per-layer loss): per-layer losses against a hand loop, per-layer clip + Adam, target copies."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejax_ad import q_learning
from purejax_ad.hyperparams import Hyperparams, make_optimizer
from purejax_ad.state import LearnerState
from purejax_ad.network import ADNetwork
from purejax_ad.replay import SequenceBatch

from _helpers import random_params, sequence_batch as _batch

NETWORK = ADNetwork(obs_size=3, num_outputs=2, net_arch=(6, 5), num_heads=2)
GAMMA = 0.9


def _hyper(lr=1e-2, max_norm=1.0, target_update_interval=100, gamma=GAMMA, tau=1.0) -> Hyperparams:
    """Traced hyperparameters with train_frequency 1 (target interval in updates)."""
    return Hyperparams.from_values(dict(
        learning_rate=lr, gamma=gamma, max_grad_norm=max_norm, tau=tau, target_update_interval=target_update_interval,
        epsilon_start=1.0, epsilon_end=0.05, exploration_fraction=0.1, adam_b1=0.9, adam_b2=0.99, adam_eps=1e-8))


def _reference_losses(params, target_params, batch: SequenceBatch, double_q: bool, td_loss: str) -> np.ndarray:
    """docs/algorithm.md §Replayed context + §Per-layer loss as an explicit loop: unroll online/target contexts, then each layer's own target."""
    step = jax.jit(NETWORK.step)
    obs_seq, reset = np.asarray(batch.obs_seq), np.asarray(batch.reset)
    seq = obs_seq.shape[1]

    def unroll(p, n):
        context = NETWORK.initial_context((obs_seq.shape[0],))
        for k in range(n):
            context = tuple(jnp.where(reset[:, k, None], 0.0, c) for c in context)
            context = step(p, jnp.asarray(obs_seq[:, k]), context)[1]
        return context

    context_t = tuple(jnp.where(reset[:, -1, None], 0.0, c) for c in unroll(params, seq - 1))
    q_t, context_next, _ = step(params, jnp.asarray(obs_seq[:, -1]), context_t)
    q_next_online = np.asarray(step(params, batch.next_obs, context_next)[0], np.float64)
    q_next_target = np.asarray(step(target_params, batch.next_obs, unroll(target_params, seq))[0], np.float64)
    q_t = np.asarray(q_t, np.float64)
    action, reward = np.asarray(batch.action), np.asarray(batch.reward, np.float64)
    not_done = 1.0 - np.asarray(batch.terminated, np.float64)
    losses = []
    for l in range(NETWORK.num_layers):
        values = []
        for b in range(obs_seq.shape[0]):
            if double_q:
                bootstrap = q_next_target[l, b, np.argmax(q_next_online[l, b])]
            else:
                bootstrap = np.max(q_next_target[l, b])
            e = q_t[l, b, action[b]] - (reward[b] + GAMMA * not_done[b] * bootstrap)
            values.append(e * e if td_loss == "mse" else (0.5 * e * e if abs(e) <= 1 else abs(e) - 0.5))
        losses.append(np.mean(values))
    return np.array(losses)


@pytest.mark.parametrize("double_q,td_loss", [(True, "mse"), (False, "mse"), (True, "huber")])
def test_layer_losses_match_hand_loop(double_q, td_loss):
    params, target_params = random_params(NETWORK, seed=1), random_params(NETWORK, seed=2)
    batch = _batch(3)
    losses, aux = jax.jit(lambda p, tp: q_learning.layer_losses(NETWORK, p, tp, batch, GAMMA, double_q, td_loss))(
        params, target_params)
    expected = _reference_losses(params, target_params, batch, double_q, td_loss)
    assert losses.shape == (NETWORK.num_layers,)
    np.testing.assert_allclose(np.asarray(losses), expected, rtol=1e-4, atol=1e-6)


def _numpy_adam_per_layer(params, grads_per_update, lr, max_norm, b1=0.9, b2=0.99, eps=1e-8):
    """Clip each layer's gradient by that layer's own global norm, then Adam, per layer (docs/algorithm.md §Per-layer loss)."""
    params = [jax.tree.map(lambda x: np.asarray(x, np.float64), p) for p in params]
    m = [jax.tree.map(np.zeros_like, p) for p in params]
    v = [jax.tree.map(np.zeros_like, p) for p in params]
    for t, grads in enumerate(grads_per_update, start=1):
        for l, g in enumerate(grads):
            g = jax.tree.map(lambda x: np.asarray(x, np.float64), g)
            norm = np.sqrt(sum(np.sum(x * x) for x in jax.tree.leaves(g)))
            g = jax.tree.map(lambda x: x * min(1.0, max_norm / norm), g)
            m[l] = jax.tree.map(lambda mm, gg: b1 * mm + (1 - b1) * gg, m[l], g)
            v[l] = jax.tree.map(lambda vv, gg: b2 * vv + (1 - b2) * gg * gg, v[l], g)
            params[l] = jax.tree.map(
                lambda p, mm, vv: p - lr * (mm / (1 - b1**t)) / (np.sqrt(vv / (1 - b2**t)) + eps),
                params[l], m[l], v[l])
    return params


def test_update_is_per_layer_clip_then_adam_on_own_loss():
    lr, max_norm = 1e-2, 0.05  # small clip norm: every layer is clipped, by its own factor
    tx = make_optimizer(lr, max_norm)
    params, target_params = random_params(NETWORK, seed=4), random_params(NETWORK, seed=5)
    learner = LearnerState(params, target_params, tuple(tx.init(p) for p in params),
                                  jnp.zeros((), jnp.int32))
    update = jax.jit(lambda lr_state, b: q_learning.make_update(NETWORK, tx, 1)(lr_state, b, _hyper(lr, max_norm)))

    @jax.jit
    def own_loss_grads(p, batch):
        """Gradient of layer l's loss w.r.t. layer l's parameters only (the other layers held fixed)."""
        grads = []
        for l in range(NETWORK.num_layers):
            def loss_l(p_l, l=l):
                full = tuple(p_l if m == l else p[m] for m in range(NETWORK.num_layers))
                return q_learning.layer_losses(NETWORK, full, target_params, batch, GAMMA)[0][l]
            grads.append(jax.grad(loss_l)(p[l]))
        return grads

    grads_seen, current = [], params
    for i in range(3):
        batch = _batch(10 + i)
        grads_seen.append(own_loss_grads(current, batch))
        learner, metrics = update(learner, batch)
        current = learner.params
    norms = [[np.sqrt(sum(float(np.sum(np.square(x))) for x in jax.tree.leaves(g))) for g in gs] for gs in grads_seen]
    assert all(n > max_norm for ns in norms for n in ns), norms  # the clip was active everywhere
    expected = _numpy_adam_per_layer(params, grads_seen, lr, max_norm)
    for l in range(NETWORK.num_layers):
        for got, want in zip(jax.tree.leaves(learner.params[l]), jax.tree.leaves(expected[l])):
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-6)
    assert int(learner.num_updates) == 3


def test_target_copy_every_period():
    tx = make_optimizer(1e-2, 1.0)
    learner = jax.jit(lambda k: q_learning.init_learner(NETWORK, tx, k))(jax.random.key(0))
    for a, b in zip(jax.tree.leaves(learner.params), jax.tree.leaves(learner.target_params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # target starts as a copy (docs/algorithm.md §Cells)
    initial_target = jax.tree.map(np.asarray, learner.target_params)
    update = jax.jit(lambda s, b: q_learning.make_update(NETWORK, tx, 1)(s, b, _hyper(target_update_interval=3)))
    for i in range(1, 7):
        learner, _ = update(learner, _batch(20 + i))
        params = jax.tree.leaves(learner.params)
        target = jax.tree.leaves(learner.target_params)
        if i % 3 == 0:  # hard copy (tau = 1) after every 3rd update
            for a, b in zip(params, target):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            copied = jax.tree.map(np.asarray, learner.target_params)
        else:
            assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(params, target))
            reference = initial_target if i < 3 else copied
            for a, b in zip(target, jax.tree.leaves(reference)):
                np.testing.assert_array_equal(np.asarray(a), b)


def test_shared_init_key_quirk():
    """Q6: with the shared key, layers of equal shape get identical parameters; split keys make them differ."""
    network = ADNetwork(obs_size=5, num_outputs=2, net_arch=(5, 5), num_heads=2, input_skip=False, forward=False)
    assert network.layer_input_sizes() == (10, 10)
    shared = jax.jit(lambda k: network.init(k, True))(jax.random.key(0))
    split = jax.jit(lambda k: network.init(k, False))(jax.random.key(0))
    for a, b in zip(jax.tree.leaves(shared[0]), jax.tree.leaves(shared[1])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    kernel = lambda p: np.asarray(p["params"]["fc_z1"]["kernel"])
    assert not np.allclose(kernel(split[0]), kernel(split[1]))


def test_linear_lr_schedule_decays_each_step_to_zero():
    """lr_schedule='linear': update n (0-based) moves by lr * (1 - n / N) times the plain Adam direction; after N
    updates the parameters stop moving. Reference: the constant-lr chain with the factor applied by hand."""
    lr, N = 1e-2, 4
    decayed, plain = make_optimizer(lr, 1.0, decay_updates=N), make_optimizer(lr, 1.0)
    params = {"w": jnp.array([1.0, -2.0, 3.0])}
    s_dec, s_plain = decayed.init(params), plain.init(params)
    for n in range(N + 2):
        grads = {"w": jnp.array([0.3, -0.1, 0.2]) * (n + 1)}
        u_dec, s_dec = decayed.update(grads, s_dec, params)
        u_plain, s_plain = plain.update(grads, s_plain, params)
        factor = max(0.0, 1.0 - n / N)
        np.testing.assert_allclose(np.asarray(u_dec["w"]), factor * np.asarray(u_plain["w"]), rtol=1e-6, atol=1e-9)
    assert factor == 0.0


def test_lr_schedule_total_updates_counts_the_run():
    from purejax_ad.config import Config

    c = Config(total_timesteps=10_000, num_envs=4, learning_starts=2_000, train_frequency=4, log_interval=1_000)
    # 2000 warm-up env steps, then 8000 env steps at one update per 4: 2000 updates in 8 chunks of 250
    assert c.total_updates == 2_000 == c.num_chunks * c.updates_per_chunk

"""Network wiring (docs/algorithm.md §Network wiring): parameter counts, layer input sizes, the forward pass, gradient isolation (§Per-layer loss)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejax_ad.q_learning import layer_losses
from purejax_ad.network import ADNetwork, num_params
from purejax_ad.replay import SequenceBatch

from _helpers import random_context, random_params

PAPER_ARCH = (128, 96, 96)


# docs/algorithm.md §Network wiring table: env, D, A, D_in per layer, total parameter count (H = 8, skip + recurrent + forward).
SPEC_TABLE = [
    ("Breakout", 400, 3, (624, 720, 592), 1_899_840),
    ("Asterix", 400, 5, (624, 720, 592), 1_930_816),
    ("Freeway", 700, 3, (924, 1020, 892), 2_785_440),
    ("Seaquest", 1000, 6, (1224, 1320, 1192), 3_760_704),
    ("SpaceInvaders", 600, 4, (824, 920, 792), 2_510_528),
]


@pytest.mark.parametrize("name,obs_size,num_actions,d_in,total", SPEC_TABLE, ids=[r[0] for r in SPEC_TABLE])
def test_paper_network_matches_spec_table(name, obs_size, num_actions, d_in, total):
    network = ADNetwork(obs_size=obs_size, num_outputs=num_actions, net_arch=PAPER_ARCH)
    assert network.num_heads == 8
    assert network.layer_input_sizes() == d_in
    params = jax.jit(network.init)(jax.random.key(0))
    assert len(params) == 3
    assert num_params(params) == total
    # The initialised kernels really have the table's input sizes.
    assert tuple(p["params"]["fc_h"]["kernel"].shape[0] for p in params) == d_in


@pytest.mark.parametrize(
    "skip,recurrent,forward,expected",
    [
        # Hand-computed from docs/algorithm.md §Network wiring with D = 400, net_arch = (128, 96, 96).
        (True, True, True, (400 + 128 + 96, 128 + 400 + 96 + 96, 96 + 400 + 96)),
        (False, True, True, (400 + 128 + 96, 128 + 96 + 96, 96 + 96)),
        (True, False, True, (400 + 96, 128 + 400 + 96, 96 + 400)),
        (True, True, False, (400 + 128, 128 + 400 + 96, 96 + 400 + 96)),
        (False, False, False, (400, 128, 96)),
        (False, False, True, (400 + 96, 128 + 96, 96)),
    ],
)
def test_layer_input_sizes_follow_switches(skip, recurrent, forward, expected):
    network = ADNetwork(obs_size=400, num_outputs=3, net_arch=PAPER_ARCH, input_skip=skip,
                        recurrent=recurrent, forward=forward)
    assert network.layer_input_sizes() == expected


def test_single_layer_input_size():
    # One layer: no skip (l = 0) and no forward (no layer above); only the recurrent context.
    assert ADNetwork(obs_size=10, num_outputs=2, net_arch=(32,)).layer_input_sizes() == (42,)
    assert ADNetwork(obs_size=10, num_outputs=2, net_arch=(32,), recurrent=False).layer_input_sizes() == (10,)


@pytest.mark.parametrize("alpha", [0.7, 1.0])
def test_step_wiring_and_context_update(alpha):
    """step() == cells applied by hand to [h_below; x; rho*c_l; phi*c_{l+1}]; c = alpha*h + (1-alpha)*c_prev."""
    network = ADNetwork(obs_size=3, num_outputs=2, net_arch=(5, 4, 6), num_heads=2, recurrent_weight=0.5,
                        forward_weight=2.0, context_alpha=alpha)
    params = random_params(network, seed=3)
    x = jnp.asarray(np.random.default_rng(4).normal(size=(4, 3)), jnp.float32)
    context = random_context(network, seed=5, batch=4)
    q, new_context, hidden = jax.jit(network.step)(params, x, context)
    assert q.shape == (3, 4, 2)

    cells = network.cells()
    xs, cs = np.asarray(x), [np.asarray(c) for c in context]
    h_below = xs
    for l in range(3):
        parts = [h_below]
        if l > 0:
            parts.append(xs)
        parts.append(0.5 * cs[l])
        if l < 2:
            parts.append(2.0 * cs[l + 1])
        u = np.concatenate(parts, axis=-1)
        assert u.shape[-1] == network.layer_input_sizes()[l]
        h_ref, q_ref = jax.jit(cells[l].apply)(params[l], jnp.asarray(u))
        np.testing.assert_allclose(np.asarray(hidden[l]), np.asarray(h_ref), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(q[l]), np.asarray(q_ref), rtol=1e-5, atol=1e-5)
        expected_c = alpha * np.asarray(h_ref, np.float64) + (1.0 - alpha) * cs[l]
        np.testing.assert_allclose(np.asarray(new_context[l]), expected_c, rtol=1e-5, atol=1e-5)
        h_below = np.asarray(h_ref)


def test_step_num_layers_prefix_keeps_upper_context():
    network = ADNetwork(obs_size=3, num_outputs=2, net_arch=(5, 4, 6), num_heads=2, context_alpha=0.7)
    params = random_params(network, seed=4)
    x = jnp.asarray(np.random.default_rng(5).normal(size=(2, 3)), jnp.float32)
    context = random_context(network, seed=6, batch=2)
    q_all, ctx_all, _ = jax.jit(network.step)(params, x, context)
    q_two, ctx_two, _ = jax.jit(network.step, static_argnames="num_layers")(params, x, context, num_layers=2)
    assert q_two.shape == (2, 2, 2)
    np.testing.assert_allclose(q_two, q_all[:2], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ctx_two[1], ctx_all[1], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(ctx_two[2], context[2])  # not evaluated: context passed through


# ------------------------------------------------------------------------------------------------
# Gradient isolation (docs/algorithm.md §Per-layer loss): d loss_l / d params_m == 0 for m != l.
# ------------------------------------------------------------------------------------------------

def _small_batch(seed: int, obs_size: int, num_actions: int, batch: int = 6, seq: int = 4) -> SequenceBatch:
    rng = np.random.default_rng(seed)
    reset = np.zeros((batch, seq), bool)
    reset[0, 1] = True
    return SequenceBatch(
        obs_seq=jnp.asarray(rng.normal(size=(batch, seq, obs_size)), jnp.float32),
        reset=jnp.asarray(reset),
        action=jnp.asarray(rng.integers(0, num_actions, size=batch), jnp.int32),
        reward=jnp.asarray(rng.normal(size=batch), jnp.float32),
        terminated=jnp.asarray(np.arange(batch) % 3 == 0),
        next_obs=jnp.asarray(rng.normal(size=(batch, obs_size)), jnp.float32),
    )


def _loss_jacobian(local_learning: bool):
    network = ADNetwork(obs_size=3, num_outputs=2, net_arch=(6, 5, 4), num_heads=2)
    params = random_params(network, seed=10)
    target_params = random_params(network, seed=11)
    batch = _small_batch(12, 3, 2)

    def losses(p):
        return layer_losses(network, p, target_params, batch, gamma=0.9, local_learning=local_learning)[0]

    jac = jax.device_get(jax.jit(jax.jacrev(losses))(params))  # jac[m] leaves: [L, *leaf_shape]
    L = network.num_layers

    def block_norm(l, m):
        return sum(float(np.sum(np.abs(leaf[l]))) for leaf in jax.tree.leaves(jac[m]))

    def block_all_zero(l, m):
        return all(bool(np.all(leaf[l] == 0)) for leaf in jax.tree.leaves(jac[m]))

    return L, block_norm, block_all_zero


def test_local_learning_gradients_are_block_diagonal():
    L, block_norm, block_all_zero = _loss_jacobian(local_learning=True)
    for l in range(L):
        for m in range(L):
            if m == l:
                assert block_norm(l, m) > 0.0, f"layer {l} gets no gradient from its own loss"
            else:
                assert block_all_zero(l, m), f"loss of layer {l} leaks gradient into layer {m}"


def test_end_to_end_gradients_reach_lower_layers():
    """Control: without local learning, the same check finds lower-layer gradient (the test can fail)."""
    L, block_norm, block_all_zero = _loss_jacobian(local_learning=False)
    for l in range(L):
        assert block_norm(l, l) > 0.0
        for m in range(l):
            assert block_norm(l, m) > 0.0, f"end-to-end loss of layer {l} should reach layer {m}"
        for m in range(l + 1, L):
            # Upper layers only influence lower ones through the (constant) context: still zero.
            assert block_all_zero(l, m)

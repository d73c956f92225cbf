"""AttentionADCell against an independent float64 numpy re-implementation of docs/algorithm.md §Cells."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejax_ad.cells import AttentionADCell, attention_cell_num_params


def reference_cell(params: dict, u: np.ndarray, hidden: int, out: int, heads: int):
    """docs/algorithm.md §Cells in float64 numpy, written from the spec text, not from the module."""
    p = {k: {n: np.asarray(v, np.float64) for n, v in d.items()} for k, d in params["params"].items()}
    u = np.asarray(u, np.float64)
    batch = u.shape[0]
    # 1. h = LayerNorm(ReLU(fc_h(u))), population variance, eps 1e-6, learnable scale and bias.
    a = np.maximum(u @ p["fc_h"]["kernel"] + p["fc_h"]["bias"], 0.0)
    mu = a.mean(axis=-1, keepdims=True)
    var = ((a - mu) ** 2).mean(axis=-1, keepdims=True)
    h = (a - mu) / np.sqrt(var + 1e-6) * p["ln"]["scale"] + p["ln"]["bias"]
    # 2-3. Z1 [B, H, d], Z2 [B, H, G], no bias.
    z1 = (u @ p["fc_z1"]["kernel"]).reshape(batch, heads, hidden)
    z2 = (u @ p["fc_z2"]["kernel"]).reshape(batch, heads, out)
    q = np.zeros((batch, out))
    for b in range(batch):
        # 4. M[g, k] = sum_j Z2[j, g] Z1[j, k].
        m = np.zeros((out, hidden))
        for g in range(out):
            for k in range(hidden):
                m[g, k] = sum(z2[b, j, g] * z1[b, j, k] for j in range(heads))
        # 5-6. Row standardisation (population std + 1e-6), then tanh.
        mean = m.mean(axis=1, keepdims=True)
        std = np.sqrt(((m - mean) ** 2).mean(axis=1, keepdims=True))
        w = np.tanh((m - mean) / (std + 1e-6))
        # 7. y[g] = sum_k W[g, k] h[k].
        q[b] = w @ h[b]
    return h, q


def _perturbed_params(cell: AttentionADCell, in_features: int, key: jax.Array) -> dict:
    """Flax init plus noise on every leaf, so LayerNorm scale/bias are not the trivial 1/0."""
    k_init, k_noise = jax.random.split(key)

    @jax.jit
    def make(k_init, k_noise):
        params = cell.init(k_init, jnp.zeros((1, in_features), jnp.float32))
        leaves, treedef = jax.tree.flatten(params)
        keys = jax.random.split(k_noise, len(leaves))
        leaves = [leaf + 0.3 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys)]
        return jax.tree.unflatten(treedef, leaves)

    return make(k_init, k_noise)


@pytest.mark.parametrize("in_features,hidden,out,heads", [(7, 5, 3, 4), (12, 16, 6, 8), (4, 9, 2, 1)])
def test_attention_cell_matches_numpy_reference(in_features, hidden, out, heads):
    cell = AttentionADCell(hidden_features=hidden, out_features=out, num_heads=heads)
    key = jax.random.key(in_features * 100 + hidden)
    k_params, k_u = jax.random.split(key)
    params = _perturbed_params(cell, in_features, k_params)
    u = jax.random.normal(k_u, (6, in_features), jnp.float32) * 2.0
    h, q = jax.jit(cell.apply)(params, u)
    assert h.shape == (6, hidden) and q.shape == (6, out)
    h_ref, q_ref = reference_cell(jax.device_get(params), np.asarray(u), hidden, out, heads)
    np.testing.assert_allclose(np.asarray(h), h_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(q), q_ref, rtol=1e-4, atol=1e-4)
    # |W| < 1 elementwise, so |q_g| <= sum_k |h_k| (docs/algorithm.md §Cells magnitude note).
    assert np.all(np.abs(q_ref) <= np.abs(h_ref).sum(axis=1, keepdims=True) + 1e-6)


def test_attention_cell_leading_batch_axes():
    """Extra leading axes are independent rows: [2, 3, D] equals row-by-row application."""
    cell = AttentionADCell(hidden_features=6, out_features=3, num_heads=2)
    params = _perturbed_params(cell, 5, jax.random.key(1))
    u = jax.random.normal(jax.random.key(2), (2, 3, 5))
    h, q = jax.jit(cell.apply)(params, u)
    h_ref, q_ref = reference_cell(jax.device_get(params), np.asarray(u).reshape(6, 5), 6, 3, 2)
    np.testing.assert_allclose(np.asarray(h).reshape(6, 6), h_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(q).reshape(6, 3), q_ref, rtol=1e-4, atol=1e-4)


def test_attention_cell_parameter_structure():
    in_features, hidden, out, heads = 11, 7, 3, 8
    cell = AttentionADCell(hidden_features=hidden, out_features=out, num_heads=heads)
    params = jax.jit(cell.init)(jax.random.key(0), jnp.zeros((1, in_features)))["params"]
    assert set(params) == {"fc_h", "ln", "fc_z1", "fc_z2"}
    assert set(params["fc_z1"]) == {"kernel"}, "fc_z1 must have no bias"
    assert set(params["fc_z2"]) == {"kernel"}, "fc_z2 must have no bias"
    assert params["fc_h"]["kernel"].shape == (in_features, hidden)
    assert params["fc_h"]["bias"].shape == (hidden,)
    assert params["fc_z1"]["kernel"].shape == (in_features, heads * hidden)
    assert params["fc_z2"]["kernel"].shape == (in_features, heads * out)
    assert params["ln"]["scale"].shape == (hidden,) and params["ln"]["bias"].shape == (hidden,)
    # Flax-default init: LayerNorm scale 1 and bias 0, fc_h bias 0 (docs/algorithm.md §Cells).
    np.testing.assert_array_equal(params["ln"]["scale"], np.ones(hidden))
    np.testing.assert_array_equal(params["ln"]["bias"], np.zeros(hidden))
    np.testing.assert_array_equal(params["fc_h"]["bias"], np.zeros(hidden))


@pytest.mark.parametrize("in_features,hidden,out,heads", [(11, 7, 3, 8), (624, 128, 3, 8), (5, 2, 9, 3)])
def test_attention_cell_num_params_formula(in_features, hidden, out, heads):
    cell = AttentionADCell(hidden_features=hidden, out_features=out, num_heads=heads)
    params = jax.eval_shape(cell.init, jax.random.key(0), jnp.zeros((1, in_features)))
    actual = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(params))
    # docs/algorithm.md §Network wiring: D_in*d + d + D_in*H*d + D_in*H*G + 2d, written out independently here.
    expected = in_features * hidden + hidden + in_features * heads * hidden + in_features * heads * out + 2 * hidden
    assert actual == expected
    assert attention_cell_num_params(in_features, hidden, out, heads) == expected


def test_bfloat16_matmuls_keep_float32_params_and_stay_close():
    """Mixed precision: the same float32 parameters; outputs float32 and within bf16 rounding of float32."""
    import jax.numpy as jnp

    from purejax_ad.cells import AttentionADCell

    u = jnp.asarray(np.random.default_rng(0).normal(size=(16, 40)), jnp.float32)
    full, mixed = AttentionADCell(32, 5, 4), AttentionADCell(32, 5, 4, jnp.bfloat16)
    params = full.init(jax.random.key(0), u)
    assert jax.tree.structure(mixed.init(jax.random.key(0), u)) == jax.tree.structure(params)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(mixed.init(jax.random.key(0), u)))
    (h32, q32), (h16, q16) = full.apply(params, u), mixed.apply(params, u)
    assert h16.dtype == q16.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(h16), np.asarray(h32), rtol=0.05, atol=0.05)
    np.testing.assert_allclose(np.asarray(q16), np.asarray(q32), rtol=0.05, atol=0.3)
    assert not np.array_equal(np.asarray(q16), np.asarray(q32))  # the bf16 path really ran

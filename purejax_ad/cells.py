"""AD cells: the per-layer Q-predicting units of an Artificial Dopamine network.

Sources: docs/algorithm.md §Cells (AttentionADCell as the official ``ad_layers.py`` runs it), §Cells
(MlpADCell) and §ARQ (the ARQ cell: action conditioning at the input and a "goodness" readout).
Each cell maps its concatenated input ``u`` to hidden activations ``h`` (also the context sent to
other layers) and to its own predictions ``q`` (``[..., G]``; ``G = A`` for Q-learning, ``A*N`` for
quantile heads).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

#: Added to the row standard deviation before dividing (docs/algorithm.md §Cells step 5).
STANDARDISE_EPS = 1e-6
#: LayerNorm epsilon of the hidden activations (docs/algorithm.md §Cells step 1).
LAYER_NORM_EPS = 1e-6


def safe_sqrt(x: jax.Array) -> jax.Array:
    """``sqrt(x)`` for ``x >= 0`` with gradient 0 (not NaN) at ``x = 0``: a constant ``y`` (e.g. ``h = 0`` when every
    ReLU of a layer is off) would otherwise turn the std/rms goodness gradient into ``inf * 0 = NaN``."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def row_standardise(m: jax.Array, eps: float = STANDARDISE_EPS) -> jax.Array:
    """Standardise the last axis: ``(m - mean) / (std + eps)`` with the population std (ddof=0).

    Args:
      m: ``[..., hidden]`` array.

    Returns:
      Array of the same shape. No learnable gain or bias (docs/algorithm.md §Cells step 5).
    """
    mean = jnp.mean(m, axis=-1, keepdims=True)
    std = safe_sqrt(jnp.mean(jnp.square(m - mean), axis=-1, keepdims=True))  # gradient 0, not NaN, for a constant row
    return (m - mean) / (std + eps)


class AttentionADCell(nn.Module):
    """The attention-like AD cell (docs/algorithm.md §Cells, paper Fig. 3).

    ``h = LayerNorm(ReLU(Dense(u)))``; ``Z1 = Dense_nobias(u) -> [H, d]``,
    ``Z2 = Dense_nobias(u) -> [H, G]``; ``W = tanh(row_standardise(Z2^T Z1)) -> [G, d]``;
    ``q = W h -> [G]``.

    Attributes:
      hidden_features: ``d``, the width of ``h``.
      out_features: ``G``; the number of actions for AD-DQN.
      num_heads: ``H``, the rank bound of the input-generated weight matrix (paper: 8).
      dtype: compute dtype of the three input matmuls (``jnp.bfloat16`` for mixed precision: inputs and
        kernels cast to bf16, results cast back to float32); parameters and everything else stay float32.
    """

    hidden_features: int
    out_features: int
    num_heads: int = 8
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, u: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Apply the cell.

        Args:
          u: ``[..., in_features]`` layer input (docs/algorithm.md §Network wiring).

        Returns:
          ``(h, q)``: hidden activations ``[..., hidden_features]`` and predictions
          ``[..., out_features]``.
        """
        d, g, heads = self.hidden_features, self.out_features, self.num_heads

        def dense(features, use_bias, name):
            layer = nn.Dense(features, use_bias=use_bias, dtype=self.dtype, param_dtype=jnp.float32, name=name)
            return layer(u).astype(jnp.float32)

        h = nn.LayerNorm(epsilon=LAYER_NORM_EPS, name="ln")(nn.relu(dense(d, True, "fc_h")))
        z1 = dense(heads * d, False, "fc_z1").reshape(*u.shape[:-1], heads, d)
        z2 = dense(heads * g, False, "fc_z2").reshape(*u.shape[:-1], heads, g)
        m = jnp.einsum("...jg,...jk->...gk", z2, z1)  # [..., G, d]
        w = jnp.tanh(row_standardise(m))
        q = jnp.einsum("...gk,...k->...g", w, h)
        return h, q


#: Output normalisations of :class:`MlpADCell` (docs/algorithm.md §Cells); ``"none"`` is the only sensible one for Q-learning.
MLP_NORMALIZATIONS = ("none", "lp", "scaled", "layer_norm")


class MlpADCell(nn.Module):
    """The MLP AD cell (docs/algorithm.md §Cells): ``h = ReLU(Dense(u))``, ``q = normalise(Dense(h))``.

    Attributes:
      hidden_features: ``d``. out_features: ``G``.
      normalization: ``"none"`` (default; Q-values unconstrained), ``"lp"`` (``q / (||q||_2 + 1e-4)``, the
        official default, which cannot represent returns above 1), ``"scaled"`` (``q / sqrt(G)``),
        ``"layer_norm"`` (parameter-free standardisation over ``G``).
      dtype: compute dtype of the matmuls (see :class:`AttentionADCell`).
    """

    hidden_features: int
    out_features: int
    normalization: str = "none"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, u: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``u [..., in_features] -> (h [..., d], q [..., G])``.

        Raises:
          ValueError: unknown ``normalization``.
        """
        dense = lambda f, x, name: nn.Dense(f, dtype=self.dtype, param_dtype=jnp.float32, name=name)(x).astype(
            jnp.float32)
        h = nn.relu(dense(self.hidden_features, u, "fc_h"))
        q = dense(self.out_features, h, "fc_y")
        if self.normalization == "none":
            return h, q
        if self.normalization == "lp":
            return h, q / (jnp.linalg.norm(q, axis=-1, keepdims=True) + 1e-4)
        if self.normalization == "scaled":
            return h, q / jnp.sqrt(self.out_features)
        if self.normalization == "layer_norm":
            return h, row_standardise(q)
        raise ValueError(f"unknown MlpADCell normalization {self.normalization!r}; valid: {MLP_NORMALIZATIONS}")


#: ARQ goodness readouts ``g(y)`` over the hidden axis (docs/algorithm.md §ARQ); ``"std"`` is the shipped one.
GOODNESS = ("std", "rms", "msq", "mean", "variance")


def goodness(y: jax.Array, kind: str) -> jax.Array:
    """ARQ's parameter-free readout of an action-conditioned vector (docs/algorithm.md §ARQ).

    Args:
      y: ``[..., d]``. kind: one of :data:`GOODNESS` — ``std`` = ``sqrt(mean (y - mean y)^2)`` (population),
        ``rms`` = ``sqrt(mean y^2)``, ``msq`` = ``mean y^2``, ``mean``, ``variance``.

    Returns:
      ``[...]``; non-negative for every kind except ``mean``.
    """
    if kind == "std":
        return safe_sqrt(jnp.mean(jnp.square(y - jnp.mean(y, axis=-1, keepdims=True)), axis=-1))
    if kind == "rms":
        return safe_sqrt(jnp.mean(jnp.square(y), axis=-1))
    if kind == "msq":
        return jnp.mean(jnp.square(y), axis=-1)
    if kind == "mean":
        return jnp.mean(y, axis=-1)
    if kind == "variance":
        return jnp.var(y, axis=-1)
    raise ValueError(f"unknown goodness {kind!r}; valid: {GOODNESS}")


def action_codes(num_actions: int, encoding: str) -> jax.Array:
    """``[A, k]`` action encodings appended to the ARQ cell's input (docs/algorithm.md §ARQ).

    ``"onehot"``: ``k = A``. ``"binary"``: ``k = log2 A`` bits as +-1, bit ``i`` of the index (least
    significant first, as ARQ's DMC code) -- for bang-bang discretised continuous actions.

    Raises:
      ValueError: ``"binary"`` with ``A`` not a power of two, or an unknown encoding.
    """
    if encoding == "onehot":
        return jnp.eye(num_actions, dtype=jnp.float32)
    if encoding == "binary":
        bits = num_actions.bit_length() - 1
        if num_actions < 2 or 1 << bits != num_actions:
            raise ValueError(f"binary action encoding needs a power-of-two action count, got {num_actions}")
        index = jnp.arange(num_actions)[:, None]
        return jnp.where((index >> jnp.arange(bits)[None, :]) & 1, 1.0, -1.0).astype(jnp.float32)
    raise ValueError(f"unknown action encoding {encoding!r}; valid: onehot, binary")


class ARQCell(nn.Module):
    """The ARQ cell (docs/algorithm.md §ARQ): an AttentionADCell conditioned on the action at its input, with a
    "goodness" readout instead of a Q head.

    ``h = LayerNorm(ReLU(Dense(u)))`` (no action); for every action ``a``: ``u_a = [u ; code(a)]``,
    ``Z1, Z2 = Dense_nobias(u_a) -> [H, d]``, ``W_a = tanh(row_standardise(Z2^T Z1)) -> [d, d]``,
    ``y_a = W_a h -> [d]``, ``Q(s, a) = goodness(y_a)`` (``>= 0`` for ``std``/``rms``/``msq``/``variance``).

    Attributes:
      hidden_features: ``d``. num_actions: ``A``. num_heads: ``H``.
      action_encoding: ``"onehot"`` (discrete envs) or ``"binary"`` (+-1 bits, bang-bang DMC actions).
      goodness: one of :data:`GOODNESS`.
      dtype: compute dtype of the matmuls.
    """

    hidden_features: int
    num_actions: int
    num_heads: int = 8
    action_encoding: str = "onehot"
    goodness: str = "std"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, u: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``u [..., in_features] -> (h [..., d], q [..., A])``."""
        d, heads = self.hidden_features, self.num_heads
        dense = lambda f, x, bias, name: nn.Dense(f, use_bias=bias, dtype=self.dtype, param_dtype=jnp.float32,
                                                  name=name)(x).astype(jnp.float32)
        h = nn.LayerNorm(epsilon=LAYER_NORM_EPS, name="ln")(nn.relu(dense(d, u, True, "fc_h")))
        codes = action_codes(self.num_actions, self.action_encoding)  # [A, k]
        batch = u.shape[:-1]
        u_a = jnp.concatenate([jnp.broadcast_to(u[..., None, :], (*batch, self.num_actions, u.shape[-1])),
                               jnp.broadcast_to(codes, (*batch, *codes.shape))], axis=-1)  # [..., A, D_in + k]
        z1 = dense(heads * d, u_a, False, "fc_z1").reshape(*batch, self.num_actions, heads, d)
        z2 = dense(heads * d, u_a, False, "fc_z2").reshape(*batch, self.num_actions, heads, d)
        w = jnp.tanh(row_standardise(jnp.einsum("...jg,...jk->...gk", z2, z1)))  # [..., A, d, d]
        y = jnp.einsum("...agk,...k->...ag", w, h)  # [..., A, d]
        return h, goodness(y, self.goodness)


def attention_cell_num_params(in_features: int, hidden: int, out: int, num_heads: int = 8) -> int:
    """Parameter count of one :class:`AttentionADCell` (docs/algorithm.md §Network wiring formula).

    ``D_in*d + d`` (fc_h) ``+ D_in*H*d`` (fc_z1) ``+ D_in*H*G`` (fc_z2) ``+ 2d`` (LayerNorm).
    """
    return in_features * hidden + hidden + in_features * num_heads * (hidden + out) + 2 * hidden

"""AD cells: the per-layer Q-predicting units of an Artificial Dopamine network.

Source: spec ``algorithm.md`` §2.1 (AttentionADCell as the official ``ad_layers.py`` runs it).
Each cell maps its concatenated input ``u`` to hidden activations ``h`` (also the context sent to
other layers) and to its own Q-value prediction ``q``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

#: Added to the row standard deviation before dividing (spec §2.1 step 5).
STANDARDISE_EPS = 1e-6
#: LayerNorm epsilon of the hidden activations (spec §2.1 step 1).
LAYER_NORM_EPS = 1e-6


def row_standardise(m: jax.Array, eps: float = STANDARDISE_EPS) -> jax.Array:
    """Standardise the last axis: ``(m - mean) / (std + eps)`` with the population std (ddof=0).

    Args:
      m: ``[..., hidden]`` array.

    Returns:
      Array of the same shape. No learnable gain or bias (spec §2.1 step 5).
    """
    mean = jnp.mean(m, axis=-1, keepdims=True)
    std = jnp.std(m, axis=-1, keepdims=True)
    return (m - mean) / (std + eps)


class AttentionADCell(nn.Module):
    """The attention-like AD cell (spec §2.1, paper Fig. 3).

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
          u: ``[..., in_features]`` layer input (spec §3).

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


def attention_cell_num_params(in_features: int, hidden: int, out: int, num_heads: int = 8) -> int:
    """Parameter count of one :class:`AttentionADCell` (spec §3 formula).

    ``D_in*d + d`` (fc_h) ``+ D_in*H*d`` (fc_z1) ``+ D_in*H*G`` (fc_z2) ``+ 2d`` (LayerNorm).
    """
    return in_features * hidden + hidden + in_features * num_heads * (hidden + out) + 2 * hidden

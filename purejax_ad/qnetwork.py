"""Backprop baselines' Q-networks: a standard network trained end to end.

``dqn`` / ``qrdqn`` use one ordinary Q-network. It implements what :class:`purejax_ad.q_learning.QLearningAgent`
needs of a network (``num_layers``, ``initial_context``, ``step``, ``q_values``, ``policy_weights``; the
:class:`purejax_ad.state.Network` protocol and more) with one learning unit and no context, so the
Q-learning agent's replay, acting, evaluation and losses serve it too: ``step`` returns outputs
``[1, ..., A]`` (``[1, ..., N, A]`` with quantiles), the context is the empty tuple, and the parameters
are a 1-tuple (one optimiser, one gradient clip).

Torsos:

* ``"mlp"``: ``Dense(d_1) -> ReLU -> ... -> Dense(d_k) -> ReLU -> Dense(G)`` with ``net_arch = (d_1..d_k)``.
* ``"minatar-conv"``: the MinAtar paper's network (Young & Tian 2019, arXiv 1903.03176): ``Conv(16, 3x3,
  stride 1, VALID) -> ReLU -> Dense(128) -> ReLU -> Dense(G)`` on the ``[10, 10, C]`` grid.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from purejax_ad.network import quantile_mean

#: Torsos of :class:`QNetwork`.
TORSOS = ("mlp", "minatar-conv")


class _QModule(nn.Module):
    """The flax module of :class:`QNetwork`: ``x [..., obs_size] -> [..., G]``."""

    torso: str
    hidden: tuple[int, ...]
    obs_shape: tuple[int, ...]
    out_features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        dense = lambda f, name: nn.Dense(f, dtype=self.dtype, param_dtype=jnp.float32, name=name)
        if self.torso == "minatar-conv":
            batch = x.shape[:-1]
            grid = x.reshape(-1, *self.obs_shape)
            y = nn.Conv(16, (3, 3), strides=1, padding="VALID", dtype=self.dtype, param_dtype=jnp.float32,
                        name="conv")(grid)
            y = nn.relu(y.astype(jnp.float32)).reshape(*batch, -1)
            y = nn.relu(dense(128, "fc_hidden")(y).astype(jnp.float32))
        elif self.torso == "mlp":
            y = x
            for i, width in enumerate(self.hidden):
                y = nn.relu(dense(width, f"fc_{i}")(y).astype(jnp.float32))
        else:
            raise ValueError(f"unknown torso {self.torso!r}; valid: {', '.join(TORSOS)}")
        return dense(self.out_features, "fc_q")(y).astype(jnp.float32)


class QNetwork(NamedTuple):
    """A standard Q-network (``dqn``, ``qrdqn`` baselines) with the interface of
    :class:`purejax_ad.network.ADNetwork` (one layer, no context).

    Attributes:
      obs_size: ``D``. num_outputs: ``A`` actions. net_arch: hidden widths of the ``"mlp"`` torso.
      torso: ``"mlp"`` or ``"minatar-conv"`` (needs ``obs_shape``). obs_shape: unflattened observation shape.
      num_quantiles: ``N`` (QR-DQN) or 0. matmul_dtype: ``"float32"`` or ``"bfloat16"``.
    """

    obs_size: int
    num_outputs: int
    net_arch: tuple[int, ...] = (64, 64)
    torso: str = "mlp"
    obs_shape: tuple[int, ...] = ()
    num_quantiles: int = 0
    matmul_dtype: str = "float32"

    num_layers = 1
    average_predictions = True

    @property
    def cell_outputs(self) -> int:
        """``G``: ``A``, or ``A * N`` with quantiles (flat index ``n * A + a``)."""
        return self.num_outputs * max(self.num_quantiles, 1)

    def module(self) -> _QModule:
        """The flax module."""
        return _QModule(self.torso, tuple(self.net_arch), tuple(self.obs_shape), self.cell_outputs,
                        jnp.dtype(self.matmul_dtype))

    def init(self, key: jax.Array, shared_init_key: bool = True) -> tuple:
        """``(params,)``: flax default initialisation (``shared_init_key`` has no effect: one layer)."""
        return (self.module().init(key, jnp.zeros((1, self.obs_size), jnp.float32)),)

    def initial_context(self, batch_shape: Sequence[int] = ()) -> tuple:
        """No context: ``()``."""
        return ()

    def q_values(self, outputs: jax.Array) -> jax.Array:
        """``[..., A]``: the outputs, or their mean over the quantile axis ``-2``."""
        return quantile_mean(outputs, self.num_quantiles)

    def policy_weights(self) -> jax.Array:
        """``[[1.0]]``: the single layer is the policy."""
        return jnp.ones((1, 1), jnp.float32)

    def acting_q_values(self, outputs: jax.Array) -> jax.Array:
        """``outputs [1, ..., (N,) A] -> [..., A]``."""
        return self.q_values(outputs)[0]

    def step(self, params: tuple, x: jax.Array, context: tuple = (), local_learning: bool = True,
             num_layers: int | None = None) -> tuple[jax.Array, tuple, tuple]:
        """One forward pass: ``(outputs [1, ..., (N,) A], (), (q,))``; ``local_learning`` is irrelevant (one layer)."""
        q = self.module().apply(params[0], x.astype(jnp.float32))
        if self.num_quantiles:
            q = q.reshape(*q.shape[:-1], self.num_quantiles, self.num_outputs)
        return q[None], (), (q,)


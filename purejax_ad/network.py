"""Network wiring: a stack of AD cells connected forward in time (docs/algorithm.md §Network wiring).

Layer ``l`` (0-based here, 1-based in the spec) at time ``t`` sees
``u = [h^{l-1}_t ; x_t (skip, l>0) ; rho * c^l_{t-1} (recurrent) ; phi * c^{l+1}_{t-1} (forward, l<L-1)]``.
Parameters are a tuple with one pytree per layer, so every layer can own its optimiser, gradient
clip and target copy (docs/algorithm.md §Per-layer loss).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from purejax_ad.cells import ARQCell, AttentionADCell, MlpADCell

#: Cell types of an AD network (docs/algorithm.md §Cells, §ARQ).
CELLS = ("attention", "mlp", "arq")

#: Per-layer parameters: ``params[l]`` is the flax variable dict of cell ``l``.
Params = tuple
#: Per-layer contexts: ``context[l]`` has shape ``[..., net_arch[l]]``.
Context = tuple


def prefix_mean_weights(num_layers: int) -> jax.Array:
    """``[L, L]`` weights; row ``i`` averages layers ``0..i`` (the policy "mean of layers 1..i+1")."""
    lower = jnp.tril(jnp.ones((num_layers, num_layers), jnp.float32))
    return lower / jnp.sum(lower, axis=1, keepdims=True)


def quantile_mean(outputs: jax.Array, num_quantiles: int) -> jax.Array:
    """Q-values from cell outputs: ``[..., A]`` unchanged when ``num_quantiles == 0``, else the mean of ``[..., N, A]``
    over the quantile axis (docs/algorithm.md §Acting)."""
    return jnp.mean(outputs, axis=-2) if num_quantiles else outputs


class ADNetwork(NamedTuple):
    """Static description of an AD network; all methods are pure functions of explicit params.

    Attributes:
      obs_size: ``D``, the flattened observation size.
      num_outputs: outputs per cell (``A`` actions for AD-DQN).
      net_arch: hidden width ``d_l`` of every layer.
      num_heads: ``H`` of every :class:`AttentionADCell`.
      input_skip: append ``x_t`` to the input of layers ``l > 0``.
      recurrent: append the layer's own previous activation ``c^l_{t-1}``.
      forward: append the upper layer's previous activation ``c^{l+1}_{t-1}`` (top-down, in time).
      recurrent_weight: ``rho``, the scale of the recurrent context.
      forward_weight: ``phi``, the scale of the forward-in-time context.
      context_alpha: ``alpha`` of ``c_t = alpha * h_t + (1 - alpha) * c_{t-1}``.
      matmul_dtype: ``"float32"`` or ``"bfloat16"`` (mixed precision: bf16 matmuls, float32 parameters).
      cell: ``"attention"`` (:class:`AttentionADCell`, the paper's), ``"mlp"`` (:class:`MlpADCell`) or
        ``"arq"`` (:class:`ARQCell`).
      num_quantiles: ``N`` quantile outputs per action (AD-QRDQN, docs/algorithm.md §Quantile outputs); 0 = one Q-value per action.
      average_predictions: act on the mean of the layers' Q (docs/algorithm.md §Acting); ``False`` acts on one layer alone.
      mlp_normalization: output normalisation of the MLP cell (docs/algorithm.md §Cells).
      action_encoding / goodness: ARQ cell options (docs/algorithm.md §ARQ).
    """

    obs_size: int
    num_outputs: int
    net_arch: tuple[int, ...]
    num_heads: int = 8
    input_skip: bool = True
    recurrent: bool = True
    forward: bool = True
    recurrent_weight: float = 1.0
    forward_weight: float = 1.0
    context_alpha: float = 1.0
    matmul_dtype: str = "float32"
    cell: str = "attention"
    num_quantiles: int = 0
    average_predictions: bool = True
    mlp_normalization: str = "none"
    action_encoding: str = "onehot"
    goodness: str = "std"

    @property
    def num_layers(self) -> int:
        """``L``, the number of cells."""
        return len(self.net_arch)

    def layer_input_sizes(self) -> tuple[int, ...]:
        """``D_in`` of every layer, from the wiring switches (docs/algorithm.md §Network wiring table)."""
        sizes = []
        for l, width in enumerate(self.net_arch):
            size = self.obs_size if l == 0 else self.net_arch[l - 1]
            if self.input_skip and l > 0:
                size += self.obs_size
            if self.recurrent:
                size += width
            if self.forward and l < self.num_layers - 1:
                size += self.net_arch[l + 1]
            sizes.append(size)
        return tuple(sizes)

    @property
    def cell_outputs(self) -> int:
        """``G``, outputs per cell: ``A``, or ``A * N`` with quantiles (flat index ``n * A + a``, docs/algorithm.md §Quantile outputs)."""
        return self.num_outputs * max(self.num_quantiles, 1)

    def cells(self) -> list:
        """The flax modules, one per layer.

        Raises:
          ValueError: unknown cell, or an ARQ cell with quantiles (ARQ has one goodness per action).
        """
        dtype = jnp.dtype(self.matmul_dtype)
        if self.cell == "attention":
            return [AttentionADCell(d, self.cell_outputs, self.num_heads, dtype) for d in self.net_arch]
        if self.cell == "mlp":
            return [MlpADCell(d, self.cell_outputs, self.mlp_normalization, dtype) for d in self.net_arch]
        if self.cell == "arq":
            if self.num_quantiles:
                raise ValueError("the ARQ cell has one goodness per action; it cannot output quantiles")
            return [ARQCell(d, self.num_outputs, self.num_heads, self.action_encoding, self.goodness, dtype)
                    for d in self.net_arch]
        raise ValueError(f"unknown cell {self.cell!r}; valid: {', '.join(CELLS)}")

    def q_values(self, outputs: jax.Array) -> jax.Array:
        """Q-values from cell outputs: ``[..., A]`` unchanged, or the mean over quantiles of ``[..., N, A]``."""
        return quantile_mean(outputs, self.num_quantiles)

    def policy_weights(self) -> jax.Array:
        """``[L, L]``: row ``i`` weights the layers' Q for policy ``i`` (docs/algorithm.md §Acting, §Evaluation).

        With ``average_predictions`` row ``i`` is the mean of layers ``0..i``; without, layer ``i`` alone.
        The last row is the acting policy.
        """
        if not self.average_predictions:
            return jnp.eye(self.num_layers, dtype=jnp.float32)
        return prefix_mean_weights(self.num_layers)

    def init(self, key: jax.Array, shared_init_key: bool = True) -> Params:
        """Initialise every layer (flax defaults: lecun-normal kernels, zero biases).

        Args:
          key: PRNG key.
          shared_init_key: quirk Q6. ``True`` (faithful) initialises every layer from the same key,
            as the official code does; ``False`` splits one key per layer.

        Returns:
          Tuple of ``L`` per-layer parameter pytrees.
        """
        keys = [key] * self.num_layers if shared_init_key else list(jax.random.split(key, self.num_layers))
        return tuple(
            cell.init(k, jnp.zeros((1, size), jnp.float32))
            for cell, k, size in zip(self.cells(), keys, self.layer_input_sizes())
        )

    def initial_context(self, batch_shape: Sequence[int] = ()) -> Context:
        """Zero context (start of an episode), ``context[l]: [*batch_shape, d_l]``."""
        return tuple(jnp.zeros((*batch_shape, d), jnp.float32) for d in self.net_arch)

    def layer_input(self, l: int, h_below: jax.Array, x: jax.Array, context: Context) -> jax.Array:
        """Concatenate the input ``u^l_t`` of layer ``l`` (docs/algorithm.md §Network wiring, official ``_layer_input``)."""
        parts = [h_below]
        if self.input_skip and l > 0:
            parts.append(x)
        if self.recurrent:
            parts.append(self.recurrent_weight * context[l])
        if self.forward and l < self.num_layers - 1:
            parts.append(self.forward_weight * context[l + 1])
        return jnp.concatenate(parts, axis=-1)

    def acting_q_values(self, outputs: jax.Array) -> jax.Array:
        """The acting policy's Q (docs/algorithm.md §Acting): ``outputs [L, ..., (N,) A] -> [..., A]``, mean over quantiles
        first, then the layer weights of :meth:`policy_weights` (mean of all layers, or the last alone)."""
        q = self.q_values(outputs)
        return jnp.tensordot(self.policy_weights()[-1], q, axes=1)

    def step(
        self,
        params: Params,
        x: jax.Array,
        context: Context,
        local_learning: bool = True,
        num_layers: int | None = None,
    ) -> tuple[jax.Array, Context, tuple[jax.Array, ...]]:
        """One full forward pass at one time step.

        Args:
          params: per-layer parameters.
          x: ``[..., obs_size]`` flattened float observation.
          context: previous contexts ``c_{t-1}``, ``context[l]: [..., d_l]``.
          local_learning: wrap every layer input in ``stop_gradient``, so no gradient can flow
            between layers (AD). ``False`` lets gradients flow (end-to-end backprop baseline).
          num_layers: evaluate only the first ``num_layers`` cells (all when ``None``).

        Returns:
          ``(outputs, new_context, hidden)``: ``outputs [L, ..., A]`` (``[L, ..., N, A]`` with quantiles); the mixed
          contexts ``alpha * h + (1 - alpha) * c``; the raw ``h`` of every layer.
        """
        x = x.astype(jnp.float32)
        n = self.num_layers if num_layers is None else num_layers
        h_below, qs, hs = x, [], []
        for l, cell in enumerate(self.cells()[:n]):
            u = self.layer_input(l, h_below, x, context)
            if local_learning:
                u = jax.lax.stop_gradient(u)
            h, q = cell.apply(params[l], u)
            if self.num_quantiles:
                q = q.reshape(*q.shape[:-1], self.num_quantiles, self.num_outputs)
            qs.append(q)
            hs.append(h)
            h_below = h
        a = self.context_alpha
        new_context = tuple(a * h + (1.0 - a) * c for h, c in zip(hs, context[:n])) + tuple(context[n:])
        return jnp.stack(qs), new_context, tuple(hs)


def num_params(params: Params) -> int:
    """Total number of scalars in a parameter pytree."""
    return sum(int(leaf.size) for leaf in jax.tree.leaves(params))

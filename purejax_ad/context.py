"""Replayed context: rebuild the recurrent contexts of a sampled sequence (docs/algorithm.md §Replayed context).

The actor's contexts are not stored; every update unrolls the sampled observations from a zero
context, once with the online and once with the target parameters. No gradient flows through it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from purejax_ad.network import ADNetwork, Context, Params


def unroll_context(network: ADNetwork, params: Params, obs_seq: jax.Array, reset: jax.Array,
                   context0: Context | None = None) -> Context:
    """Run the network over a sequence and return the context after its last step.

    Args:
      network: the wiring.
      params: per-layer parameters (online or target).
      obs_seq: ``[batch, T, obs_size]`` float observations (T may be 0).
      reset: ``[batch, T]`` bool; the context is zeroed *before* processing a position where true.
      context0: the context before the first position (``None``: zeros, docs/algorithm.md §Replayed context; a stored context
        for the R2D2-style burn-in of ``context_source="stored"``).

    Returns:
      ``context[l]: [batch, d_l]`` summarising the ``T`` observations, with ``stop_gradient``.
    """
    if context0 is None:
        context0 = network.initial_context((obs_seq.shape[0],))

    def body(context, inputs):
        x, r = inputs
        context = tuple(jnp.where(r[:, None], 0.0, c) for c in context)
        _, context, _ = network.step(params, x, context)
        return context, None

    # Fully unrolled (T <= context_size + 1 is small): XLA then sees, and cost analysis counts, every step.
    context, _ = jax.lax.scan(body, context0, (jnp.swapaxes(obs_seq, 0, 1), jnp.swapaxes(reset, 0, 1)), unroll=True)
    return jax.tree.map(jax.lax.stop_gradient, context)


def replayed_contexts(
    network: ADNetwork, params: Params, target_params: Params, obs_seq: jax.Array, reset: jax.Array,
    context0: Context | None = None,
) -> tuple[Context, Context]:
    """Contexts for o_t (online, ``C_on[S-1]``) and for o_{t+1} (target, ``C_tg[S]``), docs/algorithm.md §Replayed context.

    The online context for o_{t+1} (``C_on[S]``) is the new context of the online forward pass at
    o_t, which the loss computes anyway.

    Args:
      obs_seq: ``[batch, S, obs_size]`` with ``obs_seq[:, -1] = o_t``. reset: ``[batch, S]``.
      context0: stored context before ``obs_seq[:, 0]`` (``None``: zeros).

    Returns:
      ``(context_t, target_context_next)``, each a tuple of ``[batch, d_l]``.
    """
    context_t = unroll_context(network, params, obs_seq[:, :-1], reset[:, :-1], context0)
    context_t = tuple(jnp.where(reset[:, -1, None], 0.0, c) for c in context_t)
    target_context_next = unroll_context(network, target_params, obs_seq, reset, context0)
    return context_t, target_context_next

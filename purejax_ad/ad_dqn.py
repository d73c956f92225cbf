"""AD-DQN update: every layer regresses its own Q on its own double-Q target (spec §5).

All L layer updates happen in one step: the per-layer losses are summed, every layer input and
every target is a constant (``stop_gradient``), so the gradient of the sum *is* the set of local
gradients; each layer then has its own optax chain (clip by global norm over that layer only ->
Adam -> learning rate) and its own target copy.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejax_ad.context import replayed_contexts
from purejax_ad.losses import td_error_loss, td_target
from purejax_ad.network import ADNetwork, Params
from purejax_ad.replay import Batch


class LearnerState(NamedTuple):
    """Per-layer learning state of one seed.

    Attributes:
      params: online parameters, one pytree per layer.
      target_params: target parameters, one pytree per layer.
      opt_state: one optax state per layer.
      num_updates: ``[]`` int32, updates done so far.
    """

    params: Params
    target_params: Params
    opt_state: tuple
    num_updates: jax.Array


def make_optimizer(learning_rate: float, max_grad_norm: float, b1: float = 0.9, b2: float = 0.99,
                   eps: float = 1e-8) -> optax.GradientTransformation:
    """The per-layer chain of the official code: clip -> Adam scaling -> constant learning rate."""
    return optax.chain(
        optax.clip_by_global_norm(max_grad_norm),
        optax.scale_by_adam(b1=b1, b2=b2, eps=eps),
        optax.scale(-learning_rate),
    )


def init_learner(network: ADNetwork, tx: optax.GradientTransformation, key: jax.Array,
                 shared_init_key: bool = True) -> LearnerState:
    """Fresh parameters; the target starts as an exact copy (spec §2.1)."""
    params = network.init(key, shared_init_key)
    return LearnerState(
        params=params,
        target_params=jax.tree.map(jnp.copy, params),
        opt_state=tuple(tx.init(p) for p in params),
        num_updates=jnp.zeros((), jnp.int32),
    )


def layer_losses(
    network: ADNetwork,
    params: Params,
    target_params: Params,
    batch: Batch,
    gamma: float,
    double_q: bool = True,
    td_loss: str = "mse",
    local_learning: bool = True,
) -> tuple[jax.Array, dict]:
    """The loss of every layer on one batch (spec §5).

    Args:
      network: the wiring. params / target_params: per-layer pytrees.
      batch: replayed sequences (see :class:`purejax_ad.replay.Batch`).
      local_learning: AD (``True``): no gradient between layers. ``False``: end-to-end backprop.

    Returns:
      ``(losses [L], aux)`` with ``aux["q_mean"] [L]`` the mean predicted ``Q(s, a_t)`` per layer.
    """
    context_t, target_context_next = replayed_contexts(network, params, target_params, batch.obs_seq, batch.reset,
                                                       batch.context0)
    q, context_next, _ = network.step(params, batch.obs_seq[:, -1], context_t, local_learning)
    q_taken = jnp.take_along_axis(q, batch.action[None, :, None], axis=-1)[..., 0]  # [L, B]
    context_next = jax.lax.stop_gradient(context_next)
    q_next_online, _, _ = network.step(params, batch.next_obs, context_next)
    q_next_target, _, _ = network.step(target_params, batch.next_obs, target_context_next)
    y = td_target(jax.lax.stop_gradient(q_next_online), jax.lax.stop_gradient(q_next_target),
                  batch.reward, batch.terminated, gamma, double_q)
    losses = jnp.mean(td_error_loss(q_taken - y, td_loss), axis=-1)
    return losses, {"q_mean": jnp.mean(q_taken, axis=-1)}


def update(
    network: ADNetwork,
    tx: optax.GradientTransformation,
    learner: LearnerState,
    batch: Batch,
    gamma: float,
    double_q: bool,
    td_loss: str,
    target_update_period: int,
    tau: float = 1.0,
    local_learning: bool = True,
) -> tuple[LearnerState, dict]:
    """One optimisation step of all layers, then the periodic target copy.

    Args:
      target_update_period: copy ``target <- tau*online + (1-tau)*target`` after every
        ``target_update_period``-th update (``target_update_interval / train_frequency``).

    Returns:
      ``(learner, metrics)``, ``metrics["td_loss"] [L]``, ``metrics["q_mean"] [L]`` (pre-update).
    """

    def total_loss(p):
        losses, aux = layer_losses(network, p, learner.target_params, batch, gamma, double_q, td_loss, local_learning)
        return jnp.sum(losses), (losses, aux)

    grads, (losses, aux) = jax.grad(total_loss, has_aux=True)(learner.params)
    new_params, new_opt_state = [], []
    for p, g, s in zip(learner.params, grads, learner.opt_state):
        u, s = tx.update(g, s, p)
        new_params.append(optax.apply_updates(p, u))
        new_opt_state.append(s)
    params = tuple(new_params)
    num_updates = learner.num_updates + 1
    target_params = optax.periodic_update(
        optax.incremental_update(params, learner.target_params, tau),
        learner.target_params,
        num_updates,
        target_update_period,
    )
    learner = LearnerState(params, target_params, tuple(new_opt_state), num_updates)
    return learner, {"td_loss": losses, "q_mean": aux["q_mean"]}

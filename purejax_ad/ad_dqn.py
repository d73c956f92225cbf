"""The update of the DQN family: every layer regresses its own prediction on its own double-Q target.

AD-DQN (spec §5): all L layer updates happen in one step: the per-layer losses are summed, every layer
input and every target is a constant (``stop_gradient``), so the gradient of the sum *is* the set of
local gradients; each layer then has its own optax chain (clip by global norm over that layer only ->
Adam -> learning rate) and its own target copy. The same code runs

* AD-QRDQN (spec §7) when the network has quantile outputs (``quantile_regression_loss``);
* ARQ (spec §11) -- only the cell differs;
* ``ad-backprop``: ``local_learning=False`` lets each layer's loss reach the layers below it (within a
  time step; the replayed context stays a constant);
* ``dqn`` / ``qrdqn``: a one-layer :class:`purejax_ad.qnetwork.QNetwork`.

Hyperparameters that do not change shapes arrive as a traced :class:`Hyperparams` (one value per run),
so a sweep over them is one compiled program (issue 3).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from purejax_ad.context import replayed_contexts
from purejax_ad.losses import quantile_regression_loss, quantile_td_target, td_error_loss, td_target
from purejax_ad.network import ADNetwork, Params
from purejax_ad.replay import Batch


class Hyperparams(NamedTuple):
    """Traced hyperparameters of one run (scalars; ``[num_runs]`` when stacked for a sweep).

    The names are :data:`purejax_ad.config.SWEEPABLE`; units as in :class:`purejax_ad.config.Config`
    (``target_update_interval`` in env steps per seed).
    """

    learning_rate: jax.Array
    gamma: jax.Array
    max_grad_norm: jax.Array
    tau: jax.Array
    target_update_interval: jax.Array
    epsilon_start: jax.Array
    epsilon_end: jax.Array
    exploration_fraction: jax.Array
    adam_b1: jax.Array
    adam_b2: jax.Array
    adam_eps: jax.Array

    @classmethod
    def from_values(cls, values) -> "Hyperparams":
        """From any object or mapping with the fields (e.g. a :class:`~purejax_ad.config.Config`)."""
        get = values.__getitem__ if isinstance(values, dict) else lambda k: getattr(values, k)
        return cls(**{k: jnp.asarray(get(k), jnp.int32 if k == "target_update_interval" else jnp.float32)
                      for k in cls._fields})


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


def _make_optimizer(learning_rate: float, max_grad_norm: float, b1: float = 0.9, b2: float = 0.99,
                    eps: float = 1e-8, decay_updates: int = 0) -> optax.GradientTransformation:
    chain = [optax.clip_by_global_norm(max_grad_norm), optax.scale_by_adam(b1=b1, b2=b2, eps=eps)]
    if decay_updates:
        chain.append(optax.scale_by_schedule(optax.linear_schedule(1.0, 0.0, decay_updates)))
    return optax.chain(*chain, optax.scale(-learning_rate))


make_optimizer = optax.inject_hyperparams(_make_optimizer, static_args=("decay_updates",))
make_optimizer.__doc__ = """The per-layer chain of the official code (spec §5): clip -> Adam scaling -> learning rate.

    ``decay_updates > 0`` (static) multiplies the step by ``1 - n / decay_updates`` (floored at 0) after ``n``
    updates, i.e. a linear decay of the learning rate to 0 (``Config.lr_schedule = "linear"``); ``0`` keeps it
    constant, as the official code does. Wrapped in ``optax.inject_hyperparams``: the numeric values live in the
    optimiser state, so they may be traced (one per run of a sweep); ``update`` reads them from the state.
    """


def optimizer_for(hyper: Hyperparams, decay_updates: int = 0) -> optax.GradientTransformation:
    """The per-layer optimiser with the (possibly traced) values of ``hyper``; ``decay_updates`` as in
    :func:`make_optimizer` (``Config.total_updates`` for ``lr_schedule="linear"``, else 0)."""
    return make_optimizer(hyper.learning_rate, hyper.max_grad_norm, hyper.adam_b1, hyper.adam_b2, hyper.adam_eps,
                          decay_updates)


def init_learner(network: ADNetwork, tx: optax.GradientTransformation, key: jax.Array,
                 shared_init_key: bool = True) -> LearnerState:
    """Fresh parameters; the target starts as an exact copy (spec §2.1). ``tx`` initialises one state per layer."""
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
    qr_loss: str = "as_published",
) -> tuple[jax.Array, dict]:
    """The loss of every layer on one batch (spec §5; spec §7 for quantile outputs).

    Args:
      network: the wiring (:class:`ADNetwork` or a one-layer :class:`purejax_ad.qnetwork.QNetwork`).
      params / target_params: per-layer pytrees.
      batch: replayed sequences (see :class:`purejax_ad.replay.Batch`).
      gamma: discount (may be traced).
      td_loss: element loss of scalar TD errors (``"mse"`` / ``"huber"``, quirk Q5).
      local_learning: AD (``True``): no gradient between layers. ``False``: end-to-end backprop.
      qr_loss: element loss of quantile TD errors (quirk Q4), networks with ``num_quantiles > 0`` only.

    Returns:
      ``(losses [L], aux)`` with ``aux["q_mean"] [L]`` the mean predicted ``Q(s, a_t)`` per layer
      (for quantiles: the mean over quantiles).
    """
    context_t, target_context_next = replayed_contexts(network, params, target_params, batch.obs_seq, batch.reset,
                                                       batch.context0)
    q, context_next, _ = network.step(params, batch.obs_seq[:, -1], context_t, local_learning)
    context_next = jax.lax.stop_gradient(context_next)
    q_next_online, _, _ = network.step(params, batch.next_obs, context_next)
    q_next_target, _, _ = network.step(target_params, batch.next_obs, target_context_next)
    q_next_online, q_next_target = jax.lax.stop_gradient(q_next_online), jax.lax.stop_gradient(q_next_target)
    if network.num_quantiles:
        index = jnp.broadcast_to(batch.action[None, :, None, None], (*q.shape[:-1], 1))
        q_taken = jnp.take_along_axis(q, index, axis=-1)[..., 0]  # [L, B, N]
        y = quantile_td_target(q_next_online, q_next_target, batch.reward, batch.terminated, gamma, double_q)
        losses = quantile_regression_loss(q_taken, y, qr_loss)
        return losses, {"q_mean": jnp.mean(q_taken, axis=(-2, -1))}
    q_taken = jnp.take_along_axis(q, batch.action[None, :, None], axis=-1)[..., 0]  # [L, B]
    y = td_target(q_next_online, q_next_target, batch.reward, batch.terminated, gamma, double_q)
    losses = jnp.mean(td_error_loss(q_taken - y, td_loss), axis=-1)
    return losses, {"q_mean": jnp.mean(q_taken, axis=-1)}


def update(
    network: ADNetwork,
    tx: optax.GradientTransformation,
    learner: LearnerState,
    batch: Batch,
    hyper: Hyperparams,
    train_frequency: int,
    double_q: bool = True,
    td_loss: str = "mse",
    local_learning: bool = True,
    qr_loss: str = "as_published",
) -> tuple[LearnerState, dict]:
    """One optimisation step of all layers, then the periodic target copy.

    Args:
      tx: the per-layer optimiser (:func:`make_optimizer`; its hyperparameters are read from the state).
      hyper: traced hyperparameters of this run (``gamma``, ``tau``, ``target_update_interval`` used here).
      train_frequency: env steps per update; the target is copied, ``target <- tau*online + (1-tau)*target``,
        after every ``max(1, target_update_interval // train_frequency)``-th update.
      local_learning / qr_loss: see :func:`layer_losses`.

    Returns:
      ``(learner, metrics)``, ``metrics["td_loss"] [L]``, ``metrics["q_mean"] [L]`` (pre-update).
    """

    def total_loss(p):
        losses, aux = layer_losses(network, p, learner.target_params, batch, hyper.gamma, double_q, td_loss,
                                   local_learning, qr_loss)
        return jnp.sum(losses), (losses, aux)

    grads, (losses, aux) = jax.grad(total_loss, has_aux=True)(learner.params)
    new_params, new_opt_state = [], []
    for p, g, s in zip(learner.params, grads, learner.opt_state):
        u, s = tx.update(g, s, p)
        new_params.append(optax.apply_updates(p, u))
        new_opt_state.append(s)
    params = tuple(new_params)
    num_updates = learner.num_updates + 1
    period = jnp.maximum(1, hyper.target_update_interval // train_frequency)
    target_params = optax.periodic_update(
        optax.incremental_update(params, learner.target_params, hyper.tau),
        learner.target_params,
        num_updates,
        period,
    )
    learner = LearnerState(params, target_params, tuple(new_opt_state), num_updates)
    return learner, {"td_loss": losses, "q_mean": aux["q_mean"]}

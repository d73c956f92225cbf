"""Traced hyperparameters, the per-layer optimiser and the one target-update rule.

Hyperparameters that do not change shapes travel as a traced :class:`Hyperparams` (one value per run), so
a sweep over them is one compiled program (``docs/algorithm.md`` §Optimisation).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


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


def _make_optimizer(learning_rate: float, max_grad_norm: float, b1: float = 0.9, b2: float = 0.99,
                    eps: float = 1e-8, decay_updates: int = 0) -> optax.GradientTransformation:
    chain = [optax.clip_by_global_norm(max_grad_norm), optax.scale_by_adam(b1=b1, b2=b2, eps=eps)]
    if decay_updates:
        chain.append(optax.scale_by_schedule(optax.linear_schedule(1.0, 0.0, decay_updates)))
    return optax.chain(*chain, optax.scale(-learning_rate))


make_optimizer = optax.inject_hyperparams(_make_optimizer, static_args=("decay_updates",))
make_optimizer.__doc__ = """The per-layer chain of the official code: clip by global norm -> Adam scaling -> learning rate
    (``docs/algorithm.md`` §Optimisation).

    ``decay_updates > 0`` (static) multiplies the step by ``1 - n / decay_updates`` (floored at 0) after ``n``
    updates, i.e. a linear decay of the learning rate to 0 (``Config.lr_schedule = "linear"``); ``0`` keeps it
    constant, as the official code does. Wrapped in ``optax.inject_hyperparams``: the numeric values live in the
    optimiser state, so they may be traced (one per run of a sweep); an update reads them from the state.
    """


def optimizer_for(hyper: Hyperparams, decay_updates: int = 0, learning_rate=None) -> optax.GradientTransformation:
    """:func:`make_optimizer` with the (possibly traced) values of ``hyper``.

    Args:
      decay_updates: as in :func:`make_optimizer` (``Config.lr_decay_updates``).
      learning_rate: overrides ``hyper.learning_rate`` (an actor's own step size).
    """
    lr = hyper.learning_rate if learning_rate is None else learning_rate
    return make_optimizer(lr, hyper.max_grad_norm, hyper.adam_b1, hyper.adam_b2, hyper.adam_eps, decay_updates)


def target_update_period(target_update_interval: jax.Array, train_frequency: int) -> jax.Array:
    """Updates between two target updates: ``max(1, target_update_interval // train_frequency)``."""
    return jnp.maximum(1, target_update_interval // train_frequency)


def update_target(params, target_params, hyper: Hyperparams, num_updates: jax.Array, train_frequency: int):
    """The target rule of every algorithm: after every :func:`target_update_period`-th update,
    ``target <- tau * online + (1 - tau) * target`` (``tau = 1``: the hard copy of the official code;
    DDPG's soft update: ``target_update_interval = train_frequency`` and a small ``tau``).

    Args:
      num_updates: ``[]`` updates done, this one included.
    """
    period = target_update_period(hyper.target_update_interval, train_frequency)
    return optax.periodic_update(optax.incremental_update(params, target_params, hyper.tau), target_params,
                                 num_updates, period)

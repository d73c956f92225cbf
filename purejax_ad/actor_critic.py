"""What the continuous-action agents share: a deterministic policy acting with exploration noise on single
replayed transitions, and a critic/actor pair of optimiser states (``docs/algorithm.md`` §Continuous control).

A subclass supplies the parameters, the optimisers, the behaviour and noise-free policies and one update
rule; :class:`ActorCriticAgent` turns them into a :class:`purejax_ad.state.Agent`:

* warm-up: ``learning_starts`` env steps of uniform random actions in ``[-1, 1]``;
* replay: single steps (sequence length 1) storing the float32 ``[m]`` action taken and the behaviour's
  extras; a sample is a :class:`purejax_ad.replay.TransitionBatch`;
* evaluation: the noise-free policy (``P = 1``); metrics: ``td_loss`` / ``q_mean`` ``[1]``, the
  exploration parameter is ``exploration_noise``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from purejax_ad.config import Config
from purejax_ad.diagnostics import critic_return_correlation
from purejax_ad.envs import Environment
from purejax_ad.hyperparams import Hyperparams, update_target
from purejax_ad.replay import TransitionBatch, Window, prepare_transitions
from purejax_ad.state import Acting, ActorState, LearnerState


class ActorCriticNetwork(NamedTuple):
    """Sizes of an actor-critic agent: one learning unit (``num_layers = 1``), no context.

    Attributes:
      obs_size: ``D``. action_dim: ``m``. net_arch: hidden widths of the actor (and of an MLP critic).
    """

    obs_size: int
    action_dim: int
    net_arch: tuple

    @property
    def num_layers(self) -> int:
        return 1

    def initial_context(self, batch_shape=()) -> tuple:
        """No context: ``()``."""
        return ()


def finish_update(learner: LearnerState, params, opt_state: tuple, hyper: Hyperparams, train_frequency: int,
                  loss: jax.Array, q_mean: jax.Array) -> tuple[LearnerState, dict]:
    """The common end of an actor-critic update: count it, apply the target rule
    (:func:`purejax_ad.hyperparams.update_target`) and report ``{"td_loss": [1], "q_mean": [1]}``.

    Args:
      params: the updated ``.actor`` / ``.critic`` parameters. opt_state: ``(critic_state, actor_state)``.
      loss / q_mean: ``[]`` pre-update critic loss and mean Q.
    """
    num_updates = learner.num_updates + 1
    target = update_target(params, learner.target_params[0], hyper, num_updates, train_frequency)
    return LearnerState((params,), (target,), opt_state, num_updates), {"td_loss": loss[None], "q_mean": q_mean[None]}


class ActorCriticAgent:
    """Base of the actor-critic agents (:class:`purejax_ad.state.Agent`); see the module docstring."""

    sequence_length = 1
    num_eval_policies = 1
    eval_uses_key = False

    @property
    def diagnostic_names(self) -> tuple[str, ...]:
        """``saturated_l1..`` (fraction of a tanh layer's units with ``|x| > 0.9`` on replayed states; hidden
        layers first, the action layer last; none for ReLU layers), ``action_mean`` and ``action_std`` (the
        noise-free action over replayed states and action dimensions), then ``critic_mc_corr_l1..`` (per layer
        of critics, the mean correlation of its critics' ``Q(s, a)`` with the Monte-Carlo return on replayed
        steps; :func:`purejax_ad.diagnostics.critic_return_correlation`)."""
        n = self.num_tanh_layers
        return (*(f"saturated_l{i + 1}" for i in range(n)), "action_mean", "action_std",
                *(f"critic_mc_corr_l{i + 1}" for i in range(self.num_critic_layers)))

    num_tanh_layers = 1
    """How many layers :meth:`tanh_layers` returns."""
    num_critic_layers = 1
    """How many layers of critics :meth:`critic_values` returns."""

    def __init__(self, config: Config, env: Environment):
        if not env.action_dim:
            raise ValueError(f"{config.algo} needs continuous actions; {env.env_id} has discrete ones")
        self.config = config
        self.network = ActorCriticNetwork(env.obs_size, env.action_dim, tuple(config.net_arch))
        self.tx_critic, self.tx_actor = self.optimizers(Hyperparams.from_values(config))

    # --- supplied by a subclass -----------------------------------------------------------------------
    def init_params(self, key: jax.Array):
        """Fresh parameters with ``.actor`` and ``.critic`` fields."""
        raise NotImplementedError

    def optimizers(self, hyper: Hyperparams):
        """``(critic, actor)`` optax transformations; their values live in the optimiser state (traced)."""
        raise NotImplementedError

    def behaviour(self, params, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, tuple]:
        """``(action [E, m] in [-1, 1], extras to store)`` of the exploring policy."""
        raise NotImplementedError

    def policy(self, actor, obs: jax.Array) -> jax.Array:
        """Noise-free action ``[..., m]`` for ``obs [..., obs_size]``."""
        raise NotImplementedError

    def extras_example(self) -> tuple:
        """One step's stored extras (no env axis)."""
        return ()

    def tanh_layers(self, actor, obs: jax.Array) -> tuple:
        """The noise-free policy's tanh layer outputs on ``obs [B, obs_size]``, bottom to top, the action last
        (default: the action alone)."""
        return (self.policy(actor, obs),)

    def critic_values(self, params, batch: TransitionBatch) -> tuple:
        """Per layer of critics ``[B, d_l]``: each critic's ``Q(s, a)`` at the replayed steps of ``batch`` (the
        stored action and extras), bottom to top."""
        raise NotImplementedError

    def update_batch(self, learner: LearnerState, batch: TransitionBatch, hyper: Hyperparams):
        """The update rule: ``(learner, {"td_loss": [1], "q_mean": [1]})``."""
        raise NotImplementedError

    # --- the Agent interface ----------------------------------------------------------------------------
    def init_learner(self, key: jax.Array, hyper: Hyperparams) -> LearnerState:
        params = self.init_params(key)
        tx_critic, tx_actor = self.optimizers(hyper)
        return LearnerState((params,), (jax.tree.map(jnp.copy, params),),
                            (tx_critic.init(params.critic), tx_actor.init(params.actor)), jnp.zeros((), jnp.int32))

    def stored_example(self) -> tuple[jax.Array, tuple]:
        return jnp.zeros((self.network.action_dim,), jnp.float32), self.extras_example()

    def exploration(self, env_steps: jax.Array, hyper: Hyperparams) -> jax.Array:
        return jnp.asarray(self.config.exploration_noise, jnp.float32)

    def act(self, params, actor: ActorState, key, env_steps, hyper, warmup: bool) -> Acting:
        k_act, k_random = jax.random.split(key)
        action, extras = self.behaviour(params[0], actor.obs, k_act)
        if warmup:
            action = jax.random.uniform(k_random, action.shape, minval=-1.0, maxval=1.0)
        return Acting(action, action, (), extras)

    def update(self, learner: LearnerState, window: Window, hyper: Hyperparams) -> tuple[LearnerState, dict]:
        return self.update_batch(learner, prepare_transitions(window), hyper)

    def diagnostics(self, params, window: Window, with_returns: tuple) -> jax.Array:
        """``[K]`` (:attr:`diagnostic_names`): the actor's on the replayed observations of ``window``, the critics'
        on ``with_returns = (batch, returns, any_complete)`` (:func:`purejax_ad.diagnostics.sample_with_returns`)."""
        layers = self.tanh_layers(params[0].actor, prepare_transitions(window).obs)
        saturated = [jnp.mean(jnp.abs(x) > 0.9) for x in layers]
        batch, returns, any_complete = with_returns
        correlation = critic_return_correlation(self.critic_values(params[0], batch), returns, any_complete)
        actor = jnp.stack([*saturated, jnp.mean(layers[-1]), jnp.std(layers[-1])]).astype(jnp.float32)
        return jnp.concatenate([actor, correlation])

    def eval_policy(self, params, obs, context, key):
        return self.policy(params[0].actor, obs), context

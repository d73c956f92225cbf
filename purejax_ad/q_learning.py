"""The Q-learning family: every layer regresses its own prediction on its own double-Q target.

AD-DQN (``docs/algorithm.md`` §Per-layer loss): all ``L`` layer updates happen in one step. The per-layer
losses are summed, every layer input and every target is a constant (``stop_gradient``), so the gradient
of the sum *is* the set of local gradients; each layer then has its own optax chain and its own target.
One agent serves every row of :mod:`purejax_ad.algos` of family ``"q-learning"``: the row says whether
the network is an AD cell stack or a standard Q-network, whether it has quantile outputs
(§Quantile outputs) and whether learning is local (``ad-backprop``: each layer's loss reaches the layers
below it within a time step; the replayed context stays a constant).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from purejax_ad.algos import AlgoSpec
from purejax_ad.config import Config
from purejax_ad.context import replayed_contexts
from purejax_ad.envs import Environment
from purejax_ad.evaluation import epsilon_greedy
from purejax_ad.hyperparams import Hyperparams, optimizer_for, update_target
from purejax_ad.losses import quantile_regression_loss, quantile_td_target, td_error_loss, td_target
from purejax_ad.network import ADNetwork, Params
from purejax_ad.qnetwork import QNetwork
from purejax_ad.replay import SequenceBatch, Window, action_dtype, prepare_sequences
from purejax_ad.state import Acting, ActorState, LearnerState


def make_network(config: Config, env: Environment, spec: AlgoSpec) -> ADNetwork | QNetwork:
    """The network of a Q-learning row: an AD cell stack (``spec.network == "ad"``) or a standard
    Q-network; ``num_quantiles`` outputs per action when ``spec.quantiles``."""
    num_quantiles = config.num_quantiles if spec.quantiles else 0
    if spec.network == "q-network":
        torso = config.torso if config.torso != "auto" else ("minatar-conv" if env.suite == "minatar" else "mlp")
        return QNetwork(env.obs_size, env.num_actions, tuple(config.net_arch), torso, env.obs_shape, num_quantiles,
                        config.matmul_dtype)
    c = config
    return ADNetwork(obs_size=env.obs_size, num_outputs=env.num_actions, net_arch=tuple(c.net_arch),
                     num_heads=c.num_heads, input_skip=c.input_skip_connections, recurrent=c.recurrent_connections,
                     forward=c.forward_connections, recurrent_weight=c.recurrent_weight,
                     forward_weight=c.forward_weight, context_alpha=c.context_alpha, matmul_dtype=c.matmul_dtype,
                     cell=c.network_cell, num_quantiles=num_quantiles, average_predictions=c.average_predictions,
                     mlp_normalization=c.mlp_normalization, action_encoding=c.action_encoding, goodness=c.goodness)


def epsilon_schedule(env_steps: jax.Array, config: Config, hyper: Hyperparams | None = None) -> jax.Array:
    """Linear epsilon (``docs/algorithm.md`` §Exploration): ``epsilon_start`` until ``learning_starts``, then
    linear to ``epsilon_end`` over ``exploration_fraction * total_timesteps`` env steps, then constant.

    The three epsilon values come from ``hyper`` (traced, may be swept) or, without it, from ``config``.
    """
    h = config if hyper is None else hyper
    duration = h.exploration_fraction * config.total_timesteps
    frac = jnp.clip((env_steps - config.learning_starts) / duration, 0.0, 1.0)
    return h.epsilon_start + frac * (h.epsilon_end - h.epsilon_start)


def init_learner(network: ADNetwork | QNetwork, tx: optax.GradientTransformation, key: jax.Array,
                 shared_init_key: bool = True) -> LearnerState:
    """Fresh parameters; the target starts as an exact copy. ``tx`` initialises one state per layer."""
    params = network.init(key, shared_init_key)
    return LearnerState(params, jax.tree.map(jnp.copy, params), tuple(tx.init(p) for p in params),
                        jnp.zeros((), jnp.int32))


def layer_losses(network, params: Params, target_params: Params, batch: SequenceBatch, gamma: float,
                 double_q: bool = True, td_loss: str = "mse", local_learning: bool = True,
                 qr_loss: str = "as_published") -> tuple[jax.Array, dict]:
    """The loss of every layer on one batch (``docs/algorithm.md`` §Per-layer loss, §Quantile outputs).

    Args:
      network: an :class:`ADNetwork` or a one-layer :class:`QNetwork`. params / target_params: per-layer pytrees.
      batch: replayed sequences. gamma: discount (may be traced).
      td_loss: element loss of scalar TD errors (``"mse"`` / ``"huber"``, quirk Q5).
      local_learning: ``True``: no gradient between layers. ``False``: end-to-end backprop.
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


def make_update(network, tx: optax.GradientTransformation, train_frequency: int, double_q: bool = True,
                td_loss: str = "mse", local_learning: bool = True, qr_loss: str = "as_published") -> Callable:
    """The update with its static flags closed over once: ``update(learner, batch, hyper) -> (learner, metrics)``.

    One optimisation step of every layer (``tx``: :func:`purejax_ad.hyperparams.make_optimizer`, its values read
    from the state), then the target rule :func:`purejax_ad.hyperparams.update_target`. ``hyper`` supplies the
    traced ``gamma``, ``tau`` and ``target_update_interval``. ``metrics["td_loss"] [L]``, ``["q_mean"] [L]``
    are pre-update values. The flags are those of :func:`layer_losses`.
    """

    def update(learner: LearnerState, batch: SequenceBatch, hyper: Hyperparams) -> tuple[LearnerState, dict]:
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
        target_params = update_target(params, learner.target_params, hyper, num_updates, train_frequency)
        return LearnerState(params, target_params, tuple(new_opt_state), num_updates), {
            "td_loss": losses, "q_mean": aux["q_mean"]}

    return update


class QLearningAgent:
    """Epsilon-greedy acting on the layers' mean Q, replayed sequences, per-layer updates (:class:`purejax_ad.state.Agent`)."""

    eval_uses_key = True

    def __init__(self, config: Config, env: Environment, spec: AlgoSpec):
        c = self.config = config
        self.network = make_network(c, env, spec)
        self.sequence_length = c.sequence_length
        self.num_eval_policies = self.network.num_layers
        self.store_action = action_dtype(env.num_actions)
        self.stored_context = c.context_source == "stored"
        tx = optimizer_for(Hyperparams.from_values(c), c.lr_decay_updates)  # values are read from each run's state
        self.update_batch = make_update(self.network, tx, c.train_frequency, c.double_q, c.td_loss,
                                        spec.local_learning, c.qr_loss)

    def _stored(self, context: tuple) -> tuple:
        """What a step stores of the actor's context: nothing, unless ``context_source='stored'``."""
        if not self.stored_context:
            return ()
        return tuple(x.astype(jnp.dtype(self.config.stored_context_dtype)) for x in context)

    def init_learner(self, key: jax.Array, hyper: Hyperparams) -> LearnerState:
        return init_learner(self.network, optimizer_for(hyper, self.config.lr_decay_updates), key,
                            self.config.shared_init_key)

    def stored_example(self) -> tuple[jax.Array, tuple]:
        return jnp.zeros((), self.store_action), self._stored(self.network.initial_context(()))

    def exploration(self, env_steps: jax.Array, hyper: Hyperparams) -> jax.Array:
        return epsilon_schedule(env_steps, self.config, hyper)

    def _keep_context_on_explore(self, explored, old, new) -> tuple:
        if self.config.advance_context_on_random_action:  # quirk Q2
            return new
        return tuple(jnp.where(explored[..., None], o, n) for o, n in zip(old, new))

    def act(self, params, actor: ActorState, key, env_steps, hyper, warmup: bool) -> Acting:
        q, new_context, _ = self.network.step(params, actor.obs, actor.context)  # [L, E, A]
        action, explored = epsilon_greedy(key, self.network.acting_q_values(q), self.exploration(env_steps, hyper))
        return Acting(action, action.astype(self.store_action),
                      self._keep_context_on_explore(explored, actor.context, new_context), self._stored(actor.context))

    def update(self, learner: LearnerState, window: Window, hyper: Hyperparams) -> tuple[LearnerState, dict]:
        batch = prepare_sequences(window, self.config.replay_padding, self.stored_context)
        return self.update_batch(learner, batch, hyper)

    def eval_policy(self, params, obs, context, key):
        """Policy ``p`` of ``obs [P=L, N, obs_size]`` acts epsilon-greedily on the mean Q of layers ``1..p+1``
        (layer ``p+1`` alone without ``average_predictions``), contexts carried, quirk Q2 applied."""
        q, new_context, _ = self.network.step(params, obs, context)  # [L_layers, P, N, A]
        q_policy = jnp.einsum("pl,lpna->pna", self.network.policy_weights(), self.network.q_values(q))
        action, explored = epsilon_greedy(key, q_policy, self.config.eval_epsilon)
        return action, self._keep_context_on_explore(explored, context, new_context)


def make_agent(config: Config, env: Environment, spec: AlgoSpec) -> QLearningAgent:
    """The agent factory of the ``"q-learning"`` rows of :data:`purejax_ad.algos.ALGO_SPECS`."""
    return QLearningAgent(config, env, spec)

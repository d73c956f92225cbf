"""A test-only algorithm: linear Q-learning, added the way ``docs/architecture.md`` says (one module, one row).

``Q(s, a) = s . W[:, a] + b[a]``, plain one-step Q-learning targets (no double Q) from a target copy, single replayed
transitions, epsilon-greedy acting. It reuses the package's pieces (epsilon schedule, optimiser, target rule)
and implements :class:`purejax_ad.state.Agent`; :data:`TOY_SPEC` is its table row.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from purejax_ad.algos import AlgoSpec
from purejax_ad.evaluation import epsilon_greedy
from purejax_ad.hyperparams import Hyperparams, optimizer_for, update_target
from purejax_ad.q_learning import epsilon_schedule
from purejax_ad.replay import prepare_transitions
from purejax_ad.state import Acting, LearnerState


class LinearQNetwork:
    """One learning unit, no context: ``q_values(params, obs [..., obs_size]) -> [..., A]``."""

    num_layers = 1

    def __init__(self, obs_size: int, num_actions: int):
        self.obs_size, self.num_actions = obs_size, num_actions

    def initial_context(self, batch_shape=()) -> tuple:
        return ()

    def q_values(self, params, obs):
        return obs @ params["w"] + params["b"]


class LinearQAgent:
    sequence_length = 1
    num_eval_policies = 1
    eval_uses_key = True

    def __init__(self, config, env, spec):
        self.config = config
        self.network = LinearQNetwork(env.obs_size, env.num_actions)

    def init_learner(self, key, hyper: Hyperparams) -> LearnerState:
        params = ({"w": jnp.zeros((self.network.obs_size, self.network.num_actions)),
                   "b": jnp.zeros((self.network.num_actions,))},)
        return LearnerState(params, params, (optimizer_for(hyper).init(params[0]),), jnp.zeros((), jnp.int32))

    def stored_example(self):
        return jnp.zeros((), jnp.int32), ()

    def exploration(self, env_steps, hyper):
        return epsilon_schedule(env_steps, self.config, hyper)

    def act(self, params, actor, key, env_steps, hyper, warmup) -> Acting:
        q = self.network.q_values(params[0], actor.obs)
        action, _ = epsilon_greedy(key, q, self.exploration(env_steps, hyper))
        return Acting(action, action, (), ())

    def update(self, learner: LearnerState, window, hyper: Hyperparams):
        batch = prepare_transitions(window)
        q_next = jnp.max(self.network.q_values(learner.target_params[0], batch.next_obs), axis=-1)
        y = batch.reward + hyper.gamma * jnp.where(batch.terminated, 0.0, q_next)

        def loss(p):
            q = jnp.take_along_axis(self.network.q_values(p, batch.obs), batch.action[:, None], axis=-1)[:, 0]
            return jnp.mean((q - y) ** 2), jnp.mean(q)

        (td_loss, q_mean), grads = jax.value_and_grad(loss, has_aux=True)(learner.params[0])
        tx = optimizer_for(hyper)
        updates, opt_state = tx.update(grads, learner.opt_state[0], learner.params[0])
        params = (optax.apply_updates(learner.params[0], updates),)
        num_updates = learner.num_updates + 1
        target = update_target(params, learner.target_params, hyper, num_updates, self.config.train_frequency)
        return LearnerState(params, target, (opt_state,), num_updates), {"td_loss": td_loss[None],
                                                                           "q_mean": q_mean[None]}

    def eval_policy(self, params, obs, context, key):
        action, _ = epsilon_greedy(key, self.network.q_values(params[0], obs), self.config.eval_epsilon)
        return action, context


#: The toy's row of the algorithm table.
TOY_SPEC = AlgoSpec("toy-linear-q", "q-learning", "discrete", "q-network", LinearQAgent, local_learning=False,
                    summary_keys=(("toy_gamma", "gamma"),), description="linear Q-learning (test only)")

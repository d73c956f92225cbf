"""The training program of the continuous-action algos ``ddpg`` and ``ndpg`` (spec §13.4).

:func:`make_actor_critic_train` returns a :class:`purejax_ad.trainer.Trainer` with exactly the per-seed
interface of :func:`purejax_ad.trainer.make_train` (``init``, ``warmup``, ``train_chunk``, ``evaluate``,
``train``, ``env_step``, ``learn``) and the same :class:`~purejax_ad.trainer.TrainState` /
:class:`~purejax_ad.trainer.ChunkMetrics`, so :mod:`purejax_ad.run` drives it unchanged: the agent counts
as one "layer" (``L = 1``), ``learner.params`` is a 1-tuple holding the whole agent.

* Warm-up: ``learning_starts`` env steps of uniform random actions in ``[-1, 1]``, no updates.
* Then a ``lax.scan`` of "``train_frequency`` env steps of the behaviour policy, one update" (as
  :mod:`purejax_ad.trainer`). Behaviour: ddpg ``clip(μ(s) + N(0, exploration_noise²))``; ndpg the
  node-perturbed net of :func:`purejax_ad.ddpg.ndpg_explore`.
* Replay: the compact buffer of :mod:`purejax_ad.replay`, sampled as single steps (sequence length 1);
  a step stores the float32 ``[m]`` action taken and, for ndpg, the hidden pre-activation noise as extras;
  a sampled batch is a :class:`purejax_ad.ddpg.Transition`.
* Evaluation: the noise-free policy, ``num_eval_episodes`` episodes capped at ``eval_max_steps``; ``[1]``.
* Metrics: ``td_loss`` / ``q_mean`` ``[1]`` (ddpg: the critic's; ndpg: means over all neurons' critics),
  ``epsilon`` = ``exploration_noise``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from purejax_ad import ad_dqn, ddpg
from purejax_ad.ad_dqn import Hyperparams
from purejax_ad.config import Config
from purejax_ad.envs import Environment
from purejax_ad.replay import StoredStep, make_replay, obs_codec, pack_flags
from purejax_ad.trainer import Trainer, TrainState, make_chunk_loop, record_returns


class ActorCriticNetwork(NamedTuple):
    """Describes the agent (the host loop needs ``num_layers``; the agent is one "layer").

    Attributes:
      algo: ``"ddpg"`` or ``"ndpg"``. obs_size / action_dim: ``obs_size`` and ``m``.
      net_arch: hidden widths of the actor (and of ddpg's critic). critic: ``"mlp"`` (ddpg),
      ``"linear"`` or ``"compatible"`` (ndpg per-neuron critics).
    """

    algo: str
    obs_size: int
    action_dim: int
    net_arch: tuple
    critic: str

    @property
    def num_layers(self) -> int:
        return 1

    def init(self, key: jax.Array):
        if self.algo == "ddpg":
            return ddpg.ddpg_init(key, self.obs_size, self.action_dim, self.net_arch)
        return ddpg.ndpg_init(key, self.obs_size, self.action_dim, self.net_arch, self.critic)

    def policy(self, params, obs: jax.Array) -> jax.Array:
        """Noise-free action ``[..., m]`` for ``obs [..., obs_size]``."""
        if self.algo == "ddpg":
            return ddpg.ddpg_actor(params.actor, obs)
        return ddpg.ndpg_policy(params.actor, obs)


class ACActorState(NamedTuple):
    """Acting state of one seed's ``num_envs`` envs: env states, ``obs [E, obs_size]``, running
    ``episode_return [E]`` and ``episode_length [E]``."""

    env_state: object
    obs: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array


def make_actor_critic_train(config: Config, env: Environment) -> Trainer:
    """Build the pure per-seed training functions of ddpg / ndpg on a continuous-action ``env``."""
    c = config
    if not env.action_dim:
        raise ValueError(f"{c.algo} needs continuous actions; {env.env_id} has discrete ones")
    network = ActorCriticNetwork(c.algo, env.obs_size, env.action_dim, tuple(c.net_arch),
                                 "mlp" if c.algo == "ddpg" else c.ndpg_critic)
    default_hyper = Hyperparams.from_values(c)
    E, m = c.num_envs, env.action_dim
    replay = make_replay(obs_codec(env), E, c.effective_buffer_size, c.batch_size, 1, env.max_episode_steps)

    def optimizers(hyper: Hyperparams):
        """(critic, actor) optax transformations; their values live in the optimiser state (traced)."""
        if c.algo == "ddpg":
            make = lambda lr: ad_dqn.make_optimizer(lr, hyper.max_grad_norm, hyper.adam_b1, hyper.adam_b2,
                                                    hyper.adam_eps, c.lr_decay_updates)
        else:
            make = ddpg.local_optimizer
        return make(hyper.learning_rate), make(jnp.asarray(c.actor_learning_rate, jnp.float32))

    tx_critic, tx_actor = optimizers(default_hyper)

    def noise_example(batch_shape=()):
        if c.algo == "ddpg":
            return ()
        return tuple(jnp.zeros((*batch_shape, d), jnp.float32) for d in c.net_arch)

    def init(key: jax.Array, hyper: Hyperparams | None = None) -> TrainState:
        hyper = default_hyper if hyper is None else hyper
        k_params, k_env, key = jax.random.split(key, 3)
        params = network.init(k_params)
        txc, txa = optimizers(hyper)
        learner = ddpg.ACLearnerState((params,), (jax.tree.map(jnp.copy, params),),
                                      (txc.init(params.critic), txa.init(params.actor)), jnp.zeros((), jnp.int32))
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_env, E))
        actor = ACActorState(env_state, obs, jnp.zeros((E,), jnp.float32), jnp.zeros((E,), jnp.int32))
        example = StoredStep(replay.codec.encode(jnp.zeros((env.obs_size,), jnp.float32)),
                             jnp.zeros((m,), jnp.float32), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.uint8),
                             noise_example())
        return TrainState(actor, learner, replay.init(example), key, hyper, jnp.zeros((), jnp.int32),
                          jnp.zeros((c.return_window,), jnp.float32), jnp.zeros((), jnp.int32))

    def behaviour(params, obs, key, random: bool):
        """``(action [E, m], noise)`` of the behaviour policy (uniform random during the warm-up)."""
        k_act, k_rand = jax.random.split(key)
        if c.algo == "ddpg":
            action, noise = ddpg.ddpg_actor(params.actor, obs), ()
            action = jnp.clip(action + c.exploration_noise * jax.random.normal(k_act, action.shape), -1.0, 1.0)
        else:
            action, noise = ddpg.ndpg_explore(params.actor, obs, k_act, c.node_noise, c.exploration_noise)
        if random:
            action = jax.random.uniform(k_rand, (E, m), minval=-1.0, maxval=1.0)
        return action, noise

    def step(state: TrainState, random: bool) -> TrainState:
        """One vectorised step of this seed's envs: act, step, store, track episodes."""
        actor = state.actor
        key, k_act, k_env = jax.random.split(state.key, 3)
        action, noise = behaviour(state.learner.params[0], actor.obs, k_act, random)
        out = jax.vmap(env.step)(jax.random.split(k_env, E), actor.env_state, action)
        step = StoredStep(replay.codec.encode(actor.obs), action, out.reward,
                          pack_flags(out.terminated, out.truncated, jnp.zeros_like(out.terminated)), noise)
        buffer_state = replay.add(state.buffer_state, step, out.final_obs)
        ended = out.terminated | out.truncated
        episode_return = actor.episode_return + out.reward
        recent, count = record_returns(state.recent_returns, state.num_episodes, episode_return, ended)
        actor = ACActorState(out.state, out.obs, jnp.where(ended, 0.0, episode_return),
                             jnp.where(ended, 0, actor.episode_length + 1))
        return state._replace(actor=actor, buffer_state=buffer_state, key=key, env_steps=state.env_steps + E,
                              recent_returns=recent, num_episodes=count)

    def env_step(state: TrainState, _=None) -> tuple[TrainState, None]:
        return step(state, False), None

    def warmup(state: TrainState) -> TrainState:
        state, _ = jax.lax.scan(lambda s, _: (step(s, True), None), state, length=c.warmup_iters)
        return state

    def learn(state: TrainState) -> tuple[TrainState, dict]:
        """Sample a batch of transitions and update the agent once."""
        key, k_sample = jax.random.split(state.key)
        w = replay.sample(state.buffer_state, k_sample, state.actor.obs)
        batch = ddpg.Transition(w.obs[:, 0], w.action[:, 0], w.reward[:, 0], w.terminated[:, 0], w.next_obs,
                                tuple(x[:, 0] for x in w.extras))
        if c.algo == "ddpg":
            learner, metrics = ddpg.ddpg_update(tx_critic, tx_actor, state.learner, batch, state.hyper,
                                                c.train_frequency)
        else:
            learner, metrics = ddpg.ndpg_update(c.ndpg_critic, tx_critic, tx_actor, state.learner, batch,
                                                state.hyper, c.train_frequency)
        return state._replace(learner=learner, key=key), metrics

    train_chunk, train = make_chunk_loop(c, 1, init, warmup, env_step, learn,
                                         lambda state: jnp.asarray(c.exploration_noise, jnp.float32))

    def evaluate(state: TrainState, key: jax.Array) -> jax.Array:
        """``[1]``: mean return of the noise-free policy over ``num_eval_episodes`` fresh episodes."""
        params, n = state.learner.params[0], c.num_eval_episodes
        k_reset, k_run = jax.random.split(key)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(k_reset, n))

        def cond(carry):
            t, _, _, _, done, _ = carry
            return (t < c.eval_max_steps) & ~jnp.all(done)

        def body(carry):
            t, key, obs, env_state, done, ret = carry
            key, k_step = jax.random.split(key)
            out = jax.vmap(env.step)(jax.random.split(k_step, n), env_state, network.policy(params, obs))
            ret = ret + jnp.where(done, 0.0, out.reward)
            return t + 1, key, out.obs, out.state, done | out.terminated | out.truncated, ret

        carry = (jnp.zeros((), jnp.int32), k_run, obs, env_state, jnp.zeros((n,), bool), jnp.zeros((n,), jnp.float32))
        ret = jax.lax.while_loop(cond, body, carry)[-1]
        return jnp.mean(ret)[None]

    return Trainer(c, network, init, warmup, train_chunk, evaluate, train, lambda state: env_step(state)[0], learn,
                   replay)

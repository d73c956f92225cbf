"""DeepMind Control in MJX (MuJoCo Playground) behind the gymnax-style interface the trainer uses.

docs/algorithm.md §DeepMind Control (the AD paper's DMC setting):

* user-facing ids ``dmc/<domain>-<task>`` as the paper names the tasks (``dmc/walker-walk``), mapped to
  Playground's (``WalkerWalk``); Playground's own names are accepted as aliases;
* always ``impl="jax"`` (Playground's default MuJoCo Warp is not JAX and ~150x slower on CPU);
* Playground envs neither truncate nor reset by themselves: :class:`PlaygroundEnv` truncates at
  ``episode_length`` (1000) control steps, never reports a terminal state (DMC tasks have none; a
  NaN physics state, Playground's only ``done``, is reported as terminated so nothing bootstraps from
  it), and auto-resets like gymnax 1.0 (``info["final_observation"]`` is the pre-reset observation);
* observations flattened to float32; ``action_repeat`` control steps per env step (1 = none, the paper);
* **bang-bang discretization** (docs/algorithm.md §DeepMind Control): discrete action ``k`` is the vertex of ``{-1, +1}^m`` at
  position ``k`` of ``itertools.product([-1, 1], repeat=m)`` (first dimension = most significant bit,
  bit 1 = +1), so there are ``2^m`` actions;
* quirk Q7 ``fixed_env_reset_key``: the official code builds every DMC env with ``random=1``, so the
  initial-state randomness is one fixed stream, the same for every run, env and episode count; with
  it on, reset keys come from ``fold_in(PRNGKey(1), episode_index)`` instead of the agent's key.

Playground is imported lazily: gymnax-only users never pay its import time.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

#: User-facing id -> Playground DMC id (all 25 Playground ships without downloads, README "DeepMind Control (MJX)").
DMC_ENVS: dict[str, str] = {
    "dmc/acrobot-swingup": "AcrobotSwingup",
    "dmc/acrobot-swingup_sparse": "AcrobotSwingupSparse",
    "dmc/ball_in_cup-catch": "BallInCup",
    "dmc/cartpole-balance": "CartpoleBalance",
    "dmc/cartpole-balance_sparse": "CartpoleBalanceSparse",
    "dmc/cartpole-swingup": "CartpoleSwingup",
    "dmc/cartpole-swingup_sparse": "CartpoleSwingupSparse",
    "dmc/cheetah-run": "CheetahRun",
    "dmc/finger-spin": "FingerSpin",
    "dmc/finger-turn_easy": "FingerTurnEasy",
    "dmc/finger-turn_hard": "FingerTurnHard",
    "dmc/fish-swim": "FishSwim",
    "dmc/hopper-hop": "HopperHop",
    "dmc/hopper-stand": "HopperStand",
    "dmc/humanoid-stand": "HumanoidStand",
    "dmc/humanoid-walk": "HumanoidWalk",
    "dmc/humanoid-run": "HumanoidRun",
    "dmc/pendulum-swingup": "PendulumSwingup",
    "dmc/point_mass-easy": "PointMass",
    "dmc/reacher-easy": "ReacherEasy",
    "dmc/reacher-hard": "ReacherHard",
    "dmc/swimmer-swimmer6": "SwimmerSwimmer6",
    "dmc/walker-run": "WalkerRun",
    "dmc/walker-stand": "WalkerStand",
    "dmc/walker-walk": "WalkerWalk",
}
#: Aliases: Playground's names and the official AD code's short names (docs/algorithm.md §DeepMind Control).
DMC_ALIASES: dict[str, str] = {
    **{name: env_id for env_id, name in DMC_ENVS.items()},
    **{f"dmc/{short}": f"dmc/{full}" for short, full in [
        ("walker", "walker-walk"), ("runner", "walker-run"), ("cheetah", "cheetah-run"),
        ("reacher_easy", "reacher-easy"), ("reacher_hard", "reacher-hard"), ("hopper", "hopper-hop"),
        ("fish", "fish-swim"), ("acrobot", "acrobot-swingup")]},
}
#: Action dimensions of the DMC tasks (docs/algorithm.md §DeepMind Control), for checks before anything is built.
DMC_ACTION_DIMS: dict[str, int] = {
    "AcrobotSwingup": 1, "AcrobotSwingupSparse": 1, "BallInCup": 2, "CartpoleBalance": 1,
    "CartpoleBalanceSparse": 1, "CartpoleSwingup": 1, "CartpoleSwingupSparse": 1, "CheetahRun": 6,
    "FingerSpin": 2, "FingerTurnEasy": 2, "FingerTurnHard": 2, "FishSwim": 5, "HopperHop": 4,
    "HopperStand": 4, "HumanoidStand": 21, "HumanoidWalk": 21, "HumanoidRun": 21, "PendulumSwingup": 1,
    "PointMass": 2, "ReacherEasy": 2, "ReacherHard": 2, "SwimmerSwimmer6": 5, "WalkerRun": 6,
    "WalkerStand": 6, "WalkerWalk": 6,
}
#: Episode length of every DMC task in control steps (docs/algorithm.md §DeepMind Control).
EPISODE_LENGTH = 1000
#: The official code's fixed task seed (``random=1``, quirk Q7).
FIXED_TASK_SEED = 1


def resolve_dmc_id(env_id: str) -> str | None:
    """The canonical ``dmc/...`` id of ``env_id`` (an id or alias), or ``None`` if it is not a DMC task."""
    env_id = DMC_ALIASES.get(env_id, env_id)
    return env_id if env_id in DMC_ENVS else None


def num_bang_bang_actions(action_dim: int) -> int:
    """``2^m`` discrete actions for an ``m``-dimensional action (docs/algorithm.md §DeepMind Control)."""
    return 2 ** int(action_dim)


def bang_bang_action(index: jax.Array, action_dim: int) -> jax.Array:
    """Discrete index ``k`` -> vertex of ``{-1, +1}^m`` (docs/algorithm.md §DeepMind Control).

    The enumeration is ``itertools.product([-1, 1], repeat=m)``: bit ``m-1-i`` of ``k`` (the first
    dimension is the most significant bit) gives dimension ``i``, bit 1 -> +1.

    Args:
      index: int array ``[...]`` in ``[0, 2^m)``.
      action_dim: ``m``.

    Returns:
      float32 ``[..., m]`` with entries +-1.
    """
    shifts = jnp.arange(action_dim - 1, -1, -1, dtype=jnp.int32)
    bits = (jnp.asarray(index, jnp.int32)[..., None] >> shifts) & 1
    return (2 * bits - 1).astype(jnp.float32)


def bang_bang_index(action: jax.Array) -> jax.Array:
    """Inverse of :func:`bang_bang_action`: ``[..., m]`` +-1 (sign taken) -> int32 ``[...]`` index."""
    m = action.shape[-1]
    bits = (jnp.asarray(action) > 0).astype(jnp.int32)
    return jnp.sum(bits << jnp.arange(m - 1, -1, -1, dtype=jnp.int32), axis=-1)


def _install_reacher_shim() -> None:
    """Playground 0.2.0's Reacher compares mujoco versions as strings ("3.17.0" < "3.3.0") and then
    calls ``MjSpec.find_body``, absent in mujoco 3.x."""
    import mujoco

    if not hasattr(mujoco.MjSpec, "find_body"):
        mujoco.MjSpec.find_body = lambda self, name: self.body(name)


def load_playground_env(env_id: str, **config_overrides: Any):
    """Load the raw Playground env of a DMC id with ``impl="jax"`` (never Warp).

    Raises:
      ValueError: ``env_id`` is not a DMC id.
    """
    dmc_id = resolve_dmc_id(env_id)
    if dmc_id is None:
        raise ValueError(f"{env_id!r} is not a DMC task; valid: {', '.join(DMC_ENVS)}")
    _install_reacher_shim()
    from mujoco_playground import registry

    return registry.load(DMC_ENVS[dmc_id], config_overrides={"impl": "jax", **config_overrides})


class DMCState(NamedTuple):
    """State of one :class:`PlaygroundEnv`.

    Attributes:
      pipeline: Playground ``State`` (mjx data, obs, reward, done, metrics, info).
      time: ``[]`` int32 env steps taken in this episode.
      episode: ``[]`` int32 episodes started so far by this env (the fixed reset stream's counter, Q7).
    """

    pipeline: Any
    time: jax.Array
    episode: jax.Array


class PlaygroundEnv:
    """A Playground DMC task with gymnax 1.0's ``reset`` / six-value ``step`` (see the module docstring).

    ``params`` arguments are accepted and ignored (gymnax signature). Actions: an int index when
    ``discrete`` (bang-bang), else float32 ``[action_dim]`` in ``[-1, 1]`` (clipped).
    """

    def __init__(self, env_id: str, discrete: bool, episode_length: int = EPISODE_LENGTH, action_repeat: int = 1,
                 fixed_reset_key: bool = True):
        self.env_id = resolve_dmc_id(env_id)
        self.env = load_playground_env(env_id)
        self.discrete = discrete
        self.episode_length = int(episode_length)
        self.action_repeat = int(action_repeat)
        self.fixed_reset_key = fixed_reset_key
        self.action_dim = int(self.env.action_size)
        obs_size = self.env.observation_size
        self.obs_size = int(np.prod(obs_size)) if not isinstance(obs_size, dict) else int(
            sum(np.prod(s) for s in obs_size.values()))

    def _reset_key(self, key: jax.Array, episode: jax.Array) -> jax.Array:
        if self.fixed_reset_key:
            return jax.random.fold_in(jax.random.PRNGKey(FIXED_TASK_SEED), episode)
        return key

    @staticmethod
    def _flat_obs(pipeline) -> jax.Array:
        leaves = jax.tree.leaves(pipeline.obs)
        return jnp.concatenate([jnp.ravel(x) for x in leaves]).astype(jnp.float32)

    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, DMCState]:
        """``(obs [obs_size] float32, state)`` of a fresh episode."""
        episode = jnp.zeros((), jnp.int32)
        pipeline = self.env.reset(self._reset_key(key, episode))
        return self._flat_obs(pipeline), DMCState(pipeline, jnp.zeros((), jnp.int32), episode + 1)

    def step(self, key: jax.Array, state: DMCState, action: jax.Array, params: Any = None):
        """One env step: ``(obs, state, reward, terminated, truncated, info)`` as gymnax 1.0.

        Rewards are summed over ``action_repeat`` control steps. ``truncated`` at ``episode_length``
        env steps; ``terminated`` only on non-finite physics. Then auto-reset.
        """
        vector = bang_bang_action(action, self.action_dim) if self.discrete else jnp.clip(
            jnp.asarray(action, jnp.float32), -1.0, 1.0)
        pipeline, reward = state.pipeline, jnp.zeros((), jnp.float32)
        for _ in range(self.action_repeat):
            pipeline = self.env.step(pipeline, vector)
            reward = reward + pipeline.reward.astype(jnp.float32)
        final_obs = self._flat_obs(pipeline)
        time = state.time + 1
        terminated = (pipeline.done > 0) | ~jnp.all(jnp.isfinite(final_obs))
        truncated = (time >= self.episode_length) & ~terminated
        ended = terminated | truncated
        reset_pipeline = self.env.reset(self._reset_key(key, state.episode))
        reset_state = DMCState(reset_pipeline, jnp.zeros((), jnp.int32), state.episode + 1)
        reset_obs = self._flat_obs(reset_pipeline)
        new_state = jax.tree.map(lambda a, b: jnp.where(ended, a, b), reset_state,
                                 DMCState(pipeline, time, state.episode))
        obs = jnp.where(ended, reset_obs, final_obs)
        info = {"discount": 1.0 - terminated.astype(jnp.float32), "terminated": terminated, "truncated": truncated,
                "final_observation": final_obs}
        return obs, new_state, jnp.where(jnp.isfinite(reward), reward, 0.0), terminated, truncated, info

"""Env registry and the terminated/truncated rules (docs/algorithm.md §Environments, quirks Q10, Q11)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from purejax_ad.envs import ENV_REGISTRY, UnknownEnvError, canonical_env_id, make_env


def test_unknown_env_lists_valid_ids():
    with pytest.raises(UnknownEnvError) as e:
        canonical_env_id("Pong-v0")
    for env_id in ENV_REGISTRY:
        assert env_id in str(e.value)


@pytest.mark.parametrize("env_id, obs_size, num_actions", [
    ("CartPole-v1", 4, 2), ("Acrobot-v1", 6, 3), ("MountainCar-v0", 2, 3), ("Breakout-MinAtar", 400, 3),
    ("Asterix-MinAtar", 400, 5), ("Freeway-MinAtar", 700, 3), ("SpaceInvaders-MinAtar", 600, 4),
    ("Seaquest-MinAtar", 1000, 6), ("MinAtar/Breakout-v1", 400, 3)])
def test_sizes_match_the_spec(env_id, obs_size, num_actions):
    env = make_env(env_id)
    assert (env.obs_size, env.num_actions) == (obs_size, num_actions)
    obs, _ = env.reset(jax.random.key(0))
    assert obs.shape == (obs_size,) and obs.dtype == jnp.float32


def rollout(env, steps, action=0):
    """Terminated / truncated flags of ``steps`` steps with a constant action."""
    def body(carry, key):
        state = carry
        out = env.step(key, state, jnp.int32(action))
        return out.state, (out.terminated, out.truncated, out.state)
    _, state = env.reset(jax.random.key(0))
    _, (term, trunc, states) = jax.lax.scan(body, state, jax.random.split(jax.random.key(1), steps))
    return term, trunc, states


def test_cartpole_time_limit_is_a_truncation():
    env = make_env("CartPole-v1")
    # Push left forever: the pole falls (terminated), never truncated that early.
    term, trunc, _ = rollout(env, 200)
    assert bool(term.any()) and not bool(trunc.any())
    assert not bool((term & trunc).any())


def test_freeway_end_is_termination_in_original_mode_and_truncation_in_gymnax_mode():
    original = make_env("Freeway-MinAtar", sticky_action_prob=0.0, minatar_time_limit="original")
    term, trunc, _ = rollout(original, 2500)
    assert bool(term[2499]) and not bool(trunc.any()) and not bool(term[:2499].any())
    gymnax_mode = make_env("Freeway-MinAtar", sticky_action_prob=0.0, minatar_time_limit="gymnax")
    term, trunc, _ = rollout(gymnax_mode, 2500)
    assert bool(trunc[2499]) and not bool(term.any())


def test_minatar_original_mode_has_no_time_limit():
    assert make_env("Breakout-MinAtar", minatar_time_limit="original").max_episode_steps > 10**8
    assert make_env("Breakout-MinAtar", minatar_time_limit="gymnax").max_episode_steps == 1000


def test_sticky_actions_default_and_reset_of_last_action():
    env = make_env("Breakout-MinAtar")
    _, state = env.reset(jax.random.key(0))
    assert hasattr(state, "last_action")  # sticky wrapper on by default for MinAtar (p = 0.1)
    assert not hasattr(make_env("Breakout-MinAtar", sticky_action_prob=0.0).reset(jax.random.key(0))[1],
                       "last_action")
    term, trunc, states = rollout(env, 3000, action=1)
    ended = term | trunc
    assert bool(ended.any())
    # after an episode end the remembered action is forgotten (original MinAtar resets it to 0)
    assert bool(jnp.all(jnp.where(ended, states.last_action == 0, True)))
    assert bool(jnp.any(states.last_action == 1))


def test_minatar_and_classic_runs_need_no_mujoco_brax_or_playground():
    """The GPU image and Colab may lack the MJX stack: the CLI, the host loop and a MinAtar env import and
    build with mujoco, mujoco_playground, brax and warp made unimportable (DMC imports them lazily)."""
    import subprocess
    import sys

    code = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("mujoco", "mujoco_playground", "brax", "warp"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import purejax_ad.train, purejax_ad.run, purejax_ad.sac
from purejax_ad.envs import make_env
print(make_env("Breakout-MinAtar").obs_size)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "400", proc.stderr

"""DeepMind Control in MJX (docs/algorithm.md §DeepMind Control): bang-bang discretization, the Playground adapter's truncation and
auto-reset, the fixed reset stream (quirk Q7), and config checks made before anything is built."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejax_ad import dmc
from purejax_ad.checks import validate
from purejax_ad.config import Config
from purejax_ad.envs import action_space_kind, canonical_env_id, env_suite


@pytest.mark.parametrize("m", [1, 2, 4, 6])
def test_bang_bang_order_is_itertools_product(m):
    expected = np.array(list(itertools.product([-1, 1], repeat=m)), np.float32)  # the official enumeration
    got = np.asarray(dmc.bang_bang_action(jnp.arange(2**m), m))
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(np.asarray(dmc.bang_bang_index(jnp.asarray(expected))), np.arange(2**m))


def test_action_counts_of_the_paper_tasks():
    for env_id, count in [("dmc/walker-walk", 64), ("dmc/cheetah-run", 64), ("dmc/hopper-hop", 16),
                          ("dmc/reacher-hard", 4), ("dmc/fish-swim", 32), ("dmc/acrobot-swingup", 2)]:
        assert dmc.num_bang_bang_actions(dmc.DMC_ACTION_DIMS[dmc.DMC_ENVS[env_id]]) == count


def test_ids_and_aliases():
    assert canonical_env_id("WalkerWalk") == "dmc/walker-walk"
    assert canonical_env_id("dmc/runner") == "dmc/walker-run"  # the official code's short name
    assert env_suite("dmc/cheetah-run") == "dmc" and action_space_kind("dmc/cheetah-run") == "both"
    assert len(dmc.DMC_ENVS) == 25 and set(dmc.DMC_ENVS.values()) == set(dmc.DMC_ACTION_DIMS)


def test_bad_dmc_configs_fail_before_building():
    problems = validate(Config(env="dmc/humanoid-walk", algo="ad-dqn"))  # 2^21 bang-bang actions
    assert any("2097152" in p and "max_discrete_actions" in p for p in problems), problems
    assert not [p for p in validate(Config(env="dmc/humanoid-walk", algo="ad-dqn", max_discrete_actions=2**21))
                if "bang-bang" in p]
    assert any("action_repeat" in p for p in validate(Config(env="dmc/cartpole-balance", action_repeat=0)))
    assert any("dmc/walker-walk" in p for p in validate(Config(env="dmc/walker-jog")))  # lists the valid ids
    assert any("continuous" in p for p in validate(Config(env="CartPole-v1", algo="ddpg")))


@pytest.fixture(scope="module")
def cartpole_rollout():
    """12 steps of a 5-step-episode CartpoleBalance (fixed reset stream), one compile."""
    env = dmc.PlaygroundEnv("dmc/cartpole-balance", discrete=True, episode_length=5)

    @jax.jit
    def rollout(key):
        obs0, state = env.reset(key)

        def body(state, k):
            obs, state, reward, term, trunc, info = env.step(k, state, jnp.int32(1))
            return state, (obs, reward, term, trunc, info["final_observation"], state.time, state.episode)

        _, out = jax.lax.scan(body, state, jax.random.split(key, 12))
        return obs0, out

    return env, rollout


def test_adapter_truncates_and_auto_resets(cartpole_rollout):
    env, rollout = cartpole_rollout
    obs0, (obs, reward, term, trunc, final_obs, time, episode) = jax.device_get(rollout(jax.random.key(3)))
    assert obs.shape == (12, 5) and obs.dtype == np.float32
    assert not term.any(), "DMC tasks have no terminal states"
    np.testing.assert_array_equal(np.nonzero(trunc)[0], [4, 9])  # after 5 and 10 steps
    np.testing.assert_array_equal(time, [1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2])
    np.testing.assert_array_equal(episode, [1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3])
    np.testing.assert_array_equal(obs[~trunc], final_obs[~trunc])  # no reset: obs is the reached one
    assert not np.allclose(obs[4], final_obs[4])  # at a truncation obs is the new episode's first
    assert np.all(np.isfinite(reward)) and np.all((reward >= 0) & (reward <= 1))
    # Q7 (fixed stream): episode k starts from fold_in(PRNGKey(1), k-1) whatever the agent's keys are.
    obs0_other, (obs_other, *_) = jax.device_get(rollout(jax.random.key(99)))
    np.testing.assert_allclose(obs0, obs0_other)
    np.testing.assert_allclose(obs[4], obs_other[4])
    np.testing.assert_allclose(obs[9], obs_other[9])
    assert not np.allclose(obs0, obs[4])  # but successive episodes differ


def test_bang_bang_action_reaches_the_simulator(cartpole_rollout):
    env, _ = cartpole_rollout
    _, state = jax.jit(env.reset)(jax.random.key(0))
    step = jax.jit(env.step)
    push_right, push_left = step(jax.random.key(1), state, jnp.int32(1)), step(jax.random.key(1), state, jnp.int32(0))
    # cart velocity (obs index 3 = qvel of the slider) moves with the sign of the force
    assert float(push_right[0][3]) > float(state.pipeline.obs[3]) > float(push_left[0][3])


def test_checkpoint_round_trips_zero_size_arrays(tmp_path):
    """MJX data has zero-size fields (e.g. ``act`` without actuator activations), which orbax refuses."""
    from purejax_ad.checkpoint import Checkpointer

    state = {"a": jnp.arange(3.0), "empty": jnp.zeros((2, 0)), "nested": (jnp.ones(2), jnp.zeros((0,), jnp.int32)),
             "key": jax.random.key(4)}
    checkpointer = Checkpointer(tmp_path)
    checkpointer.save(7, state, {"rows": 1})
    restored, host, _ = checkpointer.restore(jax.eval_shape(lambda: state))
    assert host["rows"] == 1
    for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
        assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(restored["a"], state["a"])
    np.testing.assert_array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(state["key"]))


@pytest.mark.parametrize("algo", ["ad-dqn", "ddpg"])
def test_cli_smoke_run_on_cartpole_balance(tmp_path, algo):
    """The whole program (MJX env inside the compiled scan) from the CLI, tiny sizes: standard outputs."""
    import csv
    import json
    import subprocess
    import sys

    out = tmp_path / algo
    args = ["--preset", "dmc-fast", "--algo", algo, "--total-timesteps", "1200", "--learning-starts", "400",
            "--log-interval", "400", "--eval-interval", "800", "--num-seeds", "2", "--batch-size", "16",
            "--net-arch", "8", "8", "--num-heads", "2", "--context-size", "3", "--num-eval-episodes", "1",
            "--eval-max-steps", "20", "--out", str(out)]
    proc = subprocess.run([sys.executable, "-m", "purejax_ad.train", *args], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == "dmc/cartpole-balance" and summary["algo"] == algo
    assert summary["dmc"]["actions"] == ("continuous" if algo == "ddpg" else "bang-bang, 2 actions")
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["env_steps"]) for r in rows] == [800, 800, 1200, 1200]
    assert all(np.isfinite(float(r["td_loss_l1"])) for r in rows)
    evals = list(csv.DictReader((out / "eval.csv").open()))
    # 20-step evaluation episodes, reward per step in [0, 1]
    assert evals and all(0.0 <= float(r["mean_return"]) <= 20.0 for r in evals)
    if algo != "ad-dqn":
        return
    # The final parameters evaluate to the run's final evaluation; --render draws the episode with MuJoCo
    # (headless: purejax_ad.evaluate sets MUJOCO_GL=egl when there is no display).
    gif = tmp_path / "cartpole-balance.gif"
    proc = subprocess.run([sys.executable, "-m", "purejax_ad.evaluate", str(out), "--render", str(gif)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(csv.DictReader((out / "evaluate-final.csv").open())) == [r for r in evals if r["env_steps"] == "1200"]
    render = json.loads((out / "evaluate-final.json").read_text())["render"]
    assert render["frames"] == 20  # DMC episodes end only at the time limit, here --eval-max-steps
    from PIL import Image

    with Image.open(gif) as image:
        assert 2 <= image.n_frames <= 20 and image.size == (320, 240)  # Pillow merges identical consecutive frames
        frame = np.asarray(image.convert("RGB"))
    assert frame.std() > 0  # not a blank image

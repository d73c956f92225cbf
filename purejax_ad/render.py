"""Drawing one evaluation episode of a trained run as a GIF (``python -m purejax_ad.evaluate --render``).

The episode is the first evaluation episode of the full policy (AD: the mean Q of all layers, the acting
policy) of one run, with the run's evaluation key (:func:`purejax_ad.evaluation.episode_trajectory`).
Frames are drawn by what the environments' libraries provide, no drawing code of ours:

* gymnax (classic control, MinAtar): ``gymnax.visualize.Visualizer`` (matplotlib animation, written with
  matplotlib's ``PillowWriter``). MinAtar frames are matplotlib images; classic-control frames come from
  gymnasium's renderer, which needs ``pygame`` (``pip install -e ".[render]"``, gymnasium's
  ``classic-control`` extra);
* DeepMind Control (MJX): MuJoCo Playground's ``env.render`` (``mujoco.Renderer``), written with Pillow. It
  needs an OpenGL context: without a display ``purejax_ad.evaluate`` sets ``MUJOCO_GL=egl`` (Mesa's EGL works
  on a CPU-only machine); ``MUJOCO_GL=osmesa`` is the other headless choice.

docs/running.md, "Trained agents".
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import jax
import numpy as np

from purejax_ad.config import Config, ConfigError
from purejax_ad.envs import Environment, env_suite
from purejax_ad.evaluation import episode_trajectory
from purejax_ad.seeds import eval_keys, run_keys

#: Size of a DeepMind Control frame (pixels).
DMC_FRAME = (240, 320)


def check_render_request(path: Path, max_steps: int, seed: int, config_index: int, config: Config) -> None:
    """Refuse a render that cannot be made, before anything is compiled.

    Raises:
      ConfigError: not a ``.gif`` path or its folder missing, ``max_steps < 1``, no such seed or sweep config,
        or a classic-control env without ``pygame``.
    """
    problems = []
    if Path(path).suffix.lower() != ".gif":
        problems.append(f"--render {path}: the file must end in .gif")
    if not Path(path).absolute().parent.is_dir():
        problems.append(f"--render {path}: folder {Path(path).absolute().parent} does not exist")
    if max_steps < 1:
        problems.append(f"--render-max-steps must be >= 1, got {max_steps}")
    if not 0 <= seed < config.num_seeds:
        problems.append(f"--render-seed {seed}: the run has seeds 0..{config.num_seeds - 1}")
    if not 0 <= config_index < config.num_configs:
        problems.append(f"--render-config {config_index}: the run has sweep configs 0..{config.num_configs - 1}")
    if env_suite(config.env) == "classic" and importlib.util.find_spec("pygame") is None:
        problems.append(f"--render: drawing {config.env} uses gymnasium's classic-control renderer, which needs "
                        "pygame: pip install -e \".[render]\" (or pip install \"gymnasium[classic-control]\")")
    if problems:
        raise ConfigError("; ".join(problems))


def _to_host(tree):
    """Arrays -> numpy, typed PRNG keys left as they are (they have no numpy form)."""
    return jax.tree.map(lambda x: x if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else np.asarray(x), tree)


def render_run(result: dict, path: Path, seed: int = 0, config_index: int = 0, max_steps: int = 1000) -> dict:
    """Roll out and draw one episode of a run evaluated by :func:`purejax_ad.evaluate.evaluate_run`.

    Returns:
      ``{"path", "seed", "config", "policy", "frames", "return"}``: ``frames`` is the episode's length (one
      frame per state acted in), ``return`` its undiscounted return.

    Raises:
      ConfigError: the renderer failed (e.g. no OpenGL for MuJoCo); the message says what to install or set.
    """
    config, agent, env = result["config"], result["agent"], result["env"]
    run = config_index * config.num_seeds + seed
    group = next(g for g in result["groups"] if run in set(int(r) for r in g.runs))
    j = int(np.flatnonzero(np.asarray(group.runs) == run)[0])
    params = jax.tree.map(lambda x: np.asarray(x)[j], group.params)
    key = eval_keys(run_keys(config, np.asarray([run])), group.eval_index)[0]
    steps = min(max_steps, config.eval_max_steps)
    policy = agent.num_eval_policies - 1
    rollout = jax.jit(lambda p, k: episode_trajectory(agent, env, p, k, config.num_eval_episodes, steps, policy))
    states, rewards, length = rollout(params, key)
    length, rewards = int(length), np.asarray(rewards)[: int(length)]
    states = _to_host(jax.tree.map(lambda x: x[:length], states))
    if env.suite == "dmc":
        _dmc_gif(env, states, length, Path(path))
    else:
        _gymnax_gif(env, states, rewards, length, Path(path))
    return {"path": str(path), "seed": seed, "config": config_index, "policy": policy + 1, "frames": length,
            "return": float(rewards.sum())}


def _gymnax_gif(env: Environment, states, rewards: np.ndarray, length: int, path: Path) -> None:
    """``gymnax.visualize.Visualizer`` on the unwrapped env's states (titles: step and return so far)."""
    import matplotlib

    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # pygame (classic control) without a sound card
    matplotlib.use("Agg")
    from gymnax.visualize import Visualizer

    inner = env.env
    while hasattr(inner, "_env"):  # wrappers (sticky actions) keep the inner env's state in .env_state
        inner, states = inner._env, states.env_state
    sequence = [jax.tree.map(lambda x: x[t], states) for t in range(length)]
    try:
        Visualizer(inner, env.env_params, sequence, np.cumsum(rewards)).animate(str(path))
    except ImportError as e:
        raise ConfigError(f"--render: drawing {env.env_id} needs {e.name or e}: pip install -e \".[render]\"") from None


def _dmc_gif(env: Environment, states, length: int, path: Path) -> None:
    """MuJoCo Playground's renderer (``mujoco.Renderer``) on the episode's physics states, written by Pillow."""
    from PIL import Image

    playground = env.env.env
    pipelines = [jax.tree.map(lambda x: x[t], states.pipeline) for t in range(length)]
    try:
        frames = playground.render(pipelines, height=DMC_FRAME[0], width=DMC_FRAME[1])
    except Exception as e:  # noqa: BLE001 -- mujoco raises FatalError / OpenGL errors without a GL context
        gl = os.environ.get("MUJOCO_GL", "(unset: glfw, which needs a display)")
        raise ConfigError(f"--render: MuJoCo could not render {env.env_id} with MUJOCO_GL={gl} ({type(e).__name__}: "
                          f"{str(e).strip()[:150]}); headless rendering needs EGL (libegl1 and Mesa) with "
                          "MUJOCO_GL=egl, or OSMesa (libosmesa6) with MUJOCO_GL=osmesa") from None
    fps = min(50.0, 1.0 / (float(playground.dt) * env.env.action_repeat))
    images = [Image.fromarray(np.asarray(f)) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0)

"""Trained parameters: one small file per run, written when its training finishes, loadable in one call.

``RUN_DIR/params/seed_<s>.msgpack`` (with a sweep: ``config_<c>_seed_<s>.msgpack``) holds one run's online
parameters (``state.learner.params``: per-layer pytrees for AD, ``(params,)`` for a backprop network) and
what is needed to rebuild its network, without the replay buffer, optimiser states or targets: the run's
``config.json`` record, its swept hyperparameter values, the env steps it trained for, and the index of its
final evaluation in the run's stream of evaluation keys (:func:`purejax_ad.seeds.eval_keys`). The file is
``flax.serialization`` msgpack of a plain dict, so it also reads without purejax_ad
(``flax.serialization.msgpack_restore``). Layout: docs/running.md, "Trained agents".

``load_params(run_dir, seed=0)`` returns a :class:`TrainedAgent` ready for
:func:`purejax_ad.evaluation.evaluate` or the agent's ``eval_policy``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from purejax_ad.algos import make_agent
from purejax_ad.config import Config, ConfigError, config_from_record
from purejax_ad.envs import Environment, make_config_env
from purejax_ad.hyperparams import Hyperparams
from purejax_ad.outputs import config_record
from purejax_ad.state import Agent

#: Sub-directory of a run directory that holds the per-run parameter files.
PARAMS_DIR = "params"
#: ``format`` entry of every parameter file (bumped if the layout ever changes).
PARAMS_FORMAT = "purejax_ad.params/1"


class TrainedAgent(NamedTuple):
    """One trained run, rebuilt from its parameter file.

    Attributes:
      config: the run's :class:`~purejax_ad.config.Config` (a sweep's own values are in ``record["hyper"]``).
      env: the environment it trained on. agent: its :class:`purejax_ad.state.Agent` (network included).
      params: the online parameters, the agent's ``learner.params`` for one run (no run axis), ``jax.Array``s.
      record: the file's other entries: ``seed``, ``config_index``, ``run``, ``env_steps`` (per seed),
        ``eval_index`` (``None``: the run never evaluated), ``wave``, ``wave_size``, ``hyper``.
    """

    config: Config
    env: Environment
    agent: Agent
    params: tuple
    record: dict


def params_file(run_dir: str | os.PathLike, seed: int = 0, config_index: int = 0, num_configs: int = 1) -> Path:
    """Path of the parameter file of ``seed`` (of sweep config ``config_index`` when ``num_configs > 1``)."""
    name = f"seed_{seed}.msgpack" if num_configs == 1 else f"config_{config_index}_seed_{seed}.msgpack"
    return Path(run_dir) / PARAMS_DIR / name


def write_params(run_dir: str | os.PathLike, config: Config, params: Any, runs, env_steps: int,
                 eval_index: int | None, wave: int, wave_size: int, enabled: bool = True) -> list[Path]:
    """Write one parameter file per real run of a wave (padding runs are skipped; atomic replace).

    Args:
      params: the wave's ``learner.params`` on the host, leading axis ``[wave_size]`` in the order of ``runs``.
      runs: the wave's global run indices (run ``r`` is seed ``r % num_seeds`` of sweep config ``r // num_seeds``).
      env_steps: env steps per seed the parameters were trained for.
      eval_index: index of the final evaluation in each run's evaluation-key stream (``None``: no evaluation).
      wave / wave_size: the wave and its size, so that an evaluation can batch runs as training did.
      enabled: ``False`` writes nothing (processes other than 0).

    Returns:
      the paths written.
    """
    if not enabled:
        return []
    S, R = config.num_seeds, config.num_configs * config.num_seeds
    (Path(run_dir) / PARAMS_DIR).mkdir(parents=True, exist_ok=True)
    record = json.dumps(config_record(config), default=str)
    written = []
    for j, r in enumerate(int(r) for r in runs):
        if r >= R:
            continue
        one = jax.tree.map(lambda x: np.asarray(x[j]), params)
        entry = {"format": PARAMS_FORMAT, "config": record, "seed": r % S, "config_index": r // S, "run": r,
                 "env_steps": int(env_steps), "eval_index": eval_index, "wave": int(wave),
                 "wave_size": int(wave_size), "hyper": dict(config.sweep_configs[r // S]),
                 "params": serialization.to_state_dict(one)}
        path = params_file(run_dir, r % S, r // S, config.num_configs)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(serialization.msgpack_serialize(entry))
        tmp.replace(path)
        written.append(path)
    return written


def read_params_file(path: str | os.PathLike) -> dict:
    """The raw entries of a parameter file (``params`` as a nested dict of numpy arrays, ``config`` as a dict).

    Raises:
      purejax_ad.config.ConfigError: the file is missing, unreadable or not a purejax_ad parameter file.
    """
    path = Path(path)
    try:
        entry = serialization.msgpack_restore(path.read_bytes())
    except (OSError, ValueError, TypeError) as e:
        raise ConfigError(f"{path}: not a readable parameter file ({type(e).__name__}: {e})") from None
    if not isinstance(entry, dict) or entry.get("format") != PARAMS_FORMAT:
        raise ConfigError(f"{path}: not a purejax_ad parameter file (format {PARAMS_FORMAT} expected)")
    entry["config"] = json.loads(entry["config"])
    return entry


def params_template(agent: Agent, config: Config):
    """Shapes (``jax.ShapeDtypeStruct``) of one run's ``learner.params``, nothing computed."""
    return jax.eval_shape(agent.init_learner, jax.random.key(0), Hyperparams.from_values(config)).params


def params_from_entry(entry: dict, template) -> tuple:
    """One run's ``learner.params`` (``jax.Array``) from a file's entries, in the structure of ``template``.

    Raises:
      purejax_ad.config.ConfigError: the stored arrays do not match the template's structure or shapes.
    """
    try:
        params = serialization.from_state_dict(template, entry["params"])
    except (ValueError, KeyError) as e:
        raise ConfigError(f"parameter file of run {entry.get('run')}: does not match the network of its config "
                          f"({e})") from None
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(template)):
        if np.shape(got) != want.shape:
            raise ConfigError(f"parameter file of run {entry.get('run')}: an array has shape {np.shape(got)}, the "
                              f"network of its config needs {want.shape}")
    return jax.tree.map(jnp.asarray, params)


def load_params(source: str | os.PathLike, seed: int = 0, config_index: int = 0) -> TrainedAgent:
    """Load a trained run in one call: its config, env, agent and online parameters.

    Args:
      source: a run directory (``python -m purejax_ad.train --out``) or one of its parameter files.
      seed / config_index: which run of the directory (ignored for a file).

    Returns:
      a :class:`TrainedAgent`; e.g. ``evaluation.evaluate(t.agent, t.env, t.params, key, 10, 1000)``.

    Raises:
      purejax_ad.config.ConfigError: no such run or file (the message says what the directory holds).
    """
    source = Path(source)
    path = source
    if source.is_dir():
        try:
            record = json.loads((source / "config.json").read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"{source}: not a run directory (config.json unreadable: {e})") from None
        path = params_file(source, seed, config_index, config_from_record(record).num_configs)
        if not path.is_file():
            held = sorted(p.name for p in (source / PARAMS_DIR).glob("*.msgpack")) if (source / PARAMS_DIR).is_dir() else []
            raise ConfigError(f"{source}: no parameter file {path.relative_to(source)} (it holds "
                              f"{', '.join(held) or 'none: the run has not finished'})")
    entry = read_params_file(path)
    config = config_from_record(entry.pop("config"), out=str(path.parent.parent))
    env = make_config_env(config)
    agent = make_agent(config, env)
    params = params_from_entry(entry, params_template(agent, config))
    entry.pop("params")
    return TrainedAgent(config, env, agent, params, entry)

"""Checks of a :class:`~purejax_ad.config.Config`: every problem in plain words, before anything is compiled.

:func:`validate` lists the problems (unknown ids, impossible sizes, incompatible options, choices outside a
field's ``Literal`` type, bad sweep lists); :func:`check` raises :class:`~purejax_ad.config.ConfigError` with
all of them, and optionally checks an output directory (:mod:`purejax_ad.rundir`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import typing
from typing import Literal

import numpy as np

from purejax_ad.algos import ALGO_SPECS, algo_spec
from purejax_ad.config import SWEEPABLE, Config, ConfigError
from purejax_ad.envs import UnknownEnvError, action_space_kind, canonical_env_id, check_dmc_options, env_suite
from purejax_ad.rundir import output_dir_problems
from purejax_ad.trackers import tracker_problems

#: The largest ``Config.seed``: ``jax.random.key`` keeps 32 bits of the seed (without ``jax_enable_x64``),
#: so ``2**32`` gives seed 0's key and larger ints overflow.
MAX_SEED = 2**32 - 1

def validate(config: Config) -> list[str]:
    """Every problem with ``config``, in plain words (empty list: fine). Runs before any compilation."""
    c, problems = config, []
    try:
        canonical_env_id(c.env)
    except UnknownEnvError as e:
        problems.append(str(e))
    if c.algo not in ALGO_SPECS:
        problems.append(f"unknown algo {c.algo!r}; valid algos: {', '.join(ALGO_SPECS)}")
    elif not problems and action_space_kind(c.env) not in (algo_spec(c.algo).action_space, "both"):
        fitting = [s.name for s in ALGO_SPECS.values() if s.action_space == action_space_kind(c.env)]
        problems.append(f"env {c.env} has {action_space_kind(c.env)} actions but algo {c.algo} needs "
                        f"{algo_spec(c.algo).action_space} actions (algos for this env: {', '.join(fitting) or 'none yet'})")
    positive = dict(num_seeds=c.num_seeds, total_timesteps=c.total_timesteps, num_envs=c.num_envs,
                    num_heads=c.num_heads, batch_size=c.batch_size, buffer_size=c.buffer_size,
                    train_frequency=c.train_frequency, target_update_interval=c.target_update_interval,
                    num_eval_episodes=c.num_eval_episodes, log_interval=c.log_interval,
                    return_window=c.return_window, eval_max_steps=c.eval_max_steps)
    problems += [f"{k} must be > 0, got {v}" for k, v in positive.items() if v <= 0]
    if not c.net_arch or any(d <= 0 for d in c.net_arch):
        problems.append(f"net_arch needs at least one layer and positive widths, got {c.net_arch}")
    if c.context_size < 0:
        problems.append(f"context_size must be >= 0, got {c.context_size}")
    if c.burn_in < 0:
        problems.append(f"burn_in must be >= 0, got {c.burn_in}")
    problems += choice_problems(c)
    if c.learning_starts < 0 or c.eval_interval < 0:
        problems.append("learning_starts and eval_interval must be >= 0")
    if c.num_envs > 0 and c.train_frequency > 0 and c.train_frequency % c.num_envs:
        problems.append(f"train_frequency ({c.train_frequency}) must be a multiple of num_envs ({c.num_envs})")
    if c.learning_starts >= c.total_timesteps > 0:
        problems.append(f"learning_starts ({c.learning_starts}) must be below total_timesteps ({c.total_timesteps})")
    if c.num_envs > 0 and c.buffer_size > 0 and c.total_timesteps > 0:
        per_lane = c.effective_buffer_size // c.num_envs
        if per_lane < c.sequence_length:
            problems.append(f"the replay buffer holds {per_lane} steps per env, fewer than a sequence "
                            f"({c.sequence_length} steps)")
        if c.batch_size > c.effective_buffer_size:
            problems.append(f"batch_size ({c.batch_size}) is larger than the replay buffer "
                            f"({c.effective_buffer_size} transitions)")
    if c.learning_starts < c.sequence_length * max(c.num_envs, 1):
        problems.append(f"learning_starts ({c.learning_starts}) must cover one sequence per env "
                        f"({c.sequence_length} steps x {c.num_envs} envs) so the first update can sample")
    for name, lo, hi in [("gamma", 0, 1), ("tau", 0, 1), ("epsilon_start", 0, 1), ("epsilon_end", 0, 1),
                         ("eval_epsilon", 0, 1), ("context_alpha", 0, 1)]:
        v = getattr(c, name)
        if not lo <= v <= hi:
            problems.append(f"{name} must be in [{lo}, {hi}], got {v}")
    if not 0 < c.exploration_fraction <= 1:
        problems.append(f"exploration_fraction must be in (0, 1], got {c.exploration_fraction}")
    problems += _optimiser_problems(c)
    problems += _interval_problems(c)
    if not 0 <= c.seed <= MAX_SEED:
        problems.append(f"seed must be in [0, {MAX_SEED}] (jax.random.key takes a 32-bit seed; a larger one would "
                        f"repeat a smaller one's key), got {c.seed}")
    if c.sticky_action_prob is not None and not 0 <= c.sticky_action_prob <= 1:
        problems.append(f"sticky_action_prob must be in [0, 1], got {c.sticky_action_prob}")
    if c.checkpoint_interval < 0:
        problems.append(f"checkpoint_interval must be >= 0, got {c.checkpoint_interval}")
    if c.num_devices is not None and c.num_devices < 1:
        problems.append(f"num_devices must be >= 1, got {c.num_devices}")
    if c.keep_checkpoints < 1:
        problems.append(f"keep_checkpoints must be >= 1, got {c.keep_checkpoints}")
    if c.stop_after_steps is not None and c.stop_after_steps <= 0:
        problems.append(f"stop_after_steps must be > 0, got {c.stop_after_steps}")
    if c.seeds_per_wave is not None and c.seeds_per_wave != "auto" and (
            not isinstance(c.seeds_per_wave, int) or c.seeds_per_wave < 1):
        problems.append(f"seeds_per_wave must be a positive number of seeds or 'auto', got {c.seeds_per_wave!r}")
    if c.memory_budget_gb is not None and not c.memory_budget_gb > 0:
        problems.append(f"memory_budget_gb must be > 0, got {c.memory_budget_gb}")
    if c.inject_nan is not None and not 0 <= c.inject_nan[0] < max(c.num_seeds, 1):
        problems.append(f"inject_nan seed {c.inject_nan[0]} is not among the {c.num_seeds} seeds")
    problems += _algo_problems(c)
    problems += _sweep_problems(c)
    problems += tracker_problems(c)
    if not problems and env_suite(c.env) == "dmc":
        if c.sticky_action_prob:
            problems.append("sticky_action_prob applies to MinAtar; DMC tasks have no sticky actions")
        try:
            check_dmc_options(c.env, c.continuous_actions, c.action_repeat, c.max_discrete_actions)
        except ValueError as e:
            problems.append(str(e))
    spec = ALGO_SPECS.get(c.algo)
    if spec is not None and spec.family == "actor-critic":
        if not 0 < c.actor_learning_rate < math.inf:
            problems.append(f"actor_learning_rate must be a finite number > 0, got {c.actor_learning_rate}")
        if not (c.exploration_noise >= 0 and c.node_noise >= 0):
            problems.append("exploration_noise and node_noise must be >= 0")
        if not spec.linear_lr_schedule and c.lr_schedule != "constant":
            problems.append(f"lr_schedule 'linear' is not implemented for {c.algo} (pass --lr-schedule constant"
                            + (f"; preset {c.preset} sets 'linear'" if c.preset else "") + ")")
    if c.ndpg_n_step < 1:
        problems.append(f"ndpg_n_step must be >= 1, got {c.ndpg_n_step}")
    elif c.ndpg_n_step > 1 and c.num_envs > 0 and (
            c.learning_starts < c.ndpg_n_step * c.num_envs or c.effective_buffer_size < c.ndpg_n_step * c.num_envs):
        problems.append(f"ndpg_n_step ({c.ndpg_n_step}) needs a window of that many steps per env in the replay buffer "
                        f"and in the warm-up (learning_starts {c.learning_starts}, buffer_size {c.buffer_size}, "
                        f"{c.num_envs} envs)")
    if c.ndpg_value_features < 0:
        problems.append(f"ndpg_value_features must be >= 0, got {c.ndpg_value_features}")
    elif c.ndpg_value_features and c.ndpg_critic != "quadratic":
        problems.append(f"ndpg_value_features (the shared value critic) needs --ndpg-critic quadratic, "
                        f"got {c.ndpg_critic!r}")
    return problems


def _optimiser_problems(c: Config) -> list[str]:
    """The step size and Adam's values: a learning rate finite and > 0, ``0 <= b1, b2 < 1`` (at 1 Adam's bias
    correction divides by zero), ``eps`` finite and > 0, the clip norm > 0 (``inf``: no clipping). NaN fails
    every one of these comparisons, so it is reported too."""
    problems = []
    if not 0 < c.learning_rate < math.inf:
        problems.append(f"learning_rate must be a finite number > 0, got {c.learning_rate}")
    for name in ("adam_b1", "adam_b2"):
        if not 0 <= getattr(c, name) < 1:
            problems.append(f"{name} must be in [0, 1), got {getattr(c, name)}")
    if not 0 < c.adam_eps < math.inf:
        problems.append(f"adam_eps must be a finite number > 0, got {c.adam_eps}")
    if not c.max_grad_norm > 0:
        problems.append(f"max_grad_norm must be > 0, got {c.max_grad_norm}")
    for name in ("recurrent_weight", "forward_weight"):
        if not math.isfinite(getattr(c, name)):
            problems.append(f"{name} must be a finite number, got {getattr(c, name)}")
    return problems


def _interval_problems(c: Config) -> list[str]:
    """Intervals counted in whole updates: ``target_update_interval`` and ``log_interval`` must be multiples of
    ``train_frequency`` (the program would floor them to one; the message names the nearest valid values)."""
    tf, problems = c.train_frequency, []
    if tf <= 0:
        return problems
    for name, what in (("target_update_interval", "a target update follows a whole update"),
                       ("log_interval", "a log chunk is a whole number of updates")):
        value = getattr(c, name)
        if value > 0 and value % tf:
            below = int(value // tf * tf)
            nearest = " or ".join(str(v) for v in (below, below + tf) if v > 0)
            problems.append(f"{name} ({value:g}) must be a multiple of train_frequency ({tf}): {what}; "
                            f"nearest valid: {nearest}")
    return problems


@functools.cache
def choice_fields() -> dict[str, tuple]:
    """``{field: allowed values}`` of every :class:`Config` field whose type is a ``Literal[...]``."""
    hints = typing.get_type_hints(Config, include_extras=False)
    return {f.name: typing.get_args(hints[f.name]) for f in dataclasses.fields(Config)
            if typing.get_origin(hints[f.name]) is Literal}


def choice_problems(config: Config) -> list[str]:
    """One problem per ``Literal`` field of ``config`` holding a value outside its choices, e.g.
    ``"td_loss must be 'mse' or 'huber', got 'x'"``."""
    problems = []
    for name, allowed in choice_fields().items():
        value = getattr(config, name)
        if value not in allowed:
            options = " or ".join(filter(None, [", ".join(map(repr, allowed[:-1])), repr(allowed[-1])]))
            problems.append(f"{name} must be {options}, got {value!r}")
    return problems


def _algo_problems(c: Config) -> list[str]:
    problems = []
    spec = ALGO_SPECS.get(c.algo)
    if spec is None:
        return problems
    if spec.network != "ad" and c.cell != "auto":
        ad_algos = [s.name for s in ALGO_SPECS.values() if s.network == "ad"]
        problems.append(f"--cell applies to the AD algos ({', '.join(ad_algos)}); {c.algo} has no AD cells")
    if spec.cell_fixed and c.cell not in ("auto", spec.default_cell):
        problems.append(f"algo {c.algo} is the {spec.default_cell} cell; cell {c.cell!r} contradicts it "
                        f"(use ad-dqn with --cell {c.cell})")
    if spec.quantiles:
        if c.num_quantiles < 1:
            problems.append(f"num_quantiles must be >= 1 for {c.algo}, got {c.num_quantiles}")
        if spec.network == "ad" and c.network_cell == "arq":
            problems.append("the ARQ cell has one goodness per action and cannot output quantiles")
    if c.torso == "minatar-conv" and "MinAtar" not in c.env:
        problems.append(f"torso minatar-conv needs a MinAtar env, got {c.env}")
    return problems


def _sweep_problems(c: Config) -> list[str]:
    if not c.sweep:
        return []
    problems, names = [], [name for name, _ in c.sweep]
    for name, values in c.sweep:
        if name not in SWEEPABLE:
            problems.append(f"{name} cannot be swept in one program (it changes shapes or the program); "
                            f"sweepable: {', '.join(SWEEPABLE)}")
        elif not values:
            problems.append(f"the sweep list of {name} is empty")
        elif len(set(values)) != len(values):
            problems.append(f"the sweep list of {name} repeats a value: {list(values)}")
        elif len(set(np.asarray(values, np.float32).tolist())) != len(values):  # the traced dtype
            problems.append(f"the sweep list of {name} has values that are equal in float32, the precision the "
                            f"program computes in (they would be identical configs): {list(values)}")
    if len(set(names)) != len(names):
        problems.append(f"a hyperparameter is swept twice: {names}")
    if problems:
        return problems
    intervals = dict(c.sweep).get("target_update_interval", ())
    if any(v != int(v) for v in intervals):
        return [f"target_update_interval values must be whole env steps, got {list(intervals)}"]
    seen = set(validate(dataclasses.replace(c, sweep=())))  # reported by the caller already
    for combo in c.sweep_configs:
        for problem in validate(dataclasses.replace(c, sweep=(), **combo)):
            if problem not in seen:
                seen.add(problem)
                problems.append(f"sweep value {combo}: {problem}")
    return problems


def check(config: Config, out: str | os.PathLike | None = None, resume: bool = False) -> Config:
    """Return ``config`` unchanged, or raise :class:`ConfigError` listing every problem.

    Args:
      out: also check this output directory (:func:`purejax_ad.rundir.output_dir_problems`).
      resume: ``out`` is a run to resume rather than a new one.
    """
    problems = validate(config) + (output_dir_problems(out, resume) if out is not None else [])
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems))
    return config

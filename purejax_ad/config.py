"""Configuration: every hyperparameter and every documented quirk of the official code, and its checks.

The presets live in :mod:`purejax_ad.presets`, the checks of an output directory in :mod:`purejax_ad.rundir`,
the environment a config trains on in :func:`purejax_ad.envs.make_config_env`. All step counts are **env
steps per seed** unless a name says otherwise.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import typing
from dataclasses import dataclass
from typing import Annotated, Literal

import tyro

from purejax_ad.algos import ALGO_SPECS, algo_spec
from purejax_ad.hyperparams import target_update_period
from purejax_ad.envs import UnknownEnvError, action_space_kind, canonical_env_id, check_dmc_options, env_suite

#: Hyperparameters that do not change shapes: a list of values on the CLI (``--learning-rate 1e-4,3e-4``)
#: sweeps them inside one compiled program (traced per run, :class:`purejax_ad.hyperparams.Hyperparams`).
SWEEPABLE = ("learning_rate", "gamma", "max_grad_norm", "tau", "target_update_interval", "epsilon_start",
             "epsilon_end", "exploration_fraction", "adam_b1", "adam_b2", "adam_eps")
#: Fields that only control how a run is executed, not what it computes; ``--resume`` may change them.
RUN_CONTROL_FIELDS = ("checkpoint_interval", "keep_checkpoints", "checkpoint_replay", "stop_after_steps",
                      "on_nonfinite", "inject_nan", "num_devices", "distributed", "memory_budget_gb")


@dataclass(frozen=True)
class Config:
    """One training run (defaults = the ``classic-fast`` preset). Units: env steps are per seed (summed over that seed's ``num_envs``)."""

    # --- run ------------------------------------------------------------------------------------------------
    env: str = "CartPole-v1"
    """Environment id (see ``purejax_ad.envs.ENV_REGISTRY``)."""
    algo: str = "ad-dqn"
    """Algorithm: a row of :data:`purejax_ad.algos.ALGO_SPECS` (ad-dqn, ad-qrdqn, arq, ad-backprop, dqn,
    qrdqn; continuous actions: ndpg, ddpg; README "Methods")."""
    preset: str = "classic-fast"
    """Name of the preset the values started from (recorded in outputs)."""
    num_seeds: int = 4
    """Independent seeds, trained in parallel by ``jax.vmap``."""
    seed: int = 0
    """Base seed; seed ``i`` of the run uses ``fold_in(PRNGKey(seed), i)``."""
    total_timesteps: int = 150_000
    """Env steps per seed (rounded up to whole log chunks)."""
    num_envs: int = 4
    """Parallel envs per seed (the official code uses 1)."""
    # --- network (docs/algorithm.md §Cells, §Network wiring) ------------------------------------------------
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden width of every AD cell, bottom to top."""
    num_heads: int = 4
    """Heads H of the AttentionADCell."""
    input_skip_connections: bool = True
    recurrent_connections: bool = True
    forward_connections: bool = True
    recurrent_weight: float = 1.0
    forward_weight: float = 1.0
    context_size: int = 8
    """Replayed steps before o_t; sequences have context_size + 1 observations (docs/algorithm.md §Replayed context)."""
    context_alpha: float = 1.0
    """c_t = alpha*h_t + (1-alpha)*c_{t-1}; 1.0 in the shipped configs."""
    context_source: Literal["replay", "stored"] = "replay"
    """'replay' (official, docs/algorithm.md §Replayed context): unroll context_size+1 replayed obs from zeros every update. 'stored'
    (cheaper, R2D2-style): the actor's context is stored in replay and an update unrolls only burn_in steps from it."""
    burn_in: int = 2
    """Steps unrolled from the stored context before o_t (context_source='stored' only)."""
    stored_context_dtype: Literal["float32", "bfloat16"] = "float32"
    """Storage dtype of stored contexts (bfloat16 halves their replay memory)."""
    matmul_dtype: Literal["float32", "bfloat16"] = "float32"
    """Mixed precision: 'bfloat16' runs the cells' matmuls in bf16 (parameters and the rest stay float32)."""
    cell: Literal["auto", "attention", "mlp", "arq"] = "auto"
    """AD cell: 'auto' = 'arq' for algo arq, else 'attention' (docs/algorithm.md §Cells); 'mlp' = MlpADCell (§Cells)."""
    average_predictions: bool = True
    """Act on the mean Q of all layers (docs/algorithm.md §Acting); False = the last layer alone (per-layer eval: layer i alone)."""
    mlp_normalization: Literal["none", "lp", "scaled", "layer_norm"] = "none"
    """MlpADCell output normalisation (official default 'lp' caps |Q| at 1, so 'none' here)."""
    goodness: Literal["std", "rms", "msq", "mean", "variance"] = "std"
    """ARQ readout Q = g(y_a) (docs/algorithm.md §ARQ); 'std' is ARQ's."""
    action_encoding: Literal["onehot", "binary"] = "onehot"
    """ARQ action conditioning: one-hot (discrete envs) or +-1 bits (bang-bang actions)."""
    num_quantiles: int = 10
    """N quantiles per action (ad-qrdqn, qrdqn; paper train.py: 10)."""
    qr_loss: Literal["as_published", "as_published_huber", "quantile_huber"] = "as_published"
    """Quirk Q4: 'as_published' = u^2 (expectile-style, the official code); 'quantile_huber' = QR-DQN, kappa 1."""
    # --- continuous-action actor-critic: ddpg, ndpg (docs/algorithm.md §Neuron-local DDPG) ------------------
    actor_learning_rate: float = 1e-4
    """Actor step size (ddpg, ndpg); learning_rate is the critic's."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise added to the actions while collecting data (ddpg; ndpg's output neurons)."""
    node_noise: float = 0.1
    """ndpg: std of the per-neuron perturbation of hidden pre-activations while collecting data (node
    perturbation: makes each neuron's critic action weight identifiable, docs/algorithm.md §Neuron-local DDPG)."""
    ndpg_critic: Literal["linear", "compatible"] = "linear"
    """ndpg per-neuron critic: 'linear' = the draft's Q^n = th_v.v + th_a.a (constant dQ/da, faithful to §Neuron-local DDPG);
    'compatible' = the state-dependent DPG-compatible critic of §Neuron-local DDPG."""
    # --- DeepMind Control (MJX, docs/algorithm.md §DeepMind Control) ----------------------------------------
    action_repeat: int = 1
    """DMC: control steps per env step (1 = the paper: no action repeat)."""
    fixed_env_reset_key: bool = False
    """Q7: DMC initial states from one fixed stream (random=1) for every run and env (faithful: True; False
    derives them from the agent's seed)."""
    max_discrete_actions: int = 256
    """DMC: refuse bang-bang action sets larger than this (quadruped: 2^12 = 4096)."""
    torso: Literal["auto", "mlp", "minatar-conv"] = "auto"
    """dqn/qrdqn network: 'auto' = the MinAtar paper's conv net on MinAtar, else an MLP of net_arch."""
    # --- optimisation (docs/algorithm.md §Optimisation) -----------------------------------------------------
    learning_rate: float = 1e-3
    adam_b1: float = 0.9
    adam_b2: float = 0.99
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    """Per-layer global-norm gradient clip."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    """'constant' (the official code); 'linear': the learning rate decays linearly from learning_rate to 0
    over the run's updates (``total_updates``), as in PureJaxRL's LR_LINEAR_DECAY (not ndpg)."""
    gamma: float = 0.99
    double_q: bool = True
    td_loss: Literal["mse", "huber"] = "mse"
    """Quirk Q5: shipped configs use MSE without 1/2 (faithful); 'huber' is optax Huber, delta 1."""
    buffer_size: int = 100_000
    """Replay capacity in transitions per seed (capped at total_timesteps: it never wraps then)."""
    batch_size: int = 64
    """Sequences per update."""
    learning_starts: int = 5_000
    """Env steps of random warm-up before the first update; epsilon decays from here."""
    train_frequency: int = 4
    """Env steps per update (a multiple of num_envs)."""
    target_update_interval: int = 200
    """Env steps between target copies (a multiple of train_frequency)."""
    tau: float = 1.0
    """Target mix at each copy; 1.0 is the hard copy of the official code."""
    # --- exploration (docs/algorithm.md §Exploration) -------------------------------------------------------
    epsilon_start: float = 1.0
    epsilon_end: float = 0.05
    exploration_fraction: float = 0.2
    """Epsilon decays linearly over exploration_fraction * total_timesteps env steps after learning_starts."""
    # --- quirks of the official code (docs/algorithm.md §Quirks) --------------------------------------------
    truncation_starts_episode: bool = True
    """Q1: a truncated episode starts a new one in replayed sequences (faithful: False)."""
    advance_context_on_random_action: bool = True
    """Q2: the actor's context advances on epsilon-random steps (faithful: False)."""
    replay_padding: Literal["repeat_first", "zero_context"] = "zero_context"
    """Q3: 'repeat_first' left-pads sequences with the episode's first obs (faithful); 'zero_context' resets."""
    shared_init_key: bool = True
    """Q6: every layer initialised from the same PRNG key (faithful: True)."""
    sticky_action_prob: float | None = None
    """Q10: None = suite default (MinAtar 0.1, as original MinAtar; classic 0)."""
    minatar_time_limit: Literal["original", "gymnax"] = "original"
    """Q11: 'original' = no time limit, Freeway terminates at 2500 (faithful); 'gymnax' truncates."""
    # --- evaluation and logging (docs/algorithm.md §Evaluation) ---------------------------------------------
    eval_interval: int = 20_000
    """Env steps between per-layer evaluations (also at step 0 and at the end); 0 disables."""
    num_eval_episodes: int = 10
    eval_epsilon: float = 0.05
    eval_max_steps: int = 10_000
    """Cap on the length of one evaluation episode (env steps)."""
    log_interval: int = 5_000
    """Env steps per compiled chunk: one metrics row per seed per chunk."""
    return_window: int = 100
    """Training return = mean of the last return_window finished episodes."""
    out: str | None = None
    """Output directory; default runs/<env>-<algo>-<timestamp>/."""
    # --- run control: checkpoints, interruption, faults, devices (may change on --resume) -------------------
    checkpoint_interval: int = 50_000
    """Env steps between checkpoints (at the first chunk boundary past each multiple); 0 = only when stopped early."""
    keep_checkpoints: int = 2
    """Newest checkpoints kept in <out>/checkpoints/."""
    checkpoint_replay: bool = True
    """Include the replay buffer (exact resume); False = much smaller checkpoints, the buffer is refilled on resume."""
    stop_after_steps: int | None = None
    """Stop as if interrupted once this many env steps per seed are done (checkpoint + partial outputs, exit 3);
    with seed waves counted over the waves (wave w at env step s has done w * total_timesteps + s)."""
    on_nonfinite: Literal["stop", "drop-seed"] = "stop"
    """NaN/Inf in a layer's loss or parameters: 'stop' the run (exit 4, last good checkpoint kept) or 'drop-seed'."""
    inject_nan: tuple[int, int] | None = None
    """Testing: (seed, env_steps) sets that seed's layer-1 parameters to NaN after the chunk reaching env_steps."""
    num_devices: int | None = None
    """Shard the seeds over the first num_devices devices (default: every device JAX sees)."""
    distributed: bool = False
    """Call jax.distributed.initialize() first (multi-host launches: TPU pod slices, SLURM)."""
    seeds_per_wave: int | Literal["auto"] | None = None
    """Seed waves: train this many runs (seeds x sweep configs) at once, wave after wave, with one compiled
    program and one run directory; 'auto' = the most that fit the device; None = all at once. A run's results
    do not depend on it."""
    memory_budget_gb: float | None = None
    """Plan against this many GiB per device instead of what the device reports (shared machines)."""
    sweep: Annotated[tuple[tuple[str, tuple[float, ...]], ...], tyro.conf.Suppress] = ()
    """Swept hyperparameters ((field, values), ...): every combination x every seed runs in one program.
    On the CLI give a comma list to a SWEEPABLE flag instead (--learning-rate 1e-4,2.5e-4)."""

    # --- derived quantities ---------------------------------------------------------------------------------
    @property
    def sequence_length(self) -> int:
        """Observations per replayed sequence: ``context_size + 1``, or ``burn_in + 1`` with stored contexts."""
        return (self.burn_in if self.context_source == "stored" else self.context_size) + 1

    @property
    def network_cell(self) -> str:
        """The AD cell actually used (``cell`` with ``"auto"`` resolved)."""
        if self.cell == "auto":
            spec = ALGO_SPECS.get(self.algo)
            return (spec.default_cell if spec is not None else None) or "attention"
        return self.cell

    @property
    def continuous_actions(self) -> bool:
        """The algorithm acts with continuous actions (its table row's ``action_space``)."""
        spec = ALGO_SPECS.get(self.algo)
        return spec is not None and spec.action_space == "continuous"

    @property
    def sweep_configs(self) -> list[dict]:
        """Every combination of the swept values, in row-major order of ``sweep`` (``[{}]`` without a sweep)."""
        combos = [{}]
        for name, values in self.sweep:
            combos = [{**c, name: v} for c in combos for v in values]
        return combos

    @property
    def num_configs(self) -> int:
        """Hyperparameter combinations of the sweep (1 without)."""
        return len(self.sweep_configs)

    @property
    def iters_per_update(self) -> int:
        """Vectorised env steps between two updates."""
        return self.train_frequency // self.num_envs

    @property
    def warmup_iters(self) -> int:
        """Vectorised env steps of the warm-up phase."""
        return math.ceil(self.learning_starts / self.num_envs)

    @property
    def updates_per_chunk(self) -> int:
        """Updates per compiled training chunk (at least one)."""
        return max(1, self.log_interval // self.train_frequency)

    @property
    def chunk_env_steps(self) -> int:
        """Env steps per seed in one training chunk."""
        return self.updates_per_chunk * self.train_frequency

    @property
    def num_chunks(self) -> int:
        """Training chunks after the warm-up."""
        return max(1, math.ceil((self.total_timesteps - self.warmup_iters * self.num_envs) / self.chunk_env_steps))

    @property
    def effective_total_timesteps(self) -> int:
        """Env steps per seed actually run (total_timesteps rounded up to whole chunks)."""
        return self.warmup_iters * self.num_envs + self.num_chunks * self.chunk_env_steps

    @property
    def effective_buffer_size(self) -> int:
        """Replay capacity: ``min(buffer_size, total env steps)``, a multiple of num_envs."""
        size = min(self.buffer_size, self.effective_total_timesteps)
        return max(self.num_envs, size // self.num_envs * self.num_envs)

    @property
    def total_updates(self) -> int:
        """Updates per seed over the whole run (every chunk after the warm-up)."""
        return self.num_chunks * self.updates_per_chunk

    @property
    def lr_decay_updates(self) -> int:
        """Updates over which the learning rate decays to 0: ``total_updates`` for ``lr_schedule="linear"``,
        else 0 (constant); the static argument of :func:`purejax_ad.hyperparams.make_optimizer`."""
        return self.total_updates if self.lr_schedule == "linear" else 0

    @property
    def target_update_period(self) -> int:
        """Updates between target copies (:func:`purejax_ad.hyperparams.target_update_period`)."""
        return int(target_update_period(self.target_update_interval, self.train_frequency))


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
    if c.learning_rate <= 0 or c.max_grad_norm <= 0:
        problems.append("learning_rate and max_grad_norm must be > 0")
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
    if not problems and env_suite(c.env) == "dmc":
        if c.sticky_action_prob:
            problems.append("sticky_action_prob applies to MinAtar; DMC tasks have no sticky actions")
        try:
            check_dmc_options(c.env, c.continuous_actions, c.action_repeat, c.max_discrete_actions)
        except ValueError as e:
            problems.append(str(e))
    spec = ALGO_SPECS.get(c.algo)
    if spec is not None and spec.family == "actor-critic":
        if c.actor_learning_rate <= 0:
            problems.append(f"actor_learning_rate must be > 0, got {c.actor_learning_rate}")
        if c.exploration_noise < 0 or c.node_noise < 0:
            problems.append("exploration_noise and node_noise must be >= 0")
        if not spec.linear_lr_schedule and c.lr_schedule != "constant":
            problems.append(f"lr_schedule 'linear' is not implemented for {c.algo}")
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


class ConfigError(ValueError):
    """Raised by :func:`check`; the message lists every problem of a config on one line, ``; ``-separated."""


def check(config: Config, out: str | os.PathLike | None = None, resume: bool = False) -> Config:
    """Return ``config`` unchanged, or raise :class:`ConfigError` listing every problem.

    Args:
      out: also check this output directory (:func:`purejax_ad.rundir.output_dir_problems`).
      resume: ``out`` is a run to resume rather than a new one.
    """
    from purejax_ad.rundir import output_dir_problems

    problems = validate(config) + (output_dir_problems(out, resume) if out is not None else [])
    if problems:
        raise ConfigError("invalid config: " + "; ".join(problems))
    return config

"""Configuration: every hyperparameter and every documented quirk of the official code, as data.

The checks live in :mod:`purejax_ad.checks`, the presets in :mod:`purejax_ad.presets`, the checks of an
output directory in :mod:`purejax_ad.rundir`,
the environment a config trains on in :func:`purejax_ad.envs.make_config_env`. All step counts are **env
steps per seed** unless a name says otherwise.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Annotated, Literal

import tyro

from purejax_ad.algos import ALGO_SPECS

#: Hyperparameters that do not change shapes: a list of values on the CLI (``--learning-rate 1e-4,3e-4``)
#: sweeps them inside one compiled program (traced per run, :class:`purejax_ad.hyperparams.Hyperparams`).
SWEEPABLE = ("learning_rate", "gamma", "max_grad_norm", "tau", "target_update_interval", "epsilon_start",
             "epsilon_end", "exploration_fraction", "adam_b1", "adam_b2", "adam_eps")
#: Fields that only control how a run is executed, not what it computes; ``--resume`` may change them.
RUN_CONTROL_FIELDS = ("checkpoint_interval", "keep_checkpoints", "checkpoint_replay", "stop_after_steps",
                      "on_nonfinite", "inject_nan", "num_devices", "distributed", "memory_budget_gb",
                      "tensorboard", "wandb")
#: The sections of ``python -m purejax_ad.train --help``: every CLI field in exactly one (``sweep`` is not a flag).
HELP_SECTIONS: dict[str, tuple[str, ...]] = {
    "run": ("preset", "algo", "num_seeds", "seed", "total_timesteps", "out"),
    "env": ("env", "num_envs", "action_repeat", "max_discrete_actions"),
    "network": ("net_arch", "num_heads", "input_skip_connections", "recurrent_connections", "forward_connections",
                "recurrent_weight", "forward_weight", "context_size", "context_alpha", "context_source", "burn_in",
                "stored_context_dtype", "matmul_dtype", "cell", "average_predictions", "mlp_normalization",
                "goodness", "action_encoding", "num_quantiles", "torso", "ndpg_critic", "ndpg_optimizer",
                "ndpg_value_features", "ndpg_n_step"),
    "optimisation": ("learning_rate", "actor_learning_rate", "adam_b1", "adam_b2", "adam_eps", "max_grad_norm",
                     "lr_schedule", "gamma", "double_q", "train_frequency", "target_update_interval", "tau"),
    "replay": ("buffer_size", "batch_size", "learning_starts"),
    "exploration": ("epsilon_start", "epsilon_end", "exploration_fraction", "exploration_noise", "node_noise"),
    "quirks": ("truncation_starts_episode", "advance_context_on_random_action", "replay_padding", "qr_loss",
               "td_loss", "shared_init_key", "fixed_env_reset_key", "sticky_action_prob", "minatar_time_limit"),
    "evaluation": ("eval_interval", "num_eval_episodes", "eval_epsilon", "eval_max_steps", "log_interval",
                   "return_window"),
    "run_control": (*RUN_CONTROL_FIELDS, "seeds_per_wave"),
}


@dataclass(frozen=True)
class Config:
    """One training run. Units: env steps are per seed (summed over that seed's ``num_envs``).

    The defaults are the small CPU base that ``classic-fast`` (the CLI's default preset, which changes the
    learning rate, its schedule, ``epsilon_end`` and the run length), ``classic-dqn`` and ``dmc-fast`` start
    from (:mod:`purejax_ad.presets`); ``preset_config(name, **overrides)`` builds a preset's config.

    The first line of a field's docstring is its ``--help`` line (with its unit); the section it is listed
    in is :data:`HELP_SECTIONS`.
    """

    # --- run ------------------------------------------------------------------------------------------------
    env: str = "CartPole-v1"
    """Environment id: gymnax CartPole-v1, Acrobot-v1, MountainCar-v0, <Game>-MinAtar, or dmc/<domain>-<task>.
    The full lists: ``purejax_ad.envs.ENV_REGISTRY``, ``purejax_ad.dmc.DMC_ENVS`` (DeepMind Control in MJX)."""
    algo: str = "ad-dqn"
    """Algorithm: a row of :data:`purejax_ad.algos.ALGO_SPECS` (README "Methods").
    ad-dqn, ad-qrdqn, arq, ad-backprop, dqn, qrdqn; continuous actions: ndpg, ddpg."""
    preset: str = "none"
    """Name of the preset the values started from (recorded in outputs); ``none``: this class's defaults."""
    num_seeds: int = 4
    """Independent seeds (runs), trained in parallel by ``jax.vmap`` in one compiled program."""
    seed: int = 0
    """Base PRNG seed; seed ``i`` of the run uses ``fold_in(PRNGKey(seed), i)``."""
    total_timesteps: int = 150_000
    """Env steps per seed (rounded up to whole log chunks)."""
    num_envs: int = 4
    """Parallel env lanes per seed (the official code: 1); a seed's env steps count every lane."""
    # --- network (docs/algorithm.md §Cells, §Network wiring) ------------------------------------------------
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden width (units) of every layer, bottom to top: ``--net-arch 128 96 96``."""
    num_heads: int = 4
    """Heads H of the AttentionADCell (the rank bound of its input-generated weight matrix)."""
    input_skip_connections: bool = True
    """Feed the observation x_t to every layer above the first, too (docs/algorithm.md §Network wiring)."""
    recurrent_connections: bool = True
    """Feed each layer its own context c^l_{t-1} from the previous env step (§Network wiring)."""
    forward_connections: bool = True
    """Feed each layer the context c^{l+1}_{t-1} of the layer above from the previous env step (top-down)."""
    recurrent_weight: float = 1.0
    """rho: scale of the recurrent context c^l_{t-1} in a layer's input (dimensionless)."""
    forward_weight: float = 1.0
    """phi: scale of the top-down context c^{l+1}_{t-1} in a layer's input (dimensionless)."""
    context_size: int = 8
    """Replayed env steps before o_t; sequences have context_size + 1 observations.
    docs/algorithm.md §Replayed context."""
    context_alpha: float = 1.0
    """alpha of the context update c_t = alpha*h_t + (1-alpha)*c_{t-1}; 1.0 in the shipped configs."""
    context_source: Literal["replay", "stored"] = "replay"
    """Update-time context: 'replay' re-unrolls context_size+1 replayed obs; 'stored' starts from stored ones.
    'replay' (official, docs/algorithm.md §Replayed context): unroll context_size+1 replayed obs from zeros every
    update. 'stored' (cheaper, R2D2-style): the actor's context is stored in replay and an update unrolls only
    burn_in steps from it."""
    burn_in: int = 2
    """Env steps unrolled from the stored context before o_t (context_source='stored' only)."""
    stored_context_dtype: Literal["float32", "bfloat16"] = "float32"
    """Storage dtype of stored contexts (bfloat16 halves their replay memory)."""
    matmul_dtype: Literal["float32", "bfloat16"] = "float32"
    """Mixed precision: 'bfloat16' runs the cells' matmuls in bf16 (parameters and the rest stay float32)."""
    cell: Literal["auto", "attention", "mlp", "arq"] = "auto"
    """AD cell: 'auto' = 'arq' for algo arq, else 'attention'; 'mlp' = MlpADCell (docs/algorithm.md §Cells)."""
    average_predictions: bool = True
    """Act on the mean Q of all layers (docs/algorithm.md §Acting); False: on the last layer alone.
    With False the per-layer evaluation runs layer i alone."""
    mlp_normalization: Literal["none", "lp", "scaled", "layer_norm"] = "none"
    """MlpADCell output normalisation (official default 'lp' caps |Q| at 1, so 'none' here)."""
    goodness: Literal["std", "rms", "msq", "mean", "variance"] = "std"
    """ARQ readout Q = g(y_a) of the action's activations (docs/algorithm.md §ARQ); 'std' is ARQ's."""
    action_encoding: Literal["onehot", "binary"] = "onehot"
    """ARQ action conditioning: one-hot (discrete envs) or +-1 bits (bang-bang actions)."""
    num_quantiles: int = 10
    """Quantiles N per action (ad-qrdqn, qrdqn; paper train.py: 10)."""
    qr_loss: Literal["as_published", "as_published_huber", "quantile_huber"] = "as_published"
    """Quirk Q4: 'as_published' = u^2 (expectile-style, the official code); 'quantile_huber' = QR-DQN, kappa 1."""
    # --- continuous-action actor-critic: ddpg, ndpg (docs/algorithm.md §Neuron-local DDPG) ------------------
    actor_learning_rate: float = 1e-4
    """Actor Adam step size per update (ddpg, ndpg); learning_rate is the critic's."""
    exploration_noise: float = 0.1
    """Std of the Gaussian noise on the actions (in [-1, 1] units) while collecting data (ddpg, ndpg)."""
    node_noise: float = 0.1
    """ndpg: std of the per-neuron noise on hidden pre-activations while collecting data.
    Node perturbation: makes each neuron's critic action weight identifiable (docs/algorithm.md §Neuron-local
    DDPG)."""
    ndpg_critic: Literal["linear", "compatible", "quadratic"] = "linear"
    """ndpg per-neuron critic: 'linear' Q^n = th_v.v + th_a.a (the draft's); 'compatible' (state-dependent).
    'linear' has a constant dQ/da, faithful to §Neuron-local DDPG; 'compatible' is the DPG-compatible critic of
    §Neuron-local DDPG; 'quadratic' Q^n = V^n(v) - exp(rho)/2 ((a - mu^n(v))/sigma)^2 (curved in a, NAF-like)."""
    ndpg_value_features: int = 0
    """ndpg 'quadratic': > 0 replaces each neuron's own value u.v by one shared value critic, a linear neuron
    on this many fixed random Fourier features of the observation, whose TD error every neuron receives."""
    ndpg_optimizer: Literal["sgd", "adam"] = "sgd"
    """ndpg step rule of every neuron: 'sgd' (the draft) or elementwise 'adam' (no global clip: still local)."""
    ndpg_n_step: int = 1
    """ndpg: every TD error uses the n-step return of the replayed window, sum_k gamma^k r_{t+k} + gamma^n V'(s_{t+n}),
    cut at an episode's end (1 = the draft's one-step TD error; docs/algorithm.md §Curved per-neuron critics)."""
    # --- DeepMind Control (MJX, docs/algorithm.md §DeepMind Control) ----------------------------------------
    action_repeat: int = 1
    """DMC: control steps per env step (1 = the paper: no action repeat)."""
    fixed_env_reset_key: bool = False
    """Q7: DMC initial states from one fixed stream (random=1) for every run (faithful: True).
    False derives them from the agent's seed."""
    max_discrete_actions: int = 256
    """DMC: refuse bang-bang action sets larger than this many actions (quadruped: 2^12 = 4096)."""
    torso: Literal["auto", "mlp", "minatar-conv"] = "auto"
    """dqn/qrdqn network: 'auto' = the MinAtar paper's conv net on MinAtar, else an MLP of net_arch."""
    # --- optimisation (docs/algorithm.md §Optimisation) -----------------------------------------------------
    learning_rate: float = 1e-3
    """Adam step size per update, every layer (the critic's for ddpg/ndpg); sweepable."""
    adam_b1: float = 0.9
    """Adam beta1: decay of the gradient mean, per update."""
    adam_b2: float = 0.99
    """Adam beta2: decay of the squared-gradient mean, per update."""
    adam_eps: float = 1e-8
    """Adam epsilon added to the root of the squared-gradient mean (gradient units)."""
    max_grad_norm: float = 1.0
    """Per-layer global-norm gradient clip (gradient L2 norm)."""
    lr_schedule: Literal["constant", "linear"] = "constant"
    """'constant' (the official code) or 'linear': decay from learning_rate to 0 over the run's updates.
    'linear' follows PureJaxRL's LR_LINEAR_DECAY over ``total_updates`` (not ndpg)."""
    gamma: float = 0.99
    """Discount factor per env step, in [0, 1]."""
    double_q: bool = True
    """Double Q-learning target: the online net picks a*, the target net values it (False: max of the target)."""
    td_loss: Literal["mse", "huber"] = "mse"
    """Quirk Q5: shipped configs use MSE without 1/2 (faithful); 'huber' is optax Huber, delta 1."""
    buffer_size: int = 100_000
    """Replay capacity in transitions per seed (capped at total_timesteps: it never wraps then)."""
    batch_size: int = 64
    """Replayed sequences per update."""
    learning_starts: int = 5_000
    """Env steps per seed of random warm-up before the first update; epsilon decays from here."""
    train_frequency: int = 4
    """Env steps per seed between updates (a multiple of num_envs)."""
    target_update_interval: int = 200
    """Env steps per seed between target updates (a multiple of train_frequency)."""
    tau: float = 1.0
    """Target mix at each target update, in [0, 1]; 1.0 is the hard copy of the official code."""
    # --- exploration (docs/algorithm.md §Exploration) -------------------------------------------------------
    epsilon_start: float = 1.0
    """Probability of a random action during the warm-up and at the start of the decay."""
    epsilon_end: float = 0.05
    """Probability of a random action after the decay."""
    exploration_fraction: float = 0.2
    """Fraction of total_timesteps over which epsilon decays linearly, starting at learning_starts."""
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
    """Q10: probability that the env repeats the previous action; None = suite default (MinAtar 0.1, classic 0)."""
    minatar_time_limit: Literal["original", "gymnax"] = "original"
    """Q11: 'original' = no time limit, Freeway terminates at 2500 (faithful); 'gymnax' truncates."""
    # --- evaluation and logging (docs/algorithm.md §Evaluation) ---------------------------------------------
    eval_interval: int = 20_000
    """Env steps per seed between per-layer evaluations (also at step 0 and at the end); 0 disables."""
    num_eval_episodes: int = 10
    """Episodes per seed and per evaluated policy at every evaluation."""
    eval_epsilon: float = 0.05
    """Probability of a random action in evaluation episodes."""
    eval_max_steps: int = 10_000
    """Cap on the length of one evaluation episode (env steps)."""
    log_interval: int = 5_000
    """Env steps per seed per compiled chunk: one metrics row per seed per chunk."""
    return_window: int = 100
    """Training return = mean of the last return_window finished episodes (episodes)."""
    out: str | None = None
    """Output directory; default runs/<env>-<algo>-<timestamp>/."""
    # --- run control: checkpoints, interruption, faults, devices (may change on --resume) -------------------
    checkpoint_interval: int = 50_000
    """Env steps per seed between checkpoints (at the next chunk boundary); 0 = only when stopped early."""
    keep_checkpoints: int = 2
    """Newest checkpoints kept in <out>/checkpoints/ (count)."""
    checkpoint_replay: bool = True
    """Include the replay buffer (exact resume); False = much smaller checkpoints, the buffer is refilled on resume."""
    stop_after_steps: int | None = None
    """Stop as if interrupted after this many env steps per seed (checkpoint + partial outputs, exit 3).
    With seed waves counted over the waves (wave w at env step s has done w * total_timesteps + s)."""
    on_nonfinite: Literal["stop", "drop-seed"] = "stop"
    """NaN/Inf in a layer's loss or parameters: 'stop' the run (exit 4, last good checkpoint kept) or 'drop-seed'."""
    inject_nan: tuple[int, int] | None = None
    """Testing: SEED ENV_STEPS sets that seed's layer-1 parameters to NaN after the chunk reaching ENV_STEPS."""
    num_devices: int | None = None
    """Shard the seeds over the first num_devices devices (default: every device JAX sees)."""
    distributed: bool = False
    """Call jax.distributed.initialize() first (multi-host launches: TPU pod slices, SLURM)."""
    seeds_per_wave: int | Literal["auto"] | None = None
    """Runs (seeds x sweep configs) trained at once, wave after wave; 'auto' = as many as fit; None = all.
    One compiled program and one run directory for all waves; a run's results do not depend on it."""
    memory_budget_gb: float | None = None
    """Plan against this many GiB per device instead of what the device reports (shared machines)."""
    tensorboard: bool = False
    """Also write the metrics.csv / eval.csv values as TensorBoard scalars under <out>/tensorboard/, one TensorBoard
    run per seed plus their mean (tensorboardX; docs/running.md "TensorBoard and Weights & Biases")."""
    wandb: Literal["off", "offline", "online"] = "off"
    """Also log those values to Weights & Biases: 'offline' keeps the W&B run under <out>/wandb/ (upload later with
    `wandb sync`), 'online' streams it (needs `wandb login`); docs/running.md "TensorBoard and Weights & Biases"."""
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
        from purejax_ad.hyperparams import target_update_period  # imports jax: not at import time (fast --help)

        return int(target_update_period(self.target_update_interval, self.train_frequency))


class ConfigError(ValueError):
    """Raised by :func:`purejax_ad.checks.check`; the message lists every problem of a config on one line, ``; ``-separated."""


def config_from_record(record: dict, **overrides) -> Config:
    """The :class:`Config` of a ``config.json`` record (:func:`purejax_ad.outputs.config_record`): every field
    it holds (JSON lists back to tuples, ``sweep`` back to pairs), the defaults for fields it lacks (a record
    written before they existed), ``derived`` / ``quirks`` and unknown keys ignored; then ``overrides``."""
    fields = {f.name for f in dataclasses.fields(Config)} - {"sweep"}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k in fields}
    values["sweep"] = tuple((name, tuple(vals)) for name, vals in record.get("sweep", ()))
    return dataclasses.replace(Config(), **{**values, **overrides})

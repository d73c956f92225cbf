"""SAC baseline on the DeepMind Control tasks, trained by a library: ``brax.training.agents.sac``.

    python -m purejax_ad.sac --env dmc/cartpole-balance --num-seeds 2 --total-timesteps 50000 --out runs/sac-cartpole

The environment is Playground's DMC task (always ``impl="jax"``) wrapped for brax training, and brax's
``sac.train`` does the training; this module checks the input, calls brax once per seed and turns its
progress callbacks into the run-directory schema that ``python -m purejax_ad.compare`` reads
(``docs/running.md``, "The SAC baseline": what each output column means, seeds, step counts, defaults, the
JAX compatibility shim). Exit status: 0 complete; 2 invalid input (before anything is compiled or written);
3 stopped early (SIGINT / SIGTERM) with the results so far written.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tyro

from purejax_ad.control import EXIT_BAD_INPUT, EXIT_OK, EXIT_STOPPED, Stopped, StopSignals, default_run_dir
from purejax_ad.dmc import DMC_ENVS, resolve_dmc_id

__all__ = ["EXIT_BAD_INPUT", "EXIT_OK", "EXIT_STOPPED", "ConfigProblem", "SACConfig", "config_record",
           "default_out_dir", "install_device_put_replicated_shim", "library_versions", "main", "run_sac", "validate"]
SOURCE = "brax.training.agents.sac"
#: brax metric turned into ``episodic_return`` / ``mean_return``, and the one put in ``td_loss_l1``.
RETURN_METRIC = "eval/episode_reward"
LOSS_METRIC = "training/critic_loss"


@dataclass(frozen=True)
class SACConfig:
    """SAC (brax.training.agents.sac) on a DMC task of MuJoCo Playground; one brax call per seed."""

    env: str = "dmc/cartpole-balance"
    """DMC task id (``dmc/<domain>-<task>``, or Playground's name such as ``CartpoleBalance``)."""
    num_seeds: int = 1
    """Seeds, trained one after the other (brax's SAC does not vmap over seeds)."""
    seed: int = 0
    """Seed of the first run; seed index ``i`` trains with ``seed + i``."""
    total_timesteps: int = 500_000
    """Env (control) steps per seed, prefill included (brax's ``num_timesteps``)."""
    num_envs: int = 128
    """Parallel training envs."""
    num_eval_envs: int = 128
    """Evaluation episodes per evaluation (one per eval env)."""
    batch_size: int = 512
    """Transitions per gradient update."""
    learning_rate: float = 1e-3
    """Adam learning rate of the actor and the critic (the temperature uses brax's fixed 3e-4)."""
    discounting: float = 0.99
    """Discount factor."""
    reward_scaling: float = 1.0
    """Multiplier of the reward in the critic target."""
    tau: float = 0.005
    """Polyak rate of the target critic."""
    num_evals: int = 10
    """Evaluations per seed, the one at step 0 included (brax: ``num_evals - 1`` training epochs, at least 1)."""
    episode_length: int = 1000
    """Control steps per episode (DMC: 1000)."""
    action_repeat: int = 1
    """Control steps per agent step."""
    min_replay_size: int = 8192
    """Transitions collected with the initial policy before training (prefill)."""
    max_replay_size: int | None = None
    """Replay capacity in transitions (default: ``total_timesteps``)."""
    grad_updates_per_step: int = 8
    """Gradient updates per actor step (of ``num_envs`` transitions)."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the policy and of each Q network."""
    q_layer_norm: bool = True
    """LayerNorm in the Q network (Playground's DMC setting)."""
    normalize_observations: bool = True
    """Running mean/std observation normalisation."""
    deterministic_eval: bool = True
    """Evaluate the mean action (tanh of the Gaussian mean) instead of sampling."""
    full_reset: bool = False
    """Reset finished training episodes to a fresh random state (Playground's default: a cached first state)."""
    out: str | None = None
    """Output directory (absent or empty); default ``runs/<env>-sac-<timestamp>``."""
    compilation_cache: str | None = None
    """Persistent JAX compilation cache directory (``jax_compilation_cache_dir``): brax recompiles for every seed,
    and with a cache the seeds after the first (and later runs) load the compiled programs instead. Takes effect
    only if JAX has compiled nothing yet in this process (the CLI); ignored if a cache directory is already set."""


class ConfigProblem(ValueError):
    """Invalid :class:`SACConfig`; the message lists every problem."""


def validate(config: SACConfig, out: str | Path | None = None) -> list[str]:
    """Every problem with ``config`` (and the output directory ``out``), found without compiling or writing."""
    from purejax_ad.rundir import output_dir_problems

    problems = []
    dmc_id = resolve_dmc_id(config.env)
    if dmc_id is None:
        problems.append(f"--env {config.env!r} is not a DeepMind Control task (the SAC baseline runs on Playground's "
                        f"DMC suite only); valid: {', '.join(DMC_ENVS)}")
    for name in ("num_seeds", "total_timesteps", "num_envs", "num_eval_envs", "batch_size", "num_evals",
                 "episode_length", "action_repeat", "grad_updates_per_step"):
        if getattr(config, name) < 1:
            problems.append(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(config, name)})")
    if config.seed < 0:
        problems.append(f"--seed must be >= 0 (got {config.seed})")
    if config.min_replay_size < 0:
        problems.append(f"--min-replay-size must be >= 0 (got {config.min_replay_size})")
    elif config.num_envs >= 1 and config.action_repeat >= 1:
        prefill = -(-config.min_replay_size // config.num_envs) * config.num_envs * config.action_repeat
        if prefill >= config.total_timesteps:
            problems.append(f"--total-timesteps {config.total_timesteps} leaves no training after the prefill of "
                            f"{prefill} env steps (--min-replay-size {config.min_replay_size}, rounded up to whole "
                            f"steps of --num-envs {config.num_envs} x --action-repeat {config.action_repeat})")
    capacity = config.total_timesteps if config.max_replay_size is None else config.max_replay_size
    if capacity < max(config.num_envs, config.min_replay_size, 1):
        problems.append(f"replay capacity {capacity} (--max-replay-size, default --total-timesteps) must hold at least "
                        f"--num-envs ({config.num_envs}) and --min-replay-size ({config.min_replay_size}) transitions")
    if not (config.learning_rate > 0 and math.isfinite(config.learning_rate)):
        problems.append(f"--learning-rate must be a positive number (got {config.learning_rate})")
    if not 0.0 <= config.discounting <= 1.0:
        problems.append(f"--discounting must be in [0, 1] (got {config.discounting})")
    if not 0.0 < config.tau <= 1.0:
        problems.append(f"--tau must be in (0, 1] (got {config.tau})")
    if not math.isfinite(config.reward_scaling):
        problems.append(f"--reward-scaling must be finite (got {config.reward_scaling})")
    if not config.hidden_sizes or any(h < 1 for h in config.hidden_sizes):
        problems.append(f"--hidden-sizes must be one or more positive widths (got {config.hidden_sizes})")
    if out is not None:
        problems += output_dir_problems(out)
    return problems


def default_out_dir(config: SACConfig) -> Path:
    """``runs/<env>-sac-<timestamp>/``."""
    return default_run_dir(config.env, "sac")


def library_versions() -> dict:
    """Versions of the libraries that do the work."""
    import importlib.metadata as md

    out = {}
    for dist in ("brax", "playground", "mujoco", "mujoco-mjx", "jax"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    return out


def config_record(config: SACConfig) -> dict:
    """JSON-ready config: the options plus what they become for brax."""
    record = dataclasses.asdict(config)
    record["hidden_sizes"] = list(config.hidden_sizes)
    dmc_id = resolve_dmc_id(config.env)
    record.update({
        "env": dmc_id or config.env,
        "algo": "sac",
        "preset": "playground-dmc-sac",
        "source": SOURCE,
        "playground_env": DMC_ENVS.get(dmc_id),
        "impl": "jax",
        "wrap_env_fn": "mujoco_playground.wrapper.wrap_for_brax_training",
        "train_seeds": [config.seed + i for i in range(config.num_seeds)],
        "effective_max_replay_size": config.total_timesteps if config.max_replay_size is None
        else config.max_replay_size,
        "episodic_return_source": RETURN_METRIC,
        "versions": library_versions(),
    })
    return record


def _scalar(value) -> float | None:
    try:
        v = float(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        return None
    return v


def install_device_put_replicated_shim() -> bool:
    """brax 0.14.2's SAC calls ``jax.device_put_replicated``, which JAX 0.10 removed (google/brax#671).

    Reinstates it, only where it is missing, as JAX's migration guide describes it (``migrate_pmap.html``,
    "drop-in replacements"): every leaf stacked once per device along a new leading axis, sharded over that
    axis. Returns whether the shim was installed.
    """
    import jax

    try:
        jax.device_put_replicated  # noqa: B018
        return False
    except AttributeError:
        pass

    def device_put_replicated(x, devices):
        devices = list(devices)
        sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), ("i",)),
                                              jax.sharding.PartitionSpec("i"))

        def put(leaf):
            leaf = jax.numpy.asarray(leaf)
            return jax.device_put(jax.numpy.broadcast_to(leaf, (len(devices), *leaf.shape)), sharding)

        return jax.tree.map(put, x)

    jax.device_put_replicated = device_put_replicated
    return True


def run_sac(config: SACConfig, progress: bool = True) -> dict:
    """Train ``config.num_seeds`` seeds with brax's SAC and write every output; returns the summary.

    Raises:
      ConfigProblem: invalid config or output directory (nothing compiled or written).
    """
    out = Path(config.out) if config.out else default_out_dir(config)
    problems = validate(config, out)
    if problems:
        raise ConfigProblem("\n".join(problems))

    install_device_put_replicated_shim()
    if config.compilation_cache:
        import jax

        if not jax.config.jax_compilation_cache_dir:
            jax.config.update("jax_compilation_cache_dir", str(config.compilation_cache))
    from brax.training.agents.sac import networks as sac_networks
    from brax.training.agents.sac import train as sac_train
    from mujoco_playground import wrapper as pg_wrapper

    from purejax_ad.dmc import load_playground_env
    from purejax_ad.outputs import RunWriter, json_text, plot_learning_curve

    env_id = resolve_dmc_id(config.env)
    environment = load_playground_env(env_id)
    network_factory = functools.partial(sac_networks.make_sac_networks, hidden_layer_sizes=tuple(config.hidden_sizes),
                                        q_network_layer_norm=config.q_layer_norm)
    wrap_env_fn = functools.partial(pg_wrapper.wrap_for_brax_training, full_reset=config.full_reset)

    S = config.num_seeds
    writer = RunWriter(out, num_layers=1, num_seeds=S)
    record = config_record(config)
    writer.write_json("config.json", record)
    raw_log = open(out / "brax_metrics.jsonl", "w")
    host = {"metric_rows": [], "eval_rows": [], "last": [None] * S, "last_step": [0] * S, "seed_s": [None] * S,
            "first_report_s": [None] * S, "finished": [False] * S}
    t_start = time.perf_counter()

    def summary(stop_reason: str | None) -> dict:
        return _summary(config, record, host, out, stop_reason, time.perf_counter() - t_start)

    def progress_fn(seed_index: int, t_seed: float, num_steps, metrics) -> None:
        steps = int(num_steps)
        m = {k: _scalar(v) for k, v in metrics.items()}
        ret = m.get(RETURN_METRIC)
        ret = math.nan if ret is None else ret
        loss = m.get(LOSS_METRIC)
        row = {"config": 0, "seed": seed_index, "env_steps": steps, "episodic_return": ret,
               "td_loss_l1": "" if loss is None else loss}
        host["metric_rows"].append(writer.write_rows("metrics", [row])[0])
        host["eval_rows"].append(writer.write_rows("eval", [{"config": 0, "seed": seed_index, "env_steps": steps,
                                                             "layers": 1, "mean_return": ret}])[0])
        raw_log.write(json_text({"seed": seed_index, "env_steps": steps, **m}) + "\n")
        raw_log.flush()
        host["last"][seed_index], host["last_step"][seed_index] = ret, steps
        if host["first_report_s"][seed_index] is None:
            host["first_report_s"][seed_index] = time.perf_counter() - t_seed
        if progress:
            sps = m.get("training/sps")
            print(f"sac {env_id} seed {seed_index}: step {steps:>9,}  eval return {ret:8.2f}"
                  + (f"  critic loss {loss:.4g}" if loss is not None else "")
                  + (f"  {sps:,.0f} steps/s" if sps else ""), flush=True)

    stop_reason = None
    try:
        with StopSignals(raise_in_main=True):  # brax trains a seed in one call: a signal raises Stopped in it
            _train_seeds(config, sac_train, environment, wrap_env_fn, network_factory, progress_fn, host, writer,
                         summary)
    except Stopped as e:
        stop_reason = str(e)
    except KeyboardInterrupt:
        stop_reason = "SIGINT"
    finally:
        raw_log.close()
    result = summary(stop_reason)
    writer.write_json("summary.json", result)
    plot_learning_curve(host["metric_rows"], host["eval_rows"], out / "learning_curve.png",
                        f"SAC ({SOURCE}) on {env_id} ({S} seeds)",
                        panel_titles=(f"eval return ({RETURN_METRIC}; mean, ±3 SE)", "evaluation (mean, ±3 SE)"))
    writer.close()
    return result


def _train_seeds(config: SACConfig, sac_train, environment, wrap_env_fn, network_factory, progress_fn, host: dict,
                 writer, summary) -> None:
    """Train the seeds one after the other (one ``sac_train.train`` call each), rewriting the summary after each."""
    S = config.num_seeds
    for i in range(S):
        t_seed = time.perf_counter()
        sac_train.train(
            environment=environment,
            num_timesteps=config.total_timesteps,
            episode_length=config.episode_length,
            wrap_env=True,
            wrap_env_fn=wrap_env_fn,
            action_repeat=config.action_repeat,
            num_envs=config.num_envs,
            num_eval_envs=config.num_eval_envs,
            learning_rate=config.learning_rate,
            discounting=config.discounting,
            seed=config.seed + i,
            batch_size=config.batch_size,
            num_evals=config.num_evals,
            normalize_observations=config.normalize_observations,
            reward_scaling=config.reward_scaling,
            tau=config.tau,
            min_replay_size=config.min_replay_size,
            max_replay_size=config.max_replay_size,
            grad_updates_per_step=config.grad_updates_per_step,
            deterministic_eval=config.deterministic_eval,
            network_factory=network_factory,
            progress_fn=functools.partial(progress_fn, i, t_seed),
        )
        host["seed_s"][i] = time.perf_counter() - t_seed
        host["finished"][i] = True
        writer.write_json("summary.json", summary(None if i == S - 1 else "running"))


def _summary(config: SACConfig, record: dict, host: dict, out: Path, stop_reason: str | None, wall_s: float) -> dict:
    from purejax_ad.summary import device_description, final_stats as group_stats

    S = config.num_seeds
    final = np.array([np.nan if v is None else v for v in host["last"]], np.float64)
    final_stats = group_stats(final, None, np.ones(S, bool))
    mean = final_stats["final_return_mean"]
    final_stats["final_eval_per_layer"] = [mean] if not math.isnan(mean) else None
    done_s = [s for s in host["seed_s"] if s is not None]
    return {
        "env": record["env"],
        "algo": "sac",
        "preset": record["preset"],
        "source": SOURCE,
        "num_seeds": S,
        "num_configs": 1,
        # Env steps per seed reached by every seed (brax counts control steps, prefill included).
        "total_timesteps": min(host["last_step"]),
        "requested_total_timesteps": config.total_timesteps,
        "complete": stop_reason is None and all(host["finished"]),
        "stop_reason": stop_reason,
        "seeds_finished": int(sum(host["finished"])),
        **final_stats,
        "configs": [{"config": 0, **final_stats}],
        "sweep": {},
        "diverged_seeds": [],
        "episodic_return_source": RETURN_METRIC,
        "config": record,
        "versions": record["versions"],
        # Per seed: wall time of the whole brax call, and until its first report (compile + first eval).
        "seed_wall_s": host["seed_s"],
        "seed_first_report_s": host["first_report_s"],
        "train_s": wall_s,
        # Wall-clock over the finished seeds, compilation included (brax compiles for every seed).
        "env_steps_per_s": sum(host["last_step"]) / sum(done_s) if done_s and sum(done_s) > 0 else None,
        "device": device_description(1),
        "out_dir": str(out),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    argv = sys.argv[1:] if argv is None else argv
    argv = [{"true": "True", "false": "False"}.get(a.lower(), a) for a in argv]
    try:
        config = tyro.cli(SACConfig, args=argv, prog="python -m purejax_ad.sac",
                          config=(tyro.conf.FlagConversionOff,))
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_BAD_INPUT
    try:
        summary = run_sac(config)
    except ConfigProblem as e:
        print("error: " + "\n       ".join(str(e).splitlines()), file=sys.stderr)
        return EXIT_BAD_INPUT
    from purejax_ad.outputs import json_text
    print(json_text({k: summary[k] for k in ("env", "algo", "num_seeds", "total_timesteps", "complete",
                                             "final_return_mean", "final_return_se", "final_return_per_seed",
                                             "env_steps_per_s")}))
    print(f"results written to {summary['out_dir']}/ (summary.json, metrics.csv, eval.csv, brax_metrics.jsonl, "
          "learning_curve.png)")
    if summary["stop_reason"] is not None:
        print(f"stopped early ({summary['stop_reason']}) after {summary['seeds_finished']} of {config.num_seeds} "
              "seeds; the rows so far are written (a SAC run cannot be resumed)", file=sys.stderr)
        return EXIT_STOPPED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

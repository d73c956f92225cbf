"""The run summary (``summary.json``): final returns per run and per sweep config, timings, how the run ended.

:func:`run_summary` builds it for :func:`purejax_ad.run.run`; :func:`final_stats` is shared with the SAC
baseline (:mod:`purejax_ad.sac`).
"""

from __future__ import annotations

import math
from pathlib import Path

import jax
import numpy as np

from purejax_ad.algos import algo_spec
from purejax_ad.config import Config
from purejax_ad.divergence import value_warnings
from purejax_ad.dmc import DMC_ACTION_DIMS, DMC_ENVS, EPISODE_LENGTH
from purejax_ad.envs import canonical_env_id, env_suite
from purejax_ad.host_record import HostRecord
from purejax_ad.outputs import config_record, mean_and_se
from purejax_ad.seeds import num_waves


def resume_command(out: Path) -> str:
    """The command that continues the run in ``out``."""
    return f"python -m purejax_ad.train --resume {out}"


def run_name(config: Config, r: int) -> str:
    """Human name of run ``r``: ``seed s``, or ``seed s of sweep config c (name=value, ...)``."""
    S = config.num_seeds
    if config.num_configs == 1:
        return f"seed {r}"
    combo = ", ".join(f"{k}={v}" for k, v in config.sweep_configs[r // S].items())
    return f"seed {r % S} of sweep config {r // S} ({combo})"


def device_description(num_devices: int) -> str:
    """``"<device kind> x<num_devices>"`` of the first device JAX sees."""
    return f"{jax.devices()[0].device_kind} x{num_devices}"


def final_stats(final: np.ndarray, last_eval: np.ndarray | None, keep: np.ndarray) -> dict:
    """The ``final_*`` summary entries of a group of runs.

    Args:
      final: ``[runs]`` last training return of each run (NaN: none yet).
      last_eval: ``[runs, layers]`` newest per-layer evaluation returns, or ``None`` (no evaluation).
      keep: ``[runs]`` bool, the runs that count (not dropped).

    Returns:
      ``final_return_mean`` / ``final_return_se`` over the kept runs, ``final_return_per_seed`` (``None``
      for a dropped run or one without a return) and ``final_eval_per_layer`` (mean over the kept runs, or
      ``None``).
    """
    mean, se = mean_and_se(final[keep])
    return {
        "final_return_mean": mean,
        "final_return_se": se,
        "final_return_per_seed": [None if (not k or math.isnan(v)) else float(v) for k, v in zip(keep, final)],
        "final_eval_per_layer": (np.nanmean(last_eval[keep], axis=0).tolist()
                                 if last_eval is not None and keep.any() else None),
    }


def run_summary(config: Config, host: HostRecord, stop_reason: str | None, faults: list, compile_s: float,
                out: Path, checkpoint: int | None, num_devices: int) -> dict:
    """The summary of a (complete or stopped) run, as written to ``summary.json``.

    Args:
      host: the host loop's record at the end.
      stop_reason: ``None`` (complete), ``"SIGINT"``, ``"SIGTERM"``, ``"stop_after_steps"`` or ``"nonfinite"``.
      faults: ``[(run index, [layer, ...]), ...]`` of the chunk that stopped a ``"nonfinite"`` run.
      compile_s: seconds spent compiling (and restoring).
      checkpoint: label of the newest checkpoint (``None``: none).
      num_devices: devices the runs were sharded over.
    """
    S, C = config.num_seeds, config.num_configs
    R = S * C
    diverged = {int(r) for r in host.diverged}
    final = np.full(R, np.nan)  # NaN for a run stopped before its first chunk
    for row in host.metric_rows:  # rows are in time order per run: the last one wins
        final[row["config"] * S + row["seed"]] = row["episodic_return"]
    keep = np.array([r not in diverged for r in range(R)])
    last_eval = None
    if host.last_eval:
        L = len(next(iter(host.last_eval.values())))
        last_eval = np.array([host.last_eval.get(str(r), [np.nan] * L) for r in range(R)], np.float64)
    per_config = []
    for c, combo in enumerate(config.sweep_configs):
        rows = slice(c * S, (c + 1) * S)
        per_config.append({"config": c, **combo, **final_stats(final[rows], None if last_eval is None else
                                                               last_eval[rows], keep[rows])})
    waves = num_waves(config, host.wave_size)
    summary = {
        "env": config.env,
        "algo": config.algo,
        "preset": config.preset,
        "num_seeds": S,
        "num_configs": C,
        "total_timesteps": config.effective_total_timesteps if host.wave >= waves else host.env_steps,
        "complete": stop_reason is None,
        "stop_reason": stop_reason,
        # Without a sweep: the run's statistics; with one: see "configs" (one entry per combination).
        **{k: (v if C == 1 else None) for k, v in per_config[0].items() if k.startswith("final_")},
        "configs": per_config,
        "sweep": {name: list(values) for name, values in config.sweep},
        "diverged_seeds": [{"seed": int(r) % S, "config": int(r) // S, **v}
                           for r, v in sorted(host.diverged.items(), key=lambda kv: int(kv[0]))],
        # Implausible |Q| or TD loss, once per (config, seed, layer): docs/running.md §Implausible values.
        "warnings": value_warnings(config, host.metric_rows),
        "compile_s": compile_s,
        "train_s": host.train_s,
        "eval_s": host.eval_s,
        "env_steps_per_s": ((min(host.wave, waves) * config.effective_total_timesteps
                             + (host.env_steps if stop_reason else 0)) * min(host.wave_size, R)
                            / max(host.train_s, 1e-9)),
        "waves": {"runs_per_wave": host.wave_size, "num_waves": waves, "completed": host.wave},
        "device": device_description(num_devices),
        "num_devices": num_devices,
        "quirks": config_record(config)["quirks"],
        "context_source": config.context_source,
        "resumed_at": host.resumed_at,
        "out_dir": str(out),
        "last_checkpoint": checkpoint,
    }
    for key, name in algo_spec(config.algo).summary_keys:
        summary[key] = getattr(config, name)
    if env_suite(config.env) == "dmc":
        m = DMC_ACTION_DIMS[DMC_ENVS[canonical_env_id(config.env)]]
        summary["dmc"] = {"actions": "continuous" if config.continuous_actions else f"bang-bang, {2**m} actions",
                          "action_repeat": config.action_repeat, "episode_length": EPISODE_LENGTH,
                          "fixed_env_reset_key": config.fixed_env_reset_key, "simulator": "MJX (Playground, impl=jax)"}
    if stop_reason is not None:
        summary["resume_command"] = resume_command(out) if checkpoint is not None else None
    if stop_reason == "nonfinite":
        summary["fault"] = "; ".join(f"{run_name(config, r)}, layer(s) {', '.join(map(str, layers))}"
                                     for r, layers in faults) + f", in the chunk ending at env step {host.env_steps}"
    return summary

"""The thin host loop: compile once, run compiled chunks, log, evaluate, checkpoint, write outputs as it goes.

Runs -- every (sweep config, seed) pair, ``num_configs * num_seeds`` of them, config-major -- are
``jax.vmap``-ed and the run axis is sharded over a 1-D mesh of every device JAX sees (``shard_map``;
no collectives are needed). Seed ``i`` uses ``fold_in(PRNGKey(config.seed), i)`` with its *global*
index ``i`` (the same keys for every sweep config: paired comparisons), so a seed's result depends
neither on how many seeds run beside it nor on the number of devices. A run's swept hyperparameters
are traced values in its state. Every compiled function takes the run-stacked state and donates it.

A run stops early, keeping a checkpoint and valid partial outputs, on SIGINT / SIGTERM or at
``stop_after_steps``; a non-finite loss or parameter stops it too (or drops the seed), keeping the
last good checkpoint. ``run(config, resume=True)`` continues from the newest checkpoint of
``config.out``; with the replay buffer in the checkpoint the result is bit-identical to an
uninterrupted run on the same device(s).
"""

from __future__ import annotations

import datetime
import math
import signal
import sys
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from purejax_ad import distributed
from purejax_ad.ad_dqn import Hyperparams
from purejax_ad.checkpoint import Checkpointer
from purejax_ad.config import AD_ALGOS, CONTINUOUS_ALGOS, QR_ALGOS, Config, ConfigError, check, make_config_env
from purejax_ad.dmc import DMC_ACTION_DIMS, DMC_ENVS, EPISODE_LENGTH
from purejax_ad.envs import canonical_env_id, env_suite

from purejax_ad.outputs import RunWriter, config_record, mean_and_se, plot_learning_curve
from purejax_ad.trainer import make_train

#: Process exit statuses of ``python -m purejax_ad.train``.
EXIT_OK, EXIT_BAD_INPUT, EXIT_STOPPED, EXIT_NONFINITE = 0, 2, 3, 4
#: Name of the mesh axis the seeds are sharded over.
SEED_AXIS = "seeds"


def default_out_dir(config: Config) -> Path:
    """``runs/<env>-<algo>-<timestamp>/``."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.env.replace('/', '_')}-{config.algo}-{stamp}"


def seed_keys(config: Config, num_seeds: int | None = None) -> jax.Array:
    """``[num_seeds]`` keys, ``fold_in(PRNGKey(seed), i)`` for global seed index ``i``."""
    base = jax.random.key(config.seed)
    n = config.num_seeds if num_seeds is None else num_seeds
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.arange(n))


def run_keys(config: Config, num_runs: int) -> jax.Array:
    """``[num_runs]`` keys: run ``r`` is seed ``r % num_seeds`` (of sweep config ``r // num_seeds``)."""
    return seed_keys(config, config.num_seeds)[np.arange(num_runs) % config.num_seeds]


def run_hyperparams(config: Config, num_runs: int) -> Hyperparams:
    """``[num_runs]``-stacked :class:`Hyperparams`: run ``r`` gets sweep config ``r // num_seeds``
    (padding runs beyond ``num_configs * num_seeds`` get config 0)."""
    combos = config.sweep_configs
    rows = [combos[r // config.num_seeds] if r < len(combos) * config.num_seeds else combos[0]
            for r in range(num_runs)]
    per_run = [Hyperparams.from_values({k: row.get(k, getattr(config, k)) for k in Hyperparams._fields})
               for row in rows]
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *per_run)


def padded_num_seeds(num_seeds: int, num_devices: int) -> int:
    """Seeds actually computed: ``num_seeds`` rounded up to a multiple of the device count."""
    return math.ceil(num_seeds / num_devices) * num_devices


def seed_sharding(num_devices: int | None = None) -> NamedSharding:
    """Shards a leading seed axis over a 1-D mesh of the first ``num_devices`` devices (default: all, all hosts).

    Raises:
      purejax_ad.config.ConfigError: more devices asked for than JAX sees.
    """
    devices = jax.devices()
    if num_devices is not None:
        if num_devices > len(devices):
            raise ConfigError(f"num_devices is {num_devices} but JAX sees {len(devices)} device(s): {devices}")
        devices = devices[:num_devices]
    return NamedSharding(Mesh(np.asarray(devices), (SEED_AXIS,)), PartitionSpec(SEED_AXIS))


def per_device_vmap(fn, sharding: NamedSharding, num_args: int):
    """``vmap(fn)`` run by every device on its own block of seeds (``jax.shard_map``, no collectives).

    Each device executes exactly the single-device program on its local seeds, so per-seed results
    do not depend on the device count.
    """
    spec = sharding.spec
    return jax.shard_map(jax.vmap(fn), mesh=sharding.mesh, in_specs=(spec,) * num_args, out_specs=spec,
                         check_vma=False)


def to_host(tree):
    """Seed-sharded arrays -> numpy on this host (gathered from every process in a multi-host run)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, tree)


def eval_due(config: Config, prev_steps: int, steps: int, interval: int | None = None) -> bool:
    """Whether a multiple of ``interval`` (default ``eval_interval``) lies in ``(prev_steps, steps]``."""
    interval = config.eval_interval if interval is None else interval
    if interval <= 0:
        return False
    return steps // interval > prev_steps // interval


def resume_command(out: Path) -> str:
    """The command that continues the run in ``out``."""
    return f"python -m purejax_ad.train --resume {out}"


class StopSignals:
    """Context manager: SIGINT / SIGTERM only set :attr:`received` (the signal's name), so the host
    loop finishes the current chunk and stops cleanly. Handlers are restored on exit."""

    def __init__(self):
        self.received: str | None = None
        self._previous = {}

    def _handle(self, signum, _frame):
        self.received = signal.Signals(signum).name

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


def poison_layer(state, seed: int, sharding):
    """Testing: ``state`` with run ``seed``'s layer-1 parameters set to NaN (fault injection)."""
    params = state.learner.params
    first = jax.tree.map(lambda x: jax.device_put(x.at[seed].set(jnp.nan), sharding), params[0])
    return state._replace(learner=state.learner._replace(params=(first, *params[1:])))


def _new_host_record(config: Config) -> dict:
    return {"env_steps": 0, "n_evals": 0, "metric_rows": [], "eval_rows": [], "last_eval": None, "train_s": 0.0,
            "eval_s": 0.0, "diverged": {}, "resumed_at": [], "checkpoint_replay": config.checkpoint_replay}


def run(config: Config, progress: bool = True, resume: bool = False) -> dict:
    """Train ``config.num_seeds`` seeds of ``config`` and write every output; returns the summary.

    Args:
      config: the run. ``config.out`` is the output directory (default :func:`default_out_dir`).
      progress: show a progress bar.
      resume: continue the run in ``config.out`` from its newest checkpoint.

    Returns:
      The summary (also written to ``summary.json``); ``summary["stop_reason"]`` is ``None`` for a
      complete run, else ``"SIGINT"``, ``"SIGTERM"``, ``"stop_after_steps"`` or ``"nonfinite"``.

    Raises:
      purejax_ad.config.ConfigError: invalid config or output directory (nothing compiled or written).
    """
    out = Path(config.out) if config.out else default_out_dir(config)
    check(config, out, resume)
    if config.distributed:  # initialize (unless done), then wait until every process has checked
        distributed.start(config)
    env = make_config_env(config)
    trainer = make_train(config, env)
    L, S = trainer.network.num_layers, config.num_seeds
    R = config.num_configs * S  # runs: (sweep config, seed) pairs, config-major
    sharding = seed_sharding(config.num_devices)
    num_devices = sharding.mesh.size
    R_pad = padded_num_seeds(R, num_devices)
    is_main = jax.process_index() == 0
    if R_pad != R and is_main:
        what = f"{S} seeds" if config.num_configs == 1 else f"{R} runs ({config.num_configs} configs x {S} seeds)"
        print(f"note: {what} padded to {R_pad} for {num_devices} devices; the {R_pad - R} padding runs are "
              "computed and discarded", file=sys.stderr)
    keys = distributed.device_put(run_keys(config, R_pad), sharding)
    hyper = jax.device_put(run_hyperparams(config, R_pad), sharding)
    eval_base = jax.vmap(lambda k: jax.random.fold_in(k, 0x5EED))(keys)

    t0 = time.perf_counter()
    state_shape = jax.eval_shape(jax.vmap(trainer.init), keys, hyper)
    compiled = {}
    for name, fn, args, donate in [("init", trainer.init, (keys, hyper), ()),
                                   ("warmup", trainer.warmup, (state_shape,), 0),
                                   ("chunk", trainer.train_chunk, (state_shape,), 0),
                                   ("evaluate", trainer.evaluate, (state_shape, eval_base), ())]:
        compiled[name] = jax.jit(per_device_vmap(fn, sharding, len(args)), donate_argnums=donate).lower(*args).compile()
    init, warmup, chunk, evaluate = (compiled[k] for k in ("init", "warmup", "chunk", "evaluate"))
    compile_s = time.perf_counter() - t0

    ckpt = Checkpointer(out, config.keep_checkpoints, config.checkpoint_replay)
    if resume:
        abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), state_shape)
        state, host, has_replay = ckpt.restore(abstract)
        host["resumed_at"].append(host["env_steps"])
        if not has_replay:  # refill an empty buffer; the refill's env steps are not counted
            counters = (state.env_steps, state.recent_returns, state.num_episodes)  # kept on the host: warmup donates
            counters = jax.tree.map(lambda x: jax.device_put(np.asarray(x), sharding), counters)
            state = warmup(state._replace(buffer_state=init(keys, hyper).buffer_state))
            state = state._replace(env_steps=counters[0], recent_returns=counters[1], num_episodes=counters[2])
        host["checkpoint_replay"] = config.checkpoint_replay
    else:
        host = _new_host_record(config)
        state = init(keys, hyper)
    writer = RunWriter(out, L, S, host["metric_rows"], host["eval_rows"], enabled=is_main,
                       num_configs=config.num_configs)
    if not resume:
        writer.write_json("config.json", config_record(config))

    def do_eval(state, steps):
        t = time.perf_counter()
        ek = jax.vmap(lambda k: jax.random.fold_in(k, host["n_evals"]))(eval_base)
        returns = to_host(evaluate(state, ek))
        host["n_evals"] += 1
        host["eval_s"] += time.perf_counter() - t
        host["eval_rows"].extend(writer.write_eval(steps, returns))
        host["last_eval"] = returns[:R].tolist()

    total = config.effective_total_timesteps
    stop_reason, faults = None, []
    with StopSignals() as signals:
        if not resume:
            if config.eval_interval > 0:
                do_eval(state, 0)
            t = time.perf_counter()
            state = warmup(state)
            jax.block_until_ready(state.env_steps)
            host["train_s"] += time.perf_counter() - t
            host["env_steps"] = config.warmup_iters * config.num_envs
        bar = tqdm(total=total, initial=host["env_steps"], unit="step", disable=not (progress and is_main),
                   desc=f"{config.algo} {config.env}", dynamic_ncols=True)
        while host["env_steps"] < total:
            t = time.perf_counter()
            state, metrics = chunk(state)
            metrics = to_host(metrics)
            rows = writer.write_metrics(metrics)
            host["train_s"] += time.perf_counter() - t
            host["metric_rows"].extend(rows)
            prev, steps = host["env_steps"], rows[0]["env_steps"]
            host["env_steps"] = steps
            bad = ~metrics.finite[:R]
            faults = [(r, [int(i) + 1 for i in np.flatnonzero(bad[r])]) for r in range(R)
                      if bad[r].any() and str(r) not in host["diverged"]]
            for r, layers in faults:
                host["diverged"][str(r)] = {"layers": layers, "env_steps": steps}
            if faults and config.on_nonfinite == "stop":
                stop_reason = "nonfinite"
                break
            for r, layers in faults if is_main else ():
                print(f"\nnote: {run_name(config, r)} dropped: non-finite loss or parameters in layer(s) {layers} "
                      f"in the chunk ending at env step {steps}; the other seeds go on", file=sys.stderr)
            if eval_due(config, prev, steps) and steps < total:
                do_eval(state, steps)
            ret = mean_and_se([row["episodic_return"] for r, row in enumerate(rows) if str(r) not in host["diverged"]])[0]
            bar.set_postfix(sps=f"{steps * R / max(host['train_s'], 1e-9):,.0f}", ret=f"{ret:.1f}")
            bar.update(steps - prev)
            if steps >= total:
                break
            if signals.received:
                stop_reason = signals.received
            elif config.stop_after_steps is not None and steps >= config.stop_after_steps:
                stop_reason = "stop_after_steps"
            if stop_reason or eval_due(config, prev, steps, config.checkpoint_interval):
                ckpt.save(steps, state, host)
            if stop_reason:
                break
            if config.inject_nan is not None and prev < config.inject_nan[1] <= steps:
                state = poison_layer(state, config.inject_nan[0], sharding)
        bar.close()
        if stop_reason is None and config.eval_interval > 0:
            do_eval(state, host["env_steps"])
    ckpt.close()

    summary = _summary(config, host, stop_reason, faults, compile_s, out, ckpt.latest_step(), num_devices)
    writer.write_json("summary.json", summary)
    if is_main:
        labels = [", ".join(f"{k}={v}" for k, v in combo.items()) for combo in config.sweep_configs]
        plot_learning_curve(host["metric_rows"], host["eval_rows"], out / "learning_curve.png",
                            f"{config.algo} on {config.env} ({config.preset}, {S} seeds)", labels)
    writer.close()
    return summary


def run_name(config: Config, r: int) -> str:
    """Human name of run ``r``: ``seed s``, or ``seed s of sweep config c (name=value, ...)``."""
    S = config.num_seeds
    if config.num_configs == 1:
        return f"seed {r}"
    combo = ", ".join(f"{k}={v}" for k, v in config.sweep_configs[r // S].items())
    return f"seed {r % S} of sweep config {r // S} ({combo})"


def _final_stats(final: np.ndarray, last_eval, keep: np.ndarray) -> dict:
    mean, se = mean_and_se(final[keep])
    return {
        "final_return_mean": mean,
        "final_return_se": se,
        "final_return_per_seed": [None if (not k or math.isnan(v)) else float(v) for k, v in zip(keep, final)],
        "final_eval_per_layer": (np.nanmean(last_eval[keep], axis=0).tolist()
                                 if last_eval is not None and keep.any() else None),
    }


def _summary(config: Config, host: dict, stop_reason, faults, compile_s: float, out: Path, checkpoint,
             num_devices: int) -> dict:
    S, C = config.num_seeds, config.num_configs
    R = S * C
    diverged = {int(r) for r in host["diverged"]}
    final = np.array([r["episodic_return"] for r in host["metric_rows"][-R:]], np.float64)
    if final.size < R:  # stopped before the first chunk
        final = np.full(R, np.nan)
    keep = np.array([r not in diverged for r in range(R)])
    last_eval = np.asarray(host["last_eval"], np.float64) if host["last_eval"] is not None else None
    per_config = []
    for c, combo in enumerate(config.sweep_configs):
        rows = slice(c * S, (c + 1) * S)
        per_config.append({"config": c, **combo, **_final_stats(final[rows], None if last_eval is None else
                                                                last_eval[rows], keep[rows])})
    summary = {
        "env": config.env,
        "algo": config.algo,
        "preset": config.preset,
        "num_seeds": S,
        "num_configs": C,
        "total_timesteps": host["env_steps"],
        "complete": stop_reason is None,
        "stop_reason": stop_reason,
        # Without a sweep: the run's statistics; with one: see "configs" (one entry per combination).
        **{k: (v if C == 1 else None) for k, v in per_config[0].items() if k.startswith("final_")},
        "configs": per_config,
        "sweep": {name: list(values) for name, values in config.sweep},
        "diverged_seeds": [{"seed": int(r) % S, "config": int(r) // S, **v}
                           for r, v in sorted(host["diverged"].items(), key=lambda kv: int(kv[0]))],
        "compile_s": compile_s,
        "train_s": host["train_s"],
        "eval_s": host["eval_s"],
        "env_steps_per_s": host["env_steps"] * R / max(host["train_s"], 1e-9),
        "device": f"{jax.devices()[0].device_kind} x{num_devices}",
        "quirks": config_record(config)["quirks"],
        "context_source": config.context_source,
        "resumed_at": host["resumed_at"],
        "out_dir": str(out),
        "last_checkpoint": checkpoint,
    }
    if config.algo in QR_ALGOS:
        summary["qr_loss"] = config.qr_loss
        summary["num_quantiles"] = config.num_quantiles
    if config.algo in AD_ALGOS:
        summary["cell"] = config.network_cell
    if config.algo == "ndpg":
        summary["ndpg_critic"] = config.ndpg_critic
    if env_suite(config.env) == "dmc":
        m = DMC_ACTION_DIMS[DMC_ENVS[canonical_env_id(config.env)]]
        summary["dmc"] = {"actions": "continuous" if config.algo in CONTINUOUS_ALGOS else f"bang-bang, {2**m} actions",
                          "action_repeat": config.action_repeat, "episode_length": EPISODE_LENGTH,
                          "fixed_env_reset_key": config.fixed_env_reset_key, "simulator": "MJX (Playground, impl=jax)"}
    if stop_reason is not None:
        summary["resume_command"] = resume_command(out) if checkpoint is not None else None
    if stop_reason == "nonfinite":
        summary["fault"] = "; ".join(f"{run_name(config, r)}, layer(s) {', '.join(map(str, layers))}"
                                     for r, layers in faults) + f", in the chunk ending at env step {host['env_steps']}"
    return summary

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

import dataclasses
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
from purejax_ad.algos import algo_spec
from purejax_ad.checkpoint import Checkpointer
from purejax_ad.config import Config, ConfigError, check, make_config_env
from purejax_ad.dmc import DMC_ACTION_DIMS, DMC_ENVS, EPISODE_LENGTH
from purejax_ad.envs import canonical_env_id, env_suite
from purejax_ad.hyperparams import Hyperparams
from purejax_ad.outputs import RunWriter, config_record, mean_and_se, plot_learning_curve
from purejax_ad.plan import (Plan, compiled_flops, device_memory, format_plan, matmul_rate, memory_breakdown,
                             program_memory, refusal, state_bytes, summary_line)
from purejax_ad.program import make_program

#: Process exit statuses of ``python -m purejax_ad.train``.
EXIT_OK, EXIT_BAD_INPUT, EXIT_STOPPED, EXIT_NONFINITE = 0, 2, 3, 4
#: Version of the replay layout in checkpoints (2: the compact buffer of :mod:`purejax_ad.replay`).
REPLAY_LAYOUT = 2
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


def run_keys(config: Config, runs) -> jax.Array:
    """Keys of ``runs`` (a count, for runs ``0 .. runs - 1``, or global run indices): run ``r`` is seed
    ``r % num_seeds`` (of sweep config ``r // num_seeds``), key ``fold_in(PRNGKey(seed), r % num_seeds)``."""
    runs = np.arange(runs) if isinstance(runs, int) else np.asarray(runs)
    base = jax.random.key(config.seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(runs % config.num_seeds)


def run_hyperparams(config: Config, runs) -> Hyperparams:
    """Stacked :class:`Hyperparams` of ``runs`` (a count or global run indices): run ``r`` gets sweep config
    ``r // num_seeds`` (padding runs beyond ``num_configs * num_seeds`` get config 0)."""
    runs = range(runs) if isinstance(runs, int) else [int(r) for r in runs]
    combos = config.sweep_configs
    rows = [combos[r // config.num_seeds] if r < len(combos) * config.num_seeds else combos[0]
            for r in runs]
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
    """The host loop's JSON record (saved in checkpoints): ``env_steps`` / ``n_evals`` count inside the
    current ``wave``; ``last_eval`` maps a run index to its newest per-layer evaluation."""
    return {"env_steps": 0, "n_evals": 0, "metric_rows": [], "eval_rows": [], "last_eval": {}, "train_s": 0.0,
            "eval_s": 0.0, "diverged": {}, "resumed_at": [], "checkpoint_replay": config.checkpoint_replay,
            "wave": 0, "replay_layout": REPLAY_LAYOUT}


def wave_runs(config: Config, wave: int, wave_size: int) -> np.ndarray:
    """Global run indices computed by ``wave`` (``wave_size`` of them; indices past the last run are padding)."""
    return wave * wave_size + np.arange(wave_size)


def num_waves(config: Config, wave_size: int) -> int:
    """Waves needed for the ``num_configs * num_seeds`` runs."""
    return math.ceil(config.num_configs * config.num_seeds / wave_size)


def _compile(program, keys, hyper, sharding) -> dict:
    """The four programs, seeds vmapped and sharded, compiled ahead of time for the shapes of ``keys``."""
    state_shape = jax.eval_shape(jax.vmap(program.init), keys, hyper)
    eval_base = jax.eval_shape(jax.vmap(lambda k: jax.random.fold_in(k, 0x5EED)), keys)
    compiled = {}
    for name, fn, args, donate in [("init", program.init, (keys, hyper), ()),
                                   ("warmup", program.warmup, (state_shape,), 0),
                                   ("chunk", program.train_chunk, (state_shape,), 0),
                                   ("evaluate", program.evaluate, (state_shape, eval_base), ())]:
        compiled[name] = jax.jit(per_device_vmap(fn, sharding, len(args)), donate_argnums=donate).lower(*args).compile()
    return compiled, state_shape


def _plan_for(config: Config, program, num_devices: int, wave_size: int, compiled: dict | None = None) -> Plan:
    available, source = device_memory(config.memory_budget_gb)
    one_seed = jax.eval_shape(program.init, jax.random.key(0))
    return Plan(wave_size // num_devices, num_devices, state_bytes(one_seed),
                {k: program_memory(v) for k, v in (compiled or {}).items()},
                memory_breakdown(compiled["chunk"]) if compiled else {}, available, source)


def _wave_size(config: Config, program, num_devices: int) -> int:
    """Runs computed at once (a multiple of the device count): every run, ``seeds_per_wave``, or for
    ``"auto"`` the most that the seeds' states leave room for (then checked against the compiled programs)."""
    R = config.num_configs * config.num_seeds
    if config.seeds_per_wave is None:
        return padded_num_seeds(R, num_devices)
    if config.seeds_per_wave == "auto":
        plan = _plan_for(config, program, num_devices, num_devices)
        per_device = int(0.9 * plan.available // max(1, plan.state_total_per_seed))
        return max(num_devices, min(padded_num_seeds(R, num_devices), per_device * num_devices))
    return padded_num_seeds(min(int(config.seeds_per_wave), R), num_devices)


def _prepare(config: Config, program, sharding, dry_run: bool = False):
    """Pick the wave size, refuse what cannot fit (before compiling when the states alone cannot), compile.

    Returns ``(wave_size, compiled, state_shape, plan)``.

    Raises:
      purejax_ad.config.ConfigError: the run does not fit the device (one line: needs, has, how many fit).
    """
    D = sharding.mesh.size
    wave = _wave_size(config, program, D)
    plan = _plan_for(config, program, D, wave)
    if not plan.fits and not dry_run:  # the states alone do not fit: refuse in seconds, nothing compiled
        raise ConfigError(refusal(plan))
    for attempt in range(3):
        runs = wave_runs(config, 0, wave)
        keys = distributed.device_put(run_keys(config, runs), sharding)
        hyper = jax.device_put(run_hyperparams(config, runs), sharding)
        compiled, state_shape = _compile(program, keys, hyper, sharding)
        plan = _plan_for(config, program, D, wave, compiled)
        if plan.fits or config.seeds_per_wave != "auto" or wave == D:
            break
        wave = max(D, min(wave - D, plan.max_runs // D * D))  # the temporaries did not fit: a smaller wave
    if not plan.fits and not dry_run:
        raise ConfigError(refusal(plan))
    return wave, compiled, state_shape, plan


def run(config: Config, progress: bool = True, resume: bool = False, dry_run: bool = False) -> dict | None:
    """Train ``config.num_seeds`` seeds of ``config`` and write every output; returns the summary.

    Runs too many for the device go in waves of ``seeds_per_wave`` runs, one compiled program for all
    waves, into one run directory; each run's metrics equal those of a single-wave run, and the files are
    rewritten in single-wave order when the last wave ends.

    Args:
      config: the run. ``config.out`` is the output directory (default :func:`default_out_dir`).
      progress: show a progress bar.
      resume: continue the run in ``config.out`` from its newest checkpoint.
      dry_run: print the pre-flight plan (:func:`purejax_ad.plan.format_plan`) and return ``None``:
        nothing is allocated or written.

    Returns:
      The summary (also written to ``summary.json``); ``summary["stop_reason"]`` is ``None`` for a
      complete run, else ``"SIGINT"``, ``"SIGTERM"``, ``"stop_after_steps"`` or ``"nonfinite"``.

    Raises:
      purejax_ad.config.ConfigError: invalid config or output directory, or a run that does not fit the
        device (nothing compiled or written).
    """
    out = Path(config.out) if config.out else default_out_dir(config)
    check(config, None if dry_run else out, resume)
    if config.distributed:  # initialize (unless done), then wait until every process has checked
        distributed.start(config)
    env = make_config_env(config)
    program = make_program(config, env)
    L, S = program.network.num_layers, config.num_seeds
    R = config.num_configs * S  # runs: (sweep config, seed) pairs, config-major
    sharding = seed_sharding(config.num_devices)
    num_devices = sharding.mesh.size
    is_main = jax.process_index() == 0
    t0 = time.perf_counter()
    ckpt_host = None
    if resume:  # the host record says which replay layout and which waves the checkpoint has
        reader = Checkpointer(out, config.keep_checkpoints, config.checkpoint_replay)
        ckpt_host = reader.read_host()
        reader.close()
    if ckpt_host is not None and ckpt_host.get("replay_layout") != REPLAY_LAYOUT:
        raise ConfigError(f"--resume {out}: its checkpoint was written by an older purejax_ad that stored both "
                          "observations of every transition (before the compact replay buffer); resume it with "
                          "that version (commit 9a9c9aa or earlier) or start a new run")
    if ckpt_host is not None and "wave_size" in ckpt_host:  # resume keeps the checkpoint's waves
        config = dataclasses.replace(config, seeds_per_wave=ckpt_host["wave_size"])
    W, compiled, state_shape, plan = _prepare(config, program, sharding, dry_run)
    compile_s = time.perf_counter() - t0
    if dry_run:
        print(format_plan(with_flops(plan, config, program, sharding), config))
        return None
    n_waves = num_waves(config, W)
    if is_main:
        print(summary_line(plan) + (f"; {n_waves} waves of {W} runs" if n_waves > 1 else ""), file=sys.stderr)
        if W * n_waves != R:
            what = f"{S} seeds" if config.num_configs == 1 else f"{R} runs ({config.num_configs} configs x {S} seeds)"
            where = f"{W} for {num_devices} devices" if n_waves == 1 else f"{n_waves} waves of {W}"
            print(f"note: {what} padded to {where}; the {W * n_waves - R} padding runs are computed and discarded",
                  file=sys.stderr)
    init, warmup, chunk, evaluate = (compiled[k] for k in ("init", "warmup", "chunk", "evaluate"))

    ckpt = Checkpointer(out, config.keep_checkpoints, config.checkpoint_replay)
    if resume:
        abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), state_shape)
        state, host, has_replay = ckpt.restore(abstract)
        host.setdefault("wave", 0)  # checkpoints written before seed waves: one wave
        host.setdefault("wave_size", W)
        if not isinstance(host["last_eval"], dict):
            host["last_eval"] = {str(r): v for r, v in enumerate(host["last_eval"] or [])}
        host["resumed_at"].append(host["env_steps"])
        host["checkpoint_replay"] = config.checkpoint_replay
    else:
        host = _new_host_record(config)
        host["wave_size"] = W
        state, has_replay = None, True
    writer = RunWriter(out, L, S, host["metric_rows"], host["eval_rows"], enabled=is_main,
                       num_configs=config.num_configs)
    if not resume:
        writer.write_json("config.json", config_record(config))

    total = config.effective_total_timesteps
    stop_reason, faults = None, []
    bar = tqdm(total=total * n_waves, initial=host["wave"] * total + host["env_steps"], unit="step",
               disable=not (progress and is_main), desc=f"{config.algo} {config.env}", dynamic_ncols=True)
    with StopSignals() as signals:
        while host["wave"] < n_waves and stop_reason is None:
            runs = wave_runs(config, host["wave"], W)
            keys = distributed.device_put(run_keys(config, runs), sharding)
            hyper = jax.device_put(run_hyperparams(config, runs), sharding)
            if state is not None and not has_replay:  # refill an empty buffer; its env steps are not counted
                counters = (state.env_steps, state.recent_returns, state.num_episodes)  # kept: warmup donates
                counters = jax.tree.map(lambda x: jax.device_put(np.asarray(x), sharding), counters)
                state = warmup(state._replace(buffer_state=init(keys, hyper).buffer_state))
                state = state._replace(env_steps=counters[0], recent_returns=counters[1], num_episodes=counters[2])
            programs = (init, warmup, chunk, evaluate)
            state, stop_reason, faults = _train_wave(config, programs, state, keys, hyper, runs, host, writer, ckpt,
                                                     signals, bar, sharding)
            if stop_reason is None:
                host["wave"] += 1
                host["env_steps"], host["n_evals"], state = 0, 0, None
        bar.close()
    ckpt.close()

    if host["wave"] >= n_waves and n_waves > 1:  # every wave done: the files in single-wave order
        order = lambda r: (r["env_steps"], r["config"], r["seed"], r.get("layers", 0))  # noqa: E731
        host["metric_rows"].sort(key=order)
        host["eval_rows"].sort(key=order)
        writer.rewrite(host["metric_rows"], host["eval_rows"])
    summary = _summary(config, host, stop_reason, faults, compile_s, out, ckpt.latest_step(), num_devices)
    writer.write_json("summary.json", summary)
    if is_main:
        labels = [", ".join(f"{k}={v}" for k, v in combo.items()) for combo in config.sweep_configs]
        plot_learning_curve(host["metric_rows"], host["eval_rows"], out / "learning_curve.png",
                            f"{config.algo} on {config.env} ({config.preset}, {S} seeds)", labels)
    writer.close()
    return summary


def plan_run(config: Config, flops: bool = True) -> Plan:
    """The pre-flight plan of ``config`` (what ``--dry-run`` prints), computed without allocating the run.

    Args:
      flops: also compile one env step and one update for their FLOPs and measure the matmul rate.
    """
    program = make_program(config, make_config_env(config))
    sharding = seed_sharding(config.num_devices)
    plan = _prepare(config, program, sharding, dry_run=True)[3]
    return with_flops(plan, config, program, sharding) if flops else plan


def with_flops(plan: Plan, config: Config, program, sharding) -> Plan:
    """``plan`` with the FLOPs per env step and per update (XLA cost analysis of one seed's env step and
    update), the measured matmul rate, and the whole run's FLOPs."""
    one = jax.eval_shape(program.init, jax.random.key(0))
    step = compiled_flops(jax.jit(program.env_step).lower(one).compile())
    learn = compiled_flops(jax.jit(program.learn, donate_argnums=0).lower(one).compile())  # state out: no DCE
    c = config
    per_cycle = c.iters_per_update * step + learn
    run_flops = c.num_configs * c.num_seeds * (c.warmup_iters * step + c.total_updates * per_cycle)
    return plan._replace(gflop_per_env_step=per_cycle / c.train_frequency / 1e9, gflop_per_update=learn / 1e9,
                         matmul_gflops=matmul_rate() / 1e9, run_flops=run_flops)


def _train_wave(config, programs, state, keys, hyper, runs, host, writer, ckpt, signals, bar, sharding):
    """One wave: (unless resumed inside it) the step-0 evaluation, the warm-up, then chunks with their
    metrics, evaluations, checkpoints and fault checks, and the final evaluation.

    Returns ``(state, stop_reason, faults)``; ``stop_reason`` is ``None`` when the wave completed.
    """
    init, warmup, chunk, evaluate = programs
    R = config.num_configs * config.num_seeds
    valid = runs[runs < R]
    total = config.effective_total_timesteps
    stride = config.effective_total_timesteps + 1  # checkpoint label: wave * stride + env steps (monotonic)
    eval_base = jax.vmap(lambda k: jax.random.fold_in(k, 0x5EED))(keys)

    def do_eval(state, steps):
        t = time.perf_counter()
        ek = jax.vmap(lambda k: jax.random.fold_in(k, host["n_evals"]))(eval_base)
        returns = to_host(evaluate(state, ek))
        host["n_evals"] += 1
        host["eval_s"] += time.perf_counter() - t
        host["eval_rows"].extend(writer.write_eval(steps, returns, valid))
        last = host["last_eval"] if isinstance(host["last_eval"], dict) else {}
        last.update({str(r): returns[i].tolist() for i, r in enumerate(valid)})
        host["last_eval"] = last

    stop_reason, faults = None, []
    if state is None:
        state = init(keys, hyper)
        if config.eval_interval > 0:
            do_eval(state, 0)
        t = time.perf_counter()
        state = warmup(state)
        jax.block_until_ready(state.env_steps)
        host["train_s"] += time.perf_counter() - t
        host["env_steps"] = config.warmup_iters * config.num_envs
        bar.update(host["env_steps"])
    while host["env_steps"] < total:
        t = time.perf_counter()
        state, metrics = chunk(state)
        metrics = to_host(metrics)
        rows = writer.write_metrics(metrics, valid)
        host["train_s"] += time.perf_counter() - t
        host["metric_rows"].extend(rows)
        prev, steps = host["env_steps"], int(metrics.env_steps[0])
        host["env_steps"] = steps
        bad = ~metrics.finite[:len(valid)]
        faults = [(int(r), [int(i) + 1 for i in np.flatnonzero(bad[j])]) for j, r in enumerate(valid)
                  if bad[j].any() and str(r) not in host["diverged"]]
        for r, layers in faults:
            host["diverged"][str(r)] = {"layers": layers, "env_steps": steps}
        if faults and config.on_nonfinite == "stop":
            stop_reason = "nonfinite"
            break
        for r, layers in faults if jax.process_index() == 0 else ():
            print(f"\nnote: {run_name(config, r)} dropped: non-finite loss or parameters in layer(s) {layers} "
                  f"in the chunk ending at env step {steps}; the other seeds go on", file=sys.stderr)
        if eval_due(config, prev, steps) and steps < total:
            do_eval(state, steps)
        ret = mean_and_se([row["episodic_return"] for row in rows if str(row["config"] * config.num_seeds
                                                                           + row["seed"]) not in host["diverged"]])[0]
        bar.set_postfix(sps=f"{steps * len(runs) / max(host['train_s'], 1e-9):,.0f}", ret=f"{ret:.1f}")
        bar.update(steps - prev)
        if steps >= total:
            break
        if signals.received:
            stop_reason = signals.received
        elif config.stop_after_steps is not None and host["wave"] * total + steps >= config.stop_after_steps:
            stop_reason = "stop_after_steps"
        if stop_reason or eval_due(config, prev, steps, config.checkpoint_interval):
            ckpt.save(host["wave"] * stride + steps, state, host)
        if stop_reason:
            break
        if config.inject_nan is not None and prev < config.inject_nan[1] <= steps and config.inject_nan[0] in runs:
            state = poison_layer(state, int(np.flatnonzero(runs == config.inject_nan[0])[0]), sharding)
    if stop_reason is None and config.eval_interval > 0:
        do_eval(state, host["env_steps"])
    return state, stop_reason, faults


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
    final = np.full(R, np.nan)  # NaN for a run stopped before its first chunk
    for row in host["metric_rows"]:  # rows are in time order per run: the last one wins
        final[row["config"] * S + row["seed"]] = row["episodic_return"]
    keep = np.array([r not in diverged for r in range(R)])
    last_eval = None
    if host["last_eval"]:
        L = len(next(iter(host["last_eval"].values())))
        last_eval = np.array([host["last_eval"].get(str(r), [np.nan] * L) for r in range(R)], np.float64)
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
        "total_timesteps": (config.effective_total_timesteps if host["wave"] >= num_waves(config, host["wave_size"])
                            else host["env_steps"]),
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
        "env_steps_per_s": ((min(host["wave"], num_waves(config, host["wave_size"])) * config.effective_total_timesteps
                             + (host["env_steps"] if stop_reason else 0)) * min(host["wave_size"], R)
                            / max(host["train_s"], 1e-9)),
        "waves": {"runs_per_wave": host["wave_size"], "num_waves": num_waves(config, host["wave_size"]),
                  "completed": host["wave"]},
        "device": f"{jax.devices()[0].device_kind} x{num_devices}",
        "quirks": config_record(config)["quirks"],
        "context_source": config.context_source,
        "resumed_at": host["resumed_at"],
        "out_dir": str(out),
        "last_checkpoint": checkpoint,
    }
    for key, field in algo_spec(config.algo).summary_keys:
        summary[key] = getattr(config, field)
    if env_suite(config.env) == "dmc":
        m = DMC_ACTION_DIMS[DMC_ENVS[canonical_env_id(config.env)]]
        summary["dmc"] = {"actions": "continuous" if config.continuous_actions else f"bang-bang, {2**m} actions",
                          "action_repeat": config.action_repeat, "episode_length": EPISODE_LENGTH,
                          "fixed_env_reset_key": config.fixed_env_reset_key, "simulator": "MJX (Playground, impl=jax)"}
    if stop_reason is not None:
        summary["resume_command"] = resume_command(out) if checkpoint is not None else None
    if stop_reason == "nonfinite":
        summary["fault"] = "; ".join(f"{run_name(config, r)}, layer(s) {', '.join(map(str, layers))}"
                                     for r, layers in faults) + f", in the chunk ending at env step {host['env_steps']}"
    return summary

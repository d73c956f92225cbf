"""The thin host loop: compile once, run compiled chunks, log, evaluate, checkpoint, write outputs as it goes.

Runs -- every (sweep config, seed) pair, ``num_configs * num_seeds`` of them, config-major -- are
``jax.vmap``-ed and the run axis is sharded over a 1-D mesh of every device JAX sees (``shard_map``;
no collectives are needed). Seed ``i`` uses ``fold_in(PRNGKey(config.seed), i)`` with its *global*
index ``i`` (the same keys for every sweep config: paired comparisons), so a seed's result depends
neither on how many seeds run beside it nor on the number of devices. A run's swept hyperparameters
are traced values in its state. Every compiled function takes the run-stacked state and donates it.

A run stops early, keeping a checkpoint and valid partial outputs, on SIGINT / SIGTERM or at
``stop_after_steps``; a non-finite loss or parameter stops it too (or drops the seed), keeping the
last good checkpoint; a signal while compiling stops it before anything is written (``Stopped``).
``run(config, resume=True)`` continues from the newest checkpoint of ``config.out``; with the replay
buffer in the checkpoint the result is bit-identical to an uninterrupted run on the same device(s).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from purejax_ad import compile_times, distributed
from purejax_ad.checkpoint import Checkpointer
from purejax_ad.checks import check
from purejax_ad.config import Config, ConfigError
from purejax_ad.control import (EXIT_BAD_INPUT, EXIT_NONFINITE, EXIT_OK, EXIT_STOPPED, Stopped, StopSignals,
                                default_run_dir)
from purejax_ad.divergence import ValueWatch
from purejax_ad.envs import make_config_env
from purejax_ad.host_record import REPLAY_LAYOUT, HostRecord
from purejax_ad.outputs import RunWriter, config_record, mean_and_se, plot_learning_curve
from purejax_ad.plan import (Plan, compiled_flops, device_memory, format_plan, matmul_rate, memory_breakdown,
                             program_memory, refusal, state_bytes, summary_line)
from purejax_ad.program import make_program
from purejax_ad.rundir import restart_note
from purejax_ad.seeds import eval_keys, num_waves, run_hyperparams, run_keys, seed_keys, wave_runs
from purejax_ad.sharding import SEED_AXIS, default_num_devices, padded_num_seeds, per_device_vmap, seed_sharding, to_host
from purejax_ad.summary import device_description, resume_command, run_name, run_summary
from purejax_ad.trackers import open_trackers
from purejax_ad.trained import write_params

__all__ = ["EXIT_BAD_INPUT", "EXIT_NONFINITE", "EXIT_OK", "EXIT_STOPPED", "REPLAY_LAYOUT", "SEED_AXIS", "StopSignals",
           "default_out_dir", "eval_due", "num_waves", "padded_num_seeds", "per_device_vmap", "plan_run",
           "poison_layer", "resume_command", "run", "run_hyperparams", "run_keys", "run_name", "seed_keys",
           "seed_sharding", "to_host", "wave_runs", "with_flops"]


def default_out_dir(config: Config) -> Path:
    """``runs/<env>-<algo>-<timestamp>/``."""
    return default_run_dir(config.env, config.algo)


def run(config: Config, progress: bool = True, resume: bool = False, dry_run: bool = False) -> dict | None:
    """Train ``config.num_seeds`` seeds of ``config`` and write every output; returns the summary.

    Runs too many for the device go in waves of ``seeds_per_wave`` runs, one compiled program for all
    waves, into one run directory; each run's metrics equal those of a single-wave run, and the files are
    rewritten in single-wave order when the last wave ends.

    Args:
      config: the run. ``config.out`` is the output directory (default :func:`default_out_dir`).
      progress: show a progress bar.
      resume: continue the run in ``config.out`` from its newest checkpoint (without one: start it afresh,
        with a note on stderr, :func:`purejax_ad.rundir.restart_note`).
      dry_run: print the pre-flight plan (:func:`purejax_ad.plan.format_plan`) and return ``None``:
        nothing is allocated or written.

    Returns:
      The summary (also written to ``summary.json``); ``summary["stop_reason"]`` is ``None`` for a
      complete run, else ``"SIGINT"``, ``"SIGTERM"``, ``"stop_after_steps"`` or ``"nonfinite"``.

    Raises:
      purejax_ad.config.ConfigError: invalid config or output directory, a checkpoint this version cannot
        resume, or a run that does not fit the device (nothing compiled or written).
      purejax_ad.control.Stopped: SIGINT / SIGTERM while compiling (``str()``: the signal's name); raised
        once the XLA compile under way returns, before anything is written (the output directory is as it was).
    """
    with StopSignals() as signals:  # from here on a signal stops the run cleanly
        return _run(config, progress, resume, dry_run, signals)


def _run(config: Config, progress: bool, resume: bool, dry_run: bool, signals: StopSignals) -> dict | None:
    out = Path(config.out) if config.out else default_out_dir(config)
    check(config, None if dry_run else out, resume)
    restart = None if dry_run else restart_note(out, resume)  # a run dir without checkpoint starts afresh
    resume = resume and restart is None
    if config.distributed:  # initialize (unless done), then wait until every process has checked
        distributed.start(config)
    if restart is not None and jax.process_index() == 0:
        print(restart, file=sys.stderr)
    program = make_program(config, make_config_env(config))
    sharding = _run_sharding(config)
    t0 = time.perf_counter()
    saved = _saved_host_record(config, out) if resume else None
    if saved is not None and saved.wave_size is not None:  # resume keeps the checkpoint's waves
        config = dataclasses.replace(config, seeds_per_wave=saved.wave_size)
    W, compiled, state_shape, plan = _prepare(config, program, sharding, dry_run, signals)
    compile_s = time.perf_counter() - t0
    if jax.process_index() == 0:
        compile_times.record(device_description(sharding.mesh.size), compile_times.program_key(config), compile_s)
    if dry_run:
        plan = with_flops(plan, config, program, sharding)
        _raise_if_stopped(signals)
        print(format_plan(plan, config))
        return None
    _raise_if_stopped(signals)
    if jax.process_index() == 0:
        _announce(config, plan, W, sharding.mesh.size)
    trackers = open_trackers(config, out, resume) if jax.process_index() == 0 else None  # before any file
    ckpt = Checkpointer(out, config.keep_checkpoints, config.checkpoint_replay)
    state, host, has_replay = _init_or_restore(config, out, ckpt, state_shape, sharding, W, resume)
    if trackers is not None:
        trackers.backfill(host.metric_rows, host.eval_rows)
    writer = RunWriter(out, program.network.num_layers, config.num_seeds, host.metric_rows, host.eval_rows,
                       enabled=jax.process_index() == 0, num_configs=config.num_configs, trackers=trackers,
                       diagnostic_names=getattr(program.agent, "diagnostic_names", ()))
    if not resume:
        writer.write_json("config.json", config_record(config))
    stop_reason, faults = _loop(config, compiled, state, has_replay, host, writer, ckpt, sharding, progress, signals)
    ckpt.close()
    return _finish(config, host, stop_reason, faults, compile_s, out, ckpt.latest_step(), sharding.mesh.size, writer)


def _saved_host_record(config: Config, out: Path) -> HostRecord | None:
    """The host record of the newest checkpoint in ``out`` (``None``: none), read before compiling.

    Raises:
      purejax_ad.config.ConfigError: the record is of an unknown version or the checkpoint's replay
        layout is not :data:`REPLAY_LAYOUT`.
    """
    reader = Checkpointer(out, config.keep_checkpoints, config.checkpoint_replay)
    _, record, damaged = reader.read_newest_intact_host()
    reader.close()
    if record is None:
        if damaged:
            raise ConfigError(f"--resume {out}: no intact checkpoint ("
                              + "; ".join(f"{d.step}: {d.reason}" for d in damaged) + ")")
        return None
    host = HostRecord.from_json(record, f"--resume {out}")
    if host.replay_layout != REPLAY_LAYOUT:
        raise ConfigError(f"--resume {out}: its checkpoint was written by an older purejax_ad that stored both "
                          "observations of every transition (before the compact replay buffer); resume it with "
                          "that version (commit 9a9c9aa or earlier) or start a new run")
    return host


def _prepare(config: Config, program, sharding, dry_run: bool = False, signals: StopSignals | None = None):
    """Pick the wave size, refuse what cannot fit (before compiling when the states alone cannot), compile.

    With ``signals`` (a run, not :func:`plan_run`) it first prints the "compiling ..." line with the
    estimate of :mod:`purejax_ad.compile_times` (stderr, process 0).

    Returns ``(wave_size, compiled, state_shape, plan)``.

    Raises:
      purejax_ad.config.ConfigError: the run does not fit the device (one line: needs, has, how many fit).
      purejax_ad.control.Stopped: ``signals`` received a signal (checked after each compiled program).
    """
    D = sharding.mesh.size
    wave = _wave_size(config, program, D)
    plan = _plan_for(config, program, D, wave)
    if not plan.fits and not dry_run:  # the states alone do not fit: refuse in seconds, nothing compiled
        raise ConfigError(refusal(plan))
    if signals is not None and jax.process_index() == 0:
        print(compile_times.compiling_line(config, wave, device_description(D)), file=sys.stderr, flush=True)
    for attempt in range(3):
        runs = wave_runs(config, 0, wave)
        keys = distributed.device_put(run_keys(config, runs), sharding)
        hyper = jax.device_put(run_hyperparams(config, runs), sharding)
        compiled, state_shape = _compile(program, keys, hyper, sharding, signals)
        plan = _plan_for(config, program, D, wave, compiled)
        if plan.fits or config.seeds_per_wave != "auto" or wave == D:
            break
        wave = max(D, min(wave - D, plan.max_runs // D * D))  # the temporaries did not fit: a smaller wave
    if not plan.fits and not dry_run:
        raise ConfigError(refusal(plan))
    return wave, compiled, state_shape, plan


def _compile(program, keys, hyper, sharding, signals: StopSignals | None = None) -> tuple:
    """The four programs, seeds vmapped and sharded, compiled ahead of time for the shapes of ``keys``.

    Returns ``({"init" | "warmup" | "chunk" | "evaluate": compiled}, the run-stacked state's shapes)``.

    Raises:
      purejax_ad.control.Stopped: ``signals`` received a signal (checked after each program: an XLA compile
        cannot be interrupted, the signal handler runs during it and only records the signal).
    """
    state_shape = jax.eval_shape(jax.vmap(program.init), keys, hyper)
    eval_base = jax.eval_shape(jax.vmap(lambda k: jax.random.fold_in(k, 0x5EED)), keys)
    compiled = {}
    for name, fn, args, donate in [("init", program.init, (keys, hyper), ()),
                                   ("warmup", program.warmup, (state_shape,), 0),
                                   ("chunk", program.train_chunk, (state_shape,), 0),
                                   ("evaluate", program.evaluate, (state_shape, eval_base), ())]:
        compiled[name] = jax.jit(per_device_vmap(fn, sharding, len(args)), donate_argnums=donate).lower(*args).compile()
        _raise_if_stopped(signals)
    return compiled, state_shape


def _raise_if_stopped(signals: StopSignals | None) -> None:
    """Raise :class:`purejax_ad.control.Stopped` if ``signals`` received a signal (before anything is written)."""
    if signals is not None and signals.received:
        raise Stopped(signals.received)


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


def _plan_for(config: Config, program, num_devices: int, wave_size: int, compiled: dict | None = None) -> Plan:
    available, source = device_memory(config.memory_budget_gb)
    one_seed = jax.eval_shape(program.init, jax.random.key(0))
    return Plan(wave_size // num_devices, num_devices, state_bytes(one_seed),
                {k: program_memory(v) for k, v in (compiled or {}).items()},
                memory_breakdown(compiled["chunk"]) if compiled else {}, available, source)


def _announce(config: Config, plan: Plan, W: int, num_devices: int) -> None:
    """Print the plan's summary line and, if runs are padded, a note (stderr)."""
    n_waves, S = num_waves(config, W), config.num_seeds
    R = config.num_configs * S
    print(summary_line(plan) + (f"; {n_waves} waves of {W} runs" if n_waves > 1 else ""), file=sys.stderr)
    if W * n_waves != R:
        what = f"{S} seeds" if config.num_configs == 1 else f"{R} runs ({config.num_configs} configs x {S} seeds)"
        where = f"{W} for {num_devices} devices" if n_waves == 1 else f"{n_waves} waves of {W}"
        print(f"note: {what} padded to {where}; the {W * n_waves - R} padding runs are computed and discarded",
              file=sys.stderr)


def _init_or_restore(config: Config, out: Path, ckpt: Checkpointer, state_shape, sharding, wave_size: int,
                     resume: bool):
    """``(state, host record, has_replay)`` to start from: the newest intact checkpoint's (the record marked
    as resumed here; damaged newer ones are moved aside, with a note) with ``resume``, else no state yet (each
    wave initialises its own) and a new record.

    Raises:
      purejax_ad.config.ConfigError: no checkpoint restores (each one's error in the message).
    """
    if not resume:
        return None, HostRecord(checkpoint_replay=config.checkpoint_replay, wave_size=wave_size), True
    abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), state_shape)
    try:
        step, state, record, has_replay, damaged = ckpt.restore_newest_intact(abstract)
    except FileNotFoundError as e:
        raise ConfigError(f"--resume {out}: {e}") from None
    if damaged and jax.process_index() == 0:
        print("".join(f"note: checkpoint {d.step} is damaged ({d.reason}); moved aside to {ckpt.directory}/damaged-"
                      f"{d.step}\n" for d in damaged) + f"note: resuming from checkpoint {step}, the newest intact one",
              file=sys.stderr)
    host = HostRecord.from_json(record, f"--resume {out}")
    if host.wave_size is None:  # checkpoints written before seed waves: one wave
        host.wave_size = wave_size
    host.resumed_at.append(host.env_steps)
    host.checkpoint_replay = config.checkpoint_replay
    return state, host, has_replay


def _loop(config: Config, compiled: dict, state, has_replay: bool, host: HostRecord, writer: RunWriter,
          ckpt: Checkpointer, sharding, progress: bool, signals: StopSignals):
    """Train wave after wave (from ``host.wave``) until all are done or the run stops (``signals``).

    ``state`` is the restored state of the current wave (``None``: start the wave afresh); without
    ``has_replay`` its empty buffer is refilled first. Returns ``(stop_reason, faults)``: see :func:`_train_wave`.
    The progress bar counts env steps per seed (every wave's) and shows :meth:`HostRecord.training_rates`.
    """
    init, warmup, chunk, evaluate = (compiled[k] for k in ("init", "warmup", "chunk", "evaluate"))
    W = host.wave_size
    n_waves = num_waves(config, W)
    total = config.effective_total_timesteps
    stop_reason, faults = None, []
    if state is not None and host.env_steps >= total:  # resumed from a wave's final checkpoint: that wave is done
        host.wave += 1
        host.env_steps, host.n_evals, state = 0, 0, None
    waves = f", {n_waves} waves" if n_waves > 1 else ""
    bar = tqdm(total=total * n_waves, initial=host.wave * total + host.env_steps,
               disable=not (progress and jax.process_index() == 0), desc=f"{config.algo} {config.env}",
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} env steps per seed" + waves
                          + " [{elapsed}<{remaining}{postfix}]", dynamic_ncols=True)
    while host.wave < n_waves and stop_reason is None:
        runs = wave_runs(config, host.wave, W)
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
            host.wave += 1
            host.env_steps, host.n_evals, state = 0, 0, None
    bar.close()
    return stop_reason, faults


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
    watch = ValueWatch(config, host.metric_rows)  # implausible Q / loss: once per (run, layer), rows so far seen

    def do_eval(state, steps):
        t = time.perf_counter()
        returns = to_host(evaluate(state, eval_keys(keys, host.n_evals)))
        host.n_evals += 1
        host.eval_s += time.perf_counter() - t
        host.eval_rows.extend(writer.write_eval(steps, returns, valid))
        host.last_eval.update({str(r): returns[i].tolist() for i, r in enumerate(valid)})

    stop_reason, faults = None, []
    if state is None:
        state = init(keys, hyper)
        if config.eval_interval > 0:
            do_eval(state, 0)
        t = time.perf_counter()
        state = warmup(state)
        jax.block_until_ready(state.env_steps)
        host.train_s += time.perf_counter() - t
        host.env_steps = config.warmup_iters * config.num_envs
        bar.update(host.env_steps)
    while host.env_steps < total:
        t = time.perf_counter()
        state, metrics = chunk(state)
        metrics = to_host(metrics)
        rows = writer.write_metrics(metrics, valid)
        host.train_s += time.perf_counter() - t
        host.metric_rows.extend(rows)
        for w in watch.check(rows) if jax.process_index() == 0 else ():
            print(f"\nwarning: {w['message']}", file=sys.stderr)
        prev, steps = host.env_steps, int(metrics.env_steps[0])
        host.env_steps = steps
        bad = ~metrics.finite[:len(valid)]
        faults = [(int(r), [int(i) + 1 for i in np.flatnonzero(bad[j])]) for j, r in enumerate(valid)
                  if bad[j].any() and str(r) not in host.diverged]
        for r, layers in faults:
            host.diverged[str(r)] = {"layers": layers, "env_steps": steps}
        if faults and config.on_nonfinite == "stop":
            stop_reason = "nonfinite"
            break
        for r, layers in faults if jax.process_index() == 0 else ():
            print(f"\nnote: {run_name(config, r)} dropped: non-finite loss or parameters in layer(s) {layers} "
                  f"in the chunk ending at env step {steps}; the other seeds go on", file=sys.stderr)
        if eval_due(config, prev, steps) and steps < total:
            do_eval(state, steps)
        ret = mean_and_se([row["episodic_return"] for row in rows if str(row["config"] * config.num_seeds
                                                                           + row["seed"]) not in host.diverged])[0]
        per_seed, aggregate = host.training_rates(config)
        bar.set_postfix_str(f"{per_seed:,.0f} env steps/s per seed, {aggregate:,.0f} aggregate "
                            f"({min(host.wave_size, R)} runs); return {ret:.1f}")
        bar.update(steps - prev)
        if steps >= total:
            break
        if signals.received:
            stop_reason = signals.received
        elif config.stop_after_steps is not None and host.wave * total + steps >= config.stop_after_steps:
            stop_reason = "stop_after_steps"
        if stop_reason or eval_due(config, prev, steps, config.checkpoint_interval):
            ckpt.save(host.wave * stride + steps, state, host.to_json())
        if stop_reason:
            break
        if config.inject_nan is not None and prev < config.inject_nan[1] <= steps and config.inject_nan[0] in runs:
            state = poison_layer(state, int(np.flatnonzero(runs == config.inject_nan[0])[0]), sharding)
    if stop_reason is None and config.eval_interval > 0:
        do_eval(state, host.env_steps)
    if stop_reason is None:  # the wave's final state: its runs' parameters, and a checkpoint of the whole state
        write_params(writer.out_dir, config, to_host(state.learner.params), runs, host.env_steps,
                     host.n_evals - 1 if config.eval_interval > 0 else None, host.wave, host.wave_size,
                     enabled=writer.enabled)
        ckpt.save(host.wave * stride + host.env_steps, state, host.to_json())
    return state, stop_reason, faults


def _finish(config: Config, host: HostRecord, stop_reason, faults, compile_s: float, out: Path, checkpoint,
            num_devices: int, writer: RunWriter) -> dict:
    """Put the files of a multi-wave run in single-wave order, write the summary and the learning curve."""
    if host.wave >= num_waves(config, host.wave_size) > 1:  # every wave done: the files in single-wave order
        order = lambda r: (r["env_steps"], r["config"], r["seed"], r.get("layers", 0))  # noqa: E731
        host.metric_rows.sort(key=order)
        host.eval_rows.sort(key=order)
        writer.rewrite(host.metric_rows, host.eval_rows)
    summary = run_summary(config, host, stop_reason, faults, compile_s, out, checkpoint, num_devices)
    writer.write_json("summary.json", summary)
    if jax.process_index() == 0:
        labels = [", ".join(f"{k}={v}" for k, v in combo.items()) for combo in config.sweep_configs]
        plot_learning_curve(host.metric_rows, host.eval_rows, out / "learning_curve.png",
                            f"{config.algo} on {config.env} ({config.preset}, {config.num_seeds} seeds)", labels)
    writer.close(summary)
    return summary


def eval_due(config: Config, prev_steps: int, steps: int, interval: int | None = None) -> bool:
    """Whether a multiple of ``interval`` (default ``eval_interval``) lies in ``(prev_steps, steps]``."""
    interval = config.eval_interval if interval is None else interval
    if interval <= 0:
        return False
    return steps // interval > prev_steps // interval


def poison_layer(state, seed: int, sharding):
    """Testing: ``state`` with run ``seed``'s layer-1 parameters set to NaN (fault injection)."""
    params = state.learner.params
    first = jax.tree.map(lambda x: jax.device_put(x.at[seed].set(jnp.nan), sharding), params[0])
    return state._replace(learner=state.learner._replace(params=(first, *params[1:])))


def _run_sharding(config: Config):
    """The seed sharding of ``config``'s runs: ``--num-devices``, else :func:`default_num_devices`."""
    return seed_sharding(default_num_devices(config.num_devices, config.num_seeds * config.num_configs))


def plan_run(config: Config, flops: bool = True) -> Plan:
    """The pre-flight plan of ``config`` (what ``--dry-run`` prints), computed without allocating the run.

    Args:
      flops: also compile one env step and one update for their FLOPs and measure the matmul rate.
    """
    program = make_program(config, make_config_env(config))
    sharding = _run_sharding(config)
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

"""Throughput of the compiled training program: env steps/s, updates/s, memory and MFU per seed count.

    python benchmarks/throughput.py --env Breakout-MinAtar --preset paper-minatar --seeds 1,2,4,8

For every seed count it compiles the vmapped program (compile time reported apart), runs the
warm-up and one untimed chunk, then times ``--repeats`` chunks of ``--updates`` updates each
(median). FLOPs come from XLA's own cost analysis of the compiled env step and learning step;
MFU divides the achieved FLOP/s by the device's fp32 matmul peak measured here. Writes
``throughput.csv``, ``throughput.md`` and ``throughput.png`` to ``--out``; ``--profile`` adds
``profile.md``, the time of each phase of an update cycle (see ``phases.py``); ``--trace DIR`` records a
``jax.profiler`` trace of one chunk per seed count (``tensorboard --logdir DIR`` with the profile plugin,
or load the ``.xplane.pb`` / ``.trace.json.gz`` file in https://ui.perfetto.dev).
"""

from __future__ import annotations

import argparse
import csv
import resource
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from purejax_ad.config import ALGOS, check, make_config_env
from purejax_ad.presets import preset_config

from purejax_ad.run import seed_keys
from purejax_ad.trainer import make_train


def compiled_flops(fn, *args) -> float:
    """FLOPs of one call of ``jax.jit(fn)`` from XLA's cost analysis (0 when unavailable)."""
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", 0.0))


def matmul_peak_flops(dtype=jnp.float32, n: int | None = None, repeats: int = 5) -> float:
    """Measured FLOP/s of a large square matmul on the default device (best of ``repeats``)."""
    if n is None:
        n = 2048 if jax.devices()[0].platform == "cpu" else 8192
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def peak_memory_bytes() -> tuple[int, str]:
    """Peak device memory in use (accelerators) or the process's peak RSS (CPU)."""
    dev = jax.devices()[0]
    stats = dev.memory_stats() if dev.platform != "cpu" else None
    if stats and "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), "device"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "rss"


def measure(env_id: str, preset: str, num_seeds: int, updates: int, repeats: int, warmup_steps: int,
            overrides: dict, peak: float, profile: bool = False, trace_dir: str | None = None) -> dict:
    """Time one seed count; returns one result row (with ``"profile"``, a markdown table, when ``profile``).

    ``trace_dir``: also record a ``jax.profiler`` trace of one extra chunk there.
    """
    base = preset_config(preset, env=env_id, **overrides)
    chunk_steps = updates * base.train_frequency
    total = warmup_steps + chunk_steps * (repeats + 1)
    config = check(preset_config(preset, env=env_id, num_seeds=num_seeds, learning_starts=warmup_steps,
                                 log_interval=chunk_steps, total_timesteps=total, eval_interval=0,
                                 buffer_size=min(base.buffer_size, total), **overrides))
    env = make_config_env(config)
    trainer = make_train(config, env)
    keys = seed_keys(config)
    t0 = time.perf_counter()
    shape = jax.eval_shape(jax.vmap(trainer.init), keys)
    init = jax.jit(jax.vmap(trainer.init)).lower(keys).compile()
    warm = jax.jit(jax.vmap(trainer.warmup), donate_argnums=0).lower(shape).compile()
    chunk = jax.jit(jax.vmap(trainer.train_chunk), donate_argnums=0).lower(shape).compile()
    compile_s = time.perf_counter() - t0
    step_flops = compiled_flops(jax.vmap(trainer.env_step), shape)
    learn_flops = compiled_flops(jax.vmap(trainer.learn), shape)
    flops_per_update_cycle = config.iters_per_update * step_flops + learn_flops
    state = warm(init(keys))
    state, m = chunk(state)
    jax.block_until_ready(m)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        state, m = chunk(state)
        jax.block_until_ready(m)
        times.append(time.perf_counter() - t)
    dt = statistics.median(times)
    if trace_dir:
        with jax.profiler.trace(trace_dir):
            state, m = chunk(state)
            jax.block_until_ready(m)
    agg_sps = config.chunk_env_steps * num_seeds / dt
    updates_per_s = config.updates_per_chunk * num_seeds / dt
    flops_per_env_step = flops_per_update_cycle / (config.train_frequency * num_seeds)
    achieved = flops_per_update_cycle * config.updates_per_chunk / dt
    mem, mem_kind = peak_memory_bytes()
    extra = {}
    if profile:
        from phases import breakdown_table, phase_times

        extra["profile"] = breakdown_table(phase_times(trainer, env, state), dt / config.updates_per_chunk)
    return {
        "env": env_id, "preset": preset, "num_seeds": num_seeds, "batch_size": config.batch_size,
        "context_source": config.context_source, "matmul_dtype": config.matmul_dtype,
        "agg_env_steps_per_s": agg_sps, "per_seed_env_steps_per_s": agg_sps / num_seeds,
        "updates_per_s": updates_per_s, "compile_s": compile_s,
        "gflop_per_env_step": flops_per_env_step / 1e9,
        "gflop_per_update": learn_flops / num_seeds / 1e9,
        "achieved_gflop_per_s": achieved / 1e9, "mfu": achieved / peak,
        "peak_mem_mb": mem / 2**20, "mem_kind": mem_kind, **extra,
    }


def write_outputs(rows: list[dict], out: Path, device: str, peak: float) -> None:
    """CSV, markdown table and PNG of the rows."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "throughput.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[k for k in rows[0] if k != "profile"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    profiles = [f"### {r['num_seeds']} seeds\n\n{r['profile']}" for r in rows if "profile" in r]
    if profiles:
        (out / "profile.md").write_text(f"Per-phase breakdown on {device}\n\n" + "\n".join(profiles))
    options = {k: rows[0][k] for k in ("context_source", "matmul_dtype")}
    lines = [f"device: {device}; fp32 matmul peak measured: {peak / 1e9:,.1f} GFLOP/s; options: {options}", "",
             "| seeds | agg env steps/s | per-seed env steps/s | updates/s | GFLOP / env step | MFU | peak mem (MB) | compile (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['num_seeds']} | {r['agg_env_steps_per_s']:,.1f} | {r['per_seed_env_steps_per_s']:,.1f} | "
                     f"{r['updates_per_s']:,.2f} | {r['gflop_per_env_step']:.3g} | {100 * r['mfu']:.1f} % | "
                     f"{r['peak_mem_mb']:,.0f} ({r['mem_kind']}) | {r['compile_s']:.1f} |")
    (out / "throughput.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = [r["num_seeds"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    ax[0].plot(seeds, [r["agg_env_steps_per_s"] for r in rows], marker="o")
    ax[0].set(xscale="log", yscale="log", xlabel="seeds", ylabel="aggregate env steps/s")
    ax[1].plot(seeds, [100 * r["mfu"] for r in rows], marker="o")
    ax[1].set(xscale="log", xlabel="seeds", ylabel="MFU (% of measured fp32 matmul peak)")
    fig.suptitle(f"{rows[0]['env']} / {rows[0]['preset']} on {device}")
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Breakout-MinAtar")
    p.add_argument("--algo", default="ad-dqn", choices=list(ALGOS))
    p.add_argument("--preset", default="paper-minatar")
    p.add_argument("--seeds", default="1,2,4,8", help="comma-separated seed counts")
    p.add_argument("--updates", type=int, default=10, help="updates per timed chunk")
    p.add_argument("--repeats", type=int, default=3, help="timed chunks per seed count (median reported)")
    p.add_argument("--warmup-steps", type=int, default=512, help="env steps of replay warm-up (not timed)")
    p.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    p.add_argument("--context-source", choices=["replay", "stored"], default=None,
                   help="override: 'stored' = the actor's context stored in replay, burn-in only")
    p.add_argument("--burn-in", type=int, default=None, help="override: burn-in steps with stored contexts")
    p.add_argument("--matmul-dtype", choices=["float32", "bfloat16"], default=None,
                   help="override: bfloat16 = mixed-precision matmuls")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--profile", action="store_true",
                   help="also time each phase of an update cycle (acting, env, replay, context, update): profile.md")
    p.add_argument("--trace", default=None, metavar="DIR",
                   help="record a jax.profiler trace of one chunk per seed count (open with TensorBoard or Perfetto)")
    a = p.parse_args(argv)
    overrides = {k: v for k, v in (("batch_size", a.batch_size), ("context_source", a.context_source),
                                   ("burn_in", a.burn_in), ("matmul_dtype", a.matmul_dtype)) if v is not None}
    device = f"{jax.devices()[0].platform}: {jax.devices()[0].device_kind} (x{jax.device_count()})"
    print(f"device {device}", flush=True)
    peak = matmul_peak_flops()
    print(f"fp32 matmul peak {peak / 1e9:,.1f} GFLOP/s", flush=True)
    rows = []
    for n in [int(s) for s in a.seeds.split(",")]:
        trace = f"{a.trace}/seeds{n}" if a.trace else None
        row = measure(a.env, a.preset, n, a.updates, a.repeats, a.warmup_steps, overrides, peak, a.profile, trace)
        rows.append(row)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if k != "profile"}, flush=True)
        if "profile" in row:
            print(row["profile"], flush=True)
        write_outputs(rows, Path(a.out), device, peak)
    print((Path(a.out) / "throughput.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Throughput of the compiled training program: env steps/s, updates/s, memory and MFU per seed count.

    python benchmarks/throughput.py --env Breakout-MinAtar --preset paper-minatar --seeds 1,2,4,8

For every seed count it compiles the vmapped program (compile time reported apart), runs the
warm-up and one untimed chunk, then times ``--repeats`` chunks of ``--updates`` updates each
(median). FLOPs come from XLA's own cost analysis of the compiled env step and learning step;
MFU divides the achieved FLOP/s by matmul rates measured in the same process, on the same device: fp32 at
``Precision.HIGHEST`` (true fp32), fp32 at the default precision (TF32 on recent NVIDIA GPUs; the precision the
trainer's fp32 matmuls run at) and bf16. The ``mfu`` column uses the rate matching the run's ``--matmul-dtype``
(default-precision fp32, or bf16). Writes
``throughput.csv``, ``throughput.md`` and ``throughput.png`` to ``--out``; ``--profile`` adds
``profile.md``, the time of each phase of an update cycle (see ``phases.py``); ``--trace DIR`` records a
``jax.profiler`` trace of one chunk per seed count (``tensorboard --logdir DIR`` with the profile plugin,
or load the ``.xplane.pb`` / ``.trace.json.gz`` file in https://ui.perfetto.dev).

Peak memory: ``peak_bytes_in_use`` of the device (GPU/TPU) or the peak RSS (CPU) is process-wide and never resets.
By default the seed counts run in one process in the given order (give them increasing) and the matmul rates are
measured after the last one, so a row's peak is the largest of it and the rows before it. ``--isolate`` runs each
seed count in a fresh subprocess (its program first, then the matmul rates), so each peak is that seed count's
own. ``program_mem_mb`` is exact and per program either way: the training state plus the compiled chunk's
temporaries, from XLA's memory analysis. ``--time-budget S`` stops starting seed counts (and, with ``--isolate``,
kills one still running) once S seconds have passed, keeping the rows already measured.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# With --isolate this process only starts subprocesses: keep it off the accelerator (importing gymnax already
# creates arrays, which would make JAX preallocate most of a GPU's memory here); the children get the original env.
CHILD_ENV = dict(os.environ)
if __name__ == "__main__" and "--isolate" in sys.argv[1:]:
    os.environ["JAX_PLATFORMS"] = "cpu"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from purejax_ad import plan  # noqa: E402
from purejax_ad.algos import algo_names  # noqa: E402
from purejax_ad.checks import check  # noqa: E402
from purejax_ad.envs import make_config_env  # noqa: E402
from purejax_ad.presets import preset_config  # noqa: E402
from purejax_ad.run import seed_keys  # noqa: E402
from purejax_ad.program import make_program  # noqa: E402


def compiled_flops(fn, *args) -> float:
    """FLOPs of one call of ``jax.jit(fn)`` from XLA's cost analysis (0 when unavailable)."""
    return plan.compiled_flops(jax.jit(fn).lower(*args).compile())


def matmul_peak_flops(dtype=jnp.float32, n: int | None = None, repeats: int = 5, precision=None) -> float:
    """Measured FLOP/s of a large square matmul on the default device (best of ``repeats`` timed batches).

    ``precision``: ``None`` = the default (on recent NVIDIA GPUs fp32 operands then run as TF32),
    ``jax.lax.Precision.HIGHEST`` = true fp32. Each timed batch dispatches several matmuls back to back and
    waits once, so launch overhead does not count; a batch lasts about 0.2 s.
    """
    if n is None:
        n = 2048 if jax.devices()[0].platform == "cpu" else 8192
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(kb, (n, n), jnp.float32).astype(dtype)
    f = jax.jit(lambda x, y: jnp.matmul(x, y, precision=precision))
    f(a, b).block_until_ready()
    t = time.perf_counter()
    f(a, b).block_until_ready()
    inner = max(1, min(200, int(0.2 / max(time.perf_counter() - t, 1e-6))))
    sync_each = jax.devices()[0].platform == "cpu"  # an accelerator runs one stream in order: wait for the last
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            out = f(a, b)
            if sync_each:
                out.block_until_ready()
        out.block_until_ready()
        best = min(best, (time.perf_counter() - t) / inner)
    return 2 * n**3 / best


RATE_LABELS = {"fp32_highest": "fp32 (HIGHEST)", "fp32_default": "fp32 default precision (TF32 on GPU)",
               "bf16": "bf16"}


def matmul_rates(n: int | None = None, repeats: int = 5) -> dict[str, float]:
    """FLOP/s of fp32 at HIGHEST precision, fp32 at the default precision and bf16, measured here."""
    return {"fp32_highest": matmul_peak_flops(jnp.float32, n, repeats, jax.lax.Precision.HIGHEST),
            "fp32_default": matmul_peak_flops(jnp.float32, n, repeats, None),
            "bf16": matmul_peak_flops(jnp.bfloat16, n, repeats, None)}


def add_mfu(row: dict, rates: dict[str, float]) -> dict:
    """Fill a row's MFU columns from its achieved FLOP/s and the measured matmul rates."""
    achieved = row["achieved_gflop_per_s"] * 1e9
    for k, v in rates.items():
        row[f"{k}_gflop_per_s"] = v / 1e9
        row[f"mfu_{k}"] = achieved / v
    row["mfu"] = row["mfu_bf16"] if row["matmul_dtype"] == "bfloat16" else row["mfu_fp32_default"]
    return row


def peak_memory_bytes() -> tuple[int, str]:
    """Peak device memory in use (accelerators) or the process's peak RSS (CPU)."""
    dev = jax.devices()[0]
    stats = dev.memory_stats() if dev.platform != "cpu" else None
    if stats and "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), "device"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "rss"


def program_bytes(compiled, state_shape) -> int:
    """Training state plus the compiled program's temporaries (XLA memory analysis; the state when unavailable)."""
    state = plan.tree_bytes(state_shape)
    try:
        temp = int(compiled.memory_analysis().temp_size_in_bytes)
    except Exception:  # noqa: BLE001 -- not every backend implements it
        temp = 0
    return state + temp


def measure(env_id: str, preset: str, num_seeds: int, updates: int, repeats: int, warmup_steps: int,
            overrides: dict, rates: dict | None = None, profile: bool = False, trace_dir: str | None = None) -> dict:
    """Time one seed count; returns one result row (with ``"profile"``, a markdown table, when ``profile``).

    ``rates``: measured matmul FLOP/s (``matmul_rates``) for the MFU columns; without them those are left out.

    ``trace_dir``: also record a ``jax.profiler`` trace of one extra chunk there.
    """
    base = preset_config(preset, env=env_id, **overrides)
    chunk_steps = updates * base.train_frequency
    total = warmup_steps + chunk_steps * (repeats + 1)
    config = check(preset_config(preset, env=env_id, num_seeds=num_seeds, learning_starts=warmup_steps,
                                 log_interval=chunk_steps, total_timesteps=total, eval_interval=0,
                                 buffer_size=min(base.buffer_size, total), **overrides))
    env = make_config_env(config)
    program = make_program(config, env)
    keys = seed_keys(config)
    t0 = time.perf_counter()
    shape = jax.eval_shape(jax.vmap(program.init), keys)
    init = jax.jit(jax.vmap(program.init)).lower(keys).compile()
    warm = jax.jit(jax.vmap(program.warmup), donate_argnums=0).lower(shape).compile()
    chunk = jax.jit(jax.vmap(program.train_chunk), donate_argnums=0).lower(shape).compile()
    compile_s = time.perf_counter() - t0
    step_flops = compiled_flops(jax.vmap(program.env_step), shape)
    learn_flops = compiled_flops(jax.vmap(program.learn), shape)
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
    prog_mem = max(program_bytes(chunk, shape), program_bytes(warm, shape))
    extra = {}
    if profile:
        from phases import breakdown_table, phase_times

        extra["profile"] = breakdown_table(phase_times(program, env, state), dt / config.updates_per_chunk)
    row = {
        "env": env_id, "preset": preset, "num_seeds": num_seeds, "batch_size": config.batch_size,
        "context_source": config.context_source, "matmul_dtype": config.matmul_dtype,
        "buffer_size": config.buffer_size, "updates_per_chunk": config.updates_per_chunk, "repeats": repeats,
        "chunk_s": dt, "agg_env_steps_per_s": agg_sps, "per_seed_env_steps_per_s": agg_sps / num_seeds,
        "updates_per_s": updates_per_s, "compile_s": compile_s,
        "gflop_per_env_step": flops_per_env_step / 1e9,
        "gflop_per_update": learn_flops / num_seeds / 1e9,
        "achieved_gflop_per_s": achieved / 1e9,
        "peak_mem_mb": mem / 2**20, "mem_kind": mem_kind, "program_mem_mb": prog_mem / 2**20, **extra,
    }
    return add_mfu(row, rates) if rates else row


def _fmt_pct(r: dict, k: str) -> str:
    return f"{100 * r[k]:.2f} %" if k in r else "n/a"


def write_outputs(rows: list[dict], out: Path, device: str, rates: dict | None = None, note: str = "") -> None:
    """CSV, markdown table and PNG of the rows (MFU columns "n/a" until the matmul rates are known)."""
    out.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(k for r in rows for k in r if k != "profile"))
    with open(out / "throughput.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (out / "rows.json").write_text(json.dumps(rows, indent=1))
    profiles = [f"### {r['num_seeds']} seeds\n\n{r['profile']}" for r in rows if "profile" in r]
    if profiles:
        (out / "profile.md").write_text(f"Per-phase breakdown on {device}\n\n" + "\n".join(profiles))
    options = {k: rows[0][k] for k in ("env", "preset", "batch_size", "context_source", "matmul_dtype")}
    measured = [r for r in rows if "fp32_highest_gflop_per_s" in r]
    if measured:
        def span(k):
            lo, hi = min(r[k] for r in measured), max(r[k] for r in measured)
            f = (lambda x: f"{x:,.0f}") if lo >= 100 else (lambda x: f"{x:.1f}")
            return f(lo) if f(lo) == f(hi) else f"{f(lo)}–{f(hi)}"
        rate_line = ("matmul rates measured here (GFLOP/s): " + ", ".join(
            f"{RATE_LABELS[k]} {span(f'{k}_gflop_per_s')}" for k in RATE_LABELS) + "; the MFU column marked * is the "
            "one matching the run's matmul dtype")
    else:
        rate_line = "matmul rates not measured (MFU n/a)"
    star = "bf16" if rows[0]["matmul_dtype"] == "bfloat16" else "fp32_default"
    heads = {"fp32_highest": "MFU fp32", "fp32_default": "MFU fp32 default/TF32", "bf16": "MFU bf16"}
    heads[star] += " *"
    lines = [f"device: {device}; options: {options}", "", rate_line + (f"; {note}" if note else ""), "",
             "| seeds | agg env steps/s | per-seed env steps/s | updates/s | GFLOP / env step | achieved GFLOP/s | "
             + " | ".join(heads.values()) + " | peak mem (MB) | program mem (MB) | compile (s) |",
             "|---" * 12 + "|"]
    for r in rows:
        lines.append(f"| {r['num_seeds']} | {r['agg_env_steps_per_s']:,.1f} | {r['per_seed_env_steps_per_s']:,.1f} | "
                     f"{r['updates_per_s']:,.2f} | {r['gflop_per_env_step']:.3g} | {r['achieved_gflop_per_s']:,.1f} | "
                     + " | ".join(_fmt_pct(r, f"mfu_{k}") for k in heads) + " | "
                     f"{r['peak_mem_mb']:,.0f} ({r['mem_kind']}) | {r['program_mem_mb']:,.0f} | {r['compile_s']:.1f} |")
    (out / "throughput.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seeds = [r["num_seeds"] for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    ax[0].plot(seeds, [r["agg_env_steps_per_s"] for r in rows], marker="o")
    ax[0].set(xscale="log", yscale="log", xlabel="seeds", ylabel="aggregate env steps/s")
    for k in heads:
        if all(f"mfu_{k}" in r for r in rows):
            ax[1].plot(seeds, [100 * r[f"mfu_{k}"] for r in rows], marker="o", label=RATE_LABELS[k])
    if ax[1].lines:
        ax[1].legend(fontsize=8)
    ax[1].set(xscale="log", xlabel="seeds", ylabel="MFU (% of a matmul rate measured here)")
    fig.suptitle(f"{rows[0]['env']} / {rows[0]['preset']} on {device}")
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)


def device_name() -> str:
    """Platform, kind and count of the default backend's devices, and the JAX version."""
    d = jax.devices()[0]
    return f"{d.platform}: {d.device_kind} (x{jax.device_count()}), jax {jax.__version__}"


def run_isolated(a, seeds: list[int], out: Path, deadline: float | None) -> tuple[list[dict], list[str]]:
    """Each seed count in a fresh subprocess of this script (its own peak memory and matmul rates)."""
    rows, notes = [], []
    for n in seeds:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining < 10:
            notes.append(f"{n} seeds skipped (time budget)")
            print(f"== {n} seeds: skipped, time budget spent", flush=True)
            continue
        sub = out / f"seeds{n}"
        cmd = [sys.executable, os.path.abspath(__file__), "--seeds", str(n), "--out", str(sub), *child_args(a)]
        print(f"== {n} seeds (subprocess{'' if remaining is None else f', {remaining:.0f} s left'}): {' '.join(cmd)}",
              flush=True)
        try:
            rc = subprocess.run(cmd, env=CHILD_ENV, timeout=remaining).returncode
        except subprocess.TimeoutExpired:
            notes.append(f"{n} seeds killed at the time budget")
            print(f"== {n} seeds: killed at the time budget", flush=True)
            break
        if rc != 0 or not (sub / "rows.json").exists():
            notes.append(f"{n} seeds failed (exit {rc})")
            print(f"== {n} seeds: failed with exit status {rc}", flush=True)
            continue
        rows += json.loads((sub / "rows.json").read_text())
    return rows, notes


def child_args(a) -> list[str]:
    """The options of ``a`` that a per-seed-count subprocess needs (not --seeds/--out/--isolate/--time-budget)."""
    args = ["--env", a.env, "--algo", a.algo, "--preset", a.preset, "--updates", str(a.updates),
            "--repeats", str(a.repeats), "--warmup-steps", str(a.warmup_steps), "--matmul-repeats", str(a.matmul_repeats)]
    for flag, v in (("--batch-size", a.batch_size), ("--context-source", a.context_source), ("--burn-in", a.burn_in),
                    ("--matmul-dtype", a.matmul_dtype), ("--matmul-n", a.matmul_n), ("--trace", a.trace)):
        if v is not None:
            args += [flag, str(v)]
    return args + (["--profile"] if a.profile else [])


def main(argv=None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Breakout-MinAtar")
    p.add_argument("--algo", default="ad-dqn", choices=list(algo_names()))
    p.add_argument("--preset", default="paper-minatar")
    p.add_argument("--seeds", default="1,2,4,8", help="comma-separated seed counts (give them increasing)")
    p.add_argument("--updates", type=int, default=10, help="updates per timed chunk")
    p.add_argument("--repeats", type=int, default=3, help="timed chunks per seed count (median reported)")
    p.add_argument("--warmup-steps", type=int, default=512, help="env steps of replay warm-up (not timed)")
    p.add_argument("--batch-size", type=int, default=None, help="override the preset's batch size")
    p.add_argument("--context-source", choices=["replay", "stored"], default=None,
                   help="override: 'stored' = the actor's context stored in replay, burn-in only")
    p.add_argument("--burn-in", type=int, default=None, help="override: burn-in steps with stored contexts")
    p.add_argument("--matmul-dtype", choices=["float32", "bfloat16"], default=None,
                   help="override: bfloat16 = mixed-precision matmuls")
    p.add_argument("--matmul-n", type=int, default=None,
                   help="side of the square matmuls that measure the peak rates (default 2048 on CPU, 8192 otherwise)")
    p.add_argument("--matmul-repeats", type=int, default=5, help="timed batches per matmul rate (best taken)")
    p.add_argument("--isolate", action="store_true",
                   help="run each seed count in its own subprocess (per-seed-count peak memory and matmul rates)")
    p.add_argument("--time-budget", type=float, default=None, metavar="S",
                   help="start no seed count after S seconds (with --isolate: also kill the one running then)")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--profile", action="store_true",
                   help="also time each phase of an update cycle (acting, env, replay, context, update): profile.md")
    p.add_argument("--trace", default=None, metavar="DIR",
                   help="record a jax.profiler trace of one chunk per seed count (open with TensorBoard or Perfetto)")
    a = p.parse_args(argv)
    t_start = time.monotonic()
    deadline = None if a.time_budget is None else t_start + a.time_budget
    seeds = [int(s) for s in a.seeds.split(",")]
    out = Path(a.out)
    if a.isolate:
        rows, notes = run_isolated(a, seeds, out, deadline)
        rows.sort(key=lambda r: r["num_seeds"])
        if not rows:
            print("no seed count finished", flush=True)
            return 1
        device = rows[0].get("device", "?")
        note = "each seed count in its own process (peak memory per seed count)"
        write_outputs(rows, out, device, note="; ".join([note, *notes]))
        print((out / "throughput.md").read_text(), flush=True)
        print(f"total {time.monotonic() - t_start:.0f} s", flush=True)
        return 0 if not notes else 2
    overrides = {k: v for k, v in (("batch_size", a.batch_size), ("context_source", a.context_source),
                                   ("burn_in", a.burn_in), ("matmul_dtype", a.matmul_dtype)) if v is not None}
    device = device_name()
    print(f"device {device}", flush=True)
    rows, notes = [], []
    for n in seeds:
        if deadline is not None and time.monotonic() > deadline:
            notes.append(f"{n} seeds skipped (time budget)")
            print(f"{n} seeds: skipped, time budget spent", flush=True)
            continue
        trace = f"{a.trace}/seeds{n}" if a.trace else None
        t = time.monotonic()
        row = measure(a.env, a.preset, n, a.updates, a.repeats, a.warmup_steps, overrides, None, a.profile, trace)
        row["wall_s"] = time.monotonic() - t
        row["device"] = device
        rows.append(row)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if k != "profile"}, flush=True)
        if "profile" in row:
            print(row["profile"], flush=True)
        write_outputs(rows, out, device, note="matmul rates pending")
    if not rows:
        return 1
    t = time.monotonic()
    rates = matmul_rates(a.matmul_n, a.matmul_repeats)
    print("matmul rates (GFLOP/s): " + ", ".join(f"{RATE_LABELS[k]} {v / 1e9:,.1f}" for k, v in rates.items())
          + f" ({time.monotonic() - t:.1f} s)", flush=True)
    for r in rows:
        add_mfu(r, rates)
    note = ("seed counts in one process in this order, matmul rates after them; peak memory is process-wide"
            if len(rows) > 1 else "")
    write_outputs(rows, out, device, rates, note="; ".join(x for x in [note, *notes] if x))
    print((out / "throughput.md").read_text(), flush=True)
    return 0 if not notes else 2


if __name__ == "__main__":
    sys.exit(main())

"""Pre-flight plan: what a run needs (memory, FLOPs, time) against what the device offers, before allocating it.

``python -m purejax_ad.train ... --dry-run`` prints :func:`format_plan`; every run prints
:func:`summary_line` and is refused (:class:`purejax_ad.config.ConfigError`) when it cannot fit, before
anything is allocated or written. Figures (docs/results.md "Memory: compact replay, the pre-flight
plan, seed waves"):

* **state bytes per seed**, by component, from ``jax.eval_shape`` of one seed's ``init`` (nothing allocated);
* **the compiled programs' memory** from XLA's ``memory_analysis()`` of each program compiled for the
  requested seeds (arguments + outputs not aliased to a donated argument + temporaries, per device);
* **GFLOP per env step and per update** from XLA's ``cost_analysis()`` of one env step and one update;
* **device memory**: ``memory_stats()["bytes_limit"]`` on accelerators; on CPU the host's available RAM
  (``MemAvailable``, and the cgroup limit if one is set); ``Config.memory_budget_gb`` overrides it;
* **expected wall time**: the run's FLOPs at the matmul rate measured here, a lower bound (the program's
  small matmuls run below a large matmul's rate).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp

GIB = 2**30


def tree_bytes(tree) -> int:
    """Bytes of every array in a pytree of arrays or ``ShapeDtypeStruct`` s (PRNG keys as their raw data)."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.eval_shape(jax.random.key_data, leaf)
        total += math.prod(leaf.shape) * leaf.dtype.itemsize
    return int(total)


def state_bytes(state) -> dict[str, int]:
    """Bytes of the parts of one seed's train state (a ``ShapeDtypeStruct`` tree is enough).

    Returns:
      ``{component: bytes}`` with replay split into stored steps and the truncation side table.
    """
    learner, replay = state.learner, state.buffer_state
    parts = {
        "replay: stored steps": tree_bytes(replay.steps),
        "replay: final obs of truncations": tree_bytes((replay.final_obs, replay.final_block)),
        "params": tree_bytes(learner.params),
        "target params": tree_bytes(learner.target_params),
        "optimiser states": tree_bytes(learner.opt_state),
    }
    parts["env states, contexts, counters, keys"] = tree_bytes(state) - sum(parts.values())
    return parts


def host_available_bytes() -> int:
    """Available host RAM: ``MemAvailable`` of ``/proc/meminfo``, capped by a cgroup memory limit if any."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            if limit != "max" and int(limit) < 2**60:
                free = int(limit) - int(Path(usage_file).read_text())
                available = free if available is None else min(available, free)
            break
        except (OSError, ValueError):
            continue
    if available is None:
        import os

        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(available)


def device_memory(budget_gb: float | None = None) -> tuple[int, str]:
    """``(bytes one device offers, where the figure comes from)``.

    Args:
      budget_gb: a user budget in GiB (``--memory-budget-gb``) that replaces the device's own figure.
    """
    if budget_gb is not None:
        return int(budget_gb * GIB), "--memory-budget-gb"
    device = jax.local_devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)), f"{device.device_kind} memory_stats"
    # CPU "devices" share the host's RAM.
    return host_available_bytes() // max(1, jax.local_device_count()), "host RAM available"


def program_memory(compiled) -> int:
    """Bytes a compiled program holds on one device while it runs (XLA ``memory_analysis``)."""
    m = compiled.memory_analysis()
    if m is None:
        return 0
    peak = getattr(m, "peak_memory_in_bytes", 0) or 0
    total = m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes
    return int(max(peak, total))


def memory_breakdown(compiled) -> dict[str, int]:
    """``{arguments, outputs, aliased, temporaries}`` bytes per device of a compiled program."""
    m = compiled.memory_analysis()
    if m is None:
        return {}
    return {"arguments": m.argument_size_in_bytes, "outputs": m.output_size_in_bytes,
            "aliased (donated)": m.alias_size_in_bytes, "temporaries": m.temp_size_in_bytes}


def compiled_flops(compiled) -> float:
    """FLOPs of one call of a compiled program (XLA ``cost_analysis``; 0 when unavailable)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else {}
    return float((analysis or {}).get("flops", 0.0))


def matmul_rate(dtype=jnp.float32, n: int | None = None, repeats: int = 3) -> float:
    """Measured FLOP/s of a square matmul on the default device (best of ``repeats``)."""
    if n is None:
        n = 1024 if jax.devices()[0].platform == "cpu" else 8192
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


class Plan(NamedTuple):
    """What a run needs and what the device offers (bytes are per device unless named per seed).

    Attributes:
      runs_per_device: seeds (x sweep configs) each device computes at once (one wave).
      num_devices: devices the runs are sharded over.
      state_per_seed: :func:`state_bytes` of one seed.
      programs: ``{name: bytes}`` of each compiled program (:func:`program_memory`); ``{}`` before compiling.
      chunk_breakdown: :func:`memory_breakdown` of the training chunk; ``{}`` before compiling.
      available: bytes one device offers. available_source: where that figure comes from.
      gflop_per_env_step / gflop_per_update: per seed (``None`` unless measured).
      matmul_gflops: measured matmul rate (``None`` unless measured). run_flops: FLOPs of the whole run.
    """

    runs_per_device: int
    num_devices: int
    state_per_seed: dict
    programs: dict
    chunk_breakdown: dict
    available: int
    available_source: str
    gflop_per_env_step: float | None = None
    gflop_per_update: float | None = None
    matmul_gflops: float | None = None
    run_flops: float | None = None

    @property
    def state_total_per_seed(self) -> int:
        """Bytes of one seed's state."""
        return sum(self.state_per_seed.values())

    @property
    def needed(self) -> int:
        """Bytes one device needs: the largest compiled program, or the seeds' states before compiling."""
        return max([self.runs_per_device * self.state_total_per_seed, *self.programs.values()])

    @property
    def fits(self) -> bool:
        """Whether :attr:`needed` is within :attr:`available`."""
        return self.needed <= self.available

    @property
    def max_runs(self) -> int:
        """The largest number of runs (all devices) that fits, assuming memory grows linearly with seeds."""
        per_run = self.needed / max(1, self.runs_per_device)
        return int(self.available // per_run) * self.num_devices if per_run else 0

    @property
    def expected_wall_s(self) -> float | None:
        """Lower bound on the training time: the run's FLOPs at the measured matmul rate of every device."""
        if not (self.run_flops and self.matmul_gflops):
            return None
        return self.run_flops / (self.matmul_gflops * 1e9 * self.num_devices)


def size(num_bytes: float) -> str:
    """``"1.23 GiB"``, or MiB below 1 GiB."""
    return f"{num_bytes / GIB:,.2f} GiB" if num_bytes >= GIB else f"{num_bytes / 2**20:,.2f} MiB"


def refusal(plan: Plan, what: str = "seeds") -> str:
    """The one line that refuses a run that does not fit."""
    return (f"the run does not fit: it needs {size(plan.needed)} per device for {plan.runs_per_device} "
            f"{what} per device, and the device offers {size(plan.available)} ({plan.available_source}); "
            f"at most {plan.max_runs} {what} fit ({plan.state_total_per_seed / 2**20:,.1f} MiB of state per seed); "
            "use fewer seeds, --seeds-per-wave auto, or a smaller --buffer-size")


def summary_line(plan: Plan) -> str:
    """One line printed at the start of every run."""
    replay = sum(v for k, v in plan.state_per_seed.items() if k.startswith("replay"))
    flops = f", {plan.gflop_per_env_step:.3g} GFLOP/env step" if plan.gflop_per_env_step else ""
    return (f"plan: {plan.state_total_per_seed / 2**20:,.1f} MiB state per seed (replay {replay / 2**20:,.1f} MiB) "
            f"x {plan.runs_per_device} per device on {plan.num_devices} device(s); needs "
            f"{size(plan.needed)} of {size(plan.available)} ({plan.available_source}){flops}")


def format_plan(plan: Plan, config) -> str:
    """The multi-line plan of ``--dry-run``."""
    lines = [f"pre-flight plan: {config.algo} on {config.env} ({config.preset}), {config.num_seeds} seeds"
             f"{f' x {config.num_configs} sweep configs' if config.num_configs > 1 else ''}, "
             f"{config.effective_total_timesteps:,} env steps per seed, buffer {config.effective_buffer_size:,} "
             f"transitions per seed",
             f"devices: {plan.num_devices} x {jax.devices()[0].device_kind}; {plan.runs_per_device} runs per device "
             f"at once, {math.ceil(config.num_seeds * config.num_configs / (plan.runs_per_device * plan.num_devices))}"
             " wave(s)", "", "state per seed (jax.eval_shape of init):"]
    for name, b in plan.state_per_seed.items():
        lines.append(f"  {name:<40} {b / 2**20:12,.1f} MiB")
    lines.append(f"  {'total':<40} {plan.state_total_per_seed / 2**20:12,.1f} MiB")
    if plan.chunk_breakdown:
        lines += ["", f"training chunk, compiled for {plan.runs_per_device} runs per device (XLA memory analysis):"]
        lines += [f"  {name:<40} {size(b):>16}" for name, b in plan.chunk_breakdown.items()]
    if plan.programs:
        lines += ["", "each compiled program's footprint per device:"]
        lines += [f"  {name:<40} {size(b):>16}" for name, b in plan.programs.items()]
    if plan.gflop_per_env_step is not None:
        lines += ["", f"compute (XLA cost analysis): {plan.gflop_per_env_step:.4g} GFLOP per env step, "
                      f"{plan.gflop_per_update:.4g} GFLOP per update, per seed"]
    if plan.expected_wall_s is not None:
        lines.append(f"expected wall time >= {plan.expected_wall_s / 3600:,.3g} h: {plan.run_flops / 1e12:,.4g} TFLOP "
                     f"at the measured {plan.matmul_gflops:,.0f} GFLOP/s fp32 matmul rate per device "
                     "(a lower bound)")
    lines += ["", f"device memory: {size(plan.available)} per device ({plan.available_source}); "
                  f"needed {size(plan.needed)} per device",
              "verdict: fits" if plan.fits else "verdict: " + refusal(plan)]
    return "\n".join(lines)

"""One XLA CPU device per core, so that a CPU run spreads its seeds over every core.

XLA:CPU runs one device's program on about one core at the sizes this project trains (a vmapped CartPole
network keeps a second core mostly idle), and JAX gives a CPU host a single device unless
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` is set before its backend starts. The command-line
entry points (``python -m purejax_ad.train``, ``.evaluate``, ``.experiments``) call :func:`use_cpu_cores`
first, so the run axis is sharded over one device per core (``purejax_ad.sharding``; with these automatic
devices a run uses at most as many devices as it has runs, see :func:`purejax_ad.sharding.default_num_devices`). Measured on 2
cores: the default job's aggregate env steps/s doubles (docs/results.md, "Using both CPU cores").

Devices change float32 rounding (a device's vmap covers fewer seeds), so a run on 2 CPU devices is not bit
for bit the run on 1; each is reproducible on its own. ``XLA_FLAGS=--xla_force_host_platform_device_count=1``
(or any count of one's own) turns this off: a count already in ``XLA_FLAGS`` is kept. The flag touches only
the CPU platform; GPU and TPU runs are unchanged. This module imports nothing else.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

FLAG = "--xla_force_host_platform_device_count"
#: The device count :func:`use_cpu_cores` set in this process (``None``: it set none).
auto_device_count: int | None = None


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def use_cpu_cores(environ: MutableMapping[str, str] = os.environ, cores: int | None = None) -> int | None:
    """Adds ``--xla_force_host_platform_device_count=<cores>`` to ``XLA_FLAGS`` unless a count is already set.

    Must run before JAX starts its CPU backend (before anything creates a JAX array) to take effect.

    Returns:
      The device count it set, or ``None`` when ``XLA_FLAGS`` already named one (left unchanged).
    """
    flags = environ.get("XLA_FLAGS", "")
    if FLAG in flags:
        return None
    global auto_device_count
    cores = available_cores() if cores is None else cores
    environ["XLA_FLAGS"] = f"{flags} {FLAG}={cores}".strip()
    if environ is os.environ:
        auto_device_count = cores
    return cores

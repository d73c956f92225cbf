"""Where the runs are computed: the 1-D device mesh of the run axis, per-device ``vmap``, gathering to the host.

The run axis (every ``(sweep config, seed)`` pair of a wave) is sharded over a 1-D mesh of every device
JAX sees (``shard_map``, no collectives), so a run's result does not depend on the number of devices.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from purejax_ad import cpu_cores
from purejax_ad.config import ConfigError

#: Name of the mesh axis the seeds are sharded over.
SEED_AXIS = "seeds"


def padded_num_seeds(num_seeds: int, num_devices: int) -> int:
    """Seeds actually computed: ``num_seeds`` rounded up to a multiple of the device count."""
    return math.ceil(num_seeds / num_devices) * num_devices


def default_num_devices(num_devices: int | None, num_runs: int) -> int | None:
    """The devices a run is sharded over when ``--num-devices`` is not given.

    With the CPU devices :func:`purejax_ad.cpu_cores.use_cpu_cores` made in this process (one per core) and one
    process, a run uses at most ``num_runs`` of them, so 4 seeds on a 16-core host do not pad to 16; everywhere
    else (GPUs, TPUs, a device count the user forced), every device (``None``). An explicit ``num_devices`` is
    returned unchanged.
    """
    if (num_devices is not None or cpu_cores.auto_device_count is None or jax.process_count() > 1
            or jax.default_backend() != "cpu"):
        return num_devices
    return max(1, num_runs) if jax.device_count() > num_runs else None


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
    do not depend on the device count. Every one of the ``num_args`` arguments and the output carry
    the leading seed axis.
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

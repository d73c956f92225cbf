"""Multi-process runs (``--distributed true``): ``jax.distributed.initialize`` and the launch environment.

JAX 0.10 finds the coordinator, the number of processes and this process's id by itself only on
clusters it recognises (SLURM, Open MPI, Cloud TPU, Kubernetes); of the three it reads just
``JAX_COORDINATOR_ADDRESS`` from the environment. Anywhere else (several processes on one machine, a
hand-made launch on several hosts) set all three variables on every process:

* ``JAX_COORDINATOR_ADDRESS`` -- ``host:port`` of process 0, where it serves the coordinator (read by JAX);
* ``JAX_NUM_PROCESSES`` -- how many processes take part (read here);
* ``JAX_PROCESS_ID`` -- this process's index, ``0 .. JAX_NUM_PROCESSES - 1`` (read here).

``jax.distributed.initialize`` must run before anything creates a JAX array, and importing gymnax does
(module-level constants), so ``python -m purejax_ad.train`` calls :func:`initialize_from_argv` before its
other imports; :func:`start` (from :func:`purejax_ad.run.run`) covers a programmatic ``run(config)``.
Cross-process collectives on CPU use gloo (JAX's default ``jax_cpu_collectives_implementation``).

This module imports nothing that creates arrays.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import numpy as np

#: The environment variables of a launch without a recognised cluster.
ENV_VARS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


class DistributedError(ValueError):
    """Bad launch environment (one line, for the CLI's ``error:`` message)."""


def device_put(x: jax.Array, sharding: jax.sharding.Sharding) -> jax.Array:
    """``jax.device_put`` of a host-computed array (typed PRNG keys too) that also works when ``sharding``
    spans several processes: every process passes the same value (JAX checks) and keeps its own shards.
    (``jax.device_put`` itself refuses an array already committed to one device for such a sharding.)"""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = jax.device_put(np.asarray(jax.random.key_data(x)), sharding)
        return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
    return jax.device_put(np.asarray(x), sharding)


def initialize_args(environ: Mapping[str, str] = os.environ) -> dict:
    """Keyword arguments for ``jax.distributed.initialize`` from ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``.

    Empty when neither is set (JAX then auto-detects the cluster).

    Raises:
      DistributedError: only some of :data:`ENV_VARS` are set, or the values are invalid.
    """
    given = [name for name in ENV_VARS[1:] if environ.get(name)]
    if not given:
        return {}
    missing = [name for name in ENV_VARS if not environ.get(name)]
    if missing:
        raise DistributedError(f"--distributed: {', '.join(given)} set but not {', '.join(missing)}; a launch "
                               f"without a recognised cluster needs all of {', '.join(ENV_VARS)}")
    try:
        num, pid = int(environ["JAX_NUM_PROCESSES"]), int(environ["JAX_PROCESS_ID"])
    except ValueError:
        raise DistributedError(f"--distributed: JAX_NUM_PROCESSES={environ['JAX_NUM_PROCESSES']!r} and "
                               f"JAX_PROCESS_ID={environ['JAX_PROCESS_ID']!r} must be integers") from None
    if not 0 <= pid < num:
        raise DistributedError(f"--distributed: JAX_PROCESS_ID must be in 0 .. {num - 1} "
                               f"(JAX_NUM_PROCESSES={num}), got {pid}")
    return {"num_processes": num, "process_id": pid}


def initialize() -> None:
    """``jax.distributed.initialize`` with :func:`initialize_args` (no-op when already initialised).

    Raises:
      DistributedError: bad :data:`ENV_VARS`, or JAX arrays already exist in this process.
    """
    if jax.distributed.is_initialized():
        return
    kwargs = initialize_args()
    try:
        jax.distributed.initialize(**kwargs)
    except RuntimeError as e:
        if "must be called before" not in str(e):
            raise
        raise DistributedError("--distributed: JAX was already in use in this process (importing gymnax creates "
                               "arrays); start it with `python -m purejax_ad.train --distributed true ...`, or "
                               "call purejax_ad.distributed.initialize() before importing anything else") from None


def requested(argv: Sequence[str]) -> bool:
    """Whether CLI arguments ask for a distributed run: the last ``--distributed true|false``, else the
    stored config of ``--resume RUN_DIR`` (a resumed run keeps its ``distributed`` setting)."""
    value, resume = None, None
    for i, arg in enumerate(argv):
        flag, eq, rest = arg.partition("=")
        nxt = rest if eq else (argv[i + 1] if i + 1 < len(argv) else "")
        if flag == "--distributed":
            value = nxt.lower()
        elif flag == "--resume":
            resume = nxt
    if value in ("true", "false"):
        return value == "true"
    if resume:
        try:
            return bool(json.loads((Path(resume) / "config.json").read_text()).get("distributed", False))
        except (OSError, ValueError):
            return False  # the CLI reports the bad run directory
    return False


def initialize_from_argv(argv: Sequence[str]) -> None:
    """CLI start-up: :func:`initialize` when ``argv`` :func:`requested` it; a bad launch environment prints
    one ``error:`` line and exits with status 2."""
    if requested(argv):
        try:
            initialize()
        except DistributedError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)


def start(config) -> None:
    """The distributed part of :func:`purejax_ad.run.run`, after every process checked its config and
    output directory: :func:`initialize` if not done yet, require a shared ``--out`` when there are several
    processes, then wait until every process got here (so none writes before all have checked).

    Raises:
      purejax_ad.config.ConfigError: bad launch environment, or several processes without ``config.out``
        (each would pick its own time-stamped directory).
    """
    from purejax_ad.config import ConfigError

    try:
        initialize()
    except DistributedError as e:
        raise ConfigError(str(e)) from None
    if jax.process_count() > 1:
        if not config.out:
            raise ConfigError(f"--distributed with {jax.process_count()} processes needs --out, a directory on a "
                              "file system every process sees")
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices("purejax_ad: every process checked its config")

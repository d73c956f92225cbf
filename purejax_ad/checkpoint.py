"""Checkpoints of the whole training state (orbax), for resuming interrupted runs.

A checkpoint holds the seed-stacked :class:`purejax_ad.state.TrainState` (per-layer params, target
params, optimiser states, replay buffer, env states, actor contexts, PRNG keys, step counters) and a
small JSON record of the host loop (rows written so far, evaluation counter, timings). They live in
``RUN_DIR/checkpoints/<env_steps>/``; orbax writes each one into a temporary directory and renames it
when complete, so a crash during a save leaves the previous checkpoint usable, and only the newest
``keep`` are kept.

``checkpoint_replay=False`` saves the state without the replay buffer (far smaller); a resume from such
a checkpoint refills the buffer and is therefore not identical to an uninterrupted run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

#: Sub-directory of a run directory that holds its checkpoints.
CHECKPOINT_DIR = "checkpoints"


def _is_key(x) -> bool:
    return isinstance(x, jax.Array | jax.ShapeDtypeStruct) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _keys_to_data(tree):
    """Typed PRNG keys -> their raw ``uint32`` data (orbax stores plain arrays)."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _abstract_key_data(tree):
    def convert(x):
        if not _is_key(x):
            return x
        data = jax.eval_shape(jax.random.key_data, x)
        return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=getattr(x, "sharding", None))

    return jax.tree.map(convert, tree)


def _data_to_keys(tree, like):
    return jax.tree.map(lambda x, ref: jax.random.wrap_key_data(x) if _is_key(ref) else x, tree, like)


def _is_empty(x) -> bool:
    return isinstance(x, jax.Array | jax.ShapeDtypeStruct) and x.size == 0


def _drop_empty(tree):
    """Zero-size arrays (e.g. MJX data fields of a model without actuators) -> ``None``: orbax refuses them."""
    return jax.tree.map(lambda x: None if _is_empty(x) else x, tree)


def _restore_empty(tree, like):
    """Put back the zero-size arrays :func:`_drop_empty` removed, as empty arrays shaped like ``like``'s."""
    flat_like, treedef = jax.tree.flatten(like)
    flat = jax.tree.leaves(tree)
    it = iter(flat)
    leaves = [jax.numpy.zeros(ref.shape, ref.dtype, device=getattr(ref, "sharding", None)) if _is_empty(ref)
              else next(it) for ref in flat_like]
    return jax.tree.unflatten(treedef, leaves)


class Checkpointer:
    """Saves and restores ``(state, host_record)`` pairs under ``run_dir/checkpoints``.

    Args:
      run_dir: the run's output directory.
      keep: how many of the newest checkpoints to keep (``>= 1``).
      replay: whether the replay buffer is part of the checkpoint.
    """

    def __init__(self, run_dir: str | Path, keep: int = 2, replay: bool = True):
        self.directory = (Path(run_dir) / CHECKPOINT_DIR).absolute()
        self.replay = replay
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        """Env steps per seed of the newest complete checkpoint (``None`` when there is none)."""
        return self.manager.latest_step()

    def save(self, env_steps: int, state: Any, host: dict) -> None:
        """Write a checkpoint labelled ``env_steps`` (blocks until it is complete on disk).

        Args:
          env_steps: the checkpoint's name: env steps per seed at this point (with seed waves,
            ``wave * (effective_total_timesteps + 1) + env steps``, so that names grow).
          state: seed-stacked train state (its ``buffer_state`` is dropped when ``replay`` is off).
          host: JSON-serialisable host-loop record.
        """
        if not self.replay:
            state = state._replace(buffer_state=None)
        self.manager.save(env_steps, args=ocp.args.Composite(
            state=ocp.args.StandardSave(_drop_empty(_keys_to_data(state))), host=ocp.args.JsonSave(host)), force=True)
        self.manager.wait_until_finished()

    def read_host(self, env_steps: int | None = None) -> dict | None:
        """The host record of a checkpoint (the newest by default); ``None`` when there is none."""
        step = self.latest_step() if env_steps is None else env_steps
        if step is None:
            return None
        return self.manager.restore(step, args=ocp.args.Composite(host=ocp.args.JsonRestore())).host

    def restore(self, abstract_state: Any, env_steps: int | None = None) -> tuple[Any, dict, bool]:
        """Restore a checkpoint (the newest by default).

        Args:
          abstract_state: ``jax.ShapeDtypeStruct`` tree of the seed-stacked state (with shardings).
          env_steps: which checkpoint; ``None`` for the newest.

        Returns:
          ``(state, host, has_replay)``; without replay ``state.buffer_state`` is ``None``.

        Raises:
          FileNotFoundError: there is no checkpoint.
        """
        step = self.latest_step() if env_steps is None else env_steps
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        host = self.manager.restore(step, args=ocp.args.Composite(host=ocp.args.JsonRestore())).host
        has_replay = bool(host.get("checkpoint_replay", True))
        target = abstract_state if has_replay else abstract_state._replace(buffer_state=None)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_drop_empty(_abstract_key_data(target)))))
        return _data_to_keys(_restore_empty(restored.state, _abstract_key_data(target)), target), host, has_replay

    def close(self) -> None:
        """Release the manager's resources."""
        self.manager.close()

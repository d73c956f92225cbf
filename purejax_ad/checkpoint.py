"""Checkpoints of the whole training state (orbax), for resuming interrupted runs.

A checkpoint holds the seed-stacked :class:`purejax_ad.state.TrainState` (per-layer params, target
params, optimiser states, replay buffer, env states, actor contexts, PRNG keys, step counters) and a
small JSON record of the host loop (rows written so far, evaluation counter, timings). They live in
``RUN_DIR/checkpoints/<env_steps>/``; orbax writes each one into a temporary directory and renames it
when complete, so a crash during a save leaves the previous checkpoint usable, and only the newest
``keep`` are kept. A checkpoint damaged later (files truncated or deleted) is skipped by
:meth:`Checkpointer.restore_newest_intact`, which falls back to the newest one that restores and moves
the damaged ones aside to ``checkpoints/damaged-<env_steps>/``. Each checkpoint lists its files and their
sizes in ``files.json`` when it is written, so a truncated or deleted file is found before orbax reads
anything (a failed orbax read leaves reads in flight that print tracebacks long after the error).

``checkpoint_replay=False`` saves the state without the replay buffer (far smaller); a resume from such
a checkpoint refills the buffer and is therefore not identical to an uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import jax
import orbax.checkpoint as ocp

#: Sub-directory of a run directory that holds its checkpoints.
CHECKPOINT_DIR = "checkpoints"
#: Prefix of a damaged checkpoint's directory once moved aside (orbax ignores names that are not numbers).
DAMAGED_PREFIX = "damaged-"
#: File in each checkpoint's directory: ``{relative path: size in bytes}`` of every file written.
FILE_LIST = "files.json"


class Damaged(NamedTuple):
    """A checkpoint that could not be read: its label and the first line of the error."""

    step: int
    reason: str


def _reason(error: Exception) -> str:
    """``"<ErrorType>: <first line of the message>"``, at most 200 characters."""
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    lines = message.split(" See full TensorStore details")[0].strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= 200 else text[:197] + "..."


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
        if jax.process_index() == 0:
            self._write_file_list(env_steps)

    def _write_file_list(self, env_steps: int) -> None:
        """Record the relative path and size of every file of checkpoint ``env_steps`` in ``files.json``."""
        root = self.directory / str(env_steps)
        sizes = {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}
        tmp = root / (FILE_LIST + ".tmp")
        tmp.write_text(json.dumps(sizes, indent=0))
        tmp.rename(root / FILE_LIST)

    def damage(self, env_steps: int) -> str | None:
        """Why checkpoint ``env_steps`` is damaged by its file list: a listed file missing or of another size.

        Returns ``None`` when every listed file is there with its size, or when the checkpoint has no file
        list (one written before the lists existed: only a restore can tell).
        """
        root = self.directory / str(env_steps)
        try:
            sizes = json.loads((root / FILE_LIST).read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            return f"{FILE_LIST} unreadable ({type(error).__name__})"
        for name, size in sizes.items():
            path = root / name
            if not path.is_file():
                return f"FileNotFoundError: {name} is missing"
            if (found := path.stat().st_size) != size:
                return f"truncated or changed: {name} has {found} bytes, written with {size}"
        return None

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

    def steps(self) -> list[int]:
        """Labels of every checkpoint on disk, newest first (damaged ones included)."""
        return sorted(self.manager.all_steps(), reverse=True)

    def read_newest_intact_host(self) -> tuple[int | None, dict | None, list[Damaged]]:
        """The host record of the newest checkpoint whose record reads.

        Returns:
          ``(step, host, damaged)``: ``step`` and ``host`` are ``None`` when no record reads (or there is no
          checkpoint); ``damaged`` lists the newer checkpoints whose record did not read.
        """
        damaged = []
        for step in self.steps():
            if (reason := self.damage(step)) is not None:
                damaged.append(Damaged(step, reason))
                continue
            try:
                return step, self.read_host(step), damaged
            except Exception as error:  # noqa: BLE001 -- orbax / tensorstore / json raise many types
                damaged.append(Damaged(step, _reason(error)))
        return None, None, damaged

    def restore_newest_intact(self, abstract_state: Any) -> tuple[int, Any, dict, bool, list[Damaged]]:
        """Restore the newest checkpoint that restores completely, moving newer damaged ones aside.

        A checkpoint whose files were truncated or partly deleted (found by its file list, else by a failed
        restore) is renamed to ``checkpoints/damaged-<step>`` (so that a new checkpoint of the same label can be
        written) and the next older one is tried.

        Args:
          abstract_state: as :meth:`restore`.

        Returns:
          ``(step, state, host, has_replay, damaged)``; ``damaged``: the checkpoints skipped, newest first.

        Raises:
          FileNotFoundError: no checkpoint restores (the message lists each one and why); none is moved.
        """
        damaged = []
        for step in self.steps():
            if (reason := self.damage(step)) is not None:
                damaged.append(Damaged(step, reason))
                continue
            try:
                state, host, has_replay = self.restore(abstract_state, step)
            except Exception as error:  # noqa: BLE001 -- orbax / tensorstore / json raise many types
                damaged.append(Damaged(step, _reason(error)))
                continue
            for bad in damaged:
                self.set_aside(bad.step)
            return step, state, host, has_replay, damaged
        tried = "; ".join(f"{d.step}: {d.reason}" for d in damaged) or "there is none"
        raise FileNotFoundError(f"no intact checkpoint in {self.directory} ({tried})")

    def set_aside(self, env_steps: int) -> Path:
        """Rename checkpoint ``env_steps`` to ``checkpoints/damaged-<env_steps>`` (process 0; every process
        then waits for it) and forget it; returns the new path."""
        target = self.directory / f"{DAMAGED_PREFIX}{env_steps}"
        if jax.process_index() == 0:
            (self.directory / str(env_steps)).rename(target)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices(f"purejax_ad: checkpoint {env_steps} set aside")
        self.manager.reload()
        return target

    def restore_params(self, abstract_state: Any, env_steps: int) -> tuple:
        """Only the online parameters of a checkpoint, ``state.learner.params``; nothing else is read
        (orbax placeholders for every other leaf: the replay buffer stays on disk).

        Args:
          abstract_state: as :meth:`restore` (only its ``learner.params`` shapes and shardings are used).
          env_steps: the checkpoint's label.

        Raises:
          FileNotFoundError, ValueError (and orbax / tensorstore errors): no such checkpoint, or damaged.
        """
        target = _drop_empty(_abstract_key_data(abstract_state))
        params = target.learner.params
        skip = jax.tree.map(lambda _: ocp.PLACEHOLDER, target)
        item = skip._replace(learner=skip.learner._replace(params=params))
        args = jax.tree.map(lambda _: ocp.PLACEHOLDER, skip)
        args = args._replace(learner=args.learner._replace(params=jax.tree.map(
            lambda x: ocp.ArrayRestoreArgs(sharding=x.sharding), params)))
        restored = self.manager.restore(env_steps, args=ocp.args.Composite(
            state=ocp.args.PyTreeRestore(item=item, restore_args=args)))
        return _restore_empty(restored.state.learner.params, abstract_state.learner.params)

    def close(self) -> None:
        """Release the manager's resources."""
        self.manager.close()

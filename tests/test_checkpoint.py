"""Checkpoints (purejax_ad/checkpoint.py): a damaged newest checkpoint -- files truncated, parts deleted --
is skipped for the newest intact one, which restores exactly; damaged ones are moved aside; reading only
the parameters leaves the rest on disk. Damage is found by each checkpoint's file list, or, for checkpoints
without one, by the failed restore."""

from __future__ import annotations

import json
import os
import shutil
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purejax_ad.checkpoint import FILE_LIST, Checkpointer


class Learner(NamedTuple):
    params: tuple


class State(NamedTuple):
    """A stand-in for the train state: params, a large 'replay buffer', a typed key, a zero-size array."""

    learner: Learner
    buffer: jax.Array
    key: jax.Array
    empty: jax.Array


def state_at(step: int) -> State:
    return State(Learner(({"w": jnp.full((2, 3), float(step))}, {"w": jnp.arange(4.0) + step})),
                 jnp.arange(50_000.0) * step, jax.random.key(step), jnp.zeros((2, 0)))


ON_CPU = jax.sharding.SingleDeviceSharding(jax.devices()[0])
ABSTRACT = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=ON_CPU),
                        jax.eval_shape(lambda: state_at(0)))


def largest_file(path):
    return max((p for p in path.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


#: Ways a checkpoint gets damaged after it was written (a full disk, a partial copy, a cleanup gone wrong).
DAMAGE = {
    "state data truncated": lambda d: os.truncate(largest_file(d / "state"), largest_file(d / "state").stat().st_size // 2),
    "state deleted": lambda d: shutil.rmtree(d / "state"),
    "state metadata deleted": lambda d: os.remove(d / "state" / "_METADATA"),
    "state manifest deleted": lambda d: os.remove(d / "state" / "manifest.ocdbt"),
    "host record deleted": lambda d: shutil.rmtree(d / "host"),
    "host record truncated": lambda d: os.truncate(d / "host" / "metadata", 3),
    "only the empty directory left": lambda d: [shutil.rmtree(d), d.mkdir()],
}


def saved(tmp_path, steps=(100, 200, 300)) -> Checkpointer:
    checkpointer = Checkpointer(tmp_path, keep=5)
    for step in steps:
        checkpointer.save(step, state_at(step), {"env_steps": step})
    return checkpointer


def assert_state_is(state, step):
    want = state_at(step)
    np.testing.assert_array_equal(state.learner.params[0]["w"], want.learner.params[0]["w"])
    np.testing.assert_array_equal(state.buffer, want.buffer)
    np.testing.assert_array_equal(jax.random.key_data(state.key), jax.random.key_data(want.key))
    assert state.empty.shape == (2, 0)


def drop_file_lists(checkpointer):
    """Make the checkpoints look like ones written before file lists existed: only a restore finds damage."""
    for listing in checkpointer.directory.glob(f"*/{FILE_LIST}"):
        listing.unlink()


@pytest.mark.parametrize("file_list", [True, False], ids=["file list", "no file list"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path, damage, file_list):
    checkpointer = saved(tmp_path)
    if not file_list:
        drop_file_lists(checkpointer)
    DAMAGE[damage](checkpointer.directory / "300")
    step, state, host, has_replay, damaged = Checkpointer(tmp_path, keep=5).restore_newest_intact(ABSTRACT)
    assert step == 200 and host == {"env_steps": 200} and has_replay
    assert_state_is(state, 200)
    assert [d.step for d in damaged] == [300] and damaged[0].reason and "\n" not in damaged[0].reason
    # moved aside (not deleted), so a new checkpoint 300 can be written and read back
    names = sorted(p.name for p in checkpointer.directory.iterdir())
    assert names == ["100", "200", "damaged-300"]
    again = Checkpointer(tmp_path, keep=5)
    again.save(300, state_at(300), {"env_steps": 300})
    assert again.restore_newest_intact(ABSTRACT)[0] == 300


@pytest.mark.parametrize("file_list", [True, False], ids=["file list", "no file list"])
def test_the_host_record_is_read_from_the_newest_checkpoint_whose_record_reads(tmp_path, file_list):
    checkpointer = saved(tmp_path)
    if not file_list:
        drop_file_lists(checkpointer)
    DAMAGE["host record truncated"](checkpointer.directory / "300")
    step, host, damaged = Checkpointer(tmp_path).read_newest_intact_host()
    assert (step, host, [d.step for d in damaged]) == (200, {"env_steps": 200}, [300])
    # With the list the size mismatch names the file; without it, the JSON of the record fails to parse.
    assert ("host/metadata has 3 bytes" if file_list else "JSONDecodeError") in damaged[0].reason


def test_the_file_list_holds_every_file_with_its_size(tmp_path):
    checkpointer = saved(tmp_path, steps=(100,))
    root = checkpointer.directory / "100"
    listed = json.loads((root / FILE_LIST).read_text())
    on_disk = {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}
    assert listed == {name: size for name, size in on_disk.items() if name != FILE_LIST}
    assert any(name.startswith("state/") for name in listed) and any(name.startswith("host/") for name in listed)
    assert checkpointer.damage(100) is None
    (root / "state" / "_METADATA").unlink()
    assert checkpointer.damage(100) == "FileNotFoundError: state/_METADATA is missing"


def test_two_damaged_checkpoints_are_both_skipped(tmp_path):
    checkpointer = saved(tmp_path)
    DAMAGE["state deleted"](checkpointer.directory / "300")
    DAMAGE["state data truncated"](checkpointer.directory / "200")
    step, state, _, _, damaged = Checkpointer(tmp_path, keep=5).restore_newest_intact(ABSTRACT)
    assert step == 100 and [d.step for d in damaged] == [300, 200]
    assert_state_is(state, 100)


def test_no_intact_checkpoint_is_one_error_naming_each_and_moves_nothing(tmp_path):
    checkpointer = saved(tmp_path, steps=(100, 200))
    DAMAGE["state deleted"](checkpointer.directory / "200")
    DAMAGE["host record truncated"](checkpointer.directory / "100")
    with pytest.raises(FileNotFoundError) as error:
        Checkpointer(tmp_path).restore_newest_intact(ABSTRACT)
    message = str(error.value)
    assert "no intact checkpoint" in message and "200: " in message and "100: " in message
    assert sorted(p.name for p in checkpointer.directory.iterdir()) == ["100", "200"]


def test_restore_params_reads_only_the_parameters(tmp_path):
    checkpointer = saved(tmp_path)
    DAMAGE["state data truncated"](checkpointer.directory / "300")  # the buffer, the largest array: not read
    params = Checkpointer(tmp_path).restore_params(ABSTRACT, 300)
    jax.tree.map(np.testing.assert_array_equal, params, state_at(300).learner.params)
    with pytest.raises(Exception):  # while restoring the whole state reads the damaged buffer
        Checkpointer(tmp_path).restore(ABSTRACT, 300)

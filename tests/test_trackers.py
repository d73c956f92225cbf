"""TensorBoard and W&B trackers (purejax_ad.trackers): their scalars are the CSV rows, read back from the files
the libraries wrote with readers written here from the file formats (TFRecord of TensorBoard ``Event`` protos;
the W&B ``.wandb`` log of ``Record`` protos), not with the code that wrote them."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from _helpers import TINY
from purejax_ad import trackers
from purejax_ad.checks import validate
from purejax_ad.config import Config


def read_csv(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def tfrecords(path: Path):
    """Payloads of a TFRecord file: uint64 length, uint32 length CRC, data, uint32 data CRC (little endian)."""
    data, pos = path.read_bytes(), 0
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        yield data[pos + 12:pos + 12 + length]
        pos += 12 + length + 4


def tensorboard_scalars(run_dir: Path) -> dict:
    """``{(run label, tag, step): value}`` of every scalar under ``run_dir/tensorboard``; a later event file of
    a run overrides an earlier one (what TensorBoard shows after a resumed run purged its steps)."""
    from tensorboardX.proto.event_pb2 import Event

    out = {}
    for events in sorted((run_dir / "tensorboard").rglob("events.out.tfevents.*")):
        label = events.parent.relative_to(run_dir / "tensorboard").as_posix()
        for payload in tfrecords(events):
            event = Event.FromString(payload)
            for value in event.summary.value:
                out[(label, value.tag, event.step)] = value.simple_value
    return out


def wandb_history(run_dir: Path) -> list[dict]:
    """History rows of every offline W&B run under ``run_dir/wandb``: the ``.wandb`` file is a 7-byte header,
    then LevelDB-log records (CRC uint32, length uint16, type byte; 32 KiB blocks) holding ``Record`` protos."""
    from wandb.proto.wandb_internal_pb2 import Record

    rows = []
    for path in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        data, pos, buf = path.read_bytes(), 7, b""
        assert data[:4] == b":W&B"
        while pos + 7 <= len(data):
            if 32768 - pos % 32768 < 7:  # block trailer
                pos += 32768 - pos % 32768
                continue
            _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
            buf, pos = buf + data[pos + 7:pos + 7 + length], pos + 7 + length
            if kind in (1, 4):  # a full record, or the last fragment of one
                record = Record.FromString(buf)
                buf = b""
                if record.WhichOneof("record_type") == "history":
                    rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                 for item in record.history.item})
    return rows


def expected_scalars(run_dir: Path, num_seeds: int) -> dict:
    """``{(label, tag, step): value}`` recomputed from metrics.csv and eval.csv: every value of every seed, and
    per (tag, step) the mean over the seeds of the finite values."""
    out, by_tag = {}, {}
    for row in read_csv(run_dir / "metrics.csv"):
        for col in [c for c in row if c not in ("config", "seed", "env_steps")]:
            by_tag.setdefault((f"train/{col}", int(row["env_steps"])), {})[row["seed"]] = float(row[col])
    for row in read_csv(run_dir / "eval.csv"):
        by_tag.setdefault((f"eval/mean_return_layers_{row['layers']}", int(row["env_steps"])), {})[row["seed"]] = \
            float(row["mean_return"])
    for (tag, step), per_seed in by_tag.items():
        assert len(per_seed) == num_seeds
        out.update({(f"seed_{s}", tag, step): v for s, v in per_seed.items()})
        finite = [v for v in per_seed.values() if math.isfinite(v)]
        out[("mean", tag, step)] = float(np.mean(finite)) if finite else math.nan
    return out


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_scalars_of_a_hand_worked_chunk():
    rows = [{"config": 0, "seed": 0, "env_steps": 400, "episodic_return": 10.0, "epsilon": 0.5},
            {"config": 0, "seed": 1, "env_steps": 400, "episodic_return": math.nan, "epsilon": 0.5},
            {"config": 0, "seed": 2, "env_steps": 400, "episodic_return": 20.0, "epsilon": 0.25}]
    got = trackers.scalars(rows, "metrics", num_seeds=3)
    assert got["seed_1"]["train/epsilon"] == 0.5 and math.isnan(got["seed_1"]["train/episodic_return"])
    assert got["mean"] == {"train/episodic_return": 15.0, "train/epsilon": 1.25 / 3}  # NaN left out
    # A chunk of one seed wave (seeds 0 and 1 of 3) gets no mean; a sweep labels runs by config.
    assert "mean" not in trackers.scalars(rows[:2], "metrics", num_seeds=3)
    evals = [{"config": 1, "seed": s, "env_steps": 0, "layers": 2, "mean_return": 4.0 + s} for s in range(2)]
    assert trackers.scalars(evals, "eval", num_seeds=2, num_configs=2) == {
        "config_1/seed_0": {"eval/mean_return_layers_2": 4.0}, "config_1/seed_1": {"eval/mean_return_layers_2": 5.0},
        "config_1/mean": {"eval/mean_return_layers_2": 4.5}}


def test_a_tracker_whose_library_is_missing_is_a_config_problem(monkeypatch):
    real = trackers.importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name))
    problems = validate(dataclasses.replace(Config(), tensorboard=True, wandb="offline"))
    assert problems == ["--wandb offline needs the wandb package, which is not installed "
                        "(pip install 'purejax_ad[wandb]')"]
    assert validate(dataclasses.replace(Config(), wandb="sometimes"))[0].startswith("wandb must be 'off', 'offline'")


@pytest.fixture
def offline_env(tmp_path):
    """A subprocess environment with W&B offline and its config and cache directories inside ``tmp_path``."""
    env = dict(os.environ, WANDB_MODE="offline", WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"),
               WANDB_CACHE_DIR=str(tmp_path / "wandb-cache"), WANDB_DATA_DIR=str(tmp_path / "wandb-data"))
    env.pop("WANDB_API_KEY", None)
    return env


def train(env, *args):
    return subprocess.run([sys.executable, "-m", "purejax_ad.train", *args], capture_output=True, text=True,
                          timeout=600, env=env)


def test_tensorboard_and_wandb_scalars_equal_the_csv_rows_across_a_resume(tmp_path, offline_env):
    """W&B offline from the start, stopped at env step 800 and resumed with TensorBoard turned on: the W&B run
    (two offline segments) and the event files (the resumed process logs the checkpoint's rows first) hold
    exactly the rows of metrics.csv and eval.csv, and the mean over the 2 seeds."""
    out = tmp_path / "run"
    first = train(offline_env, *TINY, "--checkpoint-interval", "800", "--wandb", "offline", "--stop-after-steps",
                  "800", "--out", str(out))
    assert first.returncode == 3, first.stderr
    assert not (out / "tensorboard").exists()
    second = train(offline_env, "--resume", str(out), "--tensorboard", "true")
    assert second.returncode == 0, second.stderr
    expected = expected_scalars(out, num_seeds=2)
    assert max(step for *_, step in expected) == 1200

    tb = tensorboard_scalars(out)
    assert set(tb) == set(expected)
    assert all(same(tb[k], float(np.float32(v))) for k, v in expected.items())  # simple_value is float32

    history = wandb_history(out)
    assert len(list((out / "wandb").glob("offline-run-*"))) == 2  # one W&B run id, two offline segments
    logged = {(k, row["env_steps"]): v for row in history for k, v in row.items()
              if not k.startswith("_") and k != "env_steps"}
    assert set(logged) == {(f"{label}/{tag}", step) for label, tag, step in expected}
    assert all(same(logged[(f"{label}/{tag}", step)], v) for (label, tag, step), v in expected.items())
    assert json.loads((out / "config.json").read_text())["wandb"] == "offline"


def test_wandb_online_without_a_login_is_one_error_line_and_leaves_no_run_directory(tmp_path, offline_env):
    env = dict(offline_env, WANDB_MODE="online", NETRC=str(tmp_path / "no-netrc"), HOME=str(tmp_path))
    out = tmp_path / "run"
    result = train(env, *TINY, "--num-seeds", "1", "--wandb", "online", "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: --wandb online: wandb could not start a run: ")
    assert not out.exists()

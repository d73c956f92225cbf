"""Multi-host for real, on one machine: two processes joined by ``jax.distributed`` (coordinator on
127.0.0.1, gloo collectives on CPU), each with 2 forced CPU devices, train 3 seeds (padded to 4) sharded
over the 4 devices of both -- stopped by ``--stop-after-steps``, checkpointed collectively, resumed -- and
must write exactly the files of one process with 4 forced CPU devices, bit for bit.

Why bit for bit (the single-host test, ``test_run_control.py``, holds ε at 1 to compare 1 device with 4):
here both sides run 1 seed per device, so every device executes the same compiled per-device program;
only the placement of the devices in processes differs. Real multi-node networking is not tested.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys

import pytest
from _helpers import TINY

from purejax_ad.distributed import DistributedError, initialize_args, requested

# Chunks of 400 env steps after a 400-step warm-up: rows at 800, 1200, 1600; evaluations at 0, 800, 1600.
RUN = [*TINY, "--num-seeds", "3", "--total-timesteps", "1600", "--checkpoint-interval", "0"]
# The same (cheaper to compile) XLA options on both sides; compilation dominates this test's time.
FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false"
OUTPUTS = ("config.json", "metrics.csv", "eval.csv", "summary.json", "learning_curve.png")
TIMEOUT_S = 300

# Runs the CLI like ``python -m purejax_ad.train ARGS`` and logs every file the process opens for writing,
# creates or renames into under OUT, outside OUT/checkpoints (Python audit hooks; the checkpoint's array
# shards are written by every process, from C++).
WATCHED_CLI = r"""
import os, runpy, sys
out, log = os.path.realpath(sys.argv[1]), open(sys.argv[2], "w")
def hook(event, args):
    if event == "open" and (args[1] is None or not set("wax+") & set(args[1])):
        flags = args[2] if args[1] is None else 0
        if not flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            return
    elif event not in ("open", "os.mkdir", "os.rename", "os.replace"):
        return
    for path in args[:2] if event.startswith("os.re") else args[:1]:
        if isinstance(path, (str, bytes, os.PathLike)) and not isinstance(path, int):
            path = os.path.realpath(os.fsdecode(path))
            if path.startswith(out) and not path.startswith(os.path.join(out, "checkpoints")):
                log.write(f"{event} {os.path.relpath(path, out)}\n")
                log.flush()
sys.addaudithook(hook)
sys.argv = ["purejax_ad.train", *sys.argv[3:]]
runpy.run_module("purejax_ad.train", run_name="__main__", alter_sys=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, devices: int, log_dir=None, **env):
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices} {FAST_COMPILE}", **env}
    if log_dir is None:
        cmd = [sys.executable, "-m", "purejax_ad.train", *args]
    else:
        out = args[args.index("--out") + 1] if "--out" in args else args[args.index("--resume") + 1]
        cmd = [sys.executable, "-c", WATCHED_CLI, out, str(log_dir / f"writes{env['JAX_PROCESS_ID']}.log"), *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def start_two_processes(args, log_dir, cache_dir):
    """Process 0 writes its executables to a persistent compilation cache, which the resumed run reads."""
    env = dict(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{free_port()}", JAX_NUM_PROCESSES="2",
               JAX_COMPILATION_CACHE_DIR=str(cache_dir), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    return [start(args, 2, log_dir, **env, JAX_PROCESS_ID=str(i)) for i in range(2)]


def finish(procs):
    """Wait for every process (a hang fails the test after TIMEOUT_S); ``[(returncode, stdout, stderr)]``."""
    results = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
            results.append((proc.returncode, stdout, stderr))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return results


def writes(log_dir, pid) -> set[str]:
    return {line.split(" ", 1)[1] for line in (log_dir / f"writes{pid}.log").read_text().splitlines()}


def test_two_processes_match_one_process_through_a_collective_checkpoint(tmp_path):
    ref, out, logs = tmp_path / "one_process", tmp_path / "two_processes", tmp_path / "logs"
    logs.mkdir()
    # The reference (1 process, 4 devices) and the first half of the 2-process run go side by side.
    reference = start([*RUN, "--out", str(ref)], 4)
    first = start_two_processes([*RUN, "--out", str(out), "--distributed", "true", "--stop-after-steps", "800"], logs,
                                tmp_path / "cache")
    (ref_rc, _, ref_err), *first_results = finish([reference, *first])
    assert ref_rc == 0, ref_err[-3000:]
    for pid, (rc, _, stderr) in enumerate(first_results):
        assert rc == 3, f"process {pid}: {stderr[-3000:]}"  # stopped early, resumable
    partial = json.loads((out / "summary.json").read_text())
    assert partial["stop_reason"] == "stop_after_steps" and partial["last_checkpoint"] == 800
    assert partial["device"] == "cpu x4"
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.isdigit()) == ["800"]
    assert writes(logs, 1) == set(), "process 1 wrote run outputs"
    assert {"metrics.csv", "eval.csv", "summary.json", "config.json"} <= writes(logs, 0)

    # Resume on 2 processes from the collective checkpoint; --distributed comes from the stored config.
    second = finish(start_two_processes(["--resume", str(out)], logs, tmp_path / "cache"))
    for pid, (rc, _, stderr) in enumerate(second):
        assert rc == 0, f"process {pid}: {stderr[-3000:]}"
    assert writes(logs, 1) == set(), "process 1 wrote run outputs"
    assert {"metrics.csv", "eval.csv", "summary.json", "learning_curve.png"} <= writes(logs, 0)

    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [(r["seed"], r["env_steps"]) for r in rows] == [(str(s), str(t)) for t in (800, 1200, 1600) for s in range(3)]
    # Every metric and evaluation row of every seed, to the last printed bit.
    assert (out / "metrics.csv").read_text() == (ref / "metrics.csv").read_text()
    assert (out / "eval.csv").read_text() == (ref / "eval.csv").read_text()
    done, whole = (json.loads((d / "summary.json").read_text()) for d in (out, ref))
    assert done["complete"] and done["resumed_at"] == [800] and done["device"] == whole["device"] == "cpu x4"
    assert done["final_return_per_seed"] == whole["final_return_per_seed"]
    assert done["final_eval_per_layer"] == whole["final_eval_per_layer"]
    assert len(set(done["final_return_per_seed"])) > 1  # the seeds differ from each other


def test_launch_environment_and_flag_parsing(tmp_path):
    assert initialize_args({}) == {}
    env = {"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1234", "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"}
    assert initialize_args(env) == {"num_processes": 2, "process_id": 1}
    for bad, message in [({"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "0"}, "but not JAX_COORDINATOR_ADDRESS"),
                         ({**env, "JAX_PROCESS_ID": "2"}, "must be in 0 .. 1"),
                         ({**env, "JAX_NUM_PROCESSES": "two"}, "must be integers")]:
        with pytest.raises(DistributedError, match=message):
            initialize_args(bad)
    assert requested(["--distributed", "true"]) and requested(["--distributed", "True"])
    assert not requested(["--distributed", "false"]) and not requested(["--num-seeds", "2"])
    (tmp_path / "config.json").write_text(json.dumps({"distributed": True}))
    assert requested(["--resume", str(tmp_path)]) and not requested(["--resume", str(tmp_path), "--distributed", "false"])
    assert not requested(["--resume", str(tmp_path / "missing")])

"""purejax_ad/cpu_cores.py and sharding.default_num_devices: the command line gives XLA one CPU device per core
(unless XLA_FLAGS names a count), and a CPU run uses at most as many devices as it has runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from purejax_ad.cpu_cores import FLAG, available_cores, use_cpu_cores

from _helpers import TINY


def test_use_cpu_cores_adds_the_count_and_keeps_other_flags():
    environ = {}
    assert use_cpu_cores(environ, cores=3) == 3
    assert environ["XLA_FLAGS"] == f"{FLAG}=3"
    environ = {"XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}
    assert use_cpu_cores(environ, cores=2) == 2
    assert environ["XLA_FLAGS"] == f"--xla_cpu_enable_fast_math=false {FLAG}=2"


def test_use_cpu_cores_keeps_a_count_already_given():
    environ = {"XLA_FLAGS": f"{FLAG}=1 --xla_cpu_enable_fast_math=false"}
    assert use_cpu_cores(environ, cores=8) is None
    assert environ["XLA_FLAGS"] == f"{FLAG}=1 --xla_cpu_enable_fast_math=false"
    assert use_cpu_cores({}) == available_cores() >= 1


DEFAULTS_ON_4_DEVICES = """
import sys
from purejax_ad.cpu_cores import use_cpu_cores
if sys.argv[1] == "auto":
    use_cpu_cores(cores=4)
import jax
from purejax_ad.sharding import default_num_devices
assert jax.device_count() == 4
print([default_num_devices(None, 1), default_num_devices(None, 3), default_num_devices(None, 4),
       default_num_devices(None, 9), default_num_devices(2, 1), default_num_devices(4, 9)])
"""


def _defaults_on_4_devices(mode: str, environ: dict) -> list:
    proc = subprocess.run([sys.executable, "-c", DEFAULTS_ON_4_DEVICES, mode], capture_output=True, text=True,
                          env=environ, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1].replace("None", "null"))


def test_a_cpu_run_uses_at_most_one_device_per_run():
    """4 automatic CPU devices: 1 or 3 runs take 1 or 3 devices (no padding runs on idle cores); 4 or more runs
    take every device (None); an explicit --num-devices is kept. 4 devices forced by the user's XLA_FLAGS: every
    device, as on a GPU."""
    unset = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    assert _defaults_on_4_devices("auto", unset) == [1, 3, None, None, 2, 4]
    forced = {**os.environ, "XLA_FLAGS": f"{FLAG}=4"}
    assert _defaults_on_4_devices("forced", forced) == [None, None, None, None, 2, 4]


def test_the_command_line_spreads_the_seeds_over_the_cores(tmp_path):
    """``python -m purejax_ad.train`` without XLA_FLAGS: 3 seeds over min(cores, 3) CPU devices, recorded in
    summary.json, and ``python -m purejax_ad.evaluate`` reproduces the final evaluation on the same devices."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "purejax_ad.train", *TINY, "--num-seeds", "3", "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = min(available_cores(), 3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_devices"] == expected and summary["device"].endswith(f"x{expected}")
    assert f"on {expected} device(s)" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "purejax_ad.evaluate", str(out)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((out / "evaluate-final.json").read_text())
    assert [m["mean"] for m in evaluated["mean_per_layer"]] == summary["final_eval_per_layer"]

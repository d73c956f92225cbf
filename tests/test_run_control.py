"""Long runs that survive: checkpoint/resume bit-identity, interruption by signal, numerical faults (NaN/Inf
and implausible values), reuse of a run directory, and seeds sharded over several (forced CPU) devices. Every
test drives the real CLI."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from _helpers import TINY, run_cli

# Checkpoints every 800 env steps; 2000 steps in chunks of 400 after a 400-step warm-up.
RUN = [*TINY, "--total-timesteps", "2000", "--checkpoint-interval", "800"]


def read_csv(path):
    return list(csv.DictReader(path.open()))


def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert run_cli(*RUN, "--out", str(whole)).returncode == 0
    first = run_cli(*RUN, "--out", str(split), "--stop-after-steps", "1200")
    assert first.returncode == 3, first.stderr
    assert f"--resume {split}" in first.stderr
    partial = json.loads((split / "summary.json").read_text())
    assert partial["complete"] is False and partial["stop_reason"] == "stop_after_steps"
    assert partial["total_timesteps"] == 1200 and partial["last_checkpoint"] == 1200
    assert max(int(r["env_steps"]) for r in read_csv(split / "metrics.csv")) == 1200
    second = run_cli("--resume", str(split))
    assert second.returncode == 0, second.stderr
    # Every metric and evaluation row, to the last bit of the printed floats.
    assert (split / "metrics.csv").read_text() == (whole / "metrics.csv").read_text()
    assert (split / "eval.csv").read_text() == (whole / "eval.csv").read_text()
    done = json.loads((split / "summary.json").read_text())
    assert done["complete"] is True and done["resumed_at"] == [1200]
    assert done["final_return_per_seed"] == json.loads((whole / "summary.json").read_text())["final_return_per_seed"]
    # Checkpoints at 800, 1200 (the stop), 1600 and the end (2000); only the newest `keep_checkpoints` (2) are kept.
    assert sorted(int(p.name) for p in (split / "checkpoints").iterdir() if p.name.isdigit()) == [1600, 2000]
    again = run_cli("--resume", str(split))
    assert again.returncode == 2 and "already complete" in again.stderr


def test_resume_refuses_to_change_the_config(tmp_path):
    out = tmp_path / "run"
    assert run_cli(*RUN, "--out", str(out), "--stop-after-steps", "800").returncode == 3
    proc = run_cli("--resume", str(out), "--learning-rate", "0.5")
    assert proc.returncode == 2 and "cannot change learning_rate" in proc.stderr


def test_resume_without_replay_in_the_checkpoint_continues(tmp_path):
    out = tmp_path / "lite"
    assert run_cli(*RUN, "--out", str(out), "--stop-after-steps", "800", "--checkpoint-replay", "false").returncode == 3
    proc = run_cli("--resume", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["total_timesteps"] == 2000
    steps = [int(r["env_steps"]) for r in read_csv(out / "metrics.csv")]
    assert steps == sorted(steps) and steps[-1] == 2000 and len(steps) == 2 * 4


def test_sigint_finishes_the_chunk_checkpoints_and_exits_resumable(tmp_path):
    out = tmp_path / "sig"
    # Long enough that the signal arrives mid-run; chunks of 400 env steps.
    args = [*TINY, "--total-timesteps", "400000", "--checkpoint-interval", "0", "--eval-interval", "0"]
    proc = subprocess.Popen([sys.executable, "-m", "purejax_ad.train", *args, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not ((out / "metrics.csv").exists() and len(read_csv(out / "metrics.csv")) >= 2):  # one chunk done
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 3, stderr
    assert "SIGINT" in stderr and f"--resume {out}" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False and summary["stop_reason"] == "SIGINT"
    assert summary["last_checkpoint"] == summary["total_timesteps"] < 400000
    rows = read_csv(out / "metrics.csv")
    assert max(int(r["env_steps"]) for r in rows) == summary["total_timesteps"]
    assert (out / "learning_curve.png").stat().st_size > 0


def test_nan_stops_with_seed_layer_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "nan"
    # Seed 1's layer 1 becomes NaN after the chunk ending at 1200; the chunk ending at 1600 detects it.
    proc = run_cli(*RUN, "--out", str(out), "--inject-nan", "1", "1200")
    assert proc.returncode == 4, proc.stderr
    line = [x for x in proc.stderr.splitlines() if x.startswith("error:")][0]
    assert "seed 1, layer(s) 1" in line and "env step 1600" in line and "checkpoint is at env step 800" in line
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "nonfinite" and summary["diverged_seeds"][0]["seed"] == 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir() if p.name.isdigit()) == ["800"]


def test_nan_with_drop_seed_finishes_the_other_seeds_unchanged(tmp_path):
    clean, dropped = tmp_path / "clean", tmp_path / "dropped"
    assert run_cli(*RUN, "--out", str(clean)).returncode == 0
    proc = run_cli(*RUN, "--out", str(dropped), "--inject-nan", "1", "1200", "--on-nonfinite", "drop-seed")
    assert proc.returncode == 0, proc.stderr
    assert "seed 1 dropped" in proc.stderr
    summary = json.loads((dropped / "summary.json").read_text())
    reference = json.loads((clean / "summary.json").read_text())
    assert summary["complete"] and [d["seed"] for d in summary["diverged_seeds"]] == [1]
    assert summary["final_return_per_seed"] == [reference["final_return_per_seed"][0], None]
    assert summary["final_return_mean"] == reference["final_return_per_seed"][0]
    seed0 = [r for r in read_csv(dropped / "metrics.csv") if r["seed"] == "0"]
    assert seed0 == [r for r in read_csv(clean / "metrics.csv") if r["seed"] == "0"]


FORCED_4 = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}

ONE_UPDATE_ON_1_AND_4_DEVICES = """
import jax, numpy as np
from purejax_ad.presets import preset_config
from purejax_ad.envs import make_env
from purejax_ad.run import per_device_vmap, seed_keys, seed_sharding
from purejax_ad.program import make_program as make_train
config = preset_config("classic-fast", num_seeds=4, total_timesteps=1200, learning_starts=400, batch_size=16,
                       net_arch=(8, 8), num_heads=2, context_size=3)
trainer = make_train(config, make_env(config.env))
assert jax.device_count() == 4
def one_update(n):
    sharding = seed_sharding(n)
    run = lambda fn, x: jax.jit(per_device_vmap(fn, sharding, 1))(x)
    state = run(trainer.warmup, run(trainer.init, jax.device_put(seed_keys(config), sharding)))
    q = run(lambda s: trainer.network.step(s.learner.params, s.actor.obs, s.actor.context)[0], state)
    after, metrics = run(trainer.learn, state)
    return jax.tree.map(np.asarray, (state.buffer_state, q, metrics, after.learner))
one, four = one_update(1), one_update(4)
jax.tree.map(np.testing.assert_array_equal, one[:3], four[:3])
jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), one[3], four[3])
print("ok")
"""


def test_four_forced_cpu_devices_match_one_device_in_one_update():
    """4 devices vs 1 (same process, same XLA flags): identical replay contents, forward pass and losses;
    the updated parameters and optimiser states agree to float rounding (the 4-device CPU program rounds
    a few values 1 ulp differently)."""
    proc = subprocess.run([sys.executable, "-c", ONE_UPDATE_ON_1_AND_4_DEVICES], capture_output=True, text=True,
                          env=FORCED_4, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_four_forced_cpu_devices_run_the_same_seeds_as_one_device(tmp_path):
    """The CLI on 4 devices (3 seeds padded to 4) vs 1 device. With epsilon held at 1 the actions do not
    depend on the Q-values, so every seed's env stream must be identical: episode counts and returns
    exactly. (Losses start equal to float rounding, but training amplifies 1-ulp differences, so runs on
    different device counts agree in distribution, not bit for bit.)"""
    args = [*TINY, "--num-seeds", "3", "--total-timesteps", "1200", "--eval-interval", "0", "--checkpoint-interval", "0",
            "--epsilon-end", "1.0"]
    results = {}
    for n in (1, 4):
        out = tmp_path / f"dev{n}"
        proc = subprocess.run([sys.executable, "-m", "purejax_ad.train", *args, "--num-devices", str(n),
                               "--out", str(out)], capture_output=True, text=True, env=FORCED_4, timeout=600)
        assert proc.returncode == 0, proc.stderr
        assert json.loads((out / "summary.json").read_text())["device"].endswith(f"x{n}")
        results[n] = read_csv(out / "metrics.csv")
    assert "3 seeds padded to 4 for 4 devices" in proc.stderr
    env_side = {n: [(r["seed"], r["env_steps"], r["num_episodes"], r["episodic_return"]) for r in rows]
                for n, rows in results.items()}
    assert env_side[1] == env_side[4]
    assert len({r[3] for r in env_side[1]}) > 1  # the seeds differ from each other
    assert all(np.isfinite(float(r["td_loss_l1"])) for r in results[4])


# Seed waves: 4 seeds in 2 waves of 2, with the chunk loop of one compiled program for both.
WAVES = [*TINY, "--num-seeds", "4", "--total-timesteps", "1600", "--checkpoint-interval", "0"]


def test_seed_waves_give_the_single_wave_outputs_and_resume_mid_wave(tmp_path):
    """4 seeds in waves of 2 write exactly the files of one wave of 4 (each seed's metrics are its own, and
    the files are put back in single-wave order at the end), also when stopped inside each wave and resumed."""
    single, waves = tmp_path / "single", tmp_path / "waves"
    assert run_cli(*WAVES, "--out", str(single)).returncode == 0
    first = run_cli(*WAVES, "--seeds-per-wave", "2", "--out", str(waves), "--stop-after-steps", "800")
    assert first.returncode == 3, first.stderr  # inside wave 0
    assert "2 waves of 2 runs" in first.stderr
    partial = read_csv(waves / "metrics.csv")
    assert {r["seed"] for r in partial} == {"0", "1"} and max(int(r["env_steps"]) for r in partial) == 800
    second = run_cli("--resume", str(waves), "--stop-after-steps", "2400")  # counted over waves: 1600 + 800
    assert second.returncode == 3, second.stderr  # wave 0 finished, stopped inside wave 1
    assert json.loads((waves / "summary.json").read_text())["waves"]["completed"] == 1
    third = run_cli("--resume", str(waves))
    assert third.returncode == 0, third.stderr
    for name in ("metrics.csv", "eval.csv"):
        assert (waves / name).read_text() == (single / name).read_text(), name
    done, whole = (json.loads((d / "summary.json").read_text()) for d in (waves, single))
    assert done["final_return_per_seed"] == whole["final_return_per_seed"]
    assert done["final_eval_per_layer"] == whole["final_eval_per_layer"]
    assert done["waves"] == {"runs_per_wave": 2, "num_waves": 2, "completed": 2}
    assert done["resumed_at"] == [800, 800]  # env steps inside the wave it was resumed in
    from purejax_ad.trained import read_params_file

    for seed in range(4):  # every seed's final parameters are written at the end of its wave, as in one wave
        got, want = (read_params_file(d / "params" / f"seed_{seed}.msgpack") for d in (waves, single))
        assert (got["wave"], got["wave_size"], want["wave"], want["wave_size"]) == (seed // 2, 2, 0, 4)
        for g, w in zip(*(jax.tree.leaves(e["params"]) for e in (got, want))):
            np.testing.assert_array_equal(g, w)


def test_auto_waves_fit_a_memory_budget(tmp_path):
    """--seeds-per-wave auto under a budget that holds a few seeds' state: the dry run plans several waves;
    a budget too small for one seed is refused."""
    proc = run_cli(*WAVES, "--num-seeds", "6", "--seeds-per-wave", "auto", "--memory-budget-gb", "0.0002", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    waves = re.search(r"(\d+) runs per device at once, (\d+) wave\(s\)", proc.stdout)
    assert waves and 1 <= int(waves[1]) < 6 and int(waves[2]) == -(-6 // int(waves[1])), proc.stdout
    assert "verdict: fits" in proc.stdout
    proc = run_cli(*WAVES, "--seeds-per-wave", "auto", "--memory-budget-gb", "0.00001", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "does not fit" in proc.stderr and not (tmp_path / "x").exists()


# --- The final checkpoint and parameters; damaged checkpoints ----------------------------------------------


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The run dir of RUN without interruption (checkpoints every 800 env steps, 2000 steps)."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    proc = run_cli(*RUN, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def test_a_finished_run_holds_its_final_checkpoint_and_parameters(uninterrupted, tmp_path):
    import jax

    from purejax_ad.checkpoint import Checkpointer
    from purejax_ad.cli import load_run_config
    from purejax_ad.envs import make_config_env
    from purejax_ad.program import make_program
    from purejax_ad.seeds import run_hyperparams, run_keys
    from purejax_ad.trained import read_params_file

    out = uninterrupted
    assert sorted(int(p.name) for p in (out / "checkpoints").iterdir()) == [1600, 2000]  # 2000: the end
    assert json.loads((out / "summary.json").read_text())["last_checkpoint"] == 2000
    reader = Checkpointer(out)
    host = reader.read_host(2000)
    assert host["env_steps"] == 2000
    assert [{k: str(v) for k, v in row.items()} for row in host["eval_rows"]] == read_csv(out / "eval.csv")
    config = load_run_config(out)
    program = make_program(config, make_config_env(config))
    abstract = jax.eval_shape(jax.vmap(program.init), run_keys(config, 2), run_hyperparams(config, 2))
    final = reader.restore_params(abstract, 2000)
    reader.close()
    evals = sorted({int(r["env_steps"]) for r in read_csv(out / "eval.csv")})  # 0, 800, 1600, 2000
    for seed in (0, 1):
        entry = read_params_file(out / "params" / f"seed_{seed}.msgpack")
        assert (entry["seed"], entry["env_steps"], entry["eval_index"]) == (seed, 2000, len(evals) - 1)
        assert entry["config"]["net_arch"] == [8, 8] and "buffer_state" not in entry
        stored = jax.tree.leaves(entry["params"])
        assert len(stored) == len(jax.tree.leaves(final)) > 0
        for got, want in zip(stored, jax.tree.leaves(jax.tree.map(lambda x: np.asarray(x)[seed], final))):
            np.testing.assert_array_equal(got, want)
    # A crash after the final checkpoint, before summary.json: --resume finishes without training again.
    crashed = tmp_path / "crashed"
    shutil.copytree(out, crashed)
    (crashed / "summary.json").unlink()
    proc = run_cli("--resume", str(crashed))
    assert proc.returncode == 0, proc.stderr
    for name in ("metrics.csv", "eval.csv"):
        assert (crashed / name).read_text() == (out / name).read_text(), name
    assert json.loads((crashed / "summary.json").read_text())["complete"] is True


def test_resume_falls_back_from_a_truncated_newest_checkpoint(uninterrupted, tmp_path):
    out = tmp_path / "split"
    assert run_cli(*RUN, "--out", str(out), "--stop-after-steps", "1200").returncode == 3  # checkpoints 800, 1200
    data = max((p for p in (out / "checkpoints" / "1200" / "state").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
    os.truncate(data, data.stat().st_size // 2)
    proc = run_cli("--resume", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "checkpoint 1200 is damaged" in proc.stderr and "resuming from checkpoint 800" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (out / "checkpoints" / "damaged-1200").is_dir()
    # From the older checkpoint the run is still the uninterrupted one, to the bit.
    for name in ("metrics.csv", "eval.csv"):
        assert (out / name).read_text() == (uninterrupted / name).read_text(), name


def test_resume_without_an_intact_checkpoint_is_one_error_line(tmp_path):
    out = tmp_path / "broken"
    assert run_cli(*RUN, "--out", str(out), "--stop-after-steps", "800").returncode == 3  # checkpoint 800 only
    shutil.rmtree(out / "checkpoints" / "800" / "host")  # partly deleted
    proc = run_cli("--resume", str(out))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: --resume {out}: no intact checkpoint (800: "), lines


def strict_json(path):
    """``path`` parsed as strict JSON: a bare ``NaN`` / ``Infinity`` fails the test."""
    def refuse(constant):
        raise AssertionError(f"{path} holds the non-JSON constant {constant}")
    return json.loads(path.read_text(), parse_constant=refuse)


# MountainCar with 8 envs per seed: 150 env steps per env in 1200, no episode ends (the time limit is 200), so every
# training return is NaN; a learning rate of 1e3 drives the values far out: losses ~1e7 (Q-values are bounded
# by 1/(1 - 0.99) = 100 here).
DIVERGING = [*TINY, "--env", "MountainCar-v0", "--num-envs", "8", "--train-frequency", "8", "--learning-rate", "1e3",
             "--checkpoint-interval", "0"]


def check_diverging_run(out, procs, snapshots):
    """Item 12: one warning per (seed, layer) at most, exactly at the first row beyond the limits recomputed
    here; item 13: strict JSON with null for the NaN statistics; item 10: the directory was reused."""
    (proc,) = procs
    summary = strict_json(out / "summary.json")
    assert summary["complete"] and summary["final_return_mean"] is None and summary["final_return_se"] is None
    assert summary["final_return_per_seed"] == [None, None]
    assert json.loads((out / "config.json").read_text())["learning_rate"] == 1e3  # the new run's config
    rows = read_csv(out / "metrics.csv")
    q_limit = 10 * 1.0 / (1 - 0.99)  # r_max 1 per step, gamma 0.99
    expected = set()
    for seed in ("0", "1"):
        for layer in (1, 2):
            out_of_range = [int(r["env_steps"]) for r in rows if r["seed"] == seed and
                            (abs(float(r[f"q_mean_l{layer}"])) > q_limit or float(r[f"td_loss_l{layer}"]) > q_limit**2)]
            if out_of_range:
                expected.add((int(seed), layer, out_of_range[0]))
    got = {(w["seed"], w["layer"], w["env_steps"]) for w in summary["warnings"]}
    assert got == expected and len(summary["warnings"]) == len(got) > 0
    lines = [x for x in proc.stderr.splitlines() if x.startswith("warning:")]
    assert sorted(lines) == sorted(f"warning: {w['message']}" for w in summary["warnings"])


def check_fresh_start(out, procs, snapshots):
    """Item 10: a run stopped before its first checkpoint is refused as a new run's directory but resumed from
    scratch with its stored config (the injected NaN is a one-shot flag): the rows it had computed come again."""
    stopped, refused, fresh = procs
    assert "no checkpoint was written" in stopped.stderr
    first = snapshots[0]
    assert snapshots[1] == first  # the refused run left the files alone
    summary = strict_json(out / "summary.json")
    assert summary["complete"] and summary["diverged_seeds"] == [] and summary["resumed_at"] == []
    rows = read_csv(out / "metrics.csv")
    before_fault = [r for r in first if r["seed"] == "0" or r["env_steps"] == "800"]  # seed 1 poisoned after 800
    assert before_fault and [r for r in rows if r in before_fault] == before_fault
    assert max(int(r["env_steps"]) for r in rows) == 2000


RUN_CONTROL = {
    # name: (reuse a directory whose run computed nothing, [(args, exit status, stderr fragment)], check)
    "diverging_run_in_a_reused_directory": (True, [(DIVERGING, 0, "stopped before computing anything")],
                                            check_diverging_run),
    "resume_before_the_first_checkpoint_starts_afresh": (False, [
        ([*RUN, "--checkpoint-interval", "0", "--inject-nan", "1", "800"], 4, "non-finite"),
        (RUN, 2, "stopped before its first checkpoint; --resume"),
        (["--resume"], 0, "no checkpoint yet; starting it afresh"),
    ], check_fresh_start),
}


@pytest.mark.parametrize("case", RUN_CONTROL)
def test_run_control_table(tmp_path, case):
    reuse, steps, check = RUN_CONTROL[case]
    out = tmp_path / "run"
    if reuse:  # what a run leaves when it fails before its first chunk (e.g. in compilation)
        out.mkdir()
        (out / "config.json").write_text("{}")
        (out / "metrics.csv").write_text("config,seed,env_steps\n")
    procs, snapshots = [], []
    for args, status, fragment in steps:
        where = [str(out)] if args == ["--resume"] else ["--out", str(out)]
        proc = run_cli(*args, *where)
        assert proc.returncode == status and fragment in proc.stderr, proc.stderr[-3000:]
        procs.append(proc)
        snapshots.append(read_csv(out / "metrics.csv"))
    check(out, procs, snapshots)

"""The thin host loop: compile once, run compiled chunks, log, evaluate, write outputs as it goes.

Seeds are ``jax.vmap``-ed; every compiled function takes the seed-stacked state and donates it.
Seed ``i`` uses ``fold_in(PRNGKey(config.seed), i)``, so a seed's result does not depend on how
many seeds run beside it.
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from purejax_ad.config import Config, check
from purejax_ad.envs import make_env
from purejax_ad.outputs import RunWriter, config_record, mean_and_se, plot_learning_curve
from purejax_ad.trainer import make_train


def default_out_dir(config: Config) -> Path:
    """``runs/<env>-<algo>-<timestamp>/``."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{config.env.replace('/', '_')}-{config.algo}-{stamp}"


def seed_keys(config: Config) -> jax.Array:
    """``[num_seeds]`` keys, ``fold_in(PRNGKey(seed), i)`` for global seed index ``i``."""
    base = jax.random.key(config.seed)
    return jax.vmap(lambda i: jax.random.fold_in(base, i))(np.arange(config.num_seeds))


def eval_due(config: Config, prev_steps: int, steps: int) -> bool:
    """Whether an ``eval_interval`` boundary lies in ``(prev_steps, steps]``."""
    if config.eval_interval <= 0:
        return False
    return steps // config.eval_interval > prev_steps // config.eval_interval


def run(config: Config, progress: bool = True) -> dict:
    """Train ``config.num_seeds`` seeds of ``config`` and write every output; returns the summary.

    Raises:
      purejax_ad.config.ConfigError: invalid config (before anything is compiled or written).
      FileExistsError: the output directory already holds files.
    """
    check(config)
    out = Path(config.out) if config.out else default_out_dir(config)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"output directory {out} is not empty; choose another --out")
    env = make_env(config.env, config.sticky_action_prob, config.minatar_time_limit)
    trainer = make_train(config, env)
    L = trainer.network.num_layers
    writer = RunWriter(out, L)
    writer.write_json("config.json", config_record(config))
    keys = seed_keys(config)
    eval_base = jax.vmap(lambda k: jax.random.fold_in(k, 0x5EED))(keys)

    t0 = time.perf_counter()
    state_shape = jax.eval_shape(jax.vmap(trainer.init), keys)
    init = jax.jit(jax.vmap(trainer.init)).lower(keys).compile()
    warmup = jax.jit(jax.vmap(trainer.warmup), donate_argnums=0).lower(state_shape).compile()
    chunk = jax.jit(jax.vmap(trainer.train_chunk), donate_argnums=0).lower(state_shape).compile()
    evaluate = jax.jit(jax.vmap(trainer.evaluate)).lower(state_shape, eval_base).compile()
    compile_s = time.perf_counter() - t0

    n_evals = 0
    eval_rows, metric_rows = [], []
    eval_s = 0.0

    def do_eval(state, steps):
        nonlocal n_evals, eval_s
        t = time.perf_counter()
        ek = jax.vmap(lambda k: jax.random.fold_in(k, n_evals))(eval_base)
        returns = np.asarray(evaluate(state, ek))
        n_evals += 1
        eval_s += time.perf_counter() - t
        eval_rows.extend(writer.write_eval(steps, returns))
        return returns

    state = init(keys)
    last_eval = do_eval(state, 0) if config.eval_interval > 0 else None
    total = config.effective_total_timesteps
    bar = tqdm(total=total, unit="step", disable=not progress, desc=f"{config.algo} {config.env}",
               dynamic_ncols=True)
    t_train = time.perf_counter()
    state = warmup(state)
    jax.block_until_ready(state.env_steps)
    steps = config.warmup_iters * config.num_envs
    train_s = time.perf_counter() - t_train
    bar.update(steps)
    for _ in range(config.num_chunks):
        t = time.perf_counter()
        state, metrics = chunk(state)
        rows = writer.write_metrics(metrics)  # blocks on the results
        train_s += time.perf_counter() - t
        metric_rows.extend(rows)
        prev, steps = steps, rows[0]["env_steps"]
        if eval_due(config, prev, steps) and steps < total:
            last_eval = do_eval(state, steps)
        ret = mean_and_se([r["episodic_return"] for r in rows])[0]
        bar.set_postfix(sps=f"{steps * config.num_seeds / max(train_s, 1e-9):,.0f}", ret=f"{ret:.1f}")
        bar.update(steps - prev)
    bar.close()
    if config.eval_interval > 0:
        last_eval = do_eval(state, steps)

    final = np.array([r["episodic_return"] for r in metric_rows[-config.num_seeds:]])
    mean, se = mean_and_se(final)
    summary = {
        "env": config.env,
        "algo": config.algo,
        "preset": config.preset,
        "num_seeds": config.num_seeds,
        "total_timesteps": steps,
        "final_return_mean": mean,
        "final_return_se": se,
        "final_return_per_seed": final.tolist(),
        "final_eval_per_layer": (np.nanmean(last_eval, axis=0).tolist() if last_eval is not None else None),
        "compile_s": compile_s,
        "train_s": train_s,
        "eval_s": eval_s,
        "env_steps_per_s": steps * config.num_seeds / train_s,
        "device": str(jax.devices()[0].device_kind),
        "quirks": config_record(config)["quirks"],
        "out_dir": str(out),
    }
    writer.write_json("summary.json", summary)
    plot_learning_curve(metric_rows, eval_rows, out / "learning_curve.png",
                        f"{config.algo} on {config.env} ({config.preset}, {config.num_seeds} seeds)")
    writer.close()
    return summary

"""Per-phase time breakdown of one update cycle of the training program (``throughput.py --profile``).

One update cycle is ``iters_per_update`` vectorised env steps (acting, env step, replay add) and one
update (replay sample, replayed context, per-layer losses + gradients + optimiser). Each phase is
compiled on its own, vmapped over the same seeds and run on the state the timed program reached, then
timed (median of ``repeats`` calls, after one untimed call). Separately compiled phases miss the
fusion across phases of the real program, so the shares are a guide to where time goes, and their sum
is compared with the measured cycle time.
"""

from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp

from purejax_ad.context import replayed_contexts
from purejax_ad.replay import prepare_sequences


def _time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def phase_times(program, env, state, repeats: int = 5) -> dict[str, float]:
    """Seconds per update cycle spent in each phase, for a seed-stacked ``state``.

    Args:
      program: :class:`purejax_ad.program.Program` of the config. env: its environment.
      state: seed-stacked train state after the warm-up (the replay buffer can be sampled).

    Returns:
      ``{phase: seconds per update cycle}`` (env-step phases multiplied by ``iters_per_update``).
    """
    c, net = program.config, program.network
    replay = program.replay
    E = c.num_envs

    def act(s):  # the agent's own behaviour policy
        acting = program.agent.act(s.learner.params, s.actor, s.key, s.env_steps, s.hyper, False)
        return acting.action, acting.context

    def env_step(s):
        actions = jnp.zeros((E,), jnp.int32)
        return jax.vmap(env.step)(jax.random.split(s.key, E), s.actor.env_state, actions)

    def replay_add(s):
        stored = jax.tree.map(lambda x: x[:, 0], s.buffer_state.steps.experience)  # [E]: a step's layout
        return replay.add(s.buffer_state, stored._replace(obs=replay.codec.encode(s.actor.obs)), s.actor.obs)

    def sample(s):
        return replay.sample(s.buffer_state, s.key, s.actor.obs)

    def context(s, window):
        batch = prepare_sequences(window, c.replay_padding, c.context_source == "stored")
        return replayed_contexts(net, s.learner.params, s.learner.target_params, batch.obs_seq, batch.reset)

    def update(s, window):  # the program's own update, its static flags closed over once
        return program.update(s.learner, window, s.hyper)

    vm = lambda f: jax.jit(jax.vmap(f))  # noqa: E731
    batch = vm(sample)(state)
    k = c.iters_per_update
    return {
        "acting (forward + ε-greedy)": k * _time(vm(act), state, repeats=repeats),
        "env step": k * _time(vm(env_step), state, repeats=repeats),
        "replay add": k * _time(vm(replay_add), state, repeats=repeats),
        "replay sample": _time(vm(sample), state, repeats=repeats),
        "replayed context (online + target unroll)": _time(vm(context), state, batch, repeats=repeats),
        "per-layer update (incl. its context replay)": _time(vm(update), state, batch, repeats=repeats),
    }


def breakdown_table(times: dict[str, float], cycle_s: float) -> str:
    """Markdown table of the phases; the context replay is shown inside the update, as it runs there."""
    update = times["per-layer update (incl. its context replay)"]
    ctx = times["replayed context (online + target unroll)"]
    rows = [(name, t) for name, t in times.items() if not name.startswith(("per-layer", "replayed"))]
    rows += [("replayed context (online + target unroll)", min(ctx, update)),
             ("per-layer losses, gradients, optimiser", max(update - ctx, 0.0))]
    total = sum(t for _, t in rows)
    lines = ["| phase | ms per update cycle | share of the phases |", "|---|---|---|"]
    lines += [f"| {name} | {1e3 * t:,.2f} | {100 * t / total:.1f} % |" for name, t in rows]
    lines.append(f"| sum of phases (compiled apart) | {1e3 * total:,.2f} | |")
    lines.append(f"| measured update cycle of the real program | {1e3 * cycle_s:,.2f} | |")
    return "\n".join(lines) + "\n"

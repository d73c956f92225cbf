"""Size of a checkpoint of a config, per seed and per component, from the train state's shapes alone.

    python benchmarks/checkpoint_size.py --env Breakout-MinAtar --preset paper-minatar

Nothing is trained or allocated: the state's shapes come from ``jax.eval_shape`` of the per-seed
``init``. The figure is the raw (uncompressed) size of the arrays a checkpoint stores; orbax's files
add little to it. Pass ``--measure-dir RUN_DIR`` to also print the on-disk size of that run's
checkpoints for comparison.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax

from purejax_ad.checks import check
from purejax_ad.envs import make_config_env
from purejax_ad.plan import state_bytes
from purejax_ad.presets import preset_config

from purejax_ad.program import make_program


def state_sizes(config) -> dict[str, int]:
    """Bytes per seed of the parts of one seed's train state (:func:`purejax_ad.plan.state_bytes`)."""
    program = make_program(config, make_config_env(config))
    return state_bytes(jax.eval_shape(program.init, jax.random.key(0)))


def main(argv=None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Breakout-MinAtar")
    p.add_argument("--preset", default="paper-minatar")
    p.add_argument("--num-seeds", type=int, default=None, help="default: the preset's")
    p.add_argument("--total-timesteps", type=int, default=None, help="default: the preset's (caps the buffer)")
    p.add_argument("--measure-dir", default=None, help="a run directory whose checkpoints to measure on disk")
    a = p.parse_args(argv)
    overrides = {k: v for k, v in (("num_seeds", a.num_seeds), ("total_timesteps", a.total_timesteps)) if v}
    config = check(preset_config(a.preset, env=a.env, **overrides))
    sizes = state_sizes(config)
    per_seed = sum(sizes.values())
    replay = sum(v for k, v in sizes.items() if k.startswith("replay"))
    print(f"{config.env} / {a.preset}: buffer {config.effective_buffer_size:,} transitions per seed, "
          f"{config.num_seeds} seeds")
    for name, b in sizes.items():
        print(f"  {name:<40} {b / 2**20:12,.1f} MiB per seed")
    print(f"  {'total':<40} {per_seed / 2**20:12,.1f} MiB per seed, {per_seed * config.num_seeds / 2**30:,.2f} GiB "
          f"for {config.num_seeds} seeds; without replay {(per_seed - replay) / 2**20:,.1f} MiB "
          "per seed")
    if a.measure_dir:
        for ckpt in sorted((Path(a.measure_dir) / "checkpoints").iterdir()):
            if ckpt.is_dir():
                size = sum(f.stat().st_size for f in ckpt.rglob("*") if f.is_file())
                print(f"  on disk: {ckpt} {size / 2**20:,.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Pre-flight plans of one config at several seed counts, as a Markdown table (docs/results.md "Memory: compact
replay, the pre-flight plan, seed waves").

    python benchmarks/plan_table.py --env Breakout-MinAtar --preset paper-minatar --seeds 1,16,128

Nothing is trained or allocated: each row is :func:`purejax_ad.run.plan_run` (the figures of ``--dry-run``):
state per seed, the compiled training chunk's XLA memory for that many seeds on one device, GFLOP per env
step and per update, and the device's memory.
"""

from __future__ import annotations

import argparse
import sys

from purejax_ad.checks import check
from purejax_ad.plan import GIB, size
from purejax_ad.presets import preset_config
from purejax_ad.run import plan_run


def main(argv=None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Breakout-MinAtar")
    p.add_argument("--preset", default="paper-minatar")
    p.add_argument("--seeds", default="1,16,128")
    a = p.parse_args(argv)
    rows = ["| seeds | state per seed | chunk arguments | chunk temporaries | chunk total (per device) | "
            "GFLOP / env step | GFLOP / update | device offers | fits |", "|---|---|---|---|---|---|---|---|---|"]
    for n in [int(s) for s in a.seeds.split(",")]:
        plan = plan_run(check(preset_config(a.preset, env=a.env, num_seeds=n)), flops=n == 1)
        b = plan.chunk_breakdown
        flops = (f"{plan.gflop_per_env_step:.3g} | {plan.gflop_per_update:.3g}" if plan.gflop_per_env_step
                 else "same | same")
        rows.append(f"| {n} | {size(plan.state_total_per_seed)} | {size(b['arguments'])} | {size(b['temporaries'])} | "
                    f"{plan.programs['chunk'] / GIB:,.2f} GiB | {flops} | {size(plan.available)} "
                    f"({plan.available_source}) | {'yes' if plan.fits else 'no'} |")
        print(rows[-1], flush=True)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Warnings for diverging values: Q-values and TD losses far beyond what the env's rewards allow.

A run can stay finite and still be meaningless (``--learning-rate 1e3``: TD losses of 10^8, exit 0). From the
per-chunk means of ``metrics.csv`` (``q_mean_l{i}``, ``td_loss_l{i}``; no per-step work inside the compiled
program) the host flags a layer once its values leave the plausible range of ``docs/running.md``
§Implausible values:

* every return is bounded by ``scale = r_max / (1 - gamma)``, with ``r_max`` the largest ``|reward|`` of one
  env step (:data:`REWARD_BOUNDS`), so a plausible Q has ``|Q| <= scale``; the chunk's mean Q is flagged
  when ``|mean Q| > FACTOR * scale`` (some ``|Q|`` is then at least as far out);
* a TD error of plausible values is at most ``2 * scale``; the chunk's mean TD loss is flagged above
  ``max((FACTOR * scale)^2, FACTOR * scale)`` (a squared or a linear loss of an error ``FACTOR / 2`` times
  the largest plausible one).

Rows are those written after the warm-up, so learning has started. Non-finite values are left to the
NaN/Inf check of :mod:`purejax_ad.run`; with ``gamma = 1`` there is no bound and nothing is flagged.
Each (sweep config, seed, layer) is flagged at most once: the first row out of range.
"""

from __future__ import annotations

import math
import re

from purejax_ad.config import Config
from purejax_ad.envs import canonical_env_id, env_suite

#: How far beyond the plausible bound a value must be to be flagged.
FACTOR = 10.0
#: ``env id -> largest |reward| of one env step`` (from the gymnax sources). MinAtar games give +1 per
#: brick, treasure, crossing or kill (several kills in one step are rare); Seaquest's surfacing bonus with six
#: divers is up to 10. Pendulum: theta^2 + 0.1 theta_dot^2 + 0.001 u^2 <= pi^2 + 6.4 + 0.004.
#: MountainCarContinuous: 100 at the goal. DMC tasks (not listed): rewards in [0, 1] per control step, so
#: ``action_repeat``.
REWARD_BOUNDS: dict[str, float] = {
    "CartPole-v1": 1.0, "Acrobot-v1": 1.0, "MountainCar-v0": 1.0, "Pendulum-v1": 16.3,
    "MountainCarContinuous-v0": 100.1, "Breakout-MinAtar": 1.0, "Asterix-MinAtar": 1.0, "Freeway-MinAtar": 1.0,
    "SpaceInvaders-MinAtar": 1.0, "Seaquest-MinAtar": 10.0,
}
_COLUMN = re.compile(r"(q_mean|td_loss)_l(\d+)$")


def reward_bound(config: Config) -> float | None:
    """``r_max``: the largest ``|reward|`` of one env step of ``config.env`` (``None``: not known)."""
    env = canonical_env_id(config.env)
    if env_suite(env) == "dmc":
        return float(config.action_repeat)
    return REWARD_BOUNDS.get(env)


def value_limits(config: Config, gamma: float) -> tuple[float, float] | None:
    """``(q_limit, loss_limit)`` for discount ``gamma`` (see the module docstring); ``None`` without a bound
    (``gamma >= 1`` or an env with no known reward bound)."""
    r_max = reward_bound(config)
    if r_max is None or not gamma < 1:
        return None
    q_limit = FACTOR * r_max / (1 - gamma)
    return q_limit, max(q_limit**2, q_limit)


class ValueWatch:
    """Flags implausible rows of ``metrics.csv`` (:class:`~purejax_ad.outputs.RunWriter` rows), once per
    (sweep config, seed, layer).

    Args:
      config: the run (``gamma`` per sweep config from ``config.sweep_configs``).
      rows: rows already seen (a resumed run): their (run, layer) pairs are not flagged again.
    """

    def __init__(self, config: Config, rows=()):
        self.config = config
        self.flagged: set[tuple[int, int, int]] = set()
        self._limits: dict[int, tuple[float, float] | None] = {}
        self.check(rows)

    def limits(self, config_index: int) -> tuple[float, float] | None:
        """``(q_limit, loss_limit)`` of sweep config ``config_index``."""
        if config_index not in self._limits:
            gamma = self.config.sweep_configs[config_index].get("gamma", self.config.gamma)
            self._limits[config_index] = value_limits(self.config, gamma)
        return self._limits[config_index]

    def check(self, rows) -> list[dict]:
        """The warnings of ``rows`` for pairs not flagged before (in row order), each a dict: ``config``,
        ``seed``, ``layer`` (1-based), ``env_steps``, ``metric`` (``"q_mean"`` or ``"td_loss"``), ``value``,
        ``limit``, ``message``."""
        out = []
        for row in rows:
            c = int(row.get("config", 0))
            limits = self.limits(c)
            if limits is None:
                continue
            by_layer: dict[int, list[tuple[str, float]]] = {}
            for key, value in row.items():
                if (m := _COLUMN.match(key)) and value not in ("", None):
                    by_layer.setdefault(int(m[2]), []).append((m[1], float(value)))
            for layer, values in sorted(by_layer.items()):
                key = (c, int(row["seed"]), layer)
                if key in self.flagged:
                    continue
                for metric, value in sorted(values, key=lambda mv: mv[0] != "q_mean"):  # Q first
                    limit = limits[0] if metric == "q_mean" else limits[1]
                    if math.isfinite(value) and abs(value) > limit:
                        self.flagged.add(key)
                        out.append(self._warning(c, int(row["seed"]), layer, int(row["env_steps"]), metric, value,
                                                 limit))
                        break
        return out

    def _warning(self, c, seed, layer, env_steps, metric, value, limit) -> dict:
        gamma = self.config.sweep_configs[c].get("gamma", self.config.gamma)
        who = f"seed {seed}" + (f" of sweep config {c}" if self.config.num_configs > 1 else "")
        what, bound = (("mean Q", f"{FACTOR:g} r_max / (1 - gamma)") if metric == "q_mean" else
                       ("mean TD loss", f"({FACTOR:g} r_max / (1 - gamma))^2"))
        message = (f"{who}, layer {layer}: {what} {value:.3g} at env step {env_steps} is beyond the plausible "
                   f"{limit:.3g} = {bound} (r_max {reward_bound(self.config):g} per env step, gamma {gamma:g}); "
                   "the values are diverging (a smaller --learning-rate?)")
        return {"config": c, "seed": seed, "layer": layer, "env_steps": env_steps, "metric": metric,
                "value": value, "limit": limit, "message": message}


def value_warnings(config: Config, rows) -> list[dict]:
    """Every warning of the metric ``rows`` of a run (:meth:`ValueWatch.check` over all of them), as
    ``summary.json`` records them."""
    return ValueWatch(config).check(rows)

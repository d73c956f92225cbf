"""The algorithm table: one data-only row per method, and the one place that turns a row into an agent.

Everything else in the package asks this table about an algorithm (its family, action space, network,
which config fields it reads, what its summary reports) instead of testing the algorithm's name. Adding a
method is one module with a ``make_agent(config, env, spec)`` function and one :class:`AlgoSpec` row
(``docs/architecture.md``, "How to add an algorithm"); a row may also be added at run time with
:func:`register` (the tests register a toy algorithm this way).
"""

from __future__ import annotations

import importlib
from typing import Callable, Literal, NamedTuple

Family = Literal["q-learning", "actor-critic"]


class AlgoSpec(NamedTuple):
    """What the package needs to know about one algorithm (data only).

    Attributes:
      name: the ``--algo`` value.
      family: ``"q-learning"`` (epsilon-greedy over ``[num_actions]`` Q-values, replayed sequences) or
        ``"actor-critic"`` (deterministic continuous policy, replayed single steps).
      action_space: ``"discrete"`` or ``"continuous"`` (DMC tasks offer both).
      network: ``"ad"`` (a stack of AD cells, ``docs/algorithm.md`` §Cells), ``"q-network"`` (a standard
        backprop Q-network), ``"ddpg-mlp"`` or ``"neuron-local"`` (actor-critic agents).
      agent: where the agent factory lives, ``"module:function"`` (imported on first use), or the factory
        itself: ``factory(config, env, spec) -> purejax_ad.state.Agent``.
      quantiles: the network outputs ``num_quantiles`` quantiles per action (QR losses apply).
      local_learning: every layer learns from its own loss only (``False``: end-to-end backprop).
      default_cell: the AD cell ``--cell auto`` means (``None``: the network has no AD cells).
      cell_fixed: the cell is the method (``--cell`` may only repeat ``default_cell``).
      linear_lr_schedule: ``--lr-schedule linear`` is implemented.
      summary_keys: ``(summary key, Config attribute)`` pairs that ``summary.json`` reports for this method.
      description: one line for ``--help`` and the docs.
    """

    name: str
    family: Family
    action_space: Literal["discrete", "continuous"]
    network: Literal["ad", "q-network", "ddpg-mlp", "neuron-local"]
    agent: str | Callable
    quantiles: bool = False
    local_learning: bool = True
    default_cell: str | None = None
    cell_fixed: bool = False
    linear_lr_schedule: bool = True
    summary_keys: tuple[tuple[str, str], ...] = ()
    description: str = ""


_Q = "purejax_ad.q_learning:make_agent"
_QR_KEYS = (("qr_loss", "qr_loss"), ("num_quantiles", "num_quantiles"))
_CELL_KEY = (("cell", "network_cell"),)

#: Every algorithm, by name (README "Methods").
ALGO_SPECS: dict[str, AlgoSpec] = {s.name: s for s in [
    AlgoSpec("ad-dqn", "q-learning", "discrete", "ad", _Q, default_cell="attention", summary_keys=_CELL_KEY,
             description="Artificial Dopamine: every layer learns from its own TD error (docs/algorithm.md)"),
    AlgoSpec("ad-qrdqn", "q-learning", "discrete", "ad", _Q, quantiles=True, default_cell="attention",
             summary_keys=_QR_KEYS + _CELL_KEY, description="AD with quantile outputs (QR-DQN targets per layer)"),
    AlgoSpec("arq", "q-learning", "discrete", "ad", _Q, default_cell="arq", cell_fixed=True, summary_keys=_CELL_KEY,
             description="Action-conditioned AD cell, Q = goodness of the action's activations"),
    AlgoSpec("ad-backprop", "q-learning", "discrete", "ad", _Q, local_learning=False, default_cell="attention",
             summary_keys=_CELL_KEY, description="the AD network trained end to end by backprop (yardstick)"),
    AlgoSpec("dqn", "q-learning", "discrete", "q-network", _Q, local_learning=False,
             description="standard double DQN, backprop (yardstick)"),
    AlgoSpec("qrdqn", "q-learning", "discrete", "q-network", _Q, quantiles=True, local_learning=False,
             summary_keys=_QR_KEYS, description="standard QR-DQN, backprop (yardstick)"),
    AlgoSpec("ndpg", "actor-critic", "continuous", "neuron-local", "purejax_ad.ndpg:make_agent",
             linear_lr_schedule=False,
             summary_keys=(("ndpg_critic", "ndpg_critic"), ("ndpg_optimizer", "ndpg_optimizer"),
                           ("ndpg_value_features", "ndpg_value_features"),
                           ("ndpg_n_step", "ndpg_n_step")),
             description="neuron-local DDPG: every neuron is an agent with its own critic, no backprop"),
    AlgoSpec("ddpg", "actor-critic", "continuous", "ddpg-mlp", "purejax_ad.ddpg:make_agent", local_learning=False,
             description="DDPG with MLP actor and critic, backprop (yardstick)"),
]}


def algo_names() -> tuple[str, ...]:
    """Every registered algorithm name, in table order."""
    return tuple(ALGO_SPECS)


def algo_spec(name: str) -> AlgoSpec:
    """The row of ``name``.

    Raises:
      KeyError: unknown algorithm (the message lists the valid ones).
    """
    try:
        return ALGO_SPECS[name]
    except KeyError:
        raise KeyError(f"unknown algo {name!r}; valid algos: {', '.join(ALGO_SPECS)}") from None


def register(spec: AlgoSpec) -> AlgoSpec:
    """Add (or replace) a row at run time; returns it. The CLI's ``--algo`` accepts it from then on."""
    ALGO_SPECS[spec.name] = spec
    return spec


def make_agent(config, env):
    """The agent of ``config.algo`` on ``env``: the one dispatch from a table row to code.

    Returns:
      the :class:`purejax_ad.state.Agent` built by the row's factory.
    """
    spec = algo_spec(config.algo)
    factory = spec.agent
    if isinstance(factory, str):
        module, _, name = factory.partition(":")
        factory = getattr(importlib.import_module(module), name)
    return factory(config, env, spec)

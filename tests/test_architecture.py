"""The package's structure (docs/architecture.md): no import circle, algorithms named in the table only, and a
new algorithm added with one module and one table row (a test-only toy, registered and run here)."""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path

import jax
import numpy as np
import pytest

import purejax_ad
from purejax_ad import algos
from purejax_ad.algos import ALGO_SPECS, algo_names, register
from purejax_ad.checks import check
from purejax_ad.config import ConfigError
from purejax_ad.network import CELLS
from purejax_ad.program import make_program
from purejax_ad.train import main

from _helpers import TINY, probe_config, probe_environment
from _toy_agent import TOY_SPEC, LinearQAgent

PACKAGE = Path(purejax_ad.__file__).parent


def _modules() -> dict[str, ast.Module]:
    return {f"purejax_ad.{path.stem}": ast.parse(path.read_text()) for path in sorted(PACKAGE.glob("*.py"))}


def _imports(module: str, tree: ast.Module, known: set[str]) -> set[str]:
    """Package modules ``module`` imports anywhere (top level or inside functions)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module
            if node.level:  # relative import
                base = ".".join(module.split(".")[: -node.level] + [node.module])
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}  # `from purejax_ad import run`
    return {m for m in found if m in known and m != module}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_planted_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_import_graph_has_no_circle():
    trees = _modules()
    graph = {m: _imports(m, t, set(trees)) for m, t in trees.items()}
    assert graph["purejax_ad.program"] >= {"purejax_ad.algos", "purejax_ad.state"}  # the walk sees imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def _string_constants(tree: ast.Module) -> list[ast.Constant]:
    """String constants that are code, not docstrings or attribute docstrings."""
    docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)}
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def test_algorithms_are_named_only_in_the_table_the_presets_and_the_default():
    """Algorithm names (those that are not also cell names) appear as code strings in 3 places at most; and
    no module compares an ``algo`` value with a string."""
    names = set(algo_names()) - set(CELLS)
    where = {}
    for module, tree in _modules().items():
        hits = [n.value for n in _string_constants(tree) if n.value in names]
        if hits:
            where[module] = hits
    assert set(where) <= {"purejax_ad.algos", "purejax_ad.presets", "purejax_ad.config"}, where
    assert where.get("purejax_ad.config", []) == ["ad-dqn"]  # the Config.algo default
    for module, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                names_algo = any(isinstance(s, ast.Attribute) and s.attr == "algo" or
                                 isinstance(s, ast.Name) and s.id == "algo" for s in sides)
                literal = any(isinstance(s, ast.Constant) and isinstance(s.value, str) or
                              isinstance(s, (ast.Tuple, ast.List, ast.Set)) for s in sides)
                assert not (names_algo and literal), f"{module}:{node.lineno} tests an algo by name"


@pytest.fixture
def toy_registered(monkeypatch):
    """The toy row in the table for the duration of a test."""
    monkeypatch.setitem(ALGO_SPECS, TOY_SPEC.name, TOY_SPEC)
    return TOY_SPEC


def test_register_adds_a_row_and_make_agent_dispatches_to_its_factory(toy_registered):
    assert TOY_SPEC.name in algo_names()
    config = probe_config((4,), algo=TOY_SPEC.name)
    agent = algos.make_agent(config, probe_environment(1))
    assert isinstance(agent, LinearQAgent)
    with pytest.raises(ConfigError, match="unknown algo 'toy-linear-q-2'.*toy-linear-q"):
        check(probe_config((4,), algo="toy-linear-q-2"))


def test_register_is_the_public_way_and_returns_the_row(monkeypatch):
    monkeypatch.setattr(algos, "ALGO_SPECS", dict(ALGO_SPECS))
    assert register(TOY_SPEC) is TOY_SPEC and algos.algo_spec(TOY_SPEC.name) is TOY_SPEC


def test_toy_algorithm_learns_the_one_step_probe(toy_registered):
    """Q(s_i, a) = 1[a == i] is linear in the one-hot observation, so linear Q-learning reaches it."""
    program = make_program(probe_config((4,), algo=TOY_SPEC.name, total_timesteps=4000, learning_rate=1e-2),
                           probe_environment(1))
    state, metrics = jax.jit(program.train)(jax.random.key(0))
    params = state.learner.params[0]
    q = np.eye(2) @ np.asarray(params["w"]) + np.asarray(params["b"])
    np.testing.assert_allclose(q, np.eye(2), atol=0.1)
    assert metrics.td_loss.shape == (program.config.num_chunks, 1)
    assert float(metrics.td_loss[-1, 0]) < float(metrics.td_loss[0, 0])
    returns = np.asarray(jax.jit(program.evaluate)(state, jax.random.key(1)))
    np.testing.assert_allclose(returns, [1.0], atol=1e-6)


def test_toy_algorithm_runs_from_the_cli_with_the_shared_outputs(toy_registered, tmp_path, capsys):
    out = tmp_path / "toy"
    assert main([*TINY, "--algo", TOY_SPEC.name, "--out", str(out)]) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == TOY_SPEC.name and summary["complete"] and summary["toy_gamma"] == 0.99
    header = next(csv.reader((out / "metrics.csv").open()))
    assert header[-2:] == ["td_loss_l1", "q_mean_l1"]
    assert len(summary["final_eval_per_layer"]) == 1

"""The AD family and its yardsticks: QR losses, ARQ / MLP cells, ablation wiring, backprop
baselines -- against hand-worked examples, numpy re-computations and probe envs with known Q-values."""

from __future__ import annotations

import csv
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from purejax_ad import q_learning
from purejax_ad.algos import algo_names, algo_spec
from purejax_ad.cells import ARQCell, MlpADCell, action_codes, goodness
from purejax_ad.presets import preset_config
from purejax_ad.envs import make_env
from purejax_ad.losses import quantile_regression_loss, quantile_td_target
from purejax_ad.network import ADNetwork
from purejax_ad.qnetwork import QNetwork
from purejax_ad.q_learning import make_network

from _helpers import TINY, probe_run, q_at, random_params, run_cli, sequence_batch as _batch

# ------------------------------------------------------------------------------------------------
# AD-QRDQN losses (docs/algorithm.md §Quantile outputs, quirk Q4)
# ------------------------------------------------------------------------------------------------

# Hand-worked: N = 2 (tau = 0.25, 0.75), predicted theta = (0, 1), target samples T = (0.5, 2).
# u_ij = T_j - theta_i = [[0.5, 2], [-0.5, 1]]; w_ij = |tau_i - 1{u_ij < 0}| = [[.25, .25], [.25, .75]].
#   as_published       rho = u^2:                       sum_i -> (0.125, 1.75),    mean_j = 0.9375
#   as_published_huber rho = u^2 if |u|<=1 else |u|:    sum_i -> (0.125, 1.25),    mean_j = 0.6875
#   quantile_huber     rho = u^2/2 if |u|<=1 else |u|-.5: sum_i -> (0.0625, 0.75), mean_j = 0.40625
@pytest.mark.parametrize("kind,expected", [("as_published", 0.9375), ("as_published_huber", 0.6875),
                                           ("quantile_huber", 0.40625)])
def test_quantile_losses_hand_worked(kind, expected):
    predicted = jnp.array([[0.0, 1.0]])  # [batch 1, N 2]
    target = jnp.array([[0.5, 2.0]])
    np.testing.assert_allclose(float(quantile_regression_loss(predicted, target, kind)), expected, rtol=1e-6)
    # The batch reduction is a mean, and a leading layer axis is kept.
    stacked = quantile_regression_loss(jnp.stack([jnp.tile(predicted, (3, 1))] * 2), jnp.stack([jnp.tile(target, (3, 1))] * 2), kind)
    np.testing.assert_allclose(np.asarray(stacked), [expected, expected], rtol=1e-6)


def _fit(kind: str, samples: np.ndarray, n: int, steps: int = 3000) -> np.ndarray:
    """Minimise the QR loss over N free values against a fixed set of target samples."""
    target = jnp.asarray(samples, jnp.float32)[None]
    tx = optax.adam(0.05)
    theta = jnp.full((1, n), float(np.mean(samples)), jnp.float32)

    @jax.jit
    def run(theta):
        def body(carry, _):
            theta, s = carry
            g = jax.grad(lambda t: quantile_regression_loss(t, target, kind))(theta)
            u, s = tx.update(g, s)
            return (optax.apply_updates(theta, u), s), None
        (theta, _), _ = jax.lax.scan(body, (theta, tx.init(theta)), length=steps)
        return theta

    return np.asarray(run(theta))[0]


def _expectile(x: np.ndarray, tau: float) -> float:
    """The tau-expectile: the root of sum_j |tau - 1{x_j < e}| (x_j - e) = 0, by bisection."""
    lo, hi = x.min(), x.max()
    for _ in range(100):
        e = (lo + hi) / 2
        f = np.sum(np.where(x < e, 1 - tau, tau) * (x - e))
        lo, hi = (e, hi) if f > 0 else (lo, e)
    return (lo + hi) / 2


def test_quantile_huber_learns_quantiles_and_as_published_learns_expectiles():
    # A skewed distribution at a scale where |u| >> kappa = 1, so the Huber loss is the quantile loss.
    samples = 20.0 * np.random.default_rng(0).exponential(size=400)
    n = 4
    taus = (np.arange(n) + 0.5) / n
    quantiles = _fit("quantile_huber", samples, n)
    np.testing.assert_allclose(quantiles, np.quantile(samples, taus), rtol=0.05, atol=0.5)
    expectiles = _fit("as_published", samples, n)
    np.testing.assert_allclose(expectiles, [_expectile(samples, t) for t in taus], rtol=0.02)
    # They differ: the official loss does not learn quantiles (docs/algorithm.md §Quantile outputs).
    assert np.max(np.abs(expectiles - quantiles)) > 2.0


def test_quantile_td_target_double_q_hand_case():
    # One layer, one sample, N = 2, A = 2. Online mean over quantiles picks a* = 1 (means 1.0 vs 2.0).
    online = jnp.array([[[[0.0, 1.0], [2.0, 3.0]]]])  # [L, B, N, A]
    target = jnp.array([[[[10.0, 20.0], [30.0, 40.0]]]])  # its own mean would pick a* = 1 too; flip one
    target_flip = jnp.array([[[[50.0, 20.0], [30.0, 40.0]]]])  # target means: 40 vs 30 -> a* = 0 without double-Q
    reward, terminated = jnp.array([1.0]), jnp.array([False])
    np.testing.assert_allclose(np.asarray(quantile_td_target(online, target, reward, terminated, 0.5)),
                               [[[1 + 0.5 * 20, 1 + 0.5 * 40]]])
    np.testing.assert_allclose(np.asarray(quantile_td_target(online, target_flip, reward, terminated, 0.5,
                                                             double_q=False)), [[[1 + 0.5 * 50, 1 + 0.5 * 30]]])
    np.testing.assert_allclose(np.asarray(quantile_td_target(online, target, reward, jnp.array([True]), 0.5)),
                               [[[1.0, 1.0]]])


def test_qr_layer_losses_use_each_layers_quantiles():
    """AD-QRDQN's per-layer loss equals the QR loss on that layer's quantiles at a_t against its own target."""
    network = ADNetwork(obs_size=3, num_outputs=2, net_arch=(6, 5), num_heads=2, num_quantiles=3)
    params, target_params = random_params(network, seed=1), random_params(network, seed=2)
    batch = _batch(3)
    losses, _ = jax.jit(lambda p, tp: q_learning.layer_losses(network, p, tp, batch, 0.9, qr_loss="quantile_huber"))(
        params, target_params)
    # Reference: scalar-output network of the same params gives the flat outputs; rebuild quantiles by hand.
    flat = network._replace(num_quantiles=0, num_outputs=6)
    step = jax.jit(flat.step)
    from purejax_ad.context import replayed_contexts
    ctx_t, tctx = jax.jit(lambda p, tp: replayed_contexts(flat, p, tp, batch.obs_seq, batch.reset))(params, target_params)
    q, ctx_next, _ = step(params, batch.obs_seq[:, -1], ctx_t)
    q_on, _, _ = step(params, batch.next_obs, ctx_next)
    q_tg, _, _ = step(target_params, batch.next_obs, tctx)
    shape = lambda x: np.asarray(x, np.float64).reshape(2, 5, 3, 2)  # [L, B, N, A], flat index n*A + a
    q, q_on, q_tg = shape(q), shape(q_on), shape(q_tg)
    taus = (np.arange(3) + 0.5) / 3
    for l in range(2):
        per_sample = []
        for b in range(5):
            a_star = np.argmax(q_on[l, b].mean(axis=0))
            t = float(batch.reward[b]) + 0.9 * (1 - float(batch.terminated[b])) * q_tg[l, b, :, a_star]
            theta = q[l, b, :, int(batch.action[b])]
            u = t[None, :] - theta[:, None]
            rho = np.where(np.abs(u) <= 1, 0.5 * u * u, np.abs(u) - 0.5)
            per_sample.append(np.mean(np.sum(np.abs(taus[:, None] - (u < 0)) * rho, axis=0)))
        np.testing.assert_allclose(float(losses[l]), np.mean(per_sample), rtol=1e-4)


# ------------------------------------------------------------------------------------------------
# Cells: ARQ (docs/algorithm.md §ARQ) and MLP (docs/algorithm.md §Cells)
# ------------------------------------------------------------------------------------------------


def test_action_codes():
    np.testing.assert_array_equal(np.asarray(action_codes(3, "onehot")), np.eye(3))
    # Bit i of the index, least significant first, as +-1 (ARQ's DMC encoding).
    np.testing.assert_array_equal(np.asarray(action_codes(4, "binary")), [[-1, -1], [1, -1], [-1, 1], [1, 1]])
    with pytest.raises(ValueError, match="power-of-two"):
        action_codes(3, "binary")


def test_goodness_kinds_match_numpy():
    y = np.random.default_rng(0).normal(size=(4, 7))
    expected = {"std": y.std(axis=-1), "rms": np.sqrt((y ** 2).mean(-1)), "msq": (y ** 2).mean(-1),
                "mean": y.mean(-1), "variance": y.var(-1)}
    for kind, want in expected.items():
        np.testing.assert_allclose(np.asarray(goodness(jnp.asarray(y, jnp.float32), kind)), want, rtol=1e-5)


def _reference_arq(params, u, hidden, num_actions, heads, codes, kind):
    """docs/algorithm.md §ARQ in float64 numpy: h from u alone; per action u_a = [u ; code(a)], W_a h, goodness."""
    p = {k: {n: np.asarray(v, np.float64) for n, v in d.items()} for k, d in params["params"].items()}
    a = np.maximum(u @ p["fc_h"]["kernel"] + p["fc_h"]["bias"], 0.0)
    h = (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + 1e-6) * p["ln"]["scale"] + p["ln"]["bias"]
    q = np.zeros((u.shape[0], num_actions))
    for b in range(u.shape[0]):
        for act in range(num_actions):
            ua = np.concatenate([u[b], codes[act]])
            z1 = (ua @ p["fc_z1"]["kernel"]).reshape(heads, hidden)
            z2 = (ua @ p["fc_z2"]["kernel"]).reshape(heads, hidden)
            m = z2.T @ z1  # [d, d]
            w = np.tanh((m - m.mean(1, keepdims=True)) / (m.std(1, keepdims=True) + 1e-6))
            y = w @ h[b]
            q[b, act] = {"std": y.std(), "rms": np.sqrt(np.mean(y ** 2)), "msq": np.mean(y ** 2)}[kind]
    return h, q


@pytest.mark.parametrize("encoding,num_actions,kind", [("onehot", 3, "std"), ("binary", 4, "rms"),
                                                       ("onehot", 2, "msq")])
def test_arq_cell_matches_numpy_and_q_is_nonnegative(encoding, num_actions, kind):
    hidden, heads, d_in = 6, 2, 5
    cell = ARQCell(hidden, num_actions, heads, encoding, kind)
    params = jax.jit(cell.init)(jax.random.key(0), jnp.zeros((1, d_in)))
    k = num_actions if encoding == "onehot" else 2
    assert params["params"]["fc_z1"]["kernel"].shape == (d_in + k, heads * hidden)  # action at the input
    assert params["params"]["fc_h"]["kernel"].shape == (d_in, hidden)  # h sees no action
    u = np.random.default_rng(1).normal(size=(8, d_in))
    h, q = jax.jit(cell.apply)(params, jnp.asarray(u, jnp.float32))
    h_ref, q_ref = _reference_arq(params, u, hidden, num_actions, heads, np.asarray(action_codes(num_actions, encoding)),
                                  kind)
    np.testing.assert_allclose(np.asarray(h), h_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(q), q_ref, rtol=1e-4, atol=1e-5)
    assert q.shape == (8, num_actions) and np.all(np.asarray(q) >= 0.0)


def test_mlp_cell_matches_numpy_and_normalisations():
    u = np.random.default_rng(2).normal(size=(5, 4))
    for norm in ("none", "lp", "scaled", "layer_norm"):
        cell = MlpADCell(7, 3, norm)
        params = jax.jit(cell.init)(jax.random.key(3), jnp.zeros((1, 4)))
        p = {k: {n: np.asarray(v, np.float64) for n, v in d.items()} for k, d in params["params"].items()}
        h_ref = np.maximum(u @ p["fc_h"]["kernel"] + p["fc_h"]["bias"], 0)
        y = h_ref @ p["fc_y"]["kernel"] + p["fc_y"]["bias"]
        y = {"none": y, "lp": y / (np.linalg.norm(y, axis=-1, keepdims=True) + 1e-4), "scaled": y / np.sqrt(3),
             "layer_norm": (y - y.mean(-1, keepdims=True)) / (y.std(-1, keepdims=True) + 1e-6)}[norm]
        h, q = jax.jit(cell.apply)(params, jnp.asarray(u, jnp.float32))
        np.testing.assert_allclose(np.asarray(h), h_ref, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(q), y, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------
# Ablations (paper Figs. 5-6) and acting with the last layer only
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset,expected", [
    # docs/algorithm.md §Network wiring: u^l = [h^{l-1} ; x (skip, l>1) ; c^l (recurrent) ; c^{l+1} (forward, l<L)], D = 400 (Breakout).
    ("paper-minatar", (400 + 128 + 96, 128 + 400 + 96 + 96, 96 + 400 + 96)),
    ("paper-minatar-no-forward", (400 + 128, 128 + 400 + 96, 96 + 400 + 96)),
    ("paper-minatar-no-recurrent", (400 + 96, 128 + 400 + 96, 96 + 400)),
    ("paper-minatar-no-skip", (400 + 128 + 96, 128 + 96 + 96, 96 + 96)),
    ("paper-minatar-single-128", (400 + 128,)),
    ("paper-minatar-single-256", (400 + 256,)),
    ("paper-minatar-single-512", (400 + 512,)),
])
def test_ablation_presets_change_layer_input_sizes_as_the_spec_formula(preset, expected):
    config = preset_config(preset)
    network = make_network(config, make_env(config.env), algo_spec(config.algo))
    assert network.layer_input_sizes() == expected
    # ... and the cells built have exactly those input sizes (shapes only, nothing compiled).
    shapes = jax.eval_shape(network.init, jax.random.key(0))
    assert tuple(p["params"]["fc_h"]["kernel"].shape[0] for p in shapes) == expected


def test_last_layer_preset_acts_on_the_last_layer_alone():
    config = preset_config("paper-minatar-last-layer")
    network = make_network(config, make_env(config.env), algo_spec(config.algo))
    q = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4, 3)), jnp.float32)  # [L, B, A]
    np.testing.assert_allclose(np.asarray(network.acting_q_values(q)), np.asarray(q[-1]))
    np.testing.assert_array_equal(np.asarray(network.policy_weights()), np.eye(3))  # eval: layer i alone
    averaging = network._replace(average_predictions=True)
    np.testing.assert_allclose(np.asarray(averaging.acting_q_values(q)), np.asarray(q.mean(0)), rtol=1e-6)


# ------------------------------------------------------------------------------------------------
# Backprop baselines
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("local_learning", [True, False], ids=["ad-dqn", "ad-backprop"])
def test_gradients_between_layers_only_with_backprop(local_learning):
    """The top layer's loss reaches layer 1's parameters under ad-backprop, never under AD."""
    network = ADNetwork(obs_size=3, num_outputs=2, net_arch=(6, 5), num_heads=2, input_skip=False)
    params, target_params = random_params(network, seed=1), random_params(network, seed=2)
    batch = _batch(4)
    top_loss = lambda p: q_learning.layer_losses(network, p, target_params, batch, 0.9,
                                             local_learning=local_learning)[0][1]
    grads = jax.jit(jax.grad(top_loss))(params)
    norm_lower = sum(float(jnp.sum(jnp.square(g))) for g in jax.tree.leaves(grads[0]))
    norm_top = sum(float(jnp.sum(jnp.square(g))) for g in jax.tree.leaves(grads[1]))
    assert norm_top > 0
    assert (norm_lower == 0.0) if local_learning else (norm_lower > 1e-8)


def test_minatar_dqn_network_is_the_minatar_papers():
    config = preset_config("minatar-dqn")
    network = make_network(config, make_env("Breakout-MinAtar"), algo_spec(config.algo))
    assert isinstance(network, QNetwork) and network.torso == "minatar-conv"
    shapes = jax.eval_shape(network.init, jax.random.key(0))
    # conv 3x3x4 -> 16 (+16), VALID on 10x10 -> 8x8x16 = 1024 -> 128 (+128) -> 3 (+3)
    assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes)) == 3 * 3 * 4 * 16 + 16 + 1024 * 128 + 128 + 128 * 3 + 3
    out, context, _ = jax.eval_shape(network.step, shapes, jnp.zeros((5, 400)), ())
    assert out.shape == (1, 5, 3) and context == ()


@pytest.mark.parametrize("algo", ["ad-qrdqn", "arq", "ad-backprop", "dqn", "qrdqn"])
def test_every_algo_learns_the_one_step_probe(algo):
    """Q(s_i, a) = 1[a == i] (deterministic reward, so every quantile converges to it too)."""
    trainer, state, _ = probe_run((16, 16), horizon=1, seed=0, algo=algo)
    outputs, _ = q_at(trainer.network, state.learner.params, np.eye(2))
    q = np.asarray(trainer.network.q_values(jnp.asarray(outputs)))
    for l in range(q.shape[0]):
        np.testing.assert_allclose(q[l], np.eye(2), atol=0.15, err_msg=f"{algo} layer {l}")
    returns = np.asarray(jax.jit(trainer.evaluate)(state, jax.random.key(1)))
    np.testing.assert_allclose(returns, 1.0, atol=1e-6)


# ------------------------------------------------------------------------------------------------
# Every algo from the CLI, one output schema
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", algo_names())
def test_every_algo_runs_from_the_cli_with_one_schema(algo, tmp_path):
    out = tmp_path / algo
    env = "Pendulum-v1" if algo_spec(algo).action_space == "continuous" else "CartPole-v1"
    # ndpg has no linear learning-rate decay; the default preset (classic-fast) decays linearly.
    schedule = ["--lr-schedule", "constant"] if not algo_spec(algo).linear_lr_schedule else []
    proc = run_cli(*TINY, "--env", env, "--algo", algo, "--num-quantiles", "3", *schedule, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == algo and summary["complete"] and summary["env"] == env
    assert ("qr_loss" in summary) == (algo in ("ad-qrdqn", "qrdqn"))
    assert ("ndpg_critic" in summary) == (algo == "ndpg")
    layers = 2 if algo_spec(algo).network == "ad" else 1
    header = next(csv.reader((out / "metrics.csv").open()))
    # Actor-critic diagnostics: saturation of every tanh layer (ndpg: 2 hidden + the action; ddpg: the action), then
    # the critic-return correlation of every layer of critics (ndpg: one per layer; ddpg: its one critic).
    tanh_layers = {"ndpg": 3, "ddpg": 1}.get(algo, 0)
    diagnostics = [*[f"saturated_l{i + 1}" for i in range(tanh_layers)], "action_mean", "action_std",
                   *[f"critic_mc_corr_l{i + 1}" for i in range(tanh_layers)]] if tanh_layers else []
    assert header == ["config", "seed", "env_steps", "episodic_return", "num_episodes", "epsilon",
                      *[f"td_loss_l{i + 1}" for i in range(layers)], *[f"q_mean_l{i + 1}" for i in range(layers)],
                      *diagnostics]
    assert len(summary["final_eval_per_layer"]) == layers
    assert all(np.isfinite(v) for v in summary["final_return_per_seed"])


@pytest.mark.parametrize("algo", ["dqn", "arq"])
def test_minatar_runs_from_the_cli(algo, tmp_path):
    """The MinAtar paths that differ from AD-DQN's: the conv Q-network (dqn) and action-conditioned cells (arq)."""
    out = tmp_path / algo
    proc = run_cli(*TINY, "--env", "Breakout-MinAtar", "--algo", algo, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env"] == "Breakout-MinAtar" and summary["algo"] == algo and summary["complete"]
    config = json.loads((out / "config.json").read_text())
    assert config["torso"] == "auto" and summary.get("cell") == ("arq" if algo == "arq" else None)


def test_goodness_gradient_is_finite_for_a_constant_vector():
    """A constant y (h = 0 when every ReLU is off) must not give NaN gradients (it did with a plain sqrt)."""
    for kind in ("std", "rms", "msq", "mean", "variance"):
        for y in (jnp.zeros(5), jnp.full(5, 2.0)):
            g = jax.grad(lambda v: goodness(v, kind))(y)
            assert np.all(np.isfinite(np.asarray(g))), kind
    np.testing.assert_allclose(float(goodness(jnp.array([1.0, 3.0]), "std")), 1.0)

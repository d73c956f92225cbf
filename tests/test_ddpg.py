"""Continuous-action algos: ndpg's neuron-local rules (docs/algorithm.md §Neuron-local DDPG) and ddpg's critic
against numpy re-computations, locality of the ndpg update, and learning on a one-step continuous bandit
with a known Q-function."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from gymnax.environments import environment, spaces

from purejax_ad import ddpg
from purejax_ad import ndpg
from purejax_ad.hyperparams import Hyperparams, make_optimizer
from purejax_ad.replay import TransitionBatch
from purejax_ad.state import LearnerState
from purejax_ad.config import Config
from purejax_ad.envs import Environment
from purejax_ad.program import make_program

OBS, HIDDEN, M, B = 3, 4, 2, 5
LR_Q, LR_A, GAMMA, TAU = 0.05, 0.02, 0.9, 0.3


def _hyper(**overrides) -> Hyperparams:
    values = dict(learning_rate=LR_Q, gamma=GAMMA, max_grad_norm=1.0, tau=TAU, target_update_interval=1,
                  epsilon_start=1.0, epsilon_end=0.05, exploration_fraction=0.1, adam_b1=0.9, adam_b2=0.99,
                  adam_eps=1e-8)
    values.update(overrides)
    return Hyperparams.from_values(values)


def _ndpg_params(rng, kind: str) -> ndpg.NDPGParams:
    actor = (rng.normal(size=(HIDDEN, OBS + 1)) * 0.7, rng.normal(size=(M, HIDDEN + 1)) * 0.7)
    if kind == "linear":
        critic = tuple({"theta_v": rng.normal(size=k.shape), "theta_a": rng.normal(size=k.shape[:1])} for k in actor)
    elif kind == "quadratic":
        critic = tuple({"u": rng.normal(size=k.shape), "rho": 0.3 * rng.normal(size=k.shape[:1])} for k in actor)
    elif kind == "quadratic-shared":  # one value critic on FEATURES random features replaces every u
        critic = (*({"rho": 0.3 * rng.normal(size=k.shape[:1])} for k in actor), {"value": rng.normal(size=FEATURES)})
    else:
        critic = tuple({"w": rng.normal(size=k.shape), "u": rng.normal(size=k.shape)} for k in actor)
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), ndpg.NDPGParams(actor, critic))


def _batch(rng, noise: bool = True) -> TransitionBatch:
    return TransitionBatch(
        obs=jnp.asarray(rng.normal(size=(B, OBS)), jnp.float32),
        action=jnp.asarray(rng.uniform(-1, 1, size=(B, M)), jnp.float32),
        reward=jnp.asarray(rng.normal(size=(B,)), jnp.float32),
        terminated=jnp.asarray([False, True, False, False, True]),
        next_obs=jnp.asarray(rng.normal(size=(B, OBS)), jnp.float32),
        noise=(jnp.asarray(0.3 * rng.normal(size=(B, HIDDEN)), jnp.float32),) if noise else (),
    )


SCALES = (0.3, 0.2)
FEATURES = 6  # σ of the hidden and output layers (the quadratic critic's units of a − μ)


def _ndpg_step(kind, params, target, batch, hyper=None):
    kind = kind.removesuffix("-shared")
    hyper = _hyper() if hyper is None else hyper
    txc, txa = ndpg.local_optimizer(hyper.learning_rate), ndpg.local_optimizer(LR_A)
    learner = LearnerState((params,), (target,), (txc.init(params.critic), txa.init(params.actor)),
                                  jnp.zeros((), jnp.int32))
    return ndpg.ndpg_update(kind, txc, txa, learner, batch, hyper, train_frequency=1, noise_scales=SCALES)


def _ndpg_reference(kind, params, target, batch):
    """The local rules of docs/algorithm.md §Neuron-local DDPG, one neuron and one sample at a time, in float64 numpy."""
    p, t, b = (jax.tree.map(lambda x: np.asarray(x, np.float64), tree) for tree in (params, target, batch))
    bias = lambda x: np.append(x, 1.0)
    new_actor = [k.copy() for k in p.actor]
    new_critic = [{name: x.copy() for name, x in c.items()} for c in p.critic]
    sq_td, qs = [], []
    q_layers = [np.zeros((B, k.shape[0])) for k in p.actor]  # Q^n(v_i, a_i) per layer [B, d_l]
    shared = kind == "quadratic-shared"
    if shared:  # V(s) = wᵀφ(s), φ(s) = sqrt(2/F) cos(sW + b); its TD error is every neuron's
        w_basis, b_basis = (np.asarray(x, np.float64) for x in ndpg.value_basis(OBS, FEATURES))
        phi = lambda x: np.sqrt(2.0 / FEATURES) * np.cos(x @ w_basis + b_basis)
        value = lambda i: phi(b.obs[i]) @ p.critic[-1]["value"]
        value_next = lambda i: phi(b.next_obs[i]) @ t.critic[-1]["value"]
        deltas = [b.reward[i] + GAMMA * (1 - b.terminated[i]) * value_next(i) - value(i) for i in range(B)]
        new_critic[-1]["value"] += LR_Q * sum(deltas[i] * phi(b.obs[i]) for i in range(B)) / B
    for l, k in enumerate(p.actor):
        for n in range(k.shape[0]):
            dk, dc = np.zeros_like(k[n]), {name: np.zeros_like(x[n]) for name, x in p.critic[l].items()}
            for i in range(B):
                # Replay with the current net and the stored noise; the output layer's action is the stored one.
                h = np.tanh(p.actor[0] @ bias(b.obs[i]) + b.noise[0][i])
                v = bias(b.obs[i]) if l == 0 else bias(h)
                a = h[n] if l == 0 else b.action[i, n]
                # Noise-free target actor on the next obs.
                h_next = np.tanh(t.actor[0] @ bias(b.next_obs[i]))
                v_next = bias(b.next_obs[i]) if l == 0 else bias(h_next)
                a_next = np.tanh(t.actor[l][n] @ v_next)
                z = k[n] @ v
                mu, s = np.tanh(z), 1.0 - np.tanh(z) ** 2
                c, ct = {x: y[n] for x, y in p.critic[l].items()}, {x: y[n] for x, y in t.critic[l].items()}
                if kind == "linear":
                    q = c["theta_v"] @ v + c["theta_a"] * a
                    q_next = ct["theta_v"] @ v_next + ct["theta_a"] * a_next
                    dq_da = c["theta_a"]
                    dq = {"theta_v": v, "theta_a": a}
                elif kind.startswith("quadratic"):
                    # Q = uᵀv − ½ exp(ρ) e², e = (a − μ) / σ; at the target's own action e' = 0.
                    e, curv = (a - mu) / SCALES[l], np.exp(c["rho"])
                    q = (value(i) if shared else c["u"] @ v) - 0.5 * curv * e**2
                    q_next = value_next(i) if shared else ct["u"] @ v_next
                    dq = {"rho": -0.5 * curv * e**2} if shared else {"u": v, "rho": -0.5 * curv * e**2}
                    dq_dmu = curv * e / SCALES[l]  # ∂Q/∂μ: the actor follows the regression's own gradient
                else:
                    mu_t = np.tanh(t.actor[l][n] @ v_next)
                    s_t = 1.0 - mu_t ** 2
                    q = (a - mu) * s * (v @ c["w"]) + c["u"] @ v
                    q_next = (a_next - mu_t) * s_t * (v_next @ ct["w"]) + ct["u"] @ v_next
                    dq_da = s * (v @ c["w"])
                    dq = {"w": (a - mu) * s * v, "u": v}
                d = b.reward[i] + GAMMA * (1.0 - b.terminated[i]) * q_next - q
                for name in dc:
                    dc[name] += d * dq[name] / B
                dk += (d * dq_dmu if kind.startswith("quadratic") else dq_da) * s * v / B
                sq_td.append(0.5 * d**2)
                qs.append(q)
                q_layers[l][i, n] = q
            for name in dc:
                new_critic[l][name][n] += LR_Q * dc[name]
            new_actor[l][n] += LR_A * dk
    new = ndpg.NDPGParams(tuple(new_actor), tuple(new_critic))
    new_target = jax.tree.map(lambda x, y: TAU * x + (1 - TAU) * y, new, t)
    return new, new_target, np.mean(sq_td), np.mean(qs), q_layers


@pytest.mark.parametrize("kind", ["linear", "compatible", "quadratic", "quadratic-shared"])
def test_ndpg_update_matches_numpy_local_rule(kind):
    rng = np.random.default_rng(0)
    params, target, batch = _ndpg_params(rng, kind), _ndpg_params(rng, kind), _batch(rng)
    learner, metrics = jax.jit(_ndpg_step, static_argnums=0)(kind, params, target, batch)
    new, new_target, td_loss, q_mean, q_layers = _ndpg_reference(kind, params, target, batch)
    # The critic values the diagnostics read are the same Q^n the rule regresses.
    for got, ref in zip(ndpg.ndpg_critic_values(kind.removesuffix("-shared"), params, batch, SCALES), q_layers):
        np.testing.assert_allclose(np.asarray(got), ref, rtol=2e-5, atol=2e-6)
    jax.tree.map(lambda got, ref: np.testing.assert_allclose(np.asarray(got), ref, rtol=2e-5, atol=2e-6),
                 learner.params[0], new)
    jax.tree.map(lambda got, ref: np.testing.assert_allclose(np.asarray(got), ref, rtol=2e-5, atol=2e-6),
                 learner.target_params[0], new_target)
    np.testing.assert_allclose(float(metrics["td_loss"][0]), td_loss, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["q_mean"][0]), q_mean, rtol=1e-5, atol=1e-6)
    assert int(learner.num_updates) == 1
    # The update moved every array (nothing silently zero).
    for got, old in zip(jax.tree.leaves(learner.params[0]), jax.tree.leaves(params)):
        assert not np.allclose(np.asarray(got), np.asarray(old))


@pytest.mark.parametrize("kind", ["linear", "compatible", "quadratic", "quadratic-shared"])
def test_ndpg_neuron_update_ignores_downstream_and_sibling_weights(kind):
    rng = np.random.default_rng(1)
    params, target, batch = _ndpg_params(rng, kind), _ndpg_params(rng, kind), _batch(rng)
    step = jax.jit(_ndpg_step, static_argnums=0)
    base, _ = step(kind, params, target, batch)
    # Replace the output layer's weights and critics (online and target) by other random values.
    other = _ndpg_params(np.random.default_rng(7), kind)
    swap = lambda p: ndpg.NDPGParams((p.actor[0], other.actor[1]), (p.critic[0], other.critic[1], *p.critic[2:]))
    changed, _ = step(kind, swap(params), swap(target), batch)
    for got, ref in zip(jax.tree.leaves((changed.params[0].actor[0], changed.params[0].critic[0])),
                        jax.tree.leaves((base.params[0].actor[0], base.params[0].critic[0]))):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(ref))
    # Upstream activity does matter to the output layer (forward propagation, not backprop).
    assert not np.allclose(np.asarray(changed.params[0].actor[1] - other.actor[1]),
                           np.asarray(base.params[0].actor[1] - params.actor[1]))
    # Perturbing hidden neuron 0 (its weights and critic) leaves hidden neurons 1..3 unchanged.
    bump = lambda p: ndpg.NDPGParams((p.actor[0].at[0].add(0.5), p.actor[1]),
                                     (jax.tree.map(lambda x: x.at[0].add(0.5), p.critic[0]), *p.critic[1:]))
    sibling, _ = step(kind, bump(params), bump(target), batch)
    for got, ref in zip(jax.tree.leaves((sibling.params[0].actor[0], sibling.params[0].critic[0])),
                        jax.tree.leaves((base.params[0].actor[0], base.params[0].critic[0]))):
        np.testing.assert_array_equal(np.asarray(got)[1:], np.asarray(ref)[1:])
        assert not np.allclose(np.asarray(got)[0], np.asarray(ref)[0])


@pytest.mark.parametrize("algo", ["ndpg", "ddpg"])
def test_actor_critic_diagnostics_match_numpy(algo):
    """Saturated fractions (|x| > 0.9) per tanh layer and the action's mean and spread, on replayed obs; per
    layer of critics the mean correlation of its critics' Q(s, a) with the Monte-Carlo returns of replayed steps."""
    from purejax_ad.replay import Window
    rng = np.random.default_rng(5)
    bandit = ContinuousBandit()
    env = Environment("bandit", "classic", bandit, bandit.default_params, OBS, 0, 10, False, jnp.float32, (OBS,),
                      action_dim=M)
    agent = make_program(Config(env="Pendulum-v1", algo=algo, net_arch=(HIDDEN,)), env).agent
    params = _ndpg_params(rng, "linear") if algo == "ndpg" else _ddpg_params(rng, (HIDDEN,))
    obs = rng.normal(size=(B, 1, OBS)) * 3.0  # large inputs: some units saturate, some do not
    z = jnp.zeros((B, 1))
    window = Window(jnp.asarray(obs, jnp.float32), jnp.zeros((B, 1, M)), z, z.astype(bool), z.astype(bool),
                    z.astype(bool), jnp.zeros((B, OBS)), ())
    batch = _batch(rng, noise=algo == "ndpg")  # replayed steps with their (here random) Monte-Carlo returns
    returns = rng.normal(size=B)
    got = np.asarray(agent.diagnostics((params,), window, (batch, jnp.asarray(returns, jnp.float32), jnp.asarray(True))))
    p = jax.tree.map(lambda x: np.asarray(x, np.float64), params)
    if algo == "ndpg":
        bias = lambda x: np.concatenate([x, np.ones((B, 1))], axis=1)
        h = np.tanh(bias(obs[:, 0]) @ p.actor[0].T)
        layers = [h, np.tanh(bias(h) @ p.actor[1].T)]
    else:
        layers = [np.tanh(_np_mlp(p.actor, obs[:, 0]))]
    expected = [np.mean(np.abs(x) > 0.9) for x in layers] + [np.mean(layers[-1]), np.std(layers[-1])]
    # Per layer of critics: the mean over its critics of corr(Q(s_i, a_i), G_i).
    if algo == "ndpg":
        critic_layers = _ndpg_reference("linear", params, params, batch)[-1]
    else:
        b = jax.tree.map(lambda x: np.asarray(x, np.float64), batch)
        critic_layers = [_np_mlp(p.critic, np.concatenate([b.obs, b.action], axis=1))]
    expected += [np.mean([np.corrcoef(q[:, j], returns)[0, 1] for j in range(q.shape[1])]) for q in critic_layers]
    assert agent.diagnostic_names == (*[f"saturated_l{i + 1}" for i in range(len(layers))], "action_mean",
                                      "action_std", *[f"critic_mc_corr_l{i + 1}" for i in range(len(critic_layers))])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert 0 < expected[0] < 1  # the test exercises both sides of the threshold


def _np_mlp(layers, x):
    for w, b in layers[:-1]:
        x = np.maximum(x @ w + b, 0.0)
    w, b = layers[-1]
    return x @ w + b


def _ddpg_params(rng, hidden=(8, 8)) -> ddpg.DDPGParams:
    """Random MLPs with :func:`ddpg.ddpg_init`'s structure (numpy draws: no PRNG compile)."""
    def layers(sizes):
        return tuple((jnp.asarray(rng.normal(size=(i, o)) / np.sqrt(i), jnp.float32),
                      jnp.asarray(0.1 * rng.normal(size=(o,)), jnp.float32)) for i, o in zip(sizes[:-1], sizes[1:]))
    return ddpg.DDPGParams(layers((OBS, *hidden, M)), layers((OBS + M, *hidden, 1)))


def test_ddpg_critic_target_and_loss_match_numpy():
    rng = np.random.default_rng(3)
    params, target = _ddpg_params(rng), _ddpg_params(rng)
    batch = _batch(np.random.default_rng(2), noise=False)
    p, t, b = (jax.tree.map(lambda x: np.asarray(x, np.float64), tree) for tree in (params, target, batch))
    a_next = np.tanh(_np_mlp(t.actor, b.next_obs))
    y_ref = b.reward + GAMMA * (1 - b.terminated) * _np_mlp(t.critic, np.concatenate([b.next_obs, a_next], 1))[:, 0]
    q_ref = _np_mlp(p.critic, np.concatenate([b.obs, b.action], 1))[:, 0]
    y = jax.jit(ddpg.ddpg_target)(target, batch, GAMMA)
    loss, q_mean = jax.jit(ddpg.ddpg_critic_loss)(params.critic, batch, y)
    np.testing.assert_allclose(np.asarray(y), y_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(loss), np.mean(0.5 * (q_ref - y_ref) ** 2), rtol=1e-5)
    np.testing.assert_allclose(float(q_mean), np.mean(q_ref), rtol=1e-5, atol=1e-6)
    assert np.ptp(y_ref[~b.terminated.astype(bool)] - b.reward[~b.terminated.astype(bool)]) > 0.1  # non-trivial
    # The full update reports the same pre-update loss and soft-updates the target.
    hyper = _hyper()
    txc, txa = make_optimizer(1e-3, 1.0), make_optimizer(1e-4, 1.0)
    learner = LearnerState((params,), (target,), (txc.init(params.critic), txa.init(params.actor)),
                                  jnp.zeros((), jnp.int32))
    update = jax.jit(lambda learner, batch, hyper: ddpg.ddpg_update(txc, txa, learner, batch, hyper, 1))
    learner, metrics = update(learner, batch, hyper)
    np.testing.assert_allclose(float(metrics["td_loss"][0]), np.mean(0.5 * (q_ref - y_ref) ** 2), rtol=1e-5)
    jax.tree.map(lambda new_t, new_p, old_t: np.testing.assert_allclose(
        np.asarray(new_t), TAU * np.asarray(new_p) + (1 - TAU) * np.asarray(old_t), rtol=1e-5, atol=1e-7),
        learner.target_params[0], learner.params[0], target)


# ------------------------------------------------------------------------------------------------
# One-step continuous bandit: obs one_hot(i), i uniform in {0, 1}; reward 1 − (a − c_i)², c = (−0.5, 0.5);
# then terminate. So Q(s_i, a) = 1 − (a − c_i)², the optimal action is c_i and the optimal return 1.
# ------------------------------------------------------------------------------------------------

CENTRES = (-0.5, 0.5)


@struct.dataclass
class BanditState(environment.EnvState):
    idx: jax.Array


@struct.dataclass
class BanditParams(environment.EnvParams):
    max_steps_in_episode: int = 10


class ContinuousBandit(environment.Environment):
    @property
    def default_params(self) -> BanditParams:
        return BanditParams()

    def get_obs(self, state, params=None, key=None):
        return jax.nn.one_hot(state.idx, 2, dtype=jnp.float32)

    def reset_env(self, key, params):
        state = BanditState(time=0, idx=jax.random.randint(key, (), 0, 2))
        return self.get_obs(state), state

    def step_env(self, key, state, action, params):
        reward = 1.0 - (jnp.reshape(action, ()) - jnp.asarray(CENTRES)[state.idx]) ** 2
        return self.get_obs(state), state.replace(time=state.time + 1), reward, jnp.asarray(True), {}

    def action_space(self, params=None):
        return spaces.Box(-1.0, 1.0, (1,))

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (2,), jnp.float32)


def bandit_run(algo: str, ndpg_critic: str = "compatible", evaluate: bool = True, **overrides):
    bandit = ContinuousBandit()
    env = Environment("bandit", "classic", bandit, bandit.default_params, 2, 0, 10, False, jnp.float32, (2,),
                      action_dim=1)
    config = Config(env="Pendulum-v1", algo=algo, ndpg_critic=ndpg_critic, net_arch=(16,), num_envs=4,
                    batch_size=32, learning_starts=200, total_timesteps=3000, train_frequency=4, log_interval=1400,
                    learning_rate=1e-2, actor_learning_rate=3e-3 if algo == "ddpg" else 1e-2,
                    target_update_interval=4, tau=0.05, gamma=0.9, exploration_noise=0.1, node_noise=0.1,
                    num_seeds=1, num_eval_episodes=16, eval_max_steps=3)
    config = dataclasses.replace(config, **overrides)
    trainer = make_program(config, env)
    state, metrics = jax.jit(trainer.train)(jax.random.key(0))
    returns = float(jax.jit(trainer.evaluate)(state, jax.random.key(1))[0]) if evaluate else None
    return trainer, state, metrics, returns


def test_ddpg_learns_the_bandit_q_function_and_policy():
    trainer, state, metrics, returns = bandit_run("ddpg")
    params = state.learner.params[0]
    obs = jnp.repeat(jnp.eye(2), 5, axis=0)
    acts = jnp.tile(jnp.linspace(-0.8, 0.8, 5), 2)[:, None]
    known = 1.0 - (np.asarray(acts)[:, 0] - np.repeat(CENTRES, 5)) ** 2
    q = np.asarray(ddpg.ddpg_q(params.critic, obs, acts))
    np.testing.assert_allclose(q, known, atol=0.2)  # over a grid where Q spans [−0.7, 1]
    assert np.mean(np.abs(q - known)) < 0.08
    np.testing.assert_allclose(np.asarray(trainer.agent.policy(params.actor, jnp.eye(2)))[:, 0], CENTRES, atol=0.3)
    assert returns > 0.95  # optimal 1; a uniform random policy gets 1 − E(a − c)² ≈ 0.42
    assert metrics.td_loss.shape == (2, 1) and bool(np.all(metrics.finite))
    np.testing.assert_array_equal(np.asarray(metrics.num_episodes), np.asarray(metrics.env_steps))


def test_ndpg_compatible_critic_learns_a_state_dependent_bandit_policy():
    trainer, state, metrics, _ = bandit_run("ndpg", "compatible", evaluate=False)  # (evaluate: the ddpg test)
    actions = np.asarray(trainer.agent.policy(state.learner.params[0].actor, jnp.eye(2)))[:, 0]
    assert actions[0] < -0.2 and actions[1] > 0.2, actions  # moved toward c = (−0.5, 0.5) from ~0
    expected_return = 1.0 - np.mean((actions - np.asarray(CENTRES)) ** 2)  # both starts equally likely
    # Six other seeds: actions about ±0.75 (the slow compatible critic lets the actor overshoot), 0.92-0.97.
    assert expected_return > 0.88, expected_return
    assert bool(np.all(metrics.finite))


def test_ndpg_quadratic_critic_learns_the_bandit_optimum_without_overshooting():
    # 20k steps (the compatible test: 3k). The compatible critics overshoot to about ±0.75 at this length.
    trainer, state, metrics, _ = bandit_run("ndpg", "quadratic", evaluate=False, total_timesteps=20_000,
                                            log_interval=9_900, ndpg_optimizer="adam", learning_rate=3e-2,
                                            actor_learning_rate=1e-2)
    actions = np.asarray(trainer.agent.policy(state.learner.params[0].actor, jnp.eye(2)))[:, 0]
    np.testing.assert_allclose(actions, CENTRES, atol=0.08)  # c = (−0.5, 0.5): reached, not passed
    assert bool(np.all(metrics.finite))
    # Each output neuron's critic has learned a positive curvature and the state values (≈ 1 at the optimum).
    critic = state.learner.params[0].critic[-1]
    assert float(jnp.exp(critic["rho"][0])) > 0
    hidden = ndpg.ndpg_forward(state.learner.params[0].actor, jnp.eye(2))[0][-1]
    np.testing.assert_allclose(np.asarray(hidden @ critic["u"][0]), 1.0, atol=0.1)


def test_n_step_targets_by_hand():
    """ndpg_n_step: partial returns and bootstraps of 4 windows of 3 steps, worked by hand (γ = 0.5)."""
    from purejax_ad.replay import Window
    f, t = False, True
    reward = jnp.asarray([[1.0, 2.0, 4.0]] * 4)
    terminated = jnp.asarray([[f, f, f], [f, t, f], [f, f, f], [f, f, f]])
    truncated = jnp.asarray([[f, f, f], [f, f, f], [f, t, f], [f, f, t]])
    obs = jnp.arange(4 * 3 * 2, dtype=jnp.float32).reshape(4, 3, 2)
    next_obs = -jnp.ones((4, 2))
    window = Window(obs, jnp.zeros((4, 3, M)), reward, terminated, truncated, jnp.zeros((4, 3), bool), next_obs,
                    (jnp.ones((4, 3, HIDDEN)),))
    batch, discount = ndpg.n_step_transitions(window, jnp.float32(0.5))
    # full window: 1 + 0.5*2 + 0.25*4 = 3, bootstrap γ³ at next_obs; termination at step 1: 1 + 1 = 2, no bootstrap;
    # truncation at step 1: r_0 only, bootstrap γ¹ at s_{t+1}; truncation at the last step: the full window.
    np.testing.assert_allclose(np.asarray(batch.reward), [3.0, 2.0, 1.0, 3.0])
    np.testing.assert_allclose(np.asarray(discount), [0.125, 0.0, 0.5, 0.125])
    np.testing.assert_array_equal(np.asarray(batch.next_obs), np.asarray([next_obs[0], next_obs[1], obs[2, 1],
                                                                          next_obs[3]]))
    np.testing.assert_array_equal(np.asarray(batch.obs), np.asarray(obs[:, 0]))
    assert not np.asarray(batch.terminated).any() and batch.noise[0].shape == (4, HIDDEN)


def test_n_step_update_is_the_one_step_rule_on_the_n_step_target():
    """An n-step update equals the one-step rule on a batch whose reward is the partial return and whose γ is the
    bootstrap discount: with n = 1 and no episode end, it is the one-step update exactly."""
    from purejax_ad.replay import Window
    rng = np.random.default_rng(3)
    params, target, batch = _ndpg_params(rng, "quadratic"), _ndpg_params(rng, "quadratic"), _batch(rng)
    batch = batch._replace(terminated=jnp.zeros((B,), bool))
    window = Window(batch.obs[:, None], batch.action[:, None], batch.reward[:, None], batch.terminated[:, None],
                    jnp.zeros((B, 1), bool), jnp.zeros((B, 1), bool), batch.next_obs, (batch.noise[0][:, None],))
    n_batch, discount = ndpg.n_step_transitions(window, jnp.float32(GAMMA))
    hyper = _hyper()
    txc, txa = ndpg.local_optimizer(hyper.learning_rate), ndpg.local_optimizer(LR_A)
    learner = LearnerState((params,), (target,), (txc.init(params.critic), txa.init(params.actor)),
                           jnp.zeros((), jnp.int32))
    got, _ = ndpg.ndpg_update("quadratic", txc, txa, learner, n_batch, hyper, 1, SCALES, discount)
    want, _ = _ndpg_step("quadratic", params, target, batch)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7),
                 got.params[0], want.params[0])

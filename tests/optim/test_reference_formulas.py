"""Each optimizer against the lecture's formula, written out in numpy below.

The numpy versions run in float32 with the scalar coefficients (1 − β, 1 − βᵗ,
η) rounded once from float64, and return the parameter change θ_t − θ_{t−1}
for each of 100 random gradients.
"""

import numpy as np
import optax
import pytest
from optim_testing import assert_close_relative, run_updates

from cnnlab import optim

f32 = np.float32


def sgd_reference(grads, learning_rate):
    return np.array([-f32(learning_rate) * g for g in grads])


def momentum_reference(grads, learning_rates, beta, nesterov=False):
    """v ← βv + ηg; θ ← θ − v (momentum) or φ ← φ − (βv + ηg) (NAG in φ = θ − βv)."""
    v = np.zeros_like(grads[0])
    steps = []
    for g, lr in zip(grads, learning_rates):
        v = f32(beta) * v + f32(lr) * g
        steps.append(-(f32(beta) * v + f32(lr) * g) if nesterov else -v)
    return np.array(steps)


def adagrad_reference(grads, learning_rate, eps, initial_accumulator, eps_in_sqrt):
    """G ← G + g²; θ ← θ − η g / √(G + ε)  (or / (√G + ε))."""
    G = np.full_like(grads[0], initial_accumulator)
    steps = []
    for g in grads:
        G = G + g * g
        denominator = np.sqrt(G + f32(eps)) if eps_in_sqrt else np.sqrt(G) + f32(eps)
        steps.append(-f32(learning_rate) * (g / denominator))
    return np.array(steps)


def rmsprop_reference(grads, learning_rate, decay, eps, eps_in_sqrt):
    """r ← ρr + (1 − ρ)g²; θ ← θ − η g / √(r + ε)  (or / (√r + ε))."""
    r = np.zeros_like(grads[0])
    steps = []
    for g in grads:
        r = f32(decay) * r + f32(1 - decay) * (g * g)
        denominator = np.sqrt(r + f32(eps)) if eps_in_sqrt else np.sqrt(r) + f32(eps)
        steps.append(-f32(learning_rate) * (g / denominator))
    return np.array(steps)


def adadelta_reference(grads, learning_rate, rho, eps):
    """Zeiler 2012, Algorithm 1, with θ ← θ + ηΔ."""
    mean_g2 = np.zeros_like(grads[0])
    mean_delta2 = np.zeros_like(grads[0])
    steps = []
    for g in grads:
        mean_g2 = f32(rho) * mean_g2 + f32(1 - rho) * (g * g)
        delta = -(np.sqrt(mean_delta2 + f32(eps)) / np.sqrt(mean_g2 + f32(eps))) * g
        mean_delta2 = f32(rho) * mean_delta2 + f32(1 - rho) * (delta * delta)
        steps.append(f32(learning_rate) * delta)
    return np.array(steps)


def adam_reference(grads, learning_rate, b1, b2, eps):
    """Kingma & Ba, Algorithm 1."""
    m = np.zeros_like(grads[0])
    v = np.zeros_like(grads[0])
    steps = []
    for t, g in enumerate(grads, start=1):
        m = f32(b1) * m + f32(1 - b1) * g
        v = f32(b2) * v + f32(1 - b2) * (g * g)
        m_hat = m / f32(1 - b1**t)
        v_hat = v / f32(1 - b2**t)
        steps.append(-f32(learning_rate) * (m_hat / (np.sqrt(v_hat) + f32(eps))))
    return np.array(steps)


@pytest.mark.parametrize("learning_rate", [0.1, 1e-3])
def test_sgd_matches_formula(random_grads, learning_rate):
    actual = run_updates(optim.sgd(learning_rate), random_grads)
    assert_close_relative(actual, sgd_reference(random_grads, learning_rate), rtol=1e-6)


@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
@pytest.mark.parametrize("learning_rate, beta", [(0.1, 0.9), (0.01, 0.5), (0.3, 0.99)])
def test_momentum_and_nesterov_match_formula(random_grads, nesterov, learning_rate, beta):
    factory = optim.nesterov if nesterov else optim.momentum
    actual = run_updates(factory(learning_rate, beta=beta), random_grads)
    expected = momentum_reference(random_grads, [learning_rate] * len(random_grads), beta, nesterov)
    assert_close_relative(actual, expected, rtol=1e-6)


@pytest.mark.parametrize("nesterov", [False, True], ids=["momentum", "nesterov"])
def test_momentum_and_nesterov_follow_the_lecture_under_a_schedule(random_grads, nesterov):
    """v ← βv + η_t g keeps each gradient's own η_t inside the velocity."""
    schedule = optax.exponential_decay(0.1, transition_steps=10, decay_rate=0.5)
    factory = optim.nesterov if nesterov else optim.momentum
    actual = run_updates(factory(schedule, beta=0.9), random_grads)
    learning_rates = [f32(schedule(t)) for t in range(len(random_grads))]
    expected = momentum_reference(random_grads, learning_rates, 0.9, nesterov)
    assert_close_relative(actual, expected, rtol=1e-6)


@pytest.mark.parametrize("eps_in_sqrt", [True, False])
@pytest.mark.parametrize(
    "learning_rate, eps, initial_accumulator",
    [(0.01, 1e-8, 0.0), (0.5, 0.1, 0.1), (1.0, 1e-3, 2.0)],
)
def test_adagrad_matches_formula(random_grads, learning_rate, eps, initial_accumulator, eps_in_sqrt):
    tx = optim.adagrad(learning_rate, eps=eps, initial_accumulator=initial_accumulator, eps_in_sqrt=eps_in_sqrt)
    expected = adagrad_reference(random_grads, learning_rate, eps, initial_accumulator, eps_in_sqrt)
    assert_close_relative(run_updates(tx, random_grads), expected, rtol=1e-6)


@pytest.mark.parametrize("eps_in_sqrt", [True, False])
@pytest.mark.parametrize("learning_rate, decay, eps", [(1e-3, 0.9, 1e-8), (0.1, 0.99, 0.1), (0.01, 0.0, 1e-3)])
def test_rmsprop_matches_formula(random_grads, learning_rate, decay, eps, eps_in_sqrt):
    tx = optim.rmsprop(learning_rate, decay=decay, eps=eps, eps_in_sqrt=eps_in_sqrt)
    expected = rmsprop_reference(random_grads, learning_rate, decay, eps, eps_in_sqrt)
    assert_close_relative(run_updates(tx, random_grads), expected, rtol=1e-6)


@pytest.mark.parametrize("learning_rate, rho, eps", [(1.0, 0.95, 1e-6), (1.0, 0.9, 1e-6), (0.5, 0.5, 1e-3)])
def test_adadelta_matches_zeiler_algorithm_1(random_grads, learning_rate, rho, eps):
    tx = optim.adadelta(learning_rate, rho=rho, eps=eps)
    expected = adadelta_reference(random_grads, learning_rate, rho, eps)
    assert_close_relative(run_updates(tx, random_grads), expected, rtol=1e-6)


@pytest.mark.parametrize(
    "learning_rate, b1, b2, eps",
    [(1e-3, 0.9, 0.999, 1e-8), (0.1, 0.5, 0.9, 1e-3), (1e-2, 0.0, 0.99, 1e-8), (1e-3, 0.95, 0.9999, 1e-8)],
)
def test_adam_matches_kingma_ba_algorithm_1(random_grads, learning_rate, b1, b2, eps):
    tx = optim.adam(learning_rate, b1=b1, b2=b2, eps=eps)
    expected = adam_reference(random_grads, learning_rate, b1, b2, eps)
    assert_close_relative(run_updates(tx, random_grads), expected, rtol=1e-6)


def test_reference_check_is_sensitive_to_the_eps_placement(random_grads):
    """Guards the tolerance: the two ε placements must be told apart by the same check."""
    tx = optim.rmsprop(0.1, decay=0.9, eps=1e-3, eps_in_sqrt=False)
    wrong = rmsprop_reference(random_grads, 0.1, 0.9, 1e-3, eps_in_sqrt=True)
    with pytest.raises(AssertionError):
        assert_close_relative(run_updates(tx, random_grads), wrong, rtol=1e-6)

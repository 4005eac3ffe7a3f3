"""The lecture's claims about the adaptive methods, as properties of the transforms.

The effective step of an element is |update / gradient|: the learning rate the
method actually applied to that element at that step.
"""

import numpy as np
import pytest
from optim_testing import run_updates

from cnnlab import optim


def effective_steps(tx, grads) -> np.ndarray:
    return np.abs(run_updates(tx, grads) / grads)


def stationary_grads(steps: int) -> np.ndarray:
    """The same gradient at every step, elements of very different sizes."""
    g = np.array([1e-3, -0.1, 1.0, -30.0], np.float32)
    return np.broadcast_to(g, (steps, g.size)).copy()


@pytest.mark.parametrize("eps_in_sqrt", [True, False])
def test_adagrad_effective_step_never_increases(random_grads, eps_in_sqrt):
    steps = effective_steps(optim.adagrad(0.01, eps_in_sqrt=eps_in_sqrt), random_grads)
    assert np.all(steps[1:] <= steps[:-1] * (1 + 1e-6))
    assert np.all(steps[-1] < 0.5 * steps[0])  # and it does shrink


def test_rmsprop_effective_step_can_increase_where_adagrad_cannot(random_grads):
    """Contrast for the test above: with forgetting, steps grow after large gradients fade."""
    steps = effective_steps(optim.rmsprop(0.01, decay=0.9), random_grads)
    assert np.any(steps[1:] > steps[:-1] * 1.02)


def test_rmsprop_effective_step_does_not_vanish_under_stationary_gradients():
    learning_rate, eps, grads = 1e-3, 1e-8, stationary_grads(2000)
    steps = effective_steps(optim.rmsprop(learning_rate, decay=0.9, eps=eps), grads)
    # r → g², so the step settles at η/√(g² + ε) instead of decaying like AdaGrad's η/√(t g²)
    np.testing.assert_allclose(steps[-1], learning_rate / np.sqrt(grads[0] ** 2 + eps), rtol=1e-3)
    adagrad_steps = effective_steps(optim.adagrad(learning_rate, eps=eps), grads)
    assert np.all(adagrad_steps[-1] < 0.25 * adagrad_steps[99])


def test_adadelta_effective_step_does_not_vanish_under_stationary_gradients():
    steps = effective_steps(optim.adadelta(1.0, rho=0.95, eps=1e-6), stationary_grads(2000))
    # E[Δ²] grows with every step taken, so the step grows rather than decays
    assert np.all(steps[-1] >= steps[99])
    assert np.all(steps[-1] >= 0.5 * steps.max(axis=0))


@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e3])
def test_adam_first_step_is_the_learning_rate_whatever_the_gradient_scale(scale):
    """Bias correction: m̂₁ = g₁ and v̂₁ = g₁², so |Δθ₁| = α·|g|/(|g| + ε) ≈ α."""
    rng = np.random.default_rng(1)
    magnitudes = rng.uniform(0.5, 2.0, (1, 64)) * scale  # |g| ≥ 5e-5 ≫ ε = 1e-8
    grads = (rng.choice([-1.0, 1.0], (1, 64)) * magnitudes).astype(np.float32)
    first = np.abs(run_updates(optim.adam(1e-3), grads)[0])
    np.testing.assert_allclose(first, 1e-3, rtol=1e-3)


def test_adam_steps_stay_near_the_learning_rate_while_the_gradient_is_steady():
    """Without bias correction the first step would be α(1 − β₁)/√(1 − β₂) ≈ 3.2α."""
    steps = np.abs(run_updates(optim.adam(1e-3), stationary_grads(20)))
    np.testing.assert_allclose(steps[:, 1:], 1e-3, rtol=1e-3)  # |g| ≥ 0.1 ≫ ε

"""Ours against optax's built-ins where the definitions coincide, and NAG's look-ahead identity."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from optim_testing import assert_close_relative, run_updates

from cnnlab import optim

EQUIVALENT_TO_OPTAX = {
    # ours, optax's, tolerance: 1e-6 unless the two round differently (see each note)
    "adam": (optim.adam(1e-3), optax.adam(1e-3), 3e-5),  # optax's float32 1 − β₂ᵗ is off by ~1e-5
    "adam_other": (optim.adam(0.1, b1=0.5, b2=0.9, eps=1e-3), optax.adam(0.1, b1=0.5, b2=0.9, eps=1e-3), 3e-5),
    "adadelta": (optim.adadelta(1.0, rho=0.9, eps=1e-6), optax.adadelta(1.0, rho=0.9, eps=1e-6), 1e-6),
    "adadelta_paper": (optim.adadelta(0.5, rho=0.95, eps=1e-6), optax.adadelta(0.5, rho=0.95, eps=1e-6), 1e-6),
    "rmsprop": (optim.rmsprop(1e-3, decay=0.9, eps=1e-8), optax.rmsprop(1e-3, decay=0.9, eps=1e-8), 1e-6),
    "rmsprop_eps_outside": (
        optim.rmsprop(1e-2, decay=0.99, eps=1e-3, eps_in_sqrt=False),
        optax.rmsprop(1e-2, decay=0.99, eps=1e-3, eps_in_sqrt=False),
        1e-6,
    ),
    "adagrad": (
        optim.adagrad(0.1, eps=1e-7, initial_accumulator=0.1),
        optax.adagrad(0.1, initial_accumulator_value=0.1, eps=1e-7),
        1e-6,
    ),
    "sgd": (optim.sgd(0.1), optax.sgd(0.1), 1e-6),
    # v = η·m exactly in real numbers; float32 rounds η(βm + g) and βv + ηg differently
    "momentum": (optim.momentum(0.1, beta=0.9), optax.sgd(0.1, momentum=0.9), 1e-5),
    "nesterov": (optim.nesterov(0.1, beta=0.9), optax.sgd(0.1, momentum=0.9, nesterov=True), 1e-5),
}


@pytest.mark.parametrize("case", EQUIVALENT_TO_OPTAX)
def test_equals_optax_builtin(random_grads, case):
    ours, theirs, rtol = EQUIVALENT_TO_OPTAX[case]
    assert_close_relative(run_updates(ours, random_grads), run_updates(theirs, random_grads), rtol=rtol)


@pytest.mark.parametrize("name", ["momentum", "nesterov"])
def test_momentum_differs_from_optax_under_a_decaying_schedule(random_grads, name):
    """Documented difference: the lecture's v ← βv + η_t g against optax's trace-then-scale."""
    schedule = optax.exponential_decay(0.1, transition_steps=5, decay_rate=0.5)
    ours = optim.create(name, learning_rate=schedule, beta=0.9)
    theirs = optax.sgd(schedule, momentum=0.9, nesterov=name == "nesterov")
    ours_steps, their_steps = run_updates(ours, random_grads), run_updates(theirs, random_grads)
    np.testing.assert_allclose(ours_steps[0], their_steps[0], rtol=1e-6)  # same η on the first step
    later = slice(10, None)
    gap = np.max(np.abs(ours_steps[later] - their_steps[later])) / np.max(np.abs(their_steps[later]))
    assert gap > 0.1


def ravine(theta):
    """An ill-conditioned quadratic, condition number 100."""
    return 0.5 * (theta[0] ** 2 + 100.0 * theta[1] ** 2)


def rosenbrock(theta):
    return (1.0 - theta[0]) ** 2 + 100.0 * (theta[1] - theta[0] ** 2) ** 2


def literal_nag(loss, theta0, learning_rate, beta, steps):
    """The lecture's NAG, gradient at the look-ahead point: returns θ_t and v_t for t = 1..steps."""
    grad = jax.grad(loss)

    def step(carry, _):
        theta, v = carry
        v = beta * v + learning_rate * grad(theta - beta * v)
        theta = theta - v
        return (theta, v), (theta, v)

    _, (thetas, velocities) = jax.lax.scan(step, (theta0, jnp.zeros_like(theta0)), None, length=steps)
    return thetas, velocities


def optimizer_path(tx, loss, start, steps):
    """Parameters after each of `steps` updates of `tx` on `loss`, from `start`."""
    grad = jax.grad(loss)

    def step(carry, _):
        params, state = carry
        updates, state = tx.update(grad(params), state, params)
        params = optax.apply_updates(params, updates)
        return (params, state), params

    _, path = jax.lax.scan(step, (start, tx.init(start)), None, length=steps)
    return path


@pytest.mark.parametrize(
    "loss, start, learning_rate",
    [(ravine, (1.0, 1.0), 0.005), (rosenbrock, (-1.2, 1.0), 1e-4)],
    ids=["ravine", "rosenbrock"],
)
def test_nag_look_ahead_identity(loss, start, learning_rate):
    """θ_t = φ_t + βv_t at every one of 200 steps: the φ form is the same sequence."""
    beta, steps = 0.9, 200
    theta0 = jnp.asarray(start, jnp.float32)
    thetas, velocities = jax.jit(literal_nag, static_argnums=(0, 4))(loss, theta0, learning_rate, beta, steps)
    phis = jax.jit(optimizer_path, static_argnums=(0, 1, 3))(
        optim.nesterov(learning_rate, beta=beta), loss, theta0, steps
    )
    np.testing.assert_allclose(np.asarray(phis + beta * velocities), np.asarray(thetas), rtol=0, atol=1e-5)
    travelled = np.max(np.abs(np.asarray(thetas[-1]) - np.asarray(theta0)))
    assert travelled > 0.1  # the iteration moved, so the identity is not vacuous

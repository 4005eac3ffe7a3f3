"""Helpers shared by the optimizer tests: running a transform over a sequence of gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnnlab import optim

LECTURE_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adadelta", "adam")

# Hyperparameters that make every optimizer take sensible steps on unit-scale
# gradients; the tests that need the lecture's defaults read the conf files.
SMALL_STEPS = {
    "sgd": {"learning_rate": 0.01},
    "momentum": {"learning_rate": 0.01, "beta": 0.9},
    "nesterov": {"learning_rate": 0.01, "beta": 0.9},
    "adagrad": {"learning_rate": 0.01},
    "rmsprop": {"learning_rate": 0.001},
    "adadelta": {"learning_rate": 1.0},
    "adam": {"learning_rate": 0.001},
}


def run_updates(tx: optax.GradientTransformation, grads: np.ndarray, params=None) -> np.ndarray:
    """The updates `tx` returns for grads[0], grads[1], ... at fixed params, stacked.

    One compiled `lax.scan`, so a 100-step run costs one compilation.
    """
    params = jnp.zeros(grads.shape[1:], grads.dtype) if params is None else params

    def step(state, g):
        updates, state = tx.update(g, state, params)
        return state, updates

    run = jax.jit(lambda gs: jax.lax.scan(step, tx.init(params), gs)[1])
    return np.asarray(run(jnp.asarray(grads)))


def assert_close_relative(actual: np.ndarray, expected: np.ndarray, rtol: float) -> None:
    """Agreement to `rtol` relative, with an absolute floor at `rtol` of the largest |expected|.

    The floor is there because running means of signed gradients cancel: an
    element of m or v near 0 carries an absolute rounding error of the size of
    the gradients, and XLA may fuse βv + g into one multiply-add where numpy
    rounds twice. Relative to the scale of the updates both still agree to rtol.
    """
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * float(np.max(np.abs(expected))))


def make(name: str, **overrides) -> optax.GradientTransformation:
    return optim.create(name, **{**SMALL_STEPS[name], **overrides})

"""The lecture's optimizers as `scale_by_*` gradient transformations.

Each transform maps incoming updates `u` (gradients, or gradients already
scaled by the learning rate, see `cnnlab.optim.aliases`) to a new direction and
keeps its state in a `NamedTuple`. Nothing here applies a learning rate or
flips a sign: that is the job of `optax.scale_by_learning_rate` in the aliases.

Conventions shared with optax:
- state leaves have the parameters' shapes and dtypes (bf16 parameters give a
  bf16 state), counters are int32 scalars;
- outputs and state are cast back to the dtypes they came in with, so float32
  hyperparameters injected by `optax.inject_hyperparams` never turn a bf16
  state into float32 (which would recompile the step after the first call);
- transforms ignore `params` (`del params`): none of them needs it.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax import tree as otu


def _ema(decay, old, new):
    """ρ·old + (1 − ρ)·new, the running average every adaptive method keeps."""
    return decay * old + (1 - decay) * new


def _denominator(accumulator, eps, eps_in_sqrt: bool):
    """√(A + ε) (optax, the lecture) or √A + ε (PyTorch, Keras)."""
    if eps_in_sqrt:
        return jnp.sqrt(accumulator + eps)
    return jnp.sqrt(accumulator) + eps


def _one_minus_power(decay, count):
    """1 − decay**count in float32, accurate when decay is close to 1.

    The direct float32 form loses the low digits of decay**count ≈ 1: for
    decay = 0.999 and count = 1 it is off by 1.3e-5 relative. The identity
    1 − β^t = −expm1(t·log β), with log β taken in float64 when β is a Python
    number, keeps the error at a few ulp.
    """
    if isinstance(decay, (int, float)):
        log_decay = math.log(decay) if decay > 0 else -math.inf
    else:  # an injected hyperparameter, possibly bf16
        log_decay = jnp.log(jnp.asarray(decay, jnp.float32))
    return -jnp.expm1(count.astype(jnp.float32) * log_decay)


class MomentumState(NamedTuple):
    """State of `scale_by_momentum`."""

    velocity: optax.Updates  # v: params' shapes and dtypes


def scale_by_momentum(beta: float = 0.9) -> optax.GradientTransformation:
    r"""Heavy-ball accumulation of the incoming updates.

    .. math::
        v_t = \beta v_{t-1} + u_t, \qquad \text{output } v_t.

    With `u = -ηg` (the learning rate applied first, as in `cnnlab.optim.momentum`)
    this is the lecture's v ← βv + ηg, θ ← θ − v with the velocity stored as −v.
    It is `optax.trace(decay=beta)` under another name.

    Args:
      beta: decay of the velocity, in [0, 1).
    """

    def init_fn(params):
        return MomentumState(velocity=otu.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        velocity = jax.tree.map(lambda u, v: beta * v + u, updates, state.velocity)
        velocity = otu.cast_like(velocity, state.velocity)
        return otu.cast_like(velocity, updates), MomentumState(velocity=velocity)

    return optax.GradientTransformation(init_fn, update_fn)


class NesterovState(NamedTuple):
    """State of `scale_by_nesterov`."""

    velocity: optax.Updates  # v: params' shapes and dtypes


def scale_by_nesterov(beta: float = 0.9) -> optax.GradientTransformation:
    r"""Nesterov's accelerated gradient in look-ahead coordinates.

    .. math::
        v_t = \beta v_{t-1} + u_t, \qquad \text{output } \beta v_t + u_t.

    NAG evaluates the gradient at θ − βv. Written for φ = θ − βv the same
    iteration needs only the gradient at the current parameters φ
    (Sutskever et al. 2013; Bengio et al. 2013):
    v ← βv + η∇J(φ), φ ← φ − (βv + η∇J(φ)), and θ_t = φ_t + βv_t.

    Args:
      beta: decay of the velocity, in [0, 1).
    """

    def init_fn(params):
        return NesterovState(velocity=otu.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        velocity = jax.tree.map(lambda u, v: beta * v + u, updates, state.velocity)
        velocity = otu.cast_like(velocity, state.velocity)
        look_ahead = jax.tree.map(lambda u, v: beta * v + u, updates, velocity)
        return otu.cast_like(look_ahead, updates), NesterovState(velocity=velocity)

    return optax.GradientTransformation(init_fn, update_fn)


class AdagradState(NamedTuple):
    """State of `scale_by_adagrad`."""

    sum_of_squares: optax.Updates  # G = G₀ + Σ g²: params' shapes and dtypes


def scale_by_adagrad(
    eps: float = 1e-8,
    initial_accumulator: float = 0.0,
    eps_in_sqrt: bool = True,
) -> optax.GradientTransformation:
    r"""Divide by the root of the sum of all squared gradients so far (Duchi et al. 2011).

    .. math::
        G_t = G_{t-1} + g_t^2, \qquad
        \text{output } g_t / \sqrt{G_t + \epsilon}
        \;\text{or}\; g_t / (\sqrt{G_t} + \epsilon).

    Args:
      eps: added to the denominator, inside the root if `eps_in_sqrt`.
      initial_accumulator: G₀, the starting value of every accumulator.
      eps_in_sqrt: √(G + ε) as in the lecture and optax; False gives
        √G + ε as in PyTorch and Keras.
    """

    def init_fn(params):
        return AdagradState(sum_of_squares=otu.full_like(params, initial_accumulator))

    def update_fn(updates, state, params=None):
        del params
        sum_of_squares = jax.tree.map(lambda g, s: s + g * g, updates, state.sum_of_squares)
        sum_of_squares = otu.cast_like(sum_of_squares, state.sum_of_squares)
        scaled = jax.tree.map(
            lambda g, s: g / _denominator(s, eps, eps_in_sqrt), updates, sum_of_squares
        )
        return otu.cast_like(scaled, updates), AdagradState(sum_of_squares=sum_of_squares)

    return optax.GradientTransformation(init_fn, update_fn)


class RmspropState(NamedTuple):
    """State of `scale_by_rmsprop`."""

    mean_square: optax.Updates  # r, the running mean of g²: params' shapes and dtypes


def scale_by_rmsprop(
    decay: float = 0.9,
    eps: float = 1e-8,
    eps_in_sqrt: bool = True,
) -> optax.GradientTransformation:
    r"""Divide by the root of a running mean of squared gradients (Hinton, lecture 6e).

    .. math::
        r_t = \rho r_{t-1} + (1 - \rho) g_t^2, \qquad
        \text{output } g_t / \sqrt{r_t + \epsilon}
        \;\text{or}\; g_t / (\sqrt{r_t} + \epsilon).

    Args:
      decay: ρ, in [0, 1).
      eps: added to the denominator, inside the root if `eps_in_sqrt`.
      eps_in_sqrt: √(r + ε) as in the lecture and optax; False gives
        √r + ε as in PyTorch and Keras.
    """

    def init_fn(params):
        return RmspropState(mean_square=otu.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        mean_square = jax.tree.map(lambda g, r: _ema(decay, r, g * g), updates, state.mean_square)
        mean_square = otu.cast_like(mean_square, state.mean_square)
        scaled = jax.tree.map(
            lambda g, r: g / _denominator(r, eps, eps_in_sqrt), updates, mean_square
        )
        return otu.cast_like(scaled, updates), RmspropState(mean_square=mean_square)

    return optax.GradientTransformation(init_fn, update_fn)


class AdadeltaState(NamedTuple):
    """State of `scale_by_adadelta`."""

    mean_square_grad: optax.Updates  # E[g²]: params' shapes and dtypes
    mean_square_delta: optax.Updates  # E[Δ²]: params' shapes and dtypes


def scale_by_adadelta(rho: float = 0.9, eps: float = 1e-6) -> optax.GradientTransformation:
    r"""Zeiler's Adadelta, Algorithm 1: units of Δ from a running mean of past Δ².

    .. math::
        E[g^2]_t = \rho E[g^2]_{t-1} + (1 - \rho) g_t^2, \qquad
        \Delta_t = -\frac{\sqrt{E[\Delta^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}} g_t,
        \qquad E[\Delta^2]_t = \rho E[\Delta^2]_{t-1} + (1 - \rho) \Delta_t^2.

    Outputs −Δ_t (gradient direction); ε sits inside both roots, as in the paper.

    Args:
      rho: decay of both running means, in [0, 1); the paper uses 0.95.
      eps: ε inside both roots; it also sets the size of the first steps.
    """

    def init_fn(params):
        return AdadeltaState(
            mean_square_grad=otu.zeros_like(params), mean_square_delta=otu.zeros_like(params)
        )

    def update_fn(updates, state, params=None):
        del params
        mean_square_grad = jax.tree.map(
            lambda g, e: _ema(rho, e, g * g), updates, state.mean_square_grad
        )
        mean_square_grad = otu.cast_like(mean_square_grad, state.mean_square_grad)
        delta = jax.tree.map(
            lambda g, eg, ed: (jnp.sqrt(ed + eps) / jnp.sqrt(eg + eps)) * g,
            updates,
            mean_square_grad,
            state.mean_square_delta,
        )
        mean_square_delta = jax.tree.map(
            lambda d, ed: _ema(rho, ed, d * d), delta, state.mean_square_delta
        )
        mean_square_delta = otu.cast_like(mean_square_delta, state.mean_square_delta)
        new_state = AdadeltaState(mean_square_grad, mean_square_delta)
        return otu.cast_like(delta, updates), new_state

    return optax.GradientTransformation(init_fn, update_fn)


class AdamState(NamedTuple):
    """State of `scale_by_adam`."""

    count: jax.Array  # t, steps taken: shape (), int32
    mu: optax.Updates  # m, first moment: params' shapes and dtypes
    nu: optax.Updates  # v, second moment: params' shapes and dtypes


def scale_by_adam(
    b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
) -> optax.GradientTransformation:
    r"""Kingma & Ba's Adam, Algorithm 1, without the step size.

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \quad
        \text{output } \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}.

    The bias corrections 1 − βᵗ are computed as −expm1(t·log β), which is
    accurate in float32; optax's `1 - b**t` is off by about 1e-5 relative for
    β₂ = 0.999 in the first hundreds of steps (half that in the step), the
    only difference from `optax.scale_by_adam`.

    Args:
      b1: β₁, decay of the first moment, in [0, 1).
      b2: β₂, decay of the second moment, in [0, 1).
      eps: ε, added outside the root as in the paper.
    """

    def init_fn(params):
        return AdamState(
            count=jnp.zeros([], jnp.int32), mu=otu.zeros_like(params), nu=otu.zeros_like(params)
        )

    def update_fn(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        mu = otu.cast_like(jax.tree.map(lambda g, m: _ema(b1, m, g), updates, state.mu), state.mu)
        nu = otu.cast_like(jax.tree.map(lambda g, v: _ema(b2, v, g * g), updates, state.nu), state.nu)
        correction1 = _one_minus_power(b1, count)
        correction2 = _one_minus_power(b2, count)
        scaled = jax.tree.map(
            lambda m, v: (m / correction1.astype(m.dtype))
            / (jnp.sqrt(v / correction2.astype(v.dtype)) + eps),
            mu,
            nu,
        )
        return otu.cast_like(scaled, updates), AdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)

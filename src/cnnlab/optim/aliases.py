"""The lecture's optimizers, each a chain of a `scale_by_*` transform and the learning rate.

`learning_rate` is a float or an optax schedule (a function of the step
count), and every alias works under `optax.inject_hyperparams`, which makes
the learning rate readable and settable in the optimizer state.

    >>> import jax.numpy as jnp, optax
    >>> from cnnlab import optim
    >>> tx = optim.nesterov(learning_rate=0.1, beta=0.9)
    >>> params = jnp.array([1.0, -2.0])
    >>> state = tx.init(params)
    >>> grads = 2 * params                      # ∇ of Σθ²
    >>> updates, state = tx.update(grads, state, params)
    >>> params = optax.apply_updates(params, updates)

The rules, in the lecture's notation (g is the gradient at the current
parameters, η the learning rate), are in each docstring.
"""

import optax

from cnnlab.optim import transforms


def sgd(learning_rate: optax.ScalarOrSchedule) -> optax.GradientTransformation:
    r"""Gradient descent: θ ← θ − η g.

    Batch gradient descent, stochastic gradient descent and mini-batch gradient
    descent differ only in the data `g` is computed on, not in the rule. Equal to
    `optax.sgd(learning_rate)`.

    Args:
      learning_rate: η, a float or a schedule of the step count.
    """
    return optax.chain(optax.scale_by_learning_rate(learning_rate))


def momentum(learning_rate: optax.ScalarOrSchedule, beta: float = 0.9) -> optax.GradientTransformation:
    r"""Gradient descent with momentum, as the lecture writes it.

    .. math::
        v_t = \beta v_{t-1} + \eta_t g_t, \qquad \theta_t = \theta_{t-1} - v_t.

    The learning rate is applied before the accumulation, so the velocity
    remembers the learning rate each gradient was taken with. At a constant
    learning rate this equals `optax.sgd(learning_rate, momentum=beta)`. Under a
    schedule it does not: optax accumulates raw gradients and scales the whole
    velocity by the current η_t ("trace, then scale"), so a drop in the
    learning rate takes effect at once there and gradually here.

    Reference: Polyak, "Some methods of speeding up the convergence of iteration
    methods", 1964; Rumelhart, Hinton & Williams, 1986.

    Args:
      learning_rate: η, a float or a schedule of the step count.
      beta: γ in the lecture, the decay of the velocity, in [0, 1).
    """
    return optax.chain(
        optax.scale_by_learning_rate(learning_rate),  # u = −η g
        transforms.scale_by_momentum(beta),  # the velocity −v
    )


def nesterov(learning_rate: optax.ScalarOrSchedule, beta: float = 0.9) -> optax.GradientTransformation:
    r"""Nesterov's accelerated gradient (NAG), needing only the gradient at the parameters.

    The lecture's rule evaluates the gradient at the look-ahead point:

    .. math::
        v_t = \beta v_{t-1} + \eta_t \nabla J(\theta_{t-1} - \beta v_{t-1}), \qquad
        \theta_t = \theta_{t-1} - v_t.

    This transform runs the same iteration on φ = θ − βv, where the look-ahead
    point is the current parameter:

    .. math::
        v_t = \beta v_{t-1} + \eta_t \nabla J(\phi_{t-1}), \qquad
        \phi_t = \phi_{t-1} - (\beta v_t + \eta_t \nabla J(\phi_{t-1})),

    and θ_t = φ_t + βv_t at every step. At a constant learning rate this equals
    `optax.sgd(learning_rate, momentum=beta, nesterov=True)`; under a schedule
    it differs the way `momentum` does (η is applied before the accumulation).

    Reference: Nesterov, 1983; Sutskever, Martens, Dahl & Hinton, "On the
    importance of initialization and momentum in deep learning", ICML 2013.

    Args:
      learning_rate: η, a float or a schedule of the step count.
      beta: γ in the lecture, the decay of the velocity, in [0, 1).
    """
    return optax.chain(
        optax.scale_by_learning_rate(learning_rate),  # u = −η g
        transforms.scale_by_nesterov(beta),
    )


def adagrad(
    learning_rate: optax.ScalarOrSchedule = 0.01,
    eps: float = 1e-8,
    initial_accumulator: float = 0.0,
    eps_in_sqrt: bool = True,
) -> optax.GradientTransformation:
    r"""AdaGrad: per-parameter steps that shrink with the gradients seen so far.

    .. math::
        G_t = G_{t-1} + g_t^2, \qquad
        \theta_t = \theta_{t-1} - \eta_t \frac{g_t}{\sqrt{G_t + \epsilon}}.

    `eps_in_sqrt=False` gives g / (√G + ε), the PyTorch and Keras convention.
    With `eps_in_sqrt=True` this equals `optax.adagrad(learning_rate,
    initial_accumulator_value=initial_accumulator, eps=eps)`; note optax's
    defaults differ (G₀ = 0.1, ε = 1e-7).

    Reference: Duchi, Hazan & Singer, "Adaptive subgradient methods for online
    learning and stochastic optimization", JMLR 2011.

    Args:
      learning_rate: η, a float or a schedule of the step count.
      eps: ε in the denominator.
      initial_accumulator: G₀.
      eps_in_sqrt: √(G + ε) if True, √G + ε if False.
    """
    return optax.chain(
        transforms.scale_by_adagrad(eps, initial_accumulator, eps_in_sqrt),
        optax.scale_by_learning_rate(learning_rate),
    )


def rmsprop(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    decay: float = 0.9,
    eps: float = 1e-8,
    eps_in_sqrt: bool = True,
) -> optax.GradientTransformation:
    r"""RMSprop: divide by the root of a running mean of squared gradients.

    .. math::
        r_t = \rho r_{t-1} + (1 - \rho) g_t^2, \qquad
        \theta_t = \theta_{t-1} - \eta_t \frac{g_t}{\sqrt{r_t + \epsilon}}.

    `eps_in_sqrt=False` gives g / (√r + ε), the PyTorch and Keras convention.
    With `eps_in_sqrt=True` this equals `optax.rmsprop(learning_rate, decay, eps)`;
    with `eps_in_sqrt=False` it equals `optax.rmsprop(..., eps_in_sqrt=False)`.

    Reference: Tieleman & Hinton, "Lecture 6.5 — RMSprop", Coursera: Neural
    Networks for Machine Learning, 2012.

    Args:
      learning_rate: η, a float or a schedule of the step count.
      decay: ρ, in [0, 1).
      eps: ε in the denominator.
      eps_in_sqrt: √(r + ε) if True, √r + ε if False.
    """
    return optax.chain(
        transforms.scale_by_rmsprop(decay, eps, eps_in_sqrt),
        optax.scale_by_learning_rate(learning_rate),
    )


def adadelta(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
) -> optax.GradientTransformation:
    r"""Adadelta (Zeiler 2012, Algorithm 1), with η multiplying Δ.

    .. math::
        E[g^2]_t = \rho E[g^2]_{t-1} + (1 - \rho) g_t^2, \qquad
        \Delta_t = -\frac{\sqrt{E[\Delta^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}} g_t,

    .. math::
        E[\Delta^2]_t = \rho E[\Delta^2]_{t-1} + (1 - \rho) \Delta_t^2, \qquad
        \theta_t = \theta_{t-1} + \eta_t \Delta_t.

    The paper has no learning rate (η = 1) and uses ρ = 0.95, ε = 1e-6. The
    running mean E[Δ²] is of the unscaled Δ, so η only rescales the steps.
    Equal to `optax.adadelta(learning_rate, rho, eps)`. Some lecture slides
    write Adadelta with an AdaGrad-style running sum; Algorithm 1 is the
    reference.

    Reference: Zeiler, "ADADELTA: an adaptive learning rate method",
    arXiv:1212.5701, 2012.

    Args:
      learning_rate: η, a float or a schedule of the step count.
      rho: ρ, in [0, 1).
      eps: ε inside both roots.
    """
    return optax.chain(
        transforms.scale_by_adadelta(rho, eps),
        optax.scale_by_learning_rate(learning_rate),
    )


def adam(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
) -> optax.GradientTransformation:
    r"""Adam (Kingma & Ba, Algorithm 1).

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2,

    .. math::
        \hat m_t = \frac{m_t}{1 - \beta_1^t}, \qquad
        \hat v_t = \frac{v_t}{1 - \beta_2^t}, \qquad
        \theta_t = \theta_{t-1} - \alpha_t \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}.

    The bias corrections make the first steps about α in size whatever the
    scale of the gradients. Equal to `optax.adam(learning_rate, b1, b2, eps)`
    up to optax's float32 rounding of 1 − β₂ᵗ (about 1e-5 relative in the
    first steps, see `transforms.scale_by_adam`).

    Reference: Kingma & Ba, "Adam: a method for stochastic optimization",
    ICLR 2015.

    Args:
      learning_rate: α, a float or a schedule of the step count.
      b1: β₁, in [0, 1).
      b2: β₂, in [0, 1).
      eps: ε, outside the root.
    """
    return optax.chain(
        transforms.scale_by_adam(b1, b2, eps),
        optax.scale_by_learning_rate(learning_rate),
    )

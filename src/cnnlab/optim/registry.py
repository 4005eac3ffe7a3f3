"""Optimizer names -> factories of `optax.GradientTransformation`.

Names without a prefix are cnnlab's (the lecture's rules, `cnnlab.optim.aliases`);
`optax/<name>` is optax's own built-in, so the two can be compared side by
side in one sweep.
"""

from typing import Any, Callable

import optax

from cnnlab.optim import aliases

Factory = Callable[..., optax.GradientTransformation]

_OURS: dict[str, Factory] = {
    "sgd": aliases.sgd,
    "momentum": aliases.momentum,
    "nesterov": aliases.nesterov,
    "adagrad": aliases.adagrad,
    "rmsprop": aliases.rmsprop,
    "adadelta": aliases.adadelta,
    "adam": aliases.adam,
}

# optax's first-order aliases that take a `learning_rate`; the names are
# optax's own, so `optax/sgd` is `optax.sgd`.
_OPTAX_NAMES = (
    "adabelief",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamw",
    "amsgrad",
    "lamb",
    "lion",
    "nadam",
    "novograd",
    "radam",
    "rmsprop",
    "sgd",
    "yogi",
)


def names() -> list[str]:
    """Every optimizer name that `create` knows: cnnlab's first, then `optax/<name>`, each sorted."""
    return sorted(_OURS) + [f"optax/{name}" for name in _OPTAX_NAMES]


def get(name: str) -> Factory:
    """The factory registered as `name`; an unknown name lists the known ones."""
    if name in _OURS:
        return _OURS[name]
    if name.startswith("optax/") and name.removeprefix("optax/") in _OPTAX_NAMES:
        return getattr(optax, name.removeprefix("optax/"))
    raise ValueError(f"unknown optimizer {name!r}; known optimizers: {', '.join(names())}")


def create(name: str, **hyperparameters: Any) -> optax.GradientTransformation:
    """Build the optimizer registered as `name` with the given hyperparameters.

        >>> from cnnlab import optim
        >>> tx = optim.create("nesterov", learning_rate=0.05, beta=0.9)
        >>> reference = optim.create("optax/sgd", learning_rate=0.05, momentum=0.9, nesterov=True)
    """
    return get(name)(**hyperparameters)

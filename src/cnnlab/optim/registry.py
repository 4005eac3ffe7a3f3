"""Optimizer names -> factories of `optax.GradientTransformation`.

Names without a prefix are cnnlab's; `optax/<name>` is optax's own built-in,
so the two can be compared side by side in one sweep.
"""

from typing import Any, Callable

import optax

_REGISTRY: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam": optax.adam,
}


def names() -> list[str]:
    """Every optimizer name that `create` knows, sorted."""
    return sorted(_REGISTRY) + [f"optax/{n}" for n in ("adam", "sgd", "rmsprop", "adagrad", "adadelta")]


def create(name: str, **hyperparameters: Any) -> optax.GradientTransformation:
    """Build the optimizer registered as `name` with the given hyperparameters."""
    if name.startswith("optax/"):
        factory = getattr(optax, name.removeprefix("optax/"), None)
    else:
        factory = _REGISTRY.get(name)
    if factory is None:
        raise ValueError(f"unknown optimizer {name!r}; known optimizers: {', '.join(names())}")
    return factory(**hyperparameters)

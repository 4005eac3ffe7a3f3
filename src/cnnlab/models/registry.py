"""Model names -> module factories: `create(name, num_classes=..., **options)`."""

from typing import Any, Callable

import flax.linen as nn

from cnnlab.models.lenet import LeNet5

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "lenet5": LeNet5,
}


def names() -> list[str]:
    """Every model name that `create` knows, sorted."""
    return sorted(_REGISTRY)


def create(name: str, num_classes: int, **options: Any) -> nn.Module:
    """Build the model registered as `name` with a `num_classes`-way classifier."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(names())}")
    return _REGISTRY[name](num_classes=num_classes, **options)

"""Optimizers as optax gradient transformations, usable from any JAX code.

    from cnnlab import optim
    tx = optim.create("adam", learning_rate=1e-3)
"""

from cnnlab.optim.registry import create, names

__all__ = ["create", "names"]

"""LeNet-5 (LeCun et al., 1998) on 32x32 inputs: 61,706 parameters with 10 classes."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu}
POOLINGS = {"avg": nn.avg_pool, "max": nn.max_pool}


class LeNet5(nn.Module):
    """C1 6@5x5 -> S2 -> C3 16@5x5 -> S4 -> C5 120@5x5 -> F6 84 -> output.

    The 1998 network used tanh and average-pooling subsampling; `activation="relu"`
    and `pooling="max"` give the modern variant.
    """

    num_classes: int = 10
    activation: str = "tanh"
    pooling: str = "avg"
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        del train  # no dropout or batch norm
        act, pool = ACTIVATIONS[self.activation], POOLINGS[self.pooling]
        conv = lambda features, name: nn.Conv(  # noqa: E731
            features, (5, 5), padding="VALID", dtype=self.dtype, param_dtype=self.param_dtype, name=name
        )
        dense = lambda features, name: nn.Dense(  # noqa: E731
            features, dtype=self.dtype, param_dtype=self.param_dtype, name=name
        )
        x = act(conv(6, "C1")(x))  # (B, 28, 28, 6)
        x = pool(x, (2, 2), strides=(2, 2))  # S2: (B, 14, 14, 6)
        x = act(conv(16, "C3")(x))  # (B, 10, 10, 16)
        x = pool(x, (2, 2), strides=(2, 2))  # S4: (B, 5, 5, 16)
        x = act(conv(120, "C5")(x))  # (B, 1, 1, 120)
        x = x.reshape(x.shape[0], -1)
        x = act(dense(84, "F6")(x))
        return dense(self.num_classes, "output")(x)

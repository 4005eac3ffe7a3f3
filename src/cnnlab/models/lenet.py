"""LeNet-5 (LeCun et al., 1998) on 32x32 inputs: 61,706 parameters with 10 classes."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models import layers

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu}
POOLINGS = {"avg": layers.AvgPool, "max": layers.MaxPool}


class LeNet5(nn.Module):
    """C1 6@5x5 -> S2 -> C3 16@5x5 -> S4 -> C5 120@5x5 -> F6 84 -> output.

    The 1998 network used tanh and average-pooling subsampling; `activation="relu"`
    and `pooling="max"` give the modern variant. C5 is a 5x5 convolution, so the
    input must be 32x32: at 28x28 it raises a ValueError naming C5.
    """

    num_classes: int = 10
    activation: str = "tanh"
    pooling: str = "avg"
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        del train  # no dropout or batch norm
        if self.activation not in ACTIVATIONS or self.pooling not in POOLINGS:
            raise ValueError(
                f"LeNet5: activation must be one of {sorted(ACTIVATIONS)} and pooling one of "
                f"{sorted(POOLINGS)}; got {self.activation!r}, {self.pooling!r}"
            )
        act, pool = ACTIVATIONS[self.activation], POOLINGS[self.pooling]
        conv = layers.conv_factory(self, kernel_size=(5, 5), padding="VALID")
        dense = layers.dense_factory(self)
        x = act(conv(6, name="C1")(x))  # (B, 28, 28, 6)
        x = pool((2, 2), strict=self.strict, name="S2")(x)  # (B, 14, 14, 6)
        x = act(conv(16, name="C3")(x))  # (B, 10, 10, 16)
        x = pool((2, 2), strict=self.strict, name="S4")(x)  # (B, 5, 5, 16)
        x = act(conv(120, name="C5")(x))  # (B, 1, 1, 120)
        x = layers.Flatten(name="flatten")(x)  # (B, 120)
        x = act(dense(84, name="F6")(x))
        return dense(self.num_classes, name="output")(x)

"""Small networks from the lecture: an MLP, the "typical CNN", and a 1-D/2-D/3-D CNN."""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models import layers


class MLP(nn.Module):
    """Flatten -> Dense(h) + ReLU for h in `hidden_sizes` -> Dense(num_classes).

    The lecture's 12288-1000-500-2 network on 64x64x3 images has 12,789,000
    weights and 1,502 biases.
    """

    num_classes: int = 2
    hidden_sizes: Sequence[int] = (1000, 500)
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        dense = layers.dense_factory(self)
        x = layers.Flatten(name="flatten")(x)  # (B, H*W*C)
        for i, width in enumerate(self.hidden_sizes, start=1):
            x = nn.relu(dense(width, name=f"hidden{i}")(x))
            if self.dropout_rate:
                x = nn.Dropout(self.dropout_rate, deterministic=not train, name=f"dropout{i}")(x)
        return dense(self.num_classes, name="output")(x)


class TypicalCNN(nn.Module):
    """The lecture's 28x28x1 network: 27,562 parameters with 10 classes.

    conv8@3x3 -> maxpool2 -> conv16@3x3 -> maxpool2 -> dense64 -> dropout -> dense10,
    valid padding and ReLU, exactly the rows of the lecture's Keras summary.
    `features` and `hidden_size` widen it without changing its shape: the
    time-to-accuracy benchmark's (32, 64) and 128 reach 91% on Fashion-MNIST
    (bench/time_to_accuracy.py), where the lecture's widths stopped at 88.6%.
    """

    num_classes: int = 10
    features: Sequence[int] = (8, 16)
    hidden_size: int = 64
    dropout_rate: float = 0.5
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = layers.conv_factory(self, kernel_size=(3, 3), padding="VALID")
        dense = layers.dense_factory(self)
        if len(self.features) != 2:
            raise ValueError(f"typical_cnn has two convolutions: features must be 2 widths, got {list(self.features)}")
        x = nn.relu(conv(self.features[0], name="conv1")(x))  # (B, 26, 26, 8)
        x = layers.MaxPool((2, 2), strict=self.strict, name="pool1")(x)  # (B, 13, 13, 8)
        x = nn.relu(conv(self.features[1], name="conv2")(x))  # (B, 11, 11, 16)
        x = layers.MaxPool((2, 2), strict=self.strict, name="pool2")(x)  # (B, 5, 5, 16)
        x = layers.Flatten(name="flatten")(x)  # (B, 400)
        x = nn.relu(dense(self.hidden_size, name="dense1")(x))
        x = nn.Dropout(self.dropout_rate, deterministic=not train, name="dropout")(x)
        return dense(self.num_classes, name="dense2")(x)


class SimpleCNN(nn.Module):
    """A small configurable CNN for sequences, images or volumes.

    `dims=1`: (B, T, C) time series; `dims=2`: (B, H, W, C) images; `dims=3`:
    (B, D, H, W, C) volumes. Each stage is conv(k, same padding) + ReLU + max-pool 2;
    then global average pooling and a linear classifier, so any input size at
    least 2**len(features) long per axis works.
    """

    num_classes: int = 10
    dims: int = 2
    features: Sequence[int] = (16, 32)
    kernel_size: int = 3
    dropout_rate: float = 0.0
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        if self.dims not in (1, 2, 3) or x.ndim != self.dims + 2:
            raise ValueError(
                f"SimpleCNN(dims={self.dims}) expects (batch, {self.dims} spatial axes, channels) "
                f"inputs with dims in 1, 2, 3; got shape {x.shape}"
            )
        conv = layers.conv_factory(self, kernel_size=(self.kernel_size,) * self.dims, padding="SAME")
        for i, width in enumerate(self.features, start=1):
            x = nn.relu(conv(width, name=f"conv{i}")(x))  # (B, *spatial, width)
            x = layers.MaxPool((2,) * self.dims, strict=self.strict, name=f"pool{i}")(x)  # spatial / 2
        x = layers.GlobalAvgPool(name="gap")(x)  # (B, features[-1])
        if self.dropout_rate:
            x = nn.Dropout(self.dropout_rate, deterministic=not train, name="dropout")(x)
        return layers.dense_factory(self)(self.num_classes, name="output")(x)

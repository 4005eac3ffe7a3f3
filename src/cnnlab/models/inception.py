"""Inception v3 (Szegedy et al., 2016) in the Keras applications layout, 299x299x3.

Every convolution is Keras's `conv2d_bn`: conv without bias, BatchNorm without
scale (`scale=False`, epsilon 1e-3, momentum 0.99 as in Keras), ReLU. So the
trainable BatchNorm parameters are the offsets only, and the 34,432 BatchNorm
statistics are counted apart ("batch_stats"). With 1,000 classes: 23,817,352
trainable parameters. Modules are named after Keras's blocks (`mixed0` ...
`mixed10`); global average pooling and a linear classifier, no dropout, as in
Keras. Keras accepts inputs from 75x75 up.
"""

from collections.abc import Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models import layers


class ConvBN(nn.Module):
    """Keras `conv2d_bn`: Conv(no bias) -> BatchNorm(scale=False) -> ReLU."""

    features: int
    kernel: Sequence[int] = (1, 1)
    strides: int = 1
    padding: str = "SAME"
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    bn_axis_name: str | None = None  # pmap's axis: sync BatchNorm over devices

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = layers.conv_factory(self, use_bias=False)
        x = conv(self.features, tuple(self.kernel), self.strides, self.padding, name="conv")(x)
        norm = layers.batch_norm(
            train, self.dtype, self.param_dtype, self.bn_axis_name, momentum=0.99, epsilon=1e-3, use_scale=False
        )
        return nn.relu(norm(name="bn")(x))


def _same_avg_pool(name: str, strict: bool) -> layers.AvgPool:
    """Keras AveragePooling2D(3, strides=1, padding="same"): padded cells are not counted."""
    return layers.AvgPool((3, 3), (1, 1), "SAME", count_include_pad=False, strict=strict, name=name)


class InceptionA(nn.Module):
    """mixed0-2 at 35x35: 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avg-pool-1x1 (pool_features)."""

    pool_features: int
    conv: Any  # partial(ConvBN, ...) carrying the model's strict flag and dtypes
    strict: bool = False  # for the pooling branch

    @nn.compact
    def __call__(self, x, train: bool = False):  # (B, 35, 35, C) -> (B, 35, 35, 224 + pool_features)
        conv = self.conv
        b1 = conv(64, name="branch1x1")(x, train)
        b5 = conv(48, name="branch5x5_1")(x, train)
        b5 = conv(64, (5, 5), name="branch5x5_2")(b5, train)
        b3 = conv(64, name="branch3x3dbl_1")(x, train)
        b3 = conv(96, (3, 3), name="branch3x3dbl_2")(b3, train)
        b3 = conv(96, (3, 3), name="branch3x3dbl_3")(b3, train)
        bp = _same_avg_pool("branch_pool_avg", self.strict)(x)
        bp = conv(self.pool_features, name="branch_pool")(bp, train)
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class ReductionA(nn.Module):
    """mixed3, 35x35 -> 17x17: 3x3/2 | 1x1-3x3-3x3/2 | max-pool 3x3/2."""

    conv: Any  # partial(ConvBN, ...) carrying the model's strict flag and dtypes
    strict: bool = False  # for the pooling branch

    @nn.compact
    def __call__(self, x, train: bool = False):  # (B, 35, 35, 288) -> (B, 17, 17, 768)
        conv = self.conv
        b3 = conv(384, (3, 3), 2, "VALID", name="branch3x3")(x, train)
        bd = conv(64, name="branch3x3dbl_1")(x, train)
        bd = conv(96, (3, 3), name="branch3x3dbl_2")(bd, train)
        bd = conv(96, (3, 3), 2, "VALID", name="branch3x3dbl_3")(bd, train)
        bp = layers.MaxPool((3, 3), (2, 2), strict=self.strict, name="branch_pool")(x)
        return jnp.concatenate([b3, bd, bp], axis=-1)


class InceptionB(nn.Module):
    """mixed4-7 at 17x17: 1x1 | 1x1-1x7-7x1 | 1x1-7x1-1x7-7x1-1x7 | avg-pool-1x1."""

    channels_7x7: int
    conv: Any  # partial(ConvBN, ...) carrying the model's strict flag and dtypes
    strict: bool = False  # for the pooling branch

    @nn.compact
    def __call__(self, x, train: bool = False):  # (B, 17, 17, 768) -> (B, 17, 17, 768)
        conv, c7 = self.conv, self.channels_7x7
        b1 = conv(192, name="branch1x1")(x, train)
        b7 = conv(c7, name="branch7x7_1")(x, train)
        b7 = conv(c7, (1, 7), name="branch7x7_2")(b7, train)
        b7 = conv(192, (7, 1), name="branch7x7_3")(b7, train)
        bd = conv(c7, name="branch7x7dbl_1")(x, train)
        bd = conv(c7, (7, 1), name="branch7x7dbl_2")(bd, train)
        bd = conv(c7, (1, 7), name="branch7x7dbl_3")(bd, train)
        bd = conv(c7, (7, 1), name="branch7x7dbl_4")(bd, train)
        bd = conv(192, (1, 7), name="branch7x7dbl_5")(bd, train)
        bp = _same_avg_pool("branch_pool_avg", self.strict)(x)
        bp = conv(192, name="branch_pool")(bp, train)
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class ReductionB(nn.Module):
    """mixed8, 17x17 -> 8x8: 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | max-pool 3x3/2."""

    conv: Any  # partial(ConvBN, ...) carrying the model's strict flag and dtypes
    strict: bool = False  # for the pooling branch

    @nn.compact
    def __call__(self, x, train: bool = False):  # (B, 17, 17, 768) -> (B, 8, 8, 1280)
        conv = self.conv
        b3 = conv(192, name="branch3x3_1")(x, train)
        b3 = conv(320, (3, 3), 2, "VALID", name="branch3x3_2")(b3, train)
        b7 = conv(192, name="branch7x7x3_1")(x, train)
        b7 = conv(192, (1, 7), name="branch7x7x3_2")(b7, train)
        b7 = conv(192, (7, 1), name="branch7x7x3_3")(b7, train)
        b7 = conv(192, (3, 3), 2, "VALID", name="branch7x7x3_4")(b7, train)
        bp = layers.MaxPool((3, 3), (2, 2), strict=self.strict, name="branch_pool")(x)
        return jnp.concatenate([b3, b7, bp], axis=-1)


class InceptionC(nn.Module):
    """mixed9-10 at 8x8: 1x1 | 1x1-(1x3, 3x1) | 1x1-3x3-(1x3, 3x1) | avg-pool-1x1."""

    conv: Any  # partial(ConvBN, ...) carrying the model's strict flag and dtypes
    strict: bool = False  # for the pooling branch

    @nn.compact
    def __call__(self, x, train: bool = False):  # (B, 8, 8, C) -> (B, 8, 8, 2048)
        conv = self.conv
        b1 = conv(320, name="branch1x1")(x, train)
        b3 = conv(384, name="branch3x3")(x, train)
        b3_1x3 = conv(384, (1, 3), name="branch3x3_1")(b3, train)
        b3_3x1 = conv(384, (3, 1), name="branch3x3_2")(b3, train)
        b3 = jnp.concatenate([b3_1x3, b3_3x1], axis=-1)  # (B, 8, 8, 768)
        bd = conv(448, name="branch3x3dbl_1")(x, train)
        bd = conv(384, (3, 3), name="branch3x3dbl_2")(bd, train)
        bd_1x3 = conv(384, (1, 3), name="branch3x3dbl_3a")(bd, train)
        bd_3x1 = conv(384, (3, 1), name="branch3x3dbl_3b")(bd, train)
        bd = jnp.concatenate([bd_1x3, bd_3x1], axis=-1)  # (B, 8, 8, 768)
        bp = _same_avg_pool("branch_pool_avg", self.strict)(x)
        bp = conv(192, name="branch_pool")(bp, train)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
    """keras.applications.InceptionV3(include_top=True), returning logits."""

    num_classes: int = 1000
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    bn_axis_name: str | None = None  # pmap's axis: sync BatchNorm over devices

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = partial(ConvBN, strict=self.strict, dtype=self.dtype, param_dtype=self.param_dtype,
                       bn_axis_name=self.bn_axis_name)  # fmt: skip
        pool = lambda name: layers.MaxPool((3, 3), (2, 2), strict=self.strict, name=name)  # noqa: E731
        x = conv(32, (3, 3), 2, "VALID", name="conv1")(x, train)  # (B, 149, 149, 32)
        x = conv(32, (3, 3), 1, "VALID", name="conv2")(x, train)  # (B, 147, 147, 32)
        x = conv(64, (3, 3), name="conv3")(x, train)  # (B, 147, 147, 64)
        x = pool("pool1")(x)  # (B, 73, 73, 64)
        x = conv(80, (1, 1), 1, "VALID", name="conv4")(x, train)  # (B, 73, 73, 80)
        x = conv(192, (3, 3), 1, "VALID", name="conv5")(x, train)  # (B, 71, 71, 192)
        x = pool("pool2")(x)  # (B, 35, 35, 192)
        for i, pool_features in enumerate((32, 64, 64)):
            x = InceptionA(pool_features, conv, self.strict, name=f"mixed{i}")(x, train)  # (B, 35, 35, 256 | 288)
        x = ReductionA(conv, self.strict, name="mixed3")(x, train)  # (B, 17, 17, 768)
        for i, c7 in zip(range(4, 8), (128, 160, 160, 192)):
            x = InceptionB(c7, conv, self.strict, name=f"mixed{i}")(x, train)  # (B, 17, 17, 768)
        x = ReductionB(conv, self.strict, name="mixed8")(x, train)  # (B, 8, 8, 1280)
        x = InceptionC(conv, self.strict, name="mixed9")(x, train)  # (B, 8, 8, 2048)
        x = InceptionC(conv, self.strict, name="mixed10")(x, train)
        x = layers.GlobalAvgPool(name="avg_pool")(x)  # (B, 2048)
        return layers.dense_factory(self)(self.num_classes, name="predictions")(x)

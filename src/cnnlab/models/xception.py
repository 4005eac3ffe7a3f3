"""Xception (Chollet, 2017) in the Keras applications layout, 299x299x3.

Entry flow (two convs, three residual blocks that halve the size), middle flow
(eight residual blocks of three separable convs at 19x19x728), exit flow (one
residual block, two separable convs to 2048), global average pooling, linear
classifier. Convolutions have no bias; BatchNorm uses Keras's epsilon 1e-3 and
momentum 0.99. Layer names follow Keras (`block1_conv1`, `block2_sepconv1_bn`,
...). With 1,000 classes: 22,855,952 trainable parameters and 54,528 BatchNorm
statistics. Keras accepts inputs from 71x71 up.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models import layers


class SeparableConv(nn.Module):
    """Keras SeparableConv2D without bias: 3x3 depthwise conv, then 1x1 pointwise conv."""

    features: int
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):  # (B, H, W, C) -> (B, H, W, features)
        conv = layers.conv_factory(self, padding="SAME", use_bias=False)
        channels = x.shape[-1]
        x = conv(channels, (3, 3), feature_group_count=channels, name="depthwise")(x)
        return conv(self.features, (1, 1), name="pointwise")(x)


class Xception(nn.Module):
    """keras.applications.Xception(include_top=True), returning logits."""

    num_classes: int = 1000
    middle_blocks: int = 8
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    bn_axis_name: str | None = None  # pmap's axis: sync BatchNorm over devices

    def _factories(self, train: bool):
        conv = layers.conv_factory(self, use_bias=False)
        norm = layers.batch_norm(train, self.dtype, self.param_dtype, self.bn_axis_name, momentum=0.99, epsilon=1e-3)
        sep = lambda features, name: SeparableConv(  # noqa: E731
            features, self.strict, self.dtype, self.param_dtype, name=name
        )
        return conv, norm, sep

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv, norm, sep = self._factories(train)
        # Entry flow.
        x = conv(32, (3, 3), 2, "VALID", name="block1_conv1")(x)  # (B, 149, 149, 32)
        x = nn.relu(norm(name="block1_conv1_bn")(x))
        x = conv(64, (3, 3), 1, "VALID", name="block1_conv2")(x)  # (B, 147, 147, 64)
        x = nn.relu(norm(name="block1_conv2_bn")(x))
        for block, features in ((2, 128), (3, 256), (4, 728)):
            # Block 2 starts right after a ReLU; blocks 3 and 4 start with one.
            x = self._downsampling_block(x, block, (features, features), conv, norm, sep, first_relu=block > 2)
        # (B, 19, 19, 728)
        for block in range(5, 5 + self.middle_blocks):
            residual = x
            for i in (1, 2, 3):
                x = nn.relu(x)
                x = norm(name=f"block{block}_sepconv{i}_bn")(sep(728, f"block{block}_sepconv{i}")(x))
            x = x + residual  # (B, 19, 19, 728)
        # Exit flow.
        last = 5 + self.middle_blocks
        x = self._downsampling_block(x, last, (728, 1024), conv, norm, sep, first_relu=True)  # (B, 10, 10, 1024)
        x = nn.relu(norm(name=f"block{last + 1}_sepconv1_bn")(sep(1536, f"block{last + 1}_sepconv1")(x)))
        x = nn.relu(norm(name=f"block{last + 1}_sepconv2_bn")(sep(2048, f"block{last + 1}_sepconv2")(x)))
        x = layers.GlobalAvgPool(name="avg_pool")(x)  # (B, 2048)
        return layers.dense_factory(self)(self.num_classes, name="predictions")(x)

    def _downsampling_block(self, x, block: int, features, conv, norm, sep, first_relu: bool):
        """Two separable convs + 3x3/2 max-pool, added to a 1x1/2 conv + BN shortcut."""
        residual = conv(features[1], (1, 1), 2, "SAME", name=f"block{block}_shortcut")(x)
        residual = norm(name=f"block{block}_shortcut_bn")(residual)
        if first_relu:
            x = nn.relu(x)
        x = norm(name=f"block{block}_sepconv1_bn")(sep(features[0], f"block{block}_sepconv1")(x))
        x = nn.relu(x)
        x = norm(name=f"block{block}_sepconv2_bn")(sep(features[1], f"block{block}_sepconv2")(x))
        x = layers.MaxPool((3, 3), (2, 2), "SAME", strict=self.strict, name=f"block{block}_pool")(x)
        return x + residual  # (B, H / 2, W / 2, features[1])

"""MobileNet v1 (Howard et al., 2017) in the Keras applications layout, 224x224x3.

A depthwise-separable block is a 3x3 depthwise conv + BN + ReLU6, then a 1x1
pointwise conv + BN + ReLU6; convs have no bias; BatchNorm uses Keras's epsilon
1e-3 and momentum 0.99. The width multiplier `alpha` scales every layer's
channels (`int(features * alpha)`, as Keras does). Strided depthwise convs pad
only bottom/right, as Keras's ZeroPadding2D(((0, 1), (0, 1))) does. Head: global
average pooling, dropout 1e-3, a 1x1 conv classifier (`conv_preds`, with bias).
With alpha=1 and 1,000 classes: 4,231,976 trainable parameters and 21,888
BatchNorm statistics.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models import layers

# (pointwise features, stride) of the 13 depthwise-separable blocks, Table 1 of the paper.
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)) + ((512, 1),) * 5 + ((1024, 2), (1024, 1))


class MobileNetV1(nn.Module):
    """Standard 3x3/2 conv, 13 depthwise-separable blocks, GAP, dropout, 1x1 conv classifier."""

    num_classes: int = 1000
    alpha: float = 1.0
    dropout_rate: float = 1e-3
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32
    bn_axis_name: str | None = None  # pmap's axis: sync BatchNorm over devices

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = layers.conv_factory(self, use_bias=False)
        norm = layers.batch_norm(train, self.dtype, self.param_dtype, self.bn_axis_name, momentum=0.99, epsilon=1e-3)
        relu6 = lambda y: jnp.minimum(nn.relu(y), 6.0)  # noqa: E731
        x = conv(int(32 * self.alpha), (3, 3), 2, "SAME", name="conv1")(x)  # (B, 112, 112, 32)
        x = relu6(norm(name="conv1_bn")(x))
        for i, (features, stride) in enumerate(BLOCKS, start=1):
            channels = x.shape[-1]
            padding = "SAME" if stride == 1 else ((0, 1), (0, 1))
            x = conv(channels, (3, 3), stride, padding, feature_group_count=channels, name=f"conv_dw_{i}")(x)
            x = relu6(norm(name=f"conv_dw_{i}_bn")(x))  # (B, H / stride, W / stride, channels)
            x = conv(int(features * self.alpha), (1, 1), name=f"conv_pw_{i}")(x)
            x = relu6(norm(name=f"conv_pw_{i}_bn")(x))  # (B, H / stride, W / stride, features * alpha)
        x = layers.GlobalAvgPool(keepdims=True, name="global_pool")(x)  # (B, 1, 1, 1024 * alpha)
        x = nn.Dropout(self.dropout_rate, deterministic=not train, name="dropout")(x)
        x = layers.conv_factory(self)(self.num_classes, (1, 1), name="conv_preds")(x)  # (B, 1, 1, num_classes)
        return x.reshape(x.shape[0], -1)  # (B, num_classes)

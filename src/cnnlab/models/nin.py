"""Network in Network (Lin, Chen & Yan, 2014).

An mlpconv block is a k x k convolution followed by 1x1 convolutions (a small
MLP shared over positions), each with ReLU. The default is the paper's CIFAR-10
network, three mlpconv blocks on 32x32x3 inputs:

    192@5x5, 160@1x1, 96@1x1 -> max-pool 3x3/2 -> dropout 0.5
    192@5x5, 192@1x1, 192@1x1 -> avg-pool 3x3/2 -> dropout 0.5
    192@3x3, 192@1x1, num_classes@1x1 -> global average pooling (no FC layer)

The last 1x1 conv has one channel per class, so global average pooling gives
the logits directly (966,986 parameters with 10 classes). Pooling uses Caffe's
ceil mode, as the original model did. Blocks are data: `blocks` lists
(kernel, widths) per block, and the last block's last width is replaced by
`num_classes`.
"""

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models import layers

CIFAR_BLOCKS = ((5, (192, 160, 96)), (5, (192, 192, 192)), (3, (192, 192, 0)))


class NIN(nn.Module):
    """mlpconv blocks; pooling + dropout between them; global average pooling at the end."""

    num_classes: int = 10
    blocks: Sequence[tuple[int, Sequence[int]]] = CIFAR_BLOCKS
    poolings: Sequence[str] = ("max", "avg")
    dropout_rate: float = 0.5
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = layers.conv_factory(self)
        pools = {"max": layers.MaxPool, "avg": layers.AvgPool}
        last = len(self.blocks) - 1
        for b, (kernel, widths) in enumerate(self.blocks):
            widths = list(widths)
            if b == last:
                widths[-1] = self.num_classes  # one feature map per class
            for i, width in enumerate(widths):
                k = kernel if i == 0 else 1
                x = conv(width, (k, k), padding=k // 2, name=f"block{b + 1}_conv{i + 1}")(x)  # (B, H, W, width)
                x = nn.relu(x)
            if b < last:
                pool = pools[self.poolings[b]]
                x = pool((3, 3), (2, 2), ceil_mode=True, strict=self.strict, name=f"block{b + 1}_pool")(x)  # H / 2
                x = nn.Dropout(self.dropout_rate, deterministic=not train, name=f"block{b + 1}_dropout")(x)
        return layers.GlobalAvgPool(name="gap")(x)  # (B, num_classes)

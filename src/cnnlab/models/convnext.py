"""ConvNeXt (Liu et al., 2022), the tiny configuration in torchvision's layout.

Stem: 4x4/4 "patchify" conv + LayerNorm. Four stages of (3, 3, 9, 3) blocks at
widths (96, 192, 384, 768), separated by LayerNorm + 2x2/2 conv. A block is a
7x7 depthwise conv, LayerNorm, an inverted bottleneck (Linear 4x, exact GELU,
Linear), a learned per-channel layer scale (initialized to 1e-6) and stochastic
depth on the residual branch. Head: global average pooling, LayerNorm, Linear.
LayerNorm epsilon 1e-6 throughout. At 224x224x3 with 1,000 classes: 28,589,128
parameters.

Stochastic depth grows linearly from 0 in the first block to `drop_path_rate`
(0.1 for the tiny model, as in torchvision) in the last; it is active only when
`train=True` and draws from the "dropout" rng stream.
"""

from collections.abc import Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnlab.models import layers


class ConvNeXtBlock(nn.Module):
    """x + drop_path(gamma * pwconv2(gelu(pwconv1(norm(dwconv(x))))))."""

    drop_path_rate: float
    conv: Any
    dense: Any
    norm: Any
    layer_scale_init: float = 1e-6
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):  # (B, H, W, C) -> (B, H, W, C)
        channels = x.shape[-1]
        y = self.conv(channels, (7, 7), padding=3, feature_group_count=channels, name="dwconv")(x)
        y = self.norm(name="norm")(y)
        y = self.dense(4 * channels, name="pwconv1")(y)  # (B, H, W, 4C): the inverted bottleneck
        y = nn.gelu(y, approximate=False)
        y = self.dense(channels, name="pwconv2")(y)  # (B, H, W, C)
        init = nn.initializers.constant(self.layer_scale_init)
        scale = self.param("layer_scale", init, (channels,), self.param_dtype)
        y = y * scale
        y = layers.DropPath(self.drop_path_rate, deterministic=not train, name="drop_path")(y)
        return x + y


class ConvNeXt(nn.Module):
    """Patchify stem, four stages of ConvNeXt blocks with downsampling between, GAP, LN, Linear."""

    num_classes: int = 1000
    depths: Sequence[int] = (3, 3, 9, 3)
    dims: Sequence[int] = (96, 192, 384, 768)
    drop_path_rate: float = 0.1
    layer_scale_init: float = 1e-6
    strict: bool = False
    dtype: Any = jnp.float32
    param_dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        conv = layers.conv_factory(self)
        dense = layers.dense_factory(self)
        norm = partial(nn.LayerNorm, epsilon=1e-6, dtype=self.dtype, param_dtype=self.param_dtype)
        x = conv(self.dims[0], (4, 4), 4, "VALID", name="stem_conv")(x)  # (B, 56, 56, 96)
        x = norm(name="stem_norm")(x)
        total, index = sum(self.depths), 0
        for stage, (depth, dim) in enumerate(zip(self.depths, self.dims)):
            if stage > 0:
                x = norm(name=f"downsample{stage}_norm")(x)
                x = conv(dim, (2, 2), 2, "VALID", name=f"downsample{stage}_conv")(x)  # (B, H / 2, W / 2, dim)
            for i in range(depth):
                rate = self.drop_path_rate * index / max(total - 1, 1)  # linear in the block index
                block = ConvNeXtBlock(
                    rate, conv, dense, norm, self.layer_scale_init, self.param_dtype, name=f"stage{stage + 1}_{i}"
                )
                x = block(x, train)
                index += 1
        x = layers.GlobalAvgPool(name="avgpool")(x)  # (B, 768)
        x = norm(name="head_norm")(x)
        return dense(self.num_classes, name="head")(x)

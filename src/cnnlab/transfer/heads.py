"""The classifier of each model family: where the base ends and the head begins.

`head_paths(model)` names the modules whose variables depend on
`num_classes`, the main classifier first (GoogLeNet also has two auxiliary
classifiers). Transfer learning replaces them: the new head is initialized
from the run's seed for the target's classes, and `transfer.head.hidden`
puts extra Dense + ReLU layers in front of it (`WithHidden`).

The *features* of an image are what the main classifier receives, so
`features(model)` runs the model with the classifier intercepted
(`flax.linen.intercept_methods`) and returns its input. For the families
whose classifier is a convolution followed by pooling (SqueezeNet, NIN) that
is the pooled feature map; for MobileNet, the pooled (B, 1024) vector.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

Path = tuple[str, ...]

# Model class -> the classifier modules (main first), by path.
HEADS: dict[str, tuple[Path, ...]] = {
    "MLP": (("output",),),
    "TypicalCNN": (("dense2",),),
    "LeNet5": (("output",),),
    "SimpleCNN": (("output",),),
    "AlexNet": (("fc8",),),
    "AlexNetTV": (("fc8",),),
    "VGG": (("predictions",),),
    "GoogLeNet": (("fc",), ("aux_4a", "fc2"), ("aux_4d", "fc2")),
    "InceptionV3": (("predictions",),),
    "Xception": (("predictions",),),
    "ResNet": (("fc",),),
    "SqueezeNet": (("classifier",),),
    "MobileNetV1": (("conv_preds",),),
    "ConvNeXt": (("head",),),
}


def head_paths(model: nn.Module) -> tuple[Path, ...]:
    """The classifier module paths of `model`, the main one first."""
    family = type(model.base if isinstance(model, WithHidden) else model).__name__
    if family == "NIN":  # the last 1x1 conv has one channel per class
        widths = model.blocks[-1][1]
        return ((f"block{len(model.blocks)}_conv{len(widths)}",),)
    if family not in HEADS:
        raise ValueError(f"no known classifier for {family}; transfer learning supports: {', '.join(HEADS)}, NIN")
    return HEADS[family]


def head_modules(model: nn.Module) -> set[str]:
    """Top-level module names that belong to the new head (classifiers, auxiliary heads, hidden layers)."""
    names = {path[0] for path in head_paths(model)}
    if isinstance(model, WithHidden):
        names |= {hidden_name(i) for i in range(len(model.hidden))}
    return names


def hidden_name(i: int) -> str:
    return f"head_hidden{i + 1}"


class WithHidden(nn.Module):
    """`base` with Dense + ReLU layers of widths `hidden` in front of its classifier.

    The base's variables stay at the top level (`nn.share_scope`), beside
    `head_hidden1`, `head_hidden2`, ..., so pretrained weights and freezing
    rules see the same names with and without hidden layers.
    """

    base: nn.Module
    hidden: Sequence[int]

    def setup(self):
        nn.share_scope(self, self.base)

    @nn.compact
    def __call__(self, x, train: bool = False):
        dense = [nn.Dense(width, dtype=self.base.dtype, name=hidden_name(i)) for i, width in enumerate(self.hidden)]
        main = head_paths(self.base)[0]

        def before_head(next_fun, args, kwargs, context):
            if context.method_name == "__call__" and context.module.path == main:
                y = args[0]  # the features, e.g. (B, 2048)
                for layer in dense:
                    y = nn.relu(layer(y))
                return next_fun(y, *args[1:], **kwargs)
            return next_fun(*args, **kwargs)

        with nn.intercept_methods(before_head):
            return self.base(x, train)


def features(model: nn.Module):
    """`apply(variables, images) -> (B, D)` features: the main classifier's input, in eval mode."""
    main = head_paths(model)[0]

    def skip_head(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and context.module.path == main:
            return args[0]  # the classifier's input, passed on instead of its logits
        return next_fun(*args, **kwargs)

    def apply(variables, images):
        with nn.intercept_methods(skip_head):
            out = model.apply(variables, images, train=False)
        return out.reshape(out.shape[0], -1).astype(jnp.float32)

    return apply

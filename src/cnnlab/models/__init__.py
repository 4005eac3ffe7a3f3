"""CNN architectures as pure Flax (linen) modules, NHWC, `__call__(x, train)`.

    from cnnlab import models
    model = models.create("lenet5", num_classes=10)
    print(models.summarize(model, (32, 32, 1)).render())

`models.names()` lists the registry; `models.conv_output_size(n, k, s, p)` is the
conv arithmetic that every layer checks at build time.
"""

from cnnlab.models.layers import conv_output_size
from cnnlab.models.lenet import LeNet5
from cnnlab.models.registry import create, default_input_shape, names
from cnnlab.models.summary import ModelSummary, summarize

__all__ = [
    "LeNet5",
    "ModelSummary",
    "conv_output_size",
    "create",
    "default_input_shape",
    "names",
    "summarize",
]

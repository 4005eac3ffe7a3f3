"""CNN architectures as pure Flax (linen) modules, NHWC, `__call__(x, train)`.

    from cnnlab import models
    model = models.create("lenet5", num_classes=10)
"""

from cnnlab.models.lenet import LeNet5
from cnnlab.models.registry import create, names

__all__ = ["LeNet5", "create", "names"]

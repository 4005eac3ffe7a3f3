"""CNN architectures as pure Flax (linen) modules, NHWC, `__call__(x, train)`.

    from cnnlab import models
    model = models.create("lenet5", num_classes=10)
    print(models.summarize(model, (32, 32, 1)).render())

`models.names()` lists the registry; `models.conv_output_size(n, k, s, p)` is the
conv arithmetic that every layer checks at build time; `models.receptive_fields(model,
input_shape)` each conv and pooling layer's receptive field, jump and start.

A model's fields are its architecture only. Which code computes its
convolutions, BatchNorm sums and pooling, and which XLA options its programs
compile with, is `cnnlab.backend`'s choice for the backend it runs on (on the
CPU: tap-matmul convolutions, dot sums, tiled pooling, and XLA's own
convolution instead of YNNPACK's). The code is chosen when the model is
traced, under any `jax.jit`; the compiler options are an argument of the jit
itself, so a training loop of your own gets them, as cnnlab's trainer does,
by compiling its step with this one line:

    train_step = cnnlab.backend.jit(train_step, donate_argnums=0)   # instead of jax.jit

(With plain `jax.jit` such a loop's step took 1.7x (LeNet-5) and 1.4x
(ResNet-18-CIFAR) as long as the trainer's on the CPU; with this line 0.9x:
`bench/user_loop.py`.)

(`with cnnlab.backend.use("stock"):` around building and tracing a step gives
XLA's and flax's own code, for comparisons.)
"""

from cnnlab.models.layers import conv_output_size
from cnnlab.models.lenet import LeNet5
from cnnlab.models.receptive_field import receptive_fields
from cnnlab.models.registry import create, default_input_shape, default_num_classes, names
from cnnlab.models.summary import ModelSummary, summarize

__all__ = [
    "LeNet5",
    "ModelSummary",
    "conv_output_size",
    "create",
    "default_input_shape",
    "default_num_classes",
    "names",
    "receptive_fields",
    "summarize",
]

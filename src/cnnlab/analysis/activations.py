"""What happens inside the network: its convolutions' kernels and outputs, and input gradients.

Convolutions are found by intercepting module calls (`nn.intercept_methods`), so any
model of the zoo works as it is: no `sow`, no `capture_intermediates` names to know.
Every `flax.linen.Conv` counts (cnnlab's checked `layers.Conv` is one), depthwise and
1x1 included, in the order the forward pass calls them.
"""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnnlab import backend
from cnnlab.analysis.run import TrainedRun


@dataclasses.dataclass(frozen=True)
class ConvCall:
    path: str  # e.g. "layer2_0/conv1"
    kernel: np.ndarray  # (kh, kw, in / groups, out)
    output: np.ndarray  # (H, W, out) of the one image, before any activation


def conv_calls(run: TrainedRun, image: np.ndarray) -> list[ConvCall]:
    """Every convolution's kernel and output for one normalized image (H, W, C), in call order."""
    calls = []

    def record(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if isinstance(context.module, nn.Conv) and context.method_name == "__call__":
            kernel = context.module.variables["params"]["kernel"]
            calls.append(ConvCall("/".join(context.module.path), np.asarray(kernel), np.asarray(out[0])))
        return out

    with backend.use(run.config.get("backend", "auto")), nn.intercept_methods(record):
        run.apply(jnp.asarray(image[None]))  # eagerly, once: the outputs are concrete
    return calls


def stage_outputs(calls: list[ConvCall]) -> list[ConvCall]:
    """The last convolution of each stage, a stage being a run of calls at one spatial size:
    what the network has computed at each resolution before it moves to the next. A stage
    of a single position (LeNet-5's C5: 1x1) is left out: such a map is one number, not a picture."""
    stages = []
    for call in calls:
        if stages and stages[-1].output.shape[:2] == call.output.shape[:2]:
            stages[-1] = call
        else:
            stages.append(call)
    return [stage for stage in stages if stage.output.shape[0] * stage.output.shape[1] > 1]


def saliency(run: TrainedRun, images: np.ndarray) -> np.ndarray:
    """(N, H, W) |d logit of the predicted class / d input|, the largest over channels
    (Simonyan et al., 2014), for normalized images (N, H, W, C)."""

    # In eval mode an example's logits depend on its own image only, so the gradient of the
    # batch's summed top logits holds every example's own gradient: one backward pass for all.
    def summed_top_logits(images):  # (N, H, W, C) -> ()
        return jnp.max(run.apply(images).astype(jnp.float32), axis=-1).sum()

    gradients = run.jit(jax.grad(summed_top_logits))(jnp.asarray(images))  # (N, H, W, C)
    return np.abs(np.asarray(gradients, np.float32)).max(axis=-1)

"""Frozen parameters: which ones, how the optimizer skips them, and frozen BatchNorm.

**Which.** A *stage* is a group of consecutive top-level modules, named by a
per-family rule: ResNet `stem, layer1 ... layer4`; VGG, Xception and NIN
`block1, block2, ...`; MobileNet `conv1, block1 ... block13`; ConvNeXt
`stem, stage1, downsample1, stage2, ...`; every other model one stage per
top-level layer (a `_bn` or `_norm` layer joins the layer it follows, e.g.
LeNet-5 `C1, C3, C5, F6`; InceptionV3 `conv1 ... conv5, mixed0 ... mixed10`).
`freeze.stages=N` freezes the first N stages in forward order;
`freeze.patterns` freezes every parameter whose path (`layer1_0/conv1/kernel`)
matches one of the regexes. The head is never frozen.

**How.** `partition(tx, mask)` is `optax.partition` with `set_to_zero()` for
the frozen labels: frozen parameters get a zero update, so they stay bitwise
unchanged, and no optimizer state (their slots are `optax.MaskedNode`).

**BatchNorm.** By default the BatchNorm layers whose parameters are all frozen
run in inference mode while the rest trains: they normalize with their running
statistics and never update them (Keras's behaviour for `trainable=False`).
`FrozenBatchNorm` does this by intercepting those layers' calls, so the model
code needs no flag. With `freeze.bn_inference=false` they behave as in
PyTorch: batch statistics in training, running statistics still updated.
"""

import re
from collections.abc import Collection, Iterable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

Path = tuple[str, ...]

# Model class -> [(regex on a top-level module name, stage name template)]; the first match names the stage.
STAGE_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "ResNet": ((r"^(conv1|bn1)$", "stem"), (r"^(layer\d)_", r"\1")),
    "VGG": ((r"^(block\d+)_", r"\1"),),
    "Xception": ((r"^(block\d+)_", r"\1"),),
    "NIN": ((r"^(block\d+)_", r"\1"),),
    "MobileNetV1": ((r"^conv_[dp]w_(\d+)", r"block\1"),),
    "ConvNeXt": ((r"^stem_", "stem"), (r"^(stage\d)_", r"\1"), (r"^(downsample\d)_", r"\1")),
}


def stage_of(family: str, module: str) -> str:
    for pattern, template in STAGE_RULES.get(family, ()):
        if m := re.match(pattern, module):
            return m.expand(template)
    return re.sub(r"_(bn|norm)$", "", module)


def stages(family: str, order: Sequence[Path], with_variables: Collection[str], head: Collection[str]) -> list[str]:
    """The base's stage names in forward order (modules without variables and the head left out)."""
    names: list[str] = []
    for path in order:
        if len(path) == 1 and path[0] in with_variables and path[0] not in head:
            stage = stage_of(family, path[0])
            if stage not in names:
                names.append(stage)
    return names


def frozen_mask(variables, *, family: str, head: Collection[str], stage_names: Sequence[str], everything: bool,
                frozen_stages: int = 0, patterns: Iterable[str] = ()):  # fmt: skip
    """A pytree of bools like `variables`: True where the variable is frozen.

    `everything`: the whole base (feature extraction); else the first
    `frozen_stages` of `stage_names` and whatever matches `patterns`.
    """
    if len(stage_names) < frozen_stages:
        raise ValueError(f"cannot freeze {frozen_stages} stages: the model has {len(stage_names)} "
                         f"({', '.join(stage_names)})")  # fmt: skip
    first = set(stage_names[:frozen_stages])
    compiled = [re.compile(p) for p in patterns]

    def is_frozen(path: Path) -> bool:
        if path[0] in head:
            return False
        if everything or stage_of(family, path[0]) in first:
            return True
        return any(p.search("/".join(path)) for p in compiled)

    flat = traverse_util.flatten_dict(variables)
    return traverse_util.unflatten_dict({path: is_frozen(path) for path in flat})


def partition(tx: optax.GradientTransformation, mask) -> optax.GradientTransformation:
    """`tx` for the trainable parameters, zero updates and no state for the frozen ones."""
    labels = jax.tree.map(lambda frozen: "frozen" if frozen else "trainable", mask)
    return optax.partition({"trainable": tx, "frozen": optax.set_to_zero()}, labels)


def frozen_batch_norms(params_mask, batch_stats) -> set[Path]:
    """Module paths of the BatchNorm layers whose parameters are all frozen."""
    frozen: dict[Path, bool] = {}
    for (*path, _), is_frozen in traverse_util.flatten_dict(params_mask).items():
        frozen[tuple(path)] = frozen.get(tuple(path), True) and is_frozen
    bn_paths = {tuple(path) for (*path, _) in traverse_util.flatten_dict(batch_stats)}
    return {path for path in bn_paths if frozen.get(path, False)}


class FrozenBatchNorm:
    """`model` whose `apply` runs the BatchNorm layers at `paths` in inference mode.

    Only `apply` is provided: it is what the train step calls. The layers
    still read their own variables, so the running statistics come from the
    state, and since nothing is written they come back unchanged.
    """

    def __init__(self, model: nn.Module, paths: Collection[Path]):
        self.model, self.paths = model, frozenset(paths)

    def apply(self, *args, **kwargs):
        with nn.intercept_methods(self._intercept):
            return self.model.apply(*args, **kwargs)

    def _intercept(self, next_fun, args, kwargs, context):
        module = context.module
        if not (isinstance(module, nn.BatchNorm) and context.method_name == "__call__" and module.path in self.paths):
            return next_fun(*args, **kwargs)
        x = args[0]
        mean, var = module.get_variable("batch_stats", "mean"), module.get_variable("batch_stats", "var")
        y = (x - mean) * jax.lax.rsqrt(var + module.epsilon)  # flax's BatchNorm with use_running_average=True
        if module.use_scale:
            y = y * module.get_variable("params", "scale")
        if module.use_bias:
            y = y + module.get_variable("params", "bias")
        return y.astype(module.dtype or jnp.result_type(x))

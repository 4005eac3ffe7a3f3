"""Explicit weight mappings: which tensor of a file becomes which Flax variable, and how.

A mapping is a list of `Entry(target, key, convert)`: `target` is the path of
one Flax variable, `(collection, *module path, name)`, e.g. `("params",
"layer1_0", "conv1", "kernel")`; `key` names one tensor of the file (a
torchvision state-dict key such as `layer1.0.conv1.weight`, or a Keras
`layer[i]`); `convert` turns the file's layout into Flax's (PyTorch convs are
(O, I, kh, kw), Flax's (kh, kw, I, O)). The family modules (`keras_h5`,
`torchvision`) write these lists layer by layer; `assemble` checks every
tensor's shape against the model and builds the variables.
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

Path = tuple[str, ...]


class WeightFileError(ValueError):
    """A weight file that cannot be read: missing, truncated, or not the format it claims."""


class WeightMismatchError(ValueError):
    """A readable file whose tensors do not fit the model; the message lists every problem."""


class Converter(NamedTuple):
    """A layout change: the file's shape for a target shape, and the array transform."""

    name: str
    source_shape: Callable[[tuple[int, ...]], tuple[int, ...]]
    apply: Callable[[np.ndarray, tuple[int, ...]], np.ndarray]


IDENTITY = Converter("as is", lambda t: tuple(t), lambda a, t: a)
# PyTorch Conv2d (O, I/groups, kh, kw) -> Flax (kh, kw, I/groups, O).
TORCH_CONV = Converter("conv (O,I,kh,kw)", lambda t: (t[3], t[2], t[0], t[1]), lambda a, t: a.transpose(2, 3, 1, 0))
# PyTorch Linear (out, in) -> Flax Dense (in, out).
TORCH_LINEAR = Converter("linear (out,in)", lambda t: (t[1], t[0]), lambda a, t: a.T)
# ConvNeXt's layer scale (C, 1, 1) -> (C,).
TORCH_LAYER_SCALE = Converter("layer scale (C,1,1)", lambda t: (t[0], 1, 1), lambda a, t: a.reshape(t))
# Keras DepthwiseConv2D (kh, kw, C, 1) -> Flax grouped conv (kh, kw, 1, C).
KERAS_DEPTHWISE = Converter("depthwise (kh,kw,C,1)", lambda t: (t[0], t[1], t[3], 1), lambda a, t: a.reshape(t))


def torch_flatten_linear(channels: int) -> Converter:
    """A Linear after `torch.flatten` of (C, H, W) features, for Flax's flatten of (H, W, C).

    The input index is c*H*W + hw in PyTorch and hw*C + c in Flax, so the
    weight's input axis is reordered as well as transposed.
    """

    def apply(a: np.ndarray, target: tuple[int, ...]) -> np.ndarray:
        out = a.shape[0]
        spatial = a.shape[1] // channels
        return a.reshape(out, channels, spatial).transpose(2, 1, 0).reshape(target)  # (H*W*C, out)

    return Converter(f"linear after flatten of {channels} channels", TORCH_LINEAR.source_shape, apply)


class Entry(NamedTuple):
    target: Path  # (collection, *module path, variable name)
    key: str  # the tensor's name in the file
    convert: Converter = IDENTITY


@dataclasses.dataclass(frozen=True)
class Layer:
    """A module that holds variables directly, e.g. ("layer1_0", "conv1") with kernel."""

    path: Path
    variables: dict[str, tuple[str, jax.ShapeDtypeStruct]]  # name -> (collection, shape and dtype)

    @property
    def kind(self) -> str:
        """conv, dense, batch_norm, layer_norm or other, from the variables it holds."""
        names = set(self.variables)
        if "mean" in names:
            return "batch_norm"
        if "kernel" in names:
            return "conv" if len(self.variables["kernel"][1].shape) >= 3 else "dense"
        if names and names <= {"scale", "bias"}:
            return "layer_norm"
        return "other"

    def has(self, name: str) -> bool:
        return name in self.variables

    def target(self, name: str) -> Path:
        return (self.variables[name][0], *self.path, name)


def variable_shapes(model: nn.Module, input_shape: Sequence[int]) -> tuple[dict, list[Path]]:
    """The model's variables as shapes (nothing allocated), and its modules in call order.

    The call order is the order in which the forward pass first reaches each
    module: the order Keras numbers its unnamed layers in, and the order of
    stages for freezing.
    """
    order: list[Path] = []

    def record(next_fun, args, kwargs, context):
        if context.method_name == "__call__" and context.module.path not in order:
            order.append(context.module.path)
        return next_fun(*args, **kwargs)

    key = jax.random.PRNGKey(0)
    with nn.intercept_methods(record):
        shapes = jax.eval_shape(
            lambda: model.init({"params": key, "dropout": key}, jnp.zeros((1, *input_shape)), train=False)
        )
    return shapes, order


def layers_of(shapes: Mapping[str, Any], order: Sequence[Path]) -> list[Layer]:
    """Every variable-holding module, in call order."""
    grouped: dict[Path, dict] = {}
    for (collection, *path, name), leaf in traverse_util.flatten_dict(dict(shapes)).items():
        grouped.setdefault(tuple(path), {})[name] = (collection, leaf)
    rank = {path: i for i, path in enumerate(order)}
    return [Layer(path, grouped[path]) for path in sorted(grouped, key=lambda p: rank.get(p, len(rank)))]


def check(shapes: Mapping[str, Any], entries: Sequence[Entry], tensors: Mapping[str, Any], *, source: str,
          ignore: Callable[[str], bool] = lambda key: False) -> None:  # fmt: skip
    """Raise WeightMismatchError unless `entries` map `tensors` onto every variable of `shapes` exactly.

    `tensors` maps keys to anything with a `.shape`. Every target variable
    must be covered by an entry, every tensor of the file must be used unless
    `ignore(key)`, and every shape must be what the entry's layout expects.
    """
    flat_shapes = traverse_util.flatten_dict(dict(shapes))
    covered = {entry.target for entry in entries}
    uncovered = [path for path in flat_shapes if path not in covered]
    if uncovered:  # a mapping bug rather than a bad file: say which variables it forgot
        raise WeightMismatchError(f"the mapping for {source} leaves {len(uncovered)} variables unset: "
                                  + ", ".join("/".join(p) for p in uncovered[:10]))  # fmt: skip
    missing, mismatched = [], []
    for entry in entries:
        target_shape = tuple(flat_shapes[entry.target].shape)
        expected = tuple(entry.convert.source_shape(target_shape))
        if entry.key not in tensors:
            missing.append(f"{entry.key} {expected} for {'/'.join(entry.target)}")
        elif tuple(tensors[entry.key].shape) != expected:
            mismatched.append(f"{entry.key}: file {tuple(tensors[entry.key].shape)}, model expects {expected} "
                              f"({entry.convert.name}) for {'/'.join(entry.target)} {target_shape}")  # fmt: skip
    used = {entry.key for entry in entries}
    unexpected = [f"{key} {tuple(tensors[key].shape)}" for key in tensors if key not in used and not ignore(key)]
    if missing or mismatched or unexpected:
        raise WeightMismatchError(mismatch_message(source, missing, unexpected, mismatched))


def assemble(shapes: Mapping[str, Any], entries: Sequence[Entry], tensors: Mapping[str, Any], *, source: str,
             ignore: Callable[[str], bool] = lambda key: False) -> dict:  # fmt: skip
    """The model's variables from the file's `tensors`, after `check`, converted to Flax's layouts."""
    check(shapes, entries, tensors, source=source, ignore=ignore)
    flat_shapes = traverse_util.flatten_dict(dict(shapes))
    flat = {}
    for entry in entries:
        target = flat_shapes[entry.target]
        array = entry.convert.apply(np.asarray(tensors[entry.key]), tuple(target.shape))
        flat[entry.target] = np.asarray(array, dtype=target.dtype)
    return traverse_util.unflatten_dict(flat)


def mismatch_message(source: str, missing: list, unexpected: list, mismatched: list) -> str:
    """`source` does not fit the model, with up to 50 lines of each kind of problem."""
    lines = [f"{source} does not fit the model:"]
    for title, items in (("missing", missing), ("unexpected", unexpected), ("mismatched", mismatched)):
        if items:
            lines.append(f"  {len(items)} {title}:")
            lines.extend(f"    {item}" for item in items[:50])
            if len(items) > 50:
                lines.append(f"    ... and {len(items) - 50} more")
    return "\n".join(lines)

"""A Keras-style model summary: Layer (type) | Output Shape | Param #, totals, FLOPs.

    from cnnlab import models
    s = models.summarize(models.create("typical_cnn", num_classes=10), (28, 28, 1))
    print(s.render())

Built on Flax's own tabulation (`flax.linen.summary`, the engine behind
`Module.tabulate`), which records every submodule call with its output and
variables under `jax.eval_shape`, so nothing is materialized. Rows are the
leaves of the module tree (Conv, BatchNorm, MaxPool, Dense, ...), in call order,
plus any non-leaf module that owns variables itself (ConvNeXt's layer scale),
so the rows add up to the total. `depth=N` collapses everything below depth N
into its ancestor's row, like `Module.tabulate(depth=N)`.

As in Keras, "Param #" counts every variable of a layer, BatchNorm statistics
included; the totals split trainable ("params") from non-trainable (the other
collections, i.e. "batch_stats"). Forward FLOPs per image come from XLA's cost
analysis of the eval-mode forward pass at batch size 1 (it counts a multiply-add
as 2 FLOPs and includes bias adds, activations and pooling).
"""

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen import summary as flax_summary
from jax.extend.core import jaxprs_in_params

from cnnlab import backend


@dataclasses.dataclass(frozen=True)
class SummaryRow:
    """One line of the table; `output_shape` has no batch axis (a tuple of shapes for tuple outputs)."""

    name: str
    layer_type: str
    output_shape: tuple
    params: int


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    """The table's rows and totals; `render()` formats it the way Keras prints `model.summary()`."""

    model_name: str
    rows: tuple[SummaryRow, ...]
    trainable: int
    non_trainable: int
    flops: int | None  # forward FLOPs per image (XLA's count); None when not computed
    macs: int | None = None  # forward multiply-adds per image of the convolutions and dense layers

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def render(self) -> str:
        cells = [(f"{r.name} ({r.layer_type})", _format_shape(r.output_shape), f"{r.params:,}") for r in self.rows]
        header = ("Layer (type)", "Output Shape", "Param #")
        widths = [max([len(header[i])] + [len(c[i]) for c in cells]) + 3 for i in range(3)]
        line = lambda row: " " + "".join(text.ljust(w) for text, w in zip(row, widths)).rstrip()  # noqa: E731
        width = sum(widths) + 1
        lines = [f'Model: "{self.model_name}"', "_" * width, line(header), "=" * width]
        for i, row in enumerate(cells):
            lines.append(line(row))
            lines.append("=" * width if i == len(cells) - 1 else "")
        lines += [
            f"Total params: {self.total:,}",
            f"Trainable params: {self.trainable:,}",
            f"Non-trainable params: {self.non_trainable:,}",
            "_" * width,
        ]
        if self.macs is not None:  # what the papers' (and the lecture's) "FLOPs" tables count
            lines.append(f"Forward multiply-adds per image: {self.macs:,} ({_human(self.macs, 'MACs')}; "
                         "convolutions and dense layers)")  # fmt: skip
        if self.flops is not None:
            lines.append(f"Forward FLOPs per image: {self.flops:,} ({_human(self.flops)}; XLA's count: a "
                         "multiply-add is 2, bias adds, activations and pooling included)")  # fmt: skip
        return "\n".join(lines)


def summarize(
    module: nn.Module,
    input_shape: Sequence[int],
    depth: int | None = None,
    flops: bool = True,
    dtype: Any = jnp.float32,
    name: str | None = None,
) -> ModelSummary:
    """Summarize `module` on one example of `input_shape` (no batch axis), in eval mode.

    `name` titles the table (default: the module's class name).
    """
    x = jnp.zeros((1, *input_shape), dtype)  # (1, *input_shape): one image
    rngs = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    # `_get_module_table` is the function `Module.tabulate` renders with rich; we
    # render its rows as Keras does instead. (Private in flax 0.12.8, pinned.)
    table_fn = flax_summary._get_module_table(
        module, depth=depth, show_repeated=False, compute_flops=False, compute_vjp_flops=False
    )
    table = table_fn(rngs, x, train=False)
    variables = jax.eval_shape(lambda: module.init(rngs, x, train=False))
    trainable = _size(variables.get("params", {}))
    non_trainable = sum(_size(v) for k, v in variables.items() if k != "params")
    return ModelSummary(
        model_name=name or type(module).__name__,
        rows=tuple(_rows(table)),
        trainable=trainable,
        non_trainable=non_trainable,
        flops=_forward_flops(module, variables, x) if flops else None,
        macs=forward_macs(module, variables, x) if flops else None,
    )


def _rows(table) -> list[SummaryRow]:
    """Leaves of the recorded call tree, plus non-leaves that own variables, in call order."""
    paths = [row.path for row in table]
    rows = []
    for row in table:
        is_leaf = not any(len(p) > len(row.path) and p[: len(row.path)] == row.path for p in paths)
        own_size = sum(_size(v) for v in row.counted_variables.values())
        if not row.path or not (is_leaf or own_size):
            continue  # the root module, or a container whose variables live in its children
        shape = jax.tree.map(lambda a: tuple(a.shape[1:]), row.outputs)
        rows.append(SummaryRow("/".join(row.path), type(row.module_copy).__name__, shape, own_size))
    return rows


def _forward_flops(module: nn.Module, variables, x) -> int:
    """XLA's FLOP count for one eval-mode forward pass (lowered, not compiled or run)."""
    forward = lambda v, inputs: module.apply(v, inputs, train=False)  # noqa: E731
    cost = jax.jit(forward).lower(variables, jax.ShapeDtypeStruct(x.shape, x.dtype)).cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax returned one dict per device
        cost = cost[0] if cost else {}
    return int((cost or {}).get("flops", 0))


def forward_macs(module: nn.Module, variables, x) -> int:
    """Multiply-adds of one eval-mode forward pass: for every convolution and matrix
    product in its jaxpr, the output's size times the length of each dot it sums.

    This is the count that ResNet's table (He et al., 2015: 1.8 x 10^9 "FLOPs" for
    ResNet-18) and the lecture report, traced with XLA's own convolution
    (`backend.STOCK`) so the count does not depend on how a backend computes it.
    """
    with backend.use("stock"):
        jaxpr = jax.make_jaxpr(lambda v, inputs: module.apply(v, inputs, train=False))(variables, x)
    return _macs(jaxpr.jaxpr) // x.shape[0]


def _macs(jaxpr) -> int:
    total = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            out, kernel = eqn.outvars[0].aval.shape, eqn.invars[1].aval.shape
            out_features = kernel[eqn.params["dimension_numbers"].rhs_spec[0]]
            total += math.prod(out) * math.prod(kernel) // out_features  # (taps * Cin / groups) per output
        elif eqn.primitive.name == "dot_general":
            (lhs_contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)
        for sub in jaxprs_in_params(eqn.params):
            total += _macs(sub)
    return total


def _size(tree) -> int:
    return sum(leaf.size for leaf in jax.tree.leaves(tree))


def _format_shape(shape: tuple) -> str:
    if shape and isinstance(shape[0], tuple):  # a tuple of outputs
        return ", ".join(_format_shape(s) for s in shape)
    return "(None, " + ", ".join(str(d) for d in shape) + ")" if shape else "(None,)"


def _human(n: float, what: str = "FLOPs") -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}{what}"
    return f"{n} {what}"

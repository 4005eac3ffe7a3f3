"""Receptive fields: how much of the input each convolution and pooling layer's units see.

For a layer with kernel k, stride s, dilation d and low-side padding p, whose input
units see r_in input pixels, lie j_in input pixels apart and the first of which is
centred at pixel start_in (pixel i's centre is at i), the standard recurrences are

    k_eff = d (k - 1) + 1
    r_out = r_in + (k_eff - 1) j_in                      the receptive field
    j_out = j_in s                                       the cumulative stride ("jump")
    start_out = start_in + ((k_eff - 1) / 2 - p) j_in    the centre of unit 0's field

starting from r = j = 1, start = 0 at the input (Dumoulin & Visin, 2016; Araujo et
al., 2019). `chain(windows)` applies them to a sequence of windows;
`receptive_fields(model, input_shape)` applies them to a model's traced forward pass,
array by array, so branches are handled exactly: where branches meet (a residual add,
an Inception concat), the field is the union of theirs. Every value is per spatial
axis (H, W). Pooling inside the model is traced as XLA's `reduce_window` (the stock
backend), so every pool is seen whatever backend the model runs on.

    from cnnlab import models
    for layer in models.receptive_fields(models.create("vgg16", num_classes=10), (224, 224, 3)):
        print(layer.name, layer.field.size)     # block5_pool (212, 212)
"""

import dataclasses
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.extend.core import Literal, jaxprs_in_params

from cnnlab import backend

Pair = tuple[int, int]
POOLS = {"reduce_window_max": "max pool", "reduce_window_sum": "avg pool", "reduce_window": "pool"}
SPATIAL = (1, 2)  # NHWC


@dataclasses.dataclass(frozen=True)
class Field:
    """What one unit of a layer sees, per spatial axis (H, W), in input pixels."""

    size: Pair  # r: the receptive field
    jump: Pair  # j: the distance between neighbouring units' fields (cumulative stride)
    start: tuple[float, float]  # the centre of unit 0's field (pixel i's centre is at i)


INPUT = Field((1, 1), (1, 1), (0.0, 0.0))
EVERYTHING = "everything"  # a unit that depends on every input pixel: after flatten, a global pool


@dataclasses.dataclass(frozen=True)
class Window:
    """A convolution or pooling window along each spatial axis."""

    kernel: Pair
    stride: Pair = (1, 1)
    dilation: Pair = (1, 1)
    pad_low: Pair = (0, 0)  # padding before the first input position


@dataclasses.dataclass(frozen=True)
class LayerField:
    name: str  # the layer's module path, e.g. "layer2_0/conv1"
    kind: str  # "conv", "max pool", "avg pool"
    window: Window
    field: Field  # of the layer's output units


def after(field: Field, window: Window) -> Field:
    """The field of a layer's units from the field of its input's (the module docstring's recurrences)."""
    size, jump, start = [], [], []
    for r, j, c, k, s, d, p in zip(field.size, field.jump, field.start, window.kernel, window.stride,
                                   window.dilation, window.pad_low):  # fmt: skip
        k_eff = d * (k - 1) + 1
        size.append(r + (k_eff - 1) * j)
        jump.append(j * s)
        start.append(c + ((k_eff - 1) / 2 - p) * j)
    return Field(tuple(size), tuple(jump), tuple(start))


def chain(windows: Sequence[Window]) -> list[Field]:
    """The field after each of `windows` applied one after the other to the input."""
    fields, field = [], INPUT
    for window in windows:
        field = after(field, window)
        fields.append(field)
    return fields


def union(fields: Sequence[Field]) -> Field:
    """The field of a unit that combines units of several branches (an add, a concat): their span."""
    size, jump, start = [], [], []
    for axis in range(2):
        low = min(f.start[axis] - (f.size[axis] - 1) / 2 for f in fields)
        high = max(f.start[axis] + (f.size[axis] - 1) / 2 for f in fields)
        size.append(int(round(high - low)) + 1)
        jump.append(max(f.jump[axis] for f in fields))
        start.append((low + high) / 2)
    return Field(tuple(size), tuple(jump), tuple(start))


def receptive_fields(module: nn.Module, input_shape: Sequence[int]) -> list[LayerField]:
    """Each convolution's and pooling layer's field, in the order the forward pass calls them."""
    x = jax.ShapeDtypeStruct((1, *input_shape), jnp.float32)
    variables = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(x.shape), train=False))
    with backend.use("stock"):  # flax's pools: reduce_window, whatever the policy would tile
        closed = jax.make_jaxpr(lambda v, inputs: module.apply(v, inputs, train=False))(variables, x)
    jaxpr = closed.jaxpr
    env = {var: None for var in jaxpr.invars}  # the variables: no spatial extent
    env[jaxpr.invars[-1]] = INPUT
    layers: list[LayerField] = []
    _walk(jaxpr, env, layers)
    return layers


def _walk(jaxpr, env: dict, layers: list[LayerField]) -> None:
    """Propagate fields through `jaxpr`'s equations; append a row for each conv and pool."""
    read = lambda v: None if isinstance(v, Literal) else env.get(v)  # noqa: E731
    for eqn in jaxpr.eqns:
        inputs = [read(v) for v in eqn.invars]
        window = _window(eqn)
        if window is not None and isinstance(inputs[0], Field):
            field = after(inputs[0], window)
            kind = "conv" if eqn.primitive.name == "conv_general_dilated" else POOLS[eqn.primitive.name]
            layers.append(LayerField(_layer_name(eqn), kind, window, field))
            env[eqn.outvars[0]] = field
            continue
        sub = _inner_jaxpr(eqn)
        if sub is not None:  # jit, custom_jvp (relu), ...: the same propagation inside
            inner = dict(zip(sub.invars, inputs))
            _walk(sub, inner, layers)
            for out, inner_out in zip(eqn.outvars, sub.outvars):
                env[out] = None if isinstance(inner_out, Literal) else inner.get(inner_out)
            continue
        for out in eqn.outvars:
            env[out] = _elementwise(eqn, inputs, out)


def _window(eqn) -> Window | None:
    """The spatial window of a convolution or a pooling `reduce_window`; None for anything else,
    and for a window of one position and stride 1 (local response normalization sums channels)."""
    name = eqn.primitive.name
    if name == "conv_general_dilated":
        numbers = eqn.params["dimension_numbers"]
        kernel_shape = eqn.invars[1].aval.shape
        if any(d != 1 for d in eqn.params["lhs_dilation"]):  # a transposed convolution: not modelled
            return None
        return Window(tuple(kernel_shape[d] for d in numbers.rhs_spec[2:]), tuple(eqn.params["window_strides"]),
                      tuple(eqn.params["rhs_dilation"]), tuple(lo for lo, _ in eqn.params["padding"]))  # fmt: skip
    if name in POOLS:
        dims, strides = eqn.params["window_dimensions"], eqn.params["window_strides"]
        window = Window(tuple(dims[a] for a in SPATIAL), tuple(strides[a] for a in SPATIAL),
                        tuple(eqn.params["window_dilation"][a] for a in SPATIAL),
                        tuple(eqn.params["padding"][a][0] for a in SPATIAL))  # fmt: skip
        return None if window.kernel == (1, 1) and window.stride == (1, 1) else window
    return None


def _elementwise(eqn, inputs: list, out) -> Field | str | None:
    """Any other operation. Fields belong to arrays laid out (B, H, W, ...): an output of the same
    spatial size as its spatial inputs keeps (the union of) their fields, shifted by a pad or a
    slice, and a reduction over channels (LayerNorm's) keeps them too; anything that mixes
    positions (a global pool, flatten) sees everything."""
    fields = [f for f in inputs if f is not None]
    if not fields:
        return None  # computed from the variables alone
    shape, name = out.aval.shape, eqn.primitive.name
    spatial = [v.aval.shape[1:3] for v, f in zip(eqn.invars, inputs) if f is not None]
    if EVERYTHING in fields or len(shape) < 3 or any(len(s) < 2 for s in spatial):
        return EVERYTHING
    if name.startswith("reduce_") and "axes" in eqn.params:
        return EVERYTHING if set(eqn.params["axes"]) & set(SPATIAL) else union(fields)
    if name == "pad" and len(fields) == 1:
        lows = [eqn.params["padding_config"][a][0] for a in SPATIAL]
        f = fields[0]
        return Field(f.size, f.jump, tuple(c - lo * j for c, lo, j in zip(f.start, lows, f.jump)))
    if name == "slice" and len(fields) == 1 and not any((eqn.params["strides"] or (1,) * 4)[a] != 1 for a in SPATIAL):
        f = fields[0]
        firsts = [eqn.params["start_indices"][a] for a in SPATIAL]
        return Field(f.size, f.jump, tuple(c + s * j for c, s, j in zip(f.start, firsts, f.jump)))
    if all(s == shape[1:3] for s in spatial):
        return union(fields)
    return EVERYTHING


def _inner_jaxpr(eqn):
    """The jaxpr a call-like equation (jit, custom_jvp_call, ...) runs on its own operands, if any."""
    for sub in jaxprs_in_params(eqn.params):
        if len(sub.invars) == len(eqn.invars) and len(sub.outvars) == len(eqn.outvars):
            return sub
    return None


def _layer_name(eqn) -> str:
    """'ResNet/layer1_0/conv1/conv1' -> 'layer1_0/conv1': the module path, without the root's
    class name and without the repetition of a module's name for its own call."""
    parts = [p for p in str(eqn.source_info.name_stack).split("/") if "." not in p][1:]  # "VGG._stage": a method
    names = [p for i, p in enumerate(parts) if i == 0 or p != parts[i - 1]]
    return "/".join(names) or eqn.primitive.name


def render(layers: Sequence[LayerField]) -> str:
    """A second table for `cnnlab-summary`: each layer's window and field, one number per
    quantity where H and W agree ("HxW" where they do not)."""
    if not layers:
        return "Receptive fields: the model has no convolution or pooling layer."
    header = ("Layer (type)", "Kernel", "Stride", "Receptive field", "Jump", "Start")
    cells = [(f"{layer.name} ({layer.kind})", _pair(layer.window.kernel), _pair(layer.window.stride),
              _pair(layer.field.size), _pair(layer.field.jump), _pair(layer.field.start))
             for layer in layers]  # fmt: skip
    widths = [max(len(row[i]) for row in (header, *cells)) + 3 for i in range(len(header))]
    line = lambda row: " " + "".join(text.ljust(w) for text, w in zip(row, widths)).rstrip()  # noqa: E731
    rule = "_" * (sum(widths) + 1)
    return "\n".join(["Receptive fields, in input pixels (jump: cumulative stride; start: the centre of the "
                      "first unit's field, pixel i centred at i)", rule, line(header), "=" * len(rule),
                      *map(line, cells), rule])  # fmt: skip


def _pair(values) -> str:
    text = [f"{v:g}" for v in values]
    return text[0] if text[0] == text[1] else "x".join(text)

"""A convolution for XLA:CPU whose parts can be matrix products, one per kernel tap.

A convolution's forward pass and both of its gradients are sums of ordinary
matrix products, one per tap (i, j) of the kernel; the weight gradient, for
example:

    dW[i, j] = X_ij^T @ dY        X_ij: (B*Ho*Wo, Cin), the input shifted by the tap
                                  dY:   (B*Ho*Wo, Cout), the output's gradient

where X_ij is the strided slice of the padded input that tap (i, j) sees. The
slices are taken from the input laid out (Cin, B, H, W), so each product is a
row-major (Cin, M) @ (M, Cout) matmul (XLA:CPU ran the bare product 2.6x
faster in that layout than as (M, Cin)^T @ (M, Cout)).

`conv_general_dilated` has `lax.conv_general_dilated`'s signature and is a
`jax.custom_vjp`. `plan` picks, per layer, XLA's own code or the tap form
for each of the forward pass, the input gradient and the weight gradient,
from the per-layer measurements of `bench/conv_layers.py`. Compiled as runs
compile (`backend.compiler_options()`: XLA's own Eigen convolution, not
YNNPACK's, whose weight gradient was up to 28x slower), XLA's code wins at
the large layers and the taps at the small ones: few input channels, outputs
of one position, 1x1 kernels. Anything the taps do not cover (input
dilation, other layouts, batch groups, negative padding) goes to
`lax.conv_general_dilated` unchanged.

This module holds the kernels and the plan only; whether a model's
`layers.Conv` uses them is the backend policy's choice
(`cnnlab.backend.current().conv == "taps"`: on a single CPU device).
Called directly, `conv_general_dilated` uses them on any backend.
"""

import itertools
import math
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax


class Plan(NamedTuple):
    """Which implementation computes each part of one convolution: "xla" or "taps"."""

    forward: str
    input_grad: str
    weight_grad: str


def plan(input_shape: Sequence[int], kernel_shape: Sequence[int], output_spatial: Sequence[int], groups: int) -> Plan:
    """The per-layer choice, from `bench/conv_layers.py`'s per-layer measurements
    (compiled as runs compile, with `backend.compiler_options()`):

    - forward: the taps as one im2col product when there is a single input
      channel and one group (the typical CNN's conv1 on grey images: 3x faster
      than XLA's convolution; LeNet-5's C1: even); XLA's otherwise (1.5-3x
      faster than the tap form). One product keeps XLA's FLOP count exact;
    - input gradient: taps when the input has under 8 channels (LeNet-5's C1
      and C3, the typical CNN's conv1, ResNet's stem: 1.2-2.6x faster) or the
      output is a single position (LeNet-5's C5: XLA's transposed convolution
      took 3 ms, the taps 0.3); XLA's otherwise (up to 2.2x faster at ResNet's
      32x32x64 stage; at its 4x4 stage the taps won the layer alone by 5% but
      made the whole step of ResNet-18-CIFAR at widths 16-128 6% slower);
    - weight gradient: taps for 1x1 kernels (one product, X^T @ dY: 1.0-2x
      faster at ResNet's strided downsamples); XLA's otherwise (2-3.6x faster
      than the taps at every 3x3 and 5x5 layer measured).

    Grouped and depthwise convolutions keep XLA's code everywhere: their tap
    forms are correct (tested) but were not measured faster.
    """
    cin, cin_g = input_shape[-1], kernel_shape[-2]
    if groups != 1:
        return Plan("xla", "xla", "xla")
    forward = "taps" if cin_g == 1 else "xla"
    input_grad = "taps" if cin < 8 or math.prod(output_spatial) == 1 else "xla"
    weight_grad = "taps" if math.prod(kernel_shape[:-2]) == 1 else "xla"
    return Plan(forward, input_grad, weight_grad)


class _Geometry(NamedTuple):
    """Everything static about one convolution (hashable: it keys the custom_vjp)."""

    strides: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    dilation: tuple[int, ...]
    groups: int
    precision: Any
    plan: Plan


def conv_general_dilated(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Sequence[int],
    padding: str | Sequence[tuple[int, int]],
    lhs_dilation: Sequence[int] | None = None,
    rhs_dilation: Sequence[int] | None = None,
    dimension_numbers: Any = None,
    feature_group_count: int = 1,
    batch_group_count: int = 1,
    precision: Any = None,
    preferred_element_type: Any = None,
) -> jax.Array:
    """`lax.conv_general_dilated` with the tap-matmul weight gradient, for channel-last
    inputs (B, *spatial, C) and kernels (*spatial, C / groups, features)."""
    rank = lhs.ndim - 2
    dilation = tuple(rhs_dilation or (1,) * rank)
    supported = (
        _is_channel_last(dimension_numbers, lhs.ndim)
        and all(d == 1 for d in (lhs_dilation or (1,) * rank))
        and batch_group_count == 1
        and preferred_element_type is None
    )
    if supported:
        window = [(k - 1) * d + 1 for k, d in zip(rhs.shape[:rank], dilation)]
        pads = lax.padtype_to_pads(lhs.shape[1:-1], window, window_strides, padding) if isinstance(padding, str) else padding
        pads = tuple((int(lo), int(hi)) for lo, hi in pads)
        supported = all(lo >= 0 and hi >= 0 for lo, hi in pads)
    if not supported:
        return lax.conv_general_dilated(
            lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
            feature_group_count, batch_group_count, precision, preferred_element_type,
        )  # fmt: skip
    strides = tuple(window_strides)
    out = output_shape(lhs.shape[1:-1], rhs.shape[:rank], strides, pads, dilation)
    layer_plan = plan(lhs.shape, rhs.shape, out, feature_group_count)
    return _conv(lhs, rhs, _Geometry(strides, pads, dilation, feature_group_count, precision, layer_plan))


def _is_channel_last(dimension_numbers: Any, ndim: int) -> bool:
    """True for flax's layout: lhs and out (B, *spatial, C), rhs (*spatial, I, O)."""
    if dimension_numbers is None:
        return False
    spatial = tuple(range(1, ndim - 1))
    expected = lax.ConvDimensionNumbers((0, ndim - 1, *spatial), (ndim - 1, ndim - 2, *range(ndim - 2)),
                                        (0, ndim - 1, *spatial))  # fmt: skip
    if isinstance(dimension_numbers, lax.ConvDimensionNumbers):
        return dimension_numbers == expected
    shape = (1,) * ndim
    return lax.conv_dimension_numbers(shape, shape, dimension_numbers) == expected


def _xla_conv(x: jax.Array, w: jax.Array, g: _Geometry) -> jax.Array:
    rank = x.ndim - 2
    dn = lax.conv_dimension_numbers(x.shape, w.shape, _channel_last_spec(rank))
    return lax.conv_general_dilated(x, w, g.strides, g.padding, None, g.dilation, dn, g.groups, 1, g.precision)


def _channel_last_spec(rank: int) -> tuple[str, str, str]:
    letters = "DHW"[-rank:] if rank <= 3 else None
    return (f"N{letters}C", f"{letters}IO", f"N{letters}C")


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv(x: jax.Array, w: jax.Array, g: _Geometry) -> jax.Array:
    if g.plan.forward == "taps":
        return forward_taps(x, w, g.strides, g.padding, g.dilation, g.groups, g.precision)
    return _xla_conv(x, w, g)


def _conv_fwd(x, w, g):
    return _conv(x, w, g), (x, w)


def _conv_bwd(g, residuals, dy):
    x, w = residuals
    if g.plan.input_grad == "taps":
        dx = input_grad_taps(dy, w, x.shape, g.strides, g.padding, g.dilation, g.groups, g.precision)
    else:  # XLA's own transposed convolution
        dx = jax.vjp(lambda x: _xla_conv(x, w, g), x)[1](dy)[0]
    if g.plan.weight_grad == "taps":
        dw = weight_grad_taps(x, dy, w.shape, g.strides, g.padding, g.dilation, g.groups, g.precision)
    else:
        dw = jax.vjp(lambda w: _xla_conv(x, w, g), w)[1](dy)[0]
    return dx.astype(x.dtype), dw.astype(w.dtype)


_conv.defvjp(_conv_fwd, _conv_bwd)


def output_shape(spatial, kernel, strides, padding, dilation) -> tuple[int, ...]:
    """Output spatial size per axis: floor((n + lo + hi - (k - 1) * d - 1) / s) + 1."""
    return tuple((n + lo + hi - (k - 1) * d - 1) // s + 1
                 for n, k, s, (lo, hi), d in zip(spatial, kernel, strides, padding, dilation))  # fmt: skip


def _tap_slice(xp: jax.Array, tap, strides, dilation, out, first_spatial_axis: int) -> jax.Array:
    """The strided window of the padded input that kernel tap `tap` multiplies: out-sized."""
    start = [0] * xp.ndim
    limit = list(xp.shape)
    step = [1] * xp.ndim
    for axis, (t, s, d, n) in enumerate(zip(tap, strides, dilation, out), start=first_spatial_axis):
        start[axis] = t * d
        limit[axis] = t * d + (n - 1) * s + 1
        step[axis] = s
    return lax.slice(xp, start, limit, step)


def weight_grad_taps(
    x: jax.Array,
    dy: jax.Array,
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    dilation: Sequence[int],
    groups: int = 1,
    precision: Any = None,
) -> jax.Array:
    """dL/dW of a channel-last convolution as one matmul per kernel tap.

    x: (B, *spatial, Cin); dy: (B, *out, Cout); returns (*kernel, Cin / groups, Cout)
    in float32 (or dy's dtype when wider).
    """
    rank = x.ndim - 2
    kernel, (cin_g, cout) = tuple(kernel_shape[:rank]), kernel_shape[rank:]
    out = dy.shape[1:-1]
    m = math.prod(dy.shape[:-1])  # B * prod(out)
    xp = jnp.pad(x, [(0, 0), *padding, (0, 0)])
    xt = jnp.moveaxis(xp, -1, 0)  # (Cin, B, *padded): each tap's slice reshapes to (Cin, M)
    dy2 = dy.reshape(m, cout)  # (M, Cout)
    acc = jnp.promote_types(jnp.float32, dy.dtype)
    taps = []
    for tap in itertools.product(*(range(k) for k in kernel)):
        cols = _tap_slice(xt, tap, strides, dilation, out, first_spatial_axis=2).reshape(x.shape[-1], m)
        if groups == 1:
            taps.append(jnp.matmul(cols, dy2, precision=precision, preferred_element_type=acc))  # (Cin, Cout)
        else:  # group k pairs input channels [k*cin_g, (k+1)*cin_g) with outputs [k*cout_g, (k+1)*cout_g)
            grouped = jnp.einsum("gim,mgo->igo", cols.reshape(groups, cin_g, m), dy2.reshape(m, groups, cout // groups),
                                 precision=precision, preferred_element_type=acc)  # fmt: skip
            taps.append(grouped.reshape(cin_g, cout))
    return jnp.stack(taps).reshape(*kernel, cin_g, cout)


def forward_taps(x, w, strides, padding, dilation, groups: int = 1, precision: Any = None) -> jax.Array:
    """The convolution itself from the tap slices: gathered side by side into one
    (B*Ho*Wo, taps*Cin) @ (taps*Cin, Cout) product (im2col) without groups, one
    product per tap and group otherwise."""
    rank = x.ndim - 2
    kernel, (cin_g, cout) = w.shape[:rank], w.shape[rank:]
    out = output_shape(x.shape[1:-1], kernel, strides, padding, dilation)
    xp = jnp.pad(x, [(0, 0), *padding, (0, 0)])
    acc = jnp.promote_types(jnp.float32, x.dtype)
    taps = list(itertools.product(*(range(k) for k in kernel)))
    cols = [_tap_slice(xp, tap, strides, dilation, out, first_spatial_axis=1) for tap in taps]  # (B, *out, Cin) each
    if groups == 1:
        # Stacked one kernel axis at a time, (B, *out, Cin) -> (B, *out, *kernel, Cin), not concatenated in one
        # go: XLA:CPU fuses a concatenation of at most 8 pieces into one loop over the input, but leaves one of
        # more (LeNet-5's 25 taps) as 25 copies and a slow concatenate: LeNet-5's step took 12.0 ms, now 9.6.
        level = cols
        for depth, k in enumerate(reversed(kernel)):
            level = [jnp.stack(level[i : i + k], axis=-(depth + 2)) for i in range(0, len(level), k)]
        patches = level[0].reshape(*level[0].shape[: rank + 1], -1)  # (B, *out, taps * Cin), tap-major like w's rows
        y = jnp.matmul(patches, w.reshape(-1, cout), precision=precision, preferred_element_type=acc)
        return y.astype(x.dtype)
    y = None
    for tap, col in zip(taps, cols):
        term = jnp.einsum("...gi,igo->...go", col.reshape(*col.shape[:-1], groups, cin_g),
                          w[tap].reshape(cin_g, groups, cout // groups), precision=precision,
                          preferred_element_type=acc).reshape(*col.shape[:-1], cout)  # fmt: skip
        y = term if y is None else y + term
    return y.astype(x.dtype)


def input_grad_taps(dy, w, input_shape, strides, padding, dilation, groups: int = 1, precision: Any = None):
    """dL/dx as one matmul per tap, scattered into the padded input."""
    rank = dy.ndim - 2
    kernel, (cin_g, cout) = w.shape[:rank], w.shape[rank:]
    out = dy.shape[1:-1]
    padded = [input_shape[0], *(n + lo + hi for n, (lo, hi) in zip(input_shape[1:-1], padding)), input_shape[-1]]
    acc = jnp.promote_types(jnp.float32, dy.dtype)
    dxp = jnp.zeros(padded, acc)
    for tap in itertools.product(*(range(k) for k in kernel)):
        if groups == 1:
            term = jnp.matmul(dy, w[tap].T, precision=precision, preferred_element_type=acc)  # (B, *out, Cin)
        else:
            term = jnp.einsum("...go,igo->...gi", dy.reshape(*dy.shape[:-1], groups, cout // groups),
                              w[tap].reshape(cin_g, groups, cout // groups), precision=precision,
                              preferred_element_type=acc).reshape(*dy.shape[:-1], groups * cin_g)  # fmt: skip
        index = (slice(None),) + tuple(slice(t * d, t * d + (n - 1) * s + 1, s)
                                       for t, d, n, s in zip(tap, dilation, out, strides))  # fmt: skip
        dxp = dxp.at[index].add(term)
    crop = (slice(None),) + tuple(slice(lo, lo + n) for n, (lo, _) in zip(input_shape[1:-1], padding))
    return dxp[crop].astype(dy.dtype)


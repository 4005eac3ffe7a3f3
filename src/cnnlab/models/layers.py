"""Layers shared by the model families: checked convolution and pooling, LRN,
drop-path, BatchNorm and the residual ReLU.

Every convolution and pooling window in cnnlab goes through `Conv`, `MaxPool` or
`AvgPool` below. They check at build time (shapes are static under `jit` and
`eval_shape`) that the window fits its input, so a model fed the wrong image size
fails with the layer's path and the conv arithmetic

    n_out = floor((n + 2p - k) / s) + 1

instead of an XLA shape error deep in a trace. `strict=True` also rejects a
stride that does not tile its (padded) input exactly.

Which code computes them is not a field of any layer: `Conv`, `BatchNorm`,
`MaxPool` and `AvgPool` ask `cnnlab.backend.current()` when they are traced.
On a single CPU device (`backend.auto()`) the parts of a small convolution
where XLA:CPU is slow are matmuls, one per kernel tap (`conv_cpu`),
`BatchNorm`'s per-channel sums are matrix products, and pooling windows that
tile their input reduce a reshaped view; under `backend.use("stock")` all
three are XLA's and flax's own code. The numbers agree to float tolerance.

The pooling, flatten and dropout steps are modules (not bare functions) so that
they appear as rows in the Keras-style summary, as they do in Keras.
"""

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from cnnlab import backend
from cnnlab.models import conv_cpu

FORMULA = "floor((n + 2p - k) / s) + 1"

Padding = str | int | Sequence[int] | Sequence[tuple[int, int]]


def conv_output_size(n: int, k: int, s: int = 1, p: int = 0, strict: bool = False) -> int:
    """Output length of a convolution or pooling window: floor((n + 2p - k) / s) + 1.

    >>> conv_output_size(32, 5, 1, 0)
    28
    >>> conv_output_size(7, 3, 2, 0)
    3

    Raises ValueError when the window does not fit (the result would be < 1), and
    with `strict=True` also when the stride does not tile the padded input exactly
    (the lecture's 7x7 input with a 3x3 window at stride 3).
    """
    return _checked_length("conv_output_size", n, k, s, (p, p), strict)


def _checked_length(where: str, n: int, k: int, s: int, pad: tuple[int, int], strict: bool) -> int:
    """One spatial axis of the conv arithmetic, raising a readable error."""
    lo, hi = pad
    p_text = str(lo) if lo == hi else f"({lo}, {hi})"
    two_p = f"2*{lo}" if lo == hi else f"{lo}+{hi}"
    span = n + lo + hi - k
    values = f"floor(({n} + {two_p} - {k}) / {s}) + 1"
    if span < 0:
        raise ValueError(
            f"{where}: a window of k={k} (s={s}, p={p_text}) does not fit an input of size n={n}: "
            f"{FORMULA} = {values} = {span // s + 1} < 1. "
            "Use a larger input, a smaller kernel or more padding."
        )
    if strict and span % s:
        raise ValueError(
            f"{where}: stride s={s} does not tile an input of size n={n} with k={k}, p={p_text} "
            f"exactly (strict=True): (n + 2p - k) / s = {span}/{s} is not an integer, "
            f"so {FORMULA} = {values} = {span // s + 1} drops the last {span % s} row(s)."
        )
    return span // s + 1


def _as_tuple(value: int | Sequence[int] | None, rank: int, default: int = 1) -> tuple[int, ...]:
    if value is None:
        return (default,) * rank
    if isinstance(value, int):
        return (value,) * rank
    return tuple(value)


def _explicit_padding(padding: Padding, rank: int) -> list[tuple[int, int]] | str:
    """Padding as one (low, high) pair per spatial axis, or the string itself."""
    if isinstance(padding, str):
        return padding.upper()
    if isinstance(padding, int):
        return [(padding, padding)] * rank
    return [(p, p) if isinstance(p, int) else (int(p[0]), int(p[1])) for p in padding]


def check_window(
    where: str,
    spatial: Sequence[int],
    window: Sequence[int],
    strides: Sequence[int],
    padding: Padding,
    strict: bool = False,
) -> None:
    """Raise a ValueError naming `where` if `window` does not fit `spatial`."""
    pads = _explicit_padding(padding, len(window))
    if pads == "VALID":
        pads = [(0, 0)] * len(window)
    if isinstance(pads, str):  # SAME and friends pad to fit; strict still wants whole strides
        for n, s in zip(spatial, strides):
            if strict and n % s:
                raise ValueError(
                    f"{where}: stride s={s} does not tile an input of size n={n} exactly "
                    f"with {pads} padding (strict=True)."
                )
        return
    for n, k, s, pad in zip(spatial, window, strides, pads):
        _checked_length(where, n, k, s, pad, strict)


def layer_path(module: nn.Module) -> str:
    """'stage2/block1/conv1'-style path of a bound module, for error messages."""
    return "/".join(module.path) or type(module).__name__


class Conv(nn.Conv):
    """`flax.linen.Conv` that checks its kernel fits its input before tracing the conv.

    Same parameters and names as `nn.Conv` (so weights are interchangeable).
    The convolution is `policy_conv`: `lax.conv_general_dilated` or
    `conv_cpu.conv_general_dilated` as `backend.current().conv` says when the
    layer is traced. A function given as `conv_general_dilated=` wins.
    """

    strict: bool = False

    def __post_init__(self) -> None:
        # flax's Conv calls `self.conv_general_dilated` when it is set.
        if self.conv_general_dilated is None:
            self.conv_general_dilated = policy_conv
        super().__post_init__()

    def __call__(self, inputs: jax.Array) -> jax.Array:
        rank = 1 if isinstance(self.kernel_size, int) else len(self.kernel_size)
        kernel = _as_tuple(self.kernel_size, rank)
        dilation = _as_tuple(self.kernel_dilation, rank)
        effective = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
        spatial = inputs.shape[-(rank + 1) : -1]
        check_window(layer_path(self), spatial, effective, _as_tuple(self.strides, rank), self.padding, self.strict)
        return super().__call__(inputs)


_CONV_FUNCTIONS = {"xla": lax.conv_general_dilated, "taps": conv_cpu.conv_general_dilated}


def policy_conv(*args: Any, **kwargs: Any) -> jax.Array:
    """`lax.conv_general_dilated`'s signature; the function `backend.current().conv` names, read at trace time."""
    return _CONV_FUNCTIONS[backend.current().conv](*args, **kwargs)


def _pool_padding(spatial, window, strides, padding: Padding, ceil_mode: bool):
    """Explicit padding, with extra high-side padding for PyTorch's `ceil_mode=True`."""
    pads = _explicit_padding(padding, len(window))
    if not ceil_mode:
        return pads
    if pads == "VALID":
        pads = [(0, 0)] * len(window)
    if isinstance(pads, str):
        raise ValueError(f"ceil_mode needs explicit or VALID padding, not {pads!r}")
    widened = []
    for n, k, s, (lo, hi) in zip(spatial, window, strides, pads):
        out = math.ceil(max(n + lo + hi - k, 0) / s) + 1
        if (out - 1) * s >= n + lo:  # PyTorch: the last window must start inside the input
            out -= 1
        widened.append((lo, max(hi, (out - 1) * s + k - n - lo)))
    return widened


class _Pool(nn.Module):
    """A checked pooling window; `strides` defaults to the window (as in Keras and PyTorch)."""

    window: Sequence[int]
    strides: Sequence[int] | None = None
    padding: Padding = "VALID"
    ceil_mode: bool = False
    strict: bool = False

    def _prepare(self, x):
        window = tuple(self.window)
        strides = tuple(self.strides) if self.strides is not None else window
        spatial = x.shape[1:-1]
        check_window(layer_path(self), spatial, window, strides, self.padding, self.strict)
        return window, strides, _pool_padding(spatial, window, strides, self.padding, self.ceil_mode)


def _tiles(x: jax.Array, window: Sequence[int], strides: Sequence[int], padding) -> jax.Array | None:
    """x as (B, n1/k1, k1, n2/k2, k2, ..., C) when the windows tile it (stride = window, no
    padding; a VALID remainder is cropped, as the window would drop it); None otherwise.

    Pooling over the k axes of this view is the same forward pass as `reduce_window`,
    and its backward is element-wise. On XLA:CPU the backward of `reduce_window`
    (`select_and_scatter` for max) took about 40% of a LeNet-5 Adam step (`bench/pooling.py`).
    Taken only where `backend.current().pooling` is "tiles".
    """
    if backend.current().pooling != "tiles":
        return None
    unpadded = padding == "VALID" if isinstance(padding, str) else all(p == (0, 0) for p in padding)
    if tuple(window) != tuple(strides) or not unpadded:
        return None
    shape = [x.shape[0]]
    crop = [slice(None)]
    for n, k in zip(x.shape[1:-1], window):
        shape += [n // k, k]
        crop.append(slice(0, n // k * k))
    return x[(*crop, slice(None))].reshape(*shape, x.shape[-1])


def _tile_axes(window: Sequence[int]) -> tuple[int, ...]:
    return tuple(range(2, 2 * len(window) + 1, 2))


class MaxPool(_Pool):
    """Max pooling over the spatial axes of (B, *spatial, C); pads with -inf.

    Where the windows tile the input (LeNet-5, VGG, the typical CNN: 2x2/2) and the
    backend policy pools over "tiles", this is a max over a reshaped view, whose
    gradient splits a tie between its maxima (jnp.max's rule) where `reduce_window`'s
    goes to one of them; the forward pass is the same.
    """

    def __call__(self, x: jax.Array) -> jax.Array:
        window, strides, padding = self._prepare(x)
        tiles = _tiles(x, window, strides, padding)
        if tiles is not None:
            return jnp.max(tiles, axis=_tile_axes(window))
        return nn.max_pool(x, window, strides, padding)


class AvgPool(_Pool):
    """Average pooling; `count_include_pad=False` is Keras/TF's "same" behaviour."""

    count_include_pad: bool = True

    def __call__(self, x: jax.Array) -> jax.Array:
        window, strides, padding = self._prepare(x)
        tiles = _tiles(x, window, strides, padding)
        if tiles is not None:  # no padding: count_include_pad cannot matter
            return jnp.mean(tiles, axis=_tile_axes(window))
        return nn.avg_pool(x, window, strides, padding, count_include_pad=self.count_include_pad)


class GlobalAvgPool(nn.Module):
    """Mean over the spatial axes: (B, *spatial, C) -> (B, C), or (B, 1, .., 1, C) with keepdims."""

    keepdims: bool = False

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)), keepdims=self.keepdims)


class AdaptiveAvgPool(nn.Module):
    """PyTorch's AdaptiveAvgPool2d: bins [floor(i*n/m), ceil((i+1)*n/m)) per axis."""

    output_size: Sequence[int]

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, H, W, C) -> (B, *output_size, C)
        for axis, m in enumerate(self.output_size, start=1):
            n = x.shape[axis]
            if n == m:
                continue  # the common case (e.g. 6x6 at 224 px): nothing to average
            bins = [
                jnp.mean(lax.slice_in_dim(x, (i * n) // m, -(-(i + 1) * n // m), axis=axis), axis=axis, keepdims=True)
                for i in range(m)
            ]
            x = jnp.concatenate(bins, axis=axis)
        return x


class Flatten(nn.Module):
    """(B, ...) -> (B, prod(...)); a module so the summary shows Keras's Flatten row."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return x.reshape(x.shape[0], -1)


def residual_relu(x: jax.Array) -> jax.Array:
    """ReLU of a residual sum, `relu(y + shortcut)`: `jax.nn.relu`'s values
    (NaN and infinities included) and gradient, as `where(x <= 0, 0, x)`.

    Why not `nn.relu`: XLA counts max(x, 0) as a one-input op it may recompute in
    each consumer instead of storing it, and the sum fused into it travels along.
    In a ResNet every block's output then is recomputed from the stem onwards in
    each of its consumers; the worst one, the transposed copy that feeds the
    next convolution's weight gradient, reads three blocks' convolution outputs
    in transposed order (187 ms of a 2.0 s ResNet-18-CIFAR step on the CPU). A
    select of two full-size inputs is not duplicated, so the block's output is
    computed once and stored (`bench/resnet_cpu.py` compares the two).
    """
    return jnp.where(x <= 0, jnp.zeros_like(x), x)


class LocalResponseNorm(nn.Module):
    """AlexNet's local response normalization across channels (Krizhevsky et al., 2012):

        b_c = a_c / (k + alpha * sum_{c' in window(c), |window| = n} a_{c'}^2) ** beta

    Note: the paper's alpha multiplies the plain sum (PyTorch's LocalResponseNorm
    divides alpha by n).
    """

    k: float = 2.0
    n: int = 5
    alpha: float = 1e-4
    beta: float = 0.75

    def __call__(self, x: jax.Array) -> jax.Array:  # (B, H, W, C)
        squared = jnp.square(x.astype(jnp.float32))
        window = (1,) * (x.ndim - 1) + (self.n,)
        padding = [(0, 0)] * (x.ndim - 1) + [(self.n // 2, (self.n - 1) // 2)]
        sums = lax.reduce_window(squared, 0.0, lax.add, window, (1,) * x.ndim, padding)
        return (x / (self.k + self.alpha * sums) ** self.beta).astype(x.dtype)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al., 2016): drop a residual branch per example.

    Active only when `deterministic=False`; draws from the "dropout" rng stream and
    rescales kept branches by 1 / (1 - rate), like `nn.Dropout`.
    """

    rate: float
    deterministic: bool | None = None

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool | None = None) -> jax.Array:
        deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
        if deterministic or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = jax.random.bernoulli(self.make_rng("dropout"), keep, (x.shape[0],) + (1,) * (x.ndim - 1))
        return jnp.where(mask, x / keep, jnp.zeros_like(x))


class BatchNorm(nn.BatchNorm):
    """`flax.linen.BatchNorm` (same fields, variables and numbers to float
    tolerance) whose per-channel sums are matrix products where the backend
    policy says so (`backend.current().batch_norm == "dot"`: a single CPU device).

    A training step of BatchNorm needs four sums over (B, H, W) per channel:
    of x and x^2 forward, of dy and dy * xhat backward. XLA:CPU reduces the
    leading axes of a (B, H, W, C) array at 2-5 GB/s; the same sum as
    `ones(M) @ x.reshape(M, C)` runs in Eigen's matrix-vector product, 2.5-8x
    faster on arrays of 4-17 MB. The "dot" path computes them so, under a
    `jax.custom_vjp` that writes the backward pass with them too; "xla" is
    flax's own code (GPUs and TPUs reduce fast; their default matmul precision
    would also round the sums).

    Only the plain training case takes the "dot" path: float32 inputs and
    parameters, channels last, scale and bias, no mask, no `axis_name`. Anything
    else, and evaluation with the running averages, is flax's code unchanged.
    """

    @nn.compact
    def __call__(self, x, use_running_average: bool | None = None, *, mask: jax.Array | None = None):
        training = not nn.merge_param("use_running_average", self.use_running_average, use_running_average)
        if not (training and self._dot_sums(x, mask)):
            return super().__call__(x, use_running_average, mask=mask)
        features = x.shape[-1:]
        ra_mean = self.variable("batch_stats", "mean", lambda s: jnp.zeros(s, jnp.float32), features)
        ra_var = self.variable("batch_stats", "var", lambda s: jnp.ones(s, jnp.float32), features)
        scale = self.param("scale", self.scale_init, features, self.param_dtype)
        bias = self.param("bias", self.bias_init, features, self.param_dtype)
        y, mean, var = _batch_norm_train(x, scale, bias, self.epsilon)
        if not self.is_initializing():
            ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
            ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
        return y

    def _dot_sums(self, x: jax.Array, mask: jax.Array | None) -> bool:
        wanted = backend.current().batch_norm == "dot"
        plain = (
            mask is None and self.axis_name is None and self.axis in (-1, x.ndim - 1)
            and self.use_scale and self.use_bias and self.use_fast_variance and self.force_float32_reductions
            and x.dtype == jnp.float32 and self.dtype in (None, jnp.float32) and self.param_dtype == jnp.float32
        )  # fmt: skip
        return wanted and plain


def _channel_sums(*arrays: jax.Array) -> jax.Array:
    """(len(arrays), C): each (..., C) array summed over all but its last axis, as ones @ X."""
    ones = jnp.ones((math.prod(arrays[0].shape[:-1]),), arrays[0].dtype)
    return jnp.stack([ones @ a.reshape(-1, a.shape[-1]) for a in arrays])


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _batch_norm_train(x, scale, bias, epsilon):
    return _batch_norm_train_fwd(x, scale, bias, epsilon)[0]


def _batch_norm_train_fwd(x, scale, bias, epsilon):
    # flax's numbers: fast variance E[x^2] - E[x]^2 clipped at 0, then (x - mean) * rsqrt(var + eps) * scale + bias.
    m = math.prod(x.shape[:-1])
    sum_x, sum_xx = _channel_sums(x, x * x)
    mean = sum_x / m
    var = jnp.maximum(0.0, sum_xx / m - mean * mean)
    inv = lax.rsqrt(var + epsilon)
    xhat = (x - mean) * inv
    return (xhat * scale + bias, mean, var), (xhat, inv, scale, var)


def _batch_norm_train_bwd(epsilon, residuals, cotangents):
    xhat, inv, scale, var = residuals
    dy, dmean, dvar = cotangents
    m = math.prod(xhat.shape[:-1])
    dbias, dscale = _channel_sums(dy, dy * xhat)
    # d/dx of y through xhat, mean and inv; plus the mean and var outputs' own
    # cotangents (zero in training: the running averages are not differentiated).
    # The variance's clip at 0 makes its gradient 0 there, as flax's autodiff does.
    live = (var > 0).astype(xhat.dtype)
    dx = scale * inv * (dy - dbias / m - xhat * (live * dscale / m))
    dx = dx + dmean / m + (2 * live * dvar / (m * inv)) * xhat
    return dx, dscale, dbias


_batch_norm_train.defvjp(_batch_norm_train_fwd, _batch_norm_train_bwd)


def batch_norm(train: bool, dtype: Any, param_dtype: Any, axis_name: str | None = None, **overrides: Any) -> partial:
    """`BatchNorm` factory: batch statistics only when training, running averages
    in eval; momentum 0.9 and epsilon 1e-5 (PyTorch's momentum 0.1 in Flax's
    convention) unless a source layout overrides them (Keras: 0.99 and 1e-3).

    `axis_name` (the models' `bn_axis_name`): under `pmap`, the batch statistics
    are averaged over that axis, so every device normalizes with the global
    batch's mean and variance, as one device would (sync BatchNorm)."""
    options = dict(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype, param_dtype=param_dtype,
                   axis_name=axis_name)  # fmt: skip
    return partial(BatchNorm, **{**options, **overrides})


def conv_factory(module: nn.Module, **overrides: Any) -> partial:
    """Checked `Conv` carrying a model's dtype, param_dtype and strict flag."""
    options = dict(dtype=module.dtype, param_dtype=module.param_dtype, strict=module.strict)
    return partial(Conv, **{**options, **overrides})


def dense_factory(module: nn.Module, **overrides: Any) -> partial:
    """`nn.Dense` carrying a model's dtype and param_dtype."""
    return partial(nn.Dense, **{**dict(dtype=module.dtype, param_dtype=module.param_dtype), **overrides})

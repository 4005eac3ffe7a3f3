"""Per backend, which code computes cnnlab's convolutions, BatchNorm sums and
pooling, and which XLA options its step programs compile with: the one place
that decides. Models carry only their architecture; `models.layers` asks
`current()` while it is traced, and `train.parallel` compiles with
`compiler_options()`.

A user's own loop around `cnnlab.models.create(...)` gets the same programs
as cnnlab's trainer by one change:

    train_step = cnnlab.backend.jit(train_step, donate_argnums=0)   # instead of jax.jit

The choices, all with the same numbers to float tolerance (each is tested
against XLA's and flax's own code):

- `conv`: "xla" is `lax.conv_general_dilated`; "taps" is
  `models.conv_cpu.conv_general_dilated`, which computes the parts of a small
  layer where XLA:CPU is slow (one input channel, a one-position output, a 1x1
  kernel's weight gradient) as matmuls, one per kernel tap, and leaves the rest
  to XLA (`conv_cpu.plan`: LeNet-5's layers 0.13-0.54x XLA's forward + backward
  time, ResNet-18-CIFAR's 0.77-1.02x);
- `batch_norm`: "xla" is flax's BatchNorm; "dot" computes its four
  per-channel sums over (B, H, W) as `ones @ x` products under a custom VJP
  (XLA:CPU reduces those leading axes at 2-5 GB/s; the products are 2.5-8x
  faster on arrays of 4-17 MB; ResNet-18-CIFAR's step 1.15x faster);
- `pooling`: "window" is `reduce_window` (flax's max_pool / avg_pool);
  "tiles" pools over a reshaped (B, H/k, k, W/k, k, C) view where the windows
  tile the input, whose backward pass is element-wise (`select_and_scatter`,
  the backward of a windowed max, took about 40% of a LeNet-5 Adam step on
  XLA:CPU; the LeNet-5 step with tiles took 0.66x as long). Elsewhere both
  are `reduce_window`;
- `compiler_options`: the XLA options every step program compiles with
  (`CPU_COMPILER_OPTIONS` below on the CPU; None: XLA's defaults).

`auto()` is cnnlab's choice for the backend it runs on; `STOCK` is XLA's and
flax's own code with XLA's default options, for comparisons
(`backend: stock` in the run config, or `with backend.use("stock"):`).

When the policy is read: `current()` when a function is traced, so it
decides the code of everything traced inside `use(...)`; compiler options
when `jax.jit` is called (`backend.jit` reads both then, see `jit`). A
compiled function keeps the policy it was traced with: to switch policies,
build new step functions inside the new `use(...)`.

Note: XLA_FLAGS set after JAX's backend has started are ignored (measured),
so nothing here relies on environment variables; `jax.jit(...,
compiler_options=...)` takes effect whenever it is called.
"""

import contextlib
import contextvars
import dataclasses
import functools
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax

CONV = ("xla", "taps")
BATCH_NORM = ("xla", "dot")
POOLING = ("window", "tiles")
MODES = ("auto", "stock")

# jaxlib 0.10's XLA:CPU hands f32 convolutions, dots and reductions to YNNPACK
# ("library fusions", on by default). Its convolution gradients were the slow
# part of every CNN step: the weight gradient of ResNet-18-CIFAR's 3x3 layer at
# 32x32x64 took 12-28x as long there as in XLA's own (Eigen) convolution, and
# whole train steps of LeNet-5, a typical CNN and ResNet-18-CIFAR took 1.6-2.6x
# as long (`bench/xla_options.py`). Later XLA releases take f32 convolutions off
# YNNPACK themselves.
CPU_COMPILER_OPTIONS = types.MappingProxyType({"xla_cpu_experimental_ynn_fusion_type": ""})

# The initial state's program runs once, so it is compiled at LLVM's -O1, not
# XLA's default -O3: on the CPU that compiled 1.8-2x faster (ResNet-50 at 224:
# 11.9 -> 6.7 s; VGG-16: 4.8 -> 2.4 s; the wide typical CNN: 2.3 -> 1.3 s) and
# gave the same bits.
CPU_INIT_OPTIONS = types.MappingProxyType({"xla_backend_optimization_level": 1})


@dataclasses.dataclass(frozen=True)
class Policy:
    """Which code computes each part of a step, and the options its programs compile with."""

    conv: str  # "xla" (lax.conv_general_dilated) | "taps" (conv_cpu's per-layer plan)
    batch_norm: str  # "xla" (flax's sums) | "dot" (ones @ X sums under a custom_vjp)
    pooling: str  # "window" (reduce_window) | "tiles" (a reshaped view where windows tile)
    compiler_options: Mapping[str, Any] | None = None  # for every step program; None: XLA's defaults

    def __post_init__(self) -> None:
        if self.compiler_options is not None:  # a read-only copy: a policy cannot change under a compiled step
            object.__setattr__(self, "compiler_options", types.MappingProxyType(dict(self.compiler_options)))
        for field, allowed in (("conv", CONV), ("batch_norm", BATCH_NORM), ("pooling", POOLING)):
            if getattr(self, field) not in allowed:
                raise ValueError(f"backend.Policy: {field} must be one of {', '.join(allowed)}, "
                                 f"got {getattr(self, field)!r}")  # fmt: skip


STOCK = Policy("xla", "xla", "window", None)


def auto() -> Policy:
    """cnnlab's choice for the backend JAX runs on.

    - one CPU device: the taps, the dot sums, tiles, `CPU_COMPILER_OPTIONS`;
    - several CPU devices (a simulated mesh: tests, debug runs): XLA's
      convolution and flax's sums, tiles, `CPU_COMPILER_OPTIONS`. Such a mesh
      is not a faster machine: there the partitioned tap products summed the
      batch in another order than one device's, so ResNet-18's params after a
      few steps differed by 7e-4 between 1 and 8 devices (XLA's convolution:
      under 1e-5), and each program took about twice as long to compile;
    - GPUs and TPUs: XLA's convolution and flax's sums (they reduce fast, and
      their default matmul precision would round the dot sums), tiles, XLA's
      default options.
    """
    if jax.default_backend() != "cpu":
        return Policy("xla", "xla", "tiles", None)
    if jax.device_count() == 1:
        return Policy("taps", "dot", "tiles", CPU_COMPILER_OPTIONS)
    return Policy("xla", "xla", "tiles", CPU_COMPILER_OPTIONS)


# The policy that `use` put in force in this context; None: auto(), resolved when asked
# (not when `use` is entered: that may come before JAX's distributed runtime starts).
_OVERRIDE: contextvars.ContextVar[Policy | None] = contextvars.ContextVar("cnnlab_backend_policy", default=None)


def current() -> Policy:
    """The policy in force: the innermost `use(...)`'s, else `auto()`."""
    override = _OVERRIDE.get()
    return auto() if override is None else override


def _as_override(mode: str | Policy) -> Policy | None:
    """A mode name ("auto", "stock") or a Policy as a Policy; None for "auto" (resolved when asked)."""
    if isinstance(mode, Policy):
        return mode
    if mode == "auto":
        return None
    if mode == "stock":
        return STOCK
    raise ValueError(f"backend must be one of {', '.join(MODES)} (or a backend.Policy), got {mode!r}")


@contextlib.contextmanager
def use(mode: str | Policy) -> Iterator[None]:
    """Trace (and jit) everything inside with `mode`'s policy: "auto", "stock" or a `Policy`.

        with backend.use("stock"):
            step = backend.jit(train_step)   # XLA's and flax's code, XLA's options
    """
    token = _OVERRIDE.set(_as_override(mode))
    try:
        yield
    finally:
        _OVERRIDE.reset(token)


def compiler_options() -> dict[str, Any] | None:
    """The XLA options step programs compile with under `current()`; None: XLA's defaults."""
    options = current().compiler_options
    return None if options is None else dict(options)


def init_compiler_options() -> dict[str, Any] | None:
    """`compiler_options()` for a program that runs once (the initial state): plus
    `CPU_INIT_OPTIONS` (-O1) on the CPU; None where steps take XLA's defaults."""
    options = compiler_options()
    if options is None or jax.default_backend() != "cpu":
        return options
    return {**options, **CPU_INIT_OPTIONS}


def jit(fun: Callable, **jit_kwargs: Any) -> Callable:
    """`jax.jit(fun, **jit_kwargs)` that traces `fun` under the policy current now and
    compiles it with that policy's compiler options (under any `compiler_options`
    given here, which win).

    The policy is fixed when `jit` is called: the function traces the same code
    wherever it is called later, and its options match that code.
    """
    policy = current()
    given = jit_kwargs.pop("compiler_options", None) or {}
    options = {**(policy.compiler_options or {}), **given} or None

    @functools.wraps(fun)
    def traced(*args: Any, **kwargs: Any) -> Any:
        with use(policy):
            return fun(*args, **kwargs)

    return jax.jit(traced, compiler_options=options, **jit_kwargs)

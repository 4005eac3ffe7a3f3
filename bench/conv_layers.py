"""Per-layer microbenchmark: XLA:CPU's convolution against the tap-matmul candidates.

For every distinct convolution of ResNet-18 with the CIFAR stem at batch 64
(and LeNet-5's and the wide typical CNN's at batch 128), compiled with the
options a run uses (`backend.jit`: the policy `auto`'s), times the forward pass, the input
gradient and the weight gradient of each candidate side by side, and the whole
forward + backward of `lax.conv_general_dilated` (the policy's `conv="xla"`)
against `conv_cpu.conv_general_dilated` (`conv="taps"`: its per-layer plan):

    python -m bench.conv_layers [--rounds 3] [--torch]

Candidates: "xla" (lax.conv_general_dilated and its transposes), "taps" (one
matmul per kernel tap: `conv_cpu.forward_taps`, `input_grad_taps`,
`weight_grad_taps`), "taps_nhwc" (the weight gradient's products taken from
the (B, H, W, Cin) layout, contracting over the major axis), and with
--torch PyTorch's forward + backward of the same layer.
"""

import argparse
import itertools
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from bench import common
from cnnlab import backend
from cnnlab.models import conv_cpu

DN = ("NHWC", "HWIO", "NHWC")

# (name, batch, H, Cin, Cout, k, stride, pad, count in one forward pass)
RESNET18_CIFAR = [
    ("stem 32x32 3->64", 64, 32, 3, 64, 3, 1, 1, 1),
    ("layer1 32x32 64->64", 64, 32, 64, 64, 3, 1, 1, 4),
    ("layer2_0 conv1 32->16 64->128 s2", 64, 32, 64, 128, 3, 2, 1, 1),
    ("layer2_0 downsample 1x1 s2", 64, 32, 64, 128, 1, 2, 0, 1),
    ("layer2 16x16 128->128", 64, 16, 128, 128, 3, 1, 1, 3),
    ("layer3_0 conv1 16->8 128->256 s2", 64, 16, 128, 256, 3, 2, 1, 1),
    ("layer3_0 downsample 1x1 s2", 64, 16, 128, 256, 1, 2, 0, 1),
    ("layer3 8x8 256->256", 64, 8, 256, 256, 3, 1, 1, 3),
    ("layer4_0 conv1 8->4 256->512 s2", 64, 8, 256, 512, 3, 2, 1, 1),
    ("layer4_0 downsample 1x1 s2", 64, 8, 256, 512, 1, 2, 0, 1),
    ("layer4 4x4 512->512", 64, 4, 512, 512, 3, 1, 1, 3),
]
LENET5 = [
    ("LeNet C1 32x32 1->6 5x5", 128, 32, 1, 6, 5, 1, 0, 1),
    ("LeNet C3 14x14 6->16 5x5", 128, 14, 6, 16, 5, 1, 0, 1),
    ("LeNet C5 5x5 16->120 5x5", 128, 5, 16, 120, 5, 1, 0, 1),
]
WIDE_TYPICAL_CNN = [  # typical_cnn with features (32, 64): benchmark 5's model
    ("typical conv1 28x28 1->32", 128, 28, 1, 32, 3, 1, 0, 1),
    ("typical conv2 13x13 32->64", 128, 13, 32, 64, 3, 1, 0, 1),
]


jit = backend.jit  # compiled as runs compile


def xla_conv(x, w, s, p):
    return lax.conv_general_dilated(x, w, (s, s), [(p, p)] * 2, dimension_numbers=DN)


def weight_grad_nhwc(x, dy, shape, s, p):
    """The tap products contracting over the major axis of (B*Ho*Wo, Cin): the slow layout."""
    kh, kw, cin, cout = shape
    ho, wo = dy.shape[1:3]
    xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    taps = [jnp.einsum("bhwc,bhwd->cd", xp[:, i : i + (ho - 1) * s + 1 : s, j : j + (wo - 1) * s + 1 : s], dy)
            for i, j in itertools.product(range(kh), range(kw))]  # fmt: skip
    return jnp.stack(taps).reshape(shape)


def layer_candidates(batch, h, cin, cout, k, s, p):
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (batch, h, h, cin))
    w = jax.random.normal(jax.random.fold_in(key, 1), (k, k, cin, cout)) * 0.05
    pads = ((p, p), (p, p))
    y, pullback = jax.vjp(lambda x, w: xla_conv(x, w, s, p), x, w)
    dy = jax.random.normal(jax.random.fold_in(key, 2), y.shape)
    f = {
        "fwd xla": jit(lambda x, w: xla_conv(x, w, s, p)),
        "fwd taps": jit(lambda x, w: conv_cpu.forward_taps(x, w, (s, s), pads, (1, 1))),
        "dx xla": jit(lambda dy, w: jax.vjp(lambda x: xla_conv(x, w, s, p), x)[1](dy)[0]),
        "dx taps": jit(lambda dy, w: conv_cpu.input_grad_taps(dy, w, x.shape, (s, s), pads, (1, 1))),
        "dw xla": jit(lambda x, dy: jax.vjp(lambda w: xla_conv(x, w, s, p), w)[1](dy)[0]),
        "dw taps": jit(lambda x, dy: conv_cpu.weight_grad_taps(x, dy, w.shape, (s, s), pads, (1, 1))),
        "dw taps_nhwc": jit(lambda x, dy: weight_grad_nhwc(x, dy, w.shape, s, p)),
    }
    args = {"fwd": (x, w), "dx": (dy, w), "dw": (x, dy)}
    calls = {name: partial(lambda fn, a: common.block(fn(*a)), fn, args[name.split()[0]]) for name, fn in f.items()}
    reference = {"fwd": y, "dx": pullback(dy)[0], "dw": pullback(dy)[1]}
    errors = {}
    for name, fn in f.items():
        ref = reference[name.split()[0]]
        errors[name] = float(jnp.max(jnp.abs(fn(*args[name.split()[0]]) - ref)) / jnp.max(jnp.abs(ref)))
    return x, w, dy, calls, errors


def whole_layer(x, w, dy, s, p):
    """Forward + both gradients through XLA's convolution and `conv_cpu`'s plan ("taps")."""
    dn = lax.conv_dimension_numbers(x.shape, w.shape, DN)

    def make(conv):
        loss = lambda x, w: jnp.vdot(conv(x, w, (s, s), [(p, p)] * 2, None, None, dn), dy)  # noqa: E731
        fn = jit(jax.grad(loss, argnums=(0, 1)))
        return lambda: common.block(fn(x, w))

    return {"layer xla": make(lax.conv_general_dilated), "layer taps": make(conv_cpu.conv_general_dilated)}


def torch_layer(x, w, dy, s, p):
    import numpy as np
    import torch

    tx = torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()).requires_grad_()
    tw = torch.from_numpy(np.asarray(w).transpose(3, 2, 0, 1).copy()).requires_grad_()
    tdy = torch.from_numpy(np.asarray(dy).transpose(0, 3, 1, 2).copy())

    def step():
        out = torch.nn.functional.conv2d(tx, tw, stride=s, padding=p)
        torch.autograd.grad(out, (tx, tw), tdy)

    return {"layer torch": step}


def run(rounds: int = 3, with_torch: bool = False, layers=None) -> list[common.Figure]:
    if with_torch:
        import torch

        torch.set_num_threads(jax.local_devices()[0].client.platform_version and _threads())
    figures = []
    for name, batch, h, cin, cout, k, s, p, count in layers or (RESNET18_CIFAR + LENET5 + WIDE_TYPICAL_CNN):
        x, w, dy, calls, errors = layer_candidates(batch, h, cin, cout, k, s, p)
        times = {}
        for part in ("fwd", "dx", "dw"):
            times.update(common.interleaved({n: c for n, c in calls.items() if n.startswith(part)}, rounds))
        whole = whole_layer(x, w, dy, s, p)
        if with_torch:
            whole.update(torch_layer(x, w, dy, s, p))
        times.update(common.interleaved(whole, rounds))
        cells = "  ".join(f"{n} {t['median_s'] * 1e3:.0f}" for n, t in times.items())
        print(f"{name} (x{count}, batch {batch}): {cells}  [ms; rel. err {max(errors.values()):.0e}]", flush=True)
        figures.append(
            common.Figure(
                "conv", f"{name} (x{count} per step)",
                " / ".join(f"{times[n]['median_s'] * 1e3:.0f}" for n in ("fwd xla", "dx xla", "dw xla", "dw taps"))
                + " ms",
                batch=str(batch),
                ratio=times["layer taps"]["ratio"],
                notes="fwd / dx / dw XLA, dw taps; ratio = taps / xla fwd+bwd"
                + (f"; torch / xla {times['layer torch']['ratio']:.2f}" if with_torch else "")
                + f"; dw taps_nhwc / xla {times['dw taps_nhwc']['ratio']:.2f}, fwd taps / xla"
                f" {times['fwd taps']['ratio']:.2f}, dx taps / xla {times['dx taps']['ratio']:.2f}",
            )  # fmt: skip
        )
    return figures


def _threads() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--torch", action="store_true")
    args = parser.parse_args()
    common.report("convolution layers", run(args.rounds, args.torch))

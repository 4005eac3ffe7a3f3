"""Benchmark 4: cnnlab against PyTorch on the CPU, same architecture, batch, optimizer and threads.

    python -m bench.torch_cpu [--rounds 3] [--models lenet5,resnet18]

Both sides train with Adam (lr 1e-3, eps 1e-8) on the same synthetic batch;
PyTorch gets as many intra-op threads as the process has cores, the number
XLA:CPU uses. cnnlab runs twice: "auto" (the backend policy as a run has it:
on the CPU the tap-matmul convolutions) and "xla" (the same policy with XLA's
own convolution, `conv="xla"`). Goal: cnnlab's step time <= 1.0x PyTorch's.
"""

import argparse
import dataclasses
import os

import numpy as np

from bench import common, workloads
from cnnlab import backend

STEPS_PER_CALL = {"lenet5": 10, "resnet18": 1}


def threads() -> int:
    return len(os.sched_getaffinity(0))


class TorchStepper:
    """n Adam steps of a PyTorch model on one batch (NCHW), ending with a read of the loss."""

    def __init__(self, model, batch: dict[str, np.ndarray], lr: float = 1e-3):
        import torch

        self.torch, self.model = torch, model.train()
        self.x = torch.from_numpy(np.ascontiguousarray(batch["image"].transpose(0, 3, 1, 2)))
        self.y = torch.from_numpy(batch["label"]).long()
        self.opt = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-8)

    def __call__(self, n: int = 1) -> None:
        for _ in range(n):
            self.opt.zero_grad(set_to_none=True)
            loss = self.torch.nn.functional.cross_entropy(self.model(self.x), self.y)
            loss.backward()
            self.opt.step()
        loss.item()


def torch_model(workload: workloads.Workload):
    from bench import torch_models

    if workload.model == "lenet5":
        return torch_models.lenet5()
    if workload.model == "typical_cnn":
        return torch_models.typical_cnn()
    return torch_models.ResNet18Cifar(width=workload.options.get("num_filters", 64))


def compare(workload: workloads.Workload, rounds: int) -> dict[str, dict]:
    import torch

    torch.set_num_threads(threads())
    n = STEPS_PER_CALL.get(workload.model, 10)
    batch = workloads.synthetic_batch(workload)
    tx = workloads.optimizer("adam")
    sides = {"torch": TorchStepper(torch_model(workload), batch), "cnnlab auto": workloads.cnnlab_step(workload, tx)}
    with backend.use(dataclasses.replace(backend.auto(), conv="xla")):  # built and compiled inside
        sides["cnnlab xla"] = workloads.cnnlab_step(workload, tx)
    times = common.interleaved({name: (lambda s=s: s(n)) for name, s in sides.items()}, rounds)
    for t in times.values():
        t["step_s"] = t["median_s"] / n
    return times


def run(rounds: int = 3, names=("lenet5", "resnet18")) -> list[common.Figure]:
    figures = []
    for name in names:
        workload = {"lenet5": workloads.LENET5, "resnet18": workloads.RESNET18_CIFAR}[name]
        t = compare(workload, rounds)
        note = f"{threads()} threads each; Adam; torch {t['torch']['step_s'] * 1e3:.1f} ms/step"
        for side in ("cnnlab auto", "cnnlab xla"):
            ratio = t[side]["ratio"]  # cnnlab time / torch time, round by round
            figures.append(common.Figure(
                "4", f"{workload.label} step time, {side} vs PyTorch {__import__('torch').__version__}",
                f"{t[side]['step_s'] * 1e3:.1f} ms vs {t['torch']['step_s'] * 1e3:.1f} ms",
                batch=str(workload.batch_size), goal="<= 1.0x PyTorch" if side == "cnnlab auto" else "",
                ratio=ratio, met=(ratio <= 1.0) if side == "cnnlab auto" else None, notes=note,
            ))  # fmt: skip
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", default="lenet5,resnet18")
    args = parser.parse_args()
    common.report("PyTorch on the CPU", run(args.rounds, tuple(args.models.split(","))))

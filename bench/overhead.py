"""Benchmark 1: the cnnlab train step against a minimal hand-written flax + optax loop.

    python -m bench.overhead [--rounds 5]

Same model and backend policy (`auto`: the same code and XLA options; the
hand-written loop compiles with `backend.jit`), optimizer (the same `optax`
object: Adam, lr 1e-3), batch and synthetic data; the cnnlab side is the step
`train.setup` compiles (metrics, rng folding, sharded jit, donated state), fed
by `par.put` like the loop. Goal: throughput ratio (hand-written time / cnnlab
time, round by round) >= 0.97.
"""

import argparse

from bench import common, workloads

CASES = [(workloads.LENET5, 20), (workloads.RESNET18_CIFAR, 1)]  # (workload, steps per timed call)


def run(rounds: int = 5, resnet_rounds: int = 3) -> list[common.Figure]:
    figures = []
    for workload, n in CASES:
        tx = workloads.optimizer("adam")
        sides = {"hand-written": workloads.handwritten_step(workload, tx), "cnnlab": workloads.cnnlab_step(workload, tx)}
        t = common.interleaved({k: (lambda s=s: s(n)) for k, s in sides.items()}, rounds if n > 1 else resnet_rounds)
        throughput_ratio = 1.0 / t["cnnlab"]["ratio"]
        figures.append(common.Figure(
            "1", f"{workload.label} framework overhead: cnnlab / hand-written throughput",
            f"{t['cnnlab']['median_s'] / n * 1e3:.1f} ms vs {t['hand-written']['median_s'] / n * 1e3:.1f} ms per step",
            batch=str(workload.batch_size), goal=">= 0.97", ratio=throughput_ratio, met=throughput_ratio >= 0.97,
            notes=f"{rounds if n > 1 else resnet_rounds} rounds of {n} step(s); Adam",
        ))  # fmt: skip
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--resnet-rounds", type=int, default=3)
    args = parser.parse_args()
    common.report("framework overhead", run(args.rounds, args.resnet_rounds))

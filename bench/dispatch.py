"""Benchmark 6: small-model dispatch, `trainer.steps_per_call=1` against `16`.

    python -m bench.dispatch [--rounds 7] [--batch 32]

The cnnlab step of LeNet-5 and the typical CNN at the default
`trainer.batch_size` (32), timed over 16 steps: 16 calls of the step against
one call of `steps.make_multi_step` (a `lax.scan` over 16 batches).
"""

import argparse
import dataclasses

from bench import common, workloads


def run(rounds: int = 7, batch: int = 32) -> list[common.Figure]:
    figures = []
    for workload in (workloads.LENET5, workloads.TYPICAL_CNN):
        workload = dataclasses.replace(workload, batch_size=batch)
        tx = workloads.optimizer("adam")
        one = workloads.cnnlab_step(workload, tx)
        sixteen = workloads.cnnlab_step(workload, tx, steps_per_call=16)
        t = common.interleaved({"steps_per_call=1": lambda: one(16), "steps_per_call=16": lambda: sixteen(1)}, rounds)
        figures.append(common.Figure(
            "6", f"{workload.label} step time, steps_per_call 16 vs 1",
            f"{t['steps_per_call=16']['median_s'] / 16 * 1e3:.2f} ms vs {t['steps_per_call=1']['median_s'] / 16 * 1e3:.2f} ms",
            batch=str(batch), ratio=t["steps_per_call=16"]["ratio"],
            notes="ratio < 1: the scan is faster; no goal set",
        ))  # fmt: skip
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    common.report("small-model dispatch", run(args.rounds, args.batch))

"""Sweeps at scale on this machine: Ray's 2 jobs at a time against Hydra's basic launcher, and the
persistent compilation cache.

    python -m bench.sweeps [--rounds 2]

- `sweep`: the wall time of one 4-job multirun (`optimizer=sgd,momentum,rmsprop,adam`, LeNet-5 on
  the digits, 2 epochs, the compilation cache off so that every job compiles), as
  `cnnlab-train -m` with `launcher=basic` (one job after another, in one process) and with
  `launcher=ray` (a local Ray cluster of this machine's 2 cores: 2 jobs at a time, each in a
  process of its own). Alternated round by round; the ratio is ray / basic per round. Compiling
  is single-threaded, so 2 jobs at a time overlap one job's compile with the other's.
- `cache`: the time from nothing to a compiled train step (trace, lower, compile, initial
  state: `workloads.cnnlab_step`) in a fresh process, with an empty cache directory and then
  again with the directory the first process filled; the ratio is second / first.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import common

REPO = Path(__file__).resolve().parents[1]
SWEEP = ("optimizer=sgd,momentum,rmsprop,adam", "trainer.epochs=2", "compilation_cache=null",
         "logger.progress_bar=false", "logger.tensorboard=false")  # fmt: skip
COMPILE_CHILD = """
import json, sys, time
from cnnlab import runtime
runtime.use_compilation_cache(sys.argv[1])
import optax
from bench import workloads
workload = getattr(workloads, sys.argv[2])
t0 = time.perf_counter()
stepper = workloads.cnnlab_step(workload, optax.sgd(0.01, momentum=0.9))
print(json.dumps({"compile_s": time.perf_counter() - t0}))
"""


def sweep_wall(launcher: str, data_dir: str) -> float:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cnnlab.train", "-m", f"launcher={launcher}", *SWEEP,
                        f"data.data_dir={data_dir}", f"hydra.sweep.dir={out}"], cwd=REPO, check=True,
                       capture_output=True)  # fmt: skip
        took = time.perf_counter() - start
        assert len(list(Path(out).glob("*/summary.json"))) == 4, "every job of the sweep finishes"
    return took


def compile_seconds(cache_dir: str, workload: str) -> float:
    proc = subprocess.run([sys.executable, "-c", COMPILE_CHILD, cache_dir, workload], cwd=REPO, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])["compile_s"]


def run(rounds: int = 2) -> list[common.Figure]:
    figures = []
    with tempfile.TemporaryDirectory() as data_dir:
        sweep_wall("basic", data_dir)  # prepares the digits once, outside the timing
        times = {"basic": [], "ray": []}
        for _ in range(rounds):
            for launcher in times:
                times[launcher].append(sweep_wall(launcher, data_dir))
    ratios = np.array(times["ray"]) / np.array(times["basic"])
    figures.append(common.Figure(
        "8", "4-job sweep wall time, launcher=ray (2 jobs at a time) / basic",
        f"basic {np.median(times['basic']):.1f} s, ray {np.median(times['ray']):.1f} s", batch="32",
        goal="below 1", ratio=float(np.median(ratios)), met=bool(np.median(ratios) < 1),
        notes=f"LeNet-5, digits, 2 epochs, 4 optimizers, cache off; per-round ratios "
              f"{', '.join(f'{r:.2f}' for r in ratios)}"))  # fmt: skip
    for workload, label in (("LENET5", "LeNet-5"), ("RESNET18_CIFAR", "ResNet-18-CIFAR")):
        first, second = [], []
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as cache:
                first.append(compile_seconds(cache, workload))
                second.append(compile_seconds(cache, workload))
        ratios = np.array(second) / np.array(first)
        figures.append(common.Figure(
            "8", f"{label}: compile with the cache filled / empty",
            f"empty {np.median(first):.2f} s, filled {np.median(second):.2f} s", goal="below 1",
            ratio=float(np.median(ratios)), met=bool(np.median(ratios) < 1),
            notes=f"trace + lower + compile + initial state, a fresh process each; per-round ratios "
                  f"{', '.join(f'{r:.2f}' for r in ratios)}"))  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    common.report("sweeps at scale", run(parser.parse_args().rounds))


if __name__ == "__main__":
    main()

"""Run the benchmark suite and write docs/performance.md.

    python -m bench.run                       # everything but time-to-accuracy
    python -m bench.run --with-tta            # also benchmark 5 (many minutes on a CPU)
    python -m bench.run --only 4,6            # a subset; ids: xla conv pool resnet user 1 2 3 4 5 6 7 8

`make bench` installs the `bench` extra (PyTorch's CPU build) and runs this.
A run of a subset replaces those benchmarks' rows in docs/performance.md and
keeps the others, and the page lists which run wrote which rows.
Every figure is a median over rounds, and every comparison a ratio taken
round by round in one process, so a busy machine slows both sides alike.
"""

import argparse
import datetime
import re
import time
import traceback
from pathlib import Path
from typing import NamedTuple

from bench import common

OUT = Path(__file__).resolve().parents[1] / "docs" / "performance.md"

TITLES = {
    "xla": "XLA:CPU compiler options",
    "conv": "CPU convolution, per layer",
    "pool": "pooling, reduce_window vs tiled",
    "resnet": "ResNet-18-CIFAR's CPU paths",
    "user": "a user's own loop",
    "1": "framework overhead",
    "2": "optimizer cost",
    "3": "input pipeline",
    "4": "PyTorch on the CPU",
    "5": "time to 91% Fashion-MNIST",
    "6": "small-model dispatch",
    "7": "GPU ResNet-50",
    "8": "sweeps at scale",
}

# What was tried for each goal, for the "goals not reached" section.
TRIED = {
    "1": "the step shares the model, optimizer, compiler options and jit with the hand-written loop; the "
    "difference is its metrics (accuracy, three global norms), the rng fold-in and the sharded, donated jit; a "
    "single process's batch goes in with one device_put (runs gave 0.95-1.01)",
    "2": "the transforms are element-wise chains like optax's; the update-alone ratio isolates them",
    "4": "XLA's own (Eigen) convolution instead of YNNPACK's, jaxlib 0.10's default (the xla rows: 1.6-2.6x faster "
    "steps); per layer, the tap-matmul forms where they beat it (the forward pass of one input channel, input "
    "gradients of under 8 input channels or one output position, 1x1 weight gradients); im2col patches stacked one "
    "kernel axis at a time so XLA fuses them (LeNet-5: 0.80x the step time); pooling through a tiled view instead "
    "of reduce_window (LeNet-5: 0.57x); BatchNorm's per-channel sums as matrix products and a residual ReLU that "
    "XLA stores once (the resnet rows). Not kept: conv bias gradients as products (the wide typical CNN 1.2x "
    "slower: dy is then stored), C1's weight gradient from the forward pass's patches (LeNet-5 1.05x). Against "
    "YNNPACK's convolution, earlier: the "
    "tap weight gradient at every layer (now 1.4-3.6x slower than Eigen's at 3x3 layers), a single im2col matmul, "
    "a swapped-dimension lax convolution, stride-1 taps as contiguous row offsets",
    "user": "the loop compiles with `cnnlab.backend.jit`, which traces the model under the trainer's backend "
    "policy and passes its XLA options; the difference left is the trainer step's metrics, rng fold-in and "
    "sharded jit (benchmark 1) and the optimizer (optax's Adam in the loop, cnnlab's in the trainer)",
    "8": "nothing to make it faster on 2 cores: a job's steps already use both cores, so 2 jobs at a time "
    "share them instead of adding any; what Ray adds is its local cluster's start (about 7 s) and, for each "
    "job, a new worker process that imports JAX and cnnlab and loads the data again (8-14 s; the basic launcher "
    "pays that once). Limiting each job's XLA to one thread (intra_op_parallelism_threads=1) made 2 side-by-side "
    "runs 2.1x slower. The launcher's gain is on machines with more devices than one job uses",
    "5": "as benchmark 4: the step is the lever; the input pipeline is not (benchmark 3), nor the loop (an epoch of "
    "train_epoch within 5% of the bare step over the same batches); both sides start from the same weights, so "
    "they need the same number of epochs; cnnlab's first epoch carries its compilation",
}


def suite(ids: list[str], args) -> list[common.Figure]:
    from bench import (conv_layers, dispatch, gpu_resnet50, optimizers, overhead, pipeline, pooling, resnet_cpu,
                       sweeps, time_to_accuracy, torch_cpu, user_loop, xla_options)  # fmt: skip

    runners = {
        "xla": lambda: xla_options.run(rounds=args.rounds),
        "conv": lambda: conv_layers.run(rounds=args.rounds, with_torch=True),
        "pool": lambda: pooling.run(rounds=2 * args.rounds + 1),
        "resnet": lambda: resnet_cpu.run(rounds=args.rounds),
        "user": lambda: user_loop.run(rounds=2 * args.rounds + 1, resnet_rounds=args.rounds),
        "1": lambda: overhead.run(rounds=2 * args.rounds + 1, resnet_rounds=args.rounds),
        "2": lambda: optimizers.run(rounds=args.rounds, width=args.width),
        "3": lambda: pipeline.run(rounds=2 * args.rounds + 1),
        "4": lambda: torch_cpu.run(rounds=args.rounds),
        "5": lambda: time_to_accuracy.run(max_epochs=args.tta_epochs)
        if args.with_tta
        else [common.Figure("5", "time to 91% Fashion-MNIST test top-1, cnnlab vs PyTorch", "not measured",
                            batch="128", goal="faster than PyTorch",
                            notes="skipped in this run (python -m bench.run --with-tta)")],  # fmt: skip
        "6": lambda: dispatch.run(rounds=2 * args.rounds + 1),
        "7": lambda: gpu_resnet50.run(),
        "8": lambda: sweeps.run(rounds=2),
    }
    figures = []
    for bench_id in ids:
        before, start = common.load_average(), time.perf_counter()
        try:
            produced = runners[bench_id]()
        except Exception as error:  # a broken benchmark is a row, not a lost run
            traceback.print_exc()
            produced = [common.Figure(bench_id, TITLES[bench_id], f"failed: {type(error).__name__}: {error}")]
        took = time.perf_counter() - start
        for figure in produced:
            figure.notes = f"{figure.notes}; load {before} -> {common.load_average()}; {took:.0f} s".lstrip("; ")
        common.report(TITLES[bench_id], produced)
        figures += produced
    return figures


class Run(NamedTuple):
    """One `bench.run` invocation whose rows are on the page."""

    command: str
    started: str
    ids: list[str]


def render(figures: list[common.Figure], machine: dict, runs: list[Run], notes: str = "") -> str:
    cell = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    lines = [
        "# Performance",
        "",
        "Written by bench/run.py (`make bench`). Every figure is the median of several rounds;",
        "every ratio is taken round by round between candidates that ran in turn in one process,",
        "so it holds on a busy machine better than either time alone. The load average (1, 5,",
        "15 min) before and after each benchmark is in its notes. The rows come from these runs",
        "(a run of a subset replaces those rows only):",
        "",
        *[f"- `{run.command}` on {run.started}: {', '.join(run.ids)}" for run in runs],
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {cell(v)} |" for k, v in machine.items()],
        "",
        "## Figures",
        "",
        "| # | measured | figure | batch | goal | ratio | goal met | notes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        ratio = "" if f.ratio is None else f"{f.ratio:.3f}"
        met = {True: "yes", False: "**no**", None: "–"}[f.met]
        lines.append(f"| {f.bench} | {cell(f.name)} | {cell(f.value)} | {cell(f.batch)} | {cell(f.goal)} | {ratio} "
                     f"| {met} | {cell(f.notes)} |")  # fmt: skip
    missed = [f for f in figures if f.met is False]
    unmeasured = [f for f in figures if f.goal and f.met is None]
    lines += ["", "## Goals not reached", ""]
    if not missed:
        lines.append("None among the figures measured.")
    for f in missed:
        lines.append(f"- **{f.name}** ({f.goal}): measured ratio {f.ratio:.3f} ({f.value}). "
                     f"Tried: {TRIED.get(f.bench, 'see the notes')}.")  # fmt: skip
    if unmeasured:
        lines += ["", "## Goals not measured", ""]
        lines += [f"- **{f.name}** ({f.goal}): {f.value}; {f.notes.split(';')[0]}." for f in unmeasured]
    lines += [
        "",
        "## Reading the convolution rows",
        "",
        "`xla` rows time the same program compiled with XLA's default options (YNNPACK's",
        "convolutions, dots and reductions) over the options every cnnlab run compiles with",
        "(`backend.compiler_options()`: XLA's own code); above 1: cnnlab's options are faster.",
        "",
        "`conv` rows time one convolution of ResNet-18-CIFAR (batch 64), LeNet-5 or the wide typical",
        "CNN (batch 128) on its own, compiled with cnnlab's options: the figure is XLA's forward /",
        "input gradient / weight gradient and the tap-matmul weight gradient in ms; the ratio is",
        "`conv_cpu`'s per-layer plan (the backend policy's `conv=\"taps\"`) over XLA's convolution",
        "for the whole forward + backward of that layer (below 1: the CPU path is faster). The notes",
        "give PyTorch's forward + backward of the same layer over XLA's, and the tap candidates over XLA's.",
        "",
        "`resnet` rows time ResNet-18-CIFAR's train step with one of cnnlab's CPU paths put back to",
        "the stock code (flax's BatchNorm sums, `nn.relu` at the block outputs, XLA's convolution) or all",
        "three, over cnnlab's step as it runs; above 1: cnnlab's path is faster.",
        "",
        "## A user's own loop",
        "",
        "`user` rows time a training loop written as the flax examples write one around",
        "`cnnlab.models.create(...)` (`bench/user_loop.py`), compiled with `cnnlab.backend.jit` (the",
        "one line `cnnlab.models` documents) or with plain `jax.jit`, over cnnlab's trainer step on",
        "the same batch; below 1: the user's loop is faster. The notes give the spread of the",
        "round-by-round ratios.",
        "",
        "## Reproducing",
        "",
        "```",
        "make bench                                  # the suite, as above",
        "make bench ARGS='--with-tta'                # plus time to accuracy (benchmark 5)",
        ".venv/bin/python -m bench.torch_cpu         # one benchmark, printed only",
        ".venv/bin/python -m bench.gpu_resnet50      # on a GPU machine (benchmark 7)",
        "```",
    ]
    return "\n".join(lines) + "\n" + (f"\n{notes.strip()}\n" if notes.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="xla,conv,pool,resnet,user,1,2,3,4,5,6,7,8", help="comma-separated ids")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--width", type=int, default=16, help="ResNet-18 base width for benchmark 2 (64: full)")
    parser.add_argument("--with-tta", action="store_true", help="run benchmark 5 (time to accuracy)")
    parser.add_argument("--tta-epochs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    ids = args.only.split(",")
    figures = suite(ids, args)
    machine = {**common.machine(), "load average at the end": common.load_average()}
    run = Run(" ".join(["python -m bench.run", *_argv()]), started, ids)
    kept, runs, notes = read_page(args.out.read_text()) if args.out.is_file() else ([], [], "")
    figures, runs = merge(kept, runs, figures, run)
    notes = notes if len(runs) > 1 else ""  # hand-written notes go with the rows they discuss
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(figures, machine, runs, notes))
    print(f"wrote {args.out}")


def merge(kept: list[common.Figure], runs: list[Run], new: list[common.Figure], run: Run):
    """The page's rows with `run`'s benchmarks replaced, in TITLES order, and the runs that still own rows."""
    order = list(TITLES)
    rows = [f for f in kept if f.bench not in run.ids] + new
    rows.sort(key=lambda f: order.index(f.bench) if f.bench in order else len(order))  # stable: a run's own order
    owners = [r._replace(ids=[i for i in r.ids if i not in run.ids]) for r in runs]
    return rows, [r for r in owners if r.ids] + [run]


_CELL = re.compile(r"(?<!\\)\|")
_RUN = re.compile(r"^- `(?P<command>[^`]+)` on (?P<started>[^:]+:\d\d): (?P<ids>.+)$")


def read_page(text: str) -> tuple[list[common.Figure], list[Run], str]:
    """The figure rows, the runs and the hand-written notes (a "## Notes" section
    at the end) of a page that `render` wrote."""
    text, notes_heading, notes = text.partition("\n## Notes")
    figures, runs, in_table = [], [], False
    for line in text.splitlines():
        if match := _RUN.match(line):
            runs.append(Run(match["command"], match["started"], match["ids"].split(", ")))
        elif line.startswith("| # |"):
            in_table = True
        elif in_table and line.startswith("|") and not line.startswith("|---"):
            bench, name, value, batch, goal, ratio, met, remarks = (
                c.strip().replace("\\|", "|") for c in _CELL.split(line)[1:-1]
            )
            met_value = {"yes": True, "**no**": False}.get(met)
            figures.append(common.Figure(bench, name, value, batch, goal, float(ratio) if ratio else None, met_value,
                                         remarks))  # fmt: skip
        elif in_table and not line.startswith("|"):
            in_table = False
    return figures, runs, (notes_heading.lstrip() + notes).strip()


def _argv() -> list[str]:
    import sys

    return sys.argv[1:]


if __name__ == "__main__":
    main()

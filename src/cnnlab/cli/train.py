"""`cnnlab-train key=value ... [-m]`: one run (or a sweep) composed by Hydra."""

import contextlib
import os
import signal
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

# What a user can fix from the message alone: a config value, a missing file, a diverged run.
USER_ERRORS = (ValueError, FileNotFoundError, FloatingPointError)


def main() -> None:
    """The command: a missing launcher or sweeper plugin is named before Hydra starts, and a run
    stopped by SIGINT or SIGTERM ends with one line and exit status 130 or 143."""
    from cnnlab import stopping
    from cnnlab.cli import console, extras

    problem = extras.missing(sys.argv[1:])
    if problem:
        sys.exit(f"cnnlab-train: {problem}")

    stopping.on_signals()
    console.without_closed_loop_noise()
    try:
        train()
        stopping.check()  # a signal whose exception was lost after the last step
    except KeyboardInterrupt as stopped:
        signum = getattr(stopped, "signum", signal.SIGINT)
        print(f"cnnlab-train: stopped by {signal.Signals(signum).name}; what was written is kept, and the "
              f"same command resumes from the last checkpoint", file=sys.stderr)  # fmt: skip
        sys.exit(stopping.EXIT_STATUS[signum])


@hydra.main(version_base=None, config_path="pkg://cnnlab.conf", config_name="config")
def train(cfg: DictConfig) -> float:
    config = OmegaConf.to_container(cfg, resolve=True)
    from cnnlab import runtime  # after Hydra has parsed the command line: --help stays fast
    from cnnlab.train import loop, vmap_sweep

    runtime.prepare(config)  # before JAX's first computation in this process (a launcher's worker)

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        if (config.get("sweep") or {}).get("name") == "vmap":
            result = vmap_sweep.run(config, run_dir, overrides=list(HydraConfig.get().overrides.task))
            return max((s["best_val_top1"] for s in result.summaries), default=float("nan"))
        return loop.run(config, run_dir)["best_val_top1"]  # the value a Hydra sweeper would optimize
    except Exception as error:
        from cnnlab.train.checkpoint import CheckpointError
        from cnnlab.train.run_dir import RunDirError

        # The record cnnlab-report lists a failed multirun job by; Hydra runs the other jobs on. A start
        # refused by the run directory (in use, another config) leaves the run that is there as it is.
        if not isinstance(error, RunDirError):
            with contextlib.suppress(OSError):  # a read-only or full file system: the message still comes
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "error.txt").write_text(traceback.format_exc())
        single = HydraConfig.get().mode != RunMode.MULTIRUN
        user_error = isinstance(error, (*USER_ERRORS, CheckpointError))
        if single and user_error and not os.environ.get("HYDRA_FULL_ERROR"):
            # One sentence, not a traceback: it names the key or file and what is expected.
            where = "HYDRA_FULL_ERROR=1" if isinstance(error, RunDirError) else f"{run_dir / 'error.txt'}, or HYDRA_FULL_ERROR=1"
            print(f"cnnlab-train: {error} (traceback: {where})", file=sys.stderr)
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()

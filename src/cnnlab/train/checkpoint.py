"""orbax checkpoints of a run, and resuming from the newest good one.

Each checkpoint holds four items:
- `state`: the TrainState pytree (params, batch statistics, optimizer state, rng, step);
- `progress`: JSON, where the run stands (`progress.Progress`: the step, the data
  iterator's state and running sums mid-epoch, each variant's early-stopping
  record and failure, wall time);
- `normalization`: JSON, the train split's statistics, for evaluation and transfer;
- `config`: JSON, the resolved run config;
- `data`: JSON, what identifies the data (split sizes, classes, normalization),
  which a resume compares with the data it loads (run_dir.py).

The manager keeps the latest `keep_latest` checkpoints and, for each variant
(one for a single run, K for a vmap sweep), the best one by the monitored
metric (see early_stopping.py), and saves asynchronously: `save` returns once the arrays
are copied off the device, and the files are written in the background.
"""

import logging
import time
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from cnnlab.train.progress import Progress

log = logging.getLogger(__name__)

ITEMS = ("state", "progress", "normalization", "config", "data")


def manager(directory: Path, *, keep_latest: int, asynchronous: bool = True, variants: int = 1) -> ocp.CheckpointManager:
    # The best checkpoint of a variant is the one early stopping would restore: each epoch's
    # checkpoint carries every stopper's `best_score`, highest at that variant's best epoch.
    def score(i: int):
        return lambda metrics: metrics["best_score"][i]

    best = [policies.BestN(get_metric_fn=score(i), n=1, keep_checkpoints_without_metrics=False)  # mid-epoch: LatestN
            for i in range(variants)]  # fmt: skip
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policies.AnyPreservationPolicy([policies.LatestN(n=keep_latest), *best]),
        best_fn=score(0),  # for best_step() (of a single run); which checkpoints stay is the policy's
        best_mode="max",
        enable_async_checkpointing=asynchronous,
    )
    return ocp.CheckpointManager(directory.absolute(), options=options, item_names=ITEMS)


def save(mngr: ocp.CheckpointManager, state: Any, *, progress: Progress, normalization: dict,
         config: dict, metrics: dict | None, data: dict | None = None) -> None:  # fmt: skip
    """Save at `progress.step`. `state` must be the caller's own copy: an asynchronous save reads
    it in the background while the next steps donate (overwrite) the training state's buffers."""
    mngr.save(
        progress.step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            progress=ocp.args.JsonSave(progress.as_json()),  # a fresh dict of an immutable record
            normalization=ocp.args.JsonSave(normalization),
            config=ocp.args.JsonSave(config),
            **({} if data is None else {"data": ocp.args.JsonSave(data)}),
        ),
        metrics=metrics,
    )


def restore(mngr: ocp.CheckpointManager, step: int, like: Any) -> tuple[Any, Progress]:
    """The state and progress saved at `step`, with the structure and shardings of `like`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    restored = mngr.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore())
    )
    return restored.state, Progress.from_json(restored.progress)


def restore_latest_good(mngr: ocp.CheckpointManager, like: Any) -> tuple[Any, Progress] | None:
    """Restore the newest checkpoint that reads back whole; None when there is none.

    A checkpoint that fails to restore (truncated or missing files) is named in
    a warning and moved aside to `<step>.corrupt`, not deleted, so that the
    run can neither read it again nor overwrite it with a new save.
    """
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            return restore(mngr, step, like)
        except Exception as error:  # orbax raises many kinds for a damaged checkpoint
            path = Path(mngr.directory) / str(step)
            log.warning("checkpoint at step %d (%s) is unreadable (%s: %s); trying the previous one",
                        step, path, type(error).__name__, str(error).splitlines()[0][:200])  # fmt: skip
            path.rename(path.with_name(f"{step}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"))
            mngr.reload()
    return None

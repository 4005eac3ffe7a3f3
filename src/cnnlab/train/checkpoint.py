"""orbax checkpoints of a run, and resuming from the newest good one.

Each checkpoint holds four items:
- `state`: the TrainState pytree (params, batch statistics, optimizer state, rng, step);
- `progress`: JSON, where the loop stands (epoch, position in the epoch and the
  data iterator's state, running sums, early-stopping record, wall time);
- `normalization`: JSON, the train split's statistics, for evaluation and transfer;
- `config`: JSON, the resolved run config.

The manager keeps the latest `keep_latest` checkpoints and the best one by the
monitored metric (see early_stopping.py), and saves asynchronously: `save` returns once the arrays
are copied off the device, and the files are written in the background.
"""

import json
import logging
import time
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

log = logging.getLogger(__name__)

ITEMS = ("state", "progress", "normalization", "config")
def manager(directory: Path, *, keep_latest: int, asynchronous: bool = True) -> ocp.CheckpointManager:
    # The best checkpoint is the one early stopping would restore: each epoch's
    # checkpoint carries the stopper's `best_score`, highest for its best epoch.
    score = lambda metrics: metrics["best_score"]  # noqa: E731
    best = policies.BestN(get_metric_fn=score, n=1, keep_checkpoints_without_metrics=False)  # mid-epoch: LatestN
    options = ocp.CheckpointManagerOptions(
        preservation_policy=policies.AnyPreservationPolicy([policies.LatestN(n=keep_latest), best]),
        best_fn=score,  # for best_step(); which checkpoints stay is the policy's
        best_mode="max",
        enable_async_checkpointing=asynchronous,
    )
    return ocp.CheckpointManager(directory.absolute(), options=options, item_names=ITEMS)


def save(mngr: ocp.CheckpointManager, step: int, state: Any, *, progress: dict, normalization: dict,
         config: dict, metrics: dict | None) -> None:  # fmt: skip
    # An asynchronous save serializes the JSON items in the background, after the loop
    # has moved on and changed `progress`: each item gets a frozen copy now.
    progress = json.loads(json.dumps(progress))
    mngr.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            progress=ocp.args.JsonSave(progress),
            normalization=ocp.args.JsonSave(normalization),
            config=ocp.args.JsonSave(config),
        ),
        metrics=metrics,
    )


def restore(mngr: ocp.CheckpointManager, step: int, like: Any) -> tuple[Any, dict]:
    """The state and progress saved at `step`, with the structure and shardings of `like`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    restored = mngr.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore())
    )
    return restored.state, restored.progress


def restore_latest_good(mngr: ocp.CheckpointManager, like: Any) -> tuple[Any, dict] | None:
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

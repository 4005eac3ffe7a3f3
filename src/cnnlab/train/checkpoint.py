"""orbax checkpoints of a run: the train state plus the loop's progress.

Each checkpoint holds two items: `state` (the TrainState pytree) and
`progress` (JSON: the epoch to start from, wall time so far, the history of
epoch metrics). The manager keeps the latest `keep_latest` and the best by
val top-1, and saves asynchronously.
"""

from pathlib import Path

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from cnnlab.train.state import TrainState


def manager(directory: Path, *, keep_latest: int) -> ocp.CheckpointManager:
    policy = policies.AnyPreservationPolicy(
        [
            policies.LatestN(n=keep_latest),
            policies.BestN(get_metric_fn=lambda metrics: metrics["val_top1"], n=1),  # the highest
        ]
    )
    options = ocp.CheckpointManagerOptions(preservation_policy=policy, enable_async_checkpointing=True)
    return ocp.CheckpointManager(directory.absolute(), options=options, item_names=("state", "progress"))


def save(mngr: ocp.CheckpointManager, state: TrainState, progress: dict, metrics: dict) -> None:
    step = int(jax.device_get(state.step))
    mngr.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), progress=ocp.args.JsonSave(progress)),
        metrics=metrics,
    )


def restore(mngr: ocp.CheckpointManager, step: int, like: TrainState) -> tuple[TrainState, dict]:
    """The state and progress saved at `step`, with the structure and shardings of `like`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    restored = mngr.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), progress=ocp.args.JsonRestore())
    )
    return restored.state, restored.progress

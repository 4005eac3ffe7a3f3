"""Pretrained variables from a run directory, an orbax checkpoint, or a weight file.

`transfer.from_run` accepts
- a cnnlab run directory (its `checkpoints/`: the best checkpoint, or the latest
  with `transfer.checkpoint=latest`), or a `checkpoints/` directory itself;
- the output of `cnnlab-convert-weights`, which has the same layout;
- a Keras `.h5`, `.safetensors` or `.pth` file, converted on the fly.

A checkpoint is read with a template made from its own metadata, placed on
this process's devices (a run trained on 8 devices is read on 1; no optimizer
needs to be rebuilt): only its `params` and `batch_stats` are kept, with the `normalization` and
`config` items that came with it.
"""

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import numpy as np
import orbax.checkpoint as ocp

from cnnlab.transfer import load

log = logging.getLogger(__name__)

ITEMS = ("state", "progress", "normalization", "config")  # as cnnlab.train.checkpoint writes them


@dataclasses.dataclass(frozen=True)
class Pretrained:
    variables: dict  # {"params": ..., "batch_stats": ...} as numpy arrays
    normalization: dict | None  # {"shift": [...], "scale": [...]} of the source run's train split
    source: str  # what it was read from, for messages
    model_name: str | None = None


def read(source: str | Path, *, model: nn.Module, input_shape: Sequence[int], which: str = "best") -> Pretrained:
    """The pretrained variables at `source` (see the module docstring)."""
    path = Path(source).expanduser()
    if path.is_file():
        variables = load.load_into(model, path, input_shape)
        return Pretrained(variables, None, str(path), type(model).__name__)
    directory = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if which not in ("best", "latest"):
        raise ValueError(f"transfer.checkpoint must be best or latest, got {which!r}")
    mngr = _manager(directory)
    step = (mngr.best_step() if which == "best" else None) or mngr.latest_step()
    if step is None:
        raise FileNotFoundError(f"transfer.from_run={source}: no checkpoints in {directory} "
                                "(expected a run directory, its checkpoints/, or a weight file)")  # fmt: skip
    restored = mngr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_here(directory / str(step) / "state")), normalization=ocp.args.JsonRestore(),
        config=ocp.args.JsonRestore()))  # fmt: skip
    mngr.close()
    state = restored.state
    variables = {"params": _host(state["params"]), "batch_stats": _host(state.get("batch_stats") or {})}
    model_name = ((restored.config or {}).get("model") or {}).get("name")
    log.info("pretrained weights: %s step %d (%s)", directory, step, model_name)
    return Pretrained(variables, restored.normalization or None, f"{directory}/{step}", model_name)


def _manager(directory: Path) -> ocp.CheckpointManager:
    # The run's best checkpoint carries the early-stopping score `best_score` (see cnnlab.train.checkpoint):
    # one per variant, of which a single run has one (runs before the vmap engine saved a bare number).
    def score(metrics):
        value = metrics["best_score"]
        return value[0] if isinstance(value, list) else value

    options = ocp.CheckpointManagerOptions(best_fn=score, best_mode="max", read_only=True)
    return ocp.CheckpointManager(directory.absolute(), options=options, item_names=ITEMS)


def _here(state_dir: Path) -> Any:
    """The saved state's shapes and dtypes, each placed on this process's first device: a checkpoint
    written on 8 devices (a pod, `parallel.cpu_devices=8`) is read where it is fine-tuned, on 1."""
    saved = ocp.StandardCheckpointer().metadata(state_dir).item_metadata
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), saved)


def _host(tree: Any) -> Any:
    return jax.tree.map(np.asarray, jax.device_get(tree))


def write(out: Path, variables: dict, *, config: dict, normalization: dict | None = None) -> Path:
    """An orbax checkpoint in a run directory's layout (`out/checkpoints/0`) that `read` accepts."""
    directory = Path(out).absolute() / "checkpoints"
    mngr = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(enable_async_checkpointing=False),
                                 item_names=ITEMS)  # fmt: skip
    state = {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}
    mngr.save(0, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), progress=ocp.args.JsonSave({"step": 0, "epoch": 0}),
        normalization=ocp.args.JsonSave(normalization or {}), config=ocp.args.JsonSave(config)))  # fmt: skip
    mngr.wait_until_finished()
    mngr.close()
    return directory / "0"

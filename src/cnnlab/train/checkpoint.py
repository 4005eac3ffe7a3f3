"""orbax checkpoints of a run, and resuming from the newest good one.

Each checkpoint holds these items:
- `state`: the TrainState pytree (params, batch statistics, optimizer state, rng, step);
- `checksums`: JSON, the CRC-32 of each array of `state` as it was saved, compared with
  the arrays read back at every restore: a bit flipped on disk is caught there;
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

What can go wrong, and what happens then:
- a checkpoint is *damaged* (files truncated, missing, or a checksum that differs): named in
  a warning, moved aside to `<step>.corrupt-<time>` (kept, not deleted), the previous one used;
- it cannot be *read* (a file that cannot be opened: permissions, an NFS or GCS hiccup): the
  read is tried `READ_ATTEMPTS` times, then `CheckpointError` says so; nothing is moved;
- it holds *another model's* state (other arrays or shapes): `CheckpointError`, nothing moved;
- the directory cannot be *written* (read-only, disk full): `CheckpointError` at the start, or
  at the save whose write failed; what was written before is kept.
"""

import errno
import logging
import os
import shutil
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from cnnlab.train.progress import Progress

log = logging.getLogger(__name__)

ITEMS = ("state", "checksums", "progress", "normalization", "config", "data")
READ_ATTEMPTS, READ_RETRY_S = 3, 1.0  # a failed read is tried again after 1 s, then 2 s
FILES_BYTES = 1 << 20  # a checkpoint's JSON items, metadata and manifests


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be written or read here: the message names it and what to do."""


class Damaged(CheckpointError):
    """The checkpoint's files read back, but not as they were written."""


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
    writable(directory)
    one_writer_per_array()
    return ocp.CheckpointManager(directory.absolute(), options=options, item_names=ITEMS)


def one_writer_per_array() -> None:
    """On one host, write each replicated array from one device. orbax's default on CPUs and TPUs,
    replica-parallel saving, splits the write over the replicas: across hosts that shares the work,
    but on one host it only adds a compiled slice per array and device (224 for ResNet-50 on 8
    devices, 14 s at the first save) for the same bytes written by the same process."""
    if jax.process_count() == 1:
        ocp.type_handlers.register_type_handler(jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False),
                                                override=True)  # fmt: skip


def writable(directory: Path) -> None:
    """Refuse a checkpoint directory that cannot take a file, before a step is trained."""
    probe = directory / f".write-test-{os.getpid()}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"cnnlab")
        probe.unlink()
    except OSError as error:
        raise CheckpointError(f"cannot write checkpoints into {directory}: {error.strerror or error}. Make it "
                              "writable (or free space), or choose another hydra.run.dir; nothing was trained "
                              "or changed") from None  # fmt: skip


def checksums(state: Any) -> dict[str, str]:
    """The CRC-32 of each array's bytes, by its path in the pytree (the host's replica)."""
    leaves = jax.tree_util.tree_leaves_with_path(state)
    return {jax.tree_util.keystr(path): f"{zlib.crc32(np.ascontiguousarray(_host(x)).data):08x}" for path, x in leaves}


def _host(x: Any) -> np.ndarray:
    """A replicated array (every array of a data-parallel run) is whole on each host."""
    if isinstance(x, jax.Array) and x.is_fully_replicated:
        return np.asarray(x.addressable_data(0))
    return np.asarray(x)


def save(mngr: ocp.CheckpointManager, state: Any, *, progress: Progress, normalization: dict,
         config: dict, metrics: dict | None, data: dict | None = None) -> None:  # fmt: skip
    """Save at `progress.step`. `state` must be the caller's own copy: an asynchronous save reads
    it in the background while the next steps donate (overwrite) the training state's buffers."""
    room_for(Path(mngr.directory), state, progress.step)
    try:
        mngr.save(
            progress.step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                checksums=ocp.args.JsonSave(checksums(state)),
                progress=ocp.args.JsonSave(progress.as_json()),  # a fresh dict of an immutable record
                normalization=ocp.args.JsonSave(normalization),
                config=ocp.args.JsonSave(config),
                **({} if data is None else {"data": ocp.args.JsonSave(data)}),
            ),
            metrics=metrics,
        )
    except Exception as error:
        raise write_error(mngr, progress.step, error) from error


def room_for(directory: Path, state: Any, step: int) -> None:
    """Refuse a save that cannot fit: the arrays' bytes (orbax's compression only shrinks them), and
    room for the small files. What fills up in the background is reported at the next save."""
    needed = sum(x.nbytes for x in jax.tree.leaves(state)) + FILES_BYTES
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise CheckpointError(f"no room for the checkpoint of step {step} in {directory}: it needs about "
                              f"{needed / 2**20:.1f} MiB, {free / 2**20:.1f} MiB are free. What was written "
                              "is kept: free space, then rerun the same command to resume")  # fmt: skip


def wait(mngr: ocp.CheckpointManager) -> None:
    """Wait for the background writes; a failed one is a `CheckpointError`."""
    try:
        mngr.wait_until_finished()
    except Exception as error:
        raise write_error(mngr, None, error) from error


def write_error(mngr: ocp.CheckpointManager, step: int | None, error: Exception) -> CheckpointError:
    """The message for a save that failed: which one, what is kept, what to do. `step` None: the
    one being written in the background (orbax's `<step>.orbax-checkpoint-tmp`)."""
    directory = Path(mngr.directory)
    if step is None:
        pending = sorted(int(p.name.split(".")[0]) for p in directory.glob("*.orbax-checkpoint-tmp*"))
        step = pending[0] if pending else mngr.latest_step()
    kept = sorted(s for s in mngr.all_steps() if step is None or s < step)
    kept_text = f"the checkpoints up to step {kept[-1]} are kept" if kept else "no checkpoint was written"
    return CheckpointError(f"saving the checkpoint of step {step} into {directory} failed "
                           f"({type(error).__name__}: {_first_line(error)}); {kept_text}. Free space or "
                           "fix the file system, then rerun the same command to resume")  # fmt: skip


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0][:200]


def restore(mngr: ocp.CheckpointManager, step: int, like: Any) -> tuple[Any, Progress]:
    """The state and progress saved at `step`, with the structure and shardings of `like`, as they
    were saved (their checksums). Raises `Damaged`, or `CheckpointError` (unreadable, another model)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    items = {"state": ocp.args.StandardRestore(abstract), "progress": ocp.args.JsonRestore()}
    summed = (Path(mngr.directory) / str(step) / "checksums").exists()  # not in checkpoints before 2026-12-02
    if summed:
        items["checksums"] = ocp.args.JsonRestore()
    restored = read(mngr, step, lambda: mngr.restore(step, args=ocp.args.Composite(**items)), like=like)
    if summed:
        now = checksums(restored.state)
        differ = [path for path, crc in restored.checksums.items() if now.get(path) != crc]
        if differ:
            raise Damaged(f"{len(differ)} of its {len(now)} arrays read back other than saved (checksums), "
                          f"the first {differ[0]}")  # fmt: skip
    return restored.state, Progress.from_json(restored.progress)


def read(mngr: ocp.CheckpointManager, step: int, reading: Callable[[], Any], like: Any = None) -> Any:
    """`reading()` of the checkpoint at `step`, tried again where a file cannot be read.

    A failure whose files all read is `Damaged`, unless the saved arrays are not `like`'s."""
    path = Path(mngr.directory) / str(step)
    for attempt in range(READ_ATTEMPTS):
        try:
            return reading()
        except Exception as error:  # orbax and tensorstore raise many kinds
            unreadable = _unreadable(path)
            if unreadable is None:
                if like is not None and (other := _other_model(mngr, step, like)):
                    raise CheckpointError(f"the checkpoint at step {step} ({path}) holds another model's state "
                                          f"({other}): it is left as it is. Run the code that wrote it, or "
                                          "choose another hydra.run.dir") from error  # fmt: skip
                raise Damaged(f"{type(error).__name__}: {_first_line(error)}") from error
            name, problem = unreadable
            if attempt + 1 == READ_ATTEMPTS:
                raise CheckpointError(f"the checkpoint at step {step} cannot be read: {name}: {problem}, "
                                      f"{READ_ATTEMPTS} attempts. Nothing was moved or changed: fix its access "
                                      "(permissions, the file system), then rerun the same command") from error  # fmt: skip
            wait_s = READ_RETRY_S * 2**attempt
            log.warning("checkpoint at step %d: %s: %s; reading again in %.0f s", step, name, problem, wait_s)
            time.sleep(wait_s)
    raise AssertionError("unreachable")


def _unreadable(path: Path) -> tuple[Path, str] | None:
    """The first file under `path` that cannot be read through, and why; None when all can."""
    for file in sorted(p for p in path.rglob("*") if not p.is_dir()):
        try:
            with open(file, "rb") as f:
                while f.read(1 << 24):
                    pass
        except OSError as error:
            return file, error.strerror or errno.errorcode.get(error.errno or 0, str(error))
    return None


def _other_model(mngr: ocp.CheckpointManager, step: int, like: Any) -> str | None:
    """How the arrays saved at `step` differ from `like`'s (names, shapes, dtypes); None if they don't."""
    try:
        saved = mngr.item_metadata(step)["state"].tree
    except Exception:  # the metadata itself is damaged
        return None
    def flat(tree) -> dict[str, tuple]:
        leaves = jax.tree_util.tree_leaves_with_path(ocp.tree.serialize_tree(tree, keep_empty_nodes=False))
        return {"/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in p): (tuple(x.shape), np.dtype(x.dtype))
                for p, x in leaves}  # fmt: skip
    ours, theirs = flat(like), flat(saved)
    if ours == theirs:
        return None
    missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
    if missing or extra:
        return f"{len(extra)} arrays this model lacks, {len(missing)} it lacks, e.g. {(extra or missing)[0]}"
    name = next(k for k in ours if ours[k] != theirs[k])
    return f"{name}: saved {theirs[name][0]} {theirs[name][1]}, this model {ours[name][0]} {ours[name][1]}"


def restore_latest_good(mngr: ocp.CheckpointManager, like: Any) -> tuple[Any, Progress] | None:
    """Restore the newest checkpoint that reads back as it was saved; None when there is none.

    A damaged checkpoint (truncated or missing files, a checksum that differs) is named in a
    warning and moved aside to `<step>.corrupt-<time>`, not deleted, so that the run can
    neither read it again nor overwrite it with a new save. A checkpoint that cannot be read,
    or that holds another model, stops the run (`CheckpointError`), and nothing is moved.
    """
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            return restore(mngr, step, like)
        except Damaged as damage:
            path = Path(mngr.directory) / str(step)
            log.warning("checkpoint at step %d (%s) is damaged (%s); moved aside, trying the previous one",
                        step, path, damage)  # fmt: skip
            path.rename(path.with_name(f"{step}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}"))
            mngr.reload()
    return None

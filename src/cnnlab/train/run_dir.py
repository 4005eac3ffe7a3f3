"""A run directory belongs to one run: one process at a time, and one config and data set.

`claim(run_dir, cfg, data, ckpts)` is entered before the engine writes
anything. It takes an exclusive lock on `run_dir/.lock` (an `flock`, which the
kernel drops when the process dies, `kill -9` included), and on a resume it
compares the config and the data saved with the latest checkpoint against the
current ones. A difference that changes the trained state or the data refuses
the start, naming the keys; `.hydra/`, which Hydra rewrote before the run
started, gets back the files of the accepted start, byte for byte, so nothing
of the run's own record changes.

Keys that continue a run safely by default: more (or fewer) epochs, logging,
checkpointing, the evaluation batch, where the data is cached, the parallel
strategy and the backend policy (the same numbers to float tolerance), the
compilation cache and the launcher.
Anything else may differ only where `checkpoint.allow_changes` lists it (for
example `[optimizer.learning_rate]`); each accepted change is logged.
"""

import contextlib
import fcntl
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orbax.checkpoint as ocp

from cnnlab.train import checkpoint

log = logging.getLogger(__name__)

SAFE = ("trainer.epochs", "trainer.eval_batch_size", "logger.", "checkpoint.", "data.data_dir", "data.in_memory",
        "parallel.", "backend", "compilation_cache", "launcher.", "trainer.test", "trainer.max_",
        "trainer.analyze")  # fmt: skip
ACCEPTED = ".cnnlab/accepted_hydra"  # the .hydra/ files of the last accepted start


class RunDirError(ValueError):
    """This run directory cannot take this run; the message says why and what to do."""


@contextlib.contextmanager
def claim(run_dir: Path, cfg: Mapping[str, Any], data: Mapping[str, Any], ckpts) -> Iterator[list[str]]:
    """Hold the run directory for this process; yields the config keys that changed (allowed)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with _lock(run_dir):
        saved = _saved(ckpts)
        changed: list[str] = []
        if saved is not None:
            try:
                changed = _check(run_dir, cfg, data, saved)
            except RunDirError:
                _restore_hydra(run_dir)
                raise
        _keep_hydra(run_dir)
        (run_dir / "error.txt").unlink(missing_ok=True)  # an earlier failed attempt's, now being retried
        yield changed


@contextlib.contextmanager
def _lock(run_dir: Path) -> Iterator[None]:
    path = run_dir / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            _restore_hydra(run_dir)
            raise RunDirError(f"{run_dir} is in use by another cnnlab process (pid {owner}): wait for it to "
                              "finish, or choose another hydra.run.dir") from None  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def data_record(dataset) -> dict:
    """What identifies the data a run trains on: split sizes, classes and normalization."""
    return {"sizes": {name: len(split) for name, split in dataset.splits.items()}, "num_classes": dataset.num_classes,
            "class_names": list(dataset.class_names), "normalization": dataset.normalization.as_dict()}  # fmt: skip


def _saved(ckpts) -> tuple[dict, dict | None] | None:
    """The config and data record of the latest checkpoint, None for a fresh run."""
    for step in sorted(ckpts.all_steps(), reverse=True):
        items = {"config": ocp.args.JsonRestore()}
        has_data = (Path(ckpts.directory) / str(step) / "data").exists()
        if has_data:
            items["data"] = ocp.args.JsonRestore()
        try:
            restored = checkpoint.read(ckpts, step, lambda: ckpts.restore(step, args=ocp.args.Composite(**items)))
        except checkpoint.Damaged:
            continue  # the resume moves it aside (checkpoint.restore_latest_good); the one before has the record
        return restored.config, (restored.data if has_data else None)
    return None


def _check(run_dir: Path, cfg: Mapping[str, Any], data: Mapping[str, Any], saved) -> list[str]:
    saved_config, saved_data = saved
    allowed = tuple((cfg.get("checkpoint") or {}).get("allow_changes") or ())
    changed = differences(saved_config, cfg)
    refused = [k for k in changed if not k.startswith(SAFE) and k not in allowed]
    if refused:
        shown = "; ".join(f"{k}: {_get(saved_config, k)!r} -> {_get(cfg, k)!r}" for k in refused[:6])
        raise RunDirError(
            f"{run_dir} holds a run with another config ({shown}). It is not resumed, and nothing in it "
            f"changed: choose another hydra.run.dir, run the original command again, or, for a change that "
            f"can continue this run, list it in checkpoint.allow_changes=[{','.join(refused)}]"
        )
    if saved_data is not None and saved_data != data:
        keys = [k for k in data if saved_data.get(k) != data[k]]
        raise RunDirError(f"{run_dir} holds a run trained on other data (its {', '.join(keys)} differ): the "
                          "data set changed since; choose another hydra.run.dir")  # fmt: skip
    accepted = [k for k in changed if not k.startswith(("logger.", "checkpoint."))]
    if accepted:
        log.warning("resuming %s with changed %s", run_dir,
                    ", ".join(f"{k}: {_get(saved_config, k)!r} -> {_get(cfg, k)!r}" for k in accepted))  # fmt: skip
    return accepted


def differences(a: Mapping[str, Any], b: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested configs."""
    keys = []
    for key in sorted(set(a) | set(b)):
        left, right = a.get(key), b.get(key)
        if isinstance(left, Mapping) and isinstance(right, Mapping):
            keys += differences(left, right, f"{prefix}{key}.")
        elif _normal(left) != _normal(right):
            keys.append(f"{prefix}{key}")
    return keys


def _normal(value: Any) -> Any:
    """JSON's view of a value (the saved config went through JSON: tuples are lists)."""
    return [_normal(v) for v in value] if isinstance(value, (list, tuple)) else value


def _get(cfg: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(cfg, Mapping):
            return None
        cfg = cfg.get(part)
    return cfg


def _keep_hydra(run_dir: Path) -> None:
    if (run_dir / ".hydra").is_dir():
        shutil.rmtree(run_dir / ACCEPTED, ignore_errors=True)
        shutil.copytree(run_dir / ".hydra", run_dir / ACCEPTED)


def _restore_hydra(run_dir: Path) -> None:
    """Hydra writes `.hydra/` before a run starts: a refused start puts back the accepted files."""
    if (run_dir / ACCEPTED).is_dir():
        shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
        shutil.copytree(run_dir / ACCEPTED, run_dir / ".hydra")

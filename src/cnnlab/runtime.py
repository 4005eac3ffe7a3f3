"""The process's JAX runtime, set up before its first computation.

`prepare(cfg)` is the first thing a cnnlab-train job does, in whatever process a launcher
gave it (this one, a Ray worker, a submitit or SLURM task):

- `parallel.cpu_devices=N`: the CPU split into N devices, as a pod's hosts hold several;
- `launcher.gpus_per_job` below 1: the job's share of a GPU that several jobs use at once.
  JAX preallocates 75% of a GPU's memory by default, so a second job on it would run out;
- `compilation_cache`: JAX's persistent compilation cache. A program compiled once is read
  back by every later run and by the other jobs of a sweep, in any process: jobs that differ
  only in their seed, or in a value the steps take as an argument, compile once.
"""

import logging
import os
from collections.abc import Mapping
from typing import Any

import jax
from jax.experimental.compilation_cache import compilation_cache

log = logging.getLogger(__name__)

# Programs that compile faster than this are not written: reading them back would cost as much.
MIN_COMPILE_SECONDS = 0.1
RUNTIME_SHARE = 0.9  # of a job's GPU share, for its arrays; the rest for XLA's own buffers


def prepare(cfg: Mapping[str, Any]) -> None:
    simulate_cpu_devices((cfg.get("parallel") or {}).get("cpu_devices"))
    share_gpu((cfg.get("launcher") or {}).get("gpus_per_job") or 0)
    use_compilation_cache(cfg.get("compilation_cache"))


def simulate_cpu_devices(count: int | None) -> None:
    """`parallel.cpu_devices=N` (debug=imagenet: 8). It must happen before JAX starts its backends."""
    if count and jax.config.jax_num_cpu_devices != count:
        jax.config.update("jax_num_cpu_devices", count)


def share_gpu(gpus_per_job: float) -> None:
    """Preallocate `gpus_per_job` of the GPU (less the runtime's part) where it is a fraction.
    XLA reads the variable when it creates the GPU client; a value the user set is kept."""
    if 0 < gpus_per_job < 1:
        os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{gpus_per_job * RUNTIME_SHARE:.3f}")


def use_compilation_cache(directory: str | None) -> None:
    """Read and write compiled programs in `directory` (`~` expanded); None or "" turns the cache off."""
    path = os.path.expanduser(str(directory)) if directory else None
    if jax.config.jax_compilation_cache_dir == path:
        return
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    # JAX opens its cache once per process: a later run here (a multirun job, a test) with another
    # directory would still use the first one.
    compilation_cache.reset_cache()
    if path:
        log.debug("compilation cache: %s", path)

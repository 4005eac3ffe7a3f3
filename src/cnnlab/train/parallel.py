"""Where the state and the batches live: `jit` over a device mesh, or classic `pmap`.

Both give the loop one interface, so the epoch loop never asks which is in use:

    par = parallel.create("jit")          # or "pmap"
    state = par.init(init_fn, seed)       # the TrainState, placed on every device
    train_step = par.compile_train(step)  # (state, batch) -> (state, metrics)
    batch = par.put(local_batch)          # this host's numpy batch -> global batch
    host = par.gather(state)              # one copy, for checkpoints and tests

`jit` (default): one program over a mesh of every device of every host. The
batch is split on the `data` axis, the state is replicated, buffers are
donated; XLA inserts the gradient all-reduce, and BatchNorm's batch mean is a
mean over the global batch, so the numbers equal a single device's.

`pmap`: the step runs per device on its slice of the batch and averages
gradients, batch statistics and metrics with `lax.pmean` over `batch`.

`jit` compiles every program with the XLA options of the backend policy in
force when the strategy is created (`backend.compiler_options()`; on the CPU
XLA's own convolutions, dots and reductions instead of its YNNPACK library
calls) and the initial state's one-shot program with
`backend.init_compiler_options()` (-O1 on the CPU). `pmap` takes no compiler
options and keeps XLA's defaults.
"""

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from cnnlab import backend

log = logging.getLogger(__name__)

AXIS = "batch"  # the pmap axis name that steps average over


def initialize_multihost(cfg: Mapping[str, Any]) -> None:
    """`jax.distributed.initialize()`: from the environment on TPU pods and SLURM,
    from `parallel.coordinator_address`, `num_processes` and `process_id` where given."""
    if not cfg.get("multihost"):
        return
    if jax.distributed.is_initialized():  # a later job of a multirun in the same process: once per process
        return
    explicit = {k: cfg.get(k) for k in ("coordinator_address", "num_processes", "process_id")}
    jax.distributed.initialize(**{k: v for k, v in explicit.items() if v is not None})
    log.info("process %d of %d, %d local devices", jax.process_index(), jax.process_count(), jax.local_device_count())


def check_batch_size(name: str, batch_size: int) -> None:
    """A global batch must split evenly over devices and hosts."""
    devices, hosts = jax.device_count(), jax.process_count()
    if batch_size % devices or batch_size % hosts:
        raise ValueError(
            f"{name}={batch_size} does not divide over {devices} devices ({hosts} hosts): "
            f"use a multiple of {devices}"
        )


@dataclasses.dataclass(frozen=True)
class Jit:
    mesh: Mesh
    # For every step program it compiles, and for the initial state's; XLA's defaults where None.
    compiler_options: dict[str, Any] | None = dataclasses.field(default_factory=backend.compiler_options)
    init_compiler_options: dict[str, Any] | None = dataclasses.field(default_factory=backend.init_compiler_options)

    @property
    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())

    @property
    def batch_sharding(self) -> NamedSharding:
        return NamedSharding(self.mesh, P("data"))

    def init(self, init_fn: Callable[[jax.Array], Any], seed: int) -> Any:
        # Shapes first, then one jitted init that writes each array where it lives:
        # nothing is materialized twice.
        abstract = jax.eval_shape(init_fn, np.int32(seed))
        shardings = jax.tree.map(lambda _: self.replicated, abstract)
        return jax.jit(init_fn, out_shardings=shardings, compiler_options=self.init_compiler_options)(np.int32(seed))

    def compile_train(self, step: Callable) -> Callable:
        return jax.jit(step, out_shardings=(self.replicated, self.replicated), donate_argnums=0,
                       compiler_options=self.compiler_options)  # fmt: skip

    def compile_eval(self, step: Callable) -> Callable:
        return jax.jit(step, out_shardings=self.replicated, compiler_options=self.compiler_options)

    def put(self, local_batch: Mapping[str, np.ndarray], batch_axis: int = 0) -> dict[str, jax.Array]:
        spec = P(*([None] * batch_axis), "data")
        sharding = NamedSharding(self.mesh, spec)
        if jax.process_count() == 1:  # the local batch is the global one: one batched copy, 50-100 us sooner
            return jax.device_put(dict(local_batch), sharding)
        return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}

    def place(self, host_state: Any) -> Any:
        return jax.device_put(host_state, self.replicated)

    def gather(self, state: Any) -> Any:
        return state  # already one logical copy; orbax saves it as it is

    def metrics(self, metrics: Any) -> Any:
        return metrics

    axis_name = None


@dataclasses.dataclass(frozen=True)
class Pmap:
    devices: tuple

    def init(self, init_fn: Callable[[jax.Array], Any], seed: int) -> Any:
        return self.place(jax.jit(init_fn)(np.int32(seed)))

    def compile_train(self, step: Callable) -> Callable:
        return jax.pmap(step, axis_name=AXIS, devices=self.mapped, donate_argnums=0)

    def compile_eval(self, step: Callable) -> Callable:
        return jax.pmap(step, axis_name=AXIS, devices=self.mapped)

    @property
    def mapped(self) -> tuple | None:
        """JAX's multi-process contract: pmap spans every process's devices (its collectives reduce
        over all of them) while each process feeds and reads its local ones, `self.devices`."""
        return None if jax.process_count() > 1 else self.devices

    def put(self, local_batch: Mapping[str, np.ndarray], batch_axis: int = 0) -> dict[str, jax.Array]:
        # (..., B, ...) -> (D, ..., B/D, ...): device d gets the d-th contiguous slice,
        # the same examples that the `jit` mesh gives device d.
        n = len(self.devices)

        def split(x):
            x = x.reshape(*x.shape[:batch_axis], n, x.shape[batch_axis] // n, *x.shape[batch_axis + 1 :])
            return np.moveaxis(x, batch_axis, 0)

        return self._per_device({k: split(v) for k, v in local_batch.items()})

    def place(self, host_state: Any) -> Any:
        n = len(self.devices)
        return self._per_device(jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n, *np.shape(x))), host_state))

    def _per_device(self, tree: Any) -> Any:
        """Arrays with a leading (D,) axis, row d on device d: what pmap takes."""
        return jax.device_put(tree, NamedSharding(Mesh(np.array(self.devices), (AXIS,)), P(AXIS)))

    def gather(self, state: Any) -> Any:
        return jax.tree.map(lambda x: x[0], state)

    def metrics(self, metrics: Any) -> Any:
        return jax.tree.map(lambda x: x[0], metrics)  # already averaged over devices

    axis_name = AXIS


def create(name: str):
    """The `parallel=jit|pmap` strategy over every device."""
    if name == "jit":
        return Jit(Mesh(np.array(jax.devices()), ("data",)))
    if name == "pmap":
        return Pmap(tuple(jax.local_devices()))
    raise ValueError(f"parallel.name must be jit or pmap, got {name!r}")

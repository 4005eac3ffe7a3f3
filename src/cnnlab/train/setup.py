"""Everything a run builds once from its config, before the first step: the `Job`.

`build(cfg, par)` loads the data, creates the model and the optimizer, applies
a transfer plan (pretrained weights, frozen layers, a fine-tune phase) to all
three, checks what can be checked before compiling and wraps the steps for
the parallel strategy `par`. `build(cfg, par, variants=grid)` builds the same
job for K learning-rate x seed variants trained side by side (`sweep=vmap`):
the state gets a leading (K,) axis and each step is `jax.vmap`ped over it.
The engine (loop.py) then only iterates, the same way for one variant or K.
"""

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnnlab import backend, data, models, optim, transfer
from cnnlab.train import steps
from cnnlab.train import state as train_state
from cnnlab.train.metrics import RunningMeans

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One of a vmap sweep's variants: its place on the state's leading axis, its rate and seed."""

    index: int  # position on the (K,) axis, and the name of its job directory
    learning_rate: float
    seed: int

    @property
    def label(self) -> str:
        return f"lr={self.learning_rate:g} seed={self.seed}"


@dataclasses.dataclass(frozen=True)
class Phase:
    """The compiled steps of one training phase, from `first_epoch` on (a fine-tune phase has its own)."""

    first_epoch: int
    train_step: Callable  # (state, batch) -> (state, metrics)
    multi_step: Callable  # steps_per_call steps over (S, B, ...) batches; metrics (S,), or (K, S) for variants


@dataclasses.dataclass(frozen=True)
class Job:
    dataset: data.Dataset
    model: nn.Module
    phases: tuple[Phase, ...]
    eval_step: Callable  # compiled: (state, padded batch) -> sums, () or (K,) each
    init: Callable  # par -> the initial state on the devices
    running: RunningMeans
    add: Callable  # compiled: (running sums, one call's metrics) -> sums, per variant when there are variants
    learning_rate: Callable[[int], float]  # the scheduled rate of the update at a step (for plots)
    steps_per_epoch: int
    epochs: int  # trainer.epochs, plus transfer.finetune.epochs
    host_batch_size: int  # this host's share of trainer.batch_size
    host_eval_batch_size: int
    param_count: int  # of one variant
    variants: tuple[Variant, ...] | None = None  # None: a single run, whose state has no variant axis
    start: Callable | None = None  # host state -> state with the pretrained weights, for a fresh transfer run

    @property
    def k(self) -> int:
        return 1 if self.variants is None else len(self.variants)

    def phase(self, epoch: int) -> Phase:
        return [p for p in self.phases if p.first_epoch <= epoch][-1]

    def unstack(self, tree: Any) -> list[Any]:
        """A host tree as one tree per variant: itself for a single run, its rows for variants."""
        if self.variants is None:
            return [tree]
        return [jax.tree.map(lambda x, i=i: x[i], tree) for i in range(self.k)]

    def stack_sums(self, per_variant: Sequence[Mapping[str, float]]) -> dict:
        """Running sums saved per variant (floats) as `add` takes them."""
        if self.variants is None:
            return dict(per_variant[0])
        return {key: np.asarray([s[key] for s in per_variant], np.float32) for key in per_variant[0]}

    def check_labels(self, batch: Mapping[str, np.ndarray], split: str, step: int | None) -> None:
        """Labels outside [0, num_classes) would index garbage logits: refuse them by name."""
        labels = batch["label"][batch["mask"]] if "mask" in batch else batch["label"]
        bad = labels[(labels < 0) | (labels >= self.dataset.num_classes)]
        if bad.size:
            where = f" at step {step}" if step is not None else ""
            raise ValueError(
                f"label {int(bad[0])} in the {split} data{where} is outside [0, {self.dataset.num_classes}): "
                f"the data set declares {self.dataset.num_classes} classes"
            )


def build(cfg: Mapping[str, Any], par, variants: Sequence[Variant] | None = None) -> Job:
    trainer = cfg["trainer"]
    dataset = load_data(cfg)
    hosts = jax.process_count()
    host_batch_size = trainer["batch_size"] // hosts
    steps_per_epoch = check_trainer(trainer, len(dataset.splits["train"]), hosts)
    model, input_shape = create_model(cfg, dataset, par)

    plan = transfer.prepare(cfg.get("transfer"), model=model, input_shape=input_shape)
    if plan is not None:  # a setup-time transform of the model, the data's normalization and (below) the optimizer
        if variants is not None:  # its frozen layers and fine-tune phase are not vmapped
            raise ValueError("sweep=vmap does not combine with transfer; sweep its learning rates with -m instead")
        model, dataset = plan.model, source_normalized(dataset, plan)  # the model with the new head's hidden layers

    tx_phases, schedule = optimizer_phases(cfg, plan, model, steps_per_epoch)
    train_steps = [make_train_step(cfg, phase, dataset.num_classes, par) for phase in tx_phases]
    eval_step = steps.make_eval_step(model, num_classes=dataset.num_classes, axis_name=par.axis_name,
                                     transform=data.augment.build_eval(cfg.get("augment")))  # fmt: skip
    init_fn = train_state.init_fn(model, tx_phases[0].tx, input_shape)
    abstract_state = jax.eval_shape(init_fn, np.int32(cfg["seed"]))
    running = RunningMeans(metric_names(train_steps[0], abstract_state, input_shape, par.axis_name),
                           skip_nonfinite=trainer["skip_nonfinite"],
                           limits={"loss": trainer.get("max_loss"), "grad_norm": trainer.get("max_grad_norm")})  # fmt: skip
    if variants is None:
        multi_steps = [steps.make_multi_step(step) for step in train_steps]
        init, add = (lambda par: par.init(init_fn, cfg["seed"])), running.add
    else:  # every variant on the same batch; metrics (K,), or (K, S) over a call's S steps
        train_steps = [jax.vmap(step, in_axes=(0, None)) for step in train_steps]
        multi_steps = [variant_major(steps.make_multi_step(step)) for step in train_steps]
        eval_step = jax.vmap(eval_step, in_axes=(0, None))
        init, add = variant_init(model, tx_phases[0].tx, input_shape, variants), jax.jit(jax.vmap(running.add))
    boundaries = [0, trainer["epochs"]]  # the fine-tune phase, if any, starts after trainer.epochs
    return Job(
        dataset=dataset,
        model=model,
        phases=tuple(Phase(first, par.compile_train(step), par.compile_train(multi))
                     for first, step, multi in zip(boundaries, train_steps, multi_steps)),  # fmt: skip
        eval_step=par.compile_eval(eval_step),
        init=init,
        running=running,
        add=add,
        learning_rate=schedule,
        steps_per_epoch=steps_per_epoch,
        epochs=trainer["epochs"] + (plan.finetune_epochs if plan else 0),
        host_batch_size=host_batch_size,
        host_eval_batch_size=trainer["eval_batch_size"] // hosts,
        param_count=train_state.count_params(abstract_state.params),
        variants=None if variants is None else tuple(variants),
        start=(lambda state: plan.start(state, tx_phases[0].tx)) if plan else None,
    )


def run_linear_probe(cfg: Mapping[str, Any], par, run_dir) -> dict:
    """`transfer=linear_probe`: a logistic regression on the frozen base's features, fitted
    instead of trained, so no optimizer and no steps are built."""
    from cnnlab.transfer import linear_probe  # scikit-learn, only for this strategy

    dataset = load_data(cfg)
    model, input_shape = create_model(cfg, dataset, par)
    plan = transfer.prepare(cfg["transfer"], model=model, input_shape=input_shape)
    return linear_probe.run(plan.base, plan.pretrained.variables, source_normalized(dataset, plan), cfg["transfer"],
                            run_dir, batch_size=cfg["trainer"]["eval_batch_size"] // jax.process_count())  # fmt: skip


def source_normalized(dataset: data.Dataset, plan) -> data.Dataset:
    """The target data normalized as the pretrained network saw its own (`transfer.normalization=source`)."""
    if not plan.normalization:
        return dataset
    return dataclasses.replace(dataset, normalization=data.Normalization.from_dict(plan.normalization))


def load_data(cfg: Mapping[str, Any]) -> data.Dataset:
    return data.load(cfg["data"])


def check_trainer(trainer: Mapping[str, Any], train_size: int, hosts: int) -> int:
    """The steps per epoch, after the checks of the trainer keys that need the data's size."""
    steps_per_epoch = (train_size // hosts) // (trainer["batch_size"] // hosts)
    if steps_per_epoch == 0:
        raise ValueError(
            f"trainer.batch_size={trainer['batch_size']} is larger than the training set ({train_size} examples)"
        )
    if trainer["steps_per_call"] < 1:
        raise ValueError(f"trainer.steps_per_call must be >= 1, got {trainer['steps_per_call']}")
    if trainer["dtype"] not in DTYPES:
        raise ValueError(f"trainer.dtype must be one of {', '.join(DTYPES)}, got {trainer['dtype']!r}")
    return steps_per_epoch


def create_model(cfg: Mapping[str, Any], dataset: data.Dataset, par) -> tuple[nn.Module, tuple[int, ...]]:
    """The configured model for the data's classes, and the per-example input shape."""
    options = dict(cfg["model"])
    name, input_shape = options.pop("name"), options.pop("input_shape")
    # bf16 compute, fp32 params and optimizer state: the params' dtype stays the default.
    model = models.create(name, num_classes=dataset.num_classes, dtype=DTYPES[cfg["trainer"]["dtype"]], **options)
    return sync_batch_norm(model, par.axis_name), tuple(input_shape or dataset.image_shape)


def sync_batch_norm(model: nn.Module, axis_name: str | None) -> nn.Module:
    """Under pmap, BatchNorm averages its batch statistics over devices (as flax's
    ImageNet example does), so the step equals one device's on the global batch."""
    has_batch_norm = any(field.name == "bn_axis_name" for field in dataclasses.fields(model))
    return model.clone(bn_axis_name=axis_name) if axis_name and has_batch_norm else model


def optimizer_phases(cfg: Mapping[str, Any], plan, model: nn.Module, steps_per_epoch: int):
    """The training phases (one, or two with a fine-tune phase) and the run's learning rate by step."""
    l1, l2 = cfg.get("l1", 0.0), cfg.get("l2", 0.0)

    def build_tx(lr_scale: float = 1.0):
        optimizer = {**cfg["optimizer"], "learning_rate": cfg["optimizer"]["learning_rate"] * lr_scale}
        return optim.build(optimizer, cfg.get("schedule"), l1=l1, l2=l2, steps_per_epoch=steps_per_epoch)

    if plan is not None:  # frozen parameters and BatchNorm layers, and the fine-tune phase
        phases, schedule = plan.phases(build_tx, boundary=cfg["trainer"]["epochs"] * steps_per_epoch)
    else:
        tx, schedule = build_tx()
        phases = [transfer.Phase(tx, model, optim.current_learning_rate)]
    if cfg["trainer"]["skip_nonfinite"]:
        finite = lambda tx: optax.apply_if_finite(tx, max_consecutive_errors=np.iinfo(np.int32).max)  # noqa: E731
        phases = [phase._replace(tx=finite(phase.tx)) for phase in phases]
    return phases, schedule


def make_train_step(cfg: Mapping[str, Any], phase, num_classes: int, par) -> Callable:
    trainer, l1, l2 = cfg["trainer"], cfg.get("l1", 0.0), cfg.get("l2", 0.0)
    return steps.make_train_step(
        phase.model,
        phase.tx,
        num_classes=num_classes,
        learning_rate=phase.learning_rate,
        label_smoothing=trainer["label_smoothing"],
        aux_loss_weight=trainer["aux_loss_weight"],
        penalty=optim.penalty(l1, l2) if (l1 or l2) else None,
        augment=data.augment.build(cfg.get("augment")),
        axis_name=par.axis_name,
    )


def variant_major(multi_step: Callable) -> Callable:
    """A vmapped multi-step's metrics as (K, S), variant first, as `add` takes them."""

    def step(state, batches):
        state, metrics = multi_step(state, batches)  # metrics (S, K)
        return state, jax.tree.map(lambda x: jnp.moveaxis(x, 0, 1), metrics)

    return step


def variant_init(model: nn.Module, tx: optax.GradientTransformation, input_shape, variants: Sequence[Variant]):
    """`par -> state`: each variant's initial state from its seed, with its own peak rate in the
    optimizer state, stacked on a leading (K,) axis. One program, compiled once with the seed and
    rate as arguments (a vmapped init compiled about twice as long, for no gain at this size)."""

    def one(seed, rate):
        state = train_state.init_fn(model, tx, input_shape)(seed)
        return state.replace(opt_state=optim.schedules.set_peak_rate(state.opt_state, rate))

    def init(par):
        compiled = jax.jit(one, compiler_options=backend.init_compiler_options())
        states = jax.device_get([compiled(np.int32(v.seed), np.float32(v.learning_rate)) for v in variants])
        return par.place(jax.tree.map(lambda *xs: np.stack(xs), *states))  # (K, ...) each

    return init


def metric_names(train_step, abstract_state, input_shape, axis_name: str | None) -> list[str]:
    """The metrics the step reports and the epoch averages (not `step`, not `lr`)."""
    batch = {
        "image": jax.ShapeDtypeStruct((2, *input_shape), jnp.float32),
        "label": jax.ShapeDtypeStruct((2,), jnp.int32),
    }
    if axis_name is not None:  # trace pmap's collectives under a vmap of one device
        train_step = jax.vmap(train_step, axis_name=axis_name, in_axes=(None, 0))
        batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct((1, *x.shape), x.dtype), batch)
    _, metrics = jax.eval_shape(train_step, abstract_state, batch)
    return [k for k in metrics if k not in ("step", "lr")]

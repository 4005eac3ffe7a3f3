"""Everything a run builds once from its config, before the first step.

`build(cfg, par)` loads the data, creates the model and the optimizer,
checks what can be checked before compiling, and compiles the steps for the
parallel strategy `par`. The loop then only iterates.
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnnlab import data, models, optim, transfer
from cnnlab.train import steps
from cnnlab.train import state as train_state
from cnnlab.train.metrics import RunningMeans

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class Job:
    dataset: data.Dataset
    model: nn.Module
    learning_rate: Callable[[int], float]  # the scheduled rate of the update at a step
    init_state: Callable[[], train_state.TrainState]
    train_step: Callable  # compiled: (state, batch) -> (state, metrics)
    multi_step: Callable  # compiled: steps_per_call steps over (K, B, ...) batches
    eval_step: Callable  # compiled: (state, padded batch) -> sums
    running: RunningMeans
    host_batch_size: int  # this host's share of trainer.batch_size
    host_eval_batch_size: int
    param_count: int
    epochs: int = 0  # trainer.epochs, plus transfer.finetune.epochs
    finetune: tuple | None = None  # (first epoch, train_step, multi_step) of the fine-tune phase
    transfer_plan: transfer.Plan | None = None  # strategy, pretrained weights, frozen parameters
    start: Callable | None = None  # host state -> state with the pretrained weights, for a fresh run

    def steps(self, epoch: int) -> tuple[Callable, Callable]:
        """The compiled (train_step, multi_step) of the phase that `epoch` belongs to."""
        if self.finetune is not None and epoch >= self.finetune[0]:
            return self.finetune[1], self.finetune[2]
        return self.train_step, self.multi_step

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


def build(cfg: Mapping[str, Any], par) -> Job:
    trainer = cfg["trainer"]
    dataset = transfer.restrict(data.load(cfg["data"]), cfg["data"])  # data.classes, data.train_per_class
    hosts = jax.process_count()
    host_batch_size = trainer["batch_size"] // hosts
    train_size = len(dataset.splits["train"])
    steps_per_epoch = (train_size // hosts) // host_batch_size
    if steps_per_epoch == 0:
        raise ValueError(
            f"trainer.batch_size={trainer['batch_size']} is larger than the training set ({train_size} examples)"
        )
    if trainer["steps_per_call"] < 1:
        raise ValueError(f"trainer.steps_per_call must be >= 1, got {trainer['steps_per_call']}")
    if trainer["dtype"] not in DTYPES:
        raise ValueError(f"trainer.dtype must be one of {', '.join(DTYPES)}, got {trainer['dtype']!r}")

    model_options = dict(cfg["model"])
    model_name, input_shape = model_options.pop("name"), model_options.pop("input_shape")
    # bf16 compute, fp32 params and optimizer state: the params' dtype stays the default.
    model = models.create(model_name, num_classes=dataset.num_classes, dtype=DTYPES[trainer["dtype"]], **model_options)
    model = sync_batch_norm(model, par.axis_name)
    input_shape = tuple(input_shape or dataset.image_shape)
    plan = transfer.prepare(cfg.get("transfer"), model=model, input_shape=input_shape)
    if plan is not None:
        model = plan.model  # with the new head's hidden layers
        if plan.normalization:  # the target data as the pretrained network saw its own
            dataset = dataclasses.replace(dataset, normalization=data.Normalization.from_dict(plan.normalization))

    phases, schedule = optimizer_phases(cfg, plan, model, steps_per_epoch)
    train_steps = [make_train_step(cfg, phase, dataset.num_classes, par) for phase in phases]
    init = train_state.init_fn(model, phases[0].tx, input_shape, cfg["seed"])
    abstract_state = jax.eval_shape(init)
    compiled = [(par.compile_train(step), par.compile_train(steps.make_multi_step(step))) for step in train_steps]
    return Job(
        dataset=dataset,
        model=model,
        learning_rate=schedule,
        init_state=init,
        train_step=compiled[0][0],
        multi_step=compiled[0][1],
        eval_step=par.compile_eval(
            steps.make_eval_step(model, num_classes=dataset.num_classes, axis_name=par.axis_name,
                                 transform=data.augment.build_eval(cfg.get("augment")))  # fmt: skip
        ),
        running=RunningMeans(metric_names(train_steps[0], abstract_state, input_shape, par.axis_name),
                             skip_nonfinite=trainer["skip_nonfinite"]),  # fmt: skip
        host_batch_size=host_batch_size,
        host_eval_batch_size=trainer["eval_batch_size"] // hosts,
        param_count=train_state.count_params(abstract_state.params),
        epochs=trainer["epochs"] + (plan.finetune_epochs if plan else 0),
        finetune=(trainer["epochs"], *compiled[1]) if len(compiled) > 1 else None,
        transfer_plan=plan,
        start=(lambda state: plan.start(state, phases[0].tx)) if plan else None,
    )


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
        rate = lambda step, opt_state: schedule(step) * optim.schedules.plateau_scale(opt_state)  # noqa: E731
        phases = [transfer.Phase(tx, model, rate)]
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

"""Pure training and evaluation steps.

`make_train_step(...)` returns `train_step(state, batch) -> (state, metrics)`
and `make_eval_step(...)` returns `eval_step(state, batch) -> sums`. Neither
touches anything outside its arguments: all randomness comes from
`fold_in(state.rng, state.step)`, so a run is reproducible from its seed and
resumable from any checkpoint. Under `pmap` (`axis_name` set) gradients, batch
statistics and metrics are averaged over devices; under `jit` the compiler
does the same from the shardings.
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from cnnlab import optim
from cnnlab.train.state import TrainState


def make_train_step(
    model: nn.Module,
    tx: optax.GradientTransformation,
    *,
    num_classes: int,
    learning_rate: Callable[[optax.OptState], jax.Array] = optim.current_learning_rate,
    label_smoothing: float = 0.0,
    aux_loss_weight: float = 0.3,
    penalty: Callable | None = None,
    augment: Callable | None = None,
    axis_name: str | None = None,
):
    """`learning_rate(opt_state)`, the rate of the update that produced `opt_state`, is only
    read for the metrics (`optim.build`'s optimizers keep it in their state); `penalty(params)` is the
    regularization term that the optimizer's L1/L2 transforms differentiate, reported
    apart from the data loss; `augment(key, images)` runs on device, training only."""

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        rng = jax.random.fold_in(state.rng, state.step)
        images = batch["image"]  # (B, H, W, C)
        if augment is not None:
            images = augment(jax.random.fold_in(rng, 1), images)

        def loss_fn(params):
            outputs, updates = model.apply(
                {"params": params, "batch_stats": state.batch_stats},
                images,
                train=True,
                rngs={"dropout": rng},
                mutable=["batch_stats"],
            )
            # GoogLeNet returns (logits, aux_logits) in training; the auxiliary
            # classifiers' losses are weighted by 0.3 as in the paper.
            logits, aux_logits = outputs if isinstance(outputs, tuple) else (outputs, ())
            loss = cross_entropy(logits, batch["label"], num_classes, label_smoothing).mean()
            for aux in aux_logits:
                loss += aux_loss_weight * cross_entropy(aux, batch["label"], num_classes, label_smoothing).mean()
            return loss, (logits, updates.get("batch_stats", state.batch_stats))

        (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        if axis_name is not None:
            loss, grads, batch_stats = jax.lax.pmean((loss, grads, batch_stats), axis_name)
        # A plateau schedule reads the loss (`value`); the other transforms ignore it.
        updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss)
        params = optax.apply_updates(state.params, updates)
        # A non-finite batch must not poison the running statistics either (for
        # trainer.skip_nonfinite; without it the run stops at this step anyway).
        batch_stats = jax.tree.map(lambda new, old: jnp.where(jnp.isfinite(loss), new, old), batch_stats,
                                   state.batch_stats)  # fmt: skip

        metrics = {
            "loss": loss,
            **accuracies(logits, batch["label"], num_classes, jnp.mean),
            "lr": learning_rate(opt_state),
            "grad_norm": optax.global_norm(grads),
            "param_norm": optax.global_norm(params),
            "update_norm": optax.global_norm(updates),
        }
        if penalty is not None:
            metrics["penalty"] = penalty(state.params)
        if axis_name is not None:
            metrics = jax.lax.pmean(metrics, axis_name)
        metrics["step"] = state.step  # which update these are, to name a non-finite one
        state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats, opt_state=opt_state)
        return state, metrics

    return train_step


def make_multi_step(train_step: Callable) -> Callable:
    """K steps in one compiled call: `batches` carry a leading (K,) axis.

    For small models the host's dispatch, not the arithmetic, bounds the step
    rate; `lax.scan` runs the K steps without returning to Python.
    """

    def multi_step(state: TrainState, batches: dict) -> tuple[TrainState, dict]:
        return jax.lax.scan(train_step, state, batches)  # metrics: (K,) each

    return multi_step


def make_eval_step(model: nn.Module, *, num_classes: int, transform: Callable | None = None,
                   axis_name: str | None = None):  # fmt: skip
    """`transform(images)` runs on device before the model (e.g. ImageNet's center crop)."""

    def eval_step(state: TrainState, batch: dict) -> dict:
        """Sums over the real (unmasked) examples of a padded batch."""
        images = batch["image"] if transform is None else transform(batch["image"])
        logits = model.apply({"params": state.params, "batch_stats": state.batch_stats}, images, train=False)
        mask = batch["mask"]  # (B,)
        masked_sum = lambda x: jnp.sum(jnp.where(mask, x, 0))  # noqa: E731
        losses = cross_entropy(logits, batch["label"], num_classes, 0.0)
        sums = {"loss": masked_sum(losses), "count": mask.sum(), **accuracies(logits, batch["label"], num_classes, masked_sum)}
        return jax.lax.psum(sums, axis_name) if axis_name is not None else sums

    return eval_step


def cross_entropy(logits: jax.Array, labels: jax.Array, num_classes: int, label_smoothing: float) -> jax.Array:
    """(B,) softmax cross-entropy in float32, with optional label smoothing."""
    logits = logits.astype(jnp.float32)  # bf16 logits lose too much in the log-sum-exp
    if label_smoothing == 0:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), label_smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def accuracies(logits: jax.Array, labels: jax.Array, num_classes: int, reduce) -> dict:
    """top-1, and top-5 where there are more than 5 classes, reduced over the batch."""
    out = {"top1": reduce(top_k_correct(logits, labels, 1))}
    if num_classes > 5:
        out["top5"] = reduce(top_k_correct(logits, labels, 5))
    return out


def top_k_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
    """(B,) float in [0, 1]: the chance that the label is among the top k when ties are
    broken at random; 0 for a row with any non-finite logit.

    With h classes scoring strictly higher than the label and t scoring the same
    (the label included), that chance is clip((k - h) / t, 0, 1): 1 or 0 without
    ties; k / C for C all-equal logits (chance, not a perfect score). Unlike
    tf.math.in_top_k, which counts every tie straddling the boundary as in,
    this never rewards a model for giving up, and it does not depend on how a
    sort would order equal logits. A NaN or infinite logit never counts as
    correct: a diverged model scores 0.
    """
    label_logit = jnp.take_along_axis(logits, labels[:, None], axis=-1)  # (B, 1)
    higher = jnp.sum(logits > label_logit, axis=-1)  # (B,)
    tied = jnp.sum(logits == label_logit, axis=-1)  # (B,), >= 1 where the label's logit is finite
    chance = jnp.clip((k - higher) / jnp.maximum(tied, 1), 0.0, 1.0)
    finite = jnp.all(jnp.isfinite(logits), axis=-1)
    return jnp.where(finite, chance, 0.0).astype(jnp.float32)

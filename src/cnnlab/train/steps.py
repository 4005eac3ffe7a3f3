"""Pure training and evaluation steps.

`make_train_step(model, tx)` returns `train_step(state, batch) -> (state, metrics)`;
`make_eval_step(model)` returns `eval_step(state, batch) -> sums`. Neither
touches anything outside its arguments, so both compile once under `jax.jit`.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from cnnlab.train.state import TrainState


def make_train_step(model: nn.Module, tx: optax.GradientTransformation, num_classes: int):
    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        # Dropout and other randomness: a fresh key per step, reproducible on resume.
        rng = jax.random.fold_in(state.rng, state.step)

        def loss_fn(params):
            logits, updates = model.apply(
                {"params": params, "batch_stats": state.batch_stats},
                batch["image"],
                train=True,
                rngs={"dropout": rng},
                mutable=["batch_stats"],
            )  # logits: (B, num_classes)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
            return loss, (logits, updates)

        (loss, (logits, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        param_updates, opt_state = tx.update(grads, state.opt_state, state.params)
        state = state.replace(
            step=state.step + 1,
            params=optax.apply_updates(state.params, param_updates),
            batch_stats=updates.get("batch_stats", state.batch_stats),
            opt_state=opt_state,
        )
        metrics = {"loss": loss, **accuracies(logits, batch["label"], num_classes, jnp.mean)}
        return state, metrics

    return train_step


def make_eval_step(model: nn.Module, num_classes: int):
    def eval_step(state: TrainState, batch: dict) -> dict:
        """Sums over the real (unmasked) examples of a padded batch."""
        logits = model.apply({"params": state.params, "batch_stats": state.batch_stats}, batch["image"], train=False)
        mask = batch["mask"]
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        masked_sum = lambda x: jnp.sum(jnp.where(mask, x, 0))  # noqa: E731
        return {"loss": masked_sum(losses), "count": mask.sum(), **accuracies(logits, batch["label"], num_classes, masked_sum)}

    return eval_step


def accuracies(logits: jax.Array, labels: jax.Array, num_classes: int, reduce) -> dict:
    """top-1, and top-5 where there are more than 5 classes, reduced over the batch."""
    out = {"top1": reduce(top_k_correct(logits, labels, 1))}
    if num_classes > 5:
        out["top5"] = reduce(top_k_correct(logits, labels, 5))
    return out


def top_k_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
    """(B,) float: 1 where fewer than k classes score strictly higher than the label.

    Ties count in the label's favour, so the result does not depend on how a
    sort would order equal logits.
    """
    label_logit = jnp.take_along_axis(logits, labels[:, None], axis=-1)  # (B, 1)
    higher = jnp.sum(logits > label_logit, axis=-1)  # (B,)
    return (higher < k).astype(jnp.float32)

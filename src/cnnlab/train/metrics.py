"""Running sums of step metrics, kept on the device and read back only when needed.

Reading a value from the device waits for it; summing there lets the host
queue steps ahead and look at the numbers only for the progress bar and at
the end of an epoch. The sums are plain floats in checkpoints, so a resumed
epoch reports the same means as an uninterrupted one.
"""

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np


class RunningMeans:
    def __init__(self, names: Sequence[str], *, skip_nonfinite: bool, limits: Mapping[str, float] | None = None):
        self.names = tuple(names)  # the metrics to average, e.g. loss, top1, grad_norm
        self.skip_nonfinite = skip_nonfinite
        # trainer.max_loss, trainer.max_grad_norm: a run exploding while still finite is stopped
        self.limits = {name: limit for name, limit in (limits or {}).items() if limit is not None}
        self.add = jax.jit(self._add)

    def zero(self) -> dict:
        return {"count": 0.0, "skipped": 0.0, "first_nonfinite": float("inf"), **{k: 0.0 for k in self.names}}

    def _add(self, sums: dict, metrics: dict) -> dict:
        """`sums` plus one call's metrics: scalars, or (K,) under steps_per_call.

        A step whose loss is not finite is counted apart (`skipped`), and the
        first one's step number is kept so that it can be named.
        """
        metrics = jax.tree.map(jnp.atleast_1d, metrics)
        finite = jnp.isfinite(metrics["loss"])
        out = {k: sums[k] + jnp.sum(jnp.where(finite, metrics[k], 0.0)) for k in self.names}
        out["count"] = sums["count"] + jnp.sum(finite)
        out["skipped"] = sums["skipped"] + jnp.sum(~finite)
        first = jnp.min(jnp.where(finite, jnp.inf, metrics["step"].astype(jnp.float32)))
        out["first_nonfinite"] = jnp.minimum(sums["first_nonfinite"], first)
        return out

    def means(self, sums: dict, *, epoch: int) -> dict:
        """The means so far; a non-finite loss stops the run, naming the step, unless skipped."""
        host = as_floats(sums)
        if np.isfinite(host["first_nonfinite"]) and not self.skip_nonfinite:
            raise FloatingPointError(
                f"non-finite loss at step {int(host['first_nonfinite'])} (epoch {epoch + 1}); the checkpoints "
                "written before it are kept. Lower the learning rate, or set trainer.skip_nonfinite=true "
                "to skip such updates"
            )
        count = max(host["count"], 1.0)
        means = {k: host[k] / count for k in self.names}
        means["skipped_steps"] = int(host["skipped"])
        for name, limit in self.limits.items():
            if means.get(name, 0.0) > limit:
                raise FloatingPointError(
                    f"the mean {name} of epoch {epoch + 1} so far is {means[name]:.3g}, above "
                    f"trainer.max_{name}={limit:g}: the run diverges. The checkpoints written before are kept; "
                    "lower the learning rate"
                )
        return means


def as_floats(sums: dict) -> dict:
    """Python floats: JSON-able, and exact for float32 values."""
    return {k: float(v) for k, v in jax.device_get(sums).items()}

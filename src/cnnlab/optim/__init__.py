"""Optimizers as optax gradient transformations, usable from any JAX code.

    from cnnlab import optim
    tx = optim.create("adam", learning_rate=1e-3)        # or optim.adam(1e-3)
    tx = optax.chain(optim.l2(1e-4), optim.nesterov(0.05, beta=0.9))

The lecture's rules are `sgd`, `momentum`, `nesterov`, `adagrad`, `rmsprop`,
`adadelta` and `adam` (each a `scale_by_*` transform chained with the learning
rate); `optax/<name>` in `create` gives optax's own. `build` is the training
loop's single entry: config dicts in, transform and learning-rate schedule out.
"""

from cnnlab.optim import schedules
from cnnlab.optim.aliases import adadelta, adagrad, adam, momentum, nesterov, rmsprop, sgd
from cnnlab.optim.config import SCHEDULE_NAMES, build
from cnnlab.optim.registry import create, names
from cnnlab.optim.regularizers import kernels_only, l1, l2, penalty
from cnnlab.optim.schedules import current_learning_rate
from cnnlab.optim.transforms import (
    AdadeltaState,
    AdagradState,
    AdamState,
    MomentumState,
    NesterovState,
    RmspropState,
    scale_by_adadelta,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_momentum,
    scale_by_nesterov,
    scale_by_rmsprop,
)

__all__ = [
    "AdadeltaState",
    "AdagradState",
    "AdamState",
    "MomentumState",
    "NesterovState",
    "RmspropState",
    "SCHEDULE_NAMES",
    "adadelta",
    "adagrad",
    "adam",
    "build",
    "create",
    "current_learning_rate",
    "kernels_only",
    "l1",
    "l2",
    "momentum",
    "names",
    "nesterov",
    "penalty",
    "rmsprop",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_momentum",
    "scale_by_nesterov",
    "scale_by_rmsprop",
    "schedules",
    "sgd",
]

"""Early stopping: stop when the monitored val metric has not improved for `patience` epochs.

The lecture's recipe: "stop iterations; load previously saved optimal model
weights". The loop restores the best checkpoint at the end; this object only
keeps the record, which is saved in every checkpoint so that a resumed run
stops where an uninterrupted one would.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

MODES = {"val_loss": ("loss", -1), "val_top1": ("top1", +1)}  # metric, sign of "better"


@dataclasses.dataclass
class EarlyStopping:
    monitor: str = "val_loss"
    patience: int | None = None  # None: never stop early (the best epoch is still tracked)
    min_delta: float = 0.0  # an improvement smaller than this does not count
    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], record: Mapping[str, Any] | None) -> "EarlyStopping":
        if cfg["monitor"] not in MODES:
            raise ValueError(f"trainer.early_stopping.monitor must be one of {', '.join(MODES)}, got {cfg['monitor']!r}")
        if cfg["patience"] is not None and cfg["patience"] < 1:
            raise ValueError(f"trainer.early_stopping.patience must be >= 1 or null, got {cfg['patience']}")
        return cls(monitor=cfg["monitor"], patience=cfg["patience"], min_delta=cfg["min_delta"], **(record or {}))

    @property
    def enabled(self) -> bool:
        return self.patience is not None

    def update(self, epoch: int, val_metrics: Mapping[str, float]) -> None:
        metric, sign = MODES[self.monitor]
        value = val_metrics[metric]
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
            self.stopped = self.enabled and self.bad_epochs >= self.patience

    def checkpoint_score(self, epoch: int) -> float:
        """Higher for a better checkpoint: the best epoch so far scores highest.

        An epoch that did not improve by min_delta scores lowest, even when its
        value is slightly better, so that the checkpoint kept as "best" is the
        one these rules chose.
        """
        metric, sign = MODES[self.monitor]
        return sign * self.best if epoch == self.best_epoch else -1e30

    def record(self) -> dict:
        return {k: getattr(self, k) for k in ("best", "best_epoch", "bad_epochs", "stopped")}

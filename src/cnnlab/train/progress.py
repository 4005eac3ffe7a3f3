"""Where a run stands: a typed, immutable record, saved as JSON in every checkpoint.

Only what cannot be derived is kept: the epoch and the position in it follow
from the step, since every epoch has the same number of steps. A run with
variants (`sweep=vmap`) keeps one early-stopping record, one set of running
sums and one error per variant; a single run is the case of one.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Progress:
    step: int = 0  # optimizer updates so far
    iterator: Mapping[str, Any] | None = None  # grain's iterator state mid-epoch; None at an epoch boundary
    sums: tuple[Mapping[str, float], ...] | None = None  # each variant's running sums of the epoch so far
    stoppers: tuple[Mapping[str, Any] | None, ...] = (None,)  # each variant's early-stopping record
    errors: tuple[str | None, ...] = (None,)  # each variant's failure; None while it trains
    wall_s: float = 0.0  # seconds spent by the sessions of this run so far

    @classmethod
    def fresh(cls, variants: int) -> "Progress":
        return cls(stoppers=(None,) * variants, errors=(None,) * variants)

    @classmethod
    def from_json(cls, saved: Mapping[str, Any]) -> "Progress":
        sums = saved["sums"]
        return cls(step=saved["step"], iterator=saved["iterator"], sums=None if sums is None else tuple(sums),
                   stoppers=tuple(saved["stoppers"]), errors=tuple(saved["errors"]), wall_s=saved["wall_s"])  # fmt: skip

    def as_json(self) -> dict:
        return dataclasses.asdict(self)

    def epoch(self, steps_per_epoch: int) -> int:
        """The epoch in progress (0-based), or the next one at an epoch boundary."""
        return self.step // steps_per_epoch

    def batch(self, steps_per_epoch: int) -> int:
        """Batches of that epoch already trained."""
        return self.step % steps_per_epoch

"""What a run shows and keeps: progress bar, metrics.jsonl, TensorBoard events."""

import json
import math
from pathlib import Path

from tqdm import tqdm


def progress_bar(total: int, *, initial: int, epoch: int, enabled: bool) -> tqdm:
    return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}", unit="step", disable=not enabled)


class MetricsLog:
    """Appends records to metrics.jsonl; on resume, drops lines written after the checkpoint.

    A run killed between a checkpoint and the next one wrote lines for steps
    it will replay, and a finished run wrote a final test line; dropping them
    keeps the file identical to an uninterrupted run's.
    """

    def __init__(self, path: Path, *, resume_step: int):
        self.path = path
        kept = [r for r in read(path) if r["step"] <= resume_step and r["split"] != "test"]
        path.write_text("".join(dumps(r) + "\n" for r in kept))

    def append(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(dumps(record) + "\n")


def dumps(record: dict, **kwargs) -> str:
    """`record` as valid JSON: a non-finite number (a diverged loss) becomes null, and
    `nonfinite` names each such key with its value ("nan", "inf"), so nothing is hidden."""
    bad = {k: repr(v) for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        record = {**{k: None if k in bad else v for k, v in record.items()}, "nonfinite": bad}
    return json.dumps(record, allow_nan=False, **kwargs)


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class TensorBoard:
    """TensorBoard event files, written by tensorboardX (no TensorFlow)."""

    def __init__(self, directory: Path):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(directory))

    def scalars(self, split: str, record: dict) -> None:
        for key, value in record.items():
            if key not in ("step", "epoch", "split") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"{split}/{key}", value, record["step"])

    def learning_rates(self, schedule, start: int, stop: int) -> None:
        """The scheduled learning rate at each step of [start, stop) where it changes."""
        previous = None
        for step in range(start, stop):
            lr = float(schedule(step))
            if lr != previous:
                self.writer.add_scalar("train/lr_schedule", lr, step)
                previous = lr

    def close(self) -> None:
        self.writer.close()

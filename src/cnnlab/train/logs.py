"""What a run shows and keeps: progress bar, metrics.jsonl, TensorBoard events."""

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

log = logging.getLogger(__name__)


def progress_bar(total: int, *, initial: int, epoch: int, enabled: bool) -> tqdm:
    return tqdm(total=total, initial=initial, desc=f"epoch {epoch + 1}", unit="step", disable=not enabled)


class MetricsLog:
    """Appends records to metrics.jsonl; on resume, drops lines written after the checkpoint.

    A run killed between a checkpoint and the next one wrote lines for steps
    it will replay, and a finished run wrote a final test line; dropping them
    keeps the file identical to an uninterrupted run's. The rewrite goes to a
    temporary file renamed over the old one, so a kill during it loses nothing;
    each append is one write of one whole line, flushed.
    """

    def __init__(self, path: Path, *, resume_step: int):
        self.path = path
        kept = [r for r in read(path) if r["step"] <= resume_step and r["split"] != "test"]
        write_atomically(path, "".join(dumps(r) + "\n" for r in kept))

    def append(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(dumps(record) + "\n")
            f.flush()


def write_atomically(path: Path, text: str) -> None:
    """`path` holds either its old content or `text`, never a part of either."""
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(text)
    os.replace(scratch, path)


def dumps(record: dict, **kwargs) -> str:
    """`record` as valid JSON: a non-finite number (a diverged loss) becomes null, and
    `nonfinite` names each such key with its value ("nan", "inf"), so nothing is hidden."""
    bad = {k: repr(v) for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)}
    if bad:
        record = {**{k: None if k in bad else v for k, v in record.items()}, "nonfinite": bad}
    return json.dumps(record, allow_nan=False, **kwargs)


def read(path: Path) -> list[dict]:
    """The records of a metrics.jsonl. A torn last line (a kill in the middle of a write) is
    dropped with a warning; a bad line before the last names the file and the line."""
    if not path.exists():
        return []
    lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), start=1) if line.strip()]
    records = []
    for i, (number, line) in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if i < len(lines) - 1:
                raise ValueError(f"{path}: line {number} is not JSON ({error}); the lines after it are intact, "
                                 "so this is not a torn write: fix or remove that line") from None  # fmt: skip
            log.warning("%s: dropped a torn last line (%d characters): %s", path, len(line), error)
    return records


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

    def hparams(self, hparams: dict, results: dict[str, float]) -> None:
        """The run's hyperparameters and results for TensorBoard's HParams view, in this run's own
        event files (tensorboardX's `add_hparams` would open a new run directory beside it)."""
        from tensorboardX.summary import hparams as hparams_summaries

        for summary in hparams_summaries(hparams, results):  # the experiment, session start and end
            self.writer.file_writer.add_summary(summary)
        for tag, value in results.items():  # the values the view shows, as scalars of the same tags
            self.writer.add_scalar(tag, value)

    def images(self, pngs: dict[str, Path], step: int) -> None:
        """PNG files as TensorBoard images, one tag each; a file that was not drawn is left out."""
        for tag, path in pngs.items():
            if path.is_file():
                with Image.open(path) as image:
                    self.writer.add_image(tag, np.asarray(image.convert("RGB")), step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()

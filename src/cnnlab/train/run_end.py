"""What a run adds once it is tested: its hyperparameters and results in TensorBoard's HParams
view, and with `trainer.analyze=true` the analysis of its tested weights (`cnnlab.analysis.write`
into `<run dir>/analysis/`), whose confusion matrix and grid of predictions also go into
TensorBoard as images.

The hyperparameters are written by each job into its own event files, not collected afterwards
by `cnnlab-report`: TensorBoard's HParams dashboard is built from every run under `--logdir`,
each run carrying its own hyperparameters and results, so `tensorboard --logdir multirun/<date>`
compares a sweep's jobs as they finish, with any launcher, without a report step.
"""

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger(__name__)

# The keys every run shows in the HParams view; a job's own overrides (what a sweep varies) are added.
HEADLINE_KEYS = ("model.name", "optimizer.name", "optimizer.learning_rate", "schedule.name", "trainer.batch_size",
                 "trainer.epochs", "seed")  # fmt: skip
RESULT_KEYS = ("test_top1", "test_loss", "best_val_top1", "best_epoch", "epochs_run")
IMAGES = {"analysis/confusion_matrix": "confusion_matrix.png", "analysis/predictions": "predictions.png"}


def write(cfg: Mapping[str, Any], job, tracks: Sequence, summaries: Sequence[dict | None], step: int) -> None:
    """Every finished track's hyperparameters and results to its TensorBoard; the analysis where asked."""
    for track, summary in zip(tracks, summaries):
        if summary is not None and track.board is not None:
            track.board.hparams(hparams_of(cfg, read_overrides(track.dir)), results_of(summary))
    if not cfg["trainer"].get("analyze"):
        return
    if job.variants is not None:  # its checkpoints stack every variant's weights; analysis reads one run's
        log.warning("trainer.analyze: a vmap sweep's variants are not analyzed; train the chosen one as a run")
    elif summaries[0] is not None:  # with trainer.test=false the run has not looked at its test split
        analyze(tracks[0], split="test" if summaries[0]["test_top1"] is not None else "val", step=step)


def analyze(track, split: str, step: int) -> None:
    """`analysis.write` for the run in `track.dir` with the weights it was tested with; its confusion
    matrix and predictions grid into TensorBoard at the last step."""
    # analysis reads a run back through train.setup, so it is imported here, not at the top of train/
    from cnnlab import analysis

    out = track.dir / "analysis"
    report = analysis.write(analysis.load(track.dir), split, out)
    log.info("analysis of the %s split: %s", split, report)
    if track.board is not None:
        track.board.images({tag: out / name for tag, name in IMAGES.items()}, step)


def read_overrides(directory: Path) -> list[str]:
    """The command-line overrides Hydra saved for the job in `directory` (none for a run started without Hydra)."""
    path = directory / ".hydra" / "overrides.yaml"
    return list(yaml.safe_load(path.read_text()) or []) if path.is_file() else []


def hparams_of(cfg: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, bool | int | float | str]:
    """The headline config values, then each `key=value` override (Hydra's own keys left out), as the
    scalars and strings TensorBoard's HParams view takes; an override wins over the config's value."""
    values = {key: _lookup(cfg, key) for key in HEADLINE_KEYS}
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if not key.startswith("hydra.") and not key.startswith("logger."):
            values[key] = _parsed(value) if value else None
    return {key: _scalar(value) for key, value in values.items() if value is not None}


def results_of(summary: Mapping[str, Any]) -> dict[str, float]:
    """summary.json's results under `hparam/`, the names TensorBoard's HParams view shows as metrics;
    a result the run did not compute (no test with trainer.test=false) is left out."""
    return {f"hparam/{key}": float(summary[key]) for key in RESULT_KEYS if summary.get(key) is not None}


def _lookup(cfg: Mapping[str, Any], dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _parsed(text: str) -> Any:
    """An override's value as Hydra reads it, for the scalars: YAML 1.1, which reads 1e-3 as a string,
    so a number is tried first."""
    try:
        return float(text) if "." in text or "e" in text.lower() else int(text)
    except ValueError:
        return yaml.safe_load(text)


def _scalar(value: Any) -> bool | int | float | str:
    return value if isinstance(value, (bool, int, float, str)) else str(value)

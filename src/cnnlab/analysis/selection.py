"""Model selection after a search: the trial with the best validation score, tested once.

A search's trials (`hydra/sweeper=optuna`, e.g. experiment=tune_adam, with
trainer.test=false) never read the test split: the lecture's model selection is
made on validation data. `select(root, jobs)` takes the finished trial with the
highest best_val_top1 (on a tie the first, as Optuna's best trial is), scores
the weights it would have been tested with on the test split, and writes
`root/selected.json`. A later call reads that file back: the test set is scored
once, for the selected trial only.
"""

import json
from collections.abc import Sequence
from pathlib import Path

import yaml

from cnnlab.analysis import evaluate, run as run_lib
from cnnlab.report.sweep import SEARCH_RESULTS

SELECTED = "selected.json"


def select(root: Path, jobs: Sequence) -> dict:
    """The selected trial of the search in `root` (jobs: `report.sweep.find_jobs(root)`) and its test score."""
    root = Path(root)
    saved = root / SELECTED
    if saved.is_file():
        return json.loads(saved.read_text())
    finished = [job for job in jobs if job.finished]
    if not finished:
        raise FileNotFoundError(f"{root}: no trial of the search finished, so none can be selected")
    best = max(finished, key=lambda job: job.summary["best_val_top1"])  # max keeps the first of equals
    trained = run_lib.load(root / best.name)
    test = evaluate.predict(trained, "test")
    record = {
        "trial": best.name,
        "overrides": best.overrides,
        "best_val_top1": best.summary["best_val_top1"],
        "best_epoch": best.summary["best_epoch"],
        "test_top1": test.top1,
        "test_examples": len(test.labels),
        "checkpoint": trained.checkpoint,
        "optuna": yaml.safe_load((root / SEARCH_RESULTS).read_text()),
    }
    saved.write_text(json.dumps(record, indent=2) + "\n")
    return record


def markdown(record: dict) -> list[str]:
    """The report's section on the selected trial."""
    searched = record["optuna"].get("best_params") or record["overrides"]  # the keys the search chose
    setting = " ".join(f"{k}={record['overrides'][k]}" for k in searched if k in record["overrides"])
    return ["## Selected trial", "",
            f"Selected on validation: trial {record['trial']} (`{setting}`), best val top-1 "
            f"{record['best_val_top1']:.4f} at epoch {record['best_epoch']}.", "",
            f"Its test top-1, scored once after the search: **{record['test_top1']:.4f}** "
            f"({record['test_examples']} test images, `{record['checkpoint']}`).", ""]  # fmt: skip

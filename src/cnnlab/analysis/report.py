"""`<run dir>/analysis/`: the CSVs, the figures and report.md of one split of a trained run.

Nothing outside the output directory is written, so the run itself (checkpoints,
metrics, summary) stays exactly as training left it.
"""

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnlab.analysis import activations, evaluate, figures, metrics
from cnnlab.analysis.run import TrainedRun
from cnnlab.data import records

OUTPUTS = ("confusion_matrix.csv", "confusion_matrix.png", "per_class.csv", "predictions.png", "misclassified.png",
           "filters.png", "feature_maps.png", "saliency.png", "report.md")
PREDICTIONS_SHOWN = 16  # the split's first images, right or wrong
ERRORS_SHOWN = 16
SALIENCY_IMAGES = 8


def write(run: TrainedRun, split: str, out: Path) -> Path:
    """Analyze `split` of `run` into `out`; returns the path of report.md."""
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:  # an earlier analysis's figure that this one may not draw (no errors left, say)
        (out / name).unlink(missing_ok=True)
    predictions = evaluate.predict(run, split)
    names = run.class_names
    matrix = metrics.confusion(predictions, len(names))
    rows = metrics.per_class(predictions, names)
    write_confusion_csv(matrix, names, out / "confusion_matrix.csv")
    write_per_class_csv(rows, out / "per_class.csv")
    figures.confusion_matrix(matrix, names, out / "confusion_matrix.png")
    subset = run.dataset.splits[split]
    first = np.arange(min(PREDICTIONS_SHOWN, len(subset)))
    figures.image_grid(_pixels(subset, first), _prediction_titles(predictions, first, names), out / "predictions.png")
    errors = metrics.confident_errors(predictions, ERRORS_SHOWN)
    if len(errors):
        titles = _error_titles(predictions, errors, names)
        figures.image_grid(_pixels(subset, errors), titles, out / "misclassified.png")
    inside = _inside(run, subset, predictions, out)
    report = out / "report.md"
    report.write_text(markdown(run, split, matrix, rows, len(errors), inside))
    return report


def write_confusion_csv(matrix: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    """A header of class names, then per true class its name and the counts per predicted class."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *class_names])
        for name, counts in zip(class_names, matrix):
            writer.writerow([name, *(int(c) for c in counts)])


def write_per_class_csv(rows: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, **{k: f"{r[k]:.4f}" for k in ("precision", "recall", "f1")}} for r in rows)


def _inside(run: TrainedRun, subset, predictions, out: Path) -> list[str]:
    """saliency.png, filters.png and feature_maps.png, and report.md's lines about them: where the
    model has no convolution (an MLP) the two figures of convolutions are left out, saying why."""
    first = _pixels(subset, np.arange(min(SALIENCY_IMAGES, len(subset))))  # (n, H, W, C) uint8
    maps = activations.saliency(run, run.normalize(first))
    titles = [f"{run.class_names[p]} {c:.2f}" for p, c in
              zip(predictions.predicted[: len(first)], predictions.confidence[: len(first)])]  # fmt: skip
    figures.saliency(first, maps, titles, out / "saliency.png")
    lines = ["Gradient saliency |d logit / d pixel| of the predicted class:", "", "![saliency](saliency.png)", ""]
    calls = activations.conv_calls(run, run.normalize(first[:1])[0])
    if not calls:
        return [f"_{run.model_name} has no convolution layer: no filters.png or feature_maps.png._", "", *lines]
    kernel = calls[0].kernel  # (kh, kw, in, out)
    figures.filters(kernel, out / "filters.png", f"{calls[0].path}: {kernel.shape[-1]} kernels "
                    f"{kernel.shape[0]}x{kernel.shape[1]}x{kernel.shape[2]}")  # fmt: skip
    lines = ["First convolution's kernels:", "", "![filters](filters.png)", "", *lines]
    stages = activations.stage_outputs(calls)
    if stages:
        figures.feature_maps(first[0], stages, out / "feature_maps.png")
        lines += ["One image's feature maps at each stage (its last convolution, before the activation):", "",
                  "![feature maps](feature_maps.png)", ""]  # fmt: skip
    return lines


def _pixels(subset, positions: np.ndarray) -> np.ndarray:
    """(n, H, W, C) uint8 images of the split as stored, before normalization."""
    images, _ = records.read_batch(subset, np.asarray(positions, np.int64))
    return images


def _prediction_titles(predictions, positions: np.ndarray, names: Sequence[str]) -> list[str]:
    return [f"pred {names[predictions.predicted[i]]} {predictions.confidence[i]:.2f}\n"
            f"true {names[predictions.labels[i]]}" for i in positions]  # fmt: skip


def _error_titles(predictions, errors: np.ndarray, names: Sequence[str]) -> list[str]:
    return [f"true {names[predictions.labels[i]]}\npred {names[predictions.predicted[i]]} "
            f"{predictions.confidence[i]:.2f}" for i in errors]  # fmt: skip


def markdown(run: TrainedRun, split: str, matrix: np.ndarray, rows: list[dict], errors: int,
             inside: list[str]) -> str:  # fmt: skip
    """report.md: the run's summary, the split's figures and tables."""
    total, correct = int(matrix.sum()), int(np.trace(matrix))
    lines = [f"# Analysis of {run.directory.name}", "",
             f"Model `{run.model_name}`, data `{run.config['data']['name']}`, the {run.which} checkpoint's weights "
             f"(`{run.checkpoint}`).", "",
             f"**{split} top-1: {correct / total:.4f}** ({correct} of {total} correct).", ""]  # fmt: skip
    lines += _summary_table(run.directory / "summary.json")
    lines += ["## Confusion matrix", "", "![confusion matrix](confusion_matrix.png)", "",
              "Counts in `confusion_matrix.csv` (rows: true class, columns: predicted).", ""]  # fmt: skip
    lines += ["## Per class", "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    lines += [f"| {r['class']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['support']} |"
              for r in rows]  # fmt: skip
    pairs = metrics.most_confused(matrix, run.class_names)
    lines += ["", "## Most confused pairs", ""]
    lines += [f"- {t} taken for {p}: {n} times" for t, p, n in pairs] or ["- none: every example is right"]
    lines += ["", "## Predictions", "", f"The first {min(PREDICTIONS_SHOWN, total)} images of the split:", "",
              "![predictions](predictions.png)"]  # fmt: skip
    lines += ["", "## Most confident errors", ""]
    lines += ["![most confident errors](misclassified.png)"] if errors else ["None: every example is right."]
    lines += ["", "## Inside the network", "", *inside]
    return "\n".join(lines)


def _summary_table(path: Path) -> list[str]:
    if not path.is_file():
        return ["_No summary.json: the run has not finished._", ""]
    summary = json.loads(path.read_text())
    return ["## The run's summary.json", "", "| key | value |", "|---|---|",
            *(f"| {k} | {v} |" for k, v in summary.items()), ""]  # fmt: skip

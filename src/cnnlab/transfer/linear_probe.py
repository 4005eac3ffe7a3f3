"""The linear probe: a logistic regression on the frozen base's features.

The lecture's advice for a small target set: keep the pretrained network
fixed and fit only a linear classifier on what it computes. The features (the
input of the model's classifier, see heads.py) are extracted once for the
train, val and test splits, cached in `<run dir>/features.npz`, standardized
with the train split's statistics, and fitted with scikit-learn's
`LogisticRegression` (multinomial, L2, `transfer.linear_probe.C`). The run
directory gets the same metrics.jsonl and summary.json as a trained run.
"""

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cnnlab import backend, data
from cnnlab.transfer import heads

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def extract(model, variables, dataset: data.Dataset, *, batch_size: int) -> dict[str, np.ndarray]:
    """{"<split>_x": (N, D) features, "<split>_y": (N,) labels} for train, val and test."""
    apply = backend.jit(heads.features(model))
    out = {}
    for split in SPLITS:
        chunks, labels = [], []
        for batch in data.eval_batches(dataset.splits[split], batch_size=batch_size,
                                       normalization=dataset.normalization):  # fmt: skip
            mask = batch["mask"]  # (B,): the padding past the split's end is dropped
            chunks.append(np.asarray(apply(variables, batch["image"]))[mask])
            labels.append(batch["label"][mask])
        out[f"{split}_x"], out[f"{split}_y"] = np.concatenate(chunks), np.concatenate(labels)
    return out


def cached_features(path: Path, compute) -> dict[str, np.ndarray]:
    """The features saved at `path`, or `compute()` saved there first (a re-run fits again without extracting)."""
    if path.exists():
        with np.load(path) as saved:
            return dict(saved)
    features = compute()
    np.savez(path, **features)
    return features


def fit(features: Mapping[str, np.ndarray], *, num_classes: int, C: float = 1.0, max_iter: int = 1000):
    """The fitted classifier (a standardize + logistic regression pipeline) and its metrics per split."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    probe.fit(features["train_x"], features["train_y"])
    metrics = {}
    for split in SPLITS:
        x, y = features[f"{split}_x"], features[f"{split}_y"]
        proba = np.zeros((len(y), num_classes))
        proba[:, probe.classes_] = probe.predict_proba(x)  # classes absent from train keep probability 0
        proba /= proba.sum(axis=1, keepdims=True)  # float32 features give float32 rows: sum to 1 in float64
        rank = (proba > proba[np.arange(len(y)), y][:, None]).sum(axis=1)  # classes scored above the label
        metrics[split] = {"loss": float(log_loss(y, proba, labels=np.arange(num_classes))),
                          "top1": float(np.mean(rank < 1))}  # fmt: skip
        if num_classes > 5:
            metrics[split]["top5"] = float(np.mean(rank < 5))
    return probe, metrics


def run(model, variables, dataset: data.Dataset, cfg: Mapping[str, Any], run_dir: Path, *,
        batch_size: int) -> dict:  # fmt: skip
    """Extract (or reuse) the features, fit the probe, write metrics.jsonl and summary.json."""
    started = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    features = cached_features(run_dir / "features.npz",
                               lambda: extract(model, variables, dataset, batch_size=batch_size))  # fmt: skip
    options = cfg.get("linear_probe") or {}
    probe, metrics = fit(features, num_classes=dataset.num_classes, C=options.get("C", 1.0),
                         max_iter=options.get("max_iter", 1000))  # fmt: skip
    classifier = probe[-1]
    steps = int(np.max(classifier.n_iter_))
    wall = time.perf_counter() - started
    records = [{"step": steps, "epoch": 1, "split": split, **metrics[split], "lr": 0.0, "wall_s": wall}
               for split in SPLITS]  # fmt: skip
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = {
        "test_top1": metrics["test"]["top1"],
        "test_top5": metrics["test"].get("top5"),
        "test_loss": metrics["test"]["loss"],
        "best_val_top1": metrics["val"]["top1"],
        "best_epoch": 1,
        "epochs_run": 1,
        "stopped_early": False,
        "steps": steps,  # lbfgs iterations
        "wall_s": wall,
        "params": int(classifier.coef_.size + classifier.intercept_.size),
        "device_count": jax.device_count(),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("linear probe on %d features: val top-1 %.4f, test top-1 %.4f", features["train_x"].shape[1],
             summary["best_val_top1"], summary["test_top1"])  # fmt: skip
    return summary

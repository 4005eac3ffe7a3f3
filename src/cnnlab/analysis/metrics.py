"""What the predictions of a split say per class: confusion, precision/recall/F1, confused pairs, errors."""

import numpy as np
from sklearn import metrics as sk

from cnnlab.analysis.evaluate import Predictions


def confusion(predictions: Predictions, num_classes: int) -> np.ndarray:
    """(classes, classes) int64 counts: row = true class, column = predicted class."""
    return sk.confusion_matrix(predictions.labels, predictions.predicted, labels=np.arange(num_classes))


def per_class(predictions: Predictions, class_names: tuple[str, ...]) -> list[dict]:
    """Precision, recall, F1 and support of each class (scikit-learn's; 0 where a class is never predicted)."""
    precision, recall, f1, support = sk.precision_recall_fscore_support(
        predictions.labels, predictions.predicted, labels=np.arange(len(class_names)), zero_division=0
    )
    return [{"class": name, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)]  # fmt: skip


def most_confused(matrix: np.ndarray, class_names: tuple[str, ...], top: int = 5) -> list[tuple[str, str, int]]:
    """The `top` (true, predicted, count) off-diagonal cells with the most examples, largest first."""
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    cells = np.argsort(-off, axis=None, kind="stable")[:top]
    pairs = [np.unravel_index(c, off.shape) for c in cells]
    return [(class_names[t], class_names[p], int(off[t, p])) for t, p in pairs if off[t, p] > 0]


def confident_errors(predictions: Predictions, top: int = 16) -> np.ndarray:
    """Positions in the split of the `top` misclassified examples the model was surest of, surest first."""
    wrong = np.flatnonzero(predictions.predicted != predictions.labels)
    return wrong[np.argsort(-predictions.confidence[wrong], kind="stable")][:top]

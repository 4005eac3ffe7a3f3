"""Confusion, per-class scores, confused pairs and confident errors on predictions worked out by hand."""

import numpy as np
import pytest

from cnnlab.analysis import metrics
from cnnlab.analysis.evaluate import Predictions

NAMES = ("cat", "dog", "fox")


@pytest.fixture
def predictions() -> Predictions:
    # true:      cat cat cat dog dog fox fox fox
    # predicted: cat dog dog dog cat fox fox dog   (argmax of each row below)
    probabilities = np.array([
        [0.8, 0.1, 0.1], [0.3, 0.6, 0.1], [0.1, 0.9, 0.0], [0.2, 0.7, 0.1],
        [0.5, 0.4, 0.1], [0.1, 0.1, 0.8], [0.0, 0.3, 0.7], [0.2, 0.45, 0.35],
    ], np.float32)  # fmt: skip
    return Predictions(np.array([0, 0, 0, 1, 1, 2, 2, 2]), probabilities)


def test_confusion_counts_rows_as_true_classes(predictions):
    matrix = metrics.confusion(predictions, 3)
    np.testing.assert_array_equal(matrix, [[1, 2, 0], [1, 1, 0], [0, 1, 2]])
    assert np.trace(matrix) / matrix.sum() == predictions.top1 == 4 / 8


def test_per_class_scores_are_precision_recall_f1_support(predictions):
    rows = {r["class"]: r for r in metrics.per_class(predictions, NAMES)}
    # dog: predicted 4 times, right once -> precision 1/4; 2 true dogs, 1 found -> recall 1/2
    assert rows["dog"]["precision"] == pytest.approx(0.25) and rows["dog"]["recall"] == pytest.approx(0.5)
    assert rows["dog"]["f1"] == pytest.approx(2 * 0.25 * 0.5 / 0.75)
    assert rows["fox"]["precision"] == 1.0 and rows["fox"]["recall"] == pytest.approx(2 / 3)
    assert [r["support"] for r in rows.values()] == [3, 2, 3]


def test_most_confused_pairs_are_the_largest_off_diagonal_cells(predictions):
    matrix = metrics.confusion(predictions, 3)
    assert metrics.most_confused(matrix, NAMES, top=2) == [("cat", "dog", 2), ("dog", "cat", 1)]
    assert len(metrics.most_confused(matrix, NAMES, top=10)) == 3  # empty cells are not pairs


def test_confident_errors_come_surest_first(predictions):
    # the errors: #2 (dog 0.9), #1 (dog 0.6), #4 (cat 0.5), #7 (dog 0.45)
    assert metrics.confident_errors(predictions, top=3).tolist() == [2, 1, 4]

"""`cnnlab-analyze RUN_DIR`: the analysis of a trained 1-epoch LeNet-5 digits run, read back from its directory."""

import csv
import json
import subprocess
import sys

import jax
import numpy as np
import pytest
import yaml
from PIL import Image

from cnnlab import analysis, models
from cnnlab.cli import analyze
from cnnlab.transfer import checkpoints
from tests.conftest import REPO

FIGURES = ("confusion_matrix.png", "misclassified.png", "filters.png", "feature_maps.png", "saliency.png")
DIGITS_TEST_SIZE = 360  # 20% of the 1,797 digits, stratified


def files_of(directory):
    """Every file under `directory` outside analysis/, with its size and modification time."""
    files = [p for p in directory.rglob("*") if p.is_file() and "analysis" not in p.relative_to(directory).parts]
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns) for p in files}


@pytest.fixture(scope="module")
def analyzed(digits_run, data_dir):
    """The run analyzed with the command's defaults, and its files before the analysis."""
    before = files_of(digits_run)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TFDS_DATA_DIR", str(data_dir))  # as the run was trained: its config reads it
        analyze.main([str(digits_run)])
    return digits_run, before


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_confusion_matrix_counts_the_test_split_and_its_diagonal_is_the_summary_top1(analyzed):
    run_dir, _ = analyzed
    rows = read_csv(run_dir / "analysis" / "confusion_matrix.csv")
    digits = [str(d) for d in range(10)]
    assert rows[0][1:] == digits and [r[0] for r in rows[1:]] == digits
    counts = np.array([[int(c) for c in r[1:]] for r in rows[1:]])  # (true, predicted)
    assert counts.sum() == DIGITS_TEST_SIZE
    summary = json.loads((run_dir / "summary.json").read_text())
    assert np.trace(counts) / counts.sum() == pytest.approx(summary["test_top1"], abs=1e-6)


def test_per_class_scores_agree_with_the_confusion_matrix(analyzed):
    run_dir, _ = analyzed
    counts = np.array([[int(c) for c in r[1:]] for r in read_csv(run_dir / "analysis" / "confusion_matrix.csv")[1:]])
    rows = read_csv(run_dir / "analysis" / "per_class.csv")
    assert rows[0] == ["class", "precision", "recall", "f1", "support"]
    support = np.array([int(r[4]) for r in rows[1:]])
    recall = np.array([float(r[2]) for r in rows[1:]])
    precision = np.array([float(r[1]) for r in rows[1:]])
    np.testing.assert_array_equal(support, counts.sum(axis=1))
    np.testing.assert_allclose(recall, np.diag(counts) / counts.sum(axis=1), atol=5e-5)  # 4 decimals
    np.testing.assert_allclose(precision, np.diag(counts) / np.maximum(counts.sum(axis=0), 1), atol=5e-5)


def test_report_shows_every_figure_and_the_runs_summary(analyzed):
    run_dir, _ = analyzed
    report = (run_dir / "analysis" / "report.md").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    for figure in FIGURES:
        assert f"]({figure})" in report
        with Image.open(run_dir / "analysis" / figure) as image:  # a picture, not an empty canvas
            assert min(image.size) >= 100 and len(set(image.convert("L").getdata())) > 10, figure
    assert f"| test_top1 | {summary['test_top1']} |" in report
    correct = round(summary["test_top1"] * DIGITS_TEST_SIZE)
    assert f"**test top-1: {summary['test_top1']:.4f}** ({correct} of {DIGITS_TEST_SIZE} correct)" in report
    assert "the latest checkpoint's weights" in report  # no early stopping: the weights that were tested
    assert "## Most confused pairs" in report and " taken for " in report


def test_the_analysis_writes_nothing_else_in_the_run(analyzed):
    run_dir, before = analyzed
    assert files_of(run_dir) == before


def test_the_val_split_gives_the_val_top1_of_metrics_jsonl(digits_run, data_dir, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    run = analysis.load(digits_run)
    predictions = analysis.predict(run, "val")
    val = [json.loads(line) for line in (digits_run / "metrics.jsonl").read_text().splitlines()][1]
    assert val["split"] == "val" and len(predictions.labels) == 360
    assert predictions.top1 == pytest.approx(val["top1"], abs=1e-6)


def test_a_model_without_convolutions_skips_their_figures(tmp_path, compose, data_dir, monkeypatch):
    """An MLP run (its config and an orbax checkpoint as a run directory holds them), analyzed into --out."""
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    config = compose("model=mlp")
    run_dir, out = tmp_path / "mlp_run", tmp_path / "elsewhere"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    model = models.create("mlp", num_classes=10, hidden_sizes=config["model"]["hidden_sizes"])
    variables = jax.jit(lambda: model.init(jax.random.key(0), np.zeros((1, 32, 32, 1)), train=False))()
    checkpoints.write(run_dir, jax.device_get(variables), config=config)

    analyze.main([str(run_dir), "--checkpoint", "latest", "--out", str(out)])
    report = (out / "report.md").read_text()
    assert "mlp has no convolution layer: no filters.png or feature_maps.png" in report
    assert not (out / "filters.png").exists() and not (out / "feature_maps.png").exists()
    assert (out / "saliency.png").exists() and (out / "confusion_matrix.csv").exists()
    assert not (run_dir / "analysis").exists()


@pytest.mark.parametrize("make, message", [
    (lambda tmp: tmp / "missing", "missing is not a directory (expected a run directory that cnnlab-train wrote)"),
    (lambda tmp: tmp, "is not a run directory: no "),
    (lambda tmp: (tmp / ".hydra").mkdir() or (tmp / ".hydra" / "config.yaml").write_text("seed: 0\n") and tmp,
     "checkpoints (expected the orbax checkpoints that cnnlab-train writes"),
])  # fmt: skip
def test_bad_input_is_one_line_naming_the_path(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        analyze.main([str(path)])
    text = str(exit_.value.code)
    assert text.startswith(f"cnnlab-analyze: {path}") and message in text and "\n" not in text


def test_bad_input_exits_with_status_1(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cnnlab.cli.analyze", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 1
    expected = (f"cnnlab-analyze: {tmp_path} is not a run directory: no {tmp_path}/.hydra/config.yaml "
                "(expected the directory of a cnnlab-train run, e.g. runs/<date>_<time>)")
    assert proc.stderr.strip().splitlines() == [expected]

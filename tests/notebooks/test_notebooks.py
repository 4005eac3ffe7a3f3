"""Every notebook in notebooks/ executes, top to bottom, in quick mode (CNNLAB_NOTEBOOK_QUICK=1: a few
epochs or steps), in a fresh working directory; each also computes one number the lecture states."""

import re
from pathlib import Path

import nbclient
import nbformat
import pytest

from tests.conftest import REPO

NOTEBOOKS = REPO / "notebooks"


def executed(name: str, tmp_path: Path, data_dir: Path, monkeypatch) -> str:
    """Run notebooks/<name> with the venv's python3 kernel; the text of all its outputs.
    A cell that raises fails the test with that cell and its traceback (nbclient's CellExecutionError)."""
    monkeypatch.setenv("CNNLAB_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))  # the session's data sets, prepared once
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    client.execute()
    return "".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for output in cell.outputs)  # fmt: skip


def number_after(text: str, label: str) -> str:
    found = re.search(re.escape(label) + r"\s*([-+]?[0-9][0-9,]*\.?[0-9]*(?:e[-+]?[0-9]+)?)", text)
    assert found, f"no {label!r} in the notebook's outputs"
    return found.group(1)


def test_the_notebooks_are_stored_without_outputs():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert len(names) == 8, names
    for name in names:
        notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(notebook)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), name
        assert "google.colab" in code[0].source and "CNNLAB_REPOSITORY" in code[0].source, name


def test_optimizers(tmp_path, data_dir, monkeypatch):
    text = executed("01_optimizers.ipynb", tmp_path, data_dir, monkeypatch)
    assert float(number_after(text, "largest difference from optim.momentum over 100 steps:")) < 1e-6


def test_convolution_arithmetic(tmp_path, data_dir, monkeypatch):
    text = executed("02_convolution_arithmetic.ipynb", tmp_path, data_dir, monkeypatch)
    assert number_after(text, "typical CNN parameters:") == "27,562"
    assert "VGG-16's last layer (block5_pool) sees 212 pixels at a jump of 32" in text


def test_training_lenet5(tmp_path, data_dir, monkeypatch):
    text = executed("03_training_lenet5.ipynb", tmp_path, data_dir, monkeypatch)
    assert float(number_after(text, "test top-1:")) > 0.5  # one epoch: 0.87 here; chance is 0.1


@pytest.mark.slow
def test_overfitting(tmp_path, data_dir, monkeypatch):
    text = executed("04_overfitting.ipynb", tmp_path, data_dir, monkeypatch)
    assert number_after(text, "jobs finished:") == "6"  # the baseline and its five remedies


@pytest.mark.slow
def test_batchnorm(tmp_path, data_dir, monkeypatch):
    text = executed("05_batchnorm.ipynb", tmp_path, data_dir, monkeypatch)
    assert abs(float(number_after(text, "normalized train pixels: mean"))) < 1e-3
    assert float(number_after(text, "largest difference from the formula:")) < 1e-4


def test_cnn_canon(tmp_path, data_dir, monkeypatch):
    text = executed("06_cnn_canon.ipynb", tmp_path, data_dir, monkeypatch)
    assert number_after(text, "resnet18 trainable parameters:") == "11,689,512"


@pytest.mark.slow
def test_transfer_learning(tmp_path, data_dir, monkeypatch):
    text = executed("07_transfer_learning.ipynb", tmp_path, data_dir, monkeypatch)
    assert "frozen layers unchanged: 4 of 4" in text  # the feature extractor's base, bitwise the source's


@pytest.mark.slow
def test_assignment(tmp_path, data_dir, monkeypatch):
    text = executed("08_assignment.ipynb", tmp_path, data_dir, monkeypatch)
    assert number_after(text, "images classified:") == "3"
    assert (tmp_path / "runs" / "shapes" / "analysis" / "report.md").is_file()

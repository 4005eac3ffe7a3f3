"""`cnnlab-predict RUN_DIR PATH...`: image files classified with the run's own preprocessing."""

import csv

import numpy as np
import pytest
from PIL import Image

from cnnlab import analysis
from cnnlab.cli import predict
from cnnlab.data import records

EXAMPLES = 24


@pytest.fixture
def test_pngs(digits_run, data_dir, tmp_path, monkeypatch):
    """The first test examples written as PNG files (a few in a sub-folder), and the run's own
    eval-pipeline probabilities for them."""
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    run = analysis.load(digits_run)
    images, _ = records.read_batch(run.dataset.splits["test"], np.arange(EXAMPLES))  # (n, 32, 32, 1) uint8
    (tmp_path / "more").mkdir()
    for i, image in enumerate(images):
        folder = tmp_path / "more" if i >= EXAMPLES - 4 else tmp_path
        Image.fromarray(image[..., 0], mode="L").save(folder / f"{i:03d}.png")
    return tmp_path, analysis.predict(run, "test").probabilities[:EXAMPLES]


def test_predicted_classes_are_the_eval_steps(digits_run, test_pngs, capsys):
    folder, expected = test_pngs
    (folder / "broken.png").write_bytes(b"not a png")
    out_csv = folder / "predictions.csv"
    predict.main([str(digits_run), str(folder), "--top", "3", "--csv", str(out_csv)])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == EXAMPLES  # the sub-folder's files too, the broken one skipped
    assert f"{folder / 'broken.png'}: not an image PIL can decode; skipped" in captured.err

    rows = list(csv.reader(open(out_csv, newline="")))
    assert rows[0] == ["path", "class_1", "probability_1", "class_2", "probability_2", "class_3", "probability_3"]
    by_name = {row[0].rsplit("/", 1)[-1]: row for row in rows[1:]}
    predicted = [int(by_name[f"{i:03d}.png"][1]) for i in range(EXAMPLES)]
    assert predicted == expected.argmax(axis=1).tolist()
    top = np.array([float(by_name[f"{i:03d}.png"][2]) for i in range(EXAMPLES)])
    np.testing.assert_allclose(top, expected.max(axis=1), atol=1e-5)  # the same pixels, the same normalization
    first = lines[0].split(": ", 1)[1].split(", ")
    assert len(first) == 3 and first[0] == f"{predicted[0]} {expected[0].max():.4f}"


def test_a_missing_path_is_one_line_naming_it(digits_run, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        predict.main([str(digits_run), str(tmp_path / "nope.png")])
    assert str(exit_.value.code) == (f"cnnlab-predict: {tmp_path / 'nope.png'}: no such file or directory "
                                     "(expected image files or folders of them)")  # fmt: skip

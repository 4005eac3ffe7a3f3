"""`cnnlab-augment-preview`: a sample across classes, one PNG, no run directory."""

import os
import subprocess
import sys

from cnnlab.cli.augment_preview import across_classes


def test_the_sample_takes_each_class_in_turn():
    labels = [0] * 10 + [1] * 10 + [2] * 10  # an image folder's records come class by class
    assert across_classes(labels, 8) == [0, 10, 20, 1, 11, 21, 2, 12]
    assert across_classes([3, 3], 8) == [0, 1]


def test_the_command_writes_its_png_and_nothing_else(tmp_path, data_dir):
    env = {**os.environ, "TFDS_DATA_DIR": str(data_dir)}
    proc = subprocess.run([sys.executable, "-m", "cnnlab.cli.augment_preview", "augment=light"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [p.name for p in tmp_path.iterdir()] == ["augment_preview.png"]
    assert (tmp_path / "augment_preview.png").stat().st_size > 5_000

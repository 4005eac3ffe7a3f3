"""The jobs of a sweep launched side by side (Ray, submitit) prepare a new data set at the same time."""

import subprocess
import sys

LOAD = """
import sys
from cnnlab import data
cfg = {"name": "digits", "data_dir": sys.argv[1], "image_size": 32, "normalize": "zscore",
       "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 0}}
print(len(data.load(cfg).splits["train"]))
"""


def test_processes_preparing_one_data_set_at_once_all_read_it(tmp_path):
    # Without a lock, the second to finish fails with tfds's "Cannot rename .../incomplete.* ...
    # Destination .../1.1.0 already exists", or reads a builder that never saw the splits.
    procs = [subprocess.Popen([sys.executable, "-c", LOAD, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]  # fmt: skip
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0, err[-2000:]
        assert out.split()[-1] == "1077"  # 60% of the 1,797 digits, rounded down

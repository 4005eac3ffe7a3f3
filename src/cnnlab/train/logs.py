"""metrics.jsonl: one JSON object a line, appended as the run goes."""

import json
from pathlib import Path


class MetricsLog:
    """Appends records to `path`; on resume, drops lines written after the checkpoint.

    A run killed between a checkpoint and the next one wrote lines for steps
    it will replay, and a finished run wrote a final test line; dropping them
    keeps the file identical to an uninterrupted run's.
    """

    def __init__(self, path: Path, *, resume_step: int):
        self.path = path
        kept = [r for r in read(path) if r["step"] <= resume_step and r["split"] != "test"]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def append(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

"""The sweep report: `report.md` and `report.png` from the job directories of a multirun.

    cnnlab-report multirun/2024-05-01_12-00-00

A job directory is any directory under the sweep that holds `summary.json`
(finished), `error.txt` (failed: the entry point writes it before re-raising)
or `.hydra/overrides.yaml` (started, never finished). Hydra's multirun jobs
(`<sweep>/<n>/`) and a vmap sweep's variants (`<run>/<i>/`, also inside a
multirun job: `<sweep>/<n>/<i>/`) are read alike.

`report.md` holds one row per job, best val top-1 first, with the overrides
that differ between jobs, test top-1 and top-5, best val top-1, best epoch,
epochs run, the train-val top-1 gap at the best epoch, wall time and images/s.
Seeds and cross-validation folds are replicates: with `seed` or
`data.kfold.fold` among the varying overrides, a second table gives the mean
± std over them of each setting. Failed and unfinished jobs follow, each with its
error; they never stop the report.
"""

import dataclasses
import json
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from cnnlab.report import sweep_figure

SKIP_DIRS = {".hydra", "checkpoints", "tensorboard"}  # never job directories
SEARCH_RESULTS = "optimization_results.yaml"  # what Hydra's Optuna sweeper writes at the end of a search
REPLICATE_KEYS = ("seed", "data.kfold.fold")  # repeats of one setting, averaged in the second table


@dataclasses.dataclass
class JobResult:
    name: str  # the job directory, relative to the sweep directory
    overrides: dict[str, str]  # key -> value, from .hydra/overrides.yaml
    summary: dict | None  # summary.json, when the job finished
    records: list[dict]  # metrics.jsonl
    error: str | None  # error.txt, when the job failed

    @property
    def finished(self) -> bool:
        return self.summary is not None

    @property
    def status(self) -> str:
        return "finished" if self.finished else "failed" if self.error else "did not finish"

    def best_val_top1(self) -> float:
        return self.summary["best_val_top1"] if self.finished else -math.inf

    def gap(self) -> float | None:
        """Train minus val top-1 at the best epoch: how far the model fits what it does not generalize."""
        at_best = {r["split"]: r["top1"] for r in self.records if r["epoch"] == (self.summary or {}).get("best_epoch")}
        return at_best["train"] - at_best["val"] if {"train", "val"} <= set(at_best) else None

    def images_per_s(self) -> float | None:
        rates = [r["images_per_s"] for r in self.records if r["split"] == "train" and "images_per_s" in r]
        return float(np.mean(rates)) if rates else None


def find_jobs(root: Path) -> list[JobResult]:
    """Every job directory under `root` (or `root` itself for a single run), in path order."""
    marks = ("summary.json", "error.txt", ".hydra/overrides.yaml")
    found = []
    for directory, subdirs, _ in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIP_DIRS)
        if any((Path(directory) / mark).exists() for mark in marks):
            found.append(Path(directory))
    # A vmap sweep's own directory (or its multirun job) groups its variants: it is a job
    # only when it failed as a whole.
    groups = {p for p in found for q in found if q != p and p in q.parents}
    jobs = [p for p in found if p not in groups or (p / "error.txt").exists()]
    return [read_job(root, p) for p in sorted(jobs, key=lambda p: _natural(p.relative_to(root)))]


def _natural(path: Path) -> list:
    """'10' after '9': job numbers compare as numbers."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.parts]


def read_job(root: Path, path: Path) -> JobResult:
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.exists() else []
    parsed = dict(o.lstrip("+~").split("=", 1) for o in overrides or [] if "=" in o)
    summary_file, error_file = path / "summary.json", path / "error.txt"
    summary, error = None, error_file.read_text().strip() if error_file.exists() else None
    if summary_file.exists():
        try:
            summary, error = json.loads(summary_file.read_text()), None
        except json.JSONDecodeError as e:
            error = f"summary.json is unreadable: {e}"
    return JobResult(
        name=str(path.relative_to(root)) if path != root else ".",
        overrides=parsed,
        summary=summary,
        records=read_jsonl(path / "metrics.jsonl"),
        error=error,
    )


def read_jsonl(path: Path) -> list[dict]:
    """metrics.jsonl's records; a line cut short by a killed job is left out."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def varying_keys(jobs: list[JobResult]) -> list[str]:
    """The override keys whose values are not the same in every job, in first-seen order."""
    keys = list(dict.fromkeys(k for job in jobs for k in job.overrides))
    return [k for k in keys if len({job.overrides.get(k) for job in jobs}) > 1]


def setting_of(job: JobResult, keys: list[str]) -> tuple:
    """What a job tried, apart from its seed or fold: the values of the varying keys but those."""
    return tuple((k, job.overrides.get(k)) for k in keys if k not in REPLICATE_KEYS)


def write(root: Path, extra_x: tuple[str, ...] = (), jobs: list[JobResult] | None = None,
          selected: list[str] = ()) -> tuple[Path, Path]:  # fmt: skip
    """Write `root/report.md` and `root/report.png` (and `report_<x>.png` per extra x axis).
    `selected`: a search's section on its selected trial (`analysis.selection.markdown`)."""
    root = Path(root)
    jobs = find_jobs(root) if jobs is None else jobs
    if not jobs:
        raise FileNotFoundError(f"{root} holds no job directories (summary.json, error.txt or .hydra/overrides.yaml)")
    keys = varying_keys(jobs)
    (root / "report.md").write_text(markdown(root, jobs, keys, selected))
    settings = [setting_of(job, keys) for job in jobs]
    sweep_figure.plot(jobs, settings, root / "report.png")
    for x in extra_x:
        sweep_figure.plot(jobs, settings, root / f"report_{x}.png", x=x)
    return root / "report.md", root / "report.png"


def markdown(root: Path, jobs: list[JobResult], keys: list[str], selected: list[str] = ()) -> str:
    finished = sorted((j for j in jobs if j.finished), key=lambda j: -j.best_val_top1())
    others = [j for j in jobs if not j.finished]
    lines = [f"# Sweep report: {root.name}", "",
             f"{len(jobs)} jobs: {len(finished)} finished, {len(others)} failed or unfinished.", ""]  # fmt: skip
    lines += _job_table(finished + others, keys)
    if selected:
        lines += ["", *selected]
    replicates = [k for k in keys if k in REPLICATE_KEYS]
    if replicates and finished:
        over = " and ".join({"seed": "seeds", "data.kfold.fold": "folds"}[k] for k in replicates)
        lines += ["", f"## Mean ± std over {over}", ""] + _replicate_table(finished, keys)
    if others:
        lines += ["", "## Failed jobs", ""]
        for job in others:
            lines += [f"### {job.name}: {job.status}", "", _overrides_text(job, keys), ""]
            lines += ["```", _tail(job.error or "no summary.json and no error.txt: stopped from outside?"), "```", ""]
    lines += ["", "![val loss and top-1 by epoch](report.png)", ""]
    return "\n".join(lines)


def _job_table(jobs: list[JobResult], keys: list[str]) -> list[str]:
    head = ["job", *keys, "test top-1", "test top-5", "best val top-1", "best epoch", "epochs run",
            "train−val gap", "wall (s)", "images/s"]  # fmt: skip
    rows = []
    for job in jobs:
        cells = [job.name, *(job.overrides.get(k, "") for k in keys)]
        if job.finished:
            s = job.summary
            cells += [_f(s["test_top1"]), _f(s.get("test_top5")), _f(s["best_val_top1"]), str(s["best_epoch"])]
            cells += [str(s["epochs_run"]), _f(job.gap()), f"{s['wall_s']:.1f}", _f(job.images_per_s(), ".0f")]
        else:
            cells += [f"**{job.status}**: {_last_line(job.error)}"] + [""] * 7
        rows.append(cells)
    return _table(head, rows)


def _replicate_table(jobs: list[JobResult], keys: list[str]) -> list[str]:
    groups: dict[tuple, list[JobResult]] = defaultdict(list)
    for job in jobs:
        groups[setting_of(job, keys)].append(job)
    columns = {
        "test top-1": lambda j: j.summary["test_top1"],
        "test top-5": lambda j: j.summary.get("test_top5"),
        "best val top-1": lambda j: j.summary["best_val_top1"],
        "train−val gap": JobResult.gap,
    }
    ranked = sorted(groups.items(), key=lambda item: -np.mean([j.best_val_top1() for j in item[1]]))
    rows = []
    for setting, members in ranked:
        cells = [value for _, value in setting] + [str(len(members))]
        cells += [_mean_std([get(j) for j in members]) for get in columns.values()]
        cells.append(_mean_std([j.summary["wall_s"] for j in members], ".1f"))
        rows.append(cells)
    return _table([k for k in keys if k not in REPLICATE_KEYS] + ["runs", *columns, "wall (s)"], rows)


def _mean_std(values: list, spec: str = ".4f") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    if len(values) == 1:
        return _f(values[0], spec)
    mean, std = np.mean(values), np.std(values, ddof=1)  # the sample std over the replicates
    return f"{mean:{spec}} ± {std:{spec}}"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    escape = lambda cell: str(cell).replace("|", "\\|")  # noqa: E731
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + [
        "| " + " | ".join(escape(c) for c in row) + " |" for row in rows
    ]


def _f(value, spec: str = ".4f") -> str:
    return "–" if value is None else format(value, spec)


def _overrides_text(job: JobResult, keys: list[str]) -> str:
    shown = [f"{k}={job.overrides[k]}" for k in keys if k in job.overrides]
    return "overrides: `" + " ".join(shown) + "`" if shown else "overrides: none"


def _last_line(error: str | None) -> str:
    lines = [line for line in (error or "").splitlines() if line.strip()]
    return lines[-1].strip()[:200] if lines else "no summary.json"


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])

"""`cnnlab-report <multirun dir>`: report.md and report.png, failed jobs included."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from cnnlab.report import sweep
from tests.conftest import REPO


def write_job(path, overrides, *, best_val=None, test=0.5, epochs=3, error=None, summary=True):
    """A job directory as cnnlab-train writes it; val top-1 climbs to `best_val` at the last epoch."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    records = []
    for epoch in range(1, epochs + 1):
        val = best_val * epoch / epochs
        records += [
            {"step": 10 * epoch, "epoch": epoch, "split": "train", "loss": 1 / epoch, "top1": val + 0.1,
             "images_per_s": 1000.0, "wall_s": 2.0 * epoch},
            {"step": 10 * epoch, "epoch": epoch, "split": "val", "loss": 1.5 / epoch, "top1": val,
             "wall_s": 2.0 * epoch},
        ]  # fmt: skip
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    if error is not None:
        (path / "error.txt").write_text(error)
    elif summary:
        (path / "summary.json").write_text(json.dumps({
            "test_top1": test, "test_top5": 0.9, "test_loss": 0.3, "best_val_top1": best_val, "best_epoch": epochs,
            "epochs_run": epochs, "stopped_early": False, "steps": 10 * epochs, "wall_s": 2.0 * epochs,
            "params": 100, "device_count": 1,
        }))  # fmt: skip


@pytest.fixture
def multirun(tmp_path):
    """adam and sgd x seeds 0, 1, plus a failed and an unfinished job (a fixed key, data=digits, everywhere)."""
    vals = {("adam", 0): 0.90, ("adam", 1): 0.86, ("sgd", 0): 0.70, ("sgd", 1): 0.80}
    for n, ((opt, seed), val) in enumerate(vals.items()):
        write_job(tmp_path / str(n), [f"optimizer={opt}", f"seed={seed}", "data=digits"], best_val=val, test=val - 0.02)
    trace = "Traceback (most recent call last):\n  File ...\n"
    trace += "ValueError: trainer.batch_size=5000 is larger than the training set"
    write_job(tmp_path / "4", ["optimizer=rmsprop", "seed=0", "data=digits"], best_val=0.5, error=trace)
    write_job(tmp_path / "5", ["optimizer=rmsprop", "seed=1", "data=digits"], best_val=0.5, summary=False)
    return tmp_path, vals


def table_rows(text: str, header_start: str) -> list[list[str]]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_rows_sorted_by_best_val_with_the_varying_overrides(multirun):
    root, _ = multirun
    sweep.write(root)
    text = (root / "report.md").read_text()
    assert "| job | optimizer | seed | test top-1 | test top-5 | best val top-1 | best epoch | epochs run |" in text
    assert "data=digits" not in text.split("## Failed")[0]  # the same in every job: not a column
    rows = table_rows(text, "| job |")
    assert [r[0] for r in rows] == ["0", "1", "3", "2", "4", "5"]  # best val 0.90, 0.86, 0.80, 0.70, then failures
    assert rows[0][3:8] == ["0.8800", "0.9000", "0.9000", "3", "3"]
    assert rows[0][8] == "0.1000" and rows[0][9] == "6.0" and rows[0][10] == "1000"  # gap, wall, images/s


def test_mean_and_std_over_seeds_per_setting(multirun):
    root, vals = multirun
    sweep.write(root)
    rows = table_rows((root / "report.md").read_text(), "| optimizer | runs |")
    assert [r[:2] for r in rows] == [["adam", "2"], ["sgd", "2"]]  # failed rmsprop runs are not averaged
    sgd = [vals[("sgd", 0)], vals[("sgd", 1)]]
    assert rows[1][4] == f"{np.mean(sgd):.4f} ± {np.std(sgd, ddof=1):.4f}" == "0.7500 ± 0.0707"


def test_failed_and_unfinished_jobs_are_listed_with_their_error(multirun):
    root, _ = multirun
    sweep.write(root)
    text = (root / "report.md").read_text()
    rows = {r[0]: r for r in table_rows(text, "| job |")}
    assert rows["4"][3] == "**failed**: ValueError: trainer.batch_size=5000 is larger than the training set"
    assert rows["5"][3].startswith("**did not finish**")
    failed = text.split("## Failed jobs")[1]
    assert "### 4: failed" in failed and "Traceback (most recent call last):" in failed
    assert "### 5: did not finish" in failed and "overrides: `optimizer=rmsprop seed=1`" in failed
    assert "6 jobs: 4 finished, 2 failed or unfinished." in text


def test_figure_has_one_line_per_setting(multirun):
    root, _ = multirun
    sweep.write(root, extra_x=("step", "wall_s"))
    for name in ("report.png", "report_step.png", "report_wall_s.png"):
        assert (root / name).stat().st_size > 20_000


def test_folds_are_replicates_and_vmap_variants_nest_in_multirun_jobs(tmp_path):
    """A multirun of vmap sweeps: <sweep>/<job>/<variant>; a job that failed as a whole is one row."""
    for job, fold in ((0, 0), (1, 1)):
        (tmp_path / str(job) / ".hydra").mkdir(parents=True)
        for variant, rate in enumerate((0.1, 0.01)):
            overrides = [f"data.kfold.fold={fold}", f"optimizer.learning_rate={rate}"]
            write_job(tmp_path / str(job) / str(variant), overrides, best_val=0.5 + rate + fold / 10)
    (tmp_path / "2" / ".hydra").mkdir(parents=True)
    (tmp_path / "2" / "error.txt").write_text("RuntimeError: out of memory\n")
    jobs = sweep.find_jobs(tmp_path)
    assert [j.name for j in jobs] == ["0/0", "0/1", "1/0", "1/1", "2"]
    sweep.write(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "## Mean ± std over folds" in text
    rows = table_rows(text, "| optimizer.learning_rate | runs |")
    assert rows[0][:2] == ["0.1", "2"] and rows[0][4] == "0.6500 ± 0.0707"  # best val top-1 over the folds


def test_command_line_on_a_directory_without_jobs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cnnlab.cli.report", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "holds no job directories" in proc.stderr


def test_a_failing_job_neither_stops_the_multirun_nor_the_report(cli, tmp_path):
    """Job 0 fails at setup; job 1 still trains; the report lists job 0 with its error."""
    proc = cli("trainer.batch_size=5000,16", "debug=default", f"hydra.sweep.dir={tmp_path}", "-m", check=False)
    assert proc.returncode != 0, proc.stdout + proc.stderr  # Hydra re-raises the failure once every job has run
    assert (tmp_path / "0" / "error.txt").exists(), proc.stderr
    assert "larger than the training set" in (tmp_path / "0" / "error.txt").read_text()
    assert json.loads((tmp_path / "1" / "summary.json").read_text())["steps"] == 1

    report = subprocess.run([sys.executable, "-m", "cnnlab.cli.report", str(tmp_path)], capture_output=True,
                            text=True, cwd=REPO, check=True)  # fmt: skip
    assert report.stdout.split() == [str(tmp_path / "report.md"), str(tmp_path / "report.png")]
    rows = {r[0]: r for r in table_rows((tmp_path / "report.md").read_text(), "| job |")}
    assert rows["1"][1] == "16" and rows["0"][1] == "5000"
    assert rows["0"][2].startswith("**failed**: ValueError: trainer.batch_size=5000 is larger than the training set")


def test_a_sweep_of_many_settings_keeps_its_plots_readable(tmp_path):
    """35 settings (7 optimizers x 5 rates): the legend grows the figure, not shrinks the plots,
    and no two settings share both colour and line style."""
    from cnnlab.report import sweep_figure

    jobs, settings = [], []
    for n in range(35):
        write_job(tmp_path / str(n), [f"optimizer=opt{n // 5}", f"optimizer.learning_rate={10.0 ** -(n % 5)}"],
                  best_val=0.5)  # fmt: skip
    for job in sweep.find_jobs(tmp_path):
        jobs.append(job)
        settings.append(sweep.setting_of(job, sweep.varying_keys(sweep.find_jobs(tmp_path))))
    fig = sweep_figure.figure(jobs, settings)
    height = fig.get_size_inches()[1]
    assert all(ax.get_position().height * height > 3.0 for ax in fig.axes)  # inches of plot, as with 2 settings
    lines = fig.axes[0].get_lines()
    assert len(lines) == 35 and len({(str(line.get_color()), line.get_linestyle()) for line in lines}) == 35

"""A run stopped by SIGINT or SIGTERM, in training or while compiling, ends with one line and 130/143, and resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cnnlab import stopping
from cnnlab.train import loop
from tests.conftest import REPO


def start(run_dir, data_dir, *overrides):
    env = {**os.environ, "TFDS_DATA_DIR": str(data_dir)}
    return subprocess.Popen([sys.executable, "-m", "cnnlab.train", "logger.progress_bar=false",
                             f"hydra.run.dir={run_dir}", *overrides], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip


def wait_for(condition, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "the run never got there"
        time.sleep(0.05)


def test_sigint_in_training_exits_130_and_the_same_command_resumes(cli, data_dir, tmp_path):
    run_dir = tmp_path / "run"
    proc = start(run_dir, data_dir, "trainer.epochs=3")
    wait_for(lambda: any(p.name.isdigit() for p in (run_dir / "checkpoints").glob("*")))  # epoch 1 saved
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert stderr.strip().splitlines()[-1] == ("cnnlab-train: stopped by SIGINT; what was written is kept, and "
                                               "the same command resumes from the last checkpoint")  # fmt: skip
    assert not (run_dir / "summary.json").exists()
    cli(f"hydra.run.dir={run_dir}", "trainer.epochs=3")
    assert json.loads((run_dir / "summary.json").read_text())["epochs_run"] == 3
    epochs = [r["epoch"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
              if r["split"] == "val"]  # fmt: skip
    assert epochs == [1, 2, 3]


@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_compiling_exits_with_its_status_and_no_traceback(data_dir, tmp_path, signum, status):
    run_dir = tmp_path / "run"
    proc = start(run_dir, data_dir, "trainer.epochs=1", "compilation_cache=null")
    # The data line is logged just before the steps are traced and compiled.
    wait_for(lambda: (run_dir / "train.log").exists() and " images of " in (run_dir / "train.log").read_text())
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == status, stderr[-2000:]  # not -11: the segfault of Ctrl-C while compiling
    assert stderr.strip().splitlines()[-1].startswith(f"cnnlab-train: stopped by {signal.Signals(signum).name}")
    assert "Traceback" not in stderr


@pytest.fixture
def stop_handlers():
    """cnnlab's SIGINT/SIGTERM handlers in this process for one test, then pytest's own again."""
    saved = {signum: signal.getsignal(signum) for signum in stopping.EXIT_STATUS}
    stopping.on_signals()
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)
    stopping._received.clear()


def lost_in_a_bare_except() -> None:
    """JAX's tracing does this at every shape check (`core.is_constant_dim`)."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs at one of these bytecodes
            pass
    except:  # noqa: E722
        pass


def test_a_signal_whose_exception_a_bare_except_lost_still_stops_the_run_before_its_next_step(
        stop_handlers, compose, tmp_path):  # fmt: skip
    lost_in_a_bare_except()
    with pytest.raises(stopping.Stopped) as stopped:
        loop.run(compose("trainer.epochs=1"), tmp_path)
    assert stopped.value.signum == signal.SIGTERM
    assert not (tmp_path / "summary.json").exists()
    assert json.loads((tmp_path / "metrics.jsonl").read_text() or "null") is None  # not one step taken

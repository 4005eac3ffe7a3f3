"""JAX's persistent compilation cache: a later run, in another process, reads back what an earlier one compiled."""

import os

from cnnlab import runtime


def cached(directory) -> set[str]:
    return {p.name for p in directory.iterdir()} if directory.exists() else set()


def test_a_job_that_differs_only_in_its_seed_compiles_nothing(cli, tmp_path):
    cache = tmp_path / "cache"
    common = ("trainer.epochs=1", f"compilation_cache={cache}")
    cli(f"hydra.run.dir={tmp_path / 'seed0'}", "seed=0", *common)
    first = cached(cache)
    assert len(first) >= 3  # the train step, the eval step, the initial state
    cli(f"hydra.run.dir={tmp_path / 'seed1'}", "seed=1", *common)
    assert cached(cache) == first  # every program of the second process was read back, none compiled anew
    cli(f"hydra.run.dir={tmp_path / 'bigger'}", "trainer.batch_size=64", *common)
    assert cached(cache) > first  # another batch shape is another program


def test_compilation_cache_null_writes_no_cache(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNLAB_COMPILATION_CACHE", str(tmp_path / "cache"))  # the default the run would use
    cli(f"hydra.run.dir={tmp_path / 'run'}", "trainer.epochs=1", "compilation_cache=null",
        "data.train_subset=200")  # fmt: skip
    assert not (tmp_path / "cache").exists()
    cli(f"hydra.run.dir={tmp_path / 'on'}", "trainer.epochs=1", "data.train_subset=200")
    assert any((tmp_path / "cache").iterdir())  # the same run without null writes there


def test_a_jobs_share_of_a_gpu_is_its_preallocation(monkeypatch):
    monkeypatch.delenv("XLA_PYTHON_CLIENT_MEM_FRACTION", raising=False)
    runtime.share_gpu(1)  # a GPU of its own: JAX's default (75%)
    assert "XLA_PYTHON_CLIENT_MEM_FRACTION" not in os.environ
    runtime.share_gpu(0.25)  # four jobs on one GPU
    assert os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.225"
    monkeypatch.setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.1")
    runtime.share_gpu(0.5)  # the user's own setting stays
    assert os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.1"

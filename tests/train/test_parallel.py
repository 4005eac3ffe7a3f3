"""One device against many: simulated CPU devices and two processes, in subprocesses."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
from jax import lax

from cnnlab.train import parallel
from tests.conftest import REPO


def run_script(*args: str, devices: int, timeout: float = 300) -> subprocess.Popen:
    # Simulated devices are CPU devices, also on a machine with a GPU (whose one device would be taken).
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen([sys.executable, "-m", "tests.train.multidevice", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def result(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])  # gloo prints its own lines before ours


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="YNNPACK and its options are XLA:CPU's")
def test_jit_compiles_convolutions_without_ynnpack_on_the_cpu():
    """A run's programs use XLA's own convolution (`backend.CPU_COMPILER_OPTIONS`),
    where XLA's defaults hand it to YNNPACK; the numbers agree to float tolerance."""
    x = jax.random.normal(jax.random.key(0), (8, 16, 16, 32))
    w = jax.random.normal(jax.random.key(1), (3, 3, 32, 32))

    def weight_grad(w, x):
        conv = lambda w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))  # noqa: E731
        return jax.grad(lambda w: (conv(w) ** 2).sum())(w)

    par = parallel.create("jit")
    assert par.compiler_options == {"xla_cpu_experimental_ynn_fusion_type": ""}
    ours, defaults = par.compile_eval(weight_grad), jax.jit(weight_grad)
    assert "ynn_fusion" not in ours.lower(w, x).compile().as_text()
    assert "ynn_fusion" in defaults.lower(w, x).compile().as_text()
    expected = defaults(w, x)  # sums of 2,048 products: compared relative to the largest
    np.testing.assert_allclose(ours(w, x), expected, atol=1e-5 * float(np.abs(expected).max()))


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the -O1 init options are for XLA:CPU")
def test_jit_init_compiles_at_o1_and_gives_the_same_state():
    """The initial state's one-shot program is compiled at -O1 (`backend.CPU_INIT_OPTIONS`):
    the same bits as the default -O3 build."""
    from cnnlab.models import registry
    from cnnlab.train import state as train_state

    init = train_state.init_fn(registry.create("lenet5", num_classes=10), optax.adam(1e-3), (32, 32, 1))
    par = parallel.create("jit")
    ours = par.init(init, seed=3)
    o3 = jax.jit(init, compiler_options=par.compiler_options)(np.int32(3))
    assert jax.tree.structure(ours) == jax.tree.structure(o3)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(o3)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_one_device_equals_eight_for_jit_and_pmap():
    """Three steps on 1 device and on 8: same params, BatchNorm statistics and loss,
    for a small BN net and the zoo's ResNet-18 (CIFAR stem, narrow)."""
    out = result(run_script("one-vs-many", devices=8))
    assert out["devices"] == 8
    for case in ("bn_net/jit", "bn_net/pmap", "resnet18/jit", "resnet18/pmap"):
        assert out[case]["params"] < 1e-5, case
        assert out[case]["batch_stats"] < 1e-5, case
        assert out[case]["loss"] < 1e-5, case
    assert out["indivisible_error"] == "trainer.batch_size=12 does not divide over 8 devices (1 hosts): use a multiple of 8"


@pytest.mark.parametrize("strategy", ["jit", "pmap"])
def test_two_processes_match_one(strategy):
    """2 processes x 2 devices (jax.distributed, gloo) equal 1 process x 4 devices after 3 steps, with
    BatchNorm's statistics over the global batch. (pmap over each process's local devices alone,
    as before, let the processes drift apart from the first step.)"""
    port = free_port()
    procs = [run_script("multiprocess", str(i), "2", str(port), strategy, devices=2) for i in range(2)]
    single = result(run_script("multiprocess", "0", "1", str(free_port()), strategy, devices=4))
    first, second = (result(p) for p in procs)
    assert (first["devices"], first["processes"]) == (4, 2) and (single["devices"], single["processes"]) == (4, 1)
    assert first["loss"] == second["loss"]
    np.testing.assert_allclose(first["loss"], single["loss"], rtol=1e-6)
    for a, b in zip(first["params"], single["params"]):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-6)


def test_a_multihost_multirun_initializes_the_distributed_runtime_once(cli, tmp_path):
    """Hydra runs a multirun's jobs in one process: the second job must not call
    jax.distributed.initialize() again (it raised "should only be called once")."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sweep = tmp_path / "sweep"
    cli("-m", "seed=0,1", "trainer.epochs=1", "data.train_subset=64", "logger.tensorboard=false",
        "parallel.multihost=true", f"parallel.coordinator_address=127.0.0.1:{port}", "parallel.num_processes=1",
        "parallel.process_id=0", f"hydra.sweep.dir={sweep}")  # fmt: skip
    for job in ("0", "1"):
        assert json.loads((sweep / job / "summary.json").read_text())["steps"] == 64 // 32
        assert not (sweep / job / "error.txt").exists()

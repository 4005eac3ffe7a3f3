"""`cnnlab.backend`: the one place that picks the code and the XLA options per backend.

What the policies decide (the code a traced LeNet-5 gradient contains, the
options a program compiles with), that stock and auto agree on the numbers,
that a bad mode is refused by name, and that the models and their configs
carry no backend switch of their own.
"""

import collections
import dataclasses
import functools
import importlib
import pkgutil
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from jax import lax

from cnnlab import backend, models
from cnnlab.models import layers
from cnnlab.train import parallel

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
SINGLE_CPU = jax.default_backend() == "cpu" and jax.device_count() == 1
needs_single_cpu = pytest.mark.skipif(not SINGLE_CPU, reason="auto's CPU choices are for a single CPU device")
needs_cpu = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the YNNPACK options are XLA:CPU's")


def _primitives(jaxpr, counts=None) -> collections.Counter:
    """Every primitive of a jaxpr, sub-jaxprs (jit, custom_vjp, ...) included."""
    counts = collections.Counter() if counts is None else counts
    for eqn in jaxpr.eqns:
        counts[eqn.primitive.name] += 1
        for param in eqn.params.values():
            for sub in param if isinstance(param, (list, tuple)) else [param]:
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns"):
                    _primitives(inner, counts)
    return counts


@functools.cache
def _lenet5():
    """(loss of params, params) of LeNet-5 on a fixed random batch; built once."""
    model = models.create("lenet5", num_classes=10, activation="relu", pooling="max")
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((16, 32, 32, 1), dtype=np.float32))
    labels = jnp.asarray(rng.integers(0, 10, 16))
    params = model.init(jax.random.key(0), x[:1])["params"]

    def loss(params):
        logits = model.apply({"params": params}, x)
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1))

    return loss, params


def _lenet5_grad_primitives(mode) -> collections.Counter:
    loss, params = _lenet5()
    with backend.use(mode):
        return _primitives(jax.make_jaxpr(jax.grad(loss))(params).jaxpr)


def test_stock_traces_xla_convolutions_and_reduce_window_only():
    prims = _lenet5_grad_primitives("stock")
    assert prims["conv_general_dilated"] == 8  # C1, C3, C5: forward, weight and input gradients (not C1's input's)
    assert prims["dot_general"] == 6  # F6 and output only: forward, weight and input gradients
    assert prims["custom_vjp_call"] == 0  # none of conv_cpu's tap forms
    assert prims["reduce_window_max"] == 2 and prims["select_and_scatter_add"] == 2  # flax's max_pool, S2 and S4


@needs_single_cpu
def test_auto_traces_the_taps_and_the_tiles_on_one_cpu_device():
    prims = _lenet5_grad_primitives("auto")
    assert prims["custom_vjp_call"] == 3  # every convolution goes through conv_cpu
    assert prims["dot_general"] > 6  # the taps' products besides the dense layers'
    assert prims["reduce_window_max"] == 0 and prims["select_and_scatter_add"] == 0  # the tiled view
    assert _lenet5_grad_primitives(backend.auto()) == prims == _lenet5_grad_primitives("auto")


def test_the_conv_layer_calls_the_function_the_policy_names():
    x = jnp.ones((2, 8, 8, 3))
    conv = layers.Conv(4, (3, 3))
    variables = conv.init(jax.random.key(0), x)
    for name in ("xla", "taps"):
        with backend.use(dataclasses.replace(backend.STOCK, conv=name)):
            prims = _primitives(jax.make_jaxpr(lambda x: conv.apply(variables, x))(x).jaxpr)
        assert prims["custom_vjp_call"] == (name == "taps") and prims["conv_general_dilated"] == 1
    own = lambda *args, **kwargs: lax.conv_general_dilated(*args, **kwargs) + 1.0  # noqa: E731
    with backend.use(dataclasses.replace(backend.STOCK, conv="taps")):  # an explicit function wins
        y = layers.Conv(4, (3, 3), conv_general_dilated=own).apply(variables, x)
    np.testing.assert_allclose(y, conv.apply(variables, x) + 1.0, rtol=1e-6)


def test_stock_and_auto_give_the_same_lenet5_loss_and_gradients():
    loss, params = _lenet5()
    results = {}
    for mode in backend.MODES:
        with backend.use(mode):
            step = backend.jit(jax.value_and_grad(loss))
        results[mode] = step(params)  # called outside `use`: traced with the policy of its creation
    (auto_loss, auto_grads), (stock_loss, stock_grads) = results["auto"], results["stock"]
    np.testing.assert_allclose(auto_loss, stock_loss, rtol=1e-6)
    for got, want in zip(jax.tree.leaves(auto_grads), jax.tree.leaves(stock_grads)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(want))))


def test_backend_jit_keeps_the_policy_it_was_created_under():
    loss, params = _lenet5()
    with backend.use("stock"):
        stock_step = backend.jit(jax.grad(loss))
    text = stock_step.lower(params).as_text()  # lowered outside `use`: still stock's code
    assert "select_and_scatter" in text and "reduce_window" in text
    if SINGLE_CPU:
        auto_text = backend.jit(jax.grad(loss)).lower(params).as_text()
        assert "select_and_scatter" not in auto_text and "reduce_window" not in auto_text


def _weight_grad(w, x):
    conv = lambda w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))  # noqa: E731
    return jax.grad(lambda w: (conv(w) ** 2).sum())(w)


@needs_cpu
def test_backend_jit_compiles_with_the_policy_options():
    """XLA:CPU's defaults hand this convolution to YNNPACK; auto's options keep it in XLA's own code."""
    w, x = jnp.ones((3, 3, 32, 32)), jnp.ones((8, 16, 16, 32))  # the shapes tests/train/test_parallel.py checks
    compiled = lambda fn: fn.lower(w, x).compile().as_text()  # noqa: E731
    assert "ynn_fusion" in compiled(jax.jit(_weight_grad))
    with backend.use("auto"):
        assert "ynn_fusion" not in compiled(backend.jit(_weight_grad))
        # options given to backend.jit are merged over the policy's, not in place of them
        assert "ynn_fusion" not in compiled(backend.jit(_weight_grad, compiler_options={"xla_backend_optimization_level": 3}))  # fmt: skip
    with backend.use("stock"):
        assert "ynn_fusion" in compiled(backend.jit(_weight_grad))


@needs_cpu
def test_compiler_options_per_policy():
    with backend.use("auto"):
        assert backend.compiler_options() == {"xla_cpu_experimental_ynn_fusion_type": ""}
        assert backend.init_compiler_options() == {"xla_cpu_experimental_ynn_fusion_type": "",
                                                   "xla_backend_optimization_level": 1}  # fmt: skip
        assert parallel.create("jit").compiler_options == backend.compiler_options()
    with backend.use("stock"):
        assert backend.compiler_options() is None and backend.init_compiler_options() is None
        par = parallel.create("jit")  # the strategy takes the policy in force when it is created
        assert par.compiler_options is None and par.init_compiler_options is None


def test_auto_per_backend(monkeypatch):
    """One CPU device: every CPU path; a simulated CPU mesh: XLA's code with the CPU options;
    GPUs and TPUs: XLA's code and options (tiled pooling everywhere)."""
    cpu = {"xla_cpu_experimental_ynn_fusion_type": ""}  # XLA's own convolutions, not YNNPACK's
    for platform, devices, expected in [
        ("cpu", 1, backend.Policy("taps", "dot", "tiles", cpu)),
        ("cpu", 8, backend.Policy("xla", "xla", "tiles", cpu)),
        ("gpu", 1, backend.Policy("xla", "xla", "tiles", None)),
        ("tpu", 4, backend.Policy("xla", "xla", "tiles", None)),
    ]:
        monkeypatch.setattr(jax, "default_backend", lambda p=platform: p)
        monkeypatch.setattr(jax, "device_count", lambda d=devices: d)
        assert backend.auto() == expected
        assert backend.current() == expected  # no `use`: auto
    assert backend.STOCK == backend.Policy("xla", "xla", "window", None)


def test_use_overrides_in_a_context_and_restores(monkeypatch):
    policy = backend.Policy("xla", "dot", "window")
    with backend.use(policy):
        assert backend.current() is policy
        with backend.use("stock"):
            assert backend.current() is backend.STOCK
        assert backend.current() is policy
    assert backend.current() == backend.auto()
    # "auto" is resolved when asked, not on entry: a run enters `use` before JAX's distributed start
    monkeypatch.setattr(jax, "default_backend", lambda: pytest.fail("use('auto') asked for the backend"))
    with backend.use("auto"):
        pass


def test_a_bad_mode_or_choice_is_refused_by_name():
    with pytest.raises(ValueError, match=r"backend must be one of auto, stock \(or a backend.Policy\), got 'nope'"):
        with backend.use("nope"):
            pass
    with pytest.raises(ValueError, match=r"backend.Policy: batch_norm must be one of xla, dot, got 'fast'"):
        backend.Policy("xla", "fast", "tiles")
    with pytest.raises(ValueError, match=r"conv must be one of xla, taps, got 'matmul'"):
        backend.Policy("matmul", "xla", "tiles")


def _model_classes():
    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"cnnlab.models.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, nn.Module) and value.__module__ == module.__name__:
                yield value


SWITCHES = ("conv_impl", "sums", "impl")


def test_models_and_their_configs_carry_no_backend_switch():
    classes = list(_model_classes())
    assert {"LeNet5", "ResNet", "Conv", "BatchNorm", "MaxPool", "MLP"} <= {c.__name__ for c in classes}
    for cls in classes:
        fields = {f.name for f in dataclasses.fields(cls)}
        assert not fields & set(SWITCHES), f"{cls.__module__}.{cls.__name__} declares {fields & set(SWITCHES)}"
    for path in sorted(CONF.glob("*.yaml")):
        assert not set(yaml.safe_load(path.read_text())) & set(SWITCHES), path.name
    # `strict` is an arithmetic check, on every model with windows; the MLP has none
    assert "strict" in {f.name for f in dataclasses.fields(models.LeNet5)}
    with pytest.raises(TypeError, match="strict"):
        models.create("mlp", num_classes=2, strict=True)

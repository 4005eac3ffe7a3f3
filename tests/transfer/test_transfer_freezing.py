"""Strategies on a small ResNet: frozen stays frozen (params and BatchNorm statistics), no optimizer
state for frozen params, frozen BatchNorm in inference mode, the new head, and the config errors."""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from flax import traverse_util

from cnnlab import models, optim, transfer
from cnnlab.train import state as train_state
from cnnlab.train import steps
from cnnlab.transfer import checkpoints, freezing, heads, mapping

REPO = Path(__file__).resolve().parents[2]
SMALL = {"num_filters": 8, "cifar_stem": True, "stage_sizes": (1, 1)}  # a ResNet of two stages, one block each
SHAPE = (16, 16, 3)


def transfer_cfg(strategy: str, from_run, **changes) -> dict:
    """conf/transfer/none.yaml with `strategy`, `from_run` and nested `changes` (e.g. freeze={"stages": 2})."""
    cfg = yaml.safe_load((REPO / "conf" / "transfer" / "none.yaml").read_text())
    cfg.update(strategy=strategy, from_run=str(from_run))
    for key, value in changes.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) else value
    return cfg


def random_like(shapes, seed: int):
    """Arrays for a tree of shapes: kernels ~ N(0, 1/fan_in), BatchNorm means ~ N(0, 0.1), variances in [0.5, 1.5].

    Built with NumPy: compiling the models' initializers takes longer than these tests.
    """
    rng = np.random.default_rng(seed)

    def value(path, leaf):
        name, shape = path[-1].key, leaf.shape
        if name == "var":
            return rng.uniform(0.5, 1.5, shape).astype(leaf.dtype)
        if name == "scale":
            return rng.uniform(0.8, 1.2, shape).astype(leaf.dtype)
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 10
        return (rng.normal(size=shape) / np.sqrt(fan_in)).astype(leaf.dtype)

    return jax.tree_util.tree_map_with_path(value, shapes)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 'pretrained' 5-class ResNet with random weights and BatchNorm statistics, as a converted checkpoint."""
    model = models.create("resnet18", num_classes=5, **SMALL)
    variables = random_like(mapping.variable_shapes(model, SHAPE)[0], seed=42)
    directory = tmp_path_factory.mktemp("source")
    checkpoints.write(directory, variables, config={"model": {"name": "resnet18", **SMALL}})
    return directory, variables


def initial_state(plan, tx, seed: int = 0):
    """The state a run starts from (`plan.start` of a seeded state), its head drawn with NumPy."""
    abstract = jax.eval_shape(train_state.init_fn(plan.model, tx, SHAPE), seed)
    variables = random_like({"params": abstract.params, "batch_stats": abstract.batch_stats}, seed)
    state = train_state.TrainState(step=jnp.zeros((), jnp.int32), params=variables["params"],
                                   batch_stats=variables["batch_stats"], opt_state=None,
                                   rng=jax.random.PRNGKey(seed))  # fmt: skip
    return plan.start(state, tx)


def train(plan, steps_count: int = 20, seed: int = 0):
    """`steps_count` Adam steps of phase 0 on random images; returns (state after, state before)."""
    phases, _ = plan.phases(lambda scale: optim.build({"name": "adam", "learning_rate": 1e-2 * scale}),
                            boundary=10**9)  # fmt: skip
    phase = phases[0]
    start = initial_state(plan, phase.tx, seed)
    step = jax.jit(steps.make_train_step(phase.model, phase.tx, num_classes=3, learning_rate=phase.learning_rate))
    rng = np.random.default_rng(1)
    state = start
    for _ in range(steps_count):
        batch = {"image": rng.normal(size=(8, *SHAPE)).astype(np.float32),
                 "label": rng.integers(0, 3, 8).astype(np.int32)}  # fmt: skip
        state, _ = step(state, batch)
    return state, start


def prepare(cfg):
    return transfer.prepare(cfg, model=models.create("resnet18", num_classes=3, **SMALL), input_shape=SHAPE)


def flat(tree) -> dict:
    return traverse_util.flatten_dict(jax.device_get(tree))


def assert_frozen_unchanged_and_rest_trained(plan, after, start, pretrained):
    mask = flat(plan.masks[0])
    params, initial, started = flat(after.params), flat(pretrained["params"]), flat(start.params)
    frozen = [k for k in mask if mask[k]]
    trained = [k for k in mask if not mask[k]]
    assert frozen and trained
    for k in frozen:
        np.testing.assert_array_equal(params[k], initial[k], err_msg="/".join(k))  # bitwise
    for k in trained:  # the head starts from the seed, the rest from the pretrained values
        assert not np.array_equal(params[k], started[k]), "/".join(k)
        if k[0] not in plan.head:
            np.testing.assert_array_equal(started[k], initial[k])
    stats, initial_stats = flat(after.batch_stats), flat(pretrained["batch_stats"])
    frozen_bn = {path for path in plan.frozen_bn[0]}
    for k, value in stats.items():
        if k[:-1] in frozen_bn:
            np.testing.assert_array_equal(value, initial_stats[k], err_msg="/".join(k))
        else:
            assert not np.array_equal(value, initial_stats[k]), "/".join(k)
    return frozen, trained


def opt_state_size(opt_state) -> int:
    """Scalars of per-parameter optimizer state (step counters excluded)."""
    return sum(int(x.size) for x in jax.tree.leaves(opt_state) if np.ndim(x) > 0)


def test_feature_extractor_trains_only_the_head(source):
    directory, pretrained = source
    plan = prepare(transfer_cfg("feature_extractor", directory))
    after, start = train(plan)
    frozen, trained = assert_frozen_unchanged_and_rest_trained(plan, after, start, pretrained)
    assert {k[0] for k in trained} == {"fc"}
    assert len(plan.frozen_bn[0]) == 6  # every BatchNorm: the stem's, two per block, one projection
    head_size = sum(int(np.size(v)) for k, v in flat(after.params).items() if k[0] == "fc")
    assert opt_state_size(after.opt_state) == 2 * head_size  # Adam's m and v for the head only


def test_partial_freezes_the_first_stages(source):
    directory, pretrained = source
    plan = prepare(transfer_cfg("partial", directory, freeze={"stages": 2}))
    after, start = train(plan)
    frozen, trained = assert_frozen_unchanged_and_rest_trained(plan, after, start, pretrained)
    assert {freezing.stage_of("ResNet", k[0]) for k in frozen} == {"stem", "layer1"}
    assert {freezing.stage_of("ResNet", k[0]) for k in trained} == {"layer2", "fc"}
    trained_size = sum(int(np.size(flat(after.params)[k])) for k in trained)
    assert opt_state_size(after.opt_state) == 2 * trained_size


def test_frozen_batch_norm_runs_in_inference_mode(source):
    """With every BatchNorm frozen (and no dropout), a training forward pass is the eval one."""
    directory, _ = source
    plan = prepare(transfer_cfg("feature_extractor", directory))
    phases, _ = plan.phases(lambda scale: optim.build({"name": "adam", "learning_rate": 1e-3}), boundary=10**9)
    start = initial_state(plan, phases[0].tx)
    variables = {"params": start.params, "batch_stats": start.batch_stats}
    x = np.random.default_rng(0).normal(size=(4, *SHAPE)).astype(np.float32)
    training, updates = jax.jit(lambda v, x: phases[0].model.apply(v, x, train=True, mutable=["batch_stats"]))(
        variables, x)  # fmt: skip
    evaluating = jax.jit(lambda v, x: plan.model.apply(v, x, train=False))(variables, x)
    np.testing.assert_allclose(training, evaluating, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(updates["batch_stats"]["bn1"]["mean"], variables["batch_stats"]["bn1"]["mean"])
    plain, _ = jax.jit(lambda v, x: plan.model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
    assert not np.allclose(plain, evaluating, atol=1e-3)


def test_bn_inference_false_updates_frozen_statistics(source):
    directory, pretrained = source
    plan = prepare(transfer_cfg("feature_extractor", directory, freeze={"bn_inference": False}))
    assert plan.frozen_bn == (frozenset(),)
    after, _ = train(plan, steps_count=2)
    params, initial = flat(after.params), flat(pretrained["params"])
    assert all(np.array_equal(params[k], initial[k]) for k in params if k[0] != "fc")
    assert not np.array_equal(after.batch_stats["bn1"]["mean"], pretrained["batch_stats"]["bn1"]["mean"])


def test_new_head_is_fresh_from_the_seed_and_hidden_layers_sit_before_it(source):
    directory, pretrained = source
    plan = prepare(transfer_cfg("full", directory, head={"hidden": [16]}))
    phases, _ = plan.phases(lambda scale: optim.build({"name": "sgd", "learning_rate": 0.1}), boundary=10**9)
    abstract = jax.eval_shape(train_state.init_fn(plan.model, phases[0].tx, SHAPE), 3)
    seeded = abstract.replace(params=random_like(abstract.params, 3), batch_stats=random_like(abstract.batch_stats, 3))
    start = plan.start(seeded, phases[0].tx)  # what the loop does with the state initialized from the seed
    assert start.params["fc"]["kernel"].shape == (16, 3) and start.params["head_hidden1"]["kernel"].shape == (16, 16)
    for layer in ("fc", "head_hidden1"):
        np.testing.assert_array_equal(start.params[layer]["kernel"], seeded.params[layer]["kernel"])
    np.testing.assert_array_equal(start.params["layer2_0"]["conv2"]["kernel"],
                                  pretrained["params"]["layer2_0"]["conv2"]["kernel"])  # fmt: skip
    assert plan.head == {"fc", "head_hidden1"} and not any(jax.tree.leaves(plan.masks[0]))  # full: nothing frozen


def test_freeze_patterns_and_stage_names():
    model = models.create("resnet18", num_classes=3, **SMALL)
    shapes, order = mapping.variable_shapes(model, SHAPE)
    tops = {path[1] for path in traverse_util.flatten_dict(dict(shapes))}
    names = freezing.stages("ResNet", order, tops, {"fc"})
    assert names == ["stem", "layer1", "layer2"]
    mask = flat(freezing.frozen_mask(shapes["params"], family="ResNet", head={"fc"}, stage_names=names,
                                     everything=False, patterns=[r"^layer2_0/conv2/"]))  # fmt: skip
    assert [k for k, frozen in mask.items() if frozen] == [("layer2_0", "conv2", "kernel")]
    with pytest.raises(ValueError, match="cannot freeze 4 stages: the model has 3 .stem, layer1, layer2."):
        freezing.frozen_mask(shapes["params"], family="ResNet", head={"fc"}, stage_names=names, everything=False,
                             frozen_stages=4)  # fmt: skip


@pytest.mark.parametrize("name, expected", [
    ("lenet5", ["C1", "C3", "C5", "F6"]),
    ("mobilenet_v1", ["conv1", *(f"block{i}" for i in range(1, 14))]),
    ("vgg11", ["block1", "block2", "block3", "block4", "block5", "fc1", "fc2"]),
])  # fmt: skip
def test_stage_names_by_family(name, expected):
    model = models.create(name, num_classes=3)
    shape = (32, 32, 1) if name == "lenet5" else (32, 32, 3)
    shapes, order = mapping.variable_shapes(model, shape)
    tops = {path[1] for path in traverse_util.flatten_dict(dict(shapes))}
    assert freezing.stages(type(model).__name__, order, tops, heads.head_modules(model)) == expected


def test_config_errors_name_the_key(source):
    directory, _ = source
    with pytest.raises(ValueError, match="transfer.strategy=partial freezes nothing: set transfer.freeze.stages"):
        prepare(transfer_cfg("partial", directory, freeze={"stages": 0}))
    with pytest.raises(ValueError, match="transfer.strategy=full needs transfer.from_run"):
        prepare({**transfer_cfg("full", directory), "from_run": None})
    with pytest.raises(ValueError, match="transfer.from_run is set but transfer.strategy=none"):
        prepare(transfer_cfg("none", directory))
    with pytest.raises(ValueError, match="transfer.strategy must be one of none, full"):
        prepare(transfer_cfg("freeze_all", directory))
    with pytest.raises(FileNotFoundError, match="transfer.from_run=.*: no checkpoints in"):
        prepare(transfer_cfg("full", directory / "checkpoints" / "0" / "state"))
    assert prepare(None) is None


def test_pretrained_of_another_architecture_is_refused(source):
    directory, _ = source
    cfg = transfer_cfg("full", directory)
    with pytest.raises(transfer.WeightMismatchError, match=r"(?s)transfer.from_run .* \(resnet18\) does not fit"
                                                           r".*missing:.*C1/kernel"):  # fmt: skip
        transfer.prepare(cfg, model=models.create("lenet5", num_classes=3), input_shape=(32, 32, 1))


FAST_HEADS = ["lenet5", "typical_cnn", "simple_cnn", "mlp", "resnet18", "googlenet", "squeezenet1_1",
              "mobilenet_v1", "nin"]  # fmt: skip


@pytest.mark.parametrize("name", [n if n in FAST_HEADS else pytest.param(n, marks=pytest.mark.slow)
                                  for n in models.names()])  # fmt: skip
def test_head_is_exactly_what_depends_on_num_classes(name):
    """The declared classifier modules hold every variable whose shape changes with num_classes, and only those."""
    shape = models.default_input_shape(name)

    def shapes(classes):
        return flat(mapping.variable_shapes(models.create(name, num_classes=classes), shape)[0]["params"])

    a, b = shapes(7), shapes(11)
    depends = {k[:-1] for k in a if a[k].shape != b[k].shape}
    model = models.create(name, num_classes=7)
    declared = set(heads.head_paths(model))
    assert depends == declared
    assert heads.head_paths(model)[0] in depends  # the main classifier first

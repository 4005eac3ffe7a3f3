"""Parameter counts and output shapes of every registered model, against REFERENCE.md.

Everything here runs under `jax.eval_shape`: no model is materialized.
"""

import jax
import pytest
from flax.traverse_util import flatten_dict
from models_testing import abstract_init, size

from cnnlab import models

# name: (num_classes, input shape, trainable parameters). REFERENCE.md unless noted.
REFERENCE = {
    "mlp": (2, (64, 64, 3), 12_789_000 + 1_502),  # lecture: 12,789,000 weights + 1,502 biases
    "typical_cnn": (10, (28, 28, 1), 27_562),
    "lenet5": (10, (32, 32, 1), 61_706),
    # Not in REFERENCE; by hand: conv 3*3*3*16+16, conv 3*3*16*32+32, dense 32*1000+1000.
    "simple_cnn": (1000, (32, 32, 3), 448 + 4_640 + 33_000),
    "alexnet": (1000, (227, 227, 3), 62_378_344),
    "alexnet_grouped": (1000, (227, 227, 3), 60_965_224),
    "alexnet_tv": (1000, (224, 224, 3), 61_100_840),
    "vgg_a": (1000, (224, 224, 3), 132_863_336),
    "vgg_a_lrn": (1000, (224, 224, 3), 132_863_336),
    "vgg_b": (1000, (224, 224, 3), 133_047_848),
    "vgg_c": (1000, (224, 224, 3), 133_638_952),
    "vgg_d": (1000, (224, 224, 3), 138_357_544),
    "vgg_e": (1000, (224, 224, 3), 143_667_240),
    "vgg11": (1000, (224, 224, 3), 132_863_336),
    "vgg13": (1000, (224, 224, 3), 133_047_848),
    "vgg16": (1000, (224, 224, 3), 138_357_544),
    "vgg19": (1000, (224, 224, 3), 143_667_240),
    "inception_v3": (1000, (299, 299, 3), 23_817_352),
    "xception": (1000, (299, 299, 3), 22_855_952),
    "resnet18": (1000, (224, 224, 3), 11_689_512),
    "resnet34": (1000, (224, 224, 3), 21_797_672),
    "resnet50": (1000, (224, 224, 3), 25_557_032),
    "resnet101": (1000, (224, 224, 3), 44_549_160),
    "resnet152": (1000, (224, 224, 3), 60_192_808),
    # Plain nets drop the three projection shortcuts (1x1 conv + BN) of ResNet-18/34.
    "plain18": (1000, (224, 224, 3), 11_689_512 - (64 * 128 + 256) - (128 * 256 + 512) - (256 * 512 + 1024)),
    "plain34": (1000, (224, 224, 3), 21_797_672 - (64 * 128 + 256) - (128 * 256 + 512) - (256 * 512 + 1024)),
    "resnet50_keras": (1000, (224, 224, 3), 25_583_592),
    # Not in REFERENCE; the paper's CIFAR-10 NIN by hand (10 classes, 32x32x3).
    "nin": (10, (32, 32, 3), 14_592 + 30_880 + 15_456 + 460_992 + 2 * 37_056 + 331_968 + 37_056 + 1_930),
    "squeezenet1_0": (1000, (224, 224, 3), 1_248_424),
    "squeezenet1_1": (1000, (224, 224, 3), 1_235_496),
    "mobilenet_v1": (1000, (224, 224, 3), 4_231_976),
    "convnext_tiny": (1000, (224, 224, 3), 28_589_128),
}
# GoogLeNet's reference count has no auxiliary heads; see test_googlenet_*.
OPTIONS = {"googlenet": {"aux_logits": False}}
REFERENCE["googlenet"] = (1000, (224, 224, 3), 6_624_904)

# Non-trainable BatchNorm statistics, where REFERENCE.md states them.
REFERENCE_BATCH_STATS = {"inception_v3": 34_432, "xception": 54_528, "resnet50_keras": 53_120, "mobilenet_v1": 21_888}
BATCH_NORM_MODELS = {"googlenet", "inception_v3", "xception", "mobilenet_v1", "resnet50_keras"} | {
    n for n in models.names() if n.startswith(("resnet", "plain"))
}


def test_every_registered_model_has_a_reference_count():
    assert sorted(REFERENCE) == models.names()


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_parameter_count_and_output_shape(name):
    num_classes, input_shape, trainable = REFERENCE[name]
    model = models.create(name, num_classes=num_classes, **OPTIONS.get(name, {}))
    logits, variables = abstract_init(model, input_shape)
    assert size(variables["params"]) == trainable
    assert logits.shape == (1, num_classes)
    assert models.default_input_shape(name) == input_shape
    stats = variables.get("batch_stats", {})
    if name in REFERENCE_BATCH_STATS:
        assert size(stats) == REFERENCE_BATCH_STATS[name]
    assert bool(stats) == (name in BATCH_NORM_MODELS)
    assert set(variables) <= {"params", "batch_stats"}


@pytest.mark.parametrize("name", sorted(BATCH_NORM_MODELS))
def test_batch_stats_hold_a_mean_and_variance_per_normalized_channel(name):
    num_classes, input_shape, _ = REFERENCE[name]
    _, variables = abstract_init(models.create(name, num_classes=num_classes), input_shape)
    stats = flatten_dict(variables["batch_stats"])
    params = flatten_dict(variables["params"])
    norm_layers = {path[:-1] for path in stats}
    assert set(stats) == {layer + (key,) for layer in norm_layers for key in ("mean", "var")}
    for layer in norm_layers:  # one statistic per channel that the layer's offset shifts
        assert stats[layer + ("mean",)].shape == stats[layer + ("var",)].shape == params[layer + ("bias",)].shape


def test_mlp_weights_and_biases_split_as_the_lecture_counts():
    _, variables = abstract_init(models.create("mlp", num_classes=2), (64, 64, 3))
    leaves = jax.tree_util.tree_leaves_with_path(variables["params"])
    assert sum(leaf.size for path, leaf in leaves if path[-1].key == "kernel") == 12_789_000
    assert sum(leaf.size for path, leaf in leaves if path[-1].key == "bias") == 1_502


@pytest.mark.parametrize(
    "name, options, input_shape, num_classes, expected",
    [
        ("vgg11", {"batch_norm": True}, (224, 224, 3), 1000, 132_868_840),  # torchvision vgg11_bn
        ("googlenet", {}, (224, 224, 3), 1000, 13_004_888),  # torchvision googlenet with aux heads
        # The paper's 5x5 in the "5x5" branch instead of torchvision's 3x3 (by hand, with BN).
        ("googlenet", {"aux_logits": False, "branch3_kernel": 5}, (224, 224, 3), 1000, 7_005_832),
        # kuangliu/pytorch-cifar ResNet18: 3x3 stem, no max-pool, 10 classes.
        ("resnet18", {"cifar_stem": True}, (32, 32, 3), 10, 11_173_962),
        # The batchnorm study's quarter-width VGG-A on 32x32x1 (by hand): convs 1-16, 16-32,
        # 32-64, 64-64, 64-128 and 3 x 128-128 (3x3, with bias), then fc 128-256-256-10.
        (
            "vgg_a",
            {"num_filters": 16, "fc_features": 256},
            (32, 32, 1),
            10,
            160 + 4_640 + 18_496 + 36_928 + 73_856 + 3 * 147_584 + 33_024 + 65_792 + 2_570,
        ),
        # The time-to-accuracy benchmark's wide typical CNN (by hand): conv 1-32 and 32-64
        # (3x3, with bias), then fc 5*5*64-128-10.
        ("typical_cnn", {"features": (32, 64), "hidden_size": 128}, (28, 28, 1), 10, 320 + 18_496 + 204_928 + 1_290),
    ],
)
def test_option_variants_match_their_reference_counts(name, options, input_shape, num_classes, expected):
    logits, variables = abstract_init(models.create(name, num_classes=num_classes, **options), input_shape)
    assert size(variables["params"]) == expected
    assert logits.shape == (1, num_classes)


def test_typical_cnn_names_its_two_widths_when_given_another_number():
    with pytest.raises(ValueError, match=r"typical_cnn has two convolutions: features must be 2 widths, got \[8, 16, 32\]"):
        abstract_init(models.create("typical_cnn", num_classes=10, features=[8, 16, 32]), (28, 28, 1))


def test_googlenet_returns_two_aux_logits_in_training_and_none_in_eval():
    model = models.create("googlenet", num_classes=7)
    train_out, _ = abstract_init(model, (224, 224, 3), train=True, batch=2)
    logits, (aux1, aux2) = train_out
    assert logits.shape == aux1.shape == aux2.shape == (2, 7)
    eval_out, _ = abstract_init(model, (224, 224, 3), train=False, batch=2)
    assert isinstance(eval_out, jax.ShapeDtypeStruct) and eval_out.shape == (2, 7)


def test_googlenet_without_aux_heads_returns_logits_in_training():
    model = models.create("googlenet", num_classes=7, aux_logits=False)
    train_out, variables = abstract_init(model, (224, 224, 3), train=True, batch=2)
    assert isinstance(train_out, jax.ShapeDtypeStruct) and train_out.shape == (2, 7)
    assert not [k for k in variables["params"] if k.startswith("aux")]

"""torchvision's state-dict keys and shapes, written out from torchvision's model code.

Independent of cnnlab's mapping: the keys follow torchvision's module names
(`layer1.0.downsample.0.weight`, `features.<i>` of its nn.Sequential), so a
synthetic state dict built from these layouts is what torchvision would save.
Widths are parameters so that tests can build small ones; the defaults are
torchvision's, whose parameter counts REFERENCE.md lists.
"""

import numpy as np

VGG_CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
GOOGLENET = [  # name, (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj)
    ("inception3a", (192, 64, 96, 128, 16, 32, 32)), ("inception3b", (256, 128, 128, 192, 32, 96, 64)),
    ("inception4a", (480, 192, 96, 208, 16, 48, 64)), ("inception4b", (512, 160, 112, 224, 24, 64, 64)),
    ("inception4c", (512, 128, 128, 256, 24, 64, 64)), ("inception4d", (512, 112, 144, 288, 32, 64, 64)),
    ("inception4e", (528, 256, 160, 320, 32, 128, 128)), ("inception5a", (832, 256, 160, 320, 32, 128, 128)),
    ("inception5b", (832, 384, 192, 384, 48, 128, 128)),
]  # fmt: skip
FIRES = [(16, 64, 64), (16, 64, 64), (32, 128, 128), (32, 128, 128), (48, 192, 192), (48, 192, 192),
         (64, 256, 256), (64, 256, 256)]  # fmt: skip


def conv(sd, name, out, cin, k, bias=True):
    sd[f"{name}.weight"] = (out, cin, k, k)
    if bias:
        sd[f"{name}.bias"] = (out,)


def linear(sd, name, out, cin):
    sd[f"{name}.weight"], sd[f"{name}.bias"] = (out, cin), (out,)


def batch_norm(sd, name, c):
    for key in ("weight", "bias", "running_mean", "running_var"):
        sd[f"{name}.{key}"] = (c,)
    sd[f"{name}.num_batches_tracked"] = ()


def layer_norm(sd, name, c):
    sd[f"{name}.weight"], sd[f"{name}.bias"] = (c,), (c,)


def resnet(depth: int, num_classes: int = 1000, width: int = 64) -> dict:
    stages = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}[depth]
    expansion = 4 if depth >= 50 else 1
    sd = {}
    conv(sd, "conv1", width, 3, 7, bias=False)
    batch_norm(sd, "bn1", width)
    inplanes = width
    for i, blocks in enumerate(stages):
        planes = width * 2**i
        for b in range(blocks):
            p = f"layer{i + 1}.{b}"
            if expansion == 4:
                shapes = [(planes, inplanes, 1), (planes, planes, 3), (planes * 4, planes, 1)]
            else:
                shapes = [(planes, inplanes, 3), (planes, planes, 3)]
            for j, (out, cin, k) in enumerate(shapes, start=1):
                conv(sd, f"{p}.conv{j}", out, cin, k, bias=False)
                batch_norm(sd, f"{p}.bn{j}", out)
            if b == 0 and (i > 0 or inplanes != planes * expansion):
                conv(sd, f"{p}.downsample.0", planes * expansion, inplanes, 1, bias=False)
                batch_norm(sd, f"{p}.downsample.1", planes * expansion)
            inplanes = planes * expansion
    linear(sd, "fc", num_classes, inplanes)
    return sd


def vgg(config: str, batch_norm_: bool = False, num_classes: int = 1000, fc: int = 4096, spatial: int = 7) -> dict:
    sd, index, cin = {}, 0, 3
    for v in VGG_CFGS[config]:
        if v == "M":
            index += 1
            continue
        conv(sd, f"features.{index}", v, cin, 3)
        if batch_norm_:
            batch_norm(sd, f"features.{index + 1}", v)
        index, cin = index + (3 if batch_norm_ else 2), v
    linear(sd, "classifier.0", fc, 512 * spatial * spatial)
    linear(sd, "classifier.3", fc, fc)
    linear(sd, "classifier.6", num_classes, fc)
    return sd


def alexnet(num_classes: int = 1000, fc: int = 4096) -> dict:
    sd = {}
    for index, (out, cin, k) in zip((0, 3, 6, 8, 10), ((64, 3, 11), (192, 64, 5), (384, 192, 3), (256, 384, 3),
                                                       (256, 256, 3))):  # fmt: skip
        conv(sd, f"features.{index}", out, cin, k)
    linear(sd, "classifier.1", fc, 256 * 6 * 6)
    linear(sd, "classifier.4", fc, fc)
    linear(sd, "classifier.6", num_classes, fc)
    return sd


def googlenet(num_classes: int = 1000, aux: bool = True) -> dict:
    sd = {}

    def basic(name, out, cin, k):
        conv(sd, f"{name}.conv", out, cin, k, bias=False)
        batch_norm(sd, f"{name}.bn", out)

    basic("conv1", 64, 3, 7)
    basic("conv2", 64, 64, 1)
    basic("conv3", 192, 64, 3)
    for name, (cin, c1, c3r, c3, c5r, c5, proj) in GOOGLENET:
        basic(f"{name}.branch1", c1, cin, 1)
        basic(f"{name}.branch2.0", c3r, cin, 1)
        basic(f"{name}.branch2.1", c3, c3r, 3)
        basic(f"{name}.branch3.0", c5r, cin, 1)
        basic(f"{name}.branch3.1", c5, c5r, 3)
        basic(f"{name}.branch4.1", proj, cin, 1)
    if aux:
        for name, cin in (("aux1", 512), ("aux2", 528)):
            basic(f"{name}.conv", 128, cin, 1)
            linear(sd, f"{name}.fc1", 1024, 2048)
            linear(sd, f"{name}.fc2", num_classes, 1024)
    linear(sd, "fc", num_classes, 1024)
    return sd


def squeezenet(version: str, num_classes: int = 1000) -> dict:
    sd = {}
    stem, fire_indices = ((96, 7), (3, 4, 5, 7, 8, 9, 10, 12)) if version == "1_0" else ((64, 3), (3, 4, 6, 7, 9, 10,
                                                                                                     11, 12))  # fmt: skip
    conv(sd, "features.0", stem[0], 3, stem[1])
    cin = stem[0]
    for index, (s, e1, e3) in zip(fire_indices, FIRES):
        conv(sd, f"features.{index}.squeeze", s, cin, 1)
        conv(sd, f"features.{index}.expand1x1", e1, s, 1)
        conv(sd, f"features.{index}.expand3x3", e3, s, 3)
        cin = e1 + e3
    conv(sd, "classifier.1", num_classes, 512, 1)
    return sd


def convnext(num_classes: int = 1000, dims=(96, 192, 384, 768), depths=(3, 3, 9, 3)) -> dict:
    sd = {}
    conv(sd, "features.0.0", dims[0], 3, 4)
    layer_norm(sd, "features.0.1", dims[0])
    for stage, (dim, depth) in enumerate(zip(dims, depths)):
        for i in range(depth):
            p = f"features.{2 * stage + 1}.{i}"
            sd[f"{p}.block.0.weight"], sd[f"{p}.block.0.bias"] = (dim, 1, 7, 7), (dim,)
            layer_norm(sd, f"{p}.block.2", dim)
            linear(sd, f"{p}.block.3", 4 * dim, dim)
            linear(sd, f"{p}.block.5", dim, 4 * dim)
            sd[f"{p}.layer_scale"] = (dim, 1, 1)
        if stage < 3:
            layer_norm(sd, f"features.{2 * stage + 2}.0", dim)
            sd[f"features.{2 * stage + 2}.1.weight"] = (dims[stage + 1], dim, 2, 2)
            sd[f"features.{2 * stage + 2}.1.bias"] = (dims[stage + 1],)
    layer_norm(sd, "classifier.0", dims[-1])
    linear(sd, "classifier.2", num_classes, dims[-1])
    return sd


def trainable_count(sd: dict) -> int:
    """Parameters as torchvision counts them: no running statistics, no counters."""
    return sum(int(np.prod(s)) for k, s in sd.items() if not k.endswith(("running_mean", "running_var",
                                                                          "num_batches_tracked")))  # fmt: skip


def random_state_dict(shapes: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Arrays for `shapes`: weights ~ N(0, 1/fan_in), variances positive, counters int64."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = np.array(7, np.int64)
        elif key.endswith("running_var"):
            out[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 10
            out[key] = (rng.normal(size=shape) / np.sqrt(fan_in)).astype(np.float32)
    return out

"""Forward passes in PyTorch (torch.nn.functional) straight from torchvision-named state dicts.

A reference written the way torchvision's modules compute, in NCHW, for
checking the layout conversions without torchvision itself: conv weights
(O, I, kh, kw), Linear (out, in), flatten of (C, H, W), LayerNorm over
channels-last, ConvNeXt's (C, 1, 1) layer scale.
"""

import torch
import torch.nn.functional as F


def _t(sd, key):
    return torch.as_tensor(sd[key])


def _bn(sd, name, x, eps=1e-5):
    return F.batch_norm(x, _t(sd, f"{name}.running_mean"), _t(sd, f"{name}.running_var"), _t(sd, f"{name}.weight"),
                        _t(sd, f"{name}.bias"), training=False, eps=eps)  # fmt: skip


def resnet(sd, x, stages, bottleneck: bool):
    x = F.relu(_bn(sd, "bn1", F.conv2d(x, _t(sd, "conv1.weight"), stride=2, padding=3)))
    x = F.max_pool2d(x, 3, 2, 1)
    for i, blocks in enumerate(stages):
        for b in range(blocks):
            p, stride = f"layer{i + 1}.{b}", (2 if i > 0 and b == 0 else 1)
            if bottleneck:
                y = F.relu(_bn(sd, f"{p}.bn1", F.conv2d(x, _t(sd, f"{p}.conv1.weight"))))
                y = F.relu(_bn(sd, f"{p}.bn2", F.conv2d(y, _t(sd, f"{p}.conv2.weight"), stride=stride, padding=1)))
                y = _bn(sd, f"{p}.bn3", F.conv2d(y, _t(sd, f"{p}.conv3.weight")))
            else:
                y = F.relu(_bn(sd, f"{p}.bn1", F.conv2d(x, _t(sd, f"{p}.conv1.weight"), stride=stride, padding=1)))
                y = _bn(sd, f"{p}.bn2", F.conv2d(y, _t(sd, f"{p}.conv2.weight"), padding=1))
            if f"{p}.downsample.0.weight" in sd:
                x = _bn(sd, f"{p}.downsample.1", F.conv2d(x, _t(sd, f"{p}.downsample.0.weight"), stride=stride))
            x = F.relu(x + y)
    return F.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1), _t(sd, "fc.weight"), _t(sd, "fc.bias"))


def vgg(sd, x, cfg, batch_norm: bool):
    index = 0
    for v in cfg:
        if v == "M":
            x, index = F.max_pool2d(x, 2, 2), index + 1
            continue
        x = F.conv2d(x, _t(sd, f"features.{index}.weight"), _t(sd, f"features.{index}.bias"), padding=1)
        if batch_norm:
            x = _bn(sd, f"features.{index + 1}", x)
        x, index = F.relu(x), index + (3 if batch_norm else 2)
    x = torch.flatten(x, 1)  # (B, C*H*W): channels first
    for i in (0, 3):
        x = F.relu(F.linear(x, _t(sd, f"classifier.{i}.weight"), _t(sd, f"classifier.{i}.bias")))
    return F.linear(x, _t(sd, "classifier.6.weight"), _t(sd, "classifier.6.bias"))


def alexnet(sd, x):
    for index, stride, padding, pool in ((0, 4, 2, True), (3, 1, 2, True), (6, 1, 1, False), (8, 1, 1, False),
                                         (10, 1, 1, True)):  # fmt: skip
        x = F.relu(F.conv2d(x, _t(sd, f"features.{index}.weight"), _t(sd, f"features.{index}.bias"), stride, padding))
        if pool:
            x = F.max_pool2d(x, 3, 2)
    x = torch.flatten(F.adaptive_avg_pool2d(x, 6), 1)
    for i in (1, 4):
        x = F.relu(F.linear(x, _t(sd, f"classifier.{i}.weight"), _t(sd, f"classifier.{i}.bias")))
    return F.linear(x, _t(sd, "classifier.6.weight"), _t(sd, "classifier.6.bias"))


def convnext(sd, x, depths):
    def layer_norm_2d(name, x):  # LayerNorm2d: over channels, in channels-last
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, x.shape[-1:], _t(sd, f"{name}.weight"), _t(sd, f"{name}.bias"), 1e-6)
        return x.permute(0, 3, 1, 2)

    x = layer_norm_2d("features.0.1", F.conv2d(x, _t(sd, "features.0.0.weight"), _t(sd, "features.0.0.bias"), 4))
    for stage, depth in enumerate(depths):
        for i in range(depth):
            p = f"features.{2 * stage + 1}.{i}"
            dim = x.shape[1]
            y = F.conv2d(x, _t(sd, f"{p}.block.0.weight"), _t(sd, f"{p}.block.0.bias"), padding=3, groups=dim)
            y = y.permute(0, 2, 3, 1)
            y = F.layer_norm(y, (dim,), _t(sd, f"{p}.block.2.weight"), _t(sd, f"{p}.block.2.bias"), 1e-6)
            y = F.gelu(F.linear(y, _t(sd, f"{p}.block.3.weight"), _t(sd, f"{p}.block.3.bias")))
            y = F.linear(y, _t(sd, f"{p}.block.5.weight"), _t(sd, f"{p}.block.5.bias")).permute(0, 3, 1, 2)
            x = x + _t(sd, f"{p}.layer_scale") * y
        if stage < 3:
            d = f"features.{2 * stage + 2}"
            x = F.conv2d(layer_norm_2d(f"{d}.0", x), _t(sd, f"{d}.1.weight"), _t(sd, f"{d}.1.bias"), 2)
    x = F.adaptive_avg_pool2d(x, 1)
    x = layer_norm_2d("classifier.0", x)
    return F.linear(torch.flatten(x, 1), _t(sd, "classifier.2.weight"), _t(sd, "classifier.2.bias"))

"""The benchmarks' architectures in PyTorch, written by hand (torchvision is not a dependency).

Same layers, shapes and parameter counts as cnnlab's modules: LeNet-5 (ReLU,
max-pooling: conf/model/lenet5.yaml) 61,706; ResNet-18 with the CIFAR stem
11,173,962 at 10 classes; the typical CNN 27,562 (225,034 at widths (32, 64) and 128).
"""

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn


def lenet5(num_classes: int = 10) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),  # C1, S2: (B, 6, 14, 14)
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),  # C3, S4: (B, 16, 5, 5)
        nn.Conv2d(16, 120, 5), nn.ReLU(), nn.Flatten(),  # C5: (B, 120)
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes),
    )  # fmt: skip


def typical_cnn(num_classes: int = 10, features: tuple[int, int] = (8, 16), hidden_size: int = 64) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, features[0], 3), nn.ReLU(), nn.MaxPool2d(2),  # (B, f0, 13, 13)
        nn.Conv2d(features[0], features[1], 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),  # (B, f1 * 5 * 5)
        nn.Linear(25 * features[1], hidden_size), nn.ReLU(), nn.Dropout(0.5), nn.Linear(hidden_size, num_classes),
    )  # fmt: skip


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18Cifar(nn.Module):
    """torchvision's resnet18 with a 3x3/1 stem and no max-pool, like cnnlab's cifar_stem=True."""

    def __init__(self, num_classes: int = 10, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        blocks, cin = [], width
        for stage in range(4):
            cout = width * 2**stage
            for i in range(2):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_flax_params(net: nn.Sequential, params: Mapping) -> None:
    """Copy a cnnlab model's params into its PyTorch twin, layer by layer in order
    (so both sides of a benchmark can start from the same weights).

    Kernels go from (kh, kw, in, out) to (out, in, kh, kw) and from (in, out) to
    (out, in). flax flattens a feature map as (H, W, C) and PyTorch as (C, H, W),
    so the first dense layer after a convolution has its inputs reordered.
    """
    layers = [m for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    if len(layers) != len(params):
        raise ValueError(f"{len(params)} flax layers ({', '.join(params)}) for {len(layers)} PyTorch layers")
    channels = None  # the output channels of the last convolution, until a dense layer
    with torch.no_grad():
        for layer, p in zip(layers, params.values()):
            kernel = np.asarray(p["kernel"])
            if isinstance(layer, nn.Conv2d):
                weight, channels = kernel.transpose(3, 2, 0, 1), kernel.shape[-1]
            elif channels and kernel.shape[0] != channels:  # rows (h, w, c) -> columns (c, h, w)
                positions = kernel.shape[0] // channels
                weight, channels = kernel.reshape(positions, channels, -1).transpose(2, 1, 0).reshape(kernel.shape[1], -1), None
            else:
                weight, channels = kernel.T, None
            layer.weight.copy_(torch.tensor(np.asarray(weight)))
            layer.bias.copy_(torch.tensor(np.asarray(p["bias"])))

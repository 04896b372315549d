"""MobileNetV2's feature stack (Sandler et al., CVPR 2018), module for module as torchvision builds it.

The same layers, parameter names and order as ``torchvision.models.mobilenet_v2().features``, so the same
state dicts load into it, and the same outputs. It is here so that a CNN actor does not import
torchvision: torchvision's import pulls in ``torch._dynamo`` and costs a worker about 1.3 s of CPU at
start-up, while vidgru only ever needs this one network from it.

Example::

    net = mobilenet_v2_features()          # 19 blocks, untrained
    net.load_state_dict(torchvision_weights)
"""

from __future__ import annotations

import torch
from torch import nn

# expansion t, output channels c, repeats n, first stride s: the paper's table 2
_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _conv_bn_relu6(inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = inp * expand
        self.residual = stride == 1 and inp == out
        layers = [_conv_bn_relu6(inp, hidden, kernel=1)] if expand != 1 else []
        layers += [
            _conv_bn_relu6(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, out, 1, bias=False),
            nn.BatchNorm2d(out),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


def mobilenet_v2_features() -> nn.Sequential:
    """The 19 blocks of MobileNetV2 (width 1.0) before its classifier, untrained."""
    blocks: list[nn.Module] = [_conv_bn_relu6(3, 32, stride=2)]
    inp = 32
    for expand, out, repeats, stride in _SETTINGS:
        for i in range(repeats):
            blocks.append(InvertedResidual(inp, out, stride if i == 0 else 1, expand))
            inp = out
    blocks.append(_conv_bn_relu6(inp, 1280, kernel=1))
    return nn.Sequential(*blocks)

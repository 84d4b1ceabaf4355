"""The hemorrhage model's 2D CNN (torch; imported by train.py and export.py)."""

from __future__ import annotations

import torch
from torch import nn

#: The network works at half the input size: the 256² windowed slice is average-pooled 2 × 2
#: first (≈ 0.8–1 mm → 1.6–2 mm pixels), which keeps acute blood (≥ 45 HU against 28–38 HU
#: brain) visible in every subtype and cuts the CPU cost fourfold.
POOL = 2


def _conv(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]


class HemorrhageCNN(nn.Module):
    """2 × 2 average pooling, six stride-2 stages, global average + max pooling, linear head.

    ``body`` is everything after the pooling, so training can feed pre-pooled slices
    (:func:`pool`) and the exported graph still takes the full [N, 3, 256, 256] input.
    """

    WIDTHS = (24, 32, 48, 64, 96, 128)

    def __init__(self, in_channels: int = 3, outputs: int = 6) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for i, w in enumerate(self.WIDTHS):
            layers += _conv(cin, w, 2)
            if i > 0:  # the first (largest) stage is a single strided conv
                layers += _conv(w, w, 1)
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * cin, outputs)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, outputs) of pre-pooled slices."""
        f = self.features(x)
        return self.head(torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, outputs) of full-size slices."""
        return self.body(pool(x))


def pool(x: torch.Tensor) -> torch.Tensor:
    """The network's first step: 2 × 2 average pooling."""
    return nn.functional.avg_pool2d(x, POOL)

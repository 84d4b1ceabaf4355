"""Small networks for CPU training and fast ONNX Runtime inference.

BatchNorm (not instance norm) on purpose: at export it folds into the convolutions, so the
served graph is just conv + ReLU, and a patch's statistics never depend on where the sliding
window put it.
"""

from __future__ import annotations

import torch
from torch import nn


def _block3d(cin: int, cout: int, convs: int = 2) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            nn.Conv3d(cin if i == 0 else cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm3d(cout),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class UNet3D(nn.Module):
    """A 3D U-Net: ``levels`` resolutions, channels doubling from ``base``.

    The full-resolution level has one convolution on each side instead of two: on CPU it
    costs most of the time, and the 1 mm detail it keeps needs little depth.
    """

    def __init__(self, in_channels: int, classes: int, base: int = 8, levels: int = 4) -> None:
        super().__init__()
        chans = [base * 2**i for i in range(levels)]
        self.down = nn.ModuleList()
        self.pool = nn.ModuleList()
        cin = in_channels
        for i, c in enumerate(chans):
            self.down.append(_block3d(cin, c, 1 if i == 0 else 2))
            if i < levels - 1:
                self.pool.append(nn.Conv3d(c, c, 2, stride=2))
            cin = c
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for c_hi, c_lo in zip(chans[-2::-1], chans[:0:-1], strict=True):
            self.up.append(nn.ConvTranspose3d(c_lo, c_hi, 2, stride=2))
            self.dec.append(_block3d(2 * c_hi, c_hi, 1 if c_hi == chans[0] else 2))
        self.head = nn.Conv3d(chans[0], classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, same spatial size as ``x`` (each side a multiple of 2**(levels-1))."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < len(self.pool):
                skips.append(x)
                x = self.pool[i](x)
        for up, dec in zip(self.up, self.dec, strict=True):
            x = up(x)
            x = dec(torch.cat([x, skips.pop()], dim=1))
        return self.head(x)


class SliceCNN(nn.Module):
    """A small 2D CNN: strided conv stages, global average+max pooling, linear head."""

    def __init__(self, in_channels: int = 3, outputs: int = 6, widths: tuple[int, ...] = ()):
        super().__init__()
        widths = widths or (16, 32, 48, 64, 96, 128)
        layers: list[nn.Module] = []
        cin = in_channels
        for i, w in enumerate(widths):
            layers += [
                nn.Conv2d(cin, w, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(w),
                nn.ReLU(inplace=True),
            ]
            if i > 0:  # the full-size stage is the costly one on CPU: a single strided conv
                layers += [
                    nn.Conv2d(w, w, 3, padding=1, bias=False),
                    nn.BatchNorm2d(w),
                    nn.ReLU(inplace=True),
                ]
            cin = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * cin, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, outputs)."""
        f = self.features(x)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return self.head(pooled)


def space_to_depth(x: torch.Tensor) -> torch.Tensor:
    """(N, C, X, Y, Z) → (N, 8C, X/2, Y/2, Z/2): each 2×2×2 block becomes 8 channels."""
    n, c, d, h, w = x.shape
    x = x.reshape(n, c, d // 2, 2, h // 2, 2, w // 2, 2)
    return x.permute(0, 1, 3, 5, 7, 2, 4, 6).reshape(n, c * 8, d // 2, h // 2, w // 2)


def depth_to_space(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`space_to_depth`."""
    n, c8, d, h, w = x.shape
    c = c8 // 8
    x = x.reshape(n, c, 2, 2, 2, d, h, w)
    return x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(n, c, d * 2, h * 2, w * 2)


class S2DUNet3D(nn.Module):
    """A 3D U-Net run at half resolution on space-to-depth input, with full-resolution
    output by depth-to-space (sub-voxel channels).

    Every 1 mm voxel's intensities reach the network as channels and every 1 mm voxel gets
    its own logits, but no convolution runs on the full grid: on CPU that is ~4× cheaper to
    train and to serve than a U-Net whose top level runs at 1 mm.
    """

    def __init__(self, in_channels: int, classes: int, base: int = 16, levels: int = 3) -> None:
        super().__init__()
        self.classes = classes
        self.inner = UNet3D(in_channels * 8, classes * 8, base, levels)
        # the inner U-Net's top level sees 8× the channels: give it two convolutions again
        self.inner.down[0] = _block3d(in_channels * 8, base, 2)
        self.inner.dec[-1] = _block3d(2 * base, base, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at full resolution (each side a multiple of 2**levels)."""
        return depth_to_space(self.inner(space_to_depth(x)))

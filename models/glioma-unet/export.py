"""Export the trained glioma U-Net to models/glioma-unet/model.onnx (softmax over 4 classes).

.venv-train/bin/python models/glioma-unet/export.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.common.exporting import export_checkpoint
from models.common.nets import UNet3D

if __name__ == "__main__":
    net = UNet3D(4, 4, base=8, levels=3)
    export_checkpoint("glioma-unet", net, torch.zeros(1, 4, 64, 64, 64), "softmax", [0, 2, 3, 4])

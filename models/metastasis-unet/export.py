"""Export the trained metastasis U-Net to models/metastasis-unet/model.onnx (sigmoid).

.venv-train/bin/python models/metastasis-unet/export.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.common.exporting import export_checkpoint
from models.common.nets import UNet3D

if __name__ == "__main__":
    net = UNet3D(2, 1, base=8, levels=3)
    example = torch.zeros(1, 2, 64, 64, 64)
    export_checkpoint("metastasis-unet", net, example, "sigmoid", [0, 2, 3, 4])

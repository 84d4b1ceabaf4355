"""Export the trained hemorrhage CNN to models/hemorrhage-cnn/model.onnx (6 sigmoids).

.venv-train/bin/python models/hemorrhage-cnn/export.py

The graph takes the full [N, 3, 256, 256] windowed slices (the 2 × 2 pooling is its first
node), so the serving contract in model.json is unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # net.py

from models.common.exporting import export_checkpoint
from net import HemorrhageCNN

if __name__ == "__main__":
    net = HemorrhageCNN(3, 6)
    export_checkpoint("hemorrhage-cnn", net, torch.zeros(2, 3, 256, 256), "sigmoid", [0])

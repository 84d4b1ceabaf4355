"""Export the trained hemorrhage CNN to models/hemorrhage-cnn/model.onnx (6 sigmoids).

.venv-train/bin/python models/hemorrhage-cnn/export.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from models.common.exporting import export_checkpoint
from models.common.nets import SliceCNN

if __name__ == "__main__":
    net = SliceCNN(3, 6)
    export_checkpoint("hemorrhage-cnn", net, torch.zeros(2, 3, 256, 256), "sigmoid", [0])

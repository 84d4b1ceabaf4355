"""Training-only helpers shared by the model scripts (synthetic data on the model grid, nets).

Run the scripts as modules from the repository root, e.g. ``python -m models.glioma.train``,
with the training venv (``.venv-train``), which has torch.
"""

"""Data loading and validation, the model catalog, and the training pipeline."""

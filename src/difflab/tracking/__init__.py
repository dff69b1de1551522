"""Experiment tracking: run folders, a local SQLite run store, W&B and TensorBoard.

Imports the standard library only; never training or metrics.
"""

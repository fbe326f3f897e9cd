"""Networks: small built-in classifiers (and, later, the model zoo)."""

from .small_cnn import SmallCNN

__all__ = ["SmallCNN"]

"""Data: volumes, datasets and the built-in synthetic phantoms."""

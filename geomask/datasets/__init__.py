"""geomask.datasets."""

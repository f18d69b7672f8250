"""geomask.io."""

"""geomask.ops."""

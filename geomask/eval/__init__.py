"""geomask.eval."""

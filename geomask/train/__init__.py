"""geomask.train."""

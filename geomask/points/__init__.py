"""geomask.points."""

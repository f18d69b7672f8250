"""geomask.grids."""

"""geomask.methods."""

"""geomask.sparse."""

"""geomask.nn."""

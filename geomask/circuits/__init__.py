"""geomask.circuits."""

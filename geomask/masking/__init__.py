"""geomask.masking."""

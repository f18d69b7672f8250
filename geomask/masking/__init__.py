"""geomask.masking: maskers choose what to hide (a boolean over rows), batched and seeded."""

from geomask.masking.base import Masker, resolve_generator
from geomask.masking.uniform import UniformMasker, per_graph_counts

__all__ = ["Masker", "UniformMasker", "per_graph_counts", "resolve_generator"]

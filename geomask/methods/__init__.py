"""geomask.methods: one file per method; :func:`build_method` builds them by name.

What a new method needs, in one import (see the README's "Add a method"): the base class :class:`Method` and
``GRAPH_DATA`` (the circuit-graph data kinds), :func:`register_method`, :func:`build_encoder` (the graph
encoders by name), and :func:`masker_section` / :func:`loss_section` (a builder's ``masker:`` / ``loss:`` config
sections through the registries).
"""

from geomask.methods.base import GRAPH_DATA, Method
from geomask.methods.compose import loss_section, masker_section, section_aliases
from geomask.methods.registry import METHODS, build_encoder, build_method, register_method

# the image methods load on first use, like the point and scan methods ("module:function" builders)
register_method("mae")("geomask.methods.mae:build_mae")
register_method("simmim")("geomask.methods.simmim:build_simmim")
register_method("spark")("geomask.methods.spark:build_spark")
register_method("mlm")("geomask.methods.mlm:build_mlm")
register_method("ernie_gram")("geomask.methods.ernie_gram:build_ernie_gram")
register_method("drbert")("geomask.methods.drbert:build_drbert")  # issue 13
register_method("clm")("geomask.methods.clm:build_clm")  # issue 13
register_method("biphasic")("geomask.methods.biphasic:build_biphasic")  # issue 13
register_method("pepmlm")("geomask.methods.pepmlm:build_pepmlm")  # issue 13
register_method("diffpalm")("geomask.methods.diffpalm:build_diffpalm")  # issue 13
register_method("mfm")("geomask.methods.mfm:build_mfm")
register_method("hpm")("geomask.methods.hpm:build_hpm")
register_method("graphmae2")("geomask.methods.graphmae2:build_graphmae2")
register_method("dmjd")("geomask.methods.dmjd:build_dmjd")
register_method("selective_mae")("geomask.methods.selective_mae:build_selective_mae")
register_method("uni4eye")("geomask.methods.uni4eye:build_uni4eye")

__all__ = [
    "GRAPH_DATA",
    "METHODS",
    "Method",
    "build_encoder",
    "build_method",
    "loss_section",
    "masker_section",
    "register_method",
    "section_aliases",
]

"""geomask.targets: what a method must recover, as small modules with a shape contract, registered by name.

=================  ==========================================================================================
``node_attribute`` per-node attribute of a graph batch (gate type ``node_type`` as class ids, or floats)
``node_degree``    fan-in / fan-out per node as floats (stored, else counted from ``edge_index``)
``norm_pix``       per-patch normalised values (MAE): ``(x − mean) / sqrt(var + 1e-6)`` over the last dim
``layer_norm``     parameter-free LayerNorm over the last dim (data2vec / MSM teacher features)
``ema_teacher``    EMA copy of the student; ``update(student, step)`` from the step hook, never in forward
``frozen_teacher`` a network with weights from a weights_only state dict or file, frozen, eval mode
``tokens``         argmax of a tokenizer's logits (dVAE / VQ token ids); the tokenizer is passed in
=================  ==========================================================================================

Build one with :func:`build_target` (``{"name": ..., **keywords}``, modules as keyword objects); list them
with :func:`available_targets`.  ``targets`` imports no ``nn``, ``methods`` or ``train`` (it sits below them).
"""

from geomask.targets.graph import NodeAttribute, NodeDegree
from geomask.targets.normalize import LayerNormTarget, NormalizedPatches, normalize_patches
from geomask.targets.registry import Registry, available_targets, build_target, register_target
from geomask.targets.teachers import MOMENTUM_SCHEDULES, EMATeacher, FrozenTeacher, ema_momentum, load_state_dict
from geomask.targets.tokens import TokenIds

__all__ = [
    "MOMENTUM_SCHEDULES",
    "EMATeacher",
    "FrozenTeacher",
    "LayerNormTarget",
    "NodeAttribute",
    "NodeDegree",
    "NormalizedPatches",
    "Registry",
    "TokenIds",
    "available_targets",
    "build_target",
    "ema_momentum",
    "load_state_dict",
    "normalize_patches",
    "register_target",
]

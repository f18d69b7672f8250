"""geomask.losses: masked reductions divided by the number of masked elements, registered by name.

Convention: ``mask`` True = counted (MAE / Hugging Face), ``None`` = all; it covers the leading dims of the
per-element loss; the result is the mean over counted elements; an empty mask gives 0 with a zero gradient,
never NaN (:func:`~geomask.losses.reduce.masked_mean`).  Cross-entropy also skips targets equal to
``ignore_index`` (-100, Hugging Face's label convention).

==================  =======================================================================================
``cross_entropy``   CE of logits over masked rows (ignore index -100)
``huber``           Huber (delta), ``smooth_l1`` (beta)
``l1`` / ``l2``     absolute / squared error, optional per-patch target normalisation (MAE norm_pix, eps 1e-6)
``chamfer_l1/_l2``  Chamfer distance of point sets (Point-BERT / Point-MAE conventions)
``cosine`` / ``sce`` ``1 − cos``; GraphMAE's scaled cosine error ``max(1 − cos, 0)^gamma``
``js``              Jensen-Shannon divergence of softmax(logits) and target probabilities (CPCM)
==================  =======================================================================================

``losses`` may use ``targets`` (``norm_pix``, the shared :class:`~geomask.targets.registry.Registry`), never
the reverse.
"""

from geomask.losses import frequency  # noqa: F401  (registers "frequency", MFM's loss)
from geomask.losses.functional import (
    CHAMFER_KINDS,
    IGNORE_INDEX,
    chamfer,
    cosine_error,
    cross_entropy,
    huber,
    js_divergence,
    js_loss,
    l1,
    l2,
    masked_accuracy,
    scaled_cosine_error,
    smooth_l1,
)
from geomask.losses.modules import (
    L1,
    L2,
    ChamferL1,
    ChamferL2,
    CosineError,
    CrossEntropy,
    Huber,
    JSDivergence,
    Loss,
    ScaledCosineError,
    SmoothL1,
    available_losses,
    build_loss,
    register_loss,
)
from geomask.losses.reduce import masked_mean

__all__ = [
    "CHAMFER_KINDS",
    "IGNORE_INDEX",
    "L1",
    "L2",
    "ChamferL1",
    "ChamferL2",
    "CosineError",
    "CrossEntropy",
    "Huber",
    "JSDivergence",
    "Loss",
    "ScaledCosineError",
    "SmoothL1",
    "available_losses",
    "build_loss",
    "chamfer",
    "cosine_error",
    "cross_entropy",
    "huber",
    "js_divergence",
    "js_loss",
    "l1",
    "l2",
    "masked_accuracy",
    "masked_mean",
    "register_loss",
    "scaled_cosine_error",
    "smooth_l1",
]

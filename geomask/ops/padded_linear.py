"""``F.linear`` with the output width padded to a multiple of 16 for the CPU product.

MKL's single-precision product slows sharply when the output width is an odd size: ``[1354, 512] @ [512, 1433]``
(GraphMAE's Cora decoder, 1,433 bag-of-words features) took 36-38 ms on one core of the AMD EPYC these numbers come
from, the same product with 1,440 output columns 21-22 ms. :func:`linear_padded` appends zero rows to the weight
(``F.pad``, a copy of the weight only), multiplies, and returns the first ``O`` columns as a view: the values are the
unpadded product's (each output column is its own dot products), the gradients too (the padded columns receive a
zero gradient, the weight's padding is sliced off in the backward pass).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

__all__ = ["linear_padded"]

MULTIPLE = 16
MIN_WIDTH = 256  # narrower outputs: padding costs more than it saves


def linear_padded(x: Tensor, weight: Tensor) -> Tensor:
    """``F.linear(x, weight)`` (no bias) computed with ``weight``'s rows padded to a multiple of 16 on CPU.

    Shapes:
        x ``[*, F]``, weight ``[O, F]`` → ``[*, O]`` (a view of a ``[*, O + pad]`` product when padded).
    """
    o = weight.shape[0]
    pad = -o % MULTIPLE
    if pad == 0 or o < MIN_WIDTH or x.device.type != "cpu":
        return F.linear(x, weight)
    return F.linear(x, F.pad(weight, (0, 0, 0, pad)))[..., :o]

"""Tiny cases of the registered methods: builder keywords that make each one small, and a batch per data kind.

``build_case(name, **overrides)`` builds the method under ``torch.manual_seed(0)`` (so its initial weights are
fixed) with its :data:`CASES` keywords (none for a method not listed: its builder's defaults) and
``case_batch(name)`` gives a tiny batch of the first data kind the method declares.  The method contract test
(``test_contract.py``) and the pre-refactor regression fixture (``test_regression.py``) both use them, so a newly
registered method is tested as soon as it is registered; an entry in :data:`CASES` makes it fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch

D = 12  # Verilog embedding width of the graph cases


def _random_aig(rng: np.random.Generator, ni: int = 5, na: int = 30, no: int = 4):
    from geomask.io.aig import AIG

    var = np.arange(na) + ni + 1
    a, b = rng.integers(1, var), rng.integers(1, var)
    ands = np.stack([2 * a + rng.integers(0, 2, na), 2 * b + rng.integers(0, 2, na)], 1).astype(np.int64)
    return AIG(num_inputs=ni, ands=ands, outputs=rng.integers(2, 2 * (ni + na) + 2, size=no).astype(np.int64))


def graph_batch(num_graphs: int = 5, seed: int = 0) -> Batch:
    """AIG graphs of 10-40 ANDs with Verilog chunk embeddings and a pooled vector each."""
    from geomask.circuits import aig_to_graph

    rng = np.random.default_rng(seed)
    gs = []
    for _ in range(num_graphs):
        g = aig_to_graph(_random_aig(rng, na=int(rng.integers(10, 40))), "per_edge")
        g.verilog_emb = torch.as_tensor(rng.normal(size=(int(rng.integers(1, 5)), D)), dtype=torch.float32)
        g.verilog_vec = torch.as_tensor(rng.normal(size=(1, D)), dtype=torch.float32)
        gs.append(g)
    return Batch.from_data_list(gs, follow_batch=["verilog_emb"])


def object_batch() -> torch.Tensor:
    from geomask.points.synthetic import synthetic_objects

    return synthetic_objects(4, 256, seed=0)[0]


def scene_batch(n: int = 400):
    """Two scenes of ``n`` random points (colours as features), 2 % of them labelled (two classes by height)."""
    from geomask.points.augment import ScenePoints

    g = torch.Generator().manual_seed(0)
    pts = torch.rand(2 * n, 3, generator=g) * torch.tensor([2.4, 2.4, 1.2])
    cols = torch.rand(2 * n, 3, generator=g)
    full = (pts[:, 2] > 0.3).long()
    labels = torch.full((2 * n,), -1)
    idx = torch.randperm(2 * n, generator=g)[: 2 * n // 50]
    labels[idx] = full[idx]
    return ScenePoints(pts, cols, torch.arange(2).repeat_interleave(n), labels)


def image_batch():
    """Two 16 x 16 RGB images in [0, 1) with labels, as the ``images`` kind collates them."""
    from geomask.grids import GridBatch

    g = torch.Generator().manual_seed(0)
    return GridBatch(torch.rand(2, 3, 16, 16, generator=g), 4, labels=torch.tensor([0, 1]))


def text_batch():
    """Three token sequences of ids 5..39 (specials 0..4: [PAD] [UNK] [CLS] [SEP] [MASK]), 2 to 20 tokens, with
    word ids (pairs of tokens), as the ``text`` kind collates them."""
    from geomask.sequences import SequenceItem, Vocab, collate_sequences

    vocab = Vocab(40, 0, 4, (0, 1, 2, 3, 4), 2, 3, "case")
    g = torch.Generator().manual_seed(0)
    items = [SequenceItem(torch.randint(5, 40, (n,), generator=g), torch.arange(n) // 2, vocab) for n in (20, 7, 2)]
    return collate_sequences(items)


def peptide_batch():
    """Three receptor-peptide pairs of ESM residue ids (receptors of 12, 5, 3 residues, peptides of 4, 6, 2), as
    the ``peptide_pairs`` kind collates them (issue 13)."""
    from geomask.datasets.peptides import PeptidePair, collate_peptide_pairs
    from geomask.sequences import amino_vocab

    g, v = torch.Generator().manual_seed(0), amino_vocab()
    sizes = ((12, 4), (5, 6), (3, 2))
    items = [
        PeptidePair(torch.randint(4, 24, (r,), generator=g), torch.randint(4, 24, (p,), generator=g), v)
        for r, p in sizes
    ]
    return collate_peptide_pairs(items)


# a tiny batch of every data kind (``data.kind`` of the training config)
BATCHES: dict[str, Callable[[], Any]] = {
    "circuits": graph_batch,
    "pairs": graph_batch,
    "synthetic": graph_batch,
    "objects": object_batch,
    "scans": scene_batch,
    "images": image_batch,
    "text": text_batch,
    "peptide_pairs": peptide_batch,  # issue 13
    "paired_families": peptide_batch,  # issue 13: DiffPALM's pairs collate as peptide pairs
}

_GRAPH = {"hidden": 16, "layers": 2}
_VGA = {**_GRAPH, "verilog_dim": D, "cross_heads": 4}
_POINT = {"num_groups": 16, "group_size": 16, "dim": 32, "depth": 2, "heads": 2, "embed_hidden": 16}
_TOKENIZER = {"num_tokens": 32, "token_dim": 16, "dvae_dim": 32, "dgcnn_hidden": [16, 32]}
_SCENE = {"backbone": "Res16UNetTiny", "voxel_size": 0.1}
_VIT = {"image_size": 16, "patch_size": 2, "dim": 24, "depth": 1, "heads": 2}

# builder keywords that make each method tiny
CASES: dict[str, dict[str, Any]] = {
    "mgvga": _VGA,
    "mgvga_single": _VGA,
    "mgm": _GRAPH,
    "graphmae": _GRAPH,
    "pointmae": {**_POINT, "decoder_depth": 1},
    "pointbert": {**_POINT, **_TOKENIZER, "tau_steps": 10, "kl_steps": 10},
    "msm": {**_SCENE, "mask_cell": 2},
    "cpcm": {**_SCENE, "num_classes": 2, "grid": 2, "rampup_steps": 5},
    "mae": {**_VIT, "decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2},
    "simmim": {**_VIT, "mask_patch_size": 4},
    "spark": {"backbone": "tiny", "widths": (8, 16), "layers": (1, 1), "stem_width": 8, "decoder_width": 16},
    "mlm": {"vocab_size": 40, "dim": 16, "depth": 1, "heads": 2, "max_len": 32},
    "drbert": {"vocab_size": 40, "dim": 16, "depth": 1, "heads": 2, "max_len": 32, "decoder_depth": 1},  # issue 13
    "ernie_gram": {
        "vocab_size": 40,
        "dim": 16,
        "depth": 1,
        "heads": 2,
        "max_len": 32,
        "generator_dim": 8,
        "generator_depth": 1,
        "generator_heads": 2,
        "lexicon": [[5, 6], [7, 8, 9]],
        "lexicon_size": 4,
    },
    "clm": {"vocab_size": 40, "dim": 16, "depth": 1, "heads": 2, "max_len": 32},  # issue 13
    "biphasic": {"vocab_size": 40, "dim": 16, "depth": 1, "heads": 2, "max_len": 32, "switch_step": 0},  # MLM phase
    "pepmlm": {"dim": 16, "depth": 1, "heads": 2, "max_len": 32},  # issue 13
    "diffpalm": {"dim": 16, "depth": 1, "heads": 2, "max_len": 32},  # issue 13
    "mfm": {**_VIT, "masker": {"name": "frequency", "radius": 4.0}},
    "hpm": {**_VIT, "decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2, "total_steps": 4},
    "selective_mae": {**_VIT, "decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2, "total_steps": 4},
    "uni4eye": {**_VIT, "depth_patch": 2, "decoder_dim": 12, "decoder_depth": 1, "decoder_heads": 2},
    "graphmae2": _GRAPH,
    "dmjd": {**_VIT, "decoder_dim": 16, "decoder_depth": 1, "decoder_heads": 2},
}

# keywords of the regression fixture's training steps: every dropout off (dropout's random stream is not part of
# the fixture), and an MSM momentum at which one EMA update shows clearly in the second step's losses
REGRESSION: dict[str, dict[str, Any]] = {
    "mgvga": {"dropout": 0.0, "head_dropout": 0.0},
    "mgvga_single": {"dropout": 0.0, "head_dropout": 0.0},
    "mgm": {"dropout": 0.0, "head_dropout": 0.0},
    "graphmae": {"dropout": 0.0},
    "pointmae": {"dropout": 0.0},
    "pointbert": {"dropout": 0.0},
    "msm": {"momentum": 0.5},
    "cpcm": {},
}


def build_case(name: str, *, seed: int = 0, **overrides: Any) -> torch.nn.Module:
    """Method ``name`` with its tiny keywords and ``overrides``, initialised under ``torch.manual_seed(seed)``."""
    from geomask.methods import build_method

    torch.manual_seed(seed)
    return build_method(name, **{**CASES.get(name, {}), **overrides})


def case_batch(name: str) -> Any:
    from geomask.methods.registry import method_data_kinds

    kinds = method_data_kinds(name)
    if not kinds:
        raise AssertionError(f"method {name!r} declares no data kinds (its class's data_kinds)")
    return BATCHES[kinds[0]]()

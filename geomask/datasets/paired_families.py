"""GENERATED paired families of interacting sequences (DiffPALM's pairing task): families A and B whose members pair
one-to-one within each species, with a known coupling between positions of A and of B.

**Not real MSAs.**  No multiple sequence alignment ships with geomask, so :func:`generate_paired_families` makes
them, a pure function of :class:`PairedFamiliesSpec`:

* per family, a reference pair (A of ``length_a``, B of ``length_b`` random standard residues), ``couplings``
  position pairs ``(p_k in A, q_k in B)`` and, per pair, a coupling table: a random permutation ``σ_k`` of the 20
  residues;
* a two-level tree per family: every species' ancestor is the reference with each residue replaced at rate
  ``species_rate``; every one of the species' ``pairs`` members is its ancestor with each residue replaced at rate
  ``member_rate`` (A and B mutate independently: no shared phylogeny, the pairing signal is the coupling alone);
* the coupling: member ``i`` draws ``x_k`` uniformly at every coupled pair and sets ``A_i[p_k] = x_k``,
  ``B_i[q_k] = σ_k(x_k)`` (a uniformly random residue instead with probability ``coupling_noise``);
* the true pairing is the identity: ``a[f, s, i]`` interacts with ``b[f, s, i]``.

The last ``heldout`` species of every family are the pairing benchmark; the others are the training pairs of the
``paired_families`` data kind (DiffPALM's paired MLM; a model never trains on a held-out species).

Folder layout (a :mod:`geomask.datasets.store` dataset, manifest kind ``paired_families``, schema 1)::

    ROOT/shards/families.pt   a [F, S, n, La] int32, b [F, S, n, Lb] int32 (ESM-alphabet residue ids, no
                              specials), a_sites [F, K] int64, b_sites [F, K] int64, tables [F, K, 20] int64
                              (σ_k as indices into the 20 standard residues)
    manifest options          {"spec": the spec's fields, "vocab": amino_vocab().to_dict(), "version"}

The items are pairs as :mod:`geomask.datasets.peptides` holds them (:class:`~geomask.datasets.peptides.PeptidePair`,
``A`` in the first segment, ``B`` in the second) and the batch is its
:class:`~geomask.datasets.peptides.PeptidePairBatch`: ``<cls> A <eos> B <eos>`` with ``segment_ids`` 1 on B.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geomask.datasets.peptides import PeptidePair
from geomask.datasets.store import DatasetReader, DatasetWriter
from geomask.errors import FormatError, UsageError
from geomask.io.atomic import build_once
from geomask.sequences.vocab import AMINO_ACIDS, ESM_TOKENS, Vocab, amino_vocab

__all__ = [
    "KIND",
    "SCHEMA",
    "PairedFamilies",
    "PairedFamiliesDataset",
    "PairedFamiliesSpec",
    "build_paired_families",
    "generate_paired_families",
    "open_paired_families",
]

SCHEMA = 1
KIND = "paired_families"
GENERATOR_VERSION = 1
FIRST_AA = ESM_TOKENS.index(AMINO_ACIDS[0])
"""The id of the first standard residue: the 20 are ids ``FIRST_AA .. FIRST_AA + 19`` (ESM's order)."""


@dataclass(frozen=True)
class PairedFamiliesSpec:
    """Which GENERATED paired families (module docstring); ``cache`` empty: ``$GEOMASK_CACHE``, else
    ``<repo>/out/cache``.  The fields a ``data.paired_families`` config section would carry."""

    families: int = 4
    species: int = 40
    pairs: int = 8
    length_a: int = 32
    length_b: int = 32
    couplings: int = 6
    species_rate: float = 0.15
    member_rate: float = 0.1
    coupling_noise: float = 0.05
    heldout: int = 8
    seed: int = 0
    cache: str = ""

    def check(self) -> None:
        """Raises UsageError (one line) on sizes that cannot make the families."""
        for name in ("families", "species", "pairs", "length_a", "length_b", "couplings"):
            if getattr(self, name) < 1:
                raise UsageError(f"paired_families: {name} must be >= 1, got {getattr(self, name)}")
        if self.couplings > min(self.length_a, self.length_b):
            raise UsageError(
                f"paired_families: couplings ({self.couplings}) must be <= both lengths "
                f"({self.length_a}, {self.length_b})"
            )
        if not 0 <= self.heldout < self.species:
            raise UsageError(f"paired_families: heldout must be in [0, species), got {self.heldout} of {self.species}")
        for name in ("species_rate", "member_rate", "coupling_noise"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UsageError(f"paired_families: {name} must be in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class PairedFamilies:
    """The generated families as plain tensors (module docstring; ``F`` families, ``S`` species, ``n`` pairs,
    ``K`` couplings).

    Attributes:
        a: ``[F, S, n, La]`` int64 residue ids of family A (ESM alphabet, no specials).
        b: ``[F, S, n, Lb]`` int64 residue ids of family B; ``a[f, s, i]`` pairs with ``b[f, s, i]``.
        a_sites, b_sites: ``[F, K]`` int64 coupled positions in A and in B.
        tables: ``[F, K, 20]`` int64 coupling tables, ``σ_k`` over the 20 standard residues' indices.
        heldout: the last ``heldout`` species of every family are held out.
    """

    a: Tensor
    b: Tensor
    a_sites: Tensor
    b_sites: Tensor
    tables: Tensor
    heldout: int

    def split(self, heldout: bool) -> tuple[Tensor, Tensor]:
        """``(a [F, S', n, La], b [F, S', n, Lb])`` of the training species (``heldout=False``) or the held-out
        ones."""
        cut = self.a.size(1) - self.heldout
        sl = slice(cut, None) if heldout else slice(0, cut)
        return self.a[:, sl], self.b[:, sl]


def _mutate(rng: np.random.Generator, seq: np.ndarray, rate: float) -> np.ndarray:
    hit = rng.random(seq.shape) < rate
    return np.where(hit, rng.integers(0, 20, seq.shape), seq)


def generate_paired_families(spec: PairedFamiliesSpec = PairedFamiliesSpec()) -> PairedFamilies:
    """The GENERATED families of ``spec`` (module docstring), a pure function of its fields (``cache`` aside)."""
    spec.check()
    rng = np.random.default_rng(spec.seed)
    f, s, n, k = spec.families, spec.species, spec.pairs, spec.couplings
    ref_a = rng.integers(0, 20, (f, 1, 1, spec.length_a))
    ref_b = rng.integers(0, 20, (f, 1, 1, spec.length_b))
    a_sites = np.stack([rng.choice(spec.length_a, k, replace=False) for _ in range(f)])  # [F, K]
    b_sites = np.stack([rng.choice(spec.length_b, k, replace=False) for _ in range(f)])
    tables = np.argsort(rng.random((f, k, 20)), axis=-1)  # [F, K, 20] a random permutation per coupling
    anc_a = _mutate(rng, np.broadcast_to(ref_a, (f, s, 1, spec.length_a)), spec.species_rate)
    anc_b = _mutate(rng, np.broadcast_to(ref_b, (f, s, 1, spec.length_b)), spec.species_rate)
    a = _mutate(rng, np.broadcast_to(anc_a, (f, s, n, spec.length_a)), spec.member_rate)
    b = _mutate(rng, np.broadcast_to(anc_b, (f, s, n, spec.length_b)), spec.member_rate)
    x = rng.integers(0, 20, (f, s, n, k))
    y = np.take_along_axis(np.broadcast_to(tables[:, None, None], (f, s, n, k, 20)), x[..., None], -1)[..., 0]
    y = np.where(rng.random((f, s, n, k)) < spec.coupling_noise, rng.integers(0, 20, (f, s, n, k)), y)
    fi = np.arange(f)[:, None, None, None]
    si, ni = np.arange(s)[None, :, None, None], np.arange(n)[None, None, :, None]
    a[fi, si, ni, a_sites[:, None, None, :]] = x
    b[fi, si, ni, b_sites[:, None, None, :]] = y
    t = torch.from_numpy
    return PairedFamilies(
        t(a + FIRST_AA).long(), t(b + FIRST_AA).long(), t(a_sites).long(), t(b_sites).long(), t(tables).long(),
        spec.heldout,
    )  # fmt: skip


def _options(spec: PairedFamiliesSpec) -> dict[str, Any]:
    fields = {k: v for k, v in asdict(spec).items() if k != "cache"}
    return {"spec": fields, "vocab": amino_vocab().to_dict(), "version": GENERATOR_VERSION}


def build_paired_families(spec: PairedFamiliesSpec = PairedFamiliesSpec()) -> Path:
    """The cache folder of the GENERATED families of ``spec``, built on first use
    (:func:`geomask.io.atomic.build_once`: under a file lock, renamed into place)."""
    from geomask.datasets.cache import cache_root

    spec.check()
    opts = _options(spec)
    digest = hashlib.sha256(json.dumps(opts, sort_keys=True).encode()).hexdigest()[:12]
    out = cache_root(spec.cache) / f"paired_families-seed{spec.seed}-{digest}"

    def write(work: Path) -> Path:
        fam = generate_paired_families(spec)
        writer = DatasetWriter(work, KIND, SCHEMA, opts)
        shard = {"a": fam.a.int(), "b": fam.b.int(), "a_sites": fam.a_sites, "b_sites": fam.b_sites}
        writer.write("families", {**shard, "tables": fam.tables}, {"pairs": int(fam.a[..., 0].numel())})
        writer.finalize()
        return work

    message = f"generating {spec.families} paired families (GENERATED, not real MSAs) into {out} (first use) ..."
    return build_once(out, message, write)


class PairedFamiliesDataset(torch.utils.data.Dataset):
    """The true pairs of a ``paired_families`` folder: the training species (``heldout=False``) or the held-out.

    Shapes:
        item: :class:`~geomask.datasets.peptides.PeptidePair` (``receptor`` = A ``[La]``, ``peptide`` = B ``[Lb]``,
        int64).
    """

    def __init__(self, root: str | Path, heldout: bool = False) -> None:
        reader = DatasetReader(root, KIND, SCHEMA)
        path = Path(root) / "manifest.json"
        try:
            self.vocab = Vocab.from_dict(reader.options["vocab"])
            spec = PairedFamiliesSpec(**reader.options["spec"])
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(path, f"no valid vocab or spec in the options ({e})") from None
        t = reader.load(0)
        want = {"a": 4, "b": 4, "a_sites": 2, "b_sites": 2, "tables": 3}
        bad = [k for k, d in want.items() if k not in t or t[k].dim() != d]
        if bad:
            raise FormatError(Path(root) / reader.items[0]["shard"], f"missing or misshapen tensors {bad}")
        self.families = PairedFamilies(
            t["a"].long(), t["b"].long(), t["a_sites"].long(), t["b_sites"].long(), t["tables"].long(), spec.heldout
        )
        a, b = self.families.split(heldout)
        self.a, self.b = a.reshape(-1, a.size(-1)), b.reshape(-1, b.size(-1))

    def __len__(self) -> int:
        return self.a.size(0)

    def __getitem__(self, i: int) -> PeptidePair:
        return PeptidePair(self.a[i], self.b[i], self.vocab)


def spec_from_config(cfg: Any) -> PairedFamiliesSpec:
    """The ``data.paired_families`` section of ``cfg`` if it has one (its fields as :class:`PairedFamiliesSpec`'s),
    else the defaults."""
    sec = getattr(cfg, "paired_families", None) if cfg is not None else None
    if sec is None:
        return PairedFamiliesSpec()
    names = PairedFamiliesSpec.__dataclass_fields__
    return PairedFamiliesSpec(**{k: getattr(sec, k) for k in names if hasattr(sec, k)})


def open_paired_families(root: None, cfg: Any, seed: int) -> PairedFamiliesDataset:
    """The training pairs of the GENERATED families (:func:`generate_paired_families`), built once into the cache
    (``data.paired_families`` if the config has that section, else :class:`PairedFamiliesSpec`'s defaults)."""
    return PairedFamiliesDataset(build_paired_families(spec_from_config(cfg)))

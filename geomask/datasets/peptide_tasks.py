"""Labelled peptide classification tasks from the ``modlamp`` package (its bundled CSVs: nothing downloads).

``modlamp`` (``pip install geomask[ripp]``, i.e. ``modlamp==4.3.3``) ships four two-class peptide sets; each task
here is one of them as plain tensors in ESM's residue alphabet (:mod:`geomask.sequences.vocab`):

============  ===============================  ===========  =================================
name          modlamp loader                   rows         classes (0, 1)
============  ===============================  ===========  =================================
amp_tm        ``load_AMPvsTM``                 412          transmembrane segment, AMP
amp_uniprot   ``load_AMPvsUniProt``            5,200        UniProt protein (10-50 aa), AMP
acp_tm        ``load_ACPvsTM``                 826          transmembrane segment, anticancer
acp_random    ``load_ACPvsRandom``             826          random, AMP composition; anticancer
============  ===============================  ===========  =================================

A repeated sequence is kept once and one listed under both classes is left out (``amp_uniprot``: 558 of its 5,200
rows repeat a sequence, 22 sequences are under both classes: 4,620 peptides, 55 % AMP); a row with a letter outside
ESM's alphabet is one ``error: FILE:LINE: ...`` line and left out.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from geomask.errors import FormatError, GeomaskError

__all__ = ["SCHEMA", "TASKS", "PeptideTask", "load_peptide_task", "modlamp_data_dir", "read_task_csv"]

SCHEMA = "geomask.peptide_task/1"
"""Schema of :meth:`PeptideTask.to_tensors`."""

TASKS = {
    "amp_tm": "AMPvsTMset.csv",
    "amp_uniprot": "AMPvsUniProt.csv",
    "acp_tm": "ACP_CancPPD_vs_TM.csv",
    "acp_random": "ACP_CancPPD_vs_Random.csv",
}
"""Task name → the modlamp data file (``modlamp/data/``) its loader reads."""


@dataclass(frozen=True)
class PeptideTask:
    """One labelled task: ``ids`` (residue ids ``[n_i]`` int64 per peptide, no specials), ``labels [P]`` int64 in
    {0, 1}, ``sequences`` (the letters), ``class_names`` (label 0, label 1) and the ``source`` file."""

    name: str
    sequences: list[str]
    ids: list[Tensor]
    labels: Tensor
    class_names: tuple[str, str]
    source: str

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: Tensor) -> PeptideTask:
        """The peptides at ``index`` (``[K]`` int64), in that order."""
        idx = index.tolist()
        return PeptideTask(
            self.name,
            [self.sequences[i] for i in idx],
            [self.ids[i] for i in idx],
            self.labels[index],
            self.class_names,
            self.source,
        )

    def to_tensors(self) -> dict[str, object]:
        """Plain tensors (:data:`SCHEMA`): ``tokens [T]`` int64 (all peptides concatenated), ``offsets [P + 1]``
        int64, ``labels [P]`` int64, and the ``name``, ``class_names``, ``source`` strings."""
        lengths = torch.tensor([len(t) for t in self.ids], dtype=torch.long)
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])
        tokens = torch.cat(self.ids) if self.ids else torch.zeros(0, dtype=torch.long)
        return {
            "schema": SCHEMA,
            "name": self.name,
            "class_names": list(self.class_names),
            "source": self.source,
            "tokens": tokens,
            "offsets": offsets,
            "labels": self.labels.clone(),
        }


def modlamp_data_dir() -> Path:
    """The folder of modlamp's bundled CSVs.

    Raises:
        GeomaskError: modlamp is not installed (one line saying how to install it).
    """
    import importlib.util

    spec = importlib.util.find_spec("modlamp")
    if spec is None or not spec.submodule_search_locations:
        raise GeomaskError(
            "the peptide tasks need the package modlamp (its bundled data sets): pip install 'geomask[ripp]' "
            "(modlamp==4.3.3)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def read_task_csv(path: str | Path, name: str | None = None) -> PeptideTask:
    """A modlamp-format CSV: a header ``COUNT,FEATURES,CLASS0,CLASS1`` then ``SEQUENCE,LABEL`` rows.

    Raises:
        MissingFileError: no such file.  FormatError: a bad header, or no usable row.
    """
    from geomask.errors import MissingFileError
    from geomask.sequences.vocab import encode_protein, invalid_residues

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise FormatError(path, f"not UTF-8 text (byte {e.start})") from None
    head = [c.strip() for c in (lines[0] if lines else "").split(",")]
    if len(head) != 4:
        raise FormatError(path, "line 1 is not a modlamp header COUNT,FEATURES,CLASS0,CLASS1", line=1)
    seen: dict[str, int] = {}
    for k, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = [c.strip() for c in line.split(",")]
        seq = cells[0].upper()
        if len(cells) != 2 or cells[1] not in ("0", "1") or not seq or invalid_residues(seq):
            why = f"invalid residues {''.join(invalid_residues(seq))}" if seq and invalid_residues(seq) else None
            print(f"error: {path}:{k}: {why or 'expected SEQUENCE,0|1'}; row left out", file=sys.stderr)
            continue
        label = int(cells[1])
        if seen.get(seq, label) != label:
            seen[seq] = -1  # listed under both classes: left out below
        elif seq not in seen:
            seen[seq] = label
    kept = [(s, y) for s, y in seen.items() if y >= 0]
    if {y for _, y in kept} != {0, 1}:
        raise FormatError(path, "no usable rows of both classes")
    seqs = [s for s, _ in kept]
    return PeptideTask(
        name or path.stem,
        seqs,
        encode_protein(seqs),
        torch.tensor([y for _, y in kept], dtype=torch.long),
        (head[2], head[3]),
        str(path),
    )


def load_peptide_task(name: str) -> PeptideTask:
    """The task ``name`` (one of :data:`TASKS`) from modlamp's bundled CSV.

    Raises:
        UsageError: an unknown name.  GeomaskError: modlamp is not installed.
    """
    from geomask.errors import UsageError

    if name not in TASKS:
        raise UsageError(f"unknown peptide task {name!r} (valid: {', '.join(TASKS)})")
    return read_task_csv(modlamp_data_dir() / TASKS[name], name)

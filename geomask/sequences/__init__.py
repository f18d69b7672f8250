"""geomask.sequences: token sequences as 1-D grids -- vocabularies (ESM's amino acids, tokenizers trained here),
the padded sequence batch and its grid / path-graph views (the encoder is :mod:`geomask.nn.sequence_encoder`).

The sequence maskers (``mlm``, ``whole_word``, ``span``) and the 80/10/10 step (:func:`mlm_replace`) live in
:mod:`geomask.masking` with the other maskers.
"""

from geomask.sequences.batch import SequenceBatch, SequenceItem, collate_sequences
from geomask.sequences.vocab import AMINO_ACIDS, ESM_TOKENS, RESIDUES, Vocab, amino_vocab, encode_protein

__all__ = [
    "AMINO_ACIDS",
    "ESM_TOKENS",
    "RESIDUES",
    "SequenceBatch",
    "SequenceItem",
    "Vocab",
    "amino_vocab",
    "collate_sequences",
    "encode_protein",
]

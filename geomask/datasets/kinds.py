"""Data kinds: the registry of what pretraining can read; the training engine knows no modality.

A data kind is

* a **reader**, ``open(root, cfg, seed) -> Dataset``: a map-style dataset of items, from one dataset folder
  (``root``; kinds that read folders name the manifest ``kind`` s they read in ``manifests``) or from the
  ``data`` section of the config alone (``root`` is ``None``: data generated from ``cfg`` and ``seed``);
* a **collate**, ``collate(items) -> batch`` (a module-level function, so that loader processes can pickle it);
* the **batch type** that collate makes: the contract with the methods that train on the kind (``batch``,
  documented below);
* optionally **groups**, ``groups(dataset) -> int array [len(dataset)]``: items of different groups never share
  a batch (graphs with Verilog fields and graphs without); ``group_names`` declares the groups a kind makes and
  names those the one-line data summary counts (``{1: "with Verilog"}``).

Readers, collates and groups may be given as ``"module:attribute"`` strings, imported on first use, so that
importing this registry (config validation, ``geomask list``) loads no torch.

The built-in kinds and their batches (``data.kind`` in the training config; ``auto`` reads each folder of
``data.roots`` by the kind its ``manifest.json`` names):

==========  =============================================  =======================================================
kind        item                                           batch
==========  =============================================  =======================================================
circuits    an AIG graph, PyG ``Data`` (``geomask prep      PyG ``Batch`` (``follow_batch=["verilog_emb"]``):
            circuits`` folders, manifest kind ``aig``)     ``node_type``, ``edge_index``, ``batch`` [sum n], ...
pairs       ``Data`` + ``verilog_emb [C, D]``,             PyG ``Batch`` + ``verilog_emb [sum C, D]``,
            ``verilog_vec [1, D]`` (``prep pairs``         ``verilog_emb_batch [sum C]`` (chunk → graph),
            folders, manifest kind ``verilog_aig_pairs``)  ``verilog_vec [B, D]``
synthetic   random AIG ``Data`` from ``data.synthetic``,   PyG ``Batch`` as circuits or pairs (never mixed: the
            some with random Verilog fields                two are separate groups)
scans       ``(points [N, 3], feats [N, C], labels [N] |   :class:`geomask.points.augment.ScenePoints`
            None)`` (``prep scans`` folders, manifest      (``points [sum N, 3]``, ``feats [sum N, C]``,
            kind ``scan``); feats: colours, else ones      ``batch [sum N]``, ``labels [sum N]`` or ``None``)
objects     a cloud ``[N, 3]`` float tensor from           dense ``[B, N, 3]`` float tensor
            ``data.objects`` (synthetic primitive shapes)
corpus      as circuits: AIGs of ``data.corpus.designs``   as circuits
            designs of the embedded Verilog corpus
corpus_     as pairs: the same designs with their          as pairs
pairs       Verilog's embeddings (``data.corpus``)
scenes      as scans: GENERATED indoor rooms (not real     as scans (feats: colours, ``C = 3``)
            scans), made on first use into the cache
images      ``ImageItem(image [C, H, W] uint8, label,      :class:`geomask.datasets.images.ImageBatch`, a
            spec)`` (``prep images`` folders, manifest     ``GridBatch``: ``values [B, C, H, W]`` float32
            kind ``images``); options ``data.images``      normalised per channel, ``labels [B]`` (-1: none), and
                                                           the crop/flip to apply with the step's generator
shapes      as images: GENERATED pictures of drawn         as images (``C = 3``)
            shapes (10 classes, not real images), made
            on first use into the cache (``data.shapes``)
text        ``SequenceItem(ids [n], word_ids [n],          :class:`geomask.sequences.SequenceBatch`
            vocab)`` int64, no specials (``prep text``     (``ids [B, L]``, ``attention_mask [B, L]``,
            folders, manifest kind ``text``)               ``lengths [B]``, ``word_ids [B, L]``, vocab);
                                                           ``data.pack_length`` packs rows
sequences   as text, without word ids: proteins (ESM       as text (no ``word_ids``)
            alphabet; ``prep sequences`` folders,
            manifest kind ``sequences``)
generated_  as text: GENERATED sentences of a small        as text
text        grammar (not real text), tokenized, made on
            first use into the cache
            (``data.generated_text``)
graphs      a graph, PyG ``Data`` (``x [N, F]`` float,     PyG ``Batch`` (``x [sum N, F]``, ``edge_index``,
            ``edge_index``, ``y``): raw Planetoid or TU    ``batch``, ``y``; node-level sets: one graph with
            folders, or ``prep graphs`` folders            ``train_mask``, ``val_mask``, ``test_mask``)
            (manifest kind ``graphs``)
scan_       a real object cut out of a labelled scan,      dense ``[B, P, 3]`` float tensor (as objects)
objects     ``[P, 3]`` (``prep objects`` folders,
            manifest kind ``scan_objects``)
peptide_    ``PeptidePair(receptor [n_r], peptide [n_p],   :class:`geomask.datasets.peptides.PeptidePairBatch`,
pairs       vocab)`` int64 residues (``prep peptides``     a SequenceBatch of ``<cls> receptor <eos> peptide
            folders, manifest kind ``peptide_pairs``)      <eos>`` with ``segment_ids [B, L]`` (1 = peptide)
generated_  as peptide_pairs: GENERATED pairs (a           as peptide_pairs
peptides    learnable rule, not real binders), made on
            first use into the cache
            (``data.generated_peptides``)
paired_     as peptide_pairs (A, B): GENERATED paired      as peptide_pairs: ``<cls> A <eos> B <eos>``,
families    families (a known A-B coupling, not real       ``segment_ids`` 1 = B
            MSAs), the true pairs of the training
            species, made on first use into the cache
==========  =============================================  =======================================================

``corpus`` and ``corpus_pairs`` are built from the repository's ``data/corpus`` on first use (one progress line)
into a cache folder, ``data.corpus.cache``, else ``$GEOMASK_CACHE``, else ``<repo>/out/cache``, as
``<kind>-<designs>-<options hash>``, and read from there afterwards; ``scenes`` are generated rooms
(:mod:`geomask.datasets.generated_scenes`), prepared by ``geomask prep scans``' code into that cache folder on first
use (one progress line), ``shapes`` generated pictures (:mod:`geomask.datasets.generated_images`) prepared by
``geomask prep images``' code the same way, and so are ``generated_text``, ``generated_peptides`` and
``paired_families``.  These seven are **default data** (``default_data``): a config that sets ``data.roots``
reads those folders instead (as ``auto``), so ``--set data.roots=[my/prep]`` points a shipped config at one's own
data.

Kinds with the same collate may share a run (``auto`` over a circuits and a pairs folder); others may not.
A new kind::

    register_data_kind("meshes", description="...", batch="...", open="mypkg.meshes:open_meshes",
                       collate="mypkg.meshes:collate_meshes", manifests=("mesh",))

A method declares the kinds it trains on by name (:data:`geomask.methods.registry.DATA_KINDS`); nothing in
``geomask.methods`` imports this module.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from geomask.errors import UsageError

__all__ = [
    "AUTO",
    "DataKind",
    "available_data_kinds",
    "data_kind_choices",
    "get_data_kind",
    "kind_for_manifest",
    "register_data_kind",
]

AUTO = "auto"
"""The ``data.kind`` that reads every folder of ``data.roots`` by the kind its manifest names."""


def _resolve(ref: Callable[..., Any] | str) -> Callable[..., Any]:
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class DataKind:
    """One registered data kind (see the module docstring).

    Attributes:
        name: the ``data.kind`` name.
        description: one line, for listings.
        batch: the batch type its collate makes, in words (the methods' contract).
        open: ``open(root, cfg, seed) -> Dataset``, or ``"module:attribute"`` naming it.
        collate: ``collate(items) -> batch``, or ``"module:attribute"``.
        manifests: the dataset manifest kinds it reads (empty: generated from the config, no folders).
        groups: ``groups(dataset) -> int array``, or ``"module:attribute"``; ``None``: every item in group 0.
        group_names: the groups it makes, those with a non-empty name counted in the data summary.
        items: what one item is called in the data summary (``graphs``, ``scans``, ``clouds``).
        default_data: data that stands in while ``data.roots`` is empty; with roots set, the config reads those
            folders (``data.kind`` becomes ``auto``).
    """

    name: str
    description: str
    batch: str
    open: Callable[..., Any] | str
    collate: Callable[..., Any] | str
    manifests: tuple[str, ...] = ()
    groups: Callable[..., Any] | str | None = None
    group_names: Mapping[int, str] = field(default_factory=dict)
    items: str = "items"
    default_data: bool = False

    @property
    def reads_folders(self) -> bool:
        """Whether it reads dataset folders (``data.roots``) rather than generating its data."""
        return bool(self.manifests)

    def open_dataset(self, root: Any, cfg: Any, seed: int) -> Any:
        """The dataset of one folder (``root``), or of the config alone (``root=None``)."""
        return _resolve(self.open)(root, cfg, seed)

    def collate_fn(self, cfg: Any = None) -> Callable[[list[Any]], Any]:
        """The kind's collate; one that takes a ``cfg`` keyword gets the run's ``data`` section bound to it
        (the text kinds read ``data.pack_length``)."""
        fn = _resolve(self.collate)
        if cfg is not None and "cfg" in inspect.signature(fn).parameters:
            return functools.partial(fn, cfg=cfg)
        return fn

    def group_ids(self, dataset: Any) -> Any:
        """``[len(dataset)]`` int64 group of each item."""
        import numpy as np

        if self.groups is None:
            return np.zeros(len(dataset), dtype=np.int64)
        return np.asarray(_resolve(self.groups)(dataset), dtype=np.int64).reshape(len(dataset))


_KINDS: dict[str, DataKind] = {}


def register_data_kind(
    name: str,
    *,
    description: str,
    batch: str,
    open: Callable[..., Any] | str,
    collate: Callable[..., Any] | str,
    manifests: tuple[str, ...] | list[str] = (),
    groups: Callable[..., Any] | str | None = None,
    group_names: Mapping[int, str] | None = None,
    items: str = "items",
    default_data: bool = False,
    replace: bool = False,
) -> DataKind:
    """Register a data kind under ``name`` (the ``data.kind`` of a training config) and return it.

    Raises:
        UsageError: ``name`` is ``auto`` or not a lower-case identifier, is taken (unless ``replace``), or a
            manifest kind is read by another kind already.
    """
    if name == AUTO or not name.isidentifier() or name != name.lower():
        raise UsageError(f"cannot register data kind {name!r}: a name is a lower-case identifier other than 'auto'")
    if name in _KINDS and not replace:
        raise UsageError(f"data kind {name!r} is registered already (replace=True replaces it)")
    for m in manifests:
        other = kind_for_manifest(m)
        if other is not None and other != name:
            raise UsageError(f"cannot register data kind {name!r}: data kind {other!r} reads {m!r} datasets already")
    if "\n" in description:
        raise UsageError(f"data kind {name!r}: the description must be one line")
    kind = DataKind(
        name, description, batch, open, collate, tuple(manifests), groups, dict(group_names or {}), items, default_data
    )
    _KINDS[name] = kind
    return kind


def get_data_kind(name: str) -> DataKind:
    """The registered kind ``name``.

    Raises:
        UsageError: no such kind (one line listing the registered ones).
    """
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        raise UsageError(f"unknown data kind {name!r}; valid: {', '.join(data_kind_choices())}") from None


def available_data_kinds() -> dict[str, str]:
    """The registered data kinds, name → one-line description, in registration order (``auto`` is not a kind:
    see :func:`data_kind_choices`)."""
    return {k.name: k.description for k in _KINDS.values()}


def data_kind_choices() -> tuple[str, ...]:
    """The values ``data.kind`` may take: ``auto``, then every registered kind."""
    return (AUTO, *_KINDS)


def kind_for_manifest(manifest_kind: str) -> str | None:
    """The registered kind that reads datasets whose manifest says ``kind: manifest_kind`` (``None``: none)."""
    for k in _KINDS.values():
        if manifest_kind in k.manifests:
            return k.name
    return None


# ---------------------------------------------------------------------------------------------------
# the built-in kinds (readers and collates in geomask.datasets.readers, imported on first use)

_R = "geomask.datasets.readers"
_GRAPH_BATCH = 'torch_geometric.data.Batch (follow_batch=["verilog_emb"])'
_VERILOG_GROUPS = {0: "", 1: "with Verilog"}

register_data_kind(
    "circuits",
    description="AIG graphs: folders written by geomask prep circuits",
    batch=_GRAPH_BATCH,
    open=f"{_R}:open_circuits",
    collate=f"{_R}:collate_graphs",
    manifests=("aig",),
    groups=f"{_R}:without_verilog",
    group_names=_VERILOG_GROUPS,
    items="graphs",
)
register_data_kind(
    "pairs",
    description="AIG graphs with their Verilog's embeddings: folders of geomask prep pairs (MGVGA)",
    batch=f"{_GRAPH_BATCH} with verilog_emb [sum C, D], verilog_emb_batch [sum C], verilog_vec [B, D]",
    open=f"{_R}:open_pairs",
    collate=f"{_R}:collate_graphs",
    manifests=("verilog_aig_pairs",),
    groups=f"{_R}:with_verilog",
    group_names=_VERILOG_GROUPS,
    items="graphs",
)
register_data_kind(
    "scans",
    description="scene point clouds: folders of geomask prep scans (MSM, CPCM)",
    batch="geomask.points.augment.ScenePoints (points [sum N, 3], feats [sum N, C], batch [sum N], labels)",
    open=f"{_R}:open_scans",
    collate=f"{_R}:collate_scans",
    manifests=("scan",),
    items="scans",
)
register_data_kind(
    "synthetic",
    description="random AIGs made from data.synthetic, some with random Verilog embeddings",
    batch=f"{_GRAPH_BATCH}; graphs with and without Verilog never share a batch",
    open=f"{_R}:open_synthetic",
    collate=f"{_R}:collate_graphs",
    groups=f"{_R}:synthetic_verilog",
    group_names=_VERILOG_GROUPS,
    items="graphs",
)
register_data_kind(
    "objects",
    description="point clouds of primitive shapes made from data.objects (Point-MAE, Point-BERT)",
    batch="dense float tensor [B, N, 3]",
    open=f"{_R}:open_objects",
    collate=f"{_R}:collate_dense",
    items="clouds",
)
register_data_kind(
    "corpus",
    description="AIG graphs of the embedded Verilog corpus (data.corpus), built once into a cache on first use",
    batch=_GRAPH_BATCH,
    open=f"{_R}:open_corpus",
    collate=f"{_R}:collate_graphs",
    groups=f"{_R}:without_verilog",
    group_names=_VERILOG_GROUPS,
    items="graphs",
    default_data=True,
)
register_data_kind(
    "corpus_pairs",
    description="Verilog-AIG pairs of the embedded Verilog corpus (data.corpus), built once into a cache (MGVGA)",
    batch=f"{_GRAPH_BATCH} with verilog_emb [sum C, D], verilog_emb_batch [sum C], verilog_vec [B, D]",
    open=f"{_R}:open_corpus_pairs",
    collate=f"{_R}:collate_graphs",
    groups=f"{_R}:with_verilog",
    group_names=_VERILOG_GROUPS,
    items="graphs",
    default_data=True,
)
register_data_kind(
    "scenes",
    description="GENERATED indoor scenes (synthetic rooms, not real scans), built once into a cache on first use "
    "(MSM, CPCM)",
    batch="geomask.points.augment.ScenePoints (points [sum N, 3], feats [sum N, 3] colours, batch [sum N], labels)",
    open=f"{_R}:open_scenes",
    collate=f"{_R}:collate_scans",
    items="scenes",
    default_data=True,
)
register_data_kind(
    "images",
    description="images: folders written by geomask prep images (MAE, SimMIM, ...)",
    batch="geomask.datasets.images.ImageBatch, a geomask.grids.GridBatch (values [B, C, H, W] float32 normalised per "
    "channel, labels [B], -1 unlabelled) carrying the crop/flip its .augmented(generator) applies",
    open=f"{_R}:open_images",
    collate=f"{_R}:collate_images",
    manifests=("images",),
    items="images",
)
register_data_kind(
    "shapes",
    description="GENERATED images of drawn shapes (10 classes, not real images), built once into a cache on first use",
    batch="as images (C = 3)",
    open=f"{_R}:open_shapes",
    collate=f"{_R}:collate_images",
    items="images",
    default_data=True,
)
register_data_kind(
    "text",
    description="tokenized text: folders written by geomask prep text (MLM)",
    batch="geomask.sequences.SequenceBatch (ids [B, L], attention_mask [B, L], lengths [B], word_ids [B, L], vocab)",
    open="geomask.datasets.text:open_text",
    collate="geomask.datasets.text:collate_text",
    manifests=("text",),
    items="sequences",
)
register_data_kind(
    "sequences",
    description="protein sequences (ESM alphabet): folders written by geomask prep sequences (MLM)",
    batch="geomask.sequences.SequenceBatch (ids [B, L], attention_mask [B, L], lengths [B], vocab)",
    open="geomask.datasets.text:open_sequences",
    collate="geomask.datasets.text:collate_text",
    manifests=("sequences",),
    items="sequences",
)
register_data_kind(
    "generated_text",
    description="GENERATED sentences of a small grammar (not real text), tokenized, built once into a cache (MLM)",
    batch="as text",
    open="geomask.datasets.text:open_generated_text",
    collate="geomask.datasets.text:collate_text",
    items="sequences",
    default_data=True,
)
register_data_kind(
    "graphs",
    description="generic graphs with node features: raw Planetoid (Cora, CiteSeer) or TU (MUTAG, PROTEINS, ...) "
    "folders, or folders of geomask prep graphs (GraphMAE)",
    batch="torch_geometric.data.Batch (x [sum N, F] float, edge_index, batch, y; node-level sets: one graph with "
    "train_mask, val_mask, test_mask)",
    open="geomask.datasets.graphs:open_graphs",
    collate="geomask.datasets.graphs:collate_graph_batch",
    manifests=("graphs",),
    items="graphs",
)
register_data_kind(
    "scan_objects",
    description="real objects cut out of labelled scans by instance id: folders of geomask prep objects "
    "(Point-MAE, Point-BERT)",
    batch="dense float tensor [B, P, 3] (as objects)",
    open="geomask.datasets.prep_objects:open_scan_objects",
    collate=f"{_R}:collate_dense",
    manifests=("scan_objects",),
    items="clouds",
)
register_data_kind(  # issue 13
    "peptide_pairs",
    description="receptor-peptide pairs (ESM alphabet): folders written by geomask prep peptides (PepMLM)",
    batch="geomask.datasets.peptides.PeptidePairBatch, a SequenceBatch of <cls> receptor <eos> peptide <eos> "
    "with segment_ids [B, L] (1 = peptide)",
    open="geomask.datasets.peptides:open_peptide_pairs",
    collate="geomask.datasets.peptides:collate_peptide_pairs",
    manifests=("peptide_pairs",),
    items="pairs",
)
register_data_kind(  # issue 13
    "generated_peptides",
    description="GENERATED receptor-peptide pairs (a learnable rule, not real binders), built once into a cache "
    "(PepMLM)",
    batch="as peptide_pairs",
    open="geomask.datasets.peptides:open_generated_peptides",
    collate="geomask.datasets.peptides:collate_peptide_pairs",
    items="pairs",
    default_data=True,
)
register_data_kind(  # issue 13
    "paired_families",
    description="GENERATED paired families of interacting sequences (a known A-B coupling, not real MSAs): the true "
    "pairs of the training species, built once into a cache (DiffPALM)",
    batch="as peptide_pairs: <cls> A <eos> B <eos> with segment_ids [B, L] (1 = B)",
    open="geomask.datasets.paired_families:open_paired_families",
    collate="geomask.datasets.peptides:collate_peptide_pairs",
    items="pairs",
    default_data=True,
)

"""The shared protocol of every circuit evaluation: load designs, pretrain each method with the same budget
and seeds, run a task on each (method, seed), and summarise mean ± std over seeds.

Methods compared (:data:`METHOD_NAMES`):

* ``scratch`` -- no pretraining: the same encoder as ``mgm``, randomly initialised with the seed;
* ``mgm`` -- masked gate modeling only; ``mgvga`` -- MGM + VGA over Verilog chunks; ``mgvga_single`` --
  MGM + VGA over one pooled Verilog vector; ``graphmae`` -- GraphMAE-style input feature masking.

All are built by :func:`geomask.methods.registry.build_method` with the same encoder keywords
(:attr:`Budget.model`).  Pretraining is a minimal in-process AdamW loop (:func:`pretrain`) over the
pretraining graphs, ``pretrain_steps`` steps, batches cut within "has Verilog" / "has no Verilog" groups
(Verilog-less designs such as EPFL AIGs give MGM losses only).  A method may instead be loaded from a
``geomask pretrain`` run folder or checkpoint (:attr:`Budget.checkpoints`).  Model initialisation runs
under ``torch.random.fork_rng`` seeded with the seed, so the global RNG is left as it was.

Result shape (what :func:`compare` returns and the ``--json`` files hold)::

    {"methods": {METHOD: {SPLIT: {METRIC: mean, METRIC + "_std": std, ...}}},
     "verilog": {"mgvga": bool, "mgvga_single": bool}}   # compared Verilog methods only (:func:`verilog_use`)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from geomask.circuits.graph import aig_to_graph
from geomask.errors import GeomaskError
from geomask.eval.metrics import mean_std
from geomask.io.aig import AIG
from geomask.io.circuit import expand_sources, read_aig
from geomask.ops.threads import single_thread
from geomask.progress import progress_bar

__all__ = [
    "METHOD_NAMES",
    "Budget",
    "EvalDesign",
    "FinetunedNodes",
    "compare",
    "embed_graphs",
    "embed_nodes",
    "get_method",
    "load_designs",
    "model_graph",
    "node_batches",
    "pretrain",
    "single_thread",
    "strip_verilog",
    "fit_mlp",
    "verilog_use",
    "holdout_split",
]

METHOD_NAMES = ("scratch", "mgm", "mgvga", "mgvga_single", "graphmae")
_REGISTRY_NAME = {"scratch": "mgm"}
_VERILOG_METHODS = ("mgvga", "mgvga_single")
_MODEL_FIELDS = ("node_type", "edge_index", "in_degree", "out_degree", "verilog_emb", "verilog_vec")
_VERILOG_SUFFIXES = (".v", ".sv")


@dataclass
class Budget:
    """The budget every method gets, identical across methods.

    Attributes:
        methods: which of :data:`METHOD_NAMES` to compare.
        seeds: one full run (pretraining and task) per seed.
        pretrain_steps: AdamW steps of pretraining (``scratch`` takes none).
        finetune_steps: AdamW steps of the downstream head.
        batch_size: graphs per pretraining batch (fewer when :attr:`max_nodes` is reached).
        max_nodes: node budget of one batch (a larger graph still forms a batch alone).
        lr, weight_decay: pretraining AdamW.
        head_lr: downstream head AdamW learning rate.
        finetune_encoder: node-level tasks train the encoder together with the head (the encoder at
            ``lr``), instead of a head on frozen embeddings.
        model: encoder keywords for the registry (``encoder``, ``hidden``, ``layers``, ...).
        checkpoints: ``{method: run folder or checkpoint}`` to load instead of pretraining.
    """

    methods: Sequence[str] = METHOD_NAMES
    seeds: Sequence[int] = (0,)
    pretrain_steps: int = 200
    finetune_steps: int = 300
    batch_size: int = 8
    max_nodes: int = 200_000
    lr: float = 1e-3
    weight_decay: float = 1e-4
    head_lr: float = 3e-3
    finetune_encoder: bool = False
    model: dict[str, Any] = field(default_factory=dict)
    checkpoints: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHOD_NAMES]
        if bad:
            raise ValueError(f"unknown method(s) {', '.join(bad)}; valid: {', '.join(METHOD_NAMES)}")
        if not self.methods or not self.seeds:
            raise ValueError("at least one method and one seed are needed")
        if self.pretrain_steps < 0 or self.finetune_steps < 1 or self.batch_size < 1:
            raise ValueError("pretrain_steps must be >= 0, finetune_steps and batch_size >= 1")

    @property
    def needs_verilog(self) -> bool:
        """Whether a compared method reads Verilog embeddings."""
        return any(m in _VERILOG_METHODS for m in self.methods)


@dataclass
class EvalDesign:
    """One design of an evaluation.

    Attributes:
        name: unique key (see :func:`geomask.io.circuit.expand_sources`).
        path: the source file or Verilog folder.
        aig: the AIG (latches kept as read; the graph cuts them).
        graph: the canonical graph (``var``, ``edge_type``, ... as :func:`aig_to_graph` builds it), with
            ``verilog_emb [C, D]`` / ``verilog_vec [1, D]`` when the source is Verilog and embeddings were
            requested.
    """

    name: str
    path: Path
    aig: AIG
    graph: Data


def _is_verilog(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in _VERILOG_SUFFIXES


def load_designs(
    sources: Sequence[str | Path],
    *,
    text_encoder: Any = None,
    verilog: bool = True,
    cache: str | Path | None = None,
    not_nodes: str = "per_edge",
    jobs: int = 1,
    timeout: float = 600.0,
    on_error: Callable[[str, Path, GeomaskError], None] | None = None,
) -> list[EvalDesign]:
    """Read designs (AIGER / .bench files, Verilog files or folders; folders of them are expanded).

    Args:
        sources: files, folders and ``PATH@TOP`` (the one rule of :func:`~geomask.io.circuit.expand_sources`).
        text_encoder: spec or encoder for :func:`geomask.nn.text_encoder.resolve_text_encoder`.
        verilog: attach Verilog chunk embeddings to Verilog designs.
        cache: embedding cache folder (default: no cache, embeddings computed in memory).
        not_nodes: NOT-node mode of the graphs.
        jobs: parallel reads (yosys runs).
        timeout: seconds per yosys run.
        on_error: called with the key, the path and the error of each source that is not a design (a missing path, a
            folder without circuit files, an unknown suffix) and of each design that cannot be read (yosys rejects it,
            a bad AIGER file), which is then left out while the others are read; ``None``: the error is raised.

    Raises:
        GeomaskError: a design that cannot be read (the message names it), without ``on_error``.

    Warns:
        UserWarning: per thing a conversion changed or left out (undriven outputs, dropped simulation
            statements, unused modules), naming the design.
    """
    unexpanded: list[tuple[str, str]] | None = None if on_error is None else []
    found = expand_sources(sources, unexpanded)  # with on_error: a source that is not a design is left out
    for source, message in unexpanded or []:
        path = Path(source.rsplit("@", 1)[0])
        on_error(path.stem if path.suffix else path.name, path, GeomaskError(message))

    def read(d):
        try:
            return read_aig(d.path, top=d.top, timeout=timeout)
        except GeomaskError as e:
            if on_error is None:
                raise
            return e

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        aigs = list(pool.map(read, found))
    designs = []
    for d, aig in zip(found, aigs):
        if isinstance(aig, GeomaskError):
            on_error(d.key, d.path, aig)  # reported in order, after every read has run
            continue
        for note in getattr(aig, "warnings", []):
            warnings.warn(f"{d.path}: {note}", stacklevel=2)
        g = aig_to_graph(aig, not_nodes)
        g.name = d.key
        designs.append(EvalDesign(d.key, d.path, aig, g))
    if verilog and any(_is_verilog(d.path) for d in designs):
        _attach_verilog(designs, text_encoder, cache)
    return designs


def _attach_verilog(designs: list[EvalDesign], text_encoder: Any, cache: str | Path | None) -> None:
    from geomask.datasets.embedding_cache import EmbeddingCache, embed_design
    from geomask.nn.text_encoder import resolve_text_encoder

    enc = resolve_text_encoder(text_encoder)
    store = EmbeddingCache(cache) if cache is not None else None
    for d in designs:
        if not _is_verilog(d.path):
            continue
        try:
            e = store.embed(d.path, enc) if store is not None else embed_design(d.path, enc)
        except GeomaskError as err:
            warnings.warn(f"{d.path}: no Verilog embedding, MGM losses only ({err})", stacklevel=2)
            continue
        d.graph.verilog_emb = e.emb.float()
        d.graph.verilog_vec = e.vec.float()


def model_graph(g: Data) -> Data:
    """The fields a method reads (type, edges, degrees, Verilog), nothing else, so graphs batch cheaply."""
    out = Data(num_nodes=int(g.num_nodes))
    for k in _MODEL_FIELDS:
        v = getattr(g, k, None)
        if v is not None:
            out[k] = v
    return out


def node_batches(graphs: Sequence[Data], max_nodes: int) -> list[list[int]]:
    """Consecutive graph indices grouped so a group holds at most ``max_nodes`` nodes (or one graph)."""
    groups: list[list[int]] = []
    size = 0
    for i, g in enumerate(graphs):
        n = int(g.num_nodes)
        if groups and size + n <= max_nodes:
            groups[-1].append(i)
            size += n
        else:
            groups.append([i])
            size = n
    return groups


def _collate(graphs: Sequence[Data]) -> Batch:
    return Batch.from_data_list([model_graph(g) for g in graphs], follow_batch=["verilog_emb"])


def strip_verilog(g: Data) -> Data:
    """:func:`model_graph` without the Verilog fields: what an encoder reads."""
    out = model_graph(g)
    for k in ("verilog_emb", "verilog_vec"):
        if k in out:
            del out[k]
    return out


_strip_verilog = strip_verilog


@torch.no_grad()
def embed_nodes(method: nn.Module, graphs: Sequence[Data], max_nodes: int = 200_000) -> list[torch.Tensor]:
    """Node embeddings ``[N_i, H]`` of each graph (eval mode, no masking), batched by node budget."""
    method.eval()
    out: list[torch.Tensor] = []
    for group in node_batches(graphs, max_nodes):
        batch = Batch.from_data_list([_strip_verilog(graphs[i]) for i in group])
        h = method.embed(batch)
        out += list(torch.split(h, [int(graphs[i].num_nodes) for i in group]))
    return out


@torch.no_grad()
def embed_graphs(method: nn.Module, graphs: Sequence[Data], max_nodes: int = 200_000) -> torch.Tensor:
    """Graph embeddings ``[D, H']`` (:meth:`graph_embed` of the method), batched by node budget."""
    method.eval()
    rows = [
        method.graph_embed(Batch.from_data_list([_strip_verilog(graphs[i]) for i in group]))
        for group in node_batches(graphs, max_nodes)
    ]
    return torch.cat(rows)


def _build(name: str, seed: int, model: dict[str, Any], verilog_dim: int | None) -> nn.Module:
    from geomask.methods.registry import build_method

    kw = dict(model)
    if name in _VERILOG_METHODS and verilog_dim is not None:
        kw.setdefault("verilog_dim", verilog_dim)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_method(_REGISTRY_NAME.get(name, name), **kw)


def pretrain(
    name: str, graphs: Sequence[Data], budget: Budget, seed: int, progress: bool = False
) -> tuple[nn.Module, list[float]]:
    """Build method ``name`` with ``seed`` and pretrain it on ``graphs`` for ``budget.pretrain_steps``.

    Each step picks the Verilog or the non-Verilog group (in proportion to their sizes), draws up to
    ``batch_size`` graphs from it without replacement (stopping at ``max_nodes``), and takes one AdamW
    step on the method's ``loss`` with masks from a generator seeded by ``(seed, step)``.  Methods that do
    not read Verilog train on every graph alike.

    Returns:
        The method (eval mode) and the loss of every step.
    """
    dims = [int(g.verilog_emb.shape[1]) for g in graphs if getattr(g, "verilog_emb", None) is not None]
    verilog_dim = dims[0] if dims else None
    method = _build(name, seed, budget.model, verilog_dim)
    steps = 0 if name == "scratch" else budget.pretrain_steps
    losses: list[float] = []
    if steps == 0 or not graphs:
        return method.eval(), losses
    uses_verilog = name in _VERILOG_METHODS
    pool = [model_graph(g) if uses_verilog else _strip_verilog(g) for g in graphs]
    has_v = np.array([getattr(g, "verilog_emb", None) is not None for g in pool])
    groups = [np.nonzero(has_v)[0], np.nonzero(~has_v)[0]]
    groups = [g for g in groups if g.size]
    weights = np.array([g.size for g in groups], dtype=np.float64)
    rng = np.random.default_rng([seed, 0xE7A1])
    opt = torch.optim.AdamW(method.parameters(), lr=budget.lr, weight_decay=budget.weight_decay)
    method.train()
    # what draws from the global generator (the heads' dropout) is seeded too: torch seeds that generator at
    # random when a process starts, so without this a run would not repeat
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step in progress_bar(range(steps), desc=f"pretrain {name}", disable=not progress, leave=False):
            grp = groups[int(rng.choice(len(groups), p=weights / weights.sum()))]
            pick = rng.permutation(grp)[: budget.batch_size]
            sizes = np.cumsum([int(pool[i].num_nodes) for i in pick])
            pick = pick[: max(1, int(np.searchsorted(sizes, budget.max_nodes, side="right")))]
            batch = Batch.from_data_list([pool[i] for i in pick], follow_batch=["verilog_emb"])
            gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + step)
            loss = method(batch, gen)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            hook = getattr(method, "on_train_step_end", None)
            if hook is not None:  # EMA teachers, counters and schedules (never inside forward)
                hook(step)
            losses.append(float(loss.detach()))
    return method.eval(), losses


def get_method(name: str, graphs: Sequence[Data], budget: Budget, seed: int, progress: bool = False) -> nn.Module:
    """The encoder-bearing method for ``(name, seed)``: loaded from :attr:`Budget.checkpoints` when given
    there, else :func:`pretrain`-ed."""
    if name in budget.checkpoints:
        from geomask.train.checkpoint import load_method

        return load_method(budget.checkpoints[name]).eval()
    return pretrain(name, graphs, budget, seed, progress)[0]


def holdout_split(num_items: int, seed: int, test_fraction: float = 1 / 3) -> tuple[np.ndarray, np.ndarray]:
    """Seeded ``(train, test)`` index arrays: ``max(1, round(test_fraction * n))`` items test.

    Raises:
        ValueError: fewer than 2 items.
    """
    if num_items < 2:
        raise ValueError(f"a train/test split needs at least 2 items, got {num_items}")
    perm = np.random.default_rng([seed, 0x5B17]).permutation(num_items)
    k = min(num_items - 1, max(1, round(test_fraction * num_items)))
    return np.sort(perm[k:]), np.sort(perm[:k])


def fit_mlp(
    x: torch.Tensor,
    y: torch.Tensor,
    loss: str,
    steps: int,
    lr: float,
    seed: int,
    hidden: int = 64,
    batch: int = 512,
) -> nn.Module:
    """Train a 2-layer MLP head ``[N, F] -> [N]`` on frozen features (one torch thread).

    Args:
        x: ``[N, F]`` features; y: ``[N]`` targets (probabilities for ``"l1"``, 0/1 for ``"bce"``).
        loss: ``"bce"`` (logit output) or ``"l1"`` (sigmoid output, L1 to the target).
        steps, lr, seed: AdamW steps, learning rate, seed of initialisation and mini-batches.

    Returns:
        The head in eval mode; ``head(x)`` gives logits (``"bce"``) or probabilities (``"l1"``).
    """
    if loss not in ("bce", "l1"):
        raise ValueError(f"loss must be 'bce' or 'l1', got {loss!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = [nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Flatten(0)]
        head = nn.Sequential(*layers, *([nn.Sigmoid()] if loss == "l1" else []))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    x, y = x.float(), y.float()
    head.train()
    with single_thread():
        for _ in range(steps):
            idx = torch.randint(x.shape[0], (min(batch, x.shape[0]),), generator=gen)
            out = head(x[idx])
            if loss == "bce":
                val = torch.nn.functional.binary_cross_entropy_with_logits(out, y[idx])
            else:
                val = (out - y[idx]).abs().mean()
            opt.zero_grad(set_to_none=True)
            val.backward()
            opt.step()
    return head.eval()


class FinetunedNodes:
    """What :func:`finetune_nodes` returns: ``self(graphs, masks) -> [predictions of the masked nodes of each
    graph]`` (eval mode, no grad), and how the kept state was chosen.

    Attributes:
        best_step: the number of AdamW steps of the kept state (``budget.finetune_steps`` without validation).
        val_curve: ``[(step, validation MAE)]`` at every evaluation (empty without validation).
    """

    def __init__(self, method: nn.Module, head: nn.Module, max_nodes: int, best_step: int, val_curve: list) -> None:
        self.method, self.head, self.max_nodes = method, head, max_nodes
        self.best_step, self.val_curve = best_step, val_curve

    def __call__(self, graphs: Sequence[Data], masks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        emb = embed_nodes(self.method, graphs, self.max_nodes)
        with torch.no_grad():
            return [self.head(e[m]) if bool(m.any()) else e.new_zeros(0) for e, m in zip(emb, masks)]


def finetune_nodes(
    method: nn.Module,
    graphs: Sequence[Data],
    node_masks: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    budget: Budget,
    seed: int,
    hidden: int = 64,
    val_masks: Sequence[torch.Tensor] | None = None,
    eval_every: int = 25,
) -> FinetunedNodes:
    """Train the method's encoder and a node head together: sigmoid output, L1 to the targets.

    Each of ``budget.finetune_steps`` AdamW steps (encoder at ``budget.lr``, head at ``budget.head_lr``)
    draws training graphs without replacement up to ``budget.batch_size`` graphs and ``budget.max_nodes``
    nodes, embeds them (:meth:`embed`, no masking) and takes the L1 loss over their masked nodes.

    With ``val_masks`` (early stopping), every ``eval_every`` steps and after the last one the mean absolute
    error over all validation nodes is measured (eval mode, no grad: the training trajectory is the same as
    without validation), and the encoder and head are restored to the state of the lowest one (the earliest
    on ties).

    Args:
        graphs: the training graphs (those with no masked node are skipped).
        node_masks: ``[N_i]`` bool, the training nodes of each graph.
        targets: ``[N_i]`` float targets in ``[0, 1]``.
        val_masks: ``[N_i]`` bool, the validation nodes of each graph (disjoint from the training nodes).
        eval_every: steps between validation measurements.

    Returns:
        The predictor (:class:`FinetunedNodes`); the method is left in eval mode with the kept weights.
    """
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        width = int(method.hidden)
        head = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Flatten(0), nn.Sigmoid()
        )
    pool = [i for i, m in enumerate(node_masks) if bool(m.any())]
    if not pool:
        raise ValueError("fine-tuning needs at least one training node")
    data = [_strip_verilog(graphs[i]) for i in range(len(graphs))]
    opt = torch.optim.AdamW(
        [{"params": method.parameters(), "lr": budget.lr}, {"params": head.parameters(), "lr": budget.head_lr}],
        weight_decay=budget.weight_decay,
    )
    val = [i for i, m in enumerate(val_masks) if bool(m.any())] if val_masks is not None else []
    if val_masks is not None and not val:
        raise ValueError("early stopping needs at least one validation node")
    val_y = torch.cat([targets[i][val_masks[i]] for i in val]).double() if val else None
    curve: list[tuple[int, float]] = []
    best: tuple[float, int, dict, dict] | None = None

    def validate(step: int) -> None:
        nonlocal best
        emb = embed_nodes(method, [graphs[i] for i in val], budget.max_nodes)
        with torch.no_grad():
            pred = torch.cat([head.eval()(e[val_masks[i]]) for e, i in zip(emb, val)]).double()
        mae = float((pred - val_y).abs().mean())
        curve.append((step, mae))
        if best is None or mae < best[0]:
            clone = {k: v.detach().clone() for k, v in method.state_dict().items()}
            best = (mae, step, clone, {k: v.detach().clone() for k, v in head.state_dict().items()})
        method.train()
        head.train()

    rng = np.random.default_rng([seed, 0xF17E])
    method.train()
    head.train()
    for step in range(1, budget.finetune_steps + 1):
        pick = rng.permutation(pool)[: budget.batch_size]
        sizes = np.cumsum([int(graphs[i].num_nodes) for i in pick])
        pick = pick[: max(1, int(np.searchsorted(sizes, budget.max_nodes, side="right")))]
        h = method.embed(Batch.from_data_list([data[i] for i in pick]))
        mask = torch.cat([node_masks[i] for i in pick])
        y = torch.cat([targets[i] for i in pick]).to(h.dtype)
        loss = (head(h[mask]) - y[mask]).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if val and (step % eval_every == 0 or step == budget.finetune_steps):
            validate(step)
    best_step = budget.finetune_steps
    if best is not None:
        _, best_step, method_state, head_state = best
        method.load_state_dict(method_state)
        head.load_state_dict(head_state)
    method.eval()
    head.eval()
    return FinetunedNodes(method, head, budget.max_nodes, best_step, curve)


TaskFn = Callable[[nn.Module, str, int], dict[str, dict[str, float]]]


def compare(task: TaskFn, pretrain_graphs: Sequence[Data], budget: Budget, progress: bool = True) -> dict[str, Any]:
    """Run ``task(method, name, seed) -> {split: {metric: value}}`` for every method and seed.

    Returns:
        ``{"methods": {name: {split: {metric: mean, metric_std: std}}}}`` (see :func:`mean_std`).
    """
    runs: dict[str, dict[str, list[dict[str, float]]]] = {}
    bar = progress_bar(total=len(budget.methods) * len(budget.seeds), desc="methods x seeds", disable=not progress)
    for seed in budget.seeds:
        for name in budget.methods:
            method = get_method(name, pretrain_graphs, budget, int(seed), progress)
            for split, metrics in task(method, name, int(seed)).items():
                runs.setdefault(name, {}).setdefault(split, []).append(metrics)
            bar.update(1)
    bar.close()
    out: dict[str, Any] = {
        "methods": {
            name: {split: mean_std(per_seed) for split, per_seed in splits.items()} for name, splits in runs.items()
        }
    }
    seen = verilog_use(pretrain_graphs, budget)
    if seen:
        out["verilog"] = seen
    return out


def verilog_use(graphs: Sequence[Data], budget: Budget) -> dict[str, bool]:
    """``{method: aligned to Verilog}`` for the Verilog-reading methods of ``budget`` that are pretrained here.

    False where no pretraining graph carries Verilog embeddings (AIGER / .bench sources, or Verilog loaded
    without embeddings) or ``pretrain_steps`` is 0: such a run trains MGM losses only, so it is not MGVGA and
    the tables say so.  Methods loaded from :attr:`Budget.checkpoints` are left out (their pretraining data
    is not known here).
    """
    has = budget.pretrain_steps > 0 and any(getattr(g, "verilog_emb", None) is not None for g in graphs)
    return {m: has for m in budget.methods if m in _VERILOG_METHODS and m not in budget.checkpoints}

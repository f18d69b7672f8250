"""QoR prediction, the OpenABC-D protocol: graph embedding + recipe encoder → AND count and levels after a
synthesis recipe, regressed on per-design z-scores.

Model (:class:`QorPredictor`): the pretrained encoder is **frozen**; each design's graph embedding
(``graph_embed``, mean+max pooled node embeddings) is computed once, standardised with the training
designs' statistics and projected; a recipe of ``S`` ops over the 7 ABC ops is embedded and run through two
1-D convolutions (kernel 3) with mean+max pooling; an MLP on both predicts ``[z_ands, z_levels]``.  Only the
head trains (``finetune_steps`` AdamW steps on mini-batches of 256 (design, recipe) pairs, MSE).

Splits:

* ``unseen_recipes``: for every design, recipes ``0 .. floor(2R/3) - 1`` train and the rest test; z-scores
  use each design's statistics over its *train* recipes, and MAPE de-normalises with them.
* ``unseen_designs``: k-fold over designs (seeded permutation); a test design's recipes are all unseen
  and its z-scores use its own statistics over all its recipes (as OpenABC-D normalises per design; the
  model predicts relative quality), which MAPE uses to de-normalise too.

*Training-only designs* (``train_designs``, e.g. a labelled corpus) add labels that the head trains on in
both splits and that are never tested: their train recipes in ``unseen_recipes`` (the test recipes stay
unseen), all their recipes in ``unseen_designs``.  With them, ``folds=1`` tests every evaluated design in
one run whose head trains on the training-only designs alone.

Metrics (:func:`geomask.eval.metrics.qor_metrics` on AND counts, per design, then averaged over designs):
``z_mse``, ``z_mae``, ``mape``, ``legacy_mape``, ``top1``, ``top5``, ``top10``, plus ``levels_z_mse``,
``levels_z_mae``, ``levels_mape`` for the level count, and ``regret`` (percent more ANDs at the recipe predicted
best than at the truly best one).  The per-design-mean baseline predicts z = 0 (its regret is a random
recipe's); in ``unseen_designs`` the *good recipe* baseline applies to every test design the one recipe of least
mean z-score over the training designs (what a designer without a model would run).  ``labels`` in the result
says how much recipes matter in the label set (:func:`~geomask.eval.metrics.label_stats`).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geomask.circuits.abc import label_recipes
from geomask.circuits.recipes import DEFAULT_RECIPE_LENGTH, OPS, PAD, family_recipes, parse_recipe, recipe_to_abc, unpad
from geomask.errors import FormatError, UsageError
from geomask.eval.metrics import (
    design_stats,
    label_stats,
    mape,
    mean_std,
    qor_metrics,
    regret,
    z_mae,
    z_mse,
    zscore,
)
from geomask.eval.protocol import Budget, EvalDesign, compare, embed_graphs, single_thread

__all__ = [
    "QorLabels",
    "GraphFeatures",
    "HEADS",
    "QorPredictor",
    "RECIPE_ENCODINGS",
    "RecipeEncoder",
    "TARGETS",
    "design_folds",
    "fit_predict",
    "fit_qor_model",
    "global_features",
    "label_qor",
    "read_qor_csv",
    "run_qor",
    "split_targets",
    "unseen_recipes_train",
    "write_qor_csv",
]

SPLITS = ("unseen_recipes", "unseen_designs")


@dataclass
class QorLabels:
    """QoR labels of ``D`` designs under the same ``R`` recipes.

    Attributes:
        designs: ``D`` design names.
        recipes: ``[R, S]`` int64 op ids into :data:`~geomask.circuits.recipes.OPS`, shorter recipes right-padded
            with :data:`~geomask.circuits.recipes.PAD`.
        ands: ``[D, R]`` float64 AND counts after each recipe.
        levels: ``[D, R]`` float64 level counts.
    """

    designs: list[str]
    recipes: np.ndarray
    ands: np.ndarray
    levels: np.ndarray

    def select(self, names: Sequence[str]) -> QorLabels:
        """The labels of ``names`` (in that order; each must be labelled)."""
        row = {n: i for i, n in enumerate(self.designs)}
        missing = [n for n in names if n not in row]
        if missing:
            raise ValueError(f"no QoR labels for {', '.join(missing)}")
        idx = [row[n] for n in names]
        return QorLabels(list(names), self.recipes, self.ands[idx], self.levels[idx])

    def concat(self, other: QorLabels) -> QorLabels:
        """These designs then ``other``'s, under the same recipes."""
        if not np.array_equal(self.recipes, other.recipes):
            raise ValueError("QoR labels under different recipes cannot be combined")
        return QorLabels(
            self.designs + list(other.designs),
            self.recipes,
            np.concatenate([self.ands, other.ands]),
            np.concatenate([self.levels, other.levels]),
        )


def label_qor(
    designs: Sequence[EvalDesign], recipes: np.ndarray, jobs: int = 1, timeout: float = 60.0, progress: bool = False
) -> tuple[QorLabels, list[tuple[str, str]]]:
    """Label every (design, recipe) with ABC (see :func:`geomask.circuits.abc.label_recipes`).

    Designs are written to temporary binary AIGER files first (so Verilog designs are labelled on the same
    AIG the graph comes from).  A design for which ABC fails on any recipe (a timeout, or one of ABC's
    assertion failures), or that some recipe reduces to 0 ANDs, is left out of the labels and reported.

    Returns:
        The labels of the designs labelled completely (in input order), and ``(design, message)`` for the
        others.
    """
    import tempfile

    from geomask.io.aiger import write_aiger

    recipes = np.asarray(recipes, dtype=np.int64)
    ands = np.zeros((len(designs), len(recipes)))
    levels = np.zeros_like(ands)
    errors: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="geomask-qor-") as tmp:
        paths = []
        for i, d in enumerate(designs):
            paths.append(Path(tmp) / f"{i}.aig")
            write_aiger(d.aig, paths[-1], binary=True)
        for lab in label_recipes(paths, unpad(recipes), jobs=jobs, timeout=timeout, progress=progress):
            if lab.error is not None:
                errors.setdefault(lab.design, str(lab.error).replace(str(paths[lab.design]), designs[lab.design].name))
            ands[lab.design, lab.recipe] = lab.ands
            levels[lab.design, lab.recipe] = lab.levels
    for i in np.nonzero((ands == 0).any(axis=1))[0]:
        errors.setdefault(int(i), "some recipe reduces it to a constant (0 ANDs): no z-scores or MAPE")
    keep = [i for i in range(len(designs)) if i not in errors]
    labels = QorLabels([designs[i].name for i in keep], recipes, ands[keep], levels[keep])
    return labels, [(designs[i].name, msg) for i, msg in sorted(errors.items())]


def read_qor_csv(path: str | Path) -> QorLabels:
    """Labels from a ``qor.csv`` written by ``geomask prep circuits`` (``design,recipe_id,recipe,ands,levels``).

    Raises:
        FormatError: a missing column, or a design without a label for every recipe.
    """
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise FormatError(path, f"cannot read: {e.strerror or e}") from None
    need = {"design", "recipe_id", "recipe", "ands", "levels"}
    if not rows or not need <= set(rows[0]):
        raise FormatError(path, f"expected columns {', '.join(sorted(need))}")
    designs = sorted({r["design"] for r in rows})
    rid = sorted({int(r["recipe_id"]) for r in rows})
    text = {int(r["recipe_id"]): r["recipe"] for r in rows}
    d_of, r_of = {d: i for i, d in enumerate(designs)}, {r: j for j, r in enumerate(rid)}
    ands = np.full((len(designs), len(rid)), np.nan)
    levels = np.full_like(ands, np.nan)
    for r in rows:
        i, j = d_of[r["design"]], r_of[int(r["recipe_id"])]
        ands[i, j], levels[i, j] = float(r["ands"]), float(r["levels"])
    if np.isnan(ands).any():
        raise FormatError(path, "some designs lack a label for some recipes")
    ops = [parse_recipe(text[r]) for r in rid]
    recipes = np.full((len(ops), max(len(o) for o in ops)), PAD, dtype=np.int64)
    for j, o in enumerate(ops):  # recipes of different lengths (the varied family): right-padded
        recipes[j, : len(o)] = o
    return QorLabels(designs, recipes, ands, levels)


def write_qor_csv(labels: QorLabels, path: str | Path) -> None:
    """Write labels as :func:`read_qor_csv` reads them (``design,recipe_id,recipe,ands,levels``), atomically."""
    import io

    from geomask.io.atomic import atomic_write_text

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["design", "recipe_id", "recipe", "ands", "levels"])
    text = [recipe_to_abc(r) for r in unpad(labels.recipes)]
    for i, d in enumerate(labels.designs):
        for j, t in enumerate(text):
            w.writerow([d, j, t, int(labels.ands[i, j]), int(labels.levels[i, j])])
    atomic_write_text(Path(path), buf.getvalue())


# -- splits and targets ----------------------------------------------------------------------------


def unseen_recipes_train(num_recipes: int) -> np.ndarray:
    """``[R]`` bool: the first ``floor(2R/3)`` recipes train, the rest test.

    Raises:
        ValueError: fewer than 3 recipes (no train/test split possible with both sides non-empty).
    """
    if num_recipes < 3:
        raise ValueError(f"the unseen_recipes split needs at least 3 recipes per design, got {num_recipes}")
    mask = np.zeros(num_recipes, dtype=bool)
    mask[: (2 * num_recipes) // 3] = True
    return mask


def design_folds(num_designs: int, folds: int, seed: int) -> list[np.ndarray]:
    """Test design indices of each fold: a seeded permutation cut into ``min(folds, D)`` near-equal parts.

    Raises:
        ValueError: fewer than 2 designs or folds.
    """
    if num_designs < 2 or folds < 2:
        raise ValueError(f"the unseen_designs split needs at least 2 designs and 2 folds, got {num_designs}, {folds}")
    perm = np.random.default_rng([seed, 0xF01D]).permutation(num_designs)
    return [np.sort(p) for p in np.array_split(perm, min(folds, num_designs))]


def split_targets(values: np.ndarray, stat_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-design z-scores of ``values [D, R]`` with each design's statistics over ``stat_mask [D, R]``.

    Returns:
        ``z [D, R]``, ``mean [D]``, ``std [D]``.
    """
    stats = np.array([design_stats(v[m]) for v, m in zip(values, stat_mask)]).reshape(-1, 2)
    mean, std = stats[:, 0], stats[:, 1]
    return zscore(values, mean[:, None], std[:, None]), mean, std


# -- model ------------------------------------------------------------------------------------------


def global_features(designs: Sequence[EvalDesign]) -> Tensor:
    """``[D, 6]`` float64 non-learned design statistics: ``log(1 + x)`` of the AND count, the level count, the
    primary inputs, outputs and latches, and ``log(ANDs / levels)`` (the average width) — the features a QoR
    model gets without any graph encoder (the ``design_stats`` baseline of :func:`run_qor`)."""
    from geomask.circuits.stats import circuit_stats

    rows = []
    for d in designs:
        st = circuit_stats(d.aig)
        rows.append([st["ands"], st["levels"], st["inputs"], st["outputs"], st["latches"]])
    x = torch.tensor(rows, dtype=torch.float64).reshape(-1, 5)
    width = torch.log((x[:, :1] + 1) / (x[:, 1:2] + 1))
    return torch.cat([torch.log1p(x), width], dim=1)


RECIPE_ENCODINGS = ("conv", "counts")
TARGETS = ("z", "log_ratio")
HEADS = ("concat", "film", "bilinear")


class RecipeEncoder(nn.Module):
    """A recipe as a vector: ``conv`` (op embedding → two Conv1d, kernel 3, ReLU → mean and max over the
    recipe's steps) or ``counts`` (the bag of ops: how often each op occurs and the length, through a
    linear layer and ReLU).  :data:`~geomask.circuits.recipes.PAD` steps are left out of both.

    Shapes:
        ``[B, S]`` int64 op ids → ``[B, 2C]``.
    """

    def __init__(self, emb: int = 16, channels: int = 32, num_ops: int = len(OPS), encoding: str = "conv"):
        super().__init__()
        if encoding not in RECIPE_ENCODINGS:
            raise UsageError(f"unknown recipe encoding {encoding!r}; known: {', '.join(RECIPE_ENCODINGS)}")
        self.encoding, self.num_ops, self.out_dim = encoding, num_ops, 2 * channels
        if encoding == "conv":
            self.emb = nn.Embedding(num_ops + 1, emb, padding_idx=num_ops)  # the last row: PAD
            self.conv1 = nn.Conv1d(emb, channels, 3, padding=1)
            self.conv2 = nn.Conv1d(channels, channels, 3, padding=1)
        else:
            self.bag = nn.Linear(num_ops + 1, 2 * channels)

    def forward(self, recipes: Tensor) -> Tensor:
        valid = recipes != PAD  # [B, S]
        ids = torch.where(valid, recipes, self.num_ops)
        if self.encoding == "counts":
            counts = F.one_hot(ids, self.num_ops + 1)[..., : self.num_ops].sum(1).float()  # [B, 7]
            length = valid.sum(1, keepdim=True).float()
            return F.relu(self.bag(torch.cat([counts, length], 1) / DEFAULT_RECIPE_LENGTH))
        x = self.emb(ids).transpose(1, 2)  # [B, E, S]
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        m = valid[:, None, :]
        mean = (x * m).sum(2) / m.sum(2).clamp(min=1)
        top = x.masked_fill(~m, float("-inf")).amax(2)
        return torch.cat([mean, torch.where(torch.isfinite(top), top, 0.0)], dim=1)


class QorPredictor(nn.Module):
    """The QoR head; with ``graph_dim=None`` the recipe-only model ``out(MLP(recipe_encoder(recipe)))`` (no
    graph).  With a graph ``g`` (projected: ``h = ReLU(W_g g)``) and ``r = recipe_encoder(recipe)``, ``head``:

    * ``concat``: ``out(MLP([h, r]))``;
    * ``film``: the recipe's hidden layer modulated by the design,
      ``out(MLP_2((1 + γ(h)) ⊙ ReLU(W_r r) + β(h)))``;
    * ``bilinear``: a per-design response to the recipe added to the recipe-only prediction,
      ``out(MLP(r)) + Σ_k A(h)_k ⊙ B(MLP(r))_k`` (rank ``K = 8`` per output).

    The z-score target removes each design's mean, so the graph can only help by predicting how *this* design
    responds to the recipe; ``film`` and ``bilinear`` make that response the graph's explicit job.

    Shapes:
        graph ``[B, G]`` (ignored without a graph), recipes ``[B, S]`` → ``[B, 2]``.
    """

    def __init__(
        self,
        graph_dim: int | None,
        hidden: int = 64,
        recipe_channels: int = 32,
        encoding: str = "conv",
        head: str = "concat",
        rank: int = 8,
    ):
        super().__init__()
        if head not in HEADS:
            raise UsageError(f"unknown QoR head {head!r}; known: {', '.join(HEADS)}")
        self.head, self.rank = head if graph_dim is not None else "concat", rank
        self.proj = nn.Linear(graph_dim, hidden) if graph_dim is not None else None
        self.recipe = RecipeEncoder(channels=recipe_channels, encoding=encoding)
        width = (hidden if self.proj is not None and self.head == "concat" else 0) + self.recipe.out_dim
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.out = nn.Linear(hidden, 2)
        self.film = nn.Linear(hidden, 2 * hidden) if self.head == "film" else None
        self.left = nn.Linear(hidden, 2 * rank) if self.head == "bilinear" else None
        self.right = nn.Linear(hidden, 2 * rank) if self.head == "bilinear" else None

    def forward(self, graph: Tensor | None, recipes: Tensor) -> Tensor:
        r = self.recipe(recipes)
        if self.proj is None or graph is None:
            return self.out(self.mlp(r))
        h = F.relu(self.proj(graph))
        if self.head == "concat":
            return self.out(self.mlp(torch.cat([h, r], dim=1)))
        if self.head == "film":
            gamma, beta = self.film(h).chunk(2, dim=1)
            x = (1 + gamma) * self.mlp[1](self.mlp[0](r)) + beta
            return self.out(self.mlp[3](self.mlp[2](x)))
        x = self.mlp(r)
        a = self.left(h).view(-1, 2, self.rank)
        b = self.right(x).view(-1, 2, self.rank)
        return self.out(x) + (a * b).sum(-1)


class GraphFeatures(nn.Module):
    """Standardised graph embeddings of the designs, looked up by design index.

    Frozen (``method=None``): a fixed table ``[D, G]``.  Tuned: the method's :meth:`graph_embed` of the
    designs' graphs, recomputed with gradients for the designs a batch needs (the encoder trains with the
    head); standardised with the training designs' statistics of the initial embeddings either way.
    """

    def __init__(self, feats: Tensor, train_designs: np.ndarray, method: nn.Module | None = None, graphs=()):
        super().__init__()
        mu = feats[train_designs].mean(0)
        sd = feats[train_designs].std(0, unbiased=False).clamp(min=1e-3)
        self.register_buffer("mu", mu.float())
        self.register_buffer("sd", sd.float())
        self.register_buffer("table", self._norm(feats.float()))
        self.method = method
        if method is not None:
            from geomask.eval.protocol import _strip_verilog

            self.graphs = [_strip_verilog(g) for g in graphs]

    def _norm(self, h: Tensor) -> Tensor:
        return ((h - self.mu) / self.sd).clamp(-5.0, 5.0)  # few train designs: keep unseen ones in range

    @property
    def tuned(self) -> bool:
        return self.method is not None

    def forward(self, designs: Tensor) -> Tensor:
        """``[B]`` design indices → ``[B, G]`` (tuned: with gradients into the encoder)."""
        if self.method is None:
            return self.table[designs]
        from torch_geometric.data import Batch

        u, inv = torch.unique(designs, return_inverse=True)
        h = self.method.graph_embed(Batch.from_data_list([self.graphs[i] for i in u.tolist()]))
        return self._norm(h.float())[inv]

    @torch.no_grad()
    def refresh(self, max_nodes: int = 200_000) -> None:
        """Tuned: recompute the table with the current encoder (eval mode; for validation and prediction)."""
        if self.method is not None:
            from geomask.eval.protocol import embed_graphs

            self.table = self._norm(embed_graphs(self.method, self.graphs, max_nodes).float())
            self.method.train()


def fit_qor_model(
    graph_feats: Tensor | None,
    recipes: np.ndarray,
    targets: np.ndarray,
    train_pairs: np.ndarray,
    steps: int,
    lr: float,
    seed: int,
    batch: int = 256,
    val_axis: int | None = None,
    encoding: str = "conv",
    tune: dict[str, Any] | None = None,
    head: str = "concat",
) -> tuple[QorPredictor, GraphFeatures | None]:
    """Train a :class:`QorPredictor` on ``train_pairs`` (see :func:`fit_predict`); returns it and its features.

    ``graph_feats=None`` trains the recipe-only model.  ``tune`` fine-tunes the encoder with the head:
    ``{"method": encoder (trained in place: pass a copy), "graphs": the D graphs, "lr": encoder learning rate,
    "designs": designs per step, "max_nodes": node budget per step}``; each step then draws up to ``designs``
    training designs (within ``max_nodes``) and ``batch`` of their train pairs.
    """
    feats = None
    if graph_feats is not None:
        train_d = np.unique(train_pairs[:, 0])
        tuned = tune is not None
        feats = GraphFeatures(graph_feats, train_d, tune["method"] if tuned else None, tune["graphs"] if tuned else ())
    rec = torch.as_tensor(recipes, dtype=torch.long)
    y = torch.as_tensor(targets, dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = QorPredictor(None if feats is None else feats.table.shape[1], encoding=encoding, head=head)
    gen = torch.Generator().manual_seed(seed)
    tp = torch.as_tensor(train_pairs, dtype=torch.long)
    groups = [{"params": model.parameters(), "lr": lr}]
    if feats is not None and feats.tuned:
        groups.append({"params": feats.method.parameters(), "lr": tune["lr"]})
        feats.method.train()
    opt = torch.optim.AdamW(groups, weight_decay=1e-4)
    model.train()
    with single_thread():
        _train_head(model, opt, feats, rec, y, tp, steps, batch, gen, val_axis, tune)
    model.eval()
    if feats is not None and feats.tuned:
        feats.refresh(tune.get("max_nodes", 200_000))
        feats.method.eval()
    return model, feats


def _predict(model: QorPredictor, feats: GraphFeatures | None, rec: Tensor, pairs: Tensor) -> Tensor:
    """``[Q, 2]`` predictions of ``pairs [Q, 2]`` (no grad; tuned features from their table)."""
    with torch.no_grad():
        out = [model(None if feats is None else feats.table[c[:, 0]], rec[c[:, 1]]) for c in torch.split(pairs, 8192)]
    return torch.cat(out) if out else torch.zeros(0, 2)


def fit_predict(
    graph_feats: Tensor | None,
    recipes: np.ndarray,
    targets: np.ndarray,
    train_pairs: np.ndarray,
    test_pairs: np.ndarray,
    steps: int,
    lr: float,
    seed: int,
    batch: int = 256,
    val_axis: int | None = None,
    encoding: str = "conv",
    tune: dict[str, Any] | None = None,
    head: str = "concat",
) -> np.ndarray:
    """Train a :class:`QorPredictor` on ``train_pairs`` and predict ``test_pairs``.

    Args:
        graph_feats: ``[D, G]`` graph embeddings (frozen, or the initial ones with ``tune``); ``None``: the
            recipe-only model.
        recipes: ``[R, S]`` op ids (:data:`~geomask.circuits.recipes.PAD`-padded).
        targets: ``[D, R, 2]`` targets (z-scores of ANDs and levels, or what :func:`run_qor`'s ``target`` says).
        train_pairs, test_pairs: ``[P, 2]`` ``(design, recipe)`` indices.
        steps, lr, seed: AdamW steps, learning rate of the head, and the seed of initialisation and sampling.
        val_axis: what early stopping holds back from the train pairs: ``0`` whole designs (for the
            unseen-designs split), ``1`` whole recipes (unseen recipes), ``None`` random pairs.
        encoding: the recipe encoding (:data:`RECIPE_ENCODINGS`).
        tune: fine-tune the encoder with the head (see :func:`fit_qor_model`).
        head: how the head combines graph and recipe (:data:`HEADS`, see :class:`QorPredictor`).

    Returns:
        ``[Q, 2]`` predictions of the test pairs.
    """
    model, feats = fit_qor_model(
        graph_feats, recipes, targets, train_pairs, steps, lr, seed, batch, val_axis, encoding, tune, head
    )
    rec = torch.as_tensor(recipes, dtype=torch.long)
    return _predict(model, feats, rec, torch.as_tensor(test_pairs, dtype=torch.long)).double().numpy()


def _train_head(
    model: QorPredictor,
    opt: torch.optim.Optimizer,
    feats: GraphFeatures | None,
    rec: Tensor,
    y: Tensor,
    tp: Tensor,
    steps: int,
    batch: int,
    gen: torch.Generator,
    val_axis: int | None = None,
    tune: dict[str, Any] | None = None,
) -> None:
    """AdamW steps of MSE on random mini-batches of the train pairs ``tp [P, 2]``, with early stopping.

    A seeded 20 % of the train pairs is held back for validation: whole designs (``val_axis=0``) or whole
    recipes (``1``) when there are at least 3 of them, so that early stopping measures generalisation along
    the axis the test split holds out, else random pairs.  Every ``steps // 20`` steps (step 0 included) the
    validation MSE is measured and the best weights are kept (the fit then stops improving on few, noisy
    labels instead of over-fitting them; with a tuned encoder its weights too).  The held-back pairs are
    never trained on, and no test pair is ever seen.
    """
    groups = torch.unique(tp[:, val_axis]) if val_axis is not None else None
    if groups is not None and len(groups) >= 3:
        k = max(1, round(0.2 * len(groups)))
        held = groups[torch.randperm(len(groups), generator=gen)[:k]]
        is_val = torch.isin(tp[:, val_axis], held)
        val, fit = tp[is_val], tp[~is_val]
        n_val = len(val)
    else:
        perm = tp[torch.randperm(len(tp), generator=gen)]
        n_val = len(tp) // 5 if len(tp) >= 10 else 0
        val, fit = perm[:n_val], perm[n_val:]
    every = max(1, steps // 20)
    best, best_state = float("inf"), None
    tuned = feats is not None and feats.tuned
    fit_designs = torch.unique(fit[:, 0])
    sizes = torch.tensor([int(g.num_nodes) for g in feats.graphs]) if tuned else None

    def state() -> dict[str, Any]:
        out = {"head": {k: t.detach().clone() for k, t in model.state_dict().items()}}
        if tuned:
            out["enc"] = {k: t.detach().clone() for k, t in feats.method.state_dict().items()}
        return out

    def val_loss() -> float:
        if n_val == 0:
            return 0.0
        model.eval()
        if tuned:
            feats.refresh(tune.get("max_nodes", 200_000))
        v = F.mse_loss(_predict(model, feats, rec, val), y[val[:, 0], val[:, 1]]).item()
        model.train()
        return v

    for step in range(steps + 1):
        if n_val and step % every == 0:
            v = val_loss()
            if v < best:
                best, best_state = v, state()
        if step == steps:
            break
        pool = fit
        if tuned:  # a few designs per step (their graphs are embedded with gradients), within the node budget
            pick = fit_designs[torch.randperm(len(fit_designs), generator=gen)[: max(1, int(tune.get("designs", 8)))]]
            keep = torch.cumsum(sizes[pick], 0) <= int(tune.get("max_nodes", 200_000))
            keep[0] = True
            pool = fit[torch.isin(fit[:, 0], pick[keep])]
        idx = pool[torch.randint(len(pool), (min(batch, len(pool)),), generator=gen)]
        g = None if feats is None else feats(idx[:, 0])
        loss = F.mse_loss(model(g, rec[idx[:, 1]]), y[idx[:, 0], idx[:, 1]])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if best_state is not None:
        model.load_state_dict(best_state["head"])
        if tuned:
            feats.method.load_state_dict(best_state["enc"])


# -- evaluation -------------------------------------------------------------------------------------


def _design_metrics(
    pred: np.ndarray, z: np.ndarray, raw: np.ndarray, mean: np.ndarray, std: np.ndarray, pairs: np.ndarray
) -> dict[str, dict[str, float]]:
    """Per-design metrics of predictions ``pred [Q, 2]`` for ``pairs [Q, 2]``.

    Shapes:
        z, raw ``[D, R, 2]``; mean, std ``[D, 2]`` (last axis: ANDs, levels).
    """
    out = {}
    for d in np.unique(pairs[:, 0]):
        sel = pairs[:, 0] == d
        r = pairs[sel, 1]
        m = qor_metrics(pred[sel, 0], z[d, r, 0], raw[d, r, 0], mean[d, 0], std[d, 0])
        m["levels_z_mse"] = z_mse(pred[sel, 1], z[d, r, 1])
        m["levels_z_mae"] = z_mae(pred[sel, 1], z[d, r, 1])
        m["levels_mape"] = mape(pred[sel, 1] * std[d, 1] + mean[d, 1], raw[d, r, 1])
        ands = raw[d, :, 0]
        m["varying"] = float(np.nanmax(ands) > np.nanmin(ands))  # 0: the same AND count under every recipe
        out[int(d)] = m
    return out


def _good_recipe_regret(z: np.ndarray, raw: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict[int, float]:
    """Regret per test design of the fixed *good recipe*: the recipe of least mean AND z-score over the train
    pairs (recipes no train pair has are never picked).

    Shapes:
        z, raw ``[D, R, 2]``; train, test ``[Q, 2]`` (design, recipe) pairs.
    """
    r_n = z.shape[1]
    total = np.bincount(train[:, 1], weights=z[train[:, 0], train[:, 1], 0], minlength=r_n)
    count = np.bincount(train[:, 1], minlength=r_n)
    mean = np.where(count > 0, total / np.maximum(count, 1), np.inf)
    out = {}
    for d in np.unique(test[:, 0]):
        r = test[test[:, 0] == d, 1]
        out[int(d)] = regret(mean[r], raw[d, r, 0])  # the good recipe, where the design was labelled under it
    return out


def _average(per_design: dict[int, dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over designs, and ``z_mae_varying``: z-MAE over the designs whose AND count differs
    between recipes (a constant design's z-scores are all 0, which the constant predictor gets exactly right; absent
    when every design is constant)."""
    keys = [k for k in next(iter(per_design.values())) if k != "varying"]
    out = {k: float(np.mean([m[k] for m in per_design.values()])) for k in keys}
    varying = [m["z_mae"] for m in per_design.values() if m.get("varying", 1.0) > 0]
    if varying:
        out["z_mae_varying"] = float(np.mean(varying))
    return out


_VAL_AXIS = {"unseen_designs": 0, "unseen_recipes": 1}  # early stopping holds back what the split tests


def _split_setups(labels: QorLabels, folds: int, seed: int, num_tested: int | None = None) -> dict[str, list[tuple]]:
    """For each split, a list of ``(z, raw, mean, std, train_pairs, test_pairs)`` runs (one per fold).

    Designs ``num_tested ..`` (default: none) only train (see the module docstring)."""
    d_n, r_n = labels.ands.shape
    t_n = d_n if num_tested is None else num_tested
    tested = np.arange(d_n) < t_n
    raw = np.stack([labels.ands, labels.levels], axis=2)
    dd, rr = np.meshgrid(np.arange(d_n), np.arange(r_n), indexing="ij")
    all_pairs = np.stack([dd.ravel(), rr.ravel()], axis=1)
    setups: dict[str, list[tuple]] = {}

    def targets(stat_mask):
        parts = [split_targets(raw[..., k], stat_mask) for k in range(2)]
        z = np.stack([p[0] for p in parts], 2)
        return z, np.stack([p[1] for p in parts], 1), np.stack([p[2] for p in parts], 1)

    tr = np.broadcast_to(unseen_recipes_train(r_n), (d_n, r_n))
    z, mean, std = targets(tr)
    is_tr = tr[all_pairs[:, 0], all_pairs[:, 1]]
    is_test = ~is_tr & tested[all_pairs[:, 0]]
    setups["unseen_recipes"] = [(z, raw, mean, std, all_pairs[is_tr], all_pairs[is_test])]
    if t_n >= 2 and folds >= 2:
        test_sets = design_folds(t_n, folds, seed)
    elif 1 <= t_n < d_n:
        test_sets = [np.arange(t_n)]  # every tested design at once, trained on the training-only ones
    else:
        return setups
    z, mean, std = targets(np.ones((d_n, r_n), dtype=bool))
    runs = []
    for test in test_sets:
        in_test = np.isin(all_pairs[:, 0], test)
        runs.append((z, raw, mean, std, all_pairs[~in_test], all_pairs[in_test]))
    setups["unseen_designs"] = runs
    return setups


def _mean_of_others(z: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """``[Q]`` the recipe-only ceiling: each test pair's recipe's mean AND z-score over the train pairs (0 for a
    recipe no train pair has).

    Shapes:
        z ``[D, R, 2]``; train ``[P, 2]``, test ``[Q, 2]`` (design, recipe) pairs.
    """
    r_n = z.shape[1]
    total = np.bincount(train[:, 1], weights=z[train[:, 0], train[:, 1], 0], minlength=r_n)
    count = np.bincount(train[:, 1], minlength=r_n)
    return (total / np.maximum(count, 1))[test[:, 1]]


class _LogRatio:
    """The ``log_ratio`` target: ``log(ands / initial ands)`` of each pair, standardised over the train pairs
    (levels stay z-scores); predictions go back to AND counts and then to the split's z-scores."""

    def __init__(self, raw: np.ndarray, initial: np.ndarray, train: np.ndarray):
        self.initial = np.maximum(initial, 1.0)
        self.log = np.log(np.maximum(raw[..., 0], 1.0) / self.initial[:, None])  # [D, R]
        v = self.log[train[:, 0], train[:, 1]]
        self.m, self.s = float(v.mean()), float(max(v.std(), 1e-6))

    def targets(self, z: np.ndarray) -> np.ndarray:
        t = z.copy()
        t[..., 0] = (self.log - self.m) / self.s
        return t

    def to_z(self, pred: np.ndarray, pairs: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        out = pred.copy()
        d = pairs[:, 0]
        ands = self.initial[d] * np.exp(pred[:, 0] * self.s + self.m)
        out[:, 0] = (ands - mean[d, 0]) / std[d, 0]
        return out


def run_qor(
    designs: Sequence[EvalDesign],
    labels: QorLabels,
    budget: Budget,
    pretrain_designs: Sequence[EvalDesign] | None = None,
    folds: int = 3,
    progress: bool = True,
    train_designs: Sequence[EvalDesign] = (),
    train_labels: QorLabels | None = None,
    encoding: str = "conv",
    target: str = "z",
    recipe_only: bool = True,
    head: str = "concat",
    stats_model: bool = False,
) -> dict[str, Any]:
    """The QoR comparison of every method in ``budget``.

    Args:
        designs: the evaluated designs, in the order of ``labels.designs``.
        labels: their QoR labels.
        budget: methods, seeds, steps; ``budget.finetune_encoder`` trains each method's encoder (a copy per
            run, at ``budget.lr``; up to ``budget.batch_size`` designs and ``budget.max_nodes`` nodes per step)
            with the head instead of a head on frozen embeddings.
        pretrain_designs: the pretraining corpus (default: ``designs`` themselves; pretraining sees no
            labels).
        folds: k of the unseen_designs k-fold over ``designs`` (re-permuted per seed); ``1`` with
            ``train_designs``: one run testing every design.
        progress: progress bars.
        train_designs: designs whose labels only train the head (never tested), in the order of
            ``train_labels.designs`` (same recipes as ``labels``).
        train_labels: their labels.
        encoding: the recipe encoding (:data:`RECIPE_ENCODINGS`: ``conv`` or ``counts``).
        target: what the head regresses for the AND count (:data:`TARGETS`): ``z`` (per-design z-scores) or
            ``log_ratio`` (log of the AND count over the design's initial one, standardised over the train
            pairs; converted back to z-scores for the metrics).
        recipe_only: also run the recipe-only model (same recipe encoder and MLP, no graph) per seed.
        head: how the head combines graph and recipe (:data:`HEADS`: ``concat``, ``film``, ``bilinear``).
        stats_model: also run ``design_stats``, the same head on :func:`global_features` (AND count, levels,
            PI/PO/latch counts: no encoder) instead of graph embeddings, per seed.

    Returns:
        ``{"methods": {name: {split: metrics}}, "baseline": {split: metrics}, "good_recipe": {"unseen_designs":
        {"regret": ..}}, "mean_of_others": {"unseen_designs": metrics}, "labels": label_stats, "details": {name:
        {split: {design: {"true": [...], "pred": [...]}}}}}`` (``labels_train`` too with ``train_designs``);
        ``methods`` holds ``recipe_only`` too (unless ``recipe_only=False``) and ``design_stats`` with
        ``stats_model``; ``mean_of_others`` predicts a test
        design's z-scores by the mean over the training designs' (the best a recipe-only model can do, given
        the labels); ``details`` holds the first seed's test z-scores of the AND count (for plots; drop it before
        writing JSON if not wanted).
    """
    if encoding not in RECIPE_ENCODINGS:
        raise UsageError(f"unknown recipe encoding {encoding!r}; known: {', '.join(RECIPE_ENCODINGS)}")
    if target not in TARGETS:
        raise UsageError(f"unknown QoR target {target!r}; known: {', '.join(TARGETS)}")
    if head not in HEADS:
        raise UsageError(f"unknown QoR head {head!r}; known: {', '.join(HEADS)}")
    if [d.name for d in designs] != list(labels.designs):
        raise ValueError("designs and labels must list the same designs in the same order")
    num_tested = len(designs)
    if train_designs:
        if train_labels is None or [d.name for d in train_designs] != list(train_labels.designs):
            raise ValueError("train_designs and train_labels must list the same designs in the same order")
        both = set(labels.designs) & set(train_labels.designs)
        if both:
            raise ValueError(f"designs both evaluated and training-only: {', '.join(sorted(both))}")
        labels = labels.concat(train_labels)
    every = list(designs) + list(train_designs)
    graphs = [d.graph for d in every]
    initial = np.array([float(d.aig.num_ands) for d in every])
    pre = [d.graph for d in (pretrain_designs if pretrain_designs is not None else designs)]
    details: dict[str, dict[str, dict[str, dict[str, list[float]]]]] = {}
    baseline_runs: dict[str, list[dict[str, float]]] = {}
    good_runs: dict[str, list[dict[str, float]]] = {}
    others_runs: dict[str, list[dict[str, float]]] = {}
    recipe_runs: dict[str, list[dict[str, float]]] = {}
    stats_runs: dict[str, list[dict[str, float]]] = {}
    stats_feats = global_features(every) if stats_model else None
    first_seed = int(budget.seeds[0])

    def fit(feats, z, raw, mean, std, train, test, seed, split, method=None):
        scale = _LogRatio(raw, initial, train) if target == "log_ratio" else None
        tune = None
        if method is not None and budget.finetune_encoder:
            import copy

            tune = {
                "method": copy.deepcopy(method),
                "graphs": graphs,
                "lr": budget.lr,
                "designs": budget.batch_size,
                "max_nodes": budget.max_nodes,
            }
        pred = fit_predict(
            feats,
            labels.recipes,
            z if scale is None else scale.targets(z),
            train,
            test,
            budget.finetune_steps,
            budget.head_lr,
            seed,
            val_axis=_VAL_AXIS[split],
            encoding=encoding,
            tune=tune,
            head=head,
        )
        return pred if scale is None else scale.to_z(pred, test, mean, std)

    def task(method, name: str, seed: int) -> dict[str, dict[str, float]]:
        feats = embed_graphs(method, graphs, budget.max_nodes).double()
        result = {}
        for split, runs in _split_setups(labels, folds, seed, num_tested).items():
            per_design, base, good, others, rec_only, stats_only = {}, {}, {}, {}, {}, {}
            for z, raw, mean, std, train, test in runs:
                pred = fit(feats, z, raw, mean, std, train, test, seed, split, method)
                per_design.update(_design_metrics(pred, z, raw, mean, std, test))
                if name == budget.methods[0]:
                    base.update(_design_metrics(np.zeros_like(pred), z, raw, mean, std, test))
                    if recipe_only:
                        p = fit(None, z, raw, mean, std, train, test, seed, split)
                        rec_only.update(_design_metrics(p, z, raw, mean, std, test))
                    if stats_feats is not None:
                        p = fit(stats_feats, z, raw, mean, std, train, test, seed, split)
                        stats_only.update(_design_metrics(p, z, raw, mean, std, test))
                    if split == "unseen_designs":
                        good.update(_good_recipe_regret(z, raw, train, test))
                        p = np.zeros_like(pred)
                        p[:, 0] = _mean_of_others(z, train, test)
                        others.update(_design_metrics(p, z, raw, mean, std, test))
                if seed == first_seed:
                    det = details.setdefault(name, {}).setdefault(split, {})
                    for d in np.unique(test[:, 0]):
                        sel = test[:, 0] == d
                        det[labels.designs[d]] = {
                            "true": z[d, test[sel, 1], 0].tolist(),
                            "pred": pred[sel, 0].tolist(),
                        }
            result[split] = _average(per_design)
            if base:
                baseline_runs.setdefault(split, []).append(_average(base))
            if rec_only:
                recipe_runs.setdefault(split, []).append(_average(rec_only))
            if stats_only:
                stats_runs.setdefault(split, []).append(_average(stats_only))
            if good:
                good_runs.setdefault(split, []).append({"regret": float(np.mean(list(good.values())))})
            if others:
                others_runs.setdefault(split, []).append(_average(others))
        return result

    out = compare(task, pre, budget, progress)
    if recipe_runs:
        out["methods"]["recipe_only"] = {split: mean_std(v) for split, v in recipe_runs.items()}
    if stats_runs:
        out["methods"]["design_stats"] = {split: mean_std(v) for split, v in stats_runs.items()}
    out["baseline"] = {split: mean_std(v) for split, v in baseline_runs.items()}
    out["good_recipe"] = {split: mean_std(v) for split, v in good_runs.items()}
    out["mean_of_others"] = {split: mean_std(v) for split, v in others_runs.items()}
    out["labels"] = label_stats(labels.ands[:num_tested])
    if train_designs:
        out["labels_train"] = label_stats(labels.ands[num_tested:])
    out["details"] = details
    return out


def default_recipes(n: int, length: int = DEFAULT_RECIPE_LENGTH, seed: int = 0, family: str = "uniform") -> np.ndarray:
    """``[n, length]`` seeded random recipes of a family (see :func:`geomask.circuits.recipes.family_recipes`:
    ``uniform`` OpenABC-D recipes, or ``varied`` lengths ``1 .. length`` and op mixes, padded)."""
    if n < 3:
        raise UsageError(f"need at least 3 recipes per design (--recipes), got {n}")
    return family_recipes(family, n, length, seed)

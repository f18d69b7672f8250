"""Seconds per pretraining epoch of the official GraphMAE code (THUDM/GraphMAE), run by ``bench_graphs.py``.

This script runs in a Python environment of its own with DGL and the torch DGL was built for (DGL does not load with
geomask's torch; e.g. ``python3 -m venv dgl-venv && dgl-venv/bin/pip install torch==2.1.2 torchdata==0.7.1
dgl==2.1.0 "numpy<2" "pandas<2.3" scipy scikit-learn pyyaml tqdm tensorboardX pydantic``: DGL 2.1's data loaders
import pydantic), and never imports geomask.
``--code`` is a local copy of THUDM/GraphMAE; the model is its own ``graphmae.models.build_model`` with the settings of
its ``configs.yml`` for the dataset, the optimiser its ``create_optimizer``, and an epoch the loop body of its
``main_transductive.py`` (node level: one full-graph step, then the cosine scheduler where the config asks for it) or
``main_graph.py`` (graph level: a ``GraphDataLoader`` pass with their ``collate_fn`` over a ``SubsetRandomSampler``).
The graphs come from ``--data`` (an ``.npz`` that ``bench_graphs.py`` writes from geomask's reading of the same raw
files: ``x``, ``edge_index`` with per-graph local indices, ``node_ptr``, ``edge_ptr``), because their loaders download
the datasets; as their loaders do, every graph gets ``remove_self_loop().add_self_loop()`` and its node features as
``ndata["attr"]`` (one-hot node labels for TU sets, as their loader builds them where a set has no attributes).
Their GIN and GCN layers call ``dgl.function.copy_src``, DGL 0.x's name of ``copy_u`` (removed in DGL 1.0): the
alias is added.

Prints one JSON line: ``{"seconds": best epoch time, "torch": version, "dgl": version}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", type=Path, required=True, help="a local copy of THUDM/GraphMAE")
    ap.add_argument("--data", type=Path, required=True, help=".npz of the dataset (bench_graphs.py writes it)")
    ap.add_argument("--config", required=True, help="the dataset's section of their configs.yml (e.g. cora, PROTEINS)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()

    sys.path.insert(0, str(args.code))
    import dgl
    import dgl.function as fn

    if not hasattr(fn, "copy_src"):  # their GIN / GCN layers use DGL 0.x's name of copy_u (removed in DGL 1.0)
        fn.copy_src = fn.copy_u
    import numpy as np
    import torch
    import yaml
    from dgl.dataloading import GraphDataLoader
    from graphmae.models import build_model
    from graphmae.utils import create_optimizer
    from torch.utils.data.sampler import SubsetRandomSampler

    torch.set_num_threads(args.threads)
    cfg = yaml.safe_load((args.code / "configs.yml").read_text())[args.config]
    defaults = {  # their build_args defaults
        "num_heads": 4, "num_out_heads": 1, "num_layers": 2, "num_hidden": 256, "residual": False, "in_drop": 0.2,
        "attn_drop": 0.1, "norm": None, "lr": 0.005, "weight_decay": 5e-4, "negative_slope": 0.2, "activation": "prelu",
        "mask_rate": 0.5, "drop_edge_rate": 0.0, "replace_rate": 0.0, "encoder": "gat", "decoder": "gat",
        "loss_fn": "sce", "alpha_l": 2, "optimizer": "adam", "scheduler": False, "concat_hidden": False,
        "max_epoch": 200, "batch_size": 32,
    }  # fmt: skip
    cfg = {k: float(v) if "lr" in k or "weight_decay" in k else v for k, v in cfg.items()}  # their load_best_configs
    opts = argparse.Namespace(**{**defaults, **cfg})

    d = np.load(args.data)
    x, ei, node_ptr, edge_ptr = (torch.from_numpy(d[k]) for k in ("x", "edge_index", "node_ptr", "edge_ptr"))
    graphs = []
    for i in range(len(node_ptr) - 1):
        n0, n1, e0, e1 = (int(v) for v in (node_ptr[i], node_ptr[i + 1], edge_ptr[i], edge_ptr[i + 1]))
        g = dgl.graph((ei[0, e0:e1], ei[1, e0:e1]), num_nodes=n1 - n0)
        g.ndata["attr"] = x[n0:n1].float()
        graphs.append(g.remove_self_loop().add_self_loop())
    opts.num_features = int(x.shape[1])
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 (their set_random_seed)
    model = build_model(opts)
    optimizer = create_optimizer(opts.optimizer, model, opts.lr, opts.weight_decay)

    if len(graphs) == 1:  # main_transductive.py: one full-graph step per epoch
        graph = graphs[0]
        feat = graph.ndata["attr"]
        scheduler = None
        if opts.scheduler:
            max_epoch = opts.max_epoch
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lr_lambda=lambda epoch: (1 + np.cos(epoch * np.pi / max_epoch)) * 0.5
            )

        def epoch() -> None:
            model.train()
            loss, _ = model(graph, feat)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()

    else:  # main_graph.py: batches of their collate_fn over a SubsetRandomSampler

        def collate_fn(batch):
            return dgl.batch([b[0] for b in batch]), torch.cat([b[1] for b in batch], dim=0)

        dataset = [(g, torch.zeros(1, dtype=torch.long)) for g in graphs]
        loader = GraphDataLoader(
            dataset,
            sampler=SubsetRandomSampler(torch.arange(len(dataset))),
            collate_fn=collate_fn,
            batch_size=opts.batch_size,
            pin_memory=False,
        )

        def epoch() -> None:
            model.train()
            loss_list = []
            for batch_g, _ in loader:
                feat = batch_g.ndata["attr"]
                model.train()
                loss, _ = model(batch_g, feat)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                loss_list.append(loss.item())

    epoch()  # warm-up
    best = float("inf")
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for _ in range(args.epochs):
            epoch()
        best = min(best, (time.perf_counter() - t0) / args.epochs)
    print(json.dumps({"seconds": best, "torch": torch.__version__, "dgl": dgl.__version__}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Graph-classification accuracy of the official GraphMAE code (THUDM/GraphMAE) on a local TU folder, seed by seed.

The reference point for ``geomask eval graphs`` on MUTAG / PROTEINS / ENZYMES: what the authors' own code scores on
this machine, with as many seeds as you ask for (the paper reports seeds 0-4). Like ``graphmae_official_epoch.py``
this runs in a Python environment of its own with DGL and the torch DGL was built for (``python3 -m venv dgl-venv &&
dgl-venv/bin/pip install torch==2.1.2 torchdata==0.7.1 dgl==2.1.0 "numpy<2" "pandas<2.3" scipy scikit-learn pyyaml
tqdm tensorboardX pydantic ogb``; their ``data_util`` imports ``ogb``, DGL 2.1's data loaders ``pydantic``) and never
imports geomask.

Everything is theirs: ``configs.yml`` through their ``load_best_configs``, DGL's ``TUDataset`` and their
``load_graph_classification_dataset`` (one-hot node labels, ``remove_self_loop().add_self_loop()``), their
``set_random_seed``, ``build_model``, ``create_optimizer``, ``pretrain`` and ``graph_classification_evaluation``
(pooled embeddings, 10-fold stratified SVM with C searched in {1e-3 .. 10}), called in the order their
``main_graph.main`` calls them. Two local changes, neither touching the model or the protocol: ``TUDataset`` reads the
raw ``*.txt`` files of ``--raw`` instead of downloading them (its processed cache goes to a temporary folder), and DGL
1.0's ``copy_u`` is aliased as ``copy_src`` (the name their GIN layer calls, removed in DGL 1.0).
``--max-epoch 0`` evaluates the randomly initialised model (their code, no pretraining).

Prints one JSON line: ``{"dataset", "seeds", "accuracy" (per seed, %), "mean", "std", "seconds", "torch", "dgl"}``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", type=Path, required=True, help="a local copy of THUDM/GraphMAE")
    ap.add_argument("--raw", type=Path, required=True, help="a TU folder's raw files (e.g. MUTAG/raw)")
    ap.add_argument("--dataset", required=True, help="the TU name, as in their configs.yml (MUTAG, PROTEINS, ...)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--max-epoch", type=int, default=None, help="override the config's epochs (0: untrained model)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    code = args.code.resolve()
    raw = args.raw.resolve()
    os.chdir(code)  # their load_best_configs reads configs.yml from the working directory
    sys.path.insert(0, str(code))
    import dgl
    import dgl.function as fn

    if not hasattr(fn, "copy_src"):  # their GIN layer uses DGL 0.x's name of copy_u (removed in DGL 1.0)
        fn.copy_src = fn.copy_u
    import graphmae.datasets.data_util as data_util
    import main_graph
    import torch
    from dgl.data import TUDataset
    from graphmae.models import build_model
    from graphmae.utils import build_args, create_optimizer, load_best_configs, set_random_seed

    torch.set_num_threads(args.threads)
    cache = tempfile.mkdtemp(prefix="graphmae-tu-")

    class LocalTUDataset(TUDataset):  # the raw files of --raw, no download
        def __init__(self, name: str) -> None:
            super().__init__(name, raw_dir=cache)

        def _download(self) -> None:
            pass

        def _file_path(self, category: str) -> str:
            return str(raw / f"{self.name}_{category}.txt")

    data_util.TUDataset = LocalTUDataset
    sys.argv = ["main_graph.py", "--dataset", args.dataset, "--use_cfg"]
    with contextlib.redirect_stdout(io.StringIO()):
        opts = load_best_configs(build_args(), "configs.yml")
    if args.max_epoch is not None:
        opts.max_epoch = args.max_epoch

    # their main_graph.main, seed by seed, returning the accuracies instead of printing them
    with contextlib.redirect_stdout(io.StringIO()):
        graphs, (num_features, num_classes) = main_graph.load_graph_classification_dataset(
            opts.dataset, deg4feat=opts.deg4feat
        )
    opts.num_features = num_features
    loader_kw = {"collate_fn": main_graph.collate_fn, "batch_size": opts.batch_size}
    sampler = torch.utils.data.sampler.SubsetRandomSampler(torch.arange(len(graphs)))
    train_loader = dgl.dataloading.GraphDataLoader(graphs, sampler=sampler, pin_memory=False, **loader_kw)
    eval_loader = dgl.dataloading.GraphDataLoader(graphs, shuffle=False, **loader_kw)
    pooler = {"mean": main_graph.AvgPooling, "max": main_graph.MaxPooling, "sum": main_graph.SumPooling}[opts.pooling]()

    def cosine(epoch: int) -> float:
        return (1 + math.cos(epoch * math.pi / opts.max_epoch)) * 0.5

    accuracy = []
    t0 = time.perf_counter()
    for seed in args.seeds:
        set_random_seed(seed)
        model = build_model(opts)
        optimizer = create_optimizer(opts.optimizer, model, opts.lr, opts.weight_decay)
        scheduler = None
        if opts.scheduler:  # their cosine schedule over the pretraining epochs
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=cosine)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            model = main_graph.pretrain(
                model, pooler, (train_loader, eval_loader), optimizer, opts.max_epoch, "cpu", scheduler,
                num_classes, opts.lr_f, opts.weight_decay_f, opts.max_epoch_f, opts.linear_prob, None,
            )  # fmt: skip
            model.eval()
            f1 = main_graph.graph_classification_evaluation(
                model, pooler, eval_loader, num_classes, opts.lr_f, opts.weight_decay_f, opts.max_epoch_f, "cpu"
            )
        accuracy.append(100.0 * float(f1))
        print(f"seed {seed}: {accuracy[-1]:.2f}", file=sys.stderr)
    mean = sum(accuracy) / len(accuracy)
    std = (sum((a - mean) ** 2 for a in accuracy) / len(accuracy)) ** 0.5  # np.std, as their main_graph reports
    out = {
        "dataset": args.dataset, "seeds": args.seeds, "accuracy": accuracy, "mean": mean, "std": std,
        "seconds": time.perf_counter() - t0, "torch": torch.__version__, "dgl": dgl.__version__,
    }  # fmt: skip
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

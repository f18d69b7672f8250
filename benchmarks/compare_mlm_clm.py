"""MLM vs CLM vs biphasic (CLM then MLM) at equal compute, on the same downstream tasks (issue 13).

A small-scale replay of Gisserot-Boukhlef et al. 2025 ("Should we still pretrain encoders with masked language
modeling?").  This is an *experiment*, not a speed benchmark: there is no ``ratio`` line; the per-step seconds are
printed only to check that the variants cost the same per step (equal compute = equal steps x batch, same encoder).

**Variants** (one encoder, one tied LM head, the sizes and optimiser of ``configs/mlm_cpu.yaml``: width 64, depth 2,
2 heads, AdamW lr 1e-3 wd 0.01, cosine with warm-up capped at a tenth of the run, batch 32):
``mlm`` (15 % masked, 80/10/10), ``clm`` (next-token on every token, causal attention), ``biphasic25`` and
``biphasic50`` (CLM for 25 % / 50 % of the steps, then MLM: ``method.switch_step``).  Every variant of a seed sees
the same batch order (:func:`geomask.eval.sequences.pretrain`, the seed's generator).  ``scratch`` = the same
network untrained (the seed's weights), the floor every variant must beat.

**Text (GENERATED: a small grammar, not real text).**  ``generate_text(6000, seed=0)``, WordPiece 200 trained on the
first 5000 sentences (pretraining), the last 1000 held out.  Intrinsic: masked-token ``accuracy`` and
``pseudo_perplexity`` (every scored position masked alone, :func:`~geomask.eval.sequences.score_positions`, the same
positions for every model) for the models that end in MLM; the next-token cross-entropy ``next_ce`` (causal
attention) for those with a CLM phase (CLM has no bidirectional fill-in).  Downstream, *agreement detection*: each
sentence gets a corrupted twin whose verb is replaced by a verb of the other subject class ("the old farmer chases
..."), label 1 = corrupted; train = 1500 pretraining sentences + twins, test = the 1000 held-out + twins (balanced).
``linear``: logistic regression on standardised frozen mean-pooled features; ``finetune``: the encoder and a linear
head, ``--text-finetune-steps`` steps (:func:`geomask.eval.sequences.finetune_probe`; short on purpose: at 150 steps
every model, scratch included, reaches 100 %, so a longer fine-tune measures nothing here).  Baseline
``bag_of_tokens``: the linear probe on token counts (it cannot see which verb goes with which noun beyond
co-occurrence).

Note: the WordPiece trainer (Hugging Face ``tokenizers``) is not deterministic across processes (the learned token
set and ids change run to run), so absolute numbers move between runs; within one run every variant and seed
shares the one tokenizer.

**Peptides (real data: ``../shared/data/sequences/pepnn_train.csv`` beside the checkout, or ``--peptides``; skipped
with a note when absent).**  As ``geomask eval sequences``: pretraining on the training peptides + receptor
pieces, held-out = receptor clusters ``% 5 == 0``; task = buried surface area above the training median from the
peptide alone; linear probe and fine-tune (``--finetune-steps``; accuracy, ROC AUC); baseline ``kmer`` (1-, 2-mer
composition).

**Equal compute check** (``--cost-rounds``, default 5; 0 skips it): on the text data, ``--cost-steps`` training steps
(forward, backward, AdamW) of ``mlm``, ``clm`` and ``biphasic`` in each phase on the same batches, the variants
alternating within each round; the best round's ms/step of each is printed and stored as ``step_cost``.

``clm`` features are the method's own (causal attention, mean-pooled); ``clm_bidir`` probes the *same* CLM weights
read with bidirectional attention (as the biphasic/MLM models are), to separate the objective from the attention
pattern at probe time.

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/compare_mlm_clm.py --steps 600 --seeds 0 1 [--pep-steps 300]
        [--finetune-steps 150] [--text-finetune-steps 30] [--cost-rounds 5] [--out /tmp/compare_mlm_clm.json]
        [--no-peptides]

Prints one progress line per model and seed, then a table (mean ± std over seeds) and writes the JSON.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from geomask.datasets.text import GENERATED_VERBS, generate_text
from geomask.eval.sequences import (
    CLUSTER_MODULUS,
    cpu_config,
    finetune_probe,
    held_out_batch,
    kmer_features,
    logistic_probe,
    pooled_features,
    pretrain,
    read_peptides,
    score_positions,
    split_pieces,
)
from geomask.methods import build_method
from geomask.methods.clm import encode_causal
from geomask.methods.mlm import MLM
from geomask.sequences.batch import SequenceItem, collate_sequences

ROOT = Path(__file__).resolve().parents[1]
PEPTIDES = ROOT.parent / "shared" / "data" / "sequences" / "pepnn_train.csv"
VARIANTS = {
    "mlm": ("mlm", None),
    "clm": ("clm", None),
    "biphasic25": ("biphasic", 0.25),
    "biphasic50": ("biphasic", 0.5),
}


def build(name: str, vocab_size: int, steps: int, seed: int):
    """The variant's network, the ``mlm_cpu.yaml`` sizes, seeded (so every variant of a seed starts equal)."""
    method, frac = VARIANTS[name]
    kw = {k: v for k, v in cpu_config("mlm")["method"].items() if k not in ("name", "masker", "loss")}
    kw["vocab_size"] = vocab_size
    if frac is not None:
        kw["switch_step"] = int(round(frac * steps))
    torch.manual_seed(seed)
    return build_method(method, **kw)


# ------------------------------------------------------------------------------------------------ metrics


@torch.no_grad()
def next_token_ce(model, batch) -> float:
    """Mean next-token cross-entropy over every maskable target (causal attention), nats."""
    model.eval()
    h = encode_causal(model.encoder, batch.ids, batch.attention_mask)[:, :-1]
    target = batch.maskable[:, 1:]
    return float(F.cross_entropy(model.head(h[target]), batch.ids[:, 1:][target]))


def masked_metrics(model, batch, positions) -> dict[str, float]:
    logp, hit = score_positions(model, batch, positions)
    return {"accuracy": float(hit.float().mean()), "pseudo_perplexity": float(torch.exp(-logp.mean()))}


class Bidir(torch.nn.Module):
    """A CLM read with bidirectional attention: ``features`` = MLM's mean-pooled encoder output."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def features(self, batch):
        return MLM.features(self.inner, batch)


def probes(model, tr, ytr, te, yte, ft_steps: int, seed: int) -> dict[str, float]:
    out = logistic_probe(pooled_features(model, tr).numpy(), ytr.numpy(), pooled_features(model, te).numpy(), yte, seed)
    with torch.enable_grad():
        out.update(finetune_probe(model, tr, ytr, te, yte, ft_steps, seed))
    return out


def intrinsic(model, name: str, batch, positions) -> dict[str, float]:
    out = {}
    if name != "clm":
        out.update(masked_metrics(model, batch, positions))
    if name != "mlm":
        out["next_ce"] = next_token_ce(model, batch)
    return out


# ------------------------------------------------------------------------------------------------ data


def corrupt(sentence: str, rng: np.random.Generator) -> str:
    w = sentence.split()  # "the ADJ NOUN VERB ...": the verb is the fourth word
    cls = "animal" if w[3] in GENERATED_VERBS["animal"] else "person"
    other = "person" if cls == "animal" else "animal"
    w[3] = GENERATED_VERBS[other][rng.integers(len(GENERATED_VERBS[other]))]
    return " ".join(w)


def text_task():
    from geomask.sequences.tokenizer import encode_texts, tokenizer_vocab, train_tokenizer

    lines = generate_text(6000, seed=0)
    tok = train_tokenizer(lines[:5000], vocab_size=200, min_frequency=1)
    vocab = tokenizer_vocab(tok)

    def items(ls):
        ids, words = encode_texts(tok, ls)
        return [SequenceItem(i, w, vocab) for i, w in zip(ids, words)]

    rng = np.random.default_rng(0)
    probe_lines = lines[:1500] + lines[5000:]
    twins = [corrupt(s, rng) for s in probe_lines]
    all_items, p, t = items(lines), items(probe_lines), items(twins)
    tr, te = p[:1500] + t[:1500], p[1500:] + t[1500:]
    ytr = torch.tensor([0] * 1500 + [1] * 1500)
    yte = np.array([0] * 1000 + [1] * 1000)
    batch, positions = held_out_batch(all_items[5000:], 512, 16)
    return all_items[:5000], vocab, (tr, ytr, te, yte), batch, positions


def peptide_task(path: Path):
    from geomask.sequences.vocab import amino_vocab

    rows = read_peptides(path)
    held = rows.cluster % CLUSTER_MODULUS == 0
    rows, test_rows = rows.take(~held), rows.take(held)
    vocab = amino_vocab()
    tr, te = split_pieces(rows.peptides, vocab, 128), split_pieces(test_rows.peptides, vocab, 128)
    receptors = list({tuple(r.tolist()): r for r in rows.receptors}.values())
    corpus = tr + split_pieces(receptors, vocab, 128)
    median = float(rows.area.median())
    ytr = (rows.area > median).long()
    yte = (test_rows.area > median).numpy().astype(np.int64)
    batch, positions = held_out_batch(te, 256, 16)
    return corpus, vocab, (tr, ytr, te, yte), batch, positions


# ------------------------------------------------------------------------------------------------ runs


def run_task(task: str, data, steps: int, seeds, ft_steps: int, baseline) -> dict[str, list[dict]]:
    corpus, vocab, (tr, ytr, te, yte), batch, positions = data
    cfg = cpu_config("mlm")  # optim + batch size, identical for every variant
    runs: dict[str, list[dict]] = {}
    base_name, base_x = baseline
    xtr, xte = base_x(tr), base_x(te)
    runs[base_name] = [logistic_probe(xtr, ytr.numpy(), xte, yte, 0)]
    print(f"[{task}] {base_name}: {runs[base_name][0]}", flush=True)
    for seed in seeds:
        scratch = build("mlm", vocab.size, steps, seed)
        r = {**masked_metrics(scratch, batch, positions), **probes(scratch, tr, ytr, te, yte, ft_steps, seed)}
        runs.setdefault("scratch", []).append(r)
        print(f"[{task}] scratch seed {seed}: {json.dumps(r)}", flush=True)
        for name in VARIANTS:
            model = build(name, vocab.size, steps, seed)
            t0 = time.perf_counter()
            with torch.enable_grad():
                pretrain(model, corpus, steps, cfg, seed)
            sec = time.perf_counter() - t0
            r = {"train_s": sec, "ms_per_step": 1000 * sec / steps, **intrinsic(model, name, batch, positions)}
            r.update(probes(model, tr, ytr, te, yte, ft_steps, seed))
            runs.setdefault(name, []).append(r)
            print(f"[{task}] {name} seed {seed}: {json.dumps(r)}", flush=True)
            if name == "clm":
                b = probes(Bidir(copy.deepcopy(model)), tr, ytr, te, yte, ft_steps, seed)
                runs.setdefault("clm_bidir", []).append(b)
                print(f"[{task}] clm_bidir seed {seed}: {json.dumps(b)}", flush=True)
    return runs


def step_cost(corpus, vocab_size: int, rounds: int, steps: int) -> dict[str, float]:
    """Best-of-``rounds`` ms per training step of each variant on the same ``steps`` batches (module docstring)."""
    gen = torch.Generator().manual_seed(0)
    batches = [
        collate_sequences([corpus[i] for i in torch.randint(len(corpus), (32,), generator=gen).tolist()])
        for _ in range(steps)
    ]
    models = {"mlm": build("mlm", vocab_size, 2, 0), "clm": build("clm", vocab_size, 2, 0)}
    models["biphasic_clm_phase"] = build("biphasic50", vocab_size, 10**9, 0)  # switch far away: CLM phase
    models["biphasic_mlm_phase"] = build("biphasic50", vocab_size, 0, 0)  # switch_step 0: MLM phase
    opts = {n: torch.optim.AdamW(m.parameters(), lr=1e-3) for n, m in models.items()}
    best = {n: math.inf for n in models}
    for r in range(rounds + 1):  # round 0 warms up
        for n in list(models)[r % len(models) :] + list(models)[: r % len(models)]:
            m, g = models[n], torch.Generator().manual_seed(r)
            m.train()
            t0 = time.perf_counter()
            for b in batches:
                loss = m(b, g)["loss"]
                opts[n].zero_grad(set_to_none=True)
                loss.backward()
                opts[n].step()
            if r:
                best[n] = min(best[n], 1000 * (time.perf_counter() - t0) / steps)
    return {n: round(v, 2) for n, v in best.items()}


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict[str, list[float]]]:
    """``{model: {metric: [mean, std]}}`` over seeds."""
    out = {}
    for name, per_seed in runs.items():
        keys = [k for k in per_seed[0] if all(k in r for r in per_seed)]
        out[name] = {
            k: [float(np.mean([r[k] for r in per_seed])), float(np.std([r[k] for r in per_seed]))] for k in keys
        }
    return out


COLS = [
    ("ms_per_step", "ms/step", 1),
    ("accuracy", "mask acc", 3),
    ("pseudo_perplexity", "PPPL", 2),
    ("next_ce", "next CE", 3),
    ("linear_accuracy", "lin acc", 3),
    ("linear_auc", "lin AUC", 3),
    ("finetune_accuracy", "ft acc", 3),
    ("finetune_auc", "ft AUC", 3),
]


def table(task: str, summary: dict) -> str:
    lines = [f"{task}", f"{'model':<12}" + "".join(f"{c:>15}" for _, c, _ in COLS)]
    for name, m in summary.items():
        cells = []
        for key, _, d in COLS:
            if key in m:
                mean, std = m[key]
                cells.append(f"{mean:.{d}f}±{std:.{d}f}".rjust(15))
            else:
                cells.append("-".rjust(15))
        lines.append(f"{name:<12}" + "".join(cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=600, help="pretraining steps of every variant (text)")
    ap.add_argument("--pep-steps", type=int, default=None, help="pretraining steps on peptides (default --steps)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--finetune-steps", type=int, default=150, help="fine-tune steps (peptides)")
    ap.add_argument("--text-finetune-steps", type=int, default=30, help="fine-tune steps (agreement task)")
    ap.add_argument("--cost-rounds", type=int, default=5, help="rounds of the equal-compute timing (0: skip)")
    ap.add_argument("--cost-steps", type=int, default=20, help="steps per variant per round of that timing")
    ap.add_argument("--peptides", type=Path, default=PEPTIDES)
    ap.add_argument("--no-peptides", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("/tmp/compare_mlm_clm.json"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    result = {"config": {**vars(a), "peptides": str(a.peptides), "out": str(a.out)}, "tasks": {}}
    data = text_task()
    vocab_size = data[1].size

    def bag(items):
        return torch.stack([torch.bincount(it.ids, minlength=vocab_size) for it in items]).float().numpy()

    if a.cost_rounds > 0:
        result["step_cost"] = step_cost(data[0], vocab_size, a.cost_rounds, a.cost_steps)
        print("step cost (ms/step, best of rounds):", json.dumps(result["step_cost"]), flush=True)
    text = run_task(
        "text (GENERATED) / agreement", data, a.steps, a.seeds, a.text_finetune_steps, ("bag_of_tokens", bag)
    )
    result["tasks"]["text"] = {"runs": text, "summary": summarise(text)}
    if a.no_peptides:
        pass
    elif not a.peptides.is_file():
        print(f"note: {a.peptides} not found: peptide task skipped (give --peptides)", file=sys.stderr)
    else:
        pdata = peptide_task(a.peptides)

        def kmer(items):
            return kmer_features(collate_sequences(items), pdata[1].size).numpy()

        pep = run_task(
            "peptides (pepnn) / buried area", pdata, a.pep_steps or a.steps, a.seeds, a.finetune_steps, ("kmer", kmer)
        )
        result["tasks"]["peptides"] = {"runs": pep, "summary": summarise(pep)}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print()
    for task, r in result["tasks"].items():
        print(table(task, r["summary"]))
        print()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {a.out} ({result['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

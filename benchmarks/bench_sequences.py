"""Benchmark: geomask's sequence stack against Hugging Face, side by side in one run.

1. **MLM training step** (forward + backward + AdamW) of geomask's ``mlm`` vs ``BertForMaskedLM`` at the same size
   (width, depth, heads, MLP width, vocabulary, positions), batch and sequence length, on the same random token
   batch.  Each draws its own masks (geomask: the ``mlm`` masker + ``mlm_replace``; HF: the batch comes with
   labels from ``DataCollatorForLanguageModeling``, drawn once outside the timing).  The models differ as
   BERT and this encoder do: post-LN vs pre-LN; BERT adds token-type embeddings and an embedding LayerNorm;
   geomask projects only the masked tokens to the vocabulary (BERT all of them).  ``ratio mlm_step geomask/hf: X``.
2. **Masking throughput**: the same token batches (lists of ids of a tokenizer trained here) through
   ``DataCollatorForLanguageModeling`` (``whole_word_mask`` False and True) and through geomask's
   ``collate_sequences`` + masker (``mlm`` / ``whole_word``) + ``mlm_replace``: both pad, mask 15 % and replace
   80/10/10 (HF draws per token / per word with probability 0.15, geomask exact counts; HF's whole-word mode
   reads word boundaries from the tokenizer's ``offset_mapping``, geomask from word ids).
   ``ratio mlm_collate geomask/hf: X`` and ``ratio wwm_collate geomask/hf: X`` (X > 1: geomask faster).
3. **Packed MLM step**: the same groups of ``--pack-batch`` lines (a ``geomask prep text`` folder given by
   ``--text``, e.g. WikiText-2's ``wiki.valid.txt``; else GENERATED lines of 1 to 8 sentences) as padded batches
   (``collate_sequences``) and as packed rows of 128 (``collate_packed``, first-fit decreasing): an MLM training
   step each, equal real tokens per step; padding shares and ``ratio mlm_packed packed/unpacked: X`` (real
   tokens/s, X > 1: packing faster).

Times are the best of ``--rounds`` rounds (alternating which library goes first).

Usage::

    .venv/bin/python benchmarks/bench_sequences.py [--threads 1] [--rounds 5] [--size small|base] [--text DIR]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from geomask.datasets.text import generate_text
from geomask.masking import build_masker, mlm_replace
from geomask.methods import build_method
from geomask.sequences import SequenceItem, collate_sequences
from geomask.sequences.tokenizer import SPECIAL_TOKENS, encode_texts, tokenizer_vocab, train_tokenizer

SIZES = {  # name: (width, depth, heads, vocab, batch, length)
    "small": (256, 4, 4, 8000, 16, 128),
    "base": (768, 12, 12, 30522, 8, 128),
}


def _best(fns: dict, rounds: int, reps: int) -> dict[str, float]:
    best = {k: math.inf for k in fns}
    names = list(fns)
    for r in range(rounds):
        for k in names if r % 2 == 0 else names[::-1]:
            t = time.perf_counter()
            for _ in range(reps):
                fns[k]()
            best[k] = min(best[k], (time.perf_counter() - t) / reps)
    return best


def bench_step(size: str, rounds: int) -> float:
    from transformers import BertConfig, BertForMaskedLM

    dim, depth, heads, vocab, b, length = SIZES[size]
    torch.manual_seed(0)
    ours = build_method("mlm", vocab_size=vocab, dim=dim, depth=depth, heads=heads, max_len=512)
    cfg = BertConfig(
        vocab_size=vocab,
        hidden_size=dim,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=4 * dim,
        max_position_embeddings=512,
        attn_implementation="sdpa",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    hf = BertForMaskedLM(cfg)
    from geomask.sequences import Vocab

    v = Vocab(vocab, 0, 4, (0, 1, 2, 3, 4), 2, 3)
    g = torch.Generator().manual_seed(0)
    items = [SequenceItem(torch.randint(5, vocab, (length - 2,), generator=g), None, v) for _ in range(b)]
    batch = collate_sequences(items)
    mask = build_masker("mlm")(batch.layout(), g).view(batch.ids.shape)
    inputs, labels = mlm_replace(batch.ids, mask, v, g)
    att = batch.attention_mask.long()
    opt_o, opt_h = torch.optim.AdamW(ours.parameters()), torch.optim.AdamW(hf.parameters())
    gen = torch.Generator().manual_seed(1)

    def step_ours():
        loss = ours(batch, gen)["loss"]
        opt_o.zero_grad()
        loss.backward()
        opt_o.step()

    def step_hf():
        loss = hf(input_ids=inputs, attention_mask=att, labels=labels).loss
        opt_h.zero_grad()
        loss.backward()
        opt_h.step()

    params = (sum(p.numel() for p in ours.parameters()), sum(p.numel() for p in hf.parameters()))
    best = _best({"geomask": step_ours, "hf": step_hf}, rounds, 2)
    print(
        f"mlm_step {size} (width {dim}, {depth} blocks, batch {b} x {length}; params geomask {params[0]:,}, "
        f"hf {params[1]:,}): geomask {best['geomask'] * 1e3:.1f} ms, hf {best['hf'] * 1e3:.1f} ms"
    )
    return best["hf"] / best["geomask"]


def bench_collate(rounds: int) -> tuple[float, float]:
    from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerFast

    lines = generate_text(6000, seed=0)
    paragraphs = [" ".join(lines[i : i + 4]) for i in range(0, len(lines), 4)]
    tok = train_tokenizer(paragraphs, vocab_size=400)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    assert [fast.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(5))
    vocab = tokenizer_vocab(tok)
    ids, words = encode_texts(tok, paragraphs)
    batches = [list(range(i, i + 32)) for i in range(0, len(paragraphs) - 31, 32)]
    enc = fast(paragraphs, return_offsets_mapping=True, add_special_tokens=False)
    assert enc["input_ids"][0] == ids[0].tolist()  # the same tokens as ours
    cls, sep = vocab.cls_id, vocab.sep_id
    hf_ids = [[cls, *e, sep] for e in enc["input_ids"]]
    hf_off = [[(0, 0), *o, (0, 0)] for o in enc["offset_mapping"]]
    plain = [[{"input_ids": hf_ids[i]} for i in bt] for bt in batches]
    # HF's pad does not pad offset_mapping: give it each batch's offsets padded to the batch's length already
    top = [max(len(hf_ids[i]) for i in bt) for bt in batches]
    with_offsets = [
        [{"input_ids": hf_ids[i], "offset_mapping": hf_off[i] + [(0, 0)] * (n - len(hf_off[i]))} for i in bt]
        for bt, n in zip(batches, top)
    ]
    ours_items = [[SequenceItem(ids[i], words[i], vocab) for i in bt] for bt in batches]
    out = []
    for wwm, name in ((False, "mlm"), (True, "whole_word")):
        hf = DataCollatorForLanguageModeling(fast, whole_word_mask=wwm, seed=0)
        hf_items = with_offsets if wwm else plain
        masker = build_masker(name)
        g = torch.Generator().manual_seed(0)

        def run_hf(hf=hf, hf_items=hf_items):
            for items in hf_items:
                hf(items)

        def run_ours(masker=masker, g=g):
            for items in ours_items:
                b = collate_sequences(items)
                m = masker(b.layout(), g).view(b.ids.shape)
                mlm_replace(b.ids, m, vocab, g)

        best = _best({"geomask": run_ours, "hf": run_hf}, rounds, 1)
        n = sum(len(x) for x in batches)
        print(
            f"collate {name}: {len(batches)} batches of 32 ({n} sequences, ~{int(sum(len(t) for t in ids) / len(ids))} "
            f"tokens each): geomask {n / best['geomask']:,.0f} seq/s, hf {n / best['hf']:,.0f} seq/s"
        )
        out.append(best["hf"] / best["geomask"])
    return out[0], out[1]


def bench_packed(rounds: int, text: str | None, group: int = 32, groups: int = 4, pack_len: int = 128) -> float:
    from geomask.sequences.packing import collate_packed

    if text:
        from geomask.datasets.text import SequenceDataset

        ds = SequenceDataset(text, "text", max_len=pack_len)
        items = [ds[i] for i in range(min(len(ds), group * groups))]
        what = f"{text} lines"
    else:
        import numpy as np

        rng = np.random.default_rng(0)
        sents = generate_text(group * groups * 8, seed=1)
        cuts = np.cumsum(rng.integers(1, 9, group * groups))
        lines = [" ".join(sents[a:b]) for a, b in zip([0, *cuts[:-1]], cuts)]
        tok = train_tokenizer(lines, vocab_size=400)
        ids, words = encode_texts(tok, lines)
        vocab = tokenizer_vocab(tok)
        items = [SequenceItem(t[: pack_len - 2], w[: pack_len - 2], vocab) for t, w in zip(ids, words)]
        what = "GENERATED lines of 1-8 sentences"
    vocab = items[0].vocab
    chunks = [items[i : i + group] for i in range(0, len(items) - group + 1, group)]
    padded = [collate_sequences(c) for c in chunks]
    packed = [collate_packed(c, pack_len) for c in chunks]
    real = sum(int(b.attention_mask.sum()) for b in padded)
    torch.manual_seed(0)
    model = build_method("mlm", vocab_size=max(vocab.size, 8), dim=256, depth=4, heads=4, max_len=pack_len)
    opt = torch.optim.AdamW(model.parameters())
    gen = torch.Generator().manual_seed(1)

    def run(batches):
        for b in batches:
            loss = model(b, gen)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()

    best = _best({"unpacked": lambda: run(padded), "packed": lambda: run(packed)}, rounds, 1)
    pad_u = 1 - real / sum(b.ids.numel() for b in padded)
    pad_p = 1 - real / sum(b.ids.numel() for b in packed)
    rows_u = sum(b.ids.size(0) for b in padded) / len(chunks)
    rows_p = sum(b.ids.size(0) for b in packed) / len(chunks)
    print(
        f"mlm_packed ({what}; {len(chunks)} steps of {group} lines, {real} real tokens; width 256, 4 blocks): "
        f"unpacked {rows_u:.1f} rows/step, padding {pad_u:.1%}, {real / best['unpacked']:,.0f} tokens/s; "
        f"packed to {pack_len} {rows_p:.1f} rows/step, padding {pad_p:.1%}, {real / best['packed']:,.0f} tokens/s"
    )
    return best["unpacked"] / best["packed"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--text", default=None, help="a `geomask prep text` folder for the packed step (else GENERATED)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    step = bench_step(args.size, args.rounds)
    mlm, wwm = bench_collate(args.rounds)
    packed = bench_packed(args.rounds, args.text)
    print(f"ratio mlm_packed packed/unpacked: {packed:.2f}")
    print(f"ratio mlm_step geomask/hf: {step:.2f}")
    print(f"ratio mlm_collate geomask/hf: {mlm:.2f}")
    print(f"ratio wwm_collate geomask/hf: {wwm:.2f}")


if __name__ == "__main__":
    main()

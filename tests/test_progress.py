"""Progress bars: tqdm on a terminal, plain lines (no carriage returns or cursor moves) anywhere else, and the
evaluation's bars go through that one helper."""

from __future__ import annotations

import io

import numpy as np
from tqdm.std import tqdm as std_tqdm

from geomask.progress import LineProgress, progress_bar


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _plain(text: str) -> bool:
    return "\r" not in text and "\x1b" not in text


def test_terminal_gets_a_tqdm_bar():
    bar = progress_bar(range(3), desc="x", file=FakeTerminal())
    assert isinstance(bar, std_tqdm)
    assert list(bar) == [0, 1, 2]


def test_pipe_gets_plain_lines_one_per_update_at_most():
    out = io.StringIO()
    bar = progress_bar(range(4), desc="steps", unit="step", file=out, interval=0.0)
    assert isinstance(bar, LineProgress)
    assert list(bar) == [0, 1, 2, 3]
    text = out.getvalue()
    assert _plain(text)
    lines = text.splitlines()
    assert [ln.split(",")[0] for ln in lines] == [f"steps: {k}/4 step ({25 * k}%)" for k in (1, 2, 3, 4)]


def test_plain_lines_are_rate_limited_and_closing_prints_the_last():
    out = io.StringIO()
    with progress_bar(total=1000, desc="work", file=out, interval=1e9) as bar:
        for _ in range(1000):
            bar.update(1)
    assert out.getvalue().splitlines()[0].startswith("work: 1000/1000 it (100%)")
    assert len(out.getvalue().splitlines()) == 1


def test_plain_bar_without_leave_or_disabled_prints_nothing():
    out = io.StringIO()
    list(progress_bar(range(5), file=out, leave=False, interval=1e9))
    list(progress_bar(range(5), file=out, disable=True, interval=0.0))
    assert out.getvalue() == ""


def test_nested_plain_bars_leave_no_cursor_debris():
    out = io.StringIO()
    outer = progress_bar(total=2, desc="methods x seeds", file=out, interval=0.0)
    for name in ("a", "b"):
        for _ in progress_bar(range(3), desc=f"pretrain {name}", file=out, leave=False, interval=0.0):
            pass
        outer.update(1)
    outer.close()
    text = out.getvalue()
    assert _plain(text)
    assert text.splitlines()[-1].startswith("methods x seeds: 2/2")


def test_eval_compare_progress_is_plain_when_stderr_is_not_a_terminal(capsys):
    from geomask.eval.protocol import Budget, compare

    budget = Budget(methods=("scratch",), seeds=(0,), pretrain_steps=0, model={"hidden": 8, "layers": 1})
    out = compare(lambda method, name, seed: {"split": {"m": float(seed) + 1.0}}, [], budget, progress=True)
    assert out["methods"]["scratch"]["split"]["m"] == 1.0
    err = capsys.readouterr().err
    assert _plain(err)
    assert "methods x seeds: 1/1" in err


def test_eval_pretrain_progress_is_plain_when_stderr_is_not_a_terminal(capsys):
    from geomask.circuits.graph import aig_to_graph
    from geomask.eval.protocol import Budget, pretrain
    from geomask.io.aig import AIG

    aig = AIG(num_inputs=3, ands=[[2, 4], [3, 6], [8, 11]], outputs=[12, 9])
    graphs = [aig_to_graph(aig, "per_edge") for _ in range(2)]
    budget = Budget(methods=("mgm",), pretrain_steps=2, batch_size=2, model={"hidden": 8, "layers": 1})
    _, losses = pretrain("mgm", graphs, budget, seed=0, progress=True)
    assert len(losses) == 2 and np.isfinite(losses).all()
    assert _plain(capsys.readouterr().err)

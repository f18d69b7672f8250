"""What the eval command prints and draws: the results table (± only over several seeds, legacy_mape left to the
JSON), the bar plots' constant-baseline reference line, and the demo's closing sentence."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from geomask.eval import plots
from geomask.eval.command import results_table


def qor_result(seeds: list[int]) -> dict:
    def metrics(z_mae: float, std: float) -> dict:
        m = {"z_mse": 2 * z_mae, "z_mae": z_mae, "mape": 12.5, "legacy_mape": 3.2e13, "top1": 0.25}
        return {**m, **{f"{k}_std": std for k in m}}

    spread = 0.0 if len(seeds) == 1 else 0.05
    return {
        "methods": {
            "scratch": {"unseen_recipes": metrics(0.61, spread), "unseen_designs": metrics(0.93, spread)},
            "mgvga": {"unseen_recipes": metrics(0.42, spread), "unseen_designs": metrics(0.88, spread)},
        },
        "baseline": {"unseen_recipes": metrics(0.80, 0.0), "unseen_designs": metrics(0.79, 0.0)},
        "config": {"task": "qor", "seeds": seeds},
    }


def test_single_seed_table_has_no_plus_minus():
    text = results_table(qor_result([0]), "qor")
    assert "±" not in text
    row = next(line for line in text.splitlines() if line.startswith("mgvga") and "unseen_recipes" in line)
    assert row.split()[2:5] == ["0.84", "0.42", "12.5"]
    assert "1 seed" in text.splitlines()[-1]


def test_several_seeds_show_mean_plus_minus_std():
    text = results_table(qor_result([0, 1, 2]), "qor")
    assert "0.42 ± 0.05" in text
    assert "3 seeds" in text.splitlines()[-1]


def test_results_without_config_keep_their_std():
    result = qor_result([0, 1])
    del result["config"]
    assert "0.42 ± 0.05" in results_table(result, "qor")


def test_legacy_mape_stays_out_of_the_table():
    text = results_table(qor_result([0]), "qor")
    header = text.splitlines()[0].split()
    assert "legacy_mape" not in header and "mape" in header
    assert "3.2e+13" not in text
    assert "legacy_mape: in the JSON only" in text.splitlines()[-1]


def _horizontal_lines(ax) -> list[float]:
    """y of every drawn horizontal line across the axes (error-bar caps are markers without a line style)."""
    return [
        float(ln.get_ydata()[0])
        for ln in ax.get_lines()
        if ln.get_linestyle() not in ("None", "none", "", " ")
        and len(set(np.asarray(ln.get_ydata(), dtype=float))) == 1
    ]


def test_bar_plots_draw_the_constant_baseline(tmp_path, monkeypatch):
    figures = {}

    def keep(fig, path, dpi=100):
        figures[Path(path).name] = fig
        return Path(path)

    monkeypatch.setattr(plots, "save_figure", keep)
    plots.write_plots(qor_result([0]), tmp_path, "qor")
    fig = figures["qor_unseen_recipes_bars.png"]
    by_title = {ax.get_title(): ax for ax in fig.axes}
    assert _horizontal_lines(by_title["z_mae"]) == [pytest.approx(0.80)]
    assert _horizontal_lines(by_title["mape"]) == [pytest.approx(12.5)]
    bars = [p.get_height() for p in by_title["z_mae"].patches]
    assert np.allclose(bars, [0.61, 0.42])
    assert _horizontal_lines(figures["qor_unseen_designs_bars.png"].axes[0]) != []
    plots.pyplot().close("all")


def test_bar_plots_without_baseline_draw_no_line(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, dpi=100: figures.append(fig) or Path(path))
    result = qor_result([0])
    del result["baseline"]
    plots.write_plots(result, tmp_path, "qor")
    assert figures and all(_horizontal_lines(ax) == [] for fig in figures for ax in fig.axes)
    plots.pyplot().close("all")


def _demo():
    path = Path(__file__).resolve().parents[2] / "tools" / "demo.py"
    spec = importlib.util.spec_from_file_location("geomask_demo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_closing_sentence_comes_from_the_numbers():
    sentence = _demo().closing_sentence(qor_result([0]))
    assert sentence.startswith("What the table shows (z_mae, lower is better)")
    assert "on unseen_recipes mgvga is best at 0.42, 48% below the constant baseline's 0.8" in sentence
    assert "on unseen_designs no method beats the constant baseline (0.79; the best, mgvga, has 0.88)" in sentence
    result = qor_result([0])
    result["methods"]["scratch"]["unseen_designs"]["z_mae"] = 0.5
    assert "on unseen_designs scratch is best at 0.5, 37% below" in _demo().closing_sentence(result)
    result["methods"]["scratch"]["unseen_designs"]["z_mae"] = 0.788  # 0.25 % below 0.79: not "0%"
    assert "on unseen_designs scratch is best at 0.788, 0.3% below" in _demo().closing_sentence(result)

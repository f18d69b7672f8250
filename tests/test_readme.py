"""The README's command line is the program's: every synopsis option exists, every subcommand is in the
synopsis, and the quick tour runs as written (its ``out/`` redirected into a temporary folder)."""

from __future__ import annotations

import argparse
import csv
import re
import shlex
from pathlib import Path

import pytest

from geomask.cli import build_parser, main

Parser = argparse.ArgumentParser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def _synopsis() -> list[str]:
    """The ``text`` block of the Command line section, continuation lines joined to their command."""
    section = README[README.index("## Command line") :]
    block = re.search(r"```text\n(.*?)```", section, flags=re.S).group(1)
    commands: list[str] = []
    for line in block.splitlines():
        if line.startswith("geomask "):
            commands.append(line)
        elif line.startswith(" ") and commands:
            commands[-1] += " " + line.strip()
    return commands


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    subs = _subparsers(parser)
    if not subs:
        return {path: parser}
    out = {}
    for name, sub in subs.items():
        out.update(_leaves(sub, (*path, name)))
    return out


def _parsers_of(line: str) -> list[argparse.ArgumentParser]:
    """The leaf parsers a synopsis line documents (``eval qor|equivalence|probability`` is three)."""
    parser, words = build_parser(), line.split()[1:]
    found = [parser]
    for word in words:
        names = word.split("|")
        subs = [_subparsers(p) for p in found]
        if not all(subs) or not all(n in s for s in subs for n in names):
            break
        found = [s[n] for s in subs for n in names]
    return found


def test_synopsis_options_exist_and_every_subcommand_is_listed():
    lines = _synopsis()
    documented = set()
    for line in lines:
        parsers = _parsers_of(line)
        assert parsers and _subparsers(parsers[0]) == {}, f"README synopsis names no subcommand: {line}"
        for p in parsers:
            documented.add(p.prog)
            known = {o for a in p._actions for o in a.option_strings}
            for option in re.findall(r"(?<![\w-])--[a-z][a-z-]*", line):
                assert option in known, f"README: {p.prog} has no {option}"
    leaves = {p.prog for p in _leaves(build_parser()).values()}
    assert leaves - documented == set(), "subcommands missing from the README synopsis"


def test_every_subcommand_help_has_an_example(capsys):
    for path, parser in _leaves(build_parser()).items():
        text = parser.format_help()
        assert "example" in text, f"geomask {' '.join(path)} --help shows no example"


@pytest.mark.slow
def test_quick_tour_runs_as_written(tmp_path, monkeypatch, capsys):
    tour = [line[2:] for block in _blocks("console") for line in block.splitlines() if line.startswith("$ geomask ")]
    assert len(tour) >= 6
    monkeypatch.chdir(ROOT)  # the tour reads data/corpus/... relative to the checkout
    outputs = []
    for line in tour:
        argv = [a.replace("out/readme", str(tmp_path / "readme")) for a in shlex.split(line)[1:]]
        code = main(argv)
        cap = capsys.readouterr()
        assert code == 0, f"{line}\n{cap.err}"
        outputs.append(cap.out)
    circuits = tmp_path / "readme" / "circuits"
    with open(circuits / "qor.csv", newline="") as f:
        designs = {r["design"] for r in csv.DictReader(f)}
    assert designs == {"adder", "bin2gray_w8", "mult_array_w3"}  # the second prep added one, kept two
    pretrains = [out for line, out in zip(tour, outputs) if line.startswith("geomask pretrain")]
    assert "trained 20 steps" in pretrains[0]
    assert f"nothing to do: {tmp_path / 'readme' / 'run'} is complete at step 20" in pretrains[1]
    assert (tmp_path / "readme" / "qor.json").is_file() and any((tmp_path / "readme" / "plots").glob("*.png"))

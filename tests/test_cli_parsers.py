"""No parser of the package takes abbreviations: `--mod` is not `--model` (a study's `eval: {mod: X}` would
otherwise evaluate another model without a word)."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

import sas_trl
from sas_trl.cli import COMMANDS, build_parser, main

PACKAGE = Path(sas_trl.__file__).parent
# The package, and the repository's own scripts and benchmarks (they take flags too).
SOURCES = [PACKAGE, PACKAGE.parent / "scripts", PACKAGE.parent / "benchmarks"]
# The argparse parsers and the Hugging Face ones built on it (their keyword arguments reach argparse).
PARSERS = {"ArgumentParser", "HfArgumentParser", "TrlParser", "add_parser"}
# Arguments that take each command as far as its first parse (train needs a recipe to get there).
ARGV = {"train": ["--recipe", "tiny_cpu"]}


def _name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def parser_calls() -> list[tuple[str, int, ast.Call]]:
    return [
        (str(path.relative_to(PACKAGE.parent)), node.lineno, node)
        for folder in SOURCES
        for path in sorted(folder.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and _name(node) in PARSERS
    ]


def test_every_parser_the_package_builds_refuses_abbreviations():
    calls = parser_calls()
    files = {file.split("/")[0] for file, _, _ in calls}
    assert len(calls) >= 17 and files == {"sas_trl", "scripts", "benchmarks"}  # the walk sees every parser
    forgot = [
        f"{file}:{line}"
        for file, line, call in calls
        if not any(
            k.arg == "allow_abbrev" and isinstance(k.value, ast.Constant) and k.value.value is False
            for k in call.keywords
        )
    ]
    assert not forgot, f"add allow_abbrev=False to: {', '.join(forgot)}"


class Parsed(Exception):
    pass


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_command_parses_without_abbreviations(command, monkeypatch):
    """Every command's first parse, whatever parser it builds (argparse or Hugging Face's)."""
    seen = []

    def record(self, args=None, namespace=None):
        seen.append((self.prog, self.allow_abbrev))
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", record)
    with pytest.raises(Parsed):
        main([command, *ARGV.get(command, ["--no_such_flag"])])
    assert seen and all(allowed is False for _, allowed in seen), seen


def test_the_dispatcher_and_its_subcommands_refuse_abbreviations():
    parser = build_parser()
    assert parser.allow_abbrev is False
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == set(COMMANDS)
    assert all(p.allow_abbrev is False for p in sub.choices.values())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["eval", "--model", "m", "--mod", "n"], "unrecognized arguments: --mod n"),
        (["eval", "--model", "m", "--out", "x"], "unrecognized arguments: --out x"),
        (["analyze-truncation", "--model", "m", "--benchmarks", "addition", "--long", "8"], "arguments: --long 8"),
        (["compare", "--study", "s.yaml", "--report"], "unrecognized arguments: --report"),
        (["push", "--output_dir", "d", "--hub_model_id", "a/b", "--hub_priv"], "unrecognized arguments: --hub_priv"),
        (["train", "--recipe", "tiny_cpu", "--learning_r", "1e-5"], "unknown key 'learning_r' in the command line"),
        (["--vers"], "unrecognized arguments: --vers"),
    ],
)
def test_an_abbreviated_flag_is_refused_naming_it(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse's own error (commands that keep its usage message)
        code = exit.code
    assert code == 2
    assert message in capsys.readouterr().err

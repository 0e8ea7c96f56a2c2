"""Packaged recipes: `--recipe NAME` from any folder, a local file first, `sas-trl recipes`, and the wheel.

The slow test builds the wheel, installs it without the source tree and trains the tiny recipe by name from an
empty folder, as a user who ran `pip install sas-trl` would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from cli_helpers import CPU_OVERRIDES, QUICK, ROOT

from sas_trl import __version__
from sas_trl.cli import main
from sas_trl.compare import load_study
from sas_trl.errors import RecipeError
from sas_trl.training.packaged import PACKAGED, describe, resolve_path, resolve_recipe, training_recipes
from sas_trl.training.recipes import load_recipe, parse

NAMES = {
    "deepscaler_4k": "deepscaler_4k.yaml",
    "baselines/l1_max": "baselines/l1_max.yaml",
    "ablations/only_correct.yaml": "ablations/only_correct.yaml",
    "tiny_cpu": "tiny_cpu.yaml",
    "recipes/grpo_4k.yaml": "grpo_4k.yaml",  # the path the README uses, from a folder without it
}


@pytest.fixture
def empty_folder(tmp_path, monkeypatch):
    folder = tmp_path / "empty"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def test_the_package_holds_the_repositorys_recipes_as_one_copy():
    # In the source tree sas_trl/recipes is a link to recipes/: git holds each file once.
    assert (ROOT / "sas_trl" / "recipes").is_symlink()
    assert (ROOT / "sas_trl" / "recipes").resolve() == (ROOT / "recipes").resolve()
    assert PACKAGED.resolve() == (ROOT / "recipes").resolve()


@pytest.mark.parametrize("name", list(NAMES))
def test_a_recipe_name_resolves_to_the_packaged_recipe(empty_folder, name):
    path = resolve_recipe(name)
    assert path == PACKAGED / NAMES[name] and path.is_file()


def test_a_packaged_recipe_parses_with_its_includes_and_launch_config(empty_folder):
    run_args, args, _, resolved = parse(["--recipe", "baselines/l1_max", *CPU_OVERRIDES])
    # base: l1_exact.yaml -> ../grpo_4k.yaml -> deepscaler_4k.yaml, all inside the package
    assert resolved["run_name"] == "l1_max" and args.sas_strategy == "none" and args.max_completion_length == 4096
    # the recipe's `recipes/accelerate/zero2.yaml` is the packaged file: this folder has none
    assert Path(run_args.accelerate_config) == PACKAGED / "accelerate" / "zero2.yaml"
    assert yaml.safe_load(Path(run_args.accelerate_config).read_text())["num_processes"] == 8
    assert resolved["accelerate_config"] == "recipes/accelerate/zero2.yaml"  # the saved recipe keeps its text
    assert args.output_dir == "outputs/baselines/l1_max"  # outputs go to the current folder, never the package


def test_a_local_file_always_wins(empty_folder):
    (empty_folder / "recipes").mkdir()
    local = empty_folder / "recipes" / "tiny_cpu.yaml"
    local.write_text("# mine\nbase: " + str(PACKAGED / "tiny_cpu.yaml") + "\nmax_steps: 3\n")
    assert resolve_recipe("recipes/tiny_cpu.yaml") == Path("recipes/tiny_cpu.yaml")
    _, args, _, _ = parse(["--recipe", "recipes/tiny_cpu.yaml"])
    assert args.max_steps == 3
    (empty_folder / "tiny_cpu.yaml").write_text("base: " + str(PACKAGED / "tiny_cpu.yaml") + "\nmax_steps: 4\n")
    assert resolve_recipe("tiny_cpu") == Path("tiny_cpu.yaml")  # `--recipe NAME` reads a local NAME.yaml first
    _, args, _, _ = parse(["--recipe", "tiny_cpu"])
    assert args.max_steps == 4
    # a local accelerate config of the packaged recipe's path wins too
    (empty_folder / "recipes" / "accelerate").mkdir()
    (empty_folder / "recipes" / "accelerate" / "zero2.yaml").write_text("num_processes: 2\n")
    assert resolve_path("recipes/accelerate/zero2.yaml") == "recipes/accelerate/zero2.yaml"
    assert resolve_path("recipes/accelerate/zero3.yaml") == str(PACKAGED / "accelerate" / "zero3.yaml")
    assert resolve_path("data/train.jsonl") == "data/train.jsonl"  # only recipes/... paths are mapped


def test_a_recipe_of_ones_own_includes_a_packaged_one(empty_folder):
    (empty_folder / "mine.yaml").write_text("base: recipes/tiny_cpu.yaml\nmax_steps: 5\n")
    (empty_folder / "by_name.yaml").write_text("base: ablations/only_correct\nsas_ratio: 0.4\n")
    mine = load_recipe(empty_folder / "mine.yaml")
    assert mine["max_steps"] == 5 and mine["model_name_or_path"] == "builtin:tiny"
    by_name = load_recipe(empty_folder / "by_name.yaml")  # and its own includes, inside the package
    assert by_name["sas_strategy"] == "correct_only" and by_name["sas_ratio"] == 0.4 and by_name["bf16"] is True
    (empty_folder / "recipes").mkdir()
    (empty_folder / "recipes" / "tiny_cpu.yaml").write_text("max_steps: 9\n")  # a local base still wins
    assert load_recipe(empty_folder / "mine.yaml") == {"max_steps": 5}
    (empty_folder / "typo.yaml").write_text("base: recipes/tiny_cpuu.yaml\n")
    with pytest.raises(RecipeError, match="base recipe 'recipes/tiny_cpuu.yaml' not found"):
        load_recipe(empty_folder / "typo.yaml")


def test_an_unknown_name_is_refused_with_the_nearest_ones(empty_folder):
    with pytest.raises(
        RecipeError, match=r"recipe not found: deepscaler_4 .*did you mean deepscaler_4k.*sas-trl recipes"
    ):
        resolve_recipe("deepscaler_4")
    for outside in ("../tiny_cpu", "/tiny_cpu"):  # never a file outside the recipes folder
        with pytest.raises(RecipeError, match="recipe not found"):
            resolve_recipe(outside)


def test_inspect_reads_a_packaged_recipe_by_name(empty_folder):
    import argparse

    from sas_trl.cli.sas_options import add_sas_options, sas_rule_from

    parser = argparse.ArgumentParser()
    add_sas_options(parser, "recipe")
    rule, recipe = sas_rule_from(parser.parse_args(["--recipe", "ablations/only_correct"]))
    assert rule.strategy == "correct_only" and recipe["run_name"] == "ablation_only_correct"


def test_a_packaged_study_and_its_base_recipe_load_from_any_folder(empty_folder):
    study = load_study("recipes/studies/tiny_smoke.yaml")
    assert study.base_recipe == PACKAGED / "studies" / "tiny_smoke_base.yaml"
    assert study.output_dir == Path("outputs/studies/tiny_smoke")  # relative to the current folder


def test_recipes_command_lists_each_file_with_the_first_sentence_of_its_comment(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    # Each entry: its name, then its description wrapped under the description column.
    entries: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            name = line.split()[0]
            entries[name] = line[2 + len(name) :].strip()
        elif line.startswith("   ") and entries:
            entries[name] += " " + line.strip()
    for name in ("deepscaler_4k", "baselines/l1_max", "ablations/only_correct", "tiny_cpu", "grpo_4k"):
        assert entries[name] == describe(PACKAGED / f"{name}.yaml"), name
    assert entries["tiny_cpu"].endswith("under a short completion budget.")  # a whole sentence over 2 lines
    assert all(len(line) <= 100 for line in out.splitlines() if line.startswith("   "))
    # Studies only (their base recipes are not studies), and verl's configs and reward in their own section.
    assert "studies/tiny_smoke" in entries and not [n for n in entries if n.endswith("_base")]
    assert {"verl/deepscaler_4k_sas", "verl/deepscaler_4k_grpo", "verl/deepscaler_4k_common"} <= set(entries)
    assert out.index("verl configs") > out.index("accelerate configs") > out.index("studies (")
    assert not [n for n, _ in training_recipes() if n.startswith(("verl/", "studies/", "accelerate/"))]
    names = [name for name, _ in training_recipes()]
    assert names.index("tiny_cpu") < names.index("ablations/only_correct")  # top-level recipes first
    assert f"sas-trl {__version__}" in out


def test_recipes_path_prints_a_packaged_folder_for_tools_that_take_a_path(empty_folder, capsys):
    """verl's `--config-path="$(sas-trl recipes --path verl)"`: an absolute path, from any folder."""
    for name in ("verl", "recipes/verl/", "verl/deepscaler_4k_sas.yaml"):
        assert main(["recipes", "--path", name]) == 0
        printed = Path(capsys.readouterr().out.strip())
        assert printed.is_absolute() and printed.exists() and printed.resolve().is_relative_to(PACKAGED.resolve())
        assert printed.resolve() == (ROOT / "recipes" / name.removeprefix("recipes/").strip("/")).resolve()
    for name in ("verl2", "../sas_trl", ""):
        assert main(["recipes", "--path", name]) == 2
        assert f"no packaged recipe file or folder {name!r}" in capsys.readouterr().err


def test_describe_reads_the_first_sentence_of_the_leading_comment(tmp_path):
    recipe = tmp_path / "r.yaml"
    cases = {
        "\n# First line. Second sentence.\nmax_steps: 1\n": "First line.",
        "# A sentence that goes on\n# over two lines (Wu et al. 2025), then 4.5 more. Next.\n": (
            "A sentence that goes on over two lines (Wu et al. 2025), then 4.5 more."
        ),
        "# @package _global_\n# Hydra's directive skipped.\n": "Hydra's directive skipped.",
        "# No full stop\n#   python -m run   (an indented command)\n": "No full stop",
        "# Ends here\n\n# another comment\n": "Ends here",
        "max_steps: 1\n# later\n": "",
    }
    for text, expected in cases.items():
        recipe.write_text(text)
        assert describe(recipe) == expected, text
    module = tmp_path / "reward.py"
    module.write_text('"""A reward, graded. More detail\n\nA second paragraph."""\n')
    assert describe(module) == "A reward, graded."


def _source_copy(tmp_path: Path) -> Path:
    """The tracked source tree without build leftovers (the wheel is built from a copy, never in place)."""
    ignore = shutil.ignore_patterns(
        ".git", ".venv*", "outputs", "build", "dist", "*.egg-info", "__pycache__", ".*cache", "wandb", "notebooks"
    )
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=ignore)
    return source


@pytest.mark.slow
def test_the_installed_wheel_trains_the_tiny_recipe_by_name_from_an_empty_folder(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels)]
    subprocess.run([*build, str(_source_copy(tmp_path))], check=True, capture_output=True, env=env, timeout=300)
    (wheel,) = wheels.glob("sas_trl-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = {n.removeprefix("sas_trl/recipes/") for n in archive.namelist() if n.startswith("sas_trl/recipes/")}
    shipped = {p.relative_to(ROOT / "recipes").as_posix() for p in (ROOT / "recipes").rglob("*") if p.is_file()}
    assert packaged == shipped  # every recipe, study, accelerate and verl file, and nothing else

    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, env=env, timeout=300)
    empty = tmp_path / "empty"
    empty.mkdir()
    # The wheel's package, the main environment's dependencies; the source tree nowhere on the path.
    env = {**env, "PYTHONPATH": str(target), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    where = subprocess.run(
        [sys.executable, "-c", "import sas_trl; print(sas_trl.__file__)"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(target)
    script = target / "bin" / "sas-trl"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "sas_trl.cli"]

    listing = subprocess.run([*command, "recipes"], cwd=empty, env=env, capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0 and "baselines/l1_max" in listing.stdout and str(target) in listing.stdout

    train = [*command, "train", "--recipe", "tiny_cpu", *QUICK, "--output_dir", "run"]
    result = subprocess.run(train, cwd=empty, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"recipe tiny_cpu is the packaged {target}" in result.stdout
    assert (empty / "run" / "run_info.json").is_file()
    saved = load_recipe(empty / "run" / "resolved_recipe.yaml")
    assert saved["run_name"] == "tiny_cpu" and saved["max_steps"] == 2
    assert sorted(p.name for p in empty.iterdir()) == ["run"]  # nothing written elsewhere in the folder

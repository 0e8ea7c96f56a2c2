"""sas_trl.training.recipe_files: `base:` includes (the includer wins, env merges) and bad files named."""

from __future__ import annotations

import pytest
from cli_helpers import ROOT

from sas_trl.errors import RecipeError
from sas_trl.training.recipe_files import dump_recipe, load_recipe


def test_base_includes_another_recipe_and_the_includer_wins(tmp_path):
    (tmp_path / "parent.yaml").write_text("sas_ratio: 0.3\nlearning_rate: 0.001\nenv:\n  A: '1'\n  B: '2'\n")
    (tmp_path / "sub").mkdir()
    child = tmp_path / "sub" / "child.yaml"
    child.write_text("base: ../parent.yaml\nsas_ratio: 0.5\nenv:\n  B: '3'\n")
    assert load_recipe(child) == {"sas_ratio": 0.5, "learning_rate": 0.001, "env": {"A": "1", "B": "3"}}
    # The shipped ablations hold only what they change, and resolve to full recipes.
    ablation = load_recipe(ROOT / "recipes" / "ablations" / "only_correct.yaml")
    assert ablation["sas_strategy"] == "correct_only" and ablation["max_completion_length"] == 4096


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"r.yaml": "base: missing.yaml\n"}, "base recipe 'missing.yaml' not found"),
        ({"r.yaml": "base: r.yaml\n"}, "includes itself"),
        ({"r.yaml": "base: q.yaml\n", "q.yaml": "base: r.yaml\n"}, "includes itself"),
        ({"r.yaml": "base: [a, b]\n"}, "'base' must be the path of another recipe"),
        ({"r.yaml": ""}, "is empty"),
        ({"r.yaml": "# only a comment\n"}, "is empty"),
        ({"r.yaml": b"\x89PNG\r\n\x1a\n\xff\xfe"}, "is not a text file"),
        ({"r.yaml": "env:\n  A: [1, 2]\n"}, "env 'A' must be a string or number, got list"),
    ],
)
def test_bad_recipe_files_name_the_problem(tmp_path, files, expected):
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    with pytest.raises(RecipeError, match=expected):
        load_recipe(tmp_path / "r.yaml")


def test_a_dumped_recipe_loads_back_unchanged(tmp_path):
    resolved = {
        "sas_ratio": 0.5,
        "reward_funcs": ["accuracy"],
        "prompt_template": "Solve: {problem}\n",
        "env": {"A": "1"},
    }
    (tmp_path / "r.yaml").write_text(dump_recipe(resolved))
    assert load_recipe(tmp_path / "r.yaml") == resolved
    assert list(load_recipe(tmp_path / "r.yaml")) == list(resolved)  # the recipe's order is kept

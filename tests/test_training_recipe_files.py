"""sas_trl.training.recipe_files: `base:` includes (the includer wins, env merges) and bad files named."""

from __future__ import annotations

import pytest
import yaml
from cli_helpers import ROOT

from sas_trl.errors import RecipeError
from sas_trl.training.recipe_files import MAX_INCLUDE_DEPTH, dump_recipe, load_recipe


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
        # A key given twice: YAML would keep the last value without a word.
        ({"r.yaml": "sas_ratio: 0.3\nseed: 1\nsas_ratio: 0.5\n"}, r"key 'sas_ratio' appears twice \(lines 1 and 3\)"),
        ({"r.yaml": "env:\n  A: '1'\n  A: '2'\n"}, r"key 'A' appears twice \(lines 2 and 3\)"),
        ({"r.yaml": "reward_params:\n  1: {}\n  '1': {}\n"}, "key '1' appears twice"),  # 1 and "1" collapse
        ({"r.yaml": "base: q.yaml\n", "q.yaml": "seed: 1\nseed: 2\n"}, r"q\.yaml: key 'seed' appears twice"),
        # env entries the operating system refuses, named with their line.
        ({"r.yaml": "seed: 1\nenv:\n  A=B: x\n"}, r"r\.yaml, line 3: env key 'A=B' contains '='"),
        ({"r.yaml": "env:\n  '': x\n"}, "env key '' is not a variable name"),
        ({"r.yaml": 'env:\n  "A\\0B": x\n'}, "contains a NUL character"),
        ({"r.yaml": 'env:\n  A: "x\\0y"\n'}, "env 'A' has a NUL character in its value"),
        ({"r.yaml": "env:\n  1: x\n"}, "env key 1 is not a variable name"),
        ({"r.yaml": "1: x\n"}, "line 1: key 1 is not a field name"),
        ({"r.yaml": "seed: [1\n"}, r"is not valid YAML, line 2, column 1"),
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


def test_include_chains_are_bounded_with_a_clear_error(tmp_path):
    for index in range(MAX_INCLUDE_DEPTH + 5):
        (tmp_path / f"r{index}.yaml").write_text(f"base: r{index + 1}.yaml\n")
    (tmp_path / f"r{MAX_INCLUDE_DEPTH + 5}.yaml").write_text("seed: 1\n")
    with pytest.raises(
        RecipeError, match=rf"more than {MAX_INCLUDE_DEPTH} includes deep \(the chain starts at .*r0\.yaml\)"
    ):
        load_recipe(tmp_path / "r0.yaml")
    assert load_recipe(tmp_path / f"r{MAX_INCLUDE_DEPTH - 1}.yaml") == {"seed": 1}  # a chain within the bound


def test_each_key_remembers_the_file_and_line_that_holds_it(tmp_path):
    (tmp_path / "parent.yaml").write_text("# parent\nsas_ratio: 0.3\nseed: 1\nenv:\n  A: '1'\n  B: '2'\n")
    child = tmp_path / "child.yaml"
    child.write_text("base: parent.yaml\nseed: 2\nenv:\n  B: '3'\n")
    recipe = load_recipe(child)
    assert recipe == {"sas_ratio": 0.3, "seed": 2, "env": {"A": "1", "B": "3"}}
    assert recipe.location("sas_ratio") == f"{tmp_path / 'parent.yaml'}, line 2"
    assert recipe.location("seed") == f"{child}, line 2"  # the includer's value wins, and its place
    assert recipe.sources["env.A"] == f"{tmp_path / 'parent.yaml'}, line 5"
    assert recipe.sources["env.B"] == f"{child}, line 4"
    assert recipe.location("learning_rate", "nowhere") == "nowhere"


# --------------------------------------------------------------------------------------------------
# YAML merge keys (`<<:`), as PyYAML and `trl grpo --config` read them; a key written twice is still refused
# --------------------------------------------------------------------------------------------------


def test_merge_keys_work_and_a_mappings_own_keys_override_merged_ones(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        "model_init_kwargs: &loading\n"  # 1
        "  dtype: float32\n"  # 2
        "  low_cpu_mem_usage: true\n"  # 3
        "reward_params:\n"  # 4
        "  accuracy:\n"  # 5
        "    <<: *loading\n"  # 6
        "    dtype: bfloat16\n"  # 7
        "<<: {seed: 3, learning_rate: 0.001}\n"  # 8
        "seed: 1\n"  # 9
        "env:\n"  # 10
        "  <<: [{A: '1', B: '2'}, {B: 'not this one', C: '3'}]\n"  # 11: the first merge of a key wins
        "  C: '4'\n"  # 12
    )
    recipe = load_recipe(path)
    assert recipe == yaml.safe_load(path.read_text())  # what PyYAML (and so TRL's parser) reads
    assert recipe["reward_params"]["accuracy"] == {"dtype": "bfloat16", "low_cpu_mem_usage": True}
    assert recipe["seed"] == 1 and recipe["learning_rate"] == 0.001
    assert recipe["env"] == {"A": "1", "B": "2", "C": "4"}
    assert "<<" not in recipe
    # each key keeps the line that holds its value: a merged key where it is written, an override its own
    assert recipe.location("learning_rate") == f"{path}, line 8"
    assert recipe.location("seed") == f"{path}, line 9"
    assert recipe.sources["env.A"] == f"{path}, line 11" and recipe.sources["env.C"] == f"{path}, line 12"


def test_a_recipe_with_merge_keys_builds_the_same_run_as_written_out(tmp_path):
    from sas_trl.training.output_dir import training_settings
    from sas_trl.training.recipes import parse

    written = tmp_path / "written.yaml"
    written.write_text(f"base: {ROOT / 'recipes/tiny_cpu.yaml'}\nlearning_rate: 0.002\nmax_steps: 3\n")
    merged = tmp_path / "merged.yaml"
    merged.write_text(f"base: {ROOT / 'recipes/tiny_cpu.yaml'}\n<<: {{learning_rate: 0.002, max_steps: 3}}\n")
    assert training_settings(*parse(["--recipe", str(merged)])[:3]) == training_settings(
        *parse(["--recipe", str(written)])[:3]
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<<: {seed: 3}\nseed: 1\nseed: 2\n", r"key 'seed' appears twice \(lines 2 and 3\)"),
        ("<<: {seed: 3}\n<<: {learning_rate: 0.1}\n", r"key '<<' appears twice \(lines 1 and 2\)"),
        ("<<: {seed: 3, seed: 4}\n", "key 'seed' appears twice"),  # inside the merged mapping
        ("a: &a {x: 1}\nreward_params:\n  r:\n    <<: *a\n    y: 1\n    y: 2\n", r"'y' appears twice \(lines 5 and 6"),
        ("env:\n  <<: {A: '1'}\n  B: '1'\n  B: '2'\n", r"key 'B' appears twice \(lines 3 and 4\)"),
        ("<<: *nowhere\n", "is not valid YAML.*found undefined alias"),
        ("<<: [1, 2]\n", "is not valid YAML.*expected a mapping"),
    ],
)
def test_a_key_written_twice_next_to_merge_keys_is_still_refused(tmp_path, text, expected):
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(RecipeError, match=expected):
        load_recipe(tmp_path / "r.yaml")


def test_a_study_may_share_condition_settings_through_merge_keys(tmp_path, monkeypatch):
    from sas_trl.compare import load_study
    from sas_trl.errors import UserError

    monkeypatch.chdir(ROOT)
    study = tmp_path / "study.yaml"
    head = f"base_recipe: recipes/studies/tiny_smoke_base.yaml\noutput_dir: {tmp_path / 'out'}\nseeds: [0, 1]\n"
    study.write_text(
        head + "reference: grpo\nconditions:\n"
        "  grpo: &common {sas_strategy: none, learning_rate: 0.002}\n"
        "  sas:\n    <<: *common\n    sas_strategy: both\n    sas_ratio: 0.3\n"
    )
    conditions = load_study(study).conditions
    assert conditions["sas"] == {"sas_strategy": "both", "learning_rate": 0.002, "sas_ratio": 0.3}
    assert conditions["grpo"] == {"sas_strategy": "none", "learning_rate": 0.002}
    study.write_text(head + "reference: grpo\nconditions:\n  grpo: {}\n  sas:\n    <<: {}\n    seed: 1\n    seed: 2\n")
    with pytest.raises(UserError, match=r"study .*study.yaml: key 'seed' appears twice \(lines 9 and 10\)"):
        load_study(study)

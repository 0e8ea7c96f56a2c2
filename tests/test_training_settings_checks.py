"""sas_trl.training.settings_checks: every numeric and enum field of the recipe has a known range, checked
before any dataclass is built; `model_init_kwargs` keys checked against the loader and the model's config."""

from __future__ import annotations

import typing

import pytest
import yaml
from cli_helpers import ROOT

from sas_trl.constants import BUILTIN_MODEL
from sas_trl.errors import RecipeError
from sas_trl.training.arguments import all_fields
from sas_trl.training.output_dir import training_settings
from sas_trl.training.recipes import build, dump_recipe, parse
from sas_trl.training.settings_checks import (
    CHECKED_ELSEWHERE,
    CHOICES,
    RANGES,
    Range,
    check_model_init_kwargs,
    check_values,
)

RECIPE = "recipes/tiny_cpu.yaml"


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def numeric_fields() -> set[str]:
    fields = set()
    for key, (cls, f) in all_fields().items():
        hint = typing.get_type_hints(cls)[f.name]
        kinds = set(typing.get_args(hint)) or {hint}
        if kinds & {int, float} and bool not in kinds:
            fields.add(key)
    return fields


def test_every_numeric_field_has_a_range_or_is_checked_elsewhere():
    # A field TRL or transformers adds shows up here, so its range is decided, not forgotten.
    assert numeric_fields() - set(RANGES) - set(CHECKED_ELSEWHERE) == set()
    # ...and a field they rename or drop cannot leave a check that never runs.
    assert set(RANGES) | set(CHOICES) | set(CHECKED_ELSEWHERE) <= set(all_fields())


@pytest.mark.parametrize("key", sorted(RANGES))
def test_every_range_refuses_a_value_outside_it_and_keeps_the_default(key):
    spec = RANGES[key]
    outside = (spec.low - 1 if not spec.low_open else spec.low) if spec.low is not None else spec.high + 1
    if outside in spec.extra:
        outside -= 1
    with pytest.raises(RecipeError, match=rf"^{key}=.* is not valid; allowed values: "):
        check_values({key: outside})
    default = all_fields()[key][1].default
    check_values({key: default})  # TRL's and transformers' defaults stay valid


def test_a_range_describes_itself():
    assert Range(1, extra=(-1,), note="why").describe(integer=True) == "an integer >= 1, or -1 (why)"
    assert Range(0, 1, low_open=True).describe(integer=False) == "a number > 0 and <= 1"
    assert not Range(0, 1, high_open=True).allows(1) and Range(0, 1).allows(1)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"temperature": float("nan")}, "temperature=nan is not valid; allowed values: finite numbers"),
        ({"learning_rate": float("inf")}, "learning_rate=inf"),
        ({"reward_weights": [1.0, float("nan")]}, "reward_weights=.*finite"),
        ({"optim": "adam"}, "optim='adam' is not valid; allowed values: 'adamw_torch'"),
        ({"lr_scheduler_type": "cosine_annealing"}, "lr_scheduler_type="),
        ({"save_strategy": "step"}, "save_strategy='step'"),
        ({"report_to": ["tensorboard", "wandbb"]}, r"report_to=\['tensorboard', 'wandbb'\]"),
        ({"dtype": "fp16"}, "dtype='fp16'"),
        ({"scale_rewards": "std"}, "scale_rewards='std'"),
        ({"importance_sampling_level": "seq"}, "importance_sampling_level='seq'"),
        ({"pad_to_multiple_of": "eight"}, "pad_to_multiple_of='eight'"),
        ({"model_init_kwargs": "{dtype: auto}"}, "model_init_kwargs: .* is not a JSON mapping"),
        ({"reward_funcs": ["accuracy", "l1"], "reward_weights": [1.0]}, "reward_weights=.*1 weight.*2 reward"),
    ],
)
def test_non_finite_numbers_unknown_choices_and_mismatched_lists_are_refused(values, expected):
    with pytest.raises(RecipeError, match=expected):
        check_values(values)


def test_valid_choices_and_unset_values_pass():
    check_values({"optim": "adamw_torch", "report_to": ["none"], "scale_rewards": True, "pad_to_multiple_of": "8"})
    check_values({key: None for key in RANGES})


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"attn_implementaton": "eager"}, "unknown key 'attn_implementaton'.*did you mean 'attn_implementation'"),
        ({"hiden_size": 8}, "unknown key 'hiden_size'.*did you mean 'hidden_size'"),
        ({"hidden_dropout": 0.1}, "unknown key 'hidden_dropout'"),  # not a Llama config attribute
        ({"dtype": "float8"}, "dtype='float8' is not valid"),
        ({"torch_dtype": "half"}, "torch_dtype='half' is not valid"),
        ({1: 2}, "key 1 is not a keyword name"),
    ],
)
def test_model_init_kwargs_the_loader_would_refuse_are_refused(kwargs, expected):
    with pytest.raises(RecipeError, match=expected):
        check_model_init_kwargs(kwargs, BUILTIN_MODEL, None, lambda key: "")


def test_model_init_kwargs_the_loader_takes_pass(tmp_path):
    ok = {"dtype": "float32", "attn_implementation": "eager", "attention_dropout": 0.1, "low_cpu_mem_usage": True}
    check_model_init_kwargs(ok, BUILTIN_MODEL, None, lambda key: "")
    # A local model folder: its config.json names the config class.
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    check_model_init_kwargs({"n_embd": 8, "hidden_size": 8}, str(tmp_path), None, lambda key: "")
    with pytest.raises(RecipeError, match="unknown key 'n_emdb'.*did you mean 'n_embd'"):
        check_model_init_kwargs({"n_emdb": 8}, str(tmp_path), None, lambda key: "")
    # A Hub model not in the cache: its config is unknown, so only near-misses of the loader's keywords fail.
    check_model_init_kwargs({"some_config_field": 1}, "nobody/not-cached", None, lambda key: "")
    with pytest.raises(RecipeError, match="did you mean 'device_map'"):
        check_model_init_kwargs({"device_mapp": "auto"}, "nobody/not-cached", None, lambda key: "")


def test_model_init_kwargs_are_checked_when_the_recipe_is_parsed(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"base: {ROOT / RECIPE}\nmodel_init_kwargs:\n  attn_implementaton: eager\n")
    with pytest.raises(RecipeError, match=rf"attn_implementaton.*\(set in {recipe}, line 2\)"):
        parse(["--recipe", str(recipe)])
    with pytest.raises(RecipeError, match="unknown key 'dtyp'"):
        parse(["--recipe", RECIPE, "--model_init_kwargs", '{"dtyp": "float32"}'])
    _, args, _, _ = parse(["--recipe", RECIPE, "--model_init_kwargs", '{"attention_dropout": 0.1}'])
    assert args.model_init_kwargs == {"attention_dropout": 0.1}


# --------------------------------------------------------------------------------------------------
# deepspeed, fsdp_config, accelerator_config: inline JSON or the path of a JSON file (the standard HF configs)
# --------------------------------------------------------------------------------------------------

HF_CONFIGS = "tests/fixtures/hf_configs"


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("deepspeed", "ds_zero2.json"),
        ("deepspeed", "ds_zero3.json"),
        ("fsdp_config", "fsdp.json"),
        ("accelerator_config", "accelerator_config.json"),
    ],
)
def test_a_path_to_a_standard_json_config_passes_the_checks(key, name, monkeypatch):
    monkeypatch.setattr("sas_trl.training.settings_checks._installed", lambda module: True)
    check_values({key: f"{HF_CONFIGS}/{name}"})
    check_values({key: str(ROOT / HF_CONFIGS / name)})  # absolute too
    check_values({key: (ROOT / HF_CONFIGS / name).read_text()})  # and the same JSON inline, as before


def test_fsdp_and_accelerator_config_files_reach_the_training_arguments():
    run_args, args, model_args, resolved = parse(
        ["--recipe", RECIPE, "--fsdp", "full_shard", "--fsdp_config", f"{HF_CONFIGS}/fsdp.json"]
        + ["--accelerator_config", f"{HF_CONFIGS}/accelerator_config.json"]
    )
    assert args.fsdp_config["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    assert args.fsdp_config["state_dict_type"] == "SHARDED_STATE_DICT"
    assert args.accelerator_config.even_batches is False  # the file's value, not the default (True)
    # The resolved recipe records what was read, as YAML that builds the same settings again
    saved = yaml.safe_load(dump_recipe(resolved))
    assert saved["accelerator_config"]["even_batches"] is False
    assert saved["fsdp_config"]["state_dict_type"] == "SHARDED_STATE_DICT"
    assert training_settings(*build(saved, [])) == training_settings(run_args, args, model_args)


def test_a_deepspeed_file_without_deepspeed_installed_says_so_not_that_the_json_is_bad(monkeypatch):
    monkeypatch.setattr("sas_trl.training.settings_checks._installed", lambda module: False)
    with pytest.raises(RecipeError, match=r"^deepspeed: '.*ds_zero2.json' needs DeepSpeed, which is not installed"):
        parse(["--recipe", RECIPE, "--deepspeed", f"{HF_CONFIGS}/ds_zero2.json"])


@pytest.mark.parametrize("key", ["deepspeed", "fsdp_config", "accelerator_config"])
def test_a_bad_json_config_file_is_refused_naming_the_file(key, tmp_path, monkeypatch):
    monkeypatch.setattr("sas_trl.training.settings_checks._installed", lambda module: True)
    cases = {
        "missing.json": (None, r"file '.*missing.json' not found \(inline JSON starting with '\{' or the path"),
        "folder": ("folder", r"'.*folder' is a folder, not a JSON file"),
        "broken.json": ('{\n  "stage": 2,\n}', r"file '.*broken.json' is not valid JSON \(.*line 3, column 1\)"),
        "list.json": ("[1, 2]", r"file '.*list.json' holds a JSON list, not a mapping"),
        "binary.json": (b"\xff\xfe{", r"file '.*binary.json' cannot be read"),
    }
    for name, (content, expected) in cases.items():
        path = tmp_path / name
        if content == "folder":
            path.mkdir()
        elif isinstance(content, bytes):
            path.write_bytes(content)
        elif content is not None:
            path.write_text(content)
        with pytest.raises(RecipeError, match=rf"^{key}: {expected}"):
            check_values({key: str(path)})


def test_a_json_config_file_error_from_a_recipe_names_the_recipe_line(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"base: {ROOT / RECIPE}\naccelerator_config: {tmp_path / 'nope.json'}\n")
    with pytest.raises(
        RecipeError, match=rf"accelerator_config: file .*nope.json' not found .*\(set in {recipe}, line 2\)"
    ):
        parse(["--recipe", str(recipe)])


def test_fields_transformers_never_reads_from_a_file_still_need_inline_json():
    # lr_scheduler_kwargs and the like are json-decoded only; a path there is a mistake
    with pytest.raises(RecipeError, match="lr_scheduler_kwargs: 'tests/fixtures/hf_configs/fsdp.json' is not a JSON"):
        check_values({"lr_scheduler_kwargs": f"{HF_CONFIGS}/fsdp.json"})

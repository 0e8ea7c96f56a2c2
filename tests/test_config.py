"""SASConfig: defaults, and bad values that fail in __post_init__ naming the field and the allowed values."""

import pytest

from sas_trl import SASConfig


def make(**kwargs):
    return SASConfig(output_dir="unused", use_cpu=True, bf16=False, report_to="none", **kwargs)


def test_defaults_are_the_papers():
    args = make()
    assert args.sas_ratio == 0.3
    assert args.sas_strategy == "both"
    assert args.sas_selection == "confidence"
    assert args.sas_granularity == "step"
    assert args.sas_ranking == "mean"
    assert args.sas_failed_scope == "all"
    assert args.sas_count_mode == "paper"
    assert args.sas_delimiter == "\n\n"
    assert args.sas_think_end == "</think>"
    assert (args.sas_correct_reward_index, args.sas_correct_threshold) == (0, 1.0)
    assert args.sas_min_steps == 1  # the paper's rule: every rollout with a step is touched


def test_every_sas_field_has_help():
    from dataclasses import fields

    sas_fields = [f for f in fields(SASConfig) if f.name.startswith("sas_")]
    assert len(sas_fields) == 12
    assert all(f.metadata.get("help") for f in sas_fields)


@pytest.mark.parametrize(
    ("kwargs", "field", "allowed"),
    [
        ({"sas_strategy": "wrong_only"}, "sas_strategy", "'correct_only'"),
        ({"sas_selection": "entropy"}, "sas_selection", "'random'"),
        ({"sas_granularity": "sentence"}, "sas_granularity", "'token'"),
        ({"sas_ranking": "max"}, "sas_ranking", "'std'"),
        ({"sas_failed_scope": "wrong"}, "sas_failed_scope", "'truncated'"),
        ({"sas_count_mode": "verl"}, "sas_count_mode", "'release'"),
        ({"sas_ratio": 1.3}, "sas_ratio", "[0, 1]"),
        ({"sas_ratio": -0.1}, "sas_ratio", "[0, 1]"),
        ({"sas_delimiter": ""}, "sas_delimiter", "non-empty"),
        ({"sas_correct_reward_index": -1}, "sas_correct_reward_index", ">= 0"),
        ({"sas_correct_threshold": float("nan")}, "sas_correct_threshold", "finite"),
        ({"loss_type": "simpo"}, "loss_type", "'dapo'"),
        ({"sas_min_steps": 0}, "sas_min_steps", ">= 1"),
        (
            {"sas_failed_scope": "truncated", "mask_truncated_completions": True},
            "sas_failed_scope",
            "mask_truncated_completions",
        ),
    ],
)
def test_bad_values_name_the_field(kwargs, field, allowed):
    with pytest.raises(ValueError) as err:
        make(**kwargs)
    assert field in str(err.value) and allowed in str(err.value)


def test_think_end_none_from_the_command_line():
    assert make(sas_think_end="None").sas_think_end is None


def test_parses_from_command_line_flags():
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(SASConfig).parse_args_into_dataclasses(
        ["--output_dir", "x", "--use_cpu", "--bf16", "False", "--sas_ratio", "0.5", "--sas_strategy", "correct_only"]
    )
    assert (args.sas_ratio, args.sas_strategy) == (0.5, "correct_only")


@pytest.mark.parametrize("loss_type", ["grpo", "bnpo", "dr_grpo", "dapo", "luspo", "sapo"])
def test_sequence_level_importance_sampling_is_refused_where_it_spreads_the_gradient(loss_type):
    with pytest.raises(ValueError) as err:
        make(loss_type=loss_type, importance_sampling_level="sequence")
    message = str(err.value)
    assert "importance_sampling_level='sequence'" in message and f"loss_type={loss_type!r}" in message
    assert "'cispo'" in message and "importance_sampling_level='token'" in message  # what works instead


@pytest.mark.parametrize("loss_type", ["cispo", "vespo"])
def test_sequence_level_importance_sampling_is_allowed_where_weights_are_detached(loss_type):
    assert make(loss_type=loss_type, importance_sampling_level="sequence").sas_enabled


@pytest.mark.parametrize("off", [{"sas_ratio": 0.0}, {"sas_strategy": "none"}], ids=["ratio0", "strategy-none"])
def test_sequence_level_importance_sampling_is_allowed_with_sas_off(off):
    args = make(loss_type="grpo", importance_sampling_level="sequence", **off)
    assert not args.sas_enabled


def test_release_counting_at_ratio_zero_still_zeroes_so_sequence_level_is_refused():
    # ceil((N - 1) + 0) = N - 1 steps of a correct rollout: SAS is on, so the refusal applies.
    assert make(sas_ratio=0.0, sas_count_mode="release").sas_enabled
    with pytest.raises(ValueError, match="importance_sampling_level"):
        make(sas_ratio=0.0, sas_count_mode="release", importance_sampling_level="sequence")


def test_an_empty_think_end_is_refused_and_none_is_explicit():
    settings = {"output_dir": "x", "use_cpu": True, "bf16": False, "report_to": "none"}
    with pytest.raises(ValueError, match="sas_think_end='' is not valid.*'none'"):
        SASConfig(sas_think_end="", **settings)
    assert SASConfig(sas_think_end="none", **settings).sas_think_end is None

"""What `sas-trl train` prints: no library deprecation noise through the progress bar, and a last line that says
how the run did and what to run next."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from cli_helpers import QUICK, sas_trl

from sas_trl.config import SASConfig, quiet_trl_deprecations
from sas_trl.training.arguments import RunArguments
from sas_trl.training.run import finish_summary

LOG = [
    {"reward": 0.5, "rewards/accuracy/mean": 0.5, "step": 10},
    {
        "reward": 0.75,
        "rewards/accuracy/mean": 0.625,
        "completions/mean_length": 18.94,
        "completions/clipped_ratio": 0.0125,
        "step": 20,
    },
    {"train_runtime": 12.0, "step": 20},  # the trainer's closing entry: no rollouts
]


def test_the_config_warns_nothing_about_checkpointing_and_keeps_its_value(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        on = SASConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, bf16=False)
        off = SASConfig(
            output_dir=str(tmp_path), report_to="none", use_cpu=True, bf16=False, gradient_checkpointing=False
        )
    assert not [w for w in caught if "checkpointing" in str(w.message)], [str(w.message) for w in caught]
    # TRL's default, kept; transformers before 5.18 has no `activation_checkpointing` (the GPU extras' 5.17)
    assert (getattr(on, "activation_checkpointing", True), on.gradient_checkpointing) == (True, True)
    assert (getattr(off, "activation_checkpointing", False), off.gradient_checkpointing) == (False, False)


def test_only_the_named_deprecations_are_silenced(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("always")
        quiet_trl_deprecations()
        model.gradient_checkpointing_enable()  # what TRL 1.16 calls around each generation
        assert model.is_gradient_checkpointing
        model.gradient_checkpointing_disable()
        # The same words from elsewhere, and another deprecation, still show.
        warnings.warn("`gradient_checkpointing_enable` is deprecated", FutureWarning, stacklevel=1)
        warnings.warn("`other_method` is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == [
        "`gradient_checkpointing_enable` is deprecated",
        "`other_method` is deprecated",
    ]


def summary(log=tuple(LOG), run_args=None, repo=None) -> str:
    run_args = run_args or RunArguments(dataset_name="builtin:addition")
    args = SimpleNamespace(max_completion_length=32)
    return finish_summary(list(log), "accuracy", Path("out/run"), run_args, args, repo)


def test_the_last_lines_give_the_final_numbers_and_the_next_commands():
    numbers, next_line = summary().splitlines()
    assert numbers == (
        "sas-trl: at step 20 (last logged, its training rollouts): reward 0.750, accuracy 62.5%, 18.9 tokens, "
        "1% truncated"
    )
    assert next_line == (
        "sas-trl: next, evaluate it: sas-trl eval --model out/run --benchmarks addition --addition_terms 2,8 "
        "--max_tokens 32; upload it: sas-trl push --output_dir out/run --hub_model_id USER/NAME"
    )
    other = summary(run_args=RunArguments(dataset_name="my/data"), repo="me/model", log=[])
    assert other.splitlines() == [
        "sas-trl: no training step was logged (logging_steps beyond max_steps?)",
        "sas-trl: next, evaluate it: sas-trl eval --model out/run",  # pushed already: no push command
    ]


@pytest.mark.slow
def test_a_short_tiny_run_prints_no_future_warning_and_ends_with_what_to_do_next(tmp_path):
    out = tmp_path / "run"
    flags = [*QUICK, "--max_steps", "2", "--save_steps", "1", "--disable_tqdm", "false"]
    result = sas_trl("train", "--recipe", "recipes/tiny_cpu.yaml", *flags, "--output_dir", str(out), timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Warning" not in result.stderr and "deprecated" not in result.stderr, result.stderr
    last = result.stdout.strip().splitlines()[-2:]
    assert last[0].startswith("sas-trl: at step 2 (last logged, its training rollouts): reward ")
    assert last[1].startswith(f"sas-trl: next, evaluate it: sas-trl eval --model {out} --benchmarks addition")
    assert (out / "checkpoint-1").is_dir() and (out / "checkpoint-2").is_dir()  # saves happened under the check

"""Settings transformers refuses only when the trainer is built (after the warm-up, or minutes of model
loading): refused by preflight while `sas-trl train` parses, in one line with the fix, before any model work."""

from __future__ import annotations

import json

import pytest
from cli_helpers import ROOT, trip_model_work

from sas_trl.cli import main
from sas_trl.training import preflight

TINY = "recipes/tiny_cpu.yaml"


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.fixture(autouse=True)
def quiet_transformers():
    """transformers' logged deprecation notes (fsdp as text) go to a stream an earlier test's capture closed."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    yield
    logging.set_verbosity(level)


def machine(monkeypatch, cuda: int, missing: tuple[str, ...] = (), present: tuple[str, ...] = ()):
    monkeypatch.setattr(preflight, "cuda_devices", lambda: cuda)
    monkeypatch.setattr(preflight, "hub_dataset_unreachable", lambda name: None)
    real = preflight.installed
    monkeypatch.setattr(
        preflight, "installed", lambda module: module not in missing and (module in present or real(module))
    )


def refused(capsys, monkeypatch, tmp_path, flags: list[str]) -> str:
    trip_model_work(monkeypatch, extra=("load_train_dataset",))
    out = tmp_path / "out"
    assert main(["train", "--recipe", TINY, *flags, "--output_dir", str(out)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "Warning" not in line and "warnings.warn(" not in line]
    assert len(lines) == 1 and lines[0].startswith("sas-trl train: error: "), err
    assert "Traceback" not in err and not out.exists()
    return lines[0]


FLASH = json.dumps({"attn_implementation": "flash_attention_2"})
# case -> (CUDA devices, packages missing, flags, what the line must say)
CASES = {
    "FSDP in one process": (0, (), ["--fsdp", "full_shard"], ["fsdp 'full_shard'", "starts one", "--num_processes"]),
    "FSDP with auto_wrap, one process on a GPU": (
        1,
        (),
        ["--use_cpu", "false", "--fsdp", "full_shard auto_wrap"],
        ["fsdp 'full_shard auto_wrap'", "starts one"],
    ),
    "a bitsandbytes optimizer on a CPU": (
        0,
        (),
        ["--optim", "paged_adamw_8bit"],
        ["optim paged_adamw_8bit", "--optim adamw_torch"],
    ),
    "a bitsandbytes optimizer, package missing, on a GPU": (
        1,
        ("bitsandbytes",),
        ["--use_cpu", "false", "--optim", "adamw_bnb_8bit"],
        ["optim adamw_bnb_8bit needs the bitsandbytes package", "pip install bitsandbytes"],
    ),
    "lion 8-bit on a CPU": (0, (), ["--optim", "lion_8bit"], ["optim lion_8bit (bitsandbytes)"]),
    "GaLore without its package": (0, ("galore_torch",), ["--optim", "galore_adamw"], ["pip install galore-torch"]),
    "schedule-free without its package": (
        0,
        ("schedulefree",),
        ["--optim", "schedule_free_adamw"],
        ["optim schedule_free_adamw needs the schedulefree package"],
    ),
    "torchao 8-bit AdamW without torchao": (0, ("torchao",), ["--optim", "adamw_torch_8bit"], ["torchao"]),
    "4-bit loading without LoRA, on a GPU": (
        1,
        (),
        ["--use_cpu", "false", "--load_in_4bit", "true"],
        ["load_in_4bit: true loads a quantized model", "--use_peft true"],
    ),
    "8-bit loading without LoRA, on a GPU": (
        1,
        (),
        ["--use_cpu", "false", "--load_in_8bit", "true"],
        ["load_in_8bit: true loads a quantized model"],
    ),
    "4-bit loading on a CPU": (0, (), ["--load_in_4bit", "true", "--use_peft", "true"], ["(load_in_4bit need one)"]),
    "flash-attention through model_init_kwargs on a CPU": (
        0,
        (),
        ["--model_init_kwargs", FLASH],
        ["model_init_kwargs.attn_implementation flash_attention_2", "--attn_implementation sdpa"],
    ),
    "flash-attention through model_init_kwargs, package missing, on a GPU": (
        1,
        ("flash_attn",),
        ["--use_cpu", "false", "--model_init_kwargs", FLASH],
        ["model_init_kwargs.attn_implementation flash_attention_2 needs the flash_attn package"],
    ),
    "a CUDA device_map on a CPU": (
        0,
        (),
        ["--model_init_kwargs", json.dumps({"device_map": "cuda:0"})],
        ["model_init_kwargs.device_map 'cuda:0'"],
    ),
    "ddp_backend gloo in the starting process": (
        0,
        (),
        ["--ddp_backend", "gloo"],
        ["ddp_backend='gloo': transformers starts that backend's process group", "leave ddp_backend unset"],
    ),
    "ddp_backend nccl, two processes on a CPU": (
        0,
        (),
        ["--ddp_backend", "nccl", "--num_processes", "2"],
        ["ddp_backend='nccl'", "leave ddp_backend unset"],
    ),
    "Liger kernels on a CPU": (0, (), ["--use_liger_kernel", "true"], ["use_liger_kernel (Triton kernels)"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_setting_refused_only_by_the_trainer_is_refused_before_model_work(tmp_path, capsys, monkeypatch, case):
    cuda, missing, flags, expected = CASES[case]
    machine(monkeypatch, cuda, missing=missing)
    line = refused(capsys, monkeypatch, tmp_path, flags)
    for text in expected:
        assert text in line, line


def test_several_late_settings_are_named_together(tmp_path, capsys, monkeypatch):
    machine(monkeypatch, 1, missing=("bitsandbytes",))
    line = refused(
        capsys, monkeypatch, tmp_path, ["--use_cpu", "false", "--fsdp", "full_shard", "--optim", "paged_adamw_8bit"]
    )
    assert line.startswith("sas-trl train: error: 2 problems") and "fsdp" in line and "paged_adamw_8bit" in line


@pytest.mark.parametrize(
    "values",
    [
        {"fsdp": "full_shard", "num_processes": 2},
        {"fsdp": "", "num_processes": 1},
        {"load_in_4bit": True, "use_peft": True},
        {"optim": "adamw_torch"},
        {"model_init_kwargs": {"attn_implementation": "sdpa"}},
    ],
)
def test_settings_that_can_work_are_not_refused(values):
    assert preflight.settings_problems(values) == []

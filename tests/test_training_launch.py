"""sas_trl.training.launch: the relaunch command for GPUs and CPUs."""

from __future__ import annotations

import pytest
from cli_helpers import ROOT

from sas_trl.errors import RecipeError
from sas_trl.training.arguments import RunArguments
from sas_trl.training.launch import LAUNCHED_ENV, launch_command


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name paths relative to the repository


def test_launch_commands(monkeypatch):
    monkeypatch.delenv(LAUNCHED_ENV, raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    argv = ["--recipe", "r.yaml"]
    assert launch_command(RunArguments(), argv, cuda=False) is None  # one process: run in place
    cpu = launch_command(RunArguments(num_processes=2), argv, cuda=False)
    assert cpu[1:7] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m"]
    assert cpu[-4:] == ["sas_trl.cli", "train", *argv]
    gpu = launch_command(RunArguments(accelerate_config="recipes/accelerate/zero2.yaml"), argv, cuda=True)
    assert gpu[1:5] == ["-m", "accelerate.commands.launch", "--config_file", "recipes/accelerate/zero2.yaml"]
    with pytest.raises(RecipeError, match="DEEPSPEED, which needs GPUs"):
        launch_command(RunArguments(accelerate_config="recipes/accelerate/zero2.yaml"), argv, cuda=False)
    monkeypatch.setenv(LAUNCHED_ENV, "1")
    assert launch_command(RunArguments(num_processes=2), argv, cuda=False) is None  # never relaunch twice


def test_the_printed_launch_command_hides_credentials_the_launched_one_keeps_them(tmp_path, monkeypatch, capsys):
    import sas_trl.cli.train
    from sas_trl.cli import main

    monkeypatch.delenv(LAUNCHED_ENV, raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("MY_SERVICE_API_KEY", "sk-launch-secret-77")
    launched = []
    monkeypatch.setattr(sas_trl.cli.train.subprocess, "call", lambda command, env: launched.append(command) or 0)
    token = "hf_launchtoken12345"
    argv = ["train", "--recipe", "recipes/tiny_cpu.yaml", "--num_processes", "2", "--output_dir", str(tmp_path)]
    assert main([*argv, "--hub_token", token, "--run_name", "r-sk-launch-secret-77"]) == 0
    out = capsys.readouterr().out
    assert "sas-trl: launching " in out and "--hub_token <redacted>" in out and "--run_name r-<redacted>" in out
    assert token not in out and "sk-launch-secret-77" not in out
    assert launched[0][-4:] == ["--hub_token", token, "--run_name", "r-sk-launch-secret-77"]  # the processes need it

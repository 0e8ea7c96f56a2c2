"""Damaged or incomplete model folders: one line naming the file, before any model work, in eval, inspect,
analyze-truncation and training (instead of transformers' traceback halfway through loading)."""

from __future__ import annotations

import json
import shutil

import pytest
from cli_helpers import ROOT, trip_model_work

from sas_trl.cli import main
from sas_trl.evaluation.model_files import model_folder_problem


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def _cut(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _config(folder, edit):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


def _sharded(folder, missing: bool):
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    shards = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": shards}) if missing else "{")


def _torch_cut_short(folder):
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"PK\x03\x04 an archive cut short")


# damage -> what the one line must name
DAMAGE = {
    "weights cut short": (lambda f: _cut(f / "model.safetensors"), "model.safetensors is cut short"),
    "weights cut to 4 bytes": (
        lambda f: (f / "model.safetensors").write_bytes(b"\x01\x02\x03\x04"),
        "model.safetensors is cut short",
    ),
    "weights header garbage": (
        lambda f: (f / "model.safetensors").write_bytes(b"\x10" + b"\0" * 7 + b"not json" * 2),
        "model.safetensors is damaged",
    ),
    "no weights file": (lambda f: (f / "model.safetensors").unlink(), "holds no model weights"),
    "torch weights cut short": (_torch_cut_short, "pytorch_model.bin is cut short"),
    "a shard missing": (lambda f: _sharded(f, missing=True), "model-00002-of-00002.safetensors is missing"),
    "a weights index that is not JSON": (lambda f: _sharded(f, missing=False), "is not a valid weights index"),
    "no config.json": (lambda f: (f / "config.json").unlink(), "holds no saved model (no config.json)"),
    "config.json without model_type": (lambda f: _config(f, lambda c: c.pop("model_type")), "has no model_type"),
    "config.json with a non-text model_type": (
        lambda f: _config(f, lambda c: c.update(model_type=3)),
        "has no model_type",
    ),
    "config.json not JSON": (lambda f: (f / "config.json").write_text('{"model_type": '), "is not valid JSON"),
    "config.json a list": (lambda f: (f / "config.json").write_text("[]"), "has no model_type"),
}


@pytest.fixture
def damaged(tmp_path, tiny_model_dir, request):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    assert model_folder_problem(folder) is None
    apply, named = DAMAGE[request.param]
    apply(folder)
    return folder, named


def no_model_load(monkeypatch):
    from sas_trl.evaluation import backends

    def tripwire(*args, **kwargs):
        raise AssertionError("a model was loaded before the user error")

    monkeypatch.setattr(backends, "make_backend", tripwire)
    monkeypatch.setattr("sas_trl.evaluation.sampling.make_backend", tripwire)


def one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "Warning" not in line and "warnings.warn(" not in line]
    assert len(lines) == 1 and lines[0].startswith(f"sas-trl {command}: error: "), err
    return lines[0]


@pytest.mark.parametrize("damaged", list(DAMAGE), indirect=True)
@pytest.mark.parametrize("command", ["eval", "inspect", "analyze-truncation"])
def test_eval_inspect_and_truncation_name_the_damaged_file(damaged, tmp_path, capsys, monkeypatch, command):
    folder, named = damaged
    no_model_load(monkeypatch)
    what = ["--prompt", "Add 1, 2."] if command == "inspect" else ["--benchmarks", "addition", "--limit", "2"]
    out = tmp_path / "out"
    assert main([command, "--model", str(folder), *what, "--output_dir", str(out)]) == 2
    err = one_line(capsys, command)
    assert f"--model {str(folder)!r}" in err and named in err
    assert not out.exists() or not any(out.rglob("*.jsonl"))  # no samples file started


@pytest.mark.parametrize("damaged", list(DAMAGE), indirect=True)
def test_training_names_the_damaged_model_folder_before_model_work(damaged, tmp_path, capsys, monkeypatch):
    folder, named = damaged
    trip_model_work(monkeypatch, extra=("load_train_dataset",))
    out = tmp_path / "out"
    code = main(
        ["train", "--recipe", "recipes/tiny_cpu.yaml", "--model_name_or_path", str(folder)]
        + ["--output_dir", str(out)]
    )
    assert code == 2
    err = one_line(capsys, "train")
    assert "model_name_or_path:" in err and named in err and not out.exists()


def test_a_lora_adapter_folder_is_accepted_when_whole(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    assert "holds no model weights" in model_folder_problem(tmp_path)
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "adapter_model.safetensors"))
    assert model_folder_problem(tmp_path) is None

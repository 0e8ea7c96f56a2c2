"""Checkpoints that pass the file checks but cannot be used: caught by the checkpoint check, with a fallback to
the newest intact checkpoint that says so (a damaged config.json, a trainer state this transformers cannot read,
NaN weights)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from sas_trl.training.checkpoints import checkpoint_problem
from sas_trl.training.output_dir import find_resume


def write_checkpoint(folder, step: int):
    """A whole full-model checkpoint: config, weights, optimizer, scheduler, trainer state."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    save_file({"w": torch.zeros(4, 3), "steps": torch.arange(3)}, str(folder / "model.safetensors"))
    torch.save({"state": {}}, folder / "optimizer.pt")
    torch.save({"last_epoch": step}, folder / "scheduler.pt")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": [{"loss": 1.0}]}))
    return str(folder)


def _state(folder, text: bytes):
    (folder / "trainer_state.json").write_bytes(text)


def _weights(folder, value: float):
    save_file({"w": torch.full((4, 3), value), "steps": torch.arange(3)}, str(folder / "model.safetensors"))


# damage -> what the message must name
DAMAGE = {
    "config.json not JSON": (lambda f: (f / "config.json").write_text("{"), "config.json is not valid JSON"),
    "config.json empty": (lambda f: (f / "config.json").write_text(""), "config.json is not valid JSON"),
    "config.json without model_type": (lambda f: (f / "config.json").write_text("{}"), "has no model_type"),
    "config.json a string": (lambda f: (f / "config.json").write_text('"llama"'), "has no model_type"),
    "trainer state: a field of a newer transformers": (
        lambda f: _state(f, b'{"global_step": 4, "a_field_of_transformers_9": 1}'),
        "cannot be read by this transformers version",
    ),
    "trainer state: a byte that is not UTF-8": (
        lambda f: _state(f, b'{"global_step": 4, "best_model_checkpoint": "run\x85"}'),
        "trainer_state.json is not valid JSON",
    ),
    "trainer state: a raw control character": (
        lambda f: _state(f, b'{"global_step": 4, "best_model_checkpoint": "a\x01b"}'),
        "trainer_state.json is not valid JSON",
    ),
    "trainer state: a NUL byte after the object": (
        lambda f: _state(f, b'{"global_step": 4}\x00'),
        "trainer_state.json is not valid JSON",
    ),
    "NaN weights": (lambda f: _weights(f, float("nan")), "holds NaN or infinite values (tensor 'w')"),
    "infinite weights": (lambda f: _weights(f, float("inf")), "holds NaN or infinite values (tensor 'w')"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_an_unusable_checkpoint_falls_back_to_the_intact_one_saying_so(tmp_path, damage):
    apply, named = DAMAGE[damage]
    intact = write_checkpoint(tmp_path / "checkpoint-2", 2)
    write_checkpoint(tmp_path / "checkpoint-4", 4)
    assert checkpoint_problem(tmp_path / "checkpoint-4") is None
    apply(tmp_path / "checkpoint-4")
    assert named in checkpoint_problem(tmp_path / "checkpoint-4")
    resume, notes = find_resume("last", tmp_path)
    assert resume == intact and len(notes) == 1 and notes[0].startswith("skipped checkpoint-4 (") and named in notes[0]
    assert f"resuming from {intact}, the newest intact checkpoint" in notes[0]


def test_a_trainer_state_field_of_a_newer_transformers_is_what_transformers_refuses(tmp_path):
    """The check uses transformers' own reader: what it refuses here is what the resume would have failed on."""
    from transformers import TrainerState

    write_checkpoint(tmp_path / "checkpoint-1", 1)
    DAMAGE["trainer state: a field of a newer transformers"][0](tmp_path / "checkpoint-1")
    with pytest.raises(TypeError):
        TrainerState.load_from_json(str(tmp_path / "checkpoint-1" / "trainer_state.json"))

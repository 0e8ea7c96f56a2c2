"""A full disk during the warm-up save, the run's copy of it, a checkpoint save, the final save or a samples
write: one line saying what was saved, what was not and how much space is needed; nothing half-written left
for a later run to trust. ENOSPC is simulated by making the write (or save) raise."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from types import SimpleNamespace

import pytest
import torch
from cli_helpers import ROOT
from safetensors.torch import save_file

from sas_trl.errors import UserError, is_disk_full
from sas_trl.evaluation.store import SampleStore
from sas_trl.training import run as run_module
from sas_trl.training import warmup
from sas_trl.training.recipes import parse


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


# How a full disk reaches us: OSError from Python, the Rust error text of safetensors, torch's zip writer.
FULL = {
    "ENOSPC": lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
    "EDQUOT (quota)": lambda: OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)),
    "safetensors' StorageFull": lambda: Exception(
        'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
    ),
    "raised from an ENOSPC": lambda: _chained(),
}


def _chained():
    try:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError as err:
        try:
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed") from err
        except RuntimeError as outer:
            return outer


def test_what_counts_as_a_full_disk():
    for make in FULL.values():
        assert is_disk_full(make())
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(ValueError("a bad value"))


class OneProcess:
    is_main_process = True
    main_process_first = staticmethod(contextlib.nullcontext)


def prepare(out):
    run_args, args, model_args, _ = parse(
        ["--recipe", "recipes/tiny_cpu.yaml", "--sft_warmup_steps", "0"] + ["--output_dir", str(out)]
    )
    return warmup.prepare_model(run_args, model_args, args, OneProcess())


@pytest.mark.parametrize("full", list(FULL))
def test_a_full_disk_during_the_warm_up_save_leaves_no_cache_entry(tmp_path, monkeypatch, capsys, full):
    from transformers import PreTrainedModel

    monkeypatch.setenv(warmup.CACHE_ENV, str(tmp_path / "cache"))
    real = PreTrainedModel.save_pretrained

    def save_half(self, path, *args, **kwargs):
        os.makedirs(path, exist_ok=True)
        (tmp_path / "seen").write_text(str(path))
        with open(os.path.join(path, "model.safetensors"), "wb") as f:
            f.write(b"\0" * 100)  # half a file
        raise FULL[full]()

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", save_half)
    with pytest.raises(UserError) as caught:
        prepare(tmp_path / "run")
    message = str(caught.value)
    assert "\n" not in message and f"the disk of {tmp_path / 'cache' / 'warmup'} is full" in message
    assert "saved: nothing (the partial model was removed" in message and "not saved: the warmed-up" in message
    assert "is needed" in message and "free now" in message
    assert [p.name for p in (tmp_path / "cache" / "warmup").iterdir() if not p.name.endswith(".lock")] == []
    assert not (tmp_path / "run" / "base_model").exists()

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", real)  # space freed: built anew, nothing stale reused
    path = prepare(tmp_path / "run")
    assert "building the warmed-up" in capsys.readouterr().out
    assert warmup.cached_warmup_changes(tmp_path / "run" / "base_model", {}) is None and path.endswith("base_model")


def test_a_full_disk_copying_into_the_run_keeps_the_cache_and_leaves_no_partial_copy(tmp_path, monkeypatch):
    monkeypatch.setenv(warmup.CACHE_ENV, str(tmp_path / "cache"))
    prepare(tmp_path / "first")
    real = shutil.copytree

    def copy_half(source, target, *args, **kwargs):
        os.makedirs(target)
        shutil.copy(os.path.join(source, "config.json"), target)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(shutil, "copytree", copy_half)
    with pytest.raises(UserError) as caught:
        prepare(tmp_path / "second")
    message = str(caught.value)
    assert (
        f"the disk of {tmp_path / 'second'} is full" in message
        and "saved: the warmed-up model in the shared" in message
    )
    assert f"not saved: the run's copy {tmp_path / 'second' / 'base_model'}" in message
    assert "MB is needed" in message or "KB is needed" in message
    assert not (tmp_path / "second").exists() or list((tmp_path / "second").iterdir()) == []
    monkeypatch.setattr(shutil, "copytree", real)
    prepare(tmp_path / "second")  # the cache was untouched: reused
    assert warmup.cached_warmup_changes(tmp_path / "second" / "base_model", {}) is None


def write_checkpoint(folder, step, whole=True):
    folder.mkdir(parents=True)
    save_file({"w": torch.zeros(64, 64)}, str(folder / "model.safetensors"))
    torch.save({"state": {}}, folder / "optimizer.pt")
    if whole:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))


class FullDiskTrainer:
    """What `run.train` needs of a trainer: `train` fails as a checkpoint save on a full disk would."""

    def __init__(self, out, full, step):
        self.out, self.full = out, full
        self.state = SimpleNamespace(global_step=step)
        self.model = torch.nn.Linear(100, 100)

    def train(self, resume_from_checkpoint=None):
        write_checkpoint(self.out / f"checkpoint-{self.state.global_step}", self.state.global_step, whole=False)
        raise FULL[self.full]()


@pytest.mark.parametrize("full", list(FULL))
@pytest.mark.parametrize("earlier", [True, False])
def test_a_full_disk_during_a_checkpoint_save(tmp_path, full, earlier):
    out = tmp_path / "run"
    out.mkdir()
    if earlier:
        write_checkpoint(out / "checkpoint-2", 2)
    args = SimpleNamespace(output_dir=str(out), report_to=[])
    closed = []
    reward = SimpleNamespace(close=lambda: closed.append(True))
    with pytest.raises(UserError) as caught:
        run_module.train(FullDiskTrainer(out, full, 4), None, [reward], args)
    message = str(caught.value)
    assert "\n" not in message and f"the disk of {out} is full" in message
    assert "not saved: the checkpoint of step 4; the partial checkpoint-4 removed" in message
    assert not (out / "checkpoint-4").exists() and closed == [True]
    if earlier:
        assert "saved: checkpoint-2, intact (--resume_from_checkpoint last continues from it)" in message
        size = sum(p.stat().st_size for p in (out / "checkpoint-2").iterdir())
        assert f"about {size / 1000:.1f} KB is needed" in message
    else:
        assert "saved: no checkpoint" in message and "about 121.2 KB is needed" in message  # 3 x 10,100 floats


@pytest.mark.parametrize("full", ["ENOSPC", "EDQUOT (quota)"])
def test_a_full_disk_during_a_samples_write_keeps_whole_samples_only(tmp_path, monkeypatch, full):
    path = tmp_path / "out" / "samples.jsonl"
    good = {"benchmark": "b", "id": "0", "sample": 0, "correct": 1.0, "tokens": 3, "finish": "stop", "text": "3"}
    store = SampleStore(path, {"model": "m"})
    store.append([good])
    before = path.read_bytes()

    def fsync(fd):
        raise FULL[full]()

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(UserError) as caught:
        store.append([{**good, "sample": 1}, {**good, "sample": 2}])
    message = str(caught.value)
    assert f"saved: {path} with its 1 earlier samples (the same command resumes from them)" in message
    assert "not saved: the last 2 sample(s)" in message and "B is needed" in message
    assert path.read_bytes() == before  # no half line for a later run to trust or drop
    monkeypatch.undo()
    assert set(SampleStore(path, {"model": "m"}).records) == {("b", "0", 0)}

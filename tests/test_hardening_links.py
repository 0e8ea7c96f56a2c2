"""`--overwrite_output_dir` meeting symbolic links: no traceback, and nothing outside the output folder removed
through a link (a linked checkpoint, a link to a file, a dangling link, links inside a checkpoint folder)."""

from __future__ import annotations

import os
import shutil

import pytest

from sas_trl.errors import RecipeError
from sas_trl.training.output_dir import RUN_INFO, remove_previous_run


def outside_things(root):
    """A folder and a file outside the output folder, with contents to check afterwards."""
    folder = root / "outside" / "kept_folder"
    folder.mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"the user's weights")
    file = root / "outside" / "kept_file.txt"
    file.write_text("the user's file")
    return folder, file


def intact(folder, file) -> bool:
    return (folder / "weights.bin").read_bytes() == b"the user's weights" and file.read_text() == "the user's file"


# what the output folder holds -> made by a function of (out, outside folder, outside file)
LAYOUTS = {
    "a checkpoint that links to a folder outside": lambda out, d, f: (out / "checkpoint-2").symlink_to(d),
    "a checkpoint that links to a file outside": lambda out, d, f: (out / "checkpoint-2").symlink_to(f),
    "a dangling checkpoint link": lambda out, d, f: (out / "checkpoint-2").symlink_to(out / "gone"),
    "run_info.json linking to a file outside": lambda out, d, f: (out / RUN_INFO).symlink_to(f),
    "run_info.json dangling": lambda out, d, f: (out / RUN_INFO).symlink_to(out / "gone.json"),
    "links inside a real checkpoint": lambda out, d, f: (
        (out / "checkpoint-2").mkdir(),
        (out / "checkpoint-2" / "model.safetensors").symlink_to(f),
        (out / "checkpoint-2" / "shards").symlink_to(d),
    ),
    "a link to the output folder's parent": lambda out, d, f: (out / "checkpoint-2").symlink_to(out.parent),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_overwriting_removes_links_themselves_never_their_targets(tmp_path, capsys, layout):
    folder, file = outside_things(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint-1").mkdir()
    (out / "checkpoint-1" / "trainer_state.json").write_text("{}")
    (out / "keep_me.txt").write_text("not a run's file")
    LAYOUTS[layout](out, folder, file)
    remove_previous_run(out)
    assert intact(folder, file)
    assert sorted(p.name for p in out.iterdir()) == ["keep_me.txt"]
    assert (tmp_path / "run").is_dir() and (tmp_path / "outside").is_dir()
    printed = capsys.readouterr().out
    assert "--overwrite_output_dir: removed the earlier run's checkpoint-1" in printed
    if layout.startswith(("a checkpoint that links", "a dangling", "run_info.json", "a link to")):
        assert "(a symbolic link: the link alone, its target kept)" in printed


def test_a_run_folder_that_cannot_be_removed_is_one_error_naming_it(tmp_path, monkeypatch):
    out = tmp_path / "run"
    for step in (1, 2):
        (out / f"checkpoint-{step}").mkdir(parents=True)
    real = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        if str(path).endswith("checkpoint-2"):
            raise PermissionError(13, os.strerror(13), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree)
    with pytest.raises(RecipeError) as caught:
        remove_previous_run(out)
    message = str(caught.value)
    assert f"cannot remove {out / 'checkpoint-2'} (Permission denied) (removed so far: checkpoint-1)" in message
    assert "\n" not in message

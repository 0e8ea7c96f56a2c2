"""sas_trl.output_files and every command that writes into an output folder: nothing is written through a
symbolic link out of it, and a file is changed only once it is accepted. Each case checks that the files outside
are byte for byte unchanged and that the message says what was done instead."""

from __future__ import annotations

import json
import os
import stat

import pytest
import yaml
from cli_helpers import ROOT, trip_model_work

from sas_trl.cli import main
from sas_trl.errors import UserError
from sas_trl.output_files import check_folder, for_append, inside, save_figure, write_text

QUICK = ["--n", "2", "--no_progress", "--num_threads", "1", "--limit", "1"]
COMMANDS = {  # command -> its flags, the samples file and the files it writes whole
    "eval": (
        ["--benchmarks", "addition", "--max_tokens", "8"],
        "eval_samples.jsonl",
        ["eval_results.json", "eval_results.md"],
    ),
    "analyze-truncation": (
        ["--benchmarks", "addition", "--long_tokens", "8", "--short_tokens", "4"],
        "truncation_samples.jsonl",
        ["truncation.json", "truncation.png"],
    ),
    "inspect": (
        ["--prompt", "Add 1, 2.", "--max_tokens", "8"],
        "inspect_samples.jsonl",
        ["inspect.html", "inspect.json", "inspect.png"],
    ),
}


@pytest.fixture
def outside(tmp_path):
    """A folder outside the output folder, holding files a link may point at; `unchanged()` checks them."""
    folder = tmp_path / "outside"
    folder.mkdir()
    saved = {}

    class Outside:
        path = folder

        def file(self, name: str, content: bytes = b"the user's own file\n"):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(content)
            saved[name] = content
            return folder / name

        def unchanged(self):
            files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
            assert files == sorted(saved), "something was created outside"
            for name, content in saved.items():
                assert (folder / name).read_bytes() == content, name

    return Outside()


# --------------------------------------------------------------------------------------------------
# The helper
# --------------------------------------------------------------------------------------------------


def test_write_text_replaces_a_link_by_the_file_and_says_so(tmp_path, outside, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.json").symlink_to(outside.file("a.json"))
    (out / "dangling.json").symlink_to(outside.path / "never.json")  # its target must not be created
    (out / "plain.json").write_text("old")
    for name in ("a.json", "dangling.json", "plain.json", "new/deeper/b.json"):
        assert write_text(out, name, "new\n") == out / name
        assert not (out / name).is_symlink() and (out / name).read_text() == "new\n"
    outside.unchanged()
    said = capsys.readouterr().out
    assert f"sas-trl: {out / 'a.json'} was a symbolic link (to {outside.path / 'a.json'}); wrote the file" in said
    assert "the link's target is unchanged" in said and said.count("was a symbolic link") == 2
    assert [p.name for p in out.iterdir() if p.name.endswith(".partial")] == []  # no temporary file left
    mode = stat.S_IMODE((out / "plain.json").stat().st_mode)
    assert mode == 0o666 & ~_umask()  # as open() would create it, not mkstemp's 0600


def test_a_linked_folder_below_the_output_folder_is_refused_before_anything_is_written(tmp_path, outside):
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    outside.file("keep.txt")
    (out / "runs" / "a").symlink_to(outside.path, target_is_directory=True)
    for call in (
        lambda: write_text(out, "runs/a/x.json", "x"),
        lambda: write_text(out, "runs/a/deeper/x.json", "x"),
        lambda: inside(out, "runs/a/x.json"),
        lambda: for_append(out, "runs/a/log.txt"),
        lambda: check_folder(out, out / "runs" / "a" / "eval"),
    ):
        with pytest.raises(UserError) as refused:
            call()
        assert f"{out / 'runs' / 'a'} is a symbolic link (to {outside.path})" in str(refused.value)
        assert f"sas-trl writes only inside the output folder {out}" in str(refused.value)
    outside.unchanged()
    # the output folder itself is the user's to name, and may be a link (to a larger disk, say)
    linked = tmp_path / "linked_out"
    linked.symlink_to(out, target_is_directory=True)
    assert write_text(linked, "runs/b/x.json", "x").read_text() == "x"
    check_folder(linked, linked / "runs" / "b")


def test_for_append_refuses_a_link_and_names_what_the_file_is_for(tmp_path, outside):
    (tmp_path / "train.log").symlink_to(outside.file("train.log"))
    with pytest.raises(UserError, match=r"train.log is a symbolic link .*: the log is appended to in place"):
        for_append(tmp_path, "train.log", "the log")
    assert for_append(tmp_path, "eval.log") == tmp_path / "eval.log"
    outside.unchanged()


def test_save_figure_writes_through_the_helper(tmp_path, outside):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (tmp_path / "plot.png").symlink_to(outside.file("plot.png"))
    fig = plt.figure(figsize=(1, 1))
    save_figure(fig, tmp_path / "plot.png", dpi=20)
    plt.close(fig)
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not (
        tmp_path / "plot.png"
    ).is_symlink()
    outside.unchanged()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# --------------------------------------------------------------------------------------------------
# eval, analyze-truncation, inspect
# --------------------------------------------------------------------------------------------------


def _command(command, model, out):
    flags, _, _ = COMMANDS[command]
    return [command, "--model", str(model), *flags, *QUICK, "--output_dir", str(out)]


def _error(capsys, command) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "Warning" not in line and "warnings.warn(" not in line]
    assert len(lines) == 1 and lines[0].startswith(f"sas-trl {command}: error: "), err
    return lines[0]


SAMPLES_CASES = {
    "foreign, no newline": b"my notes: not samples",
    "foreign, a cut last line": b"line one\nline two, cut",
    "foreign jsonl": b'{"a": 1}\n{"b": 2}\n',
    "another run's header, a cut last line": b'{"header": {"model": "other"}}\n{"benchmark": "addi',
    "empty": b"",
}


@pytest.mark.parametrize("case", list(SAMPLES_CASES))
@pytest.mark.parametrize("linked", [False, True], ids=["in the folder", "linked from outside"])
def test_eval_never_changes_a_samples_file_it_refuses(tiny_model_dir, tmp_path, capsys, outside, case, linked):
    out = tmp_path / "out"
    out.mkdir()
    content = SAMPLES_CASES[case]
    if linked:
        (out / "eval_samples.jsonl").symlink_to(outside.file("samples.jsonl", content))
    else:
        (out / "eval_samples.jsonl").write_bytes(content)
    assert main(_command("eval", tiny_model_dir, out)) == 2
    message = _error(capsys, "eval")
    outside.unchanged()
    assert (out / "eval_samples.jsonl").is_symlink() == linked
    assert sorted(p.name for p in out.iterdir()) == ["eval_samples.jsonl"]  # nothing else written either
    if linked:
        assert "is a symbolic link" in message and "Put a copy of the file there instead of a link" in message
    else:
        assert (out / "eval_samples.jsonl").read_bytes() == content
        assert str(out / "eval_samples.jsonl") in message and "another --output_dir" in message


def test_a_samples_file_with_a_cut_line_refused_for_its_settings_is_left_whole(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(_command("eval", tiny_model_dir, out)) == 0
    samples = out / "eval_samples.jsonl"
    with open(samples, "ab") as f:
        f.write(b'{"benchmark": "addition", "id": "0", "sam')  # a crash mid-write
    before = samples.read_bytes()
    capsys.readouterr()
    assert main([*_command("eval", tiny_model_dir, out), "--temperature", "1.0"]) == 2
    assert "holds samples drawn with other settings (temperature: 0.6 -> 1.0)" in _error(capsys, "eval")
    assert samples.read_bytes() == before  # not cut back: the file was not accepted
    assert main([*_command("eval", tiny_model_dir, out), "--n", "3"]) == 0  # accepted: cut, then appended
    assert "dropped its last line (41 bytes), cut short when a run stopped" in capsys.readouterr().out
    assert samples.read_bytes().startswith(before[: before.rfind(b"\n") + 1])


@pytest.mark.parametrize("command", list(COMMANDS))
def test_result_files_that_are_links_are_replaced_not_written_through(
    tiny_model_dir, tmp_path, capsys, outside, command
):
    _, samples, written = COMMANDS[command]
    out = tmp_path / "out"
    out.mkdir()
    for name in written:
        (out / name).symlink_to(outside.file(name))
    assert main(_command(command, tiny_model_dir, out)) == 0
    outside.unchanged()
    said = capsys.readouterr().out
    for name in written:
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0
        assert f"{out / name} was a symbolic link (to {outside.path / name}); wrote the file in its place" in said
    # the samples file linked from outside: refused, named, before the model loads
    (out / samples).unlink()
    (out / samples).symlink_to(outside.file(samples, b'{"header": {}}\n'))
    assert main(_command(command, tiny_model_dir, out)) == 2
    assert f"{out / samples} is a symbolic link" in _error(capsys, command)
    outside.unchanged()


# --------------------------------------------------------------------------------------------------
# train: the resolved recipe, its records, run info and the model card
# --------------------------------------------------------------------------------------------------


def _resumable_run(tmp_path):
    """An output folder holding a run of tiny_cpu to resume (its resolved recipe and checkpoint-4)."""
    from test_training_output_dir import write_checkpoint

    from sas_trl.training.recipe_files import dump_recipe
    from sas_trl.training.recipes import parse

    out = tmp_path / "run"
    recipe = ["--recipe", str(ROOT / "recipes/tiny_cpu.yaml"), "--output_dir", str(out)]
    out.mkdir()
    (out / "resolved_recipe.yaml").write_text(dump_recipe(parse(recipe)[3]))
    write_checkpoint(out / "checkpoint-4", 4, 100)
    return out, [*recipe, "--resume_from_checkpoint", "last"]


@pytest.mark.parametrize(
    "planted", ["resolved_recipe.yaml", "model.safetensors", "README.md", "run_info.json", "checkpoint-8"]
)
@pytest.mark.parametrize(
    "flags", [[], ["--resume_with_changes", "true", "--learning_rate", "0.1"]], ids=["", "changes"]
)
def test_train_refuses_a_planted_link_in_its_output_folder_before_writing(
    tmp_path, capsys, monkeypatch, outside, planted, flags
):
    trip_model_work(monkeypatch)
    out, resume = _resumable_run(tmp_path)
    link = out / planted
    if planted == "resolved_recipe.yaml":
        target = outside.file(planted, link.read_bytes())
        link.unlink()
    elif planted == "checkpoint-8":
        target = outside.path / "ckpt"
        target.mkdir()
        outside.file("ckpt/keep.txt")
    else:
        target = outside.file(planted)
    link.symlink_to(target)
    before = sorted(p.name for p in out.iterdir())
    assert main(["train", *resume, *flags]) == 2
    err = capsys.readouterr().err
    assert f"output_dir {str(out)!r} holds symbolic links ({planted} -> {target})" in err
    assert "replace each link by a copy of its file, or pass another --output_dir" in err
    outside.unchanged()
    assert sorted(p.name for p in out.iterdir()) == before and link.is_symlink()


def test_a_linked_sub_folder_that_training_does_not_write_is_the_users_to_make(tmp_path, monkeypatch, outside):
    from sas_trl.training.output_dir import check_links

    out, _ = _resumable_run(tmp_path)
    (out / "runs").symlink_to(outside.path, target_is_directory=True)  # TensorBoard's logs on another disk, say
    check_links(out)


def test_the_card_and_run_files_replace_links(tmp_path, outside, capsys):
    from test_training_hub import card_args, write_samples_header

    from sas_trl.training.hub import add_eval_table, write_card

    for name in ("README.md", "recipe.yaml", "train_metrics.json"):
        (tmp_path / name).symlink_to(outside.file(name))
    write_card(tmp_path, "me/x", card_args(tmp_path), "builtin:tiny", {"sas_ratio": 0.3}, [{"reward": 0.5, "step": 1}])
    outside.unchanged()
    assert all(not (tmp_path / n).is_symlink() for n in ("README.md", "recipe.yaml", "train_metrics.json"))
    assert "sas_ratio: 0.3" in (tmp_path / "recipe.yaml").read_text()
    assert capsys.readouterr().out.count("was a symbolic link") == 3
    # `sas-trl push` adds the evaluation table: the card, linked again, is replaced again
    (tmp_path / "README.md").unlink()
    write_card(tmp_path, "me/x", card_args(tmp_path), "builtin:tiny", {}, [])
    card = (tmp_path / "README.md").read_text()
    (tmp_path / "README.md").unlink()
    (tmp_path / "README.md").symlink_to(outside.file("card.md", card.encode()))
    (tmp_path / "eval_results.md").write_text("| benchmark | Pass@1 (%) |\n|---|---:|\n| addition | 85.12 |\n")
    write_samples_header(tmp_path)  # the evaluation of the weights in the folder: the card shows it
    assert add_eval_table(tmp_path)
    assert "| addition | 85.12 |" in (tmp_path / "README.md").read_text()
    outside.unchanged()


def test_run_info_and_log_history_replace_links(tmp_path, outside):
    from types import SimpleNamespace

    from sas_trl.training.output_dir import write_run_info

    for name in ("run_info.json", "log_history.json"):
        (tmp_path / name).symlink_to(outside.file(name))
    trainer = SimpleNamespace(state=SimpleNamespace(global_step=2, log_history=[{"loss": 1.0}]))
    state = SimpleNamespace(num_processes=1, distributed_type="NO")
    write_run_info(tmp_path, trainer, state, "builtin:tiny", 1.0)
    outside.unchanged()
    assert json.loads((tmp_path / "run_info.json").read_text())["global_step"] == 2
    assert json.loads((tmp_path / "log_history.json").read_text()) == [{"loss": 1.0}]


# --------------------------------------------------------------------------------------------------
# compare: the study folder
# --------------------------------------------------------------------------------------------------


def _study(tmp_path) -> str:
    study = {
        "base_recipe": "recipes/studies/tiny_smoke_base.yaml",
        "output_dir": str(tmp_path / "study"),
        "seeds": [0],
        "reference": "grpo",
        "conditions": {"grpo": {"sas_strategy": "none"}},
        "eval": {"benchmarks": "addition", "n": 1, "max_tokens": 8},
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return str(path)


@pytest.mark.parametrize(
    "linked", ["runs", "runs/grpo", "runs/grpo/seed0", "runs/grpo/seed0/eval", "base_eval", "base_model"]
)
def test_a_linked_folder_in_a_study_folder_is_refused_before_any_work(tmp_path, capsys, monkeypatch, outside, linked):
    from sas_trl.compare import runner

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(runner, "prepare_starting_model", lambda study: pytest.fail("reached model work"))
    study = _study(tmp_path)
    folder = tmp_path / "study" / linked
    folder.parent.mkdir(parents=True, exist_ok=True)
    outside.file("keep.txt")
    folder.symlink_to(outside.path, target_is_directory=True)
    assert main(["compare", "--study", study]) == 2
    err = capsys.readouterr().err
    assert f"{folder} is a symbolic link (to {outside.path}); sas-trl writes only inside the output folder" in err
    outside.unchanged()


def test_a_linked_study_lock_file_or_report_is_not_written_through(tmp_path, capsys, monkeypatch, outside):
    from sas_trl.compare import runner

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(runner, "prepare_starting_model", lambda study: pytest.fail("reached model work"))
    study = _study(tmp_path)
    (tmp_path / "study").mkdir()
    lock = runner.LOCK_FILE
    (tmp_path / "study" / lock).symlink_to(outside.file("lock"))
    assert main(["compare", "--study", study]) == 2
    assert "the study's lock file is appended to in place" in capsys.readouterr().err
    outside.unchanged()
    (tmp_path / "study" / lock).unlink()
    for name in ("report.md", "results.json"):
        (tmp_path / "study" / name).symlink_to(outside.file(name))
    assert main(["compare", "--study", study, "--report_only"]) == 0
    outside.unchanged()
    assert not (tmp_path / "study" / "report.md").is_symlink()

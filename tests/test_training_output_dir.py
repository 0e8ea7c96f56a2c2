"""sas_trl.training.output_dir: resume values, half-written checkpoints, finished runs, another recipe's run."""

from __future__ import annotations

import json

import pytest
import yaml
from cli_helpers import QUICK, ROOT, trip_model_work

from sas_trl.cli import main
from sas_trl.errors import RecipeError
from sas_trl.training.checkpoints import checkpoint_problem
from sas_trl.training.output_dir import (
    RESUME_LAST,
    RESUME_OFF,
    OutputPlan,
    differing_settings,
    find_resume,
    finished_message,
    keep_earlier_recipe,
    plan_output_dir,
    recipe_changes,
    resolve_resume,
    resume_kind,
    saved_training_settings,
    training_settings,
)
from sas_trl.training.recipe_files import dump_recipe
from sas_trl.training.recipes import parse


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name paths relative to the repository


def write_checkpoint(folder, step: int, max_steps: int | None = None, optimizer: bool = True):
    """A whole checkpoint as transformers writes it: weights, optimizer, scheduler, RNG state, trainer state."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({"w": torch.zeros(4, 3)}, str(folder / "model.safetensors"))
    if optimizer:
        torch.save({"state": {}}, folder / "optimizer.pt")
        torch.save({"last_epoch": step}, folder / "scheduler.pt")
    torch.save({"python": 1}, folder / "rng_state.pth")
    state = {"global_step": step} if max_steps is None else {"global_step": step, "max_steps": max_steps}
    (folder / "trainer_state.json").write_text(json.dumps(state))
    return str(folder)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (None, "off"),
        ("", "off"),
        ("false", "off"),
        ("False", "off"),
        ("none", "off"),
        ("NONE", "off"),
        ("last", "last"),
        ("LAST", "last"),
        ("true", "last"),
        ("True", "last"),
        ("checkpoint-4", "path"),
        ("runs/a/checkpoint-4", "path"),
        ("null", "path"),  # not an "off" spelling of resume_from_checkpoint: a folder name like any other
        ("lastest", "path"),
    ],
)
def test_one_reading_of_the_resume_spellings(value, kind):
    assert resume_kind(value) == kind


def test_every_resume_spelling_means_the_same_in_the_plan_and_the_resolution(tmp_path):
    write_checkpoint(tmp_path / "checkpoint-3", 3, 3)
    run_args, args, model_args, recipe = parse(
        ["--recipe", "recipes/tiny_cpu.yaml", "--output_dir", str(tmp_path), "--max_steps", "3"]
    )
    (tmp_path / "resolved_recipe.yaml").write_text(dump_recipe(recipe))
    for spelling in (*RESUME_LAST, "LAST", "True"):
        assert resolve_resume(spelling, tmp_path) == str(tmp_path / "checkpoint-3")
        args.resume_from_checkpoint = spelling  # a finished run resumed: nothing to do
        plan = plan_output_dir(run_args, args, model_args, recipe, main_process=False)
        assert plan.resume == str(tmp_path / "checkpoint-3") and "step 3 of max_steps 3" in plan.finished
    for spelling in (*RESUME_OFF, None, "NONE", "False"):
        assert resolve_resume(spelling, tmp_path) is None
        args.resume_from_checkpoint = spelling  # not resuming: the folder's run is not trained over
        with pytest.raises(RecipeError, match="holds an unfinished run"):
            plan_output_dir(run_args, args, model_args, recipe, main_process=False)
    empty = tmp_path / "empty"
    args.output_dir = str(empty)
    for spelling in (*RESUME_OFF, None, "NONE", "False"):
        args.resume_from_checkpoint = spelling  # not resuming, and no run in the folder
        assert plan_output_dir(run_args, args, model_args, recipe, main_process=False) == OutputPlan(None)


def test_resume_skips_a_half_written_checkpoint(tmp_path):
    for step, complete in ((2, True), (4, True), (6, False)):
        folder = tmp_path / f"checkpoint-{step}"
        write_checkpoint(folder, step)
        if not complete:
            (folder / "trainer_state.json").unlink()
    assert resolve_resume("last", tmp_path) == str(tmp_path / "checkpoint-4")
    assert resolve_resume("last", tmp_path / "missing") is None
    assert resolve_resume(None, tmp_path) is None
    with pytest.raises(RecipeError, match="checkpoint-6"):
        resolve_resume(str(tmp_path / "checkpoint-6"), tmp_path)


def test_training_settings_leave_out_where_a_run_is_written(tmp_path):
    run_args, args, model_args, recipe = parse(["--recipe", "recipes/tiny_cpu.yaml", "--output_dir", str(tmp_path)])
    now = training_settings(run_args, args, model_args)
    assert "output_dir" not in now and "logging_steps" not in now and now["sas_ratio"] == 0.3
    assert now["lr_scheduler_type"] == args.lr_scheduler_type.value  # enums as their values
    saved = tmp_path / "resolved_recipe.yaml"
    saved.write_text(dump_recipe({**recipe, "output_dir": "elsewhere", "sas_ratio": 0.5}))
    before = saved_training_settings(saved)
    assert differing_settings(before, {**now, "env": {}}) == {"sas_ratio": (0.5, 0.3)}
    saved.write_text("unknown_key: 1\n")
    assert saved_training_settings(saved) is None  # cannot be built any more: "cannot compare"


def test_a_credential_inside_a_setting_is_no_change_against_its_redacted_record(tmp_path):
    argv = ["--recipe", "recipes/tiny_cpu.yaml", "--output_dir", str(tmp_path)]
    token = '{"token": "hf_aN3stedCredential0nly"}'
    run_args, args, model_args, recipe = parse([*argv, "--model_init_kwargs", token])
    (tmp_path / "resolved_recipe.yaml").write_text(dump_recipe(recipe))  # as training saves it: redacted
    assert "hf_aN3sted" not in (tmp_path / "resolved_recipe.yaml").read_text()
    assert recipe_changes(tmp_path, run_args, args, model_args, recipe) == {}
    run_args, args, model_args, recipe = parse([*argv, "--model_init_kwargs", '{"token": "x", "dtype": "float32"}'])
    assert list(recipe_changes(tmp_path, run_args, args, model_args, recipe)) == ["model_init_kwargs"]


@pytest.mark.slow
def test_a_finished_run_is_neither_trained_again_nor_replaced_by_another_recipe(tmp_path, capsys):
    out = tmp_path / "run"
    # Weight decay moves the weights at every optimizer step, even when 2 warm-up steps leave every reward at 0.
    base = ["train", "--recipe", "recipes/tiny_cpu.yaml", *QUICK, "--weight_decay", "0.1", "--output_dir", str(out)]
    assert main(base) == 0
    weights = (out / "model.safetensors").read_bytes()
    checkpoints = {p.name: (p / "model.safetensors").read_bytes() for p in out.glob("checkpoint-*")}
    assert "checkpoint-2" in checkpoints
    capsys.readouterr()

    # Resuming a finished run: nothing trained, nothing written, and it says so.
    for _ in range(2):
        assert main([*base, "--resume_from_checkpoint", "last"]) == 0
        printed = capsys.readouterr().out
        assert f"{out} is a finished run (step 2 of max_steps 2): nothing to resume, nothing changed" in printed
        assert "raise --max_steps" in printed and "trained" not in printed
        assert (out / "model.safetensors").read_bytes() == weights
        assert {p.name: (p / "model.safetensors").read_bytes() for p in out.glob("checkpoint-*")} == checkpoints

    # The same command again, without resuming: refused, never trained over (naming the folder and the flags).
    assert main(base) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert f"output_dir {str(out)!r} holds a finished run of this same recipe: nothing to train" in captured.err
    assert "--resume_from_checkpoint last" in captured.err and "--overwrite_output_dir true" in captured.err
    assert (out / "model.safetensors").read_bytes() == weights

    # Another recipe in the same folder: refused, naming the folder and what differs.
    assert main([*base, "--sas_strategy", "none", "--learning_rate", "0.001"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
    assert f"output_dir {str(out)!r} holds a finished run of a different recipe" in captured.err
    assert "learning_rate: 5e-05 -> 0.001" in captured.err and "sas_strategy: 'both' -> 'none'" in captured.err
    assert "--overwrite_output_dir true" in captured.err
    assert (out / "model.safetensors").read_bytes() == weights

    # Raising max_steps continues the finished run.
    assert main([*base, "--max_steps", "3", "--resume_from_checkpoint", "last"]) == 0
    assert json.loads((out / "run_info.json").read_text())["global_step"] == 3
    assert (out / "model.safetensors").read_bytes() != weights
    capsys.readouterr()

    # The newest checkpoint damaged (weights cut short): the resume falls back to the newest intact one, saying so.
    damaged = out / "checkpoint-3" / "model.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    assert main([*base, "--max_steps", "4", "--resume_from_checkpoint", "last"]) == 0
    printed = capsys.readouterr().out
    assert f"skipped checkpoint-3 ({damaged} is cut short or damaged" in printed
    assert f"resuming from {out / 'checkpoint-2'}, the newest intact checkpoint" in printed
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e][-2:] == [3, 4]
    continued = (out / "model.safetensors").read_bytes()

    # --overwrite_output_dir true replaces it: the other recipe's checkpoints go first.
    assert main([*base, "--sas_strategy", "none", "--overwrite_output_dir", "true"]) == 0
    printed = capsys.readouterr().out
    assert "removed the earlier run's checkpoint-2, checkpoint-3, checkpoint-4, run_info.json" in printed
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    assert (out / "model.safetensors").read_bytes() != continued
    assert yaml.safe_load((out / "resolved_recipe.yaml").read_text())["sas_strategy"] == "none"


def test_what_counts_as_a_finished_run(tmp_path):
    def checkpoint(step: int, max_steps: int) -> str:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": max_steps}))
        return str(folder)

    early, last = checkpoint(4, 10), checkpoint(10, 10)
    assert finished_message(tmp_path, early, 10) is None  # interrupted: resume it
    assert finished_message(tmp_path, last, 12) is None  # max_steps raised: train on
    assert "step 10 of max_steps 10" in finished_message(tmp_path, last, 10)
    assert "step 10 of max_steps 10" in finished_message(tmp_path, last, -1)  # epochs: the run's own step count
    assert f"final model is not in {tmp_path}; the weights are in {last}" in finished_message(tmp_path, last, 10)
    (tmp_path / "run_info.json").write_text(json.dumps({"global_step": 10}))
    assert f"its model is in {tmp_path}" in finished_message(tmp_path, last, 10)
    assert "step 10 of" in finished_message(tmp_path, early, 10)  # `last` found an older one: the final save counts
    assert finished_message(tmp_path, early, 10, latest=False) is None  # an earlier checkpoint named on purpose
    assert "step 10 of" in finished_message(tmp_path, None, 10)  # finished without checkpoints (save_strategy no)


# --------------------------------------------------------------------------------------------------
# Damaged checkpoints and missing optimizer state
# --------------------------------------------------------------------------------------------------


def _cut(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _index_naming_a_missing_shard(folder):
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    shards = {"w": "model-00001-of-00002.safetensors", "v": "model-00002-of-00002.safetensors"}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": shards}))


# damage -> the file the message must name
DAMAGE = {
    "trainer state not JSON": (lambda f: (f / "trainer_state.json").write_text('{"global_step": 4,'), "trainer_state"),
    "trainer state without a step": (lambda f: (f / "trainer_state.json").write_text("[]"), "trainer_state.json"),
    "weights cut short": (lambda f: _cut(f / "model.safetensors"), "model.safetensors"),
    "weights header garbage": (
        lambda f: (f / "model.safetensors").write_bytes(b"\x10" + b"\0" * 7 + b"not json" * 2),
        "model.safetensors",
    ),
    "weights missing": (lambda f: (f / "model.safetensors").unlink(), "holds no model weights"),
    "a shard missing": (_index_naming_a_missing_shard, "model-00002-of-00002.safetensors"),
    "optimizer cut short": (lambda f: _cut(f / "optimizer.pt"), "optimizer.pt"),
    "RNG state cut short": (lambda f: _cut(f / "rng_state.pth"), "rng_state.pth"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_is_skipped_for_the_newest_intact_one_or_refused_by_name(tmp_path, damage):
    apply, named = DAMAGE[damage]
    intact, newest = write_checkpoint(tmp_path / "checkpoint-2", 2), write_checkpoint(tmp_path / "checkpoint-4", 4)
    assert checkpoint_problem(tmp_path / "checkpoint-4") is None
    apply(tmp_path / "checkpoint-4")
    assert named in checkpoint_problem(tmp_path / "checkpoint-4")

    resume, notes = find_resume("last", tmp_path)  # falls back, and says so naming the file
    assert resume == intact and len(notes) == 1
    assert notes[0].startswith("skipped checkpoint-4 (") and named in notes[0]
    assert f"resuming from {intact}, the newest intact checkpoint" in notes[0]

    with pytest.raises(RecipeError, match=f"{newest}.* is not a complete checkpoint folder: .*{named}"):
        find_resume(newest, tmp_path)  # named explicitly: no other one to take
    apply(tmp_path / "checkpoint-2")  # every checkpoint damaged: refused, not restarted from step 0 over them
    with pytest.raises(RecipeError, match=f"no intact checkpoint in {tmp_path}: checkpoint-4 .*{named}"):
        find_resume("last", tmp_path)


def test_half_written_checkpoints_alone_start_from_step_0_saying_so(tmp_path):
    write_checkpoint(tmp_path / "checkpoint-2", 2)
    (tmp_path / "checkpoint-2" / "trainer_state.json").unlink()  # killed during the first save
    resume, notes = find_resume("last", tmp_path)
    assert resume is None and "skipped checkpoint-2" in notes[0] and "starting from step 0" in notes[0]


@pytest.mark.parametrize("missing", ["optimizer.pt", "scheduler.pt"])
def test_a_checkpoint_without_its_optimizer_state_is_refused_unless_asked(tmp_path, missing):
    write_checkpoint(tmp_path / "checkpoint-2", 2)
    newest = write_checkpoint(tmp_path / "checkpoint-4", 4)
    (tmp_path / "checkpoint-4" / missing).unlink()
    for value in ("last", newest):
        with pytest.raises(RecipeError, match=f"{newest} has no optimizer state .*{missing} is missing"):
            find_resume(value, tmp_path)
        with pytest.raises(RecipeError, match="--resume_without_optimizer true"):
            find_resume(value, tmp_path)
        resume, notes = find_resume(value, tmp_path, without_optimizer=True)
        assert resume == newest and notes == [
            f"resuming {newest} without its optimizer state ({tmp_path / 'checkpoint-4' / missing} is missing): "
            "the optimizer starts anew"
        ]


def test_deepspeed_and_fsdp_checkpoints_keep_their_state_in_folders(tmp_path):
    folder = tmp_path / "checkpoint-2"
    write_checkpoint(folder, 2, optimizer=False)
    (folder / "global_step2").mkdir()  # DeepSpeed: model, optimizer and scheduler states
    assert find_resume("last", tmp_path) == (str(folder), [])
    (folder / "global_step2").rmdir()
    (folder / "optimizer_0").mkdir()  # FSDP's sharded optimizer; the scheduler is still scheduler.pt
    with pytest.raises(RecipeError, match="scheduler.pt is missing"):
        find_resume("last", tmp_path)


# --------------------------------------------------------------------------------------------------
# A run in the folder: never trained over, never resumed under other settings without a flag
# --------------------------------------------------------------------------------------------------


def _plan(tmp_path, *flags, saved: dict | None = None, finished: bool = False, checkpoint: bool = True):
    """The plan for `tiny_cpu` with `flags` in a folder holding a run made with the recipe changed by `saved`."""
    argv = ["--recipe", "recipes/tiny_cpu.yaml", "--output_dir", str(tmp_path), *flags]
    run_args, args, model_args, recipe = parse(argv)
    _, _, _, before = parse(["--recipe", "recipes/tiny_cpu.yaml", "--output_dir", str(tmp_path)])
    (tmp_path / "resolved_recipe.yaml").write_text(dump_recipe({**before, **(saved or {})}))
    if checkpoint and not (tmp_path / "checkpoint-4").exists():
        write_checkpoint(tmp_path / "checkpoint-4", 4, 100)
    if finished:
        (tmp_path / "run_info.json").write_text(json.dumps({"global_step": 100}))
    return plan_output_dir(run_args, args, model_args, recipe, main_process=True)


FOLDER_STATES = {
    "unfinished, another recipe": (
        {"learning_rate": 0.001},
        False,
        ["holds an unfinished run (saved up to checkpoint-4) of a different recipe", "learning_rate: 0.001 -> 5e-05"],
    ),
    "finished, another recipe": (
        {"sas_ratio": 0.5},
        True,
        ["holds a finished run of a different recipe", "sas_ratio: 0.5 -> 0.3"],
    ),
    "unfinished, same recipe": (
        {},
        False,
        ["holds an unfinished run (saved up to checkpoint-4) of this same recipe", "--resume_from_checkpoint last"],
    ),
    "finished, same recipe": (
        {},
        True,
        ["holds a finished run of this same recipe: nothing to train", "--resume_from_checkpoint last with a higher"],
    ),
}


@pytest.mark.parametrize("state", list(FOLDER_STATES))
def test_a_fresh_run_into_a_folder_holding_a_run_is_refused_unless_overwriting(tmp_path, capsys, state):
    saved, finished, expected = FOLDER_STATES[state]
    with pytest.raises(RecipeError) as refused:
        _plan(tmp_path, saved=saved, finished=finished)
    for piece in [f"output_dir {str(tmp_path)!r}", "--overwrite_output_dir true", *expected]:
        assert piece in str(refused.value), (piece, str(refused.value))
    assert (tmp_path / "checkpoint-4").is_dir()  # nothing touched

    assert _plan(tmp_path, "--overwrite_output_dir", "true", saved=saved, finished=finished) == OutputPlan(None)
    assert not (tmp_path / "checkpoint-4").exists() and not (tmp_path / "run_info.json").exists()
    assert "removed the earlier run's checkpoint-4" in capsys.readouterr().out


def test_resuming_under_changed_settings_is_refused_unless_asked(tmp_path):
    changed = {"learning_rate": 0.001, "sas_strategy": "none"}
    with pytest.raises(RecipeError) as refused:
        _plan(tmp_path, "--resume_from_checkpoint", "last", saved=changed)
    message = str(refused.value)
    assert f"resume_from_checkpoint: {tmp_path} was trained with other settings" in message
    assert "learning_rate: 0.001 -> 5e-05; sas_strategy: 'none' -> 'both'" in message
    assert "--resume_with_changes true" in message

    plan = _plan(tmp_path, "--resume_from_checkpoint", "last", "--resume_with_changes", "true", saved=changed)
    assert plan.resume == str(tmp_path / "checkpoint-4") and plan.keep_recipe_as == "resolved_recipe.until_step_4.yaml"
    assert "resuming under changed settings (learning_rate: 0.001 -> 5e-05" in plan.notes[0]
    earlier = (tmp_path / "resolved_recipe.yaml").read_text()
    keep_earlier_recipe(tmp_path, plan)  # the earlier settings are not lost when the new recipe is saved
    assert (tmp_path / "resolved_recipe.until_step_4.yaml").read_text() == earlier

    # How long to train may change on resume: a finished run is trained further by raising max_steps.
    plan = _plan(tmp_path, "--resume_from_checkpoint", "last", "--max_steps", "200", saved={"max_steps": 100})
    assert plan.resume == str(tmp_path / "checkpoint-4") and plan.notes == () and plan.keep_recipe_as is None
    # A resume with nothing to resume yet (no checkpoint, no finished run) starts the run: nothing to compare.
    empty = tmp_path / "fresh"
    empty.mkdir()
    assert _plan(empty, "--resume_from_checkpoint", "last", saved=changed, checkpoint=False) == OutputPlan(None)


@pytest.fixture
def no_model_work(monkeypatch):
    trip_model_work(monkeypatch)


# case -> (saved run's learning rate differs, its checkpoint's state: "whole"/"no optimizer"/"damaged", flags, message)
REFUSALS = {
    "fresh run over another recipe's unfinished run": (True, "whole", [], ["of a different recipe", "learning_rate"]),
    "fresh run over this recipe's unfinished run": (
        False,
        "whole",
        [],
        ["same recipe", "--resume_from_checkpoint last"],
    ),
    "resume under changed settings": (True, "whole", ["--resume_from_checkpoint", "last"], ["other settings"]),
    "resume without optimizer state": (False, "no optimizer", ["--resume_from_checkpoint", "last"], ["optimizer.pt"]),
    "resume of a damaged checkpoint": (False, "damaged", ["--resume_from_checkpoint", "last"], ["model.safetensors"]),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_come_before_any_model_work_as_one_line(tmp_path, capsys, no_model_work, case):
    changed, checkpoint, flags, expected = REFUSALS[case]
    out = tmp_path / "run"
    _, _, _, before = parse(["--recipe", "recipes/tiny_cpu.yaml", "--output_dir", str(out)])
    out.mkdir()
    (out / "resolved_recipe.yaml").write_text(dump_recipe({**before, **({"learning_rate": 0.001} if changed else {})}))
    write_checkpoint(out / "checkpoint-4", 4, 100, optimizer=checkpoint != "no optimizer")
    if checkpoint == "damaged":
        _cut(out / "checkpoint-4" / "model.safetensors")
    code = main(["train", "--recipe", "recipes/tiny_cpu.yaml", "--output_dir", str(out), *flags])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "FutureWarning" not in line and "warnings.warn(" not in line]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("sas-trl train: error: "), err
    for piece in expected:
        assert piece in lines[0], (piece, lines[0])
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint-4", "resolved_recipe.yaml"]  # nothing written


def test_every_resume_with_changes_keeps_its_own_record_of_the_earlier_recipe(tmp_path, capsys, monkeypatch):
    # Each resume is cut short (here: at the model's preparation) after it saved its recipe and before a new
    # checkpoint, so the next one resumes from the same step: no record may replace another.
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    trip_model_work(monkeypatch)
    monkeypatch.setattr("sas_trl.training.run.prepare_model", interrupted)
    out = tmp_path / "run"
    recipe = ["--recipe", "recipes/tiny_cpu.yaml", "--output_dir", str(out)]
    out.mkdir()
    (out / "resolved_recipe.yaml").write_text(dump_recipe({**parse(recipe)[3], "learning_rate": 0.001}))
    write_checkpoint(out / "checkpoint-4", 4, 100)
    resume = [*recipe, "--resume_from_checkpoint", "last", "--resume_with_changes", "true"]

    records = {}  # record name -> the resolved recipe it must hold, byte for byte
    for step, rate in ((4, "0.002"), (4, "0.003"), (4, "0.004"), (8, "0.005")):
        if not (out / f"checkpoint-{step}").exists():
            write_checkpoint(out / f"checkpoint-{step}", step, 100)  # a later resume got as far as a checkpoint
        earlier = (out / "resolved_recipe.yaml").read_bytes()
        assert main(["train", *resume, "--learning_rate", rate]) != 0
        kept = sorted(set(p.name for p in out.glob("resolved_recipe.until_step_*.yaml")) - set(records))
        assert len(kept) == 1, kept  # one new record each time, the earlier ones untouched
        records[kept[0]] = earlier
        assert f"the earlier resolved recipe is kept as {out / kept[0]}" in capsys.readouterr().out
        for name, content in records.items():
            assert (out / name).read_bytes() == content, name
        assert yaml.safe_load((out / "resolved_recipe.yaml").read_text())["learning_rate"] == float(rate)
    assert list(records) == [
        "resolved_recipe.until_step_4.yaml",
        "resolved_recipe.until_step_4.2.yaml",
        "resolved_recipe.until_step_4.3.yaml",
        "resolved_recipe.until_step_8.yaml",
    ]
    assert [yaml.safe_load(c)["learning_rate"] for c in records.values()] == [0.001, 0.002, 0.003, 0.004]


def test_a_record_name_taken_after_the_plan_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "resolved_recipe.yaml").write_text("learning_rate: 0.2\n")
    (tmp_path / "resolved_recipe.until_step_4.yaml").write_text("learning_rate: 0.1\n")
    (tmp_path / "outside.yaml").write_text("not a record\n")
    (tmp_path / "resolved_recipe.until_step_4.2.yaml").symlink_to(tmp_path / "outside.yaml")  # even a link
    plan = OutputPlan(None, keep_recipe_as="resolved_recipe.until_step_4.yaml")
    assert keep_earlier_recipe(tmp_path, plan) == "resolved_recipe.until_step_4.3.yaml"
    assert (tmp_path / "resolved_recipe.until_step_4.3.yaml").read_text() == "learning_rate: 0.2\n"
    assert (tmp_path / "resolved_recipe.until_step_4.yaml").read_text() == "learning_rate: 0.1\n"
    assert (tmp_path / "outside.yaml").read_text() == "not a record\n"
    assert not (tmp_path / "resolved_recipe.yaml").exists()
    assert "kept as" in capsys.readouterr().out

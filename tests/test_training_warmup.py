"""sas_trl.training.warmup: the built-in model's warm-up is cached, keyed by the settings that made it."""

from __future__ import annotations

import contextlib
import json

import pytest
from cli_helpers import ROOT

from sas_trl.training.recipes import parse
from sas_trl.training.warmup import (
    CACHE_ENV,
    WARMUP_KEY,
    cache_dir,
    cache_entry,
    cached_warmup_changes,
    prepare_model,
    warmup_settings,
    write_warmup_record,
)


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name paths relative to the repository


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty shared cache of this test's own, so that the first preparation builds."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


class OneProcess:
    """What `prepare_model` needs of accelerate's PartialState, for one process."""

    is_main_process = True
    main_process_first = staticmethod(contextlib.nullcontext)


def prepare_in(out, capsys, *flags):
    run_args, args, model_args, _ = parse(["--recipe", "recipes/tiny_cpu.yaml", *flags, "--output_dir", str(out)])
    path = prepare_model(run_args, model_args, args, OneProcess())
    return path, capsys.readouterr().out


def entry_for(*flags):
    run_args, args, _, _ = parse(["--recipe", "recipes/tiny_cpu.yaml", *flags])
    return cache_entry(warmup_settings(run_args, args.seed))


def test_the_warm_up_cache_is_keyed_by_the_settings_that_made_it(tmp_path, capsys, cache):
    def prepare(*flags):
        run_args, args, model_args, _ = parse(
            ["--recipe", "recipes/tiny_cpu.yaml", *flags, "--output_dir", str(tmp_path)]
        )
        path = prepare_model(run_args, model_args, args, OneProcess())
        return path, capsys.readouterr().out

    base = ["--sft_warmup_steps", "2"]
    path, printed = prepare(*base)
    weights = tmp_path / "base_model" / "model.safetensors"
    assert path == str(tmp_path / "base_model") and "warm-up of builtin:tiny on the built-in task, 2 steps" in printed
    key = json.loads((tmp_path / "base_model" / WARMUP_KEY).read_text())
    assert (key["sft_warmup_steps"], key["seed"], key["builtin_min_terms"], key["builtin_max_terms"]) == (2, 0, 2, 4)
    built = weights.read_bytes()

    _, printed = prepare(*base)  # same settings: reused, no warm-up
    assert "reusing the warmed-up builtin:tiny" in printed and "warm-up of" not in printed
    assert weights.read_bytes() == built

    for flags, change in (
        (["--sft_warmup_steps", "3"], "sft_warmup_steps: 2 -> 3"),
        ([*base, "--seed", "1"], "seed: 0 -> 1"),
        ([*base, "--builtin_max_terms", "3"], "builtin_max_terms: 4 -> 3"),
        ([*base, "--builtin_min_terms", "3"], "builtin_min_terms: 2 -> 3"),
    ):
        _, printed = prepare(*flags)
        assert f"rebuilding {tmp_path / 'base_model'}" in printed and change in printed, printed
        assert "warm-up of builtin:tiny" in printed

    (tmp_path / "base_model" / WARMUP_KEY).unlink()  # a cache from before the key, or a build cut short
    _, printed = prepare(*base)
    assert "without a record of its settings" in printed and weights.read_bytes() == built  # same settings, same model


def test_why_a_cached_warm_up_is_rebuilt(tmp_path):
    settings = {"seed": 0, "sft_warmup_steps": 2}
    assert cached_warmup_changes(tmp_path / "missing", settings) == "no cached model"
    assert cached_warmup_changes(tmp_path, settings) == "an incomplete cached model"
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / WARMUP_KEY).write_text("{not json")
    assert cached_warmup_changes(tmp_path, settings) == f"an unreadable {WARMUP_KEY}"
    (tmp_path / WARMUP_KEY).write_text(json.dumps(settings))  # settings without the files' checksums
    assert cached_warmup_changes(tmp_path, settings) == "a cached model without checksums of its files"
    write_warmup_record(tmp_path, settings)
    assert cached_warmup_changes(tmp_path, settings) is None
    assert "seed: 0 -> 1" in cached_warmup_changes(tmp_path, {**settings, "seed": 1})
    (tmp_path / "config.json").write_text("{ }")  # same name, other bytes
    assert cached_warmup_changes(tmp_path, settings) == (
        "a damaged config.json (its size or checksum differs from the one recorded when it was built)"
    )


def test_the_cache_folder_is_the_users_unless_overridden(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "sas-trl"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "sas-trl"
    a, b = entry_for("--sft_warmup_steps", "2"), entry_for("--sft_warmup_steps", "3")
    assert a.parent == b.parent == cache_dir() / "warmup" and a != b  # one entry per settings
    assert entry_for("--sft_warmup_steps", "2", "--learning_rate", "0.1") == a  # RL settings do not make it


def test_one_warm_up_is_shared_by_runs_in_other_folders(tmp_path, capsys, cache):
    flags = ("--sft_warmup_steps", "2")
    path, printed = prepare_in(tmp_path / "sas", capsys, *flags)
    entry = entry_for(*flags)
    assert path == str(tmp_path / "sas" / "base_model") and "warm-up of builtin:tiny" in printed
    assert f"building the warmed-up builtin:tiny into the shared cache: {entry}" in printed
    assert entry.parent.parent == cache and (entry / WARMUP_KEY).is_file()

    path, printed = prepare_in(tmp_path / "grpo", capsys, *flags, "--sas_strategy", "none")
    assert f"reusing the warmed-up builtin:tiny in {entry} (same settings, files verified)" in printed
    assert "warm-up of" not in printed and path == str(tmp_path / "grpo" / "base_model")
    weights = [(tmp_path / run / "base_model" / "model.safetensors").read_bytes() for run in ("sas", "grpo")]
    assert weights[0] == weights[1] == (entry / "model.safetensors").read_bytes()
    assert [p.name for p in entry.parent.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# damage -> what the rebuild message says
CACHE_DAMAGE = {
    "weights cut short": (lambda e: (e / "model.safetensors").write_bytes(b"\0" * 100), "a damaged model.safetensors"),
    "weights with a flipped byte": (lambda e: _flip(e / "model.safetensors"), "a damaged model.safetensors"),
    "weights missing": (lambda e: (e / "model.safetensors").unlink(), "a cached model missing its model.safetensors"),
    "tokenizer missing": (lambda e: (e / "tokenizer.json").unlink(), "a cached model missing its tokenizer.json"),
    "config missing": (lambda e: (e / "config.json").unlink(), "an incomplete cached model"),
    "record missing": (lambda e: (e / WARMUP_KEY).unlink(), "a cached model without a record of its settings"),
    "record garbage": (lambda e: (e / WARMUP_KEY).write_text("{"), f"an unreadable {WARMUP_KEY}"),
}


@pytest.mark.parametrize("damage", list(CACHE_DAMAGE))
def test_a_damaged_cache_entry_or_run_copy_is_rebuilt_with_a_message(tmp_path, capsys, cache, damage):
    apply, reason = CACHE_DAMAGE[damage]
    flags = ("--sft_warmup_steps", "0")  # no supervised steps: the build takes a second
    prepare_in(tmp_path / "a", capsys, *flags)
    entry, copy = entry_for(*flags), tmp_path / "a" / "base_model"
    built = (entry / "model.safetensors").read_bytes()

    apply(entry)  # the shared entry: verified before reuse, rebuilt
    _, printed = prepare_in(tmp_path / "b", capsys, *flags)
    assert f"rebuilding {entry}: it held {reason}" in printed and "reusing" not in printed, printed
    assert cached_warmup_changes(entry, warmup_settings(*_run_and_seed(*flags))) is None
    assert (
        (entry / "model.safetensors").read_bytes()
        == built
        == (tmp_path / "b" / "base_model" / "model.safetensors").read_bytes()
    )

    apply(copy)  # a run's own copy: replaced from the verified entry
    _, printed = prepare_in(tmp_path / "a", capsys, *flags)
    assert (
        f"rebuilding {copy}: it held {reason}" in printed
        and f"reusing the warmed-up builtin:tiny in {entry}" in printed
    )
    assert (copy / "model.safetensors").read_bytes() == built


def _run_and_seed(*flags):
    run_args, args, _, _ = parse(["--recipe", "recipes/tiny_cpu.yaml", *flags])
    return run_args, args.seed


@pytest.mark.slow
def test_two_processes_building_one_entry_at_once_build_it_once(tmp_path):
    import os
    import subprocess
    import sys

    script = (
        "import contextlib, sys\n"
        "from sas_trl.training.recipes import parse\n"
        "from sas_trl.training.warmup import prepare_model\n"
        "class S:\n    is_main_process = True\n    main_process_first = staticmethod(contextlib.nullcontext)\n"
        "flags = ['--recipe', 'recipes/tiny_cpu.yaml', '--sft_warmup_steps', '3', '--output_dir', sys.argv[1]]\n"
        "r, a, m, _ = parse(flags)\n"
        "print(prepare_model(r, m, a, S()))\n"
    )
    env = {**os.environ, CACHE_ENV: str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / name)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        for name in ("one", "two")
    ]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert sum("warm-up of builtin:tiny" in out for out in outputs) == 1, outputs  # built once, reused once
    assert sum("reusing the warmed-up" in out for out in outputs) == 1, outputs
    (entry,) = [p for p in (tmp_path / "cache" / "warmup").iterdir() if p.is_dir()]  # no staging folder left
    settings = json.loads((entry / WARMUP_KEY).read_text())
    for name in ("one", "two"):
        assert (
            cached_warmup_changes(tmp_path / name / "base_model", {k: settings[k] for k in ("seed", "model")}) is None
        )


def test_a_cache_folder_that_cannot_be_written_is_named(tmp_path, capsys, monkeypatch):
    from sas_trl.errors import UserError

    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "a_file" / "cache"))
    with pytest.raises(
        UserError, match=f"warm-up cache folder {tmp_path / 'a_file' / 'cache' / 'warmup'} .*{CACHE_ENV}"
    ):
        prepare_in(tmp_path / "run", capsys, "--sft_warmup_steps", "0")


def test_the_redundancy_knob_keys_the_warm_up_only_when_set_away_from_its_default():
    run_args, args, _, _ = parse(["--recipe", "recipes/tiny_cpu.yaml"])
    # The old recipes' entries keep their keys: the settings hold exactly the keys they held before the knob.
    assert set(warmup_settings(run_args, args.seed)) == {
        "model", "model_kwargs", "seed", "sft_warmup_steps", "builtin_min_terms", "builtin_max_terms",
        "sas_trl_version",
    }  # fmt: skip
    assert entry_for("--builtin_double_check_traces", "0.5") == entry_for()
    assert entry_for("--builtin_double_check_traces", "0.3") != entry_for()
    run_args, _, _, _ = parse(["--recipe", "recipes/tiny_cpu.yaml", "--builtin_double_check_traces", "0.3"])
    assert run_args.builtin_task().double_check_traces == 0.3


def test_the_warm_up_a_command_measures_is_the_one_training_starts_from(tmp_path, capsys, cache):
    from sas_trl.training.warmup import warmed_up_model

    run_args, args, _, _ = parse(["--recipe", "recipes/tiny_cpu.yaml", "--sft_warmup_steps", "1"])
    entry = warmed_up_model(run_args, args.seed)
    assert entry == entry_for("--sft_warmup_steps", "1") and (entry / "config.json").is_file()
    path, printed = prepare_in(tmp_path, capsys, "--sft_warmup_steps", "1")
    assert "reusing the warmed-up builtin:tiny" in printed
    assert (tmp_path / "base_model" / "model.safetensors").read_bytes() == (entry / "model.safetensors").read_bytes()

"""sas_trl.training.warmup: the built-in model's warm-up is cached, keyed by the settings that made it."""

from __future__ import annotations

import contextlib
import json

import pytest
from cli_helpers import ROOT

from sas_trl.training.recipes import parse
from sas_trl.training.warmup import WARMUP_KEY, cached_warmup_changes, prepare_model


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # recipes name paths relative to the repository


class OneProcess:
    """What `prepare_model` needs of accelerate's PartialState, for one process."""

    is_main_process = True
    main_process_first = staticmethod(contextlib.nullcontext)


def test_the_warm_up_cache_is_keyed_by_the_settings_that_made_it(tmp_path, capsys):
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
    (tmp_path / WARMUP_KEY).write_text(json.dumps(settings))
    assert cached_warmup_changes(tmp_path, settings) is None
    assert "seed: 0 -> 1" in cached_warmup_changes(tmp_path, {**settings, "seed": 1})

"""Folders that cannot be written: one line naming the folder, before any model work, in every command.

Permission bits do not stop root (these tests may run as root), so the write probe itself is made to fail for
the "read-only" folders here: `tempfile.TemporaryFile` raises EACCES in them, as the kernel does for a user
without write access (or EROFS on a read-only mount). One test runs the command line for real as an
unprivileged user (`nobody`) on a folder it cannot write, where the machine allows it.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile

import pytest
import yaml
from cli_helpers import ROOT, trip_model_work

from sas_trl.cli import main

RECIPE = "recipes/tiny_cpu.yaml"


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder whose writes fail with EACCES (and everything beneath it)."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    real = tempfile.TemporaryFile

    def temporary_file(*args, dir=None, **kwargs):
        if dir is not None and (str(dir) + os.sep).startswith(str(folder) + os.sep):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", temporary_file)
    return folder


def one_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "Warning" not in line and "warnings.warn(" not in line]
    assert len(lines) == 1 and lines[0].startswith(f"sas-trl {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


WHERE = {"the folder itself": "", "a folder to create in it": "run", "two levels below it": "a/b"}


@pytest.mark.parametrize("where", list(WHERE))
def test_train_names_an_output_dir_it_cannot_write(read_only, capsys, monkeypatch, where):
    trip_model_work(monkeypatch, extra=("load_train_dataset",))
    out = read_only / WHERE[where] if WHERE[where] else read_only
    assert main(["train", "--recipe", RECIPE, "--output_dir", str(out)]) == 2
    err = one_line(capsys, "train")
    assert f"output_dir {str(out)!r} cannot be written" in err and "Permission denied" in err
    if where != "the folder itself":
        assert repr(str(read_only)) in err  # the folder that refuses the write is named
    assert list(read_only.iterdir()) == []  # nothing created


@pytest.mark.parametrize("command", ["eval", "inspect", "analyze-truncation"])
@pytest.mark.parametrize("where", list(WHERE))
def test_eval_inspect_and_truncation_name_an_output_dir_they_cannot_write(
    read_only, capsys, tiny_model_dir, monkeypatch, command, where
):
    from sas_trl.evaluation import backends

    def tripwire(*args, **kwargs):
        raise AssertionError("a model was loaded before the user error")

    monkeypatch.setattr(backends, "make_backend", tripwire, raising=False)
    out = read_only / WHERE[where] if WHERE[where] else read_only
    what = ["--prompt", "Add 1, 2."] if command == "inspect" else ["--benchmarks", "addition"]
    assert main([command, "--model", str(tiny_model_dir), *what, "--output_dir", str(out)]) == 2
    err = one_line(capsys, command)
    assert f"--output_dir {str(out)!r} cannot be written" in err
    assert list(read_only.iterdir()) == []


@pytest.mark.parametrize("where", list(WHERE))
def test_compare_names_a_study_folder_it_cannot_write(read_only, tmp_path, capsys, where):
    out = read_only / WHERE[where] if WHERE[where] else read_only
    study = tmp_path / "study.yaml"
    study.write_text(
        yaml.safe_dump(
            {
                "base_recipe": "recipes/studies/tiny_smoke_base.yaml",
                "output_dir": str(out),
                "seeds": [0, 1],
                "reference": "grpo",
                "conditions": {"grpo": {"sas_strategy": "none"}, "sas": {"sas_ratio": 0.3}},
                "eval": {"benchmarks": "addition", "n": 2, "max_tokens": 16},
            }
        )
    )
    assert main(["compare", "--study", str(study)]) == 2
    err = one_line(capsys, "compare")
    assert f"output_dir {str(out)!r} cannot be written" in err and str(study) in err
    assert list(read_only.iterdir()) == []


@pytest.mark.parametrize("where", ["the cache folder", "a cache folder to create in it"])
def test_a_read_only_warm_up_cache_is_named_before_model_work(read_only, tmp_path, capsys, monkeypatch, where):
    from sas_trl.training import run, warmup
    from sas_trl.training.warmup import CACHE_ENV

    def tripwire(*args, **kwargs):
        raise AssertionError("reached model work before the user error was reported")

    monkeypatch.setattr(warmup, "build_builtin_model", tripwire)
    monkeypatch.setattr(run, "build_trainer", tripwire)
    cache = read_only if where == "the cache folder" else read_only / "cache"
    (cache / "warmup").mkdir(parents=True, exist_ok=True)  # mkdir succeeds (root), the write probe does not
    monkeypatch.setenv(CACHE_ENV, str(cache))
    out = tmp_path / "out"
    assert main(["train", "--recipe", RECIPE, "--output_dir", str(out), "--sft_warmup_steps", "0"]) == 2
    err = one_line(capsys, "train")
    assert f"warm-up cache folder {cache / 'warmup'} cannot be written (Permission denied)" in err
    assert CACHE_ENV in err
    assert [p.name for p in (cache / "warmup").iterdir()] == []  # no lock file, no staging folder


def test_a_folder_the_kernel_refuses_is_named_for_real(tmp_path):
    """No mock: as root, sysfs (`/sys`) refuses to create files whatever the permission bits; as another user,
    a 0o555 folder does."""
    if os.geteuid() == 0:
        locked = "/sys"
    else:
        locked = str(tmp_path / "locked")
        os.mkdir(locked, 0o555)
    out = os.path.join(locked, "sas-trl-results")
    run = subprocess.run(
        [sys.executable, "-m", "sas_trl.cli", "eval", "--model", "m", "--benchmarks", "addition", "--output_dir", out],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 2, run.stderr
    assert f"--output_dir {out!r} cannot be written (its first existing folder {locked!r})" in run.stderr
    assert "Traceback" not in run.stderr and not os.path.exists(out)


def test_a_read_only_cache_that_holds_the_entry_is_used_as_it_is(tmp_path, monkeypatch, capsys):
    """Nothing to write into the shared cache: a read-only one with the intact warm-up is read, not refused."""
    import contextlib

    from sas_trl.training import warmup
    from sas_trl.training.recipes import parse

    class OneProcess:
        is_main_process = True
        main_process_first = staticmethod(contextlib.nullcontext)

    monkeypatch.setenv(warmup.CACHE_ENV, str(tmp_path / "cache"))

    def prepare(out):
        run_args, args, model_args, _ = parse(
            ["--recipe", RECIPE, "--sft_warmup_steps", "0", "--output_dir", str(out)]
        )
        return warmup.prepare_model(run_args, model_args, args, OneProcess())

    prepare(tmp_path / "first")  # builds the entry
    real = tempfile.TemporaryFile
    cache = str(tmp_path / "cache")

    def temporary_file(*args, dir=None, **kwargs):
        if dir is not None and str(dir).startswith(cache):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", temporary_file)
    monkeypatch.setattr(warmup, "build_builtin_model", lambda *a, **k: pytest.fail("rebuilt"))
    capsys.readouterr()
    prepare(tmp_path / "second")
    assert "reusing the warmed-up builtin:tiny in the read-only cache" in capsys.readouterr().out
    assert warmup.cached_warmup_changes(tmp_path / "second" / "base_model", {}) is None

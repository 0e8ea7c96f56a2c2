"""The built-in model's warm-up cache: `builtin:tiny` built and supervised once per settings, shared by all runs.

The cache lives in the user's cache folder (`$SAS_TRL_CACHE`, else `$XDG_CACHE_HOME/sas-trl`, else
`~/.cache/sas-trl`), one entry per settings: `warmup/<key>/`, where the key is a hash of what makes the model
(seed, sft_warmup_steps, the built-in task's terms and redundancy, the model's shape). Each entry holds the model,
its tokenizer and `sas_trl_warmup.json` (written last, so it also marks the build complete): those settings and
every file's size and SHA-256. An entry is verified before each reuse and rebuilt, with a message saying why, when
a file is missing or damaged. Entries are built in a temporary folder and renamed into place under a lock, so two
processes never see a half-built entry nor build it twice.

Each run gets its own copy in `output_dir/base_model` (0.45M parameters: a few MB), so a run folder stays
complete when the cache is cleared, and `sas-trl eval --model OUTPUT/base_model` evaluates the run's start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..constants import BUILTIN_MODEL
from ..errors import UserError, disk_full_error, is_disk_full
from .arguments import RunArguments

CACHE_ENV = "SAS_TRL_CACHE"  # overrides the cache folder (tests point it at a temporary folder)
WARMUP_KEY = "sas_trl_warmup.json"  # next to a cached built-in model: the settings that made it, its checksums
BASE_MODEL = "base_model"  # the run's copy, in output_dir
DEFAULT_DOUBLE_CHECK_TRACES = RunArguments.__dataclass_fields__["builtin_double_check_traces"].default


def cache_dir() -> Path:
    """sas-trl's cache folder: `$SAS_TRL_CACHE`, else `$XDG_CACHE_HOME/sas-trl`, else `~/.cache/sas-trl`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "sas-trl"


def warmup_settings(run_args: RunArguments, seed: int) -> dict[str, Any]:
    """Everything the cached warm-up of the built-in model depends on."""
    from .. import __version__
    from ..task import TASK_MODEL_KWARGS

    settings = {
        "model": BUILTIN_MODEL,
        "model_kwargs": dict(TASK_MODEL_KWARGS),
        "seed": seed,
        "sft_warmup_steps": run_args.sft_warmup_steps,
        "builtin_min_terms": run_args.builtin_min_terms,
        "builtin_max_terms": run_args.builtin_max_terms,
        "sas_trl_version": __version__,  # the model and its tokenizer are built by this package's code
    }
    # Knobs added later enter the key only when set away from their default, so the entries (and the runs) of
    # recipes that leave them alone keep their keys.
    if run_args.builtin_double_check_traces != DEFAULT_DOUBLE_CHECK_TRACES:
        settings["builtin_double_check_traces"] = run_args.builtin_double_check_traces
    return settings


def warmup_key(settings: dict[str, Any]) -> str:
    """The cache entry's name: a hash of `settings` (16 hex digits)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def cache_entry(settings: dict[str, Any]) -> Path:
    """The shared cache folder for a warm-up made with `settings`."""
    return cache_dir() / "warmup" / warmup_key(settings)


# --------------------------------------------------------------------------------------------------
# Verification: the settings and every file's size and checksum, recorded when the model was built
# --------------------------------------------------------------------------------------------------


def _file_record(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def write_warmup_record(base: Path, settings: dict[str, Any]) -> None:
    """Write `sas_trl_warmup.json`: `settings` and every file's size and SHA-256 (last: marks `base` complete)."""
    files = {p.name: _file_record(p) for p in sorted(base.iterdir()) if p.is_file() and p.name != WARMUP_KEY}
    (base / WARMUP_KEY).write_text(json.dumps({**settings, "files": files}, indent=2) + "\n")


def cached_warmup_changes(base: Path, settings: dict[str, Any]) -> str | None:
    """None when `base` holds an intact warm-up made with `settings`, else why it must be rebuilt.

    Intact: every file recorded in `sas_trl_warmup.json` is there with its recorded size and SHA-256.
    """
    key = base / WARMUP_KEY
    if not (base / "config.json").is_file():
        return "no cached model" if not base.exists() else "an incomplete cached model"
    if not key.is_file():
        return "a cached model without a record of its settings"
    try:
        saved = json.loads(key.read_text())
    except ValueError:
        return f"an unreadable {WARMUP_KEY}"
    if not isinstance(saved, dict):
        return f"an unreadable {WARMUP_KEY}"
    changed = {k: (saved.get(k), v) for k, v in settings.items() if saved.get(k) != v}
    if changed:
        return (
            "a cached model made with other settings ("
            + ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            + ")"
        )
    files = saved.get("files")
    if not isinstance(files, dict) or "config.json" not in files:
        return "a cached model without checksums of its files"
    for name, record in files.items():
        path = base / name
        if not path.is_file():
            return f"a cached model missing its {name}"
        if not isinstance(record, dict) or _file_record(path) != record:
            return f"a damaged {name} (its size or checksum differs from the one recorded when it was built)"
    return None


# --------------------------------------------------------------------------------------------------
# The shared cache and the run's copy
# --------------------------------------------------------------------------------------------------


def prepare_model(run_args: RunArguments, model_args, args, state) -> str:
    """The model to train: a Hub id or folder as given, or the built-in tiny model (built and warmed up once).

    The built-in model comes from the shared cache (`cache_entry`), verified before reuse and (re)built when
    missing or damaged, with a message either way; the run trains from its own copy in `output_dir/base_model`.
    """
    if model_args.model_name_or_path != BUILTIN_MODEL:
        return model_args.model_name_or_path
    base = Path(args.output_dir) / BASE_MODEL
    settings = warmup_settings(run_args, args.seed)
    with state.main_process_first():  # one process builds it, the others load the saved copy
        if state.is_main_process:
            entry = cache_entry(settings)
            if _read_only_with_entry(entry, settings):  # a shared read-only cache: used as it is, no lock needed
                print(f"sas-trl: reusing the warmed-up {BUILTIN_MODEL} in the read-only cache {entry}", flush=True)
                copy_into_run(entry, base, settings)
            else:
                with _build_lock(entry):
                    shared_warmup(entry, settings, run_args, args.seed)
                    copy_into_run(entry, base, settings)
    return str(base)


def warmed_up_model(run_args: RunArguments, seed: int) -> Path:
    """The shared cache entry of the built-in model a run with `run_args` and `seed` starts from (built if needed):
    what `sas-trl analyze-truncation --model builtin:tiny --recipe R` measures."""
    settings = warmup_settings(run_args, seed)
    entry = cache_entry(settings)
    with _build_lock(entry):
        shared_warmup(entry, settings, run_args, seed)
    return entry


def shared_warmup(entry: Path, settings: dict[str, Any], run_args: RunArguments, seed: int) -> None:
    """Make `entry` hold an intact warm-up made with `settings`: reused when verified, else (re)built atomically.

    A full disk leaves no half-built entry and ends in one `UserError` saying what was not saved and how much
    space the model needs."""
    reason = cached_warmup_changes(entry, settings)
    if reason is None:
        print(f"sas-trl: reusing the warmed-up {BUILTIN_MODEL} in {entry} (same settings, files verified)", flush=True)
        return
    if entry.exists():
        print(f"sas-trl: rebuilding {entry}: it held {reason}", flush=True)
    else:
        print(f"sas-trl: building the warmed-up {BUILTIN_MODEL} into the shared cache: {entry}", flush=True)
    staging = entry.with_name(f".{entry.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        build_builtin_model(staging, run_args, seed)
        write_warmup_record(staging, settings)
        _replace_folder(staging, entry)
    except Exception as err:
        if not is_disk_full(err):
            raise
        raise disk_full_error(
            entry.parent,
            saved="nothing (the partial model was removed: no half-written cache entry is left to reuse)",
            not_saved=f"the warmed-up {BUILTIN_MODEL} (its warm-up runs again next time)",
            needed=getattr(err, "needed", None),
        ) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def copy_into_run(entry: Path, base: Path, settings: dict[str, Any]) -> None:
    """Copy the verified cache entry to the run's `base_model`, unless that already holds the same intact model."""
    reason = cached_warmup_changes(base, settings)
    if reason is None:
        return
    if base.exists():
        print(f"sas-trl: rebuilding {base}: it held {reason}", flush=True)
    base.parent.mkdir(parents=True, exist_ok=True)
    staging = base.with_name(f".{base.name}.copying-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copytree(entry, staging)
        _replace_folder(staging, base)
    except Exception as err:
        if not is_disk_full(err):
            raise
        raise disk_full_error(
            base.parent,
            saved=f"the warmed-up model in the shared cache, {entry}",
            not_saved=f"the run's copy {base} (the partial copy was removed)",
            needed=_folder_bytes(entry),
        ) from err
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _replace_folder(new: Path, target: Path) -> None:
    """Put the finished folder `new` at `target` by renames (a reader never sees a half-written `target`)."""
    if target.exists():
        aside = target.with_name(f".{target.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        os.replace(target, aside)
        shutil.rmtree(aside, ignore_errors=True)
    os.replace(new, target)


def _read_only_with_entry(entry: Path, settings: dict[str, Any]) -> bool:
    """Whether the cache folder cannot be written but already holds an intact `entry` made with `settings`."""
    from ..evaluation.config import unwritable

    return (
        entry.parent.is_dir() and unwritable(entry.parent) is not None and not cached_warmup_changes(entry, settings)
    )


@contextlib.contextmanager
def _build_lock(entry: Path) -> Iterator[None]:
    """An exclusive lock on one cache entry (a `.lock` file next to it), so that one process builds it.

    A cache folder that cannot be created or written is refused here, naming it, before any model work.
    """
    from ..evaluation.config import unwritable

    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        problem = unwritable(entry.parent)
    except OSError as err:
        problem = err.strerror or str(err)
    if problem is not None:
        raise UserError(
            f"the warm-up cache folder {entry.parent} cannot be written ({problem}); set {CACHE_ENV} to a writable "
            "folder"
        )
    try:
        import fcntl
    except ImportError:  # no POSIX locks (Windows): the renames alone keep the entry whole
        yield
        return
    with open(entry.with_name(f"{entry.name}.lock"), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"sas-trl: waiting for another sas-trl process that is preparing {entry}", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_builtin_model(path: Path, run_args: RunArguments, seed: int) -> int:
    """Build the built-in model and tokenizer into `path`, after `sft_warmup_steps` supervised steps if any;
    returns the bytes its weights take. A failed save carries them as the error's `needed`."""
    from ..task import build_task_model, evaluate, sft_warmup
    from ..tiny import build_tokenizer

    tokenizer = build_tokenizer()
    model = build_task_model(tokenizer, seed=seed)
    sft_steps, task = run_args.sft_warmup_steps, run_args.builtin_task()
    if sft_steps:
        start = time.perf_counter()
        print(f"sas-trl: supervised warm-up of {BUILTIN_MODEL} on the built-in task, {sft_steps} steps", flush=True)
        model = sft_warmup(model, tokenizer, sft_steps, seed=seed, task=task, log_every=max(1, sft_steps // 5))
        result = evaluate(model, tokenizer, n=100, greedy=True, task=task)
        print(
            f"sas-trl: warm-up done in {time.perf_counter() - start:.0f} s; greedy accuracy "
            f"{result.accuracy:.2f}, {result.mean_tokens:.1f} tokens",
            flush=True,
        )
    needed = sum(t.numel() * t.element_size() for t in model.state_dict().values()) + (1 << 20)  # + tokenizer
    try:
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
    except Exception as err:
        err.needed = needed  # for the full-disk message
        raise
    return needed

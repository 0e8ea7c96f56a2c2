"""What `sas-trl eval`, `analyze-truncation` and `inspect` share: the model, the benchmarks, how to sample and run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..constants import REWARD_FORMATS
from ..errors import UserError
from .backends import SamplingSettings

BACKENDS = ("auto", "transformers", "vllm")


def check_output_folder(path: Path, name: str, probe: bool = True) -> None:
    """Refuse an output folder that is (or lies under) an existing file, or (`probe`) that cannot be written.

    The first existing one of `path` and its parents must be a folder; with `probe`, a nameless temporary file
    is created in it and closed at once (nothing is left behind). A real write is the only test that also holds
    for root, whom permission bits do not stop, and for read-only mounts.
    """
    for where in (path, *path.parents):
        if where.exists():
            if not where.is_dir():
                what = "is" if where == path else f"lies under {str(where)!r}, which is"
                raise UserError(f"{name} {str(path)!r} {what} an existing file, not a folder")
            problem = unwritable(where) if probe else None
            if problem is not None:
                what = "" if where == path else f" (its first existing folder {str(where)!r})"
                raise UserError(f"{name} {str(path)!r} cannot be written{what}: {problem}")
            return


def unwritable(folder: Path) -> str | None:
    """None when a file can be created in the existing `folder`, else why not (the system's words)."""
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return err.strerror or str(err)
    return None


@dataclass(kw_only=True)
class EvalInputs:
    """The model, the benchmarks, the sampling settings and the runtime options; checked when built, before anything
    loads."""

    results_root: ClassVar[str] = "eval_results"

    model: str
    benchmarks: list[str]
    n: int = 16
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    output_dir: str | None = None  # default: <results_root>/<model, "/" -> "__">
    sources: dict[str, str] = field(default_factory=dict)
    data_dir: str | None = None
    limit: int | None = None  # problems per benchmark (the built-in `addition`: how many to generate)
    addition_terms: tuple[int, int] | None = None  # (fewest, most) addends of `addition`; None: the task's default
    backend: str = "auto"
    batch_size: int | None = None
    reward_format: str = "r1"
    overwrite: bool = False
    progress: bool = True

    def __post_init__(self):
        if self.n < 1:
            raise UserError(f"--n must be >= 1, got {self.n}")
        if self.backend not in BACKENDS:
            raise UserError(f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.reward_format not in REWARD_FORMATS:
            raise UserError(f"--reward_format must be one of {', '.join(REWARD_FORMATS)}, got {self.reward_format!r}")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit must be >= 1, got {self.limit}")
        if self.batch_size is not None and self.batch_size < 1:
            raise UserError(f"--batch_size must be >= 1, got {self.batch_size}")
        check_output_folder(self.resolved_output_dir(), "--output_dir")

    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        return Path(self.results_root) / (self.model.strip("/.~").replace("/", "__") or "model")

"""What `sas-trl eval`, `analyze-truncation` and `inspect` share: the model, the benchmarks, how to sample and run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from ..constants import REWARD_FORMATS
from ..errors import UserError
from .backends import SamplingSettings

BACKENDS = ("auto", "transformers", "vllm")


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

    def resolved_output_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        return Path(self.results_root) / (self.model.strip("/.~").replace("/", "__") or "model")

"""Evaluation: Pass@1, pass@k, response length, truncation rate and AES of a model on math benchmarks.

- `config`: the inputs `sas-trl eval`, `analyze-truncation` and `inspect` share, checked before anything loads;
- `datasets`: the benchmark registry (`EVAL_SETS`, the built-in `addition`) and loading;
- `backends`: `SamplingSettings`, and sampling with transformers `generate` or vLLM behind one interface;
- `store`: the append-as-you-go samples file that makes runs resumable;
- `sampling`: the one pipeline the three commands sample through (items -> samples file -> backend -> grading);
- `scoring`: token log-probs of completions under the model (what truncation and inspect score with);
- `runner`: `run_eval(EvalConfig(...))`, what `sas-trl eval` runs;
- `truncation`: `run_truncation(TruncationConfig(...))`, what `sas-trl analyze-truncation` runs;
- `inspection`: `run_inspect(InspectConfig(...))`, what `sas-trl inspect` runs, with its rollouts
  (`inspection_rollouts`) and its report (`inspection_report`).
The per-sample and corpus metrics (pass@k, AES) are `sas_trl.metrics`.
"""

from .backends import Completion, Request, SamplingSettings, TransformersBackend, VLLMBackend
from .config import BACKENDS, EvalInputs
from .datasets import (
    ADDITION_SEED,
    BUILTIN,
    EVAL_SETS,
    PAPER_BENCHMARKS,
    EvalItem,
    EvalSpec,
    known_benchmarks,
    load_benchmark,
    load_eval_set,
)
from .runner import EvalConfig, markdown_table, run_eval

__all__ = [
    "ADDITION_SEED",
    "BACKENDS",
    "BUILTIN",
    "EVAL_SETS",
    "PAPER_BENCHMARKS",
    "Completion",
    "EvalConfig",
    "EvalInputs",
    "EvalItem",
    "EvalSpec",
    "Request",
    "SamplingSettings",
    "TransformersBackend",
    "VLLMBackend",
    "known_benchmarks",
    "load_benchmark",
    "load_eval_set",
    "markdown_table",
    "run_eval",
]

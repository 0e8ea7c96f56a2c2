"""Evaluation: Pass@1, pass@k, response length, truncation rate and AES of a model on math benchmarks.

`run_eval(EvalConfig(...))` is what `sas-trl eval` runs; the pieces (benchmarks, backends, samples file) are
usable on their own, and `sas_trl.truncation` builds the truncation analysis on them.
"""

from .backends import Completion, Request, SamplingSettings, TransformersBackend, VLLMBackend
from .benchmarks import ADDITION_SEED, BUILTIN, PAPER_BENCHMARKS, EvalItem, known_benchmarks, load_benchmark
from .runner import EvalConfig, markdown_table, run_eval

__all__ = [
    "ADDITION_SEED",
    "BUILTIN",
    "PAPER_BENCHMARKS",
    "Completion",
    "EvalConfig",
    "EvalItem",
    "Request",
    "SamplingSettings",
    "TransformersBackend",
    "VLLMBackend",
    "known_benchmarks",
    "load_benchmark",
    "markdown_table",
    "run_eval",
]

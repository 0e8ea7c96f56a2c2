"""`sas-trl compare`: several conditions x several seeds from one base recipe, evaluated alike, reported with
their uncertainty.

- `study`: the study file (base recipe, conditions as recipe overrides, seeds, eval options), checked first;
- `runner`: the runs, one after another through `sas-trl train` and `sas-trl eval` (or their command lines);
- `stats`: means, confidence intervals and paired differences over seeds (scipy);
- `report`: results.json, report.md and the plots.
"""

from .report import build_report
from .runner import plan_runs, run_study
from .stats import paired_difference, summarize
from .study import Study, load_study

__all__ = ["Study", "build_report", "load_study", "paired_difference", "plan_runs", "run_study", "summarize"]

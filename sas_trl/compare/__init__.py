"""`sas-trl compare`: several conditions x several seeds from one base recipe, evaluated alike, reported with
their uncertainty.

- `study`: the study file (base recipe, conditions as recipe overrides, seeds, eval options), checked first;
- `runner`: the runs through `sas-trl train` and `sas-trl eval` (or their command lines); `jobs`: N at once;
  `children`: those processes, holding the study's lock while they run and stopped with the study;
- `kept`: finished runs' results kept in the repository (`results_dir`), skipped on a re-run, read back;
- `trajectory`: checkpoints evaluated along training and the stability figures;
- `stats`: means, confidence intervals and paired differences over seeds (scipy);
- `power`: the paired t-test's minimum detectable effect and the seeds an effect needs (scipy);
- `signal`: the share of training steps without learning signal;
- `report`: results.json, report.md and the plots; `evaluated`: what each evaluation evaluated, and how.
"""

from .report import build_report
from .runner import plan_runs, run_study
from .stats import paired_difference, summarize
from .study import Study, load_study

__all__ = ["Study", "build_report", "load_study", "paired_difference", "plan_runs", "run_study", "summarize"]

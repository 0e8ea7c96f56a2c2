"""SAS's view in the completions TRL logs when `log_completions=True`.

TRL logs each generation's prompts, completions, rewards and advantages (the console table, a parquet file per
logging step under `output_dir/completions/`, and a wandb "completions" table). With SAS, each row also gets:

* `sas_steps`, `sas_zeroed_steps`, `sas_zeroed_frac`: the rollout's reasoning steps, how many SAS zeroed, and
  the fraction of its valid tokens whose advantage was set to 0 (console, parquet, wandb, trackio);
* `sas_view` (wandb only): the rendered rollout, `sas_trl.render.render_html` as a `wandb.Html` cell.

How the rows line up: SAS selects steps per micro-batch, after TRL has shuffled the generation batch. A row
number (the rollout's place in the gathered generation, as TRL logs it) travels with each rollout through the
shuffle, and the loss hook keeps a CPU copy of what SAS computed for it. Rendering happens when TRL logs, not
in the training step. With `log_completions=False` none of this runs: no row numbers, no copies.
"""

from __future__ import annotations

import os
from collections import deque
from contextlib import contextmanager
from typing import Any

import torch

from .render import html_from_segments, segments, summary

ROW_KEY = "sas_log_row"
COLUMNS = ("sas_steps", "sas_zeroed_steps", "sas_zeroed_frac")
MAX_HTML_ROWS = 64  # rendered rollouts per log, over all processes
HTML_COLUMN = "sas_view"


class CompletionLogMixin:
    """Adds SAS's columns to TRL's completion logs. Mix in ahead of `GRPOTrainer`; inert unless `log_completions`.

    The SAS trainer calls `_sas_keep_for_logs` from its loss hook, only when `args.log_completions` is true.
    """

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        if self.args.log_completions:
            n = output["completion_ids"].size(0)
            start = self.accelerator.process_index * n  # TRL logs gathered rows in process order
            output[ROW_KEY] = torch.arange(start, start + n, device=output["completion_ids"].device)
            self._sas_log_rows: dict[int, tuple] = {}  # a new generation replaces the logged completions
            self._sas_log_total = n * self.accelerator.num_processes
        return output

    def _sas_keep_for_logs(
        self,
        inputs: dict[str, Any],
        mask: torch.Tensor,
        step_ids: torch.Tensor,
        token_logps: torch.Tensor,
        zero: torch.Tensor,
        is_correct: torch.Tensor,
        is_truncated: torch.Tensor,
    ) -> None:
        """Keep a CPU copy of one micro-batch's SAS view, by row, for the next log (tensors (B, T) and (B,))."""
        rows = inputs.get(ROW_KEY)
        if rows is None:
            return
        tensors = [
            inputs["completion_ids"],
            mask,
            step_ids,
            token_logps.detach().float(),
            zero,
            is_correct,
            is_truncated,
        ]
        ids, mask, step_ids, logps, zero, correct, truncated = (t.cpu() for t in tensors)
        for i, row in enumerate(rows.tolist()):  # a later pass over the same rollout (num_iterations > 1) wins
            self._sas_log_rows[row] = (
                ids[i],
                mask[i],
                step_ids[i],
                logps[i],
                zero[i],
                bool(correct[i]),
                bool(truncated[i]),
            )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if not self.args.log_completions:
            return super().log(logs, start_time)
        with_html = _reports_to_wandb(self.args)
        columns = self._sas_completion_columns(with_html)
        if columns is None:
            return super().log(logs, start_time)
        html = columns.pop(HTML_COLUMN, None)
        for name, values in columns.items():
            self._logs["extra"][name] = deque(values, maxlen=self.args.generation_batch_size)
        if not with_html:
            return super().log(logs, start_time)
        # TRL writes the parquet file and the console table; its wandb table is logged below, with the HTML column.
        with _without_wandb(self.args):
            super().log(logs, start_time)
        if self.accelerator.is_main_process:
            self._sas_log_wandb_table(html)

    def _sas_completion_columns(self, with_html: bool) -> dict[str, list] | None:
        """SAS's columns, one value per row of `self._logs` (None for rows SAS has not seen yet), on every process.

        Each process renders its own rows; the main process gathers them. `log` runs on every process (the
        Trainer gathers the loss just before), so the gather cannot hang.
        """
        from accelerate.utils import gather_object

        rows = getattr(self, "_sas_log_rows", None)
        if rows is None:
            return None
        tokenizer = getattr(self, "_sas_tokenizer", None) or self.processing_class
        local = []
        # HTML for the first rows only: at paper scale (1,024 rollouts of 4K tokens) all of them would be ~60 MB a log.
        html_rows = max(1, MAX_HTML_ROWS // self.accelerator.num_processes)
        for i, (row, (ids, mask, step_ids, logps, zero, correct, truncated)) in enumerate(sorted(rows.items())):
            segs = segments(ids, tokenizer, step_ids, logps, zero, mask)
            facts = summary(segs)
            view = None
            if with_html and i < html_rows:
                view = html_from_segments(segs, correct, is_truncated=truncated, uid=f"row{row}", standalone=True)
            local.append((row, facts["steps"], facts["zeroed_steps"], facts["zeroed_frac"], view))
        gathered = gather_object(local)
        logged = len(self._logs["prompt"])
        offset = logged - self._sas_log_total  # the latest generation is the last rows TRL logged
        columns: dict[str, list] = {name: [None] * logged for name in (*COLUMNS, HTML_COLUMN)}
        for row, steps, zeroed_steps, zeroed_frac, view in gathered:
            if 0 <= offset + row < logged:
                for name, value in zip((*COLUMNS, HTML_COLUMN), (steps, zeroed_steps, zeroed_frac, view), strict=True):
                    columns[name][offset + row] = value
        return columns

    def _sas_log_wandb_table(self, html: list[str | None]) -> None:
        """TRL's completions table as it wrote it to parquet, plus the rendered rollouts, to wandb."""
        import pandas as pd
        import wandb

        if wandb.run is None:
            return
        path = os.path.join(self.args.output_dir, "completions", f"completions_{self.state.global_step:05d}.parquet")
        frame = pd.read_parquet(path)
        frame[HTML_COLUMN] = [None if h is None else wandb.Html(h, inject=False) for h in html]
        if self.log_unique_prompts:  # as TRL filters its own table
            frame = frame[~frame["prompt"].astype(str).duplicated()]
        wandb.log({"completions": wandb.Table(dataframe=frame)})


def _reports_to_wandb(args) -> bool:
    report_to = args.report_to or []
    return "wandb" in ([report_to] if isinstance(report_to, str) else report_to)


@contextmanager
def _without_wandb(args):
    """`args.report_to` without wandb for the duration (TRL then skips its own wandb completions table)."""
    saved = args.report_to
    args.report_to = [r for r in ([saved] if isinstance(saved, str) else saved) if r != "wandb"]
    try:
        yield
    finally:
        args.report_to = saved

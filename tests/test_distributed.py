"""(d) Two real CPU processes: each applies SAS to its own rollouts, aligned with its own verdicts."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from sas_trl import segment_steps, select_zero_mask

SCRIPT = Path(__file__).parent / "scripts" / "two_process_sas.py"


@pytest.mark.slow
def test_two_processes_mask_their_own_rollouts(tmp_path, tiny_model_dir):
    # accelerate's CPU launcher needs MPI and otherwise silently runs one process; torchrun really starts two.
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    result = subprocess.run(
        [*torchrun, str(SCRIPT), str(tiny_model_dir), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    assert [r["num_processes"] for r in ranks] == [2, 2]
    assert all("MULTI_CPU" in r["distributed_type"] for r in ranks)

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    seen = []
    for rank in ranks:
        assert len(rank["records"]) == 2  # two optimizer steps, one micro-batch each
        for rec in rank["records"]:
            ids, mask = rec["completion_ids"], rec["completion_mask"]
            # Correctness stayed with its rollout: recompute the reward from this process's own tokens.
            texts = tokenizer.batch_decode(ids * mask + tokenizer.pad_token_id * (1 - mask), skip_special_tokens=True)
            assert rec["sas_is_correct"].tolist() == [len(t) % 2 == 0 for t in texts]
            # The mask each process applied equals the single-process computation on the same rollouts.
            steps = segment_steps(ids, mask, tokenizer)
            zero = select_zero_mask(steps, rec["logps"], rec["sas_is_correct"], 0.5)
            expected = rec["advantages"].unsqueeze(1).expand_as(zero).masked_fill(zero, 0.0)
            masked = rec["masked"] if rec["masked"].dim() == 2 else rec["masked"].unsqueeze(1).expand_as(zero)
            assert torch.equal(masked, expected)
            seen.append(ids)
    assert not torch.equal(seen[0], seen[2])  # the processes trained on different rollouts
    assert any(rec["masked"].dim() == 2 for rank in ranks for rec in rank["records"])  # SAS did zero something
    assert any("sas/zeroed_frac" in entry for entry in ranks[0]["log_history"])

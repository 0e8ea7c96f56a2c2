import atexit
import os
import shutil
import tempfile

import pytest
import torch

# Two shared cores: one torch thread per process is several times faster than two (measured for the tiny model:
# 7,680 vs 1,016 tokens/s while another process held a core).
torch.set_num_threads(1)
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The built-in model's shared warm-up cache: one temporary folder for the whole session (subprocesses included),
# never the user's ~/.cache/sas-trl.
os.environ["SAS_TRL_CACHE"] = tempfile.mkdtemp(prefix="sas-trl-test-cache-")
atexit.register(shutil.rmtree, os.environ["SAS_TRL_CACHE"], True)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A random-init tiny Llama and its tokenizer, saved once per test session."""
    from sas_trl.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def qwen2_tokenizer():
    """The real DeepScaleR (Qwen2 BPE + R1-Distill added tokens) vocabulary, built offline."""
    from sas_trl.vocabularies import qwen2_tokenizer

    return qwen2_tokenizer()

